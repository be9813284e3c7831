//! SQLite implementation of [`OutboxStore`].

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::SqliteStore;
use rusqlite::{OptionalExtension, params};

use super::rows::{OUTBOX_COLUMNS, insert_timeline_r, outbox_row, outbox_row_r, set_ref_r};
use crate::outbox::fenced;
use crate::{Completed, OutboxRow, OutboxState, OutboxStore, Result, ts};

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn keys_busy(&self, keys: &[String]) -> Result<bool> {
        self.owned
            .read(|c| {
                // CROSS JOIN fixes the order: the key's rows first, then their outbox rows. Left to
                // itself (no statistics) SQLite walked every pending write for each key: 10,000
                // writes held back cut the end-to-end rate by 60 %.
                let mut q = c.prepare_cached(
                    "SELECT 1 FROM outbox_keys k CROSS JOIN outbox o ON o.id = k.outbox_id
                 WHERE k.key = ? AND o.state = 'pending' LIMIT 1",
                )?;
                for k in keys {
                    if q.exists([k])? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .await
    }

    async fn lane_pending(&self, lane: &str) -> Result<bool> {
        self.owned
            .read(|c| {
                Ok(c.prepare_cached("SELECT 1 FROM outbox WHERE lane = ? AND state = 'pending' LIMIT 1")?
                    .exists([lane])?)
            })
            .await
    }

    async fn claim_commands(
        &self,
        node: &str,
        now: DateTime<Utc>,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxRow>> {
        let now_ms = Utc::now().timestamp_millis();
        self.owned.write(|c| claim_r(c, node, now, now_ms, limit, lease_ms)).await
    }

    async fn lane_batch(&self, node: &str, head: &OutboxRow, limit: i64, lease_ms: i64) -> Result<Vec<OutboxRow>> {
        let now_ms = Utc::now().timestamp_millis();
        self.owned.write(|c| lane_batch_r(c, node, head, limit, now_ms, lease_ms)).await
    }

    async fn claim_lanes(
        &self,
        node: &str,
        now: DateTime<Utc>,
        limit: i64,
        batch: i64,
        lease_ms: i64,
    ) -> Result<Vec<Vec<OutboxRow>>> {
        let now_ms = Utc::now().timestamp_millis();
        // One commit for the heads and their batches: each commit rewrites the outbox's pages.
        self.owned
            .write(|c| {
                let mut lanes = Vec::new();
                for head in claim_r(c, node, now, now_ms, limit, lease_ms)? {
                    let rest = lane_batch_r(c, node, &head, batch - 1, now_ms, lease_ms)?;
                    let mut lane = vec![head];
                    lane.extend(rest);
                    lanes.push(lane);
                }
                Ok(lanes)
            })
            .await
    }

    async fn release_commands(&self, rows: &[OutboxRow]) -> Result<()> {
        self.owned
            .write(|c| {
                let mut q = c.prepare_cached(
                    "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0 WHERE id = ? AND fence = ?",
                )?;
                for r in rows {
                    q.execute(params![r.id, r.fence])?;
                }
                Ok(())
            })
            .await
    }

    async fn complete_command(&self, row: &OutboxRow, line: Entry, created: Option<(&str, &str)>) -> Result<()> {
        let created = created.map(|(k, id)| (k.to_string(), id.to_string()));
        self.complete_commands(&[Completed { row: row.clone(), line, created }]).await
    }

    async fn complete_commands(&self, done: &[Completed]) -> Result<()> {
        // Lanes that finish together share a commit (the writer's group commit), each in a
        // savepoint of its own: a lane taken over is refused alone.
        let now = ts(Utc::now());
        self.owned.write(|c| complete_batch_r(c, &now, done)).await
    }

    async fn in_one_commit<'a>(
        &'a self,
        work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>,
    ) -> Result<()> {
        self.owned.hold(work).await
    }

    fn one_writer(&self) -> bool {
        true
    }

    async fn retry_command(
        &self,
        row: &OutboxRow,
        error: &str,
        next: DateTime<Utc>,
        line: Option<Entry>,
    ) -> Result<()> {
        self.owned
            .write(|c| {
                let n = c
                    .prepare_cached(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,
                       lease_owner = NULL, lease_until_ms = 0
                     WHERE id = ? AND fence = ? AND state = 'pending'",
                    )?
                    .execute(params![error, ts(next), row.id, row.fence])?;
                fenced(n as u64, row)?;
                if let Some(line) = &line {
                    insert_timeline_r(c, &row.session_id, line)?;
                }
                Ok(())
            })
            .await
    }

    async fn park_command(&self, row: &OutboxRow, error: &str, line: Entry) -> Result<()> {
        self.owned
            .write(|c| {
                let n = c
                    .prepare_cached(
                        "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?,
                       lease_owner = NULL, lease_until_ms = 0
                     WHERE id = ? AND fence = ? AND state = 'pending'",
                    )?
                    .execute(params![error, row.id, row.fence])?;
                fenced(n as u64, row)?;
                insert_timeline_r(c, &row.session_id, &line)
            })
            .await
    }

    async fn list_commands(&self, state: OutboxState, limit: i64) -> Result<Vec<OutboxRow>> {
        // The state written out, so that SQLite sees the partial index for it: dead letters
        // have one; pending rows come from their lanes' index, sorted.
        let sql = match state {
            OutboxState::Pending => {
                "SELECT * FROM outbox INDEXED BY outbox_pending_lane WHERE state = 'pending' ORDER BY id LIMIT ?"
            }
            OutboxState::Dead => "SELECT * FROM outbox INDEXED BY outbox_dead WHERE state = 'dead' ORDER BY id LIMIT ?",
            OutboxState::Done => "SELECT * FROM outbox WHERE state = 'done' ORDER BY id LIMIT ?",
        };
        let rows = sqlx::query(sql).bind(limit).fetch_all(&self.read).await?;
        rows.iter().map(outbox_row).collect()
    }

    async fn outbox_counts(&self) -> Result<Vec<(OutboxState, i64)>> {
        // Kept by triggers (migration 0009): the cost does not grow with the outbox.
        let rows = sqlx::query("SELECT state, n FROM outbox_tally WHERE n <> 0").fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok((r.get::<String, _>("state").parse()?, r.get("n")))).collect()
    }

    async fn redrive_command(&self, id: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at = ?, lease_owner = NULL, lease_until_ms = 0 WHERE id = ? AND state = 'dead'")
            .bind(ts(Utc::now()))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn redrive_dead(&self) -> Result<u64> {
        let r = sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at = ?, lease_owner = NULL, lease_until_ms = 0 WHERE state = 'dead'")
            .bind(ts(Utc::now()))
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected())
    }

    async fn command_state(&self, key: &str) -> Result<Option<(OutboxState, i64, Option<String>)>> {
        let r = sqlx::query("SELECT state, attempts, last_error FROM outbox WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.read)
            .await?;
        r.map(|r| Ok((r.get::<String, _>("state").parse()?, r.get("attempts"), r.get("last_error")))).transpose()
    }

    async fn commands_settled(&self, keys: &[String]) -> Result<bool> {
        if keys.is_empty() {
            return Ok(true);
        }
        let sql = format!(
            "SELECT COUNT(*) FROM outbox WHERE key IN ({}) AND state = 'pending' AND attempts = 0",
            vec!["?"; keys.len()].join(", ")
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for k in keys {
            q = q.bind(k);
        }
        Ok(q.fetch_one(&self.read).await? == 0)
    }
}

/// Leases the due heads of lanes no node holds (see [`OutboxStore::claim_commands`]).
fn claim_r(
    c: &rusqlite::Connection,
    node: &str,
    now: DateTime<Utc>,
    now_ms: i64,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<OutboxRow>> {
    let heads: Vec<(i64, Option<String>)> = c
        .prepare_cached(
            // Due pending writes in time order (partial index), each the first of its lane and
            // its lane not leased: the cost follows the heads taken, not the pending writes.
            "SELECT o.id, o.lease_owner FROM outbox o INDEXED BY outbox_pending_due
             WHERE o.state = 'pending' AND o.next_attempt_at <= ?1 AND o.lease_until_ms < ?2
               AND NOT EXISTS (SELECT 1 FROM outbox p INDEXED BY outbox_pending_lane
                               WHERE p.lane = o.lane AND p.state = 'pending' AND p.id < o.id)
               AND NOT EXISTS (SELECT 1 FROM outbox l INDEXED BY outbox_pending_lane
                               WHERE l.lane = o.lane AND l.state = 'pending' AND l.lease_until_ms >= ?2)
             ORDER BY o.next_attempt_at, o.id LIMIT ?3",
        )?
        .query_map(params![ts(now), now_ms, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // Oldest write first among those taken, as on every backend.
    let mut heads = heads;
    heads.sort_unstable_by_key(|h| h.0);
    let mut lease = c.prepare_cached(&format!(
        "UPDATE outbox SET lease_owner = ?, lease_until_ms = ?, fence = fence + 1 WHERE id = ? RETURNING {OUTBOX_COLUMNS}"
    ))?;
    let mut out = Vec::with_capacity(heads.len());
    for (id, prev) in heads {
        let mut row = lease.query_row(params![node, now_ms + lease_ms, id], outbox_row_r)?;
        // A lease not given back (its node crashed or stalled) is taken over.
        row.taken_over = prev.is_some_and(|p| p != node);
        out.push(row);
    }
    Ok(out)
}

/// Leases the rows that go with a claimed head (see [`OutboxStore::lane_batch`]).
fn lane_batch_r(
    c: &rusqlite::Connection,
    node: &str,
    head: &OutboxRow,
    limit: i64,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Vec<OutboxRow>> {
    let rows: Vec<OutboxRow> = c
        .prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox INDEXED BY outbox_pending_lane WHERE lane = ? AND state = 'pending' AND id > ? ORDER BY id LIMIT ?"
        ))?
        .query_map(params![head.lane, head.id, limit], outbox_row_r)?
        .collect::<rusqlite::Result<_>>()?;
    let mut lease = c.prepare_cached(
        "UPDATE outbox SET lease_owner = ?, lease_until_ms = ?, fence = fence + 1 WHERE id = ? AND fence = ? RETURNING fence",
    )?;
    let mut out = Vec::new();
    for mut r in rows {
        if r.attempts > 0 {
            break;
        }
        match lease.query_row(params![node, now_ms + lease_ms, r.id, r.fence], |x| x.get(0)).optional()? {
            Some(f) => r.fence = f,
            None => break,
        }
        out.push(r);
    }
    Ok(out)
}

/// Records one lane's outcomes (see [`OutboxStore::complete_commands`]). A row taken over
/// fails the lane's write, whose savepoint then undoes the lane alone.
fn complete_batch_r(c: &rusqlite::Connection, now: &str, done: &[Completed]) -> Result<()> {
    let mut q = c.prepare_cached(
        "UPDATE outbox SET state = 'done', attempts = attempts + 1, done_at = ?, last_error = NULL,
           lease_owner = NULL, lease_until_ms = 0
         WHERE id = ? AND fence = ? AND state = 'pending'",
    )?;
    let mut keys = c.prepare_cached("DELETE FROM outbox_keys WHERE outbox_id = ?")?;
    for d in done {
        fenced(q.execute(params![now, d.row.id, d.row.fence])? as u64, &d.row)?;
        keys.execute([d.row.id])?;
        if let Some((key, crm_id)) = &d.created {
            set_ref_r(c, key, crm_id)?;
        }
        insert_timeline_r(c, &d.row.session_id, &d.line)?;
    }
    Ok(())
}
