//! SQLite implementation of [`NativeStore`].

use async_trait::async_trait;
use chrono::Utc;
use sqlx::{Connection, Row};

use super::SqliteStore;
use super::rows::insert_event;
use crate::native::{NativeBatch, NativeRow, NativeStore};
use crate::{Result, parse_ts, ts};

#[async_trait]
impl NativeStore for SqliteStore {
    async fn native_known(&self, source: &str, native_ids: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for id in native_ids {
            let hit: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM native_events WHERE source = ? AND native_id = ?")
                    .bind(source)
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?;
            if hit.is_some() {
                out.push(id.clone());
            }
        }
        Ok(out)
    }

    async fn native_snapshot(&self, session_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT snapshot FROM native_sessions WHERE session_id = ?")
            .bind(session_id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn ingest_native(&self, batch: &NativeBatch) -> Result<u64> {
        let mut conn = self.durable.acquire().await?;
        async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let now = ts(Utc::now());
            for n in &batch.natives {
                sqlx::query(
                    "INSERT INTO native_events (source, native_id, session_id, type, at, body, event_ids, received_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, native_id) DO NOTHING",
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
                    "INSERT INTO native_sessions (session_id, snapshot, updated_at) VALUES (?, ?, ?)
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
            Ok::<u64, crate::StoreError>(accepted)
        }
        .await
    }

    async fn native_events(&self, session_id: &str) -> Result<Vec<NativeRow>> {
        let rows = sqlx::query(
            "SELECT source, native_id, type, at, body, event_ids, received_at FROM native_events
             WHERE session_id = ? ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(&self.read)
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
