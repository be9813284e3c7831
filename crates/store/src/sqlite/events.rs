//! SQLite implementation of [`EventStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use sqlx::Row;

use super::{SqliteStore, ingest_on};
use crate::{EventStore, IngestOutcome, NewEvent, PendingEvent, Result, ts};

#[async_trait]
impl EventStore for SqliteStore {
    async fn ingest(&self, events: &[NewEvent]) -> Result<IngestOutcome> {
        let mut out = self.ingest_groups(&[events]).await?;
        Ok(out.pop().unwrap_or_default())
    }

    async fn ingest_groups(&self, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>> {
        ingest_on(&self.owned, groups).await
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
        let limit = usize::try_from(limit).unwrap_or(0);
        self.owned
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT seq, session_id, body, received_at FROM events WHERE applied = 0 ORDER BY seq",
                )?;
                let mut rows = st.query([])?;
                let mut out = Vec::new();
                // Skipped rows are stepped over by number: their bodies are never copied.
                while out.len() < limit
                    && let Some(r) = rows.next()?
                {
                    let seq: i64 = r.get(0)?;
                    if !besides.contains(&seq) {
                        out.push(PendingEvent { seq, session_id: r.get(1)?, body: r.get(2)?, received_at: r.get(3)? });
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn events_since(&self, since: DateTime<Utc>, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT body FROM events WHERE received_at >= ? ORDER BY seq LIMIT ?")
            .bind(ts(since))
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(|r| r.get("body")).collect())
    }

    async fn pending_event_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE applied = 0").fetch_one(&self.read).await?)
    }

    async fn settled(&self, event_ids: &[String]) -> Result<bool> {
        self.owned
            .read(|c| {
                let mut ev = c.prepare_cached("SELECT applied, session_id FROM events WHERE id = ?")?;
                let mut unsettled = c.prepare_cached(
                    "SELECT COUNT(*) FROM outbox WHERE session_id = ? AND state = 'pending' AND attempts = 0",
                )?;
                for id in event_ids {
                    let row: Option<(i64, String)> = ev.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
                    let Some((applied, sid)) = row else { return Ok(false) };
                    if applied == 0 || unsettled.query_row([&sid], |r| r.get::<_, i64>(0))? > 0 {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
            .await
    }
}
