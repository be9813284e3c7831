//! PostgreSQL implementation of [`EventStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{PgStore, ingest_on};
use crate::{EventStore, IngestOutcome, NewEvent, PendingEvent, Result, ts};

#[async_trait]
impl EventStore for PgStore {
    async fn ingest(&self, events: &[NewEvent]) -> Result<IngestOutcome> {
        let mut out = self.ingest_groups(&[events]).await?;
        Ok(out.pop().unwrap_or_default())
    }

    async fn ingest_groups(&self, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>> {
        let mut conn = self.pool().acquire().await?;
        // Two nodes storing the same ids in another order can deadlock on the unique index;
        // the database aborts one of them, which is then run again (nothing of it was kept).
        let mut tries = 0;
        loop {
            match ingest_on(&mut conn, groups).await {
                Err(e) if tries < 3 && super::retryable(&e) => tries += 1,
                other => return other,
            }
        }
    }

    async fn pending_events(&self, shards: Option<&[i32]>, limit: i64) -> Result<Vec<PendingEvent>> {
        let rows = match shards {
            None => {
                sqlx::query(
                    "SELECT seq, session_id, body, received_at FROM events WHERE NOT applied ORDER BY seq LIMIT $1",
                )
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
            Some(shards) => {
                let shards: Vec<i16> = shards.iter().map(|s| *s as i16).collect();
                sqlx::query(
                    "SELECT seq, session_id, body, received_at FROM events WHERE NOT applied AND shard = ANY($1) ORDER BY seq LIMIT $2",
                )
                .bind(shards)
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
        };
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
        let rows = sqlx::query("SELECT body FROM events WHERE received_at >= $1 ORDER BY seq LIMIT $2")
            .bind(ts(since))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(|r| r.get("body")).collect())
    }

    async fn pending_event_count(&self) -> Result<i64> {
        // Kept by triggers (migration 0005): counting the waiting events took 5-15 ms under load.
        Ok(sqlx::query_scalar("SELECT COALESCE(SUM(n), 0)::BIGINT FROM events_tally").fetch_one(self.pool()).await?)
    }

    async fn settled(&self, event_ids: &[String]) -> Result<bool> {
        let mut conn = self.pool().acquire().await?;
        for id in event_ids {
            let row = sqlx::query("SELECT applied, session_id FROM events WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { return Ok(false) };
            if !row.get::<bool, _>("applied") {
                return Ok(false);
            }
            let sid: String = row.get("session_id");
            let unsettled: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM outbox WHERE session_id = $1 AND state = 'pending' AND attempts = 0",
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
