//! SQLite implementation of [`EventStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
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
        let mut conn = self.durable.acquire().await?;
        ingest_on(&mut conn, groups).await
    }

    async fn pending_events(&self, _shards: Option<&[i32]>, limit: i64) -> Result<Vec<PendingEvent>> {
        let rows =
            sqlx::query("SELECT seq, session_id, body, received_at FROM events WHERE applied = 0 ORDER BY seq LIMIT ?")
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
        Ok(rows
            .iter()
            .map(|r| PendingEvent {
                seq: r.get("seq"),
                session_id: r.get("session_id"),
                body: r.get("body"),
                received_at: r.get("received_at"),
            })
            .collect())
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
        let mut conn = self.read.acquire().await?;
        for id in event_ids {
            let row = sqlx::query("SELECT applied, session_id FROM events WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { return Ok(false) };
            if row.get::<i64, _>("applied") == 0 {
                return Ok(false);
            }
            let sid: String = row.get("session_id");
            let unsettled: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM outbox WHERE session_id = ? AND state = 'pending' AND attempts = 0",
            )
            .bind(&sid)
            .fetch_one(&mut *conn)
            .await?;
            if unsettled > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
