//! SQLite implementation of [`NativeStore`]: native intake's tables are in the events file,
//! committed with the events they become.

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::rows::insert_event_r;
use crate::native::{NativeBatch, NativeRow, NativeStore};
use crate::{Result, parse_ts, ts};

#[async_trait]
impl NativeStore for SqliteStore {
    async fn native_known(&self, source: &str, native_ids: &[String]) -> Result<Vec<String>> {
        self.events
            .read(|c| {
                let mut st = c.prepare_cached("SELECT seq FROM native_events WHERE source = ? AND native_id = ?")?;
                let mut out = Vec::new();
                for id in native_ids {
                    if st.query_row([source, id.as_str()], |r| r.get::<_, i64>(0)).optional()?.is_some() {
                        out.push(id.clone());
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn native_snapshot(&self, session_id: &str) -> Result<Option<String>> {
        self.events
            .read(|c| {
                Ok(c.prepare_cached("SELECT snapshot FROM native_sessions WHERE session_id = ?")?
                    .query_row([session_id], |r| r.get(0))
                    .optional()?)
            })
            .await
    }

    async fn ingest_native(&self, batch: &NativeBatch) -> Result<u64> {
        let (accepted, last) = self
            .events
            .durable(|c| {
                let now = ts(Utc::now());
                let mut native = c.prepare_cached(
                    "INSERT INTO native_events (source, native_id, session_id, type, at, body, event_ids, received_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, native_id) DO NOTHING",
                )?;
                for n in &batch.natives {
                    native.execute(params![
                        n.source,
                        n.native_id,
                        n.session_id,
                        n.event_type,
                        ts(n.at),
                        n.body,
                        serde_json::to_string(&n.event_ids)?,
                        now
                    ])?;
                }
                let mut snapshot = c.prepare_cached(
                    "INSERT INTO native_sessions (session_id, snapshot, updated_at) VALUES (?, ?, ?)
                     ON CONFLICT(session_id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                )?;
                for (sid, snap) in &batch.snapshots {
                    snapshot.execute(params![sid, snap, now])?;
                }
                let mut accepted = 0;
                for e in &batch.events {
                    if insert_event_r(c, e, &now)? {
                        accepted += 1;
                    }
                }
                Ok((accepted, super::last_event(c)?))
            })
            .await?;
        self.unapplied.synced_upto(last);
        Ok(accepted)
    }

    async fn native_events(&self, session_id: &str) -> Result<Vec<NativeRow>> {
        self.events
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT source, native_id, type, at, body, event_ids, received_at FROM native_events
                     WHERE session_id = ? ORDER BY seq",
                )?;
                let rows = st.query_map([session_id], |r| {
                    Ok(NativeRow {
                        source: r.get(0)?,
                        id: r.get(1)?,
                        event_type: r.get(2)?,
                        at: parse_ts(r.get::<_, String>(3)?.as_str()),
                        received_at: parse_ts(r.get::<_, String>(6)?.as_str()),
                        event_ids: serde_json::from_str(r.get::<_, String>(5)?.as_str()).unwrap_or_default(),
                        payload: serde_json::from_str(r.get::<_, String>(4)?.as_str()).unwrap_or_default(),
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }
}
