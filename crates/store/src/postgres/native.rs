//! PostgreSQL implementation of [`NativeStore`].

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use super::PgStore;
use super::rows::insert_event;
use crate::native::{NativeBatch, NativeRow, NativeStore};
use crate::{Result, parse_ts, ts};

#[async_trait]
impl NativeStore for PgStore {
    async fn native_known(&self, source: &str, native_ids: &[String]) -> Result<Vec<String>> {
        let known: Vec<String> =
            sqlx::query_scalar("SELECT native_id FROM native_events WHERE source = $1 AND native_id = ANY($2)")
                .bind(source)
                .bind(native_ids)
                .fetch_all(self.pool())
                .await?;
        // In the order asked, as the SQLite backend answers.
        Ok(native_ids.iter().filter(|id| known.contains(id)).cloned().collect())
    }

    async fn native_snapshot(&self, session_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT snapshot FROM native_sessions WHERE session_id = $1")
            .bind(session_id)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn ingest_native(&self, batch: &NativeBatch) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let now = ts(Utc::now());
        for n in &batch.natives {
            sqlx::query(
                "INSERT INTO native_events (source, native_id, session_id, type, at, body, event_ids, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT(source, native_id) DO NOTHING",
            )
            .bind(&n.source)
            .bind(&n.native_id)
            .bind(&n.session_id)
            .bind(&n.event_type)
            .bind(ts(n.at))
            .bind(&n.body)
            .bind(serde_json::to_string(&n.event_ids)?)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        for (sid, snap) in &batch.snapshots {
            sqlx::query(
                "INSERT INTO native_sessions (session_id, snapshot, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT(session_id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
            )
            .bind(sid)
            .bind(snap)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        let mut accepted = 0;
        for e in &batch.events {
            if insert_event(&mut tx, e, &now).await? {
                accepted += 1;
            }
        }
        tx.commit().await?;
        Ok(accepted)
    }

    async fn native_events(&self, session_id: &str) -> Result<Vec<NativeRow>> {
        let rows = sqlx::query(
            "SELECT source, native_id, type, at, body, event_ids, received_at FROM native_events
             WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| NativeRow {
                source: r.get("source"),
                id: r.get("native_id"),
                event_type: r.get("type"),
                at: parse_ts(r.get::<String, _>("at").as_str()),
                received_at: parse_ts(r.get::<String, _>("received_at").as_str()),
                event_ids: serde_json::from_str(r.get::<String, _>("event_ids").as_str()).unwrap_or_default(),
                payload: serde_json::from_str(r.get::<String, _>("body").as_str()).unwrap_or_default(),
            })
            .collect())
    }
}
