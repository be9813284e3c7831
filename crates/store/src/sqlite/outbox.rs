//! SQLite implementation of [`OutboxStore`].

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::SqliteStore;
use super::rows::{insert_timeline, outbox_row, set_ref};
use crate::outbox::fenced;
use crate::{OutboxRow, OutboxState, OutboxStore, Result, ts};

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn keys_busy(&self, keys: &[String]) -> Result<bool> {
        let mut conn = self.read.acquire().await?;
        for k in keys {
            let busy: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM outbox_keys k JOIN outbox o ON o.id = k.outbox_id WHERE k.key = ? AND o.state = 'pending' LIMIT 1",
            )
            .bind(k)
            .fetch_optional(&mut *conn)
            .await?;
            if busy.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn claim_commands(
        &self,
        node: &str,
        now: DateTime<Utc>,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxRow>> {
        let now_ms = Utc::now().timestamp_millis();
        let mut tx = self.write.begin().await?;
        let heads = sqlx::query(
            "SELECT o.id, o.lease_owner FROM outbox o
             WHERE o.state = 'pending' AND o.next_attempt_at <= ?1 AND o.lease_until_ms < ?2
               AND o.id = (SELECT MIN(id) FROM outbox p WHERE p.lane = o.lane AND p.state = 'pending')
               AND NOT EXISTS (SELECT 1 FROM outbox l WHERE l.lane = o.lane AND l.state = 'pending'
                               AND l.lease_until_ms >= ?2)
             ORDER BY o.id LIMIT ?3",
        )
        .bind(ts(now))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(heads.len());
        for h in heads {
            let prev: Option<String> = h.get("lease_owner");
            let row = sqlx::query(
                "UPDATE outbox SET lease_owner = ?, lease_until_ms = ?, fence = fence + 1 WHERE id = ? RETURNING *",
            )
            .bind(node)
            .bind(now_ms + lease_ms)
            .bind(h.get::<i64, _>("id"))
            .fetch_one(&mut *tx)
            .await?;
            let mut row = outbox_row(&row)?;
            // A lease not given back (its node crashed or stalled) is taken over.
            row.taken_over = prev.is_some_and(|p| p != node);
            out.push(row);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn lane_batch(&self, node: &str, head: &OutboxRow, limit: i64, lease_ms: i64) -> Result<Vec<OutboxRow>> {
        let now_ms = Utc::now().timestamp_millis();
        let rows =
            sqlx::query("SELECT * FROM outbox WHERE lane = ? AND state = 'pending' AND id > ? ORDER BY id LIMIT ?")
                .bind(&head.lane)
                .bind(head.id)
                .bind(limit)
                .fetch_all(&self.write)
                .await?;
        let mut out = Vec::new();
        for r in rows.iter().map(outbox_row) {
            let mut r = r?;
            if r.attempts > 0 {
                break;
            }
            let leased = sqlx::query(
                "UPDATE outbox SET lease_owner = ?, lease_until_ms = ?, fence = fence + 1 WHERE id = ? AND fence = ? RETURNING fence",
            )
            .bind(node)
            .bind(now_ms + lease_ms)
            .bind(r.id)
            .bind(r.fence)
            .fetch_optional(&self.write)
            .await?;
            match leased {
                Some(f) => r.fence = f.get("fence"),
                None => break,
            }
            out.push(r);
        }
        Ok(out)
    }

    async fn release_commands(&self, rows: &[OutboxRow]) -> Result<()> {
        for r in rows {
            sqlx::query("UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0 WHERE id = ? AND fence = ?")
                .bind(r.id)
                .bind(r.fence)
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    async fn complete_command(&self, row: &OutboxRow, line: Entry, created: Option<(&str, &str)>) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = 'done', attempts = attempts + 1, done_at = ?, last_error = NULL,
               lease_owner = NULL, lease_until_ms = 0
             WHERE id = ? AND fence = ? AND state = 'pending'",
        )
        .bind(ts(Utc::now()))
        .bind(row.id)
        .bind(row.fence)
        .execute(&mut *tx)
        .await?;
        fenced(r.rows_affected(), row)?;
        if let Some((key, crm_id)) = created {
            set_ref(&mut tx, key, crm_id).await?;
        }
        insert_timeline(&mut tx, &row.session_id, &line).await?;
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
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,
               lease_owner = NULL, lease_until_ms = 0
             WHERE id = ? AND fence = ? AND state = 'pending'",
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
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?,
               lease_owner = NULL, lease_until_ms = 0
             WHERE id = ? AND fence = ? AND state = 'pending'",
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
        let rows = sqlx::query("SELECT * FROM outbox WHERE state = ? ORDER BY id LIMIT ?")
            .bind(state.as_str())
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(outbox_row).collect()
    }

    async fn outbox_counts(&self) -> Result<Vec<(OutboxState, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state").fetch_all(&self.read).await?;
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
