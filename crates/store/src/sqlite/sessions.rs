//! SQLite implementation of [`SessionStore`].

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use sqlx::Row;

use super::SqliteStore;
use super::rows::commit_steps_on;
use crate::{Result, SessionFilter, SessionGauges, SessionRow, SessionStore, StepCommit, entry_kind, parse_ts, ts};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn load_session(&self, id: &str) -> Result<Option<SessionRow>> {
        self.owned
            .read(|c| {
                Ok(c.prepare_cached("SELECT body, account_id, record_id FROM sessions WHERE id = ?")?
                    .query_row([id], |r| {
                        Ok(SessionRow { body: r.get(0)?, account_id: r.get(1)?, record_id: r.get(2)? })
                    })
                    .optional()?)
            })
            .await
    }

    async fn load_sessions(&self, ids: &[&str]) -> Result<std::collections::HashMap<String, String>> {
        self.owned
            .read(|c| {
                // One read transaction: its lock and page cache serve every id (each statement
                // on its own would take the lock and check the cache again).
                // (Inside a held writer's transaction, that one.)
                let own = c.is_autocommit();
                if own {
                    super::direct::run_cached(c, "BEGIN")?;
                }
                let read = || -> Result<std::collections::HashMap<String, String>> {
                    let mut q = c.prepare_cached("SELECT body FROM sessions WHERE id = ?")?;
                    let mut out = std::collections::HashMap::with_capacity(ids.len());
                    for id in ids {
                        if let Some(body) = q.query_row([id], |r| r.get::<_, String>(0)).optional()? {
                            out.insert((*id).to_string(), body);
                        }
                    }
                    Ok(out)
                };
                let out = read();
                if own {
                    super::direct::run_cached(c, "COMMIT")?;
                }
                out
            })
            .await
    }

    async fn commit_steps(&self, steps: Vec<StepCommit>) -> Result<()> {
        let out = commit_steps_on(&self.owned, &self.unapplied, &steps).await;
        if let Err(crate::StoreError::Fenced(_)) = &out {
            // An event already applied in the stored state must not stay in the unapplied
            // set, or every later batch would start with it and fail the same way.
            // Read as committed: inside a hold the failed commit undid the hold's transaction.
            let seqs: Vec<i64> = steps.iter().flat_map(|s| s.event_seqs.iter().copied()).collect();
            match self.owned.read_committed(|c| applied_of(c, &seqs)).await {
                Ok(applied) => self.unapplied.committed(&applied),
                Err(e) => tracing::warn!(error = %e, "Applied events not read back after a refused rules commit."),
            }
        }
        out
    }

    async fn timeline(&self, session_id: &str) -> Result<Vec<Entry>> {
        self.owned
            .read(|c| {
                Ok(c.prepare_cached(
                    "SELECT at, kind, summary, rule, native FROM timeline WHERE session_id = ? ORDER BY n",
                )?
                .query_map([session_id], |r| {
                    Ok(Entry {
                        at: parse_ts(r.get::<_, String>(0)?.as_str()),
                        kind: entry_kind(r.get::<_, String>(1)?.as_str()),
                        summary: r.get(2)?,
                        rule: r.get(3)?,
                        native: r.get::<_, Option<String>>(4)?.and_then(|n| serde_json::from_str(&n).ok()),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?)
            })
            .await
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

    async fn list_sessions(&self, f: &SessionFilter) -> Result<Vec<(String, SessionRow)>> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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
        let rows = q.build().fetch_all(&self.read).await?;
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
            sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE phase = 'waiting'").fetch_one(&self.read).await?;
        self.unapplied.refresh(&self.owned, &self.events).await?;
        let stuck = self.unapplied.sessions_received_before(&ts(stuck_before));
        Ok(SessionGauges { waiting, stuck })
    }

    async fn session_settled(&self, session_id: &str) -> Result<bool> {
        self.unapplied.refresh(&self.owned, &self.events).await?;
        let (read, cursor) = self.unapplied.has_session(session_id);
        if read {
            return Ok(false);
        }
        // Events past the cursor: those whose sync is still under way.
        let later: Option<i64> = self
            .events
            .read(|c| {
                Ok(c.prepare_cached("SELECT seq FROM events WHERE seq > ? AND session_id = ? LIMIT 1")?
                    .query_row(rusqlite::params![cursor, session_id], |r| r.get(0))
                    .optional()?)
            })
            .await?;
        if later.is_some() {
            return Ok(false);
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE session_id = ? AND state = 'pending' AND attempts = 0",
        )
        .bind(session_id)
        .fetch_one(&self.read)
        .await?;
        Ok(n == 0)
    }

    async fn ref_get(&self, key: &str) -> Result<Option<String>> {
        self.owned
            .read(|c| {
                Ok(c.prepare_cached("SELECT crm_id FROM crm_refs WHERE key = ?")?
                    .query_row([key], |r| r.get(0))
                    .optional()?)
            })
            .await
    }

    async fn ref_set(&self, key: &str, crm_id: &str) -> Result<()> {
        self.owned.write(|c| super::rows::set_ref_r(c, key, crm_id)).await
    }
}

/// Which of `seqs` the stored state records applied.
fn applied_of(c: &rusqlite::Connection, seqs: &[i64]) -> Result<Vec<i64>> {
    let mark: i64 = c.prepare_cached("SELECT seq FROM applied_mark")?.query_row([], |r| r.get(0))?;
    let mut listed = c.prepare_cached("SELECT 1 FROM applied_events WHERE seq = ?")?;
    let mut held = c.prepare_cached("SELECT 1 FROM held_events WHERE seq = ?")?;
    let mut out = Vec::new();
    for &seq in seqs {
        let applied = if seq > mark {
            listed.query_row([seq], |_| Ok(())).optional()?.is_some()
        } else {
            held.query_row([seq], |_| Ok(())).optional()?.is_none()
        };
        if applied {
            out.push(seq);
        }
    }
    Ok(out)
}
