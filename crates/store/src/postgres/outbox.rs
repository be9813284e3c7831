//! PostgreSQL implementation of [`OutboxStore`].

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PgStore;
use super::rows::{claimed_row, insert_timeline, insert_timeline_lines, outbox_row, set_refs};
use crate::outbox::fenced;
use crate::{Completed, OutboxRow, OutboxState, OutboxStore, Result, ts};

/// Whether a write is pending for any of the keys (`$1`). The write's state is read per key
/// row, by a subquery the planner cannot turn into a join: as a join, whenever its statistics
/// had seen few pending writes it scanned every pending write and matched the keys against
/// them (thousands of pages a check under load, growing with the writes pending).
const KEYS_BUSY: &str = "SELECT EXISTS (SELECT 1 FROM outbox_keys k WHERE k.key = ANY($1)
    AND (SELECT o.state FROM outbox o WHERE o.id = k.outbox_id) = 'pending')";

#[async_trait]
impl OutboxStore for PgStore {
    async fn lane_pending(&self, lane: &str) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM outbox WHERE lane = $1 AND state = 'pending')")
            .bind(lane)
            .fetch_one(self.pool())
            .await?)
    }

    async fn keys_busy(&self, keys: &[String]) -> Result<bool> {
        if keys.is_empty() {
            return Ok(false);
        }
        Ok(sqlx::query_scalar(KEYS_BUSY).bind(keys).fetch_one(self.pool()).await?)
    }

    async fn claim_commands(
        &self,
        node: &str,
        now: DateTime<Utc>,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxRow>> {
        let mut conn = self.pool().acquire().await?;
        claim_heads(&mut conn, node, now, limit, lease_ms).await
    }

    async fn claim_lanes(
        &self,
        node: &str,
        now: DateTime<Utc>,
        limit: i64,
        batch: i64,
        lease_ms: i64,
    ) -> Result<Vec<Vec<OutboxRow>>> {
        // Two statements in one transaction, whatever the number of lanes: the heads (locked
        // until the commit), then every head's batch.
        let mut tx = self.pool().begin().await?;
        let heads = claim_heads(&mut tx, node, now, limit, lease_ms).await?;
        if heads.is_empty() {
            tx.commit().await?;
            return Ok(vec![]);
        }
        let ids: Vec<i64> = heads.iter().map(|h| h.id).collect();
        let lanes: Vec<&str> = heads.iter().map(|h| h.lane.as_str()).collect();
        // A lane's next pending rows, in order, up to the first tried one (which waits for its
        // own turn) and at most `batch - 1`.
        let rows = sqlx::query(
            "WITH h AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS h(head_id, lane)),
                  cand AS (
                    SELECT o.id,
                           row_number() OVER w AS n,
                           count(*) FILTER (WHERE o.attempts > 0) OVER w AS tried
                    FROM h JOIN outbox o ON o.lane = h.lane AND o.state = 'pending' AND o.id > h.head_id
                    WINDOW w AS (PARTITION BY o.lane ORDER BY o.id))
             UPDATE outbox SET lease_owner = $3, lease_until_ms = cb_now_ms() + $4, fence = outbox.fence + 1
             FROM cand WHERE outbox.id = cand.id AND cand.n < $5 AND cand.tried = 0
             RETURNING outbox.*, FALSE AS taken_over",
        )
        .bind(&ids)
        .bind(&lanes)
        .bind(node)
        .bind(lease_ms)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut rest = rows.iter().map(claimed_row).collect::<Result<Vec<_>>>()?;
        rest.sort_by_key(|r| r.id);
        let mut out: Vec<Vec<OutboxRow>> = heads.into_iter().map(|h| vec![h]).collect();
        let at: std::collections::HashMap<String, usize> =
            out.iter().enumerate().map(|(i, l)| (l[0].lane.clone(), i)).collect();
        for r in rest {
            if let Some(&i) = at.get(&r.lane) {
                out[i].push(r);
            }
        }
        Ok(out)
    }

    async fn lane_batch(&self, node: &str, head: &OutboxRow, limit: i64, lease_ms: i64) -> Result<Vec<OutboxRow>> {
        let next = sqlx::query(
            "SELECT id, attempts FROM outbox WHERE lane = $1 AND state = 'pending' AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(&head.lane)
        .bind(head.id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let ids: Vec<i64> =
            next.iter().take_while(|r| r.get::<i64, _>("attempts") == 0).map(|r| r.get::<i64, _>("id")).collect();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        // Only while the head is still ours: the lane is this node's to deliver.
        let rows = sqlx::query(
            "UPDATE outbox SET lease_owner = $1, lease_until_ms = cb_now_ms() + $2, fence = fence + 1
             WHERE id = ANY($3) AND state = 'pending' AND attempts = 0
               AND EXISTS (SELECT 1 FROM outbox h WHERE h.id = $4 AND h.fence = $5 AND h.state = 'pending')
             RETURNING *, FALSE AS taken_over",
        )
        .bind(node)
        .bind(lease_ms)
        .bind(&ids)
        .bind(head.id)
        .bind(head.fence)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows.iter().map(claimed_row).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| r.id);
        // In order and without a gap.
        let n = out.iter().zip(&ids).take_while(|(r, id)| r.id == **id).count();
        if n < out.len() {
            self.release_commands(&out[n..]).await?;
            out.truncate(n);
        }
        Ok(out)
    }

    async fn release_commands(&self, rows: &[OutboxRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let fences: Vec<i64> = rows.iter().map(|r| r.fence).collect();
        sqlx::query(
            "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0
             FROM unnest($1::bigint[], $2::bigint[]) AS u(id, fence)
             WHERE outbox.id = u.id AND outbox.fence = u.fence",
        )
        .bind(ids)
        .bind(fences)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn complete_command(&self, row: &OutboxRow, line: Entry, created: Option<(&str, &str)>) -> Result<()> {
        let created = created.map(|(k, id)| (k.to_string(), id.to_string()));
        self.complete_commands(&[Completed { row: row.clone(), line, created }]).await
    }

    async fn complete_commands(&self, done: &[Completed]) -> Result<()> {
        // One commit for the lane's batch, as on SQLite, in a few statements.
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        let ids: Vec<i64> = done.iter().map(|d| d.row.id).collect();
        let fences: Vec<i64> = done.iter().map(|d| d.row.fence).collect();
        let marked: Vec<i64> = sqlx::query_scalar(
            "UPDATE outbox SET state = 'done', attempts = attempts + 1, done_at = $1, last_error = NULL,
               lease_owner = NULL, lease_until_ms = 0
             FROM unnest($2::bigint[], $3::bigint[]) AS d(id, fence)
             WHERE outbox.id = d.id AND outbox.fence = d.fence AND outbox.state = 'pending'
             RETURNING outbox.id",
        )
        .bind(ts(Utc::now()))
        .bind(&ids)
        .bind(&fences)
        .fetch_all(&mut *tx)
        .await?;
        if let Some(d) = done.iter().find(|d| !marked.contains(&d.row.id)) {
            fenced(0, &d.row)?;
        }
        sqlx::query("DELETE FROM outbox_keys WHERE outbox_id = ANY($1)").bind(&ids).execute(&mut *tx).await?;
        let created: Vec<(&str, &str)> =
            done.iter().filter_map(|d| d.created.as_ref().map(|(k, id)| (k.as_str(), id.as_str()))).collect();
        set_refs(&mut tx, &created).await?;
        let lines: Vec<(&str, &Entry)> = done.iter().map(|d| (d.row.session_id.as_str(), &d.line)).collect();
        insert_timeline_lines(&mut tx, &lines).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retry_command(
        &self,
        row: &OutboxRow,
        error: &str,
        next: DateTime<Utc>,
        line: Option<Entry>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2,
               lease_owner = NULL, lease_until_ms = 0
             WHERE id = $3 AND fence = $4 AND state = 'pending'",
        )
        .bind(error)
        .bind(ts(next))
        .bind(row.id)
        .bind(row.fence)
        .execute(&mut *tx)
        .await?;
        fenced(r.rows_affected(), row)?;
        if let Some(line) = line {
            insert_timeline(&mut tx, &row.session_id, &line).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn park_command(&self, row: &OutboxRow, error: &str, line: Entry) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = $1,
               lease_owner = NULL, lease_until_ms = 0
             WHERE id = $2 AND fence = $3 AND state = 'pending'",
        )
        .bind(error)
        .bind(row.id)
        .bind(row.fence)
        .execute(&mut *tx)
        .await?;
        fenced(r.rows_affected(), row)?;
        insert_timeline(&mut tx, &row.session_id, &line).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_commands(&self, state: OutboxState, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query("SELECT * FROM outbox WHERE state = $1 ORDER BY id LIMIT $2")
            .bind(state.as_str())
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(outbox_row).collect()
    }

    async fn outbox_counts(&self) -> Result<Vec<(OutboxState, i64)>> {
        // Kept by triggers (migration 0003): the cost does not grow with the outbox.
        let rows = sqlx::query(
            "SELECT state, SUM(n)::BIGINT AS n FROM outbox_tally GROUP BY state HAVING SUM(n) <> 0 ORDER BY state",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok((r.get::<String, _>("state").parse()?, r.get("n")))).collect()
    }

    async fn redrive_command(&self, id: i64) -> Result<bool> {
        let r =
            sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at = $1, lease_owner = NULL, lease_until_ms = 0 WHERE id = $2 AND state = 'dead'")
                .bind(ts(Utc::now()))
                .bind(id)
                .execute(self.pool())
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn redrive_dead(&self) -> Result<u64> {
        let r = sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at = $1, lease_owner = NULL, lease_until_ms = 0 WHERE state = 'dead'")
            .bind(ts(Utc::now()))
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    async fn command_state(&self, key: &str) -> Result<Option<(OutboxState, i64, Option<String>)>> {
        let r = sqlx::query("SELECT state, attempts, last_error FROM outbox WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        r.map(|r| Ok((r.get::<String, _>("state").parse()?, r.get("attempts"), r.get("last_error")))).transpose()
    }

    async fn commands_settled(&self, keys: &[String]) -> Result<bool> {
        if keys.is_empty() {
            return Ok(true);
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE key = ANY($1) AND state = 'pending' AND attempts = 0",
        )
        .bind(keys)
        .fetch_one(self.pool())
        .await?;
        Ok(n == 0)
    }
}

/// Leases the due heads of lanes no node holds (see [`OutboxStore::claim_commands`]).
async fn claim_heads(
    conn: &mut sqlx::PgConnection,
    node: &str,
    now: DateTime<Utc>,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<OutboxRow>> {
    // SKIP LOCKED: two nodes claiming at once take different lanes instead of waiting.
    let rows = sqlx::query(
        "WITH heads AS (
            SELECT o.id, o.lease_owner AS prev_owner, o.lease_until_ms AS prev_until FROM outbox o
            WHERE o.state = 'pending' AND o.next_attempt_at <= $1 AND o.lease_until_ms < cb_now_ms()
              AND o.id = (SELECT MIN(id) FROM outbox p WHERE p.lane = o.lane AND p.state = 'pending')
              AND NOT EXISTS (SELECT 1 FROM outbox l WHERE l.lane = o.lane AND l.state = 'pending'
                              AND l.lease_until_ms >= cb_now_ms())
            ORDER BY o.next_attempt_at, o.id LIMIT $2
            FOR UPDATE OF o SKIP LOCKED)
         UPDATE outbox SET lease_owner = $3, lease_until_ms = cb_now_ms() + $4, fence = outbox.fence + 1
         FROM heads WHERE outbox.id = heads.id
         RETURNING outbox.*, (heads.prev_owner IS NOT NULL AND heads.prev_until > 0 AND heads.prev_owner <> $3) AS taken_over",
    )
    .bind(ts(now))
    .bind(limit)
    .bind(node)
    .bind(lease_ms)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = rows.iter().map(claimed_row).collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|r| r.id);
    Ok(out)
}

#[cfg(all(test, feature = "test-server"))]
mod tests {
    use super::KEYS_BUSY;
    use crate::{OutboxStore, Store};

    /// The busy-keys check reads the same few pages with thousands of writes pending as with
    /// none, even when the table's statistics were taken while few writes were pending.
    #[tokio::test]
    async fn keys_busy_reads_few_pages_with_many_writes_pending() {
        let Some(db) = crate::testing::fresh_database_or_skip("keys_busy_reads_few_pages").await else { return };
        let store = super::PgStore::open(&db.url).await.expect("open");
        store.migrate().await.expect("migrate");
        let pool = store.pool().clone();
        // Written and done, their keys gone (as completion leaves them); analyzed so.
        sqlx::query(
            "INSERT INTO outbox (key, lane, session_id, op, state, next_attempt_at, created_at)
             SELECT 'w' || n, 'lane' || n, 's' || n, '{}', 'done', '2026-12-01T10:00:00Z', '2026-12-01T10:00:00Z'
             FROM generate_series(1, 2000) AS n",
        )
        .execute(&pool)
        .await
        .expect("done writes");
        sqlx::query("ANALYZE outbox").execute(&pool).await.expect("analyze");
        sqlx::query("ANALYZE outbox_keys").execute(&pool).await.expect("analyze");
        // Then a burst: 6,000 writes pending, each with a key.
        sqlx::query(
            "WITH o AS (INSERT INTO outbox (key, lane, session_id, op, state, next_attempt_at, created_at)
               SELECT 'w' || n, 'lane' || n, 's' || n, '{}', 'pending', '2026-12-01T10:00:00Z', '2026-12-01T10:00:00Z'
               FROM generate_series(2001, 8000) AS n RETURNING id, key)
             INSERT INTO outbox_keys (key, outbox_id) SELECT 'phone:' || o.key, o.id FROM o",
        )
        .execute(&pool)
        .await
        .expect("pending writes");

        assert!(store.keys_busy(&["phone:w7000".into()]).await.expect("busy"));
        assert!(!store.keys_busy(&["phone:w1".into(), "phone:none".into()]).await.expect("busy"));
        let plan: serde_json::Value =
            sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {KEYS_BUSY}"))
                .bind(vec!["phone:none".to_string(), "phone:w7000".to_string()])
                .fetch_one(&pool)
                .await
                .expect("explain");
        let pages = plan[0]["Plan"]["Shared Hit Blocks"].as_i64().unwrap_or(0)
            + plan[0]["Plan"]["Shared Read Blocks"].as_i64().unwrap_or(0);
        assert!(pages < 100, "the check read {pages} pages with 6,000 writes pending: {plan}");
    }
}
