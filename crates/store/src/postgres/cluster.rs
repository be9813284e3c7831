//! PostgreSQL implementation of [`ClusterStore`] and of the shared CRM pace ledger. Every
//! lease is timed by the database's clock (`cb_now_ms()`).

use std::time::Duration;

use async_trait::async_trait;
use casebridge_crm::pacing::PaceLedger;
use sqlx::Row;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;

use super::PgStore;
use crate::cluster::{ClusterStore, KeyLocks, NodeBeat, NodeRow, ShardClaim};
use crate::{Result, parse_ts, ts};

/// Nodes not seen for this long are no longer listed (and their rows deleted).
const FORGET_MS: i64 = 24 * 3600 * 1000;

#[async_trait]
impl ClusterStore for PgStore {
    fn shared(&self) -> bool {
        true
    }

    async fn heartbeat(&self, beat: &NodeBeat) -> Result<()> {
        sqlx::query(
            "INSERT INTO nodes (id, name, version, started_at, last_seen_ms) VALUES ($1, $2, $3, $4, cb_now_ms())
             ON CONFLICT (id) DO UPDATE SET last_seen_ms = cb_now_ms(), stopped = FALSE",
        )
        .bind(&beat.id)
        .bind(&beat.name)
        .bind(&beat.version)
        .bind(ts(beat.started_at))
        .execute(self.pool())
        .await?;
        sqlx::query("DELETE FROM nodes WHERE last_seen_ms < cb_now_ms() - $1")
            .bind(FORGET_MS)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn nodes(&self, lease_ms: i64) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query(
            "SELECT n.*, cb_now_ms() AS now_ms,
               ARRAY(SELECT shard FROM rules_shards s WHERE s.holder = n.id AND s.until_ms >= cb_now_ms() ORDER BY shard) AS shards,
               (SELECT COUNT(*) FROM outbox o WHERE o.lease_owner = n.id AND o.state = 'pending' AND o.lease_until_ms >= cb_now_ms()) AS leased
             FROM nodes n ORDER BY n.started_at DESC, n.id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let now: i64 = r.get("now_ms");
                let seen: i64 = r.get("last_seen_ms");
                let stopped: bool = r.get("stopped");
                NodeRow {
                    id: r.get("id"),
                    name: r.get("name"),
                    version: r.get("version"),
                    started_at: parse_ts(r.get::<String, _>("started_at").as_str()),
                    last_seen: chrono::DateTime::from_timestamp_millis(seen).unwrap_or_default(),
                    live: !stopped && now - seen <= lease_ms,
                    stopped,
                    shards: r.get("shards"),
                    leased_writes: r.get("leased"),
                }
            })
            .collect())
    }

    async fn claim_shards(&self, node: &str, want: usize, lease_ms: i64) -> Result<Option<ShardClaim>> {
        let mut tx = self.pool().begin().await?;
        let mut held: Vec<i32> = sqlx::query_scalar(
            "UPDATE rules_shards SET until_ms = cb_now_ms() + $2 WHERE holder = $1 AND until_ms >= cb_now_ms() RETURNING shard",
        )
        .bind(node)
        .bind(lease_ms)
        .fetch_all(&mut *tx)
        .await?;
        held.sort_unstable();
        let mut taken_over = 0;
        if held.len() > want {
            // Another node joined: give back the highest shards.
            let extra = held.split_off(want);
            sqlx::query("UPDATE rules_shards SET holder = NULL, until_ms = 0 WHERE shard = ANY($1) AND holder = $2")
                .bind(&extra)
                .bind(node)
                .execute(&mut *tx)
                .await?;
        } else if held.len() < want {
            let rows = sqlx::query(
                "WITH free AS (
                    SELECT shard, holder AS prev, until_ms AS prev_until FROM rules_shards
                    WHERE until_ms < cb_now_ms() ORDER BY shard LIMIT $3 FOR UPDATE SKIP LOCKED)
                 UPDATE rules_shards s SET holder = $1, token = s.token + 1, until_ms = cb_now_ms() + $2
                 FROM free WHERE s.shard = free.shard
                 RETURNING s.shard, (free.prev IS NOT NULL AND free.prev <> $1 AND free.prev_until > 0) AS taken",
            )
            .bind(node)
            .bind(lease_ms)
            .bind((want - held.len()) as i64)
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                held.push(r.get("shard"));
                if r.get::<bool, _>("taken") {
                    taken_over += 1;
                }
            }
            held.sort_unstable();
        }
        tx.commit().await?;
        Ok(Some(ShardClaim { held, taken_over }))
    }

    async fn renew_write_leases(&self, node: &str, lease_ms: i64) -> Result<u64> {
        let r = sqlx::query(
            // A write this node is settling right now holds its row: skipped, not waited for
            // (its lease still runs; the next beat renews it if the settling rolled back).
            // Waiting took the rows in another order than the settling did: a deadlock,
            // broken by PostgreSQL after a second.
            "UPDATE outbox SET lease_until_ms = cb_now_ms() + $2
             WHERE id IN (SELECT id FROM outbox
                          WHERE lease_owner = $1 AND state = 'pending' AND lease_until_ms >= cb_now_ms()
                          FOR UPDATE SKIP LOCKED)",
        )
        .bind(node)
        .bind(lease_ms)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    async fn leave(&self, node: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE rules_shards SET holder = NULL, until_ms = 0 WHERE holder = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0 WHERE lease_owner = $1 AND state = 'pending'",
        )
        .bind(node)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE nodes SET stopped = TRUE WHERE id = $1").bind(node).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key_locks(&self) -> Result<Box<dyn KeyLocks>> {
        Ok(Box::new(PgKeyLocks { pool: self.pool().clone(), conn: None, held: false }))
    }
}

