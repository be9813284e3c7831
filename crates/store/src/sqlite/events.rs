//! SQLite implementation of [`EventStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use super::{SqliteStore, ingest_on};
use crate::{EventStore, IngestOutcome, NewEvent, PendingEvent, Result, ts};

#[async_trait]
impl EventStore for SqliteStore {
    async fn ingest(&self, events: &[NewEvent]) -> Result<IngestOutcome> {
        let mut out = self.ingest_groups(&[events]).await?;
        Ok(out.pop().unwrap_or_default())
    }

    async fn ingest_groups(&self, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>> {
        ingest_on(self, groups).await
    }

    async fn pending_events(&self, shards: Option<&[i32]>, limit: i64) -> Result<Vec<PendingEvent>> {
        self.pending_events_besides(shards, limit, &std::collections::HashSet::new()).await
    }

    async fn pending_events_besides(
        &self,
        _shards: Option<&[i32]>,
        limit: i64,
        besides: &std::collections::HashSet<i64>,
    ) -> Result<Vec<PendingEvent>> {
        self.unapplied.refresh(&self.owned, &self.events).await?;
        Ok(self.unapplied.oldest(usize::try_from(limit).unwrap_or(0), besides))
    }

    async fn events_since(&self, since: DateTime<Utc>, limit: i64) -> Result<Vec<String>> {
        let since = ts(since);
        self.events
            .read(|c| {
                let mut st = c.prepare_cached("SELECT body FROM events WHERE received_at >= ? ORDER BY seq LIMIT ?")?;
                let rows = st.query_map(rusqlite::params![since, limit], |r| r.get::<_, String>(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn pending_event_count(&self) -> Result<i64> {
        self.unapplied.refresh(&self.owned, &self.events).await?;
        let (read, cursor) = self.unapplied.count_and_cursor();
        // Events past the cursor are those whose sync is still under way.
        let later: i64 = self
            .events
            .read(|c| {
                Ok(c.prepare_cached("SELECT COUNT(*) FROM events WHERE seq > ?")?.query_row([cursor], |r| r.get(0))?)
            })
            .await?;
        Ok(read + later)
    }

    async fn settled(&self, event_ids: &[String]) -> Result<bool> {
        let mut sessions = Vec::with_capacity(event_ids.len());
        let found = self
            .events
            .read(|c| {
                let mut ev = c.prepare_cached("SELECT seq, session_id FROM events WHERE id = ?")?;
                for id in event_ids {
                    match ev.query_row([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).optional()? {
                        Some(row) => sessions.push(row),
                        None => return Ok(false),
                    }
                }
                Ok(true)
            })
            .await?;
        if !found {
            return Ok(false);
        }
        self.unapplied.refresh(&self.owned, &self.events).await?;
        if sessions.iter().any(|(seq, _)| self.unapplied.is_unapplied(*seq)) {
            return Ok(false);
        }
        self.owned
            .read(|c| {
                let mut unsettled = c.prepare_cached(
                    "SELECT COUNT(*) FROM outbox WHERE session_id = ? AND state = 'pending' AND attempts = 0",
                )?;
                for (_, sid) in &sessions {
                    if unsettled.query_row([sid], |r| r.get::<_, i64>(0))? > 0 {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
            .await
    }
}
