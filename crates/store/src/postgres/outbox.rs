//! PostgreSQL implementation of [`OutboxStore`].

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PgStore;
use super::rows::{insert_timeline, outbox_row, set_ref};
use crate::{OutboxRow, OutboxState, OutboxStore, Result, ts};

#[async_trait]
impl OutboxStore for PgStore {
    async fn keys_busy(&self, keys: &[String]) -> Result<bool> {
        if keys.is_empty() {
            return Ok(false);
        }
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM outbox_keys k JOIN outbox o ON o.id = k.outbox_id WHERE k.key = ANY($1) AND o.state = 'pending')",
        )
        .bind(keys)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn claim_commands(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT o.* FROM outbox o
             WHERE o.state = 'pending' AND o.next_attempt_at <= $1
               AND o.id = (SELECT MIN(id) FROM outbox p WHERE p.lane = o.lane AND p.state = 'pending')
             ORDER BY o.id LIMIT $2",
        )
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    async fn lane_pending(&self, lane: &str, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query("SELECT * FROM outbox WHERE lane = $1 AND state = 'pending' ORDER BY id LIMIT $2")
            .bind(lane)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(outbox_row).collect()
    }

    async fn complete_command(&self, row: &OutboxRow, line: Entry, created: Option<(&str, &str)>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if let Some((key, crm_id)) = created {
            set_ref(&mut tx, key, crm_id).await?;
        }
        sqlx::query(
            "UPDATE outbox SET state = 'done', attempts = attempts + 1, done_at = $1, last_error = NULL WHERE id = $2",
        )
        .bind(ts(Utc::now()))
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3")
            .bind(error)
            .bind(ts(next))
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        if let Some(line) = line {
            insert_timeline(&mut tx, &row.session_id, &line).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn park_command(&self, row: &OutboxRow, error: &str, line: Entry) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        insert_timeline(&mut tx, &row.session_id, &line).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_commands(&self, state: OutboxState, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query("SELECT * FROM outbox WHERE state = $1 ORDER BY id LIMIT $2")
            .bind(state.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(outbox_row).collect()
    }

    async fn outbox_counts(&self) -> Result<Vec<(OutboxState, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.get::<String, _>("state").parse()?, r.get("n")))).collect()
    }

    async fn redrive_command(&self, id: i64) -> Result<bool> {
        let r =
            sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at = $1 WHERE id = $2 AND state = 'dead'")
                .bind(ts(Utc::now()))
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn redrive_dead(&self) -> Result<u64> {
        let r = sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at = $1 WHERE state = 'dead'")
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn command_state(&self, key: &str) -> Result<Option<(OutboxState, i64, Option<String>)>> {
        let r = sqlx::query("SELECT state, attempts, last_error FROM outbox WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
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
        .fetch_one(&self.pool)
        .await?;
        Ok(n == 0)
    }
}
