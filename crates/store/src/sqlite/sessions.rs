//! SQLite implementation of [`SessionStore`].

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use sqlx::Row;

use super::SqliteStore;
use super::rows::commit_one;
use crate::{Result, SessionRow, SessionStore, StepCommit, entry_kind, parse_ts};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn load_session(&self, id: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query("SELECT body, account_id, record_id FROM sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| SessionRow {
            body: r.get("body"),
            account_id: r.get("account_id"),
            record_id: r.get("record_id"),
        }))
    }

    async fn commit_steps(&self, steps: Vec<StepCommit>) -> Result<()> {
        let mut tx = self.write.begin().await?;
        for c in &steps {
            commit_one(&mut tx, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn timeline(&self, session_id: &str) -> Result<Vec<Entry>> {
        let rows = sqlx::query("SELECT at, kind, summary, rule FROM timeline WHERE session_id = ? ORDER BY n")
            .bind(session_id)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Entry {
                at: parse_ts(r.get::<String, _>("at").as_str()),
                kind: entry_kind(r.get::<String, _>("kind").as_str()),
                summary: r.get("summary"),
                rule: r.get("rule"),
            })
            .collect())
    }

    async fn sessions_by_account(
        &self,
        account_id: &str,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<Vec<(String, SessionRow)>> {
        let (c_at, c_id) = match cursor.and_then(|c| c.split_once('|')) {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => ("\u{10FFFF}".to_string(), String::new()),
        };
        let rows = sqlx::query(
            "SELECT id, body, account_id, record_id, COALESCE(created_at, '') AS c FROM sessions
             WHERE account_id = ? AND (COALESCE(created_at, '') < ? OR (COALESCE(created_at, '') = ? AND id < ?) OR ? = '')
             ORDER BY c DESC, id DESC LIMIT ?",
        )
        .bind(account_id)
        .bind(&c_at)
        .bind(&c_at)
        .bind(&c_id)
        .bind(if cursor.is_some() { "x" } else { "" })
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let cur = format!("{}|{}", r.get::<String, _>("c"), r.get::<String, _>("id"));
                (
                    cur,
                    SessionRow { body: r.get("body"), account_id: r.get("account_id"), record_id: r.get("record_id") },
                )
            })
            .collect())
    }

    async fn session_settled(&self, session_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM events WHERE session_id = ? AND applied = 0) + (SELECT COUNT(*) FROM outbox WHERE session_id = ? AND state = 'pending' AND attempts = 0)",
        )
        .bind(session_id)
        .bind(session_id)
        .fetch_one(&self.read)
        .await?;
        Ok(n == 0)
    }

    async fn ref_get(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT crm_id FROM crm_refs WHERE key = ?").bind(key).fetch_optional(&self.read).await?)
    }
}
