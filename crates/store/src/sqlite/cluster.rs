//! SQLite implementation of [`ClusterStore`]: one node. It records its heartbeat (for
//! `GET /v1/nodes`), has no shards (it does all the rules work) and needs no customer locks.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use super::SqliteStore;
use crate::cluster::{ClusterStore, KeyLocks, NoLocks, NodeBeat, NodeRow, ShardClaim};
use crate::{Result, parse_ts, ts};

#[async_trait]
impl ClusterStore for SqliteStore {
    fn shared(&self) -> bool {
        false
    }

    async fn heartbeat(&self, beat: &NodeBeat) -> Result<()> {
        let now = Utc::now().timestamp_millis();
        sqlx::query(
            "INSERT INTO nodes (id, name, version, started_at, last_seen_ms) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms, stopped = 0",
        )
        .bind(&beat.id)
        .bind(&beat.name)
        .bind(&beat.version)
        .bind(ts(beat.started_at))
        .bind(now)
        .execute(&self.write)
        .await?;
        sqlx::query("DELETE FROM nodes WHERE last_seen_ms < ?")
            .bind(now - 24 * 3600 * 1000)
            .execute(&self.write)
            .await?;
        // One node: a previous process's leases (it crashed) are free at once.
        sqlx::query("UPDATE outbox INDEXED BY outbox_leased SET lease_owner = NULL, lease_until_ms = 0 WHERE lease_owner IS NOT NULL AND lease_owner <> ? AND state = 'pending'")
            .bind(&beat.id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn nodes(&self, lease_ms: i64) -> Result<Vec<NodeRow>> {
        let now = Utc::now().timestamp_millis();
        let rows = sqlx::query(
            "SELECT n.*, (SELECT COUNT(*) FROM outbox o WHERE o.lease_owner = n.id AND o.state = 'pending' AND o.lease_until_ms >= ?) AS leased
             FROM nodes n ORDER BY n.started_at DESC, n.id",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let seen: i64 = r.get("last_seen_ms");
                let stopped = r.get::<i64, _>("stopped") != 0;
                let live = !stopped && now - seen <= lease_ms;
                NodeRow {
                    id: r.get("id"),
                    name: r.get("name"),
                    version: r.get("version"),
                    started_at: parse_ts(r.get::<String, _>("started_at").as_str()),
                    last_seen: chrono::DateTime::from_timestamp_millis(seen).unwrap_or_default(),
                    live,
                    stopped,
                    shards: if live { (0..crate::SHARDS).collect() } else { vec![] },
                    leased_writes: r.get("leased"),
                }
            })
            .collect())
    }

    async fn claim_shards(&self, _node: &str, _want: usize, _lease_ms: i64) -> Result<Option<ShardClaim>> {
        Ok(None)
    }

    async fn renew_write_leases(&self, node: &str, lease_ms: i64) -> Result<u64> {
        let now = Utc::now().timestamp_millis();
        let r = sqlx::query(
            "UPDATE outbox SET lease_until_ms = ? WHERE lease_owner = ? AND state = 'pending' AND lease_until_ms >= ?",
        )
        .bind(now + lease_ms)
        .bind(node)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected())
    }

    async fn leave(&self, node: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0 WHERE lease_owner = ? AND state = 'pending'",
        )
        .bind(node)
        .execute(&self.write)
        .await?;
        sqlx::query("UPDATE nodes SET stopped = 1 WHERE id = ?").bind(node).execute(&self.write).await?;
        Ok(())
    }

    async fn key_locks(&self) -> Result<Box<dyn KeyLocks>> {
        Ok(Box::new(NoLocks))
    }
}
