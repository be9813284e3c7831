//! PostgreSQL implementation of [`SessionStore`].

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PgStore;
use super::rows::commit_steps_in;
use crate::{Result, SessionFilter, SessionGauges, SessionRow, SessionStore, StepCommit, entry_kind, parse_ts, ts};

#[async_trait]
impl SessionStore for PgStore {
    async fn load_session(&self, id: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query("SELECT body, account_id, record_id FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| SessionRow {
            body: r.get("body"),
            account_id: r.get("account_id"),
            record_id: r.get("record_id"),
        }))
    }

    async fn load_sessions(&self, ids: &[&str]) -> Result<std::collections::HashMap<String, String>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let rows =
            sqlx::query("SELECT id, body FROM sessions WHERE id = ANY($1)").bind(ids).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|r| (r.get("id"), r.get("body"))).collect())
    }

    async fn commit_steps(&self, steps: Vec<StepCommit>) -> Result<()> {
        let mut tries = 0;
        loop {
            match commit_steps_once(self, &steps).await {
                Err(e) if tries < 3 && super::retryable(&e) => tries += 1,
                other => return other,
            }
        }
    }

    async fn timeline(&self, session_id: &str) -> Result<Vec<Entry>> {
        let rows = sqlx::query("SELECT at, kind, summary, rule, native FROM timeline WHERE session_id = $1 ORDER BY n")
            .bind(session_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| Entry {
                at: parse_ts(r.get::<String, _>("at").as_str()),
                kind: entry_kind(r.get::<String, _>("kind").as_str()),
                summary: r.get("summary"),
                rule: r.get("rule"),
                native: r.get::<Option<String>, _>("native").and_then(|n| serde_json::from_str(&n).ok()),
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
             WHERE account_id = $1 AND (COALESCE(created_at, '') < $2 OR (COALESCE(created_at, '') = $3 AND id < $4) OR $5 = '')
             ORDER BY c DESC, id DESC LIMIT $6",
        )
        .bind(account_id)
        .bind(&c_at)
        .bind(&c_at)
        .bind(&c_id)
        .bind(if cursor.is_some() { "x" } else { "" })
        .bind(limit)
        .fetch_all(self.pool())
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

    async fn list_sessions(&self, f: &SessionFilter) -> Result<Vec<(String, SessionRow)>> {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT id, body, account_id, record_id, started_at FROM sessions WHERE 1 = 1",
        );
        if let Some(p) = &f.phase {
            q.push(" AND phase = ").push_bind(p.clone());
        }
        if let Some(o) = &f.record_outcome {
            q.push(" AND record_outcome = ").push_bind(o.clone());
        }
        if let Some(a) = &f.account_id {
            q.push(" AND account_id = ").push_bind(a.clone());
        }
        if let Some(p) = &f.phone {
            q.push(" AND phone = ").push_bind(p.clone());
        }
        if let Some(t) = f.from {
            q.push(" AND started_at >= ").push_bind(ts(t));
        }
        if let Some(t) = f.to {
            q.push(" AND started_at < ").push_bind(ts(t));
        }
        if let Some((c_at, c_id)) = f.cursor.as_deref().and_then(|c| c.split_once('|')) {
            q.push(" AND (started_at < ").push_bind(c_at.to_string());
            q.push(" OR (started_at = ").push_bind(c_at.to_string());
            q.push(" AND id < ").push_bind(c_id.to_string()).push("))");
        }
        q.push(" ORDER BY started_at DESC, id DESC LIMIT ").push_bind(f.limit.max(0));
        let rows = q.build().fetch_all(self.pool()).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let cur = format!("{}|{}", r.get::<String, _>("started_at"), r.get::<String, _>("id"));
                (
                    cur,
                    SessionRow { body: r.get("body"), account_id: r.get("account_id"), record_id: r.get("record_id") },
                )
            })
            .collect())
    }

    async fn session_gauges(&self, stuck_before: DateTime<Utc>) -> Result<SessionGauges> {
        let waiting: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE phase = 'waiting'").fetch_one(self.pool()).await?;
        let stuck: i64 =
            sqlx::query_scalar("SELECT COUNT(DISTINCT session_id) FROM events WHERE NOT applied AND received_at < $1")
                .bind(ts(stuck_before))
                .fetch_one(self.pool())
                .await?;
        Ok(SessionGauges { waiting, stuck })
    }

    async fn session_settled(&self, session_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            // `NOT applied`: the index of waiting events by session (migration 0004).
            "SELECT (SELECT COUNT(*) FROM events WHERE session_id = $1 AND NOT applied) + (SELECT COUNT(*) FROM outbox WHERE session_id = $2 AND state = 'pending' AND attempts = 0)",
        )
        .bind(session_id)
        .bind(session_id)
        .fetch_one(self.pool())
        .await?;
        Ok(n == 0)
    }

    async fn ref_get(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT crm_id FROM crm_refs WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn ref_set(&self, key: &str, crm_id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        super::rows::set_refs(&mut tx, &[(key, crm_id)]).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One attempt of [`SessionStore::commit_steps`].
async fn commit_steps_once(s: &PgStore, steps: &[StepCommit]) -> Result<()> {
    let mut tx = s.pool().begin().await?;
    commit_steps_in(&mut tx, steps).await?;
    tx.commit().await?;
    Ok(())
}