/// Session-level advisory locks on one connection of the pool, taken and let go as a set.
struct PgKeyLocks {
    pool: sqlx::PgPool,
    conn: Option<PoolConnection<Postgres>>,
    held: bool,
}

#[async_trait]
impl KeyLocks for PgKeyLocks {
    async fn try_lock(&mut self, keys: &[String]) -> Result<bool> {
        if keys.is_empty() {
            return Ok(true);
        }
        if self.conn.is_none() {
            self.conn = Some(self.pool.acquire().await?);
        }
        let Some(conn) = self.conn.as_mut() else { return Ok(false) };
        self.held = true;
        let got: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('casebridge.customer:' || k, 0)) FROM unnest($1::text[]) AS k",
        )
        .bind(keys)
        .fetch_all(&mut **conn)
        .await?;
        if got.iter().all(|g| *g) {
            return Ok(true);
        }
        let taken: Vec<&String> = keys.iter().zip(&got).filter(|(_, g)| **g).map(|(k, _)| k).collect();
        sqlx::query(
            "SELECT pg_advisory_unlock(hashtextextended('casebridge.customer:' || k, 0)) FROM unnest($1::text[]) AS k",
        )
        .bind(taken)
        .execute(&mut **conn)
        .await?;
        Ok(false)
    }

    async fn release(&mut self) -> Result<()> {
        if let Some(mut conn) = self.conn.take() {
            if self.held {
                sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *conn).await?;
            }
            self.held = false;
        }
        Ok(())
    }
}

impl Drop for PgKeyLocks {
    fn drop(&mut self) {
        // Dropped while holding (an error on the way): close the connection rather than
        // hand it back to the pool with the locks on it; the server lets them go.
        if self.held
            && let Some(conn) = self.conn.take()
        {
            drop(conn.detach());
        }
    }
}

#[async_trait]
impl PaceLedger for PgStore {
    async fn take(&self, crm: &str, per_minute: Option<u32>) -> Option<Duration> {
        match take(self, crm, per_minute).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "CRM pace ledger unreachable; waiting a second.");
                Some(Duration::from_secs(1))
            }
        }
    }

    async fn hold(&self, crm: &str, wait: Duration) {
        let r = sqlx::query(
            "INSERT INTO crm_holds (crm, until_ms) VALUES ($1, cb_now_ms() + $2)
             ON CONFLICT (crm) DO UPDATE SET until_ms = GREATEST(crm_holds.until_ms, excluded.until_ms)",
        )
        .bind(crm)
        .bind(wait.as_millis() as i64)
        .execute(self.pool())
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "CRM hold not shared with the other nodes.");
        }
    }
}

/// One request to `crm` counted, or how long to wait; serialized per CRM by a transaction
/// lock so two nodes never both take the last slot.
async fn take(s: &PgStore, crm: &str, per_minute: Option<u32>) -> Result<Option<Duration>> {
    let mut tx = s.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('casebridge.pace:' || $1, 0))")
        .bind(crm)
        .execute(&mut *tx)
        .await?;
    let r = sqlx::query("SELECT cb_now_ms() AS now, (SELECT until_ms FROM crm_holds WHERE crm = $1) AS held")
        .bind(crm)
        .fetch_one(&mut *tx)
        .await?;
    let now: i64 = r.get("now");
    if let Some(until) = r.get::<Option<i64>, _>("held").filter(|u| *u > now) {
        return Ok(Some(Duration::from_millis((until - now) as u64)));
    }
    if let Some(n) = per_minute {
        sqlx::query("DELETE FROM crm_pacing WHERE crm = $1 AND at_ms <= $2")
            .bind(crm)
            .bind(now - 60_000)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("SELECT COUNT(*) AS n, MIN(at_ms) AS oldest FROM crm_pacing WHERE crm = $1")
            .bind(crm)
            .fetch_one(&mut *tx)
            .await?;
        if r.get::<i64, _>("n") >= i64::from(n) {
            let oldest: i64 = r.get::<Option<i64>, _>("oldest").unwrap_or(now);
            return Ok(Some(Duration::from_millis((oldest + 60_000 - now).max(1) as u64)));
        }
        sqlx::query("INSERT INTO crm_pacing (crm, at_ms) VALUES ($1, $2)")
            .bind(crm)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(None)
}
