//! SQLite implementation of [`AgentStore`].

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::SqliteStore;
use super::rows::{insert_command_r, insert_timeline_r, upsert_activity_r};
use crate::agents::*;
use crate::{EventStore, NewCommand, NewEvent, Result, StoreError, parse_ts, ts};

fn disposition_row(r: &sqlx::sqlite::SqliteRow) -> DispositionRow {
    DispositionRow {
        code: r.get("code"),
        label: r.get("label"),
        active: r.get::<i64, _>("active") != 0,
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

fn agent_row(r: &sqlx::sqlite::SqliteRow) -> AgentRow {
    AgentRow {
        id: r.get("id"),
        email: r.get("email"),
        name: r.get("name"),
        state: r.get("state"),
        version: r.get("version"),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

fn dial_row(r: &sqlx::sqlite::SqliteRow) -> DialRequestRow {
    DialRequestRow {
        id: r.get("id"),
        agent_id: r.get("agent_id"),
        phone: r.get("phone"),
        origin_record_id: r.get("origin_record_id"),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
    }
}

fn activity_row(r: &sqlx::sqlite::SqliteRow) -> ActivityRow {
    ActivityRow {
        id: r.get("id"),
        session_id: r.get("session_id"),
        kind: r.get("kind"),
        action: r.get("action"),
        person_id: r.get("person_id"),
        record_id: r.get("record_id"),
        related_by: r.get("related_by"),
        disposition: r.get("disposition"),
        label: r.get("label"),
        notes: r.get("notes"),
        agent_id: r.get("agent_id"),
        queue: r.get("queue"),
        channel: r.get("channel"),
        missed_reason: r.get("missed_reason"),
        revision: r.get("revision"),
        session_at: parse_ts(r.get::<String, _>("session_at").as_str()),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

const ACTIVITY_SELECT: &str =
    "SELECT p.*, CASE WHEN p.person_is_key = 1 THEN r.crm_id ELSE p.person_ref END AS person_id
     FROM platform_activities p LEFT JOIN crm_refs r ON p.person_is_key = 1 AND r.key = p.person_ref";

#[async_trait]
impl AgentStore for SqliteStore {
    async fn dispositions(&self) -> Result<Vec<DispositionRow>> {
        let rows = sqlx::query("SELECT * FROM dispositions ORDER BY code").fetch_all(&self.read).await?;
        Ok(rows.iter().map(disposition_row).collect())
    }

    async fn disposition(&self, code: &str) -> Result<Option<DispositionRow>> {
        let r = sqlx::query("SELECT * FROM dispositions WHERE code = ?").bind(code).fetch_optional(&self.read).await?;
        Ok(r.as_ref().map(disposition_row))
    }

    async fn disposition_create(&self, code: &str, label: &str) -> Result<DispositionRow> {
        let now = ts(Utc::now());
        let r = sqlx::query(
            "INSERT INTO dispositions (code, label, active, created_at, updated_at) VALUES (?, ?, 1, ?, ?) ON CONFLICT(code) DO NOTHING",
        )
        .bind(code)
        .bind(label)
        .bind(&now)
        .bind(&now)
        .execute(&self.write)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "disposition {code:?} exists; change it with PATCH /v1/dispositions/{code}"
            )));
        }
        self.disposition(code).await?.ok_or_else(|| StoreError::NotFound(code.into()))
    }

    async fn disposition_update(
        &self,
        code: &str,
        label: Option<&str>,
        active: Option<bool>,
    ) -> Result<Option<DispositionRow>> {
        let r = sqlx::query(
            "UPDATE dispositions SET label = COALESCE(?, label), active = COALESCE(?, active), updated_at = ? WHERE code = ?",
        )
        .bind(label)
        .bind(active)
        .bind(ts(Utc::now()))
        .bind(code)
        .execute(&self.write)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        self.disposition(code).await
    }

    async fn agent(&self, id: &str) -> Result<Option<AgentRow>> {
        // On the store's own reader: the rules worker asks for every agent whose session
        // ended, and a statement through sqlx costs two thread hand-offs.
        self.owned
            .read(|c| {
                use rusqlite::OptionalExtension;
                Ok(c.prepare_cached(
                    "SELECT id, email, name, state, version, created_at, updated_at FROM agents WHERE id = ?",
                )?
                .query_row([id], |r| {
                    Ok(AgentRow {
                        id: r.get(0)?,
                        email: r.get(1)?,
                        name: r.get(2)?,
                        state: r.get(3)?,
                        version: r.get(4)?,
                        created_at: parse_ts(&r.get::<_, String>(5)?),
                        updated_at: parse_ts(&r.get::<_, String>(6)?),
                    })
                })
                .optional()?)
            })
            .await
    }

    async fn agent_by_email(&self, email: &str) -> Result<Option<AgentRow>> {
        let r = sqlx::query("SELECT * FROM agents WHERE email_key = ?")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.write)
            .await?;
        Ok(r.as_ref().map(agent_row))
    }

    async fn agent_put(&self, id: &str, email: &str, name: Option<&str>) -> Result<(AgentRow, bool)> {
        let key = email.trim().to_lowercase();
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let other: Option<String> = sqlx::query_scalar("SELECT id FROM agents WHERE email_key = ? AND id <> ?")
            .bind(&key)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(o) = other {
            return Err(StoreError::Conflict(format!(
                "agent {o} already has the email {email}; an email identifies one agent on both sides"
            )));
        }
        let existed: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM agents WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
        let now = ts(Utc::now());
        sqlx::query(
            "INSERT INTO agents (id, email, email_key, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET email = excluded.email, email_key = excluded.email_key,
               name = COALESCE(excluded.name, name), updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(email.trim())
        .bind(&key)
        .bind(name)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM agents WHERE id = ?").bind(id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok((agent_row(&row), existed.is_none()))
    }

    async fn agent_ensure(&self, id: &str) -> Result<()> {
        let now = ts(Utc::now());
        // The email key must be unique: a placeholder no trimmed email can equal.
        sqlx::query(
            "INSERT INTO agents (id, email, email_key, created_at, updated_at) VALUES (?, '', ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        )
        .bind(id)
        .bind(format!(" id:{id}"))
        .bind(&now)
        .bind(&now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn agent_save(&self, id: &str, version: i64, state: &str, commands: &[NewCommand]) -> Result<bool> {
        // Through the main writer, like the rules' commits: a status change takes its turn
        // rather than sleep in SQLite's busy handler while they hold the file.
        self.owned
            .write(|c| {
                let now = ts(Utc::now());
                let n = c
                    .prepare_cached(
                        "UPDATE agents SET state = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
                    )?
                    .execute(rusqlite::params![state, now, id, version])?;
                if n == 0 {
                    return Ok(false);
                }
                for cmd in commands {
                    insert_command_r(c, cmd, &now)?;
                }
                Ok(true)
            })
            .await
    }

    async fn agent_busy(&self, agent_id: &str) -> Result<bool> {
        // A session not heard from for 4 hours (its end lost) does not keep the agent busy.
        let since = ts(Utc::now() - chrono::Duration::hours(4));
        let r: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sessions WHERE agent_id = ? AND over = 0 AND updated_at > ? LIMIT 1")
                .bind(agent_id)
                .bind(since)
                .fetch_optional(&self.write)
                .await?;
        Ok(r.is_some())
    }

    async fn dial_create(&self, d: &DialRequestRow, command: Option<&NewCommand>) -> Result<()> {
        // Through the main writer, as `agent_save`.
        self.owned
            .write(|c| {
                c.prepare_cached(
                    "INSERT INTO dial_requests (id, agent_id, phone, origin_record_id, created_at) VALUES (?, ?, ?, ?, ?)",
                )?
                .execute(rusqlite::params![d.id, d.agent_id, d.phone, d.origin_record_id, ts(d.created_at)])?;
                if let Some(cmd) = command {
                    insert_command_r(c, cmd, &ts(Utc::now()))?;
                }
                Ok(())
            })
            .await
    }

    async fn dial(&self, id: &str) -> Result<Option<DialRequestRow>> {
        let r = sqlx::query("SELECT * FROM dial_requests WHERE id = ?").bind(id).fetch_optional(&self.read).await?;
        Ok(r.as_ref().map(dial_row))
    }

    async fn wrapup_commit(
        &self,
        a: &NewActivity,
        timeline: &[Entry],
        commands: &[NewCommand],
        event: &NewEvent,
    ) -> Result<String> {
        // The main file's writer first, held until the writes are committed: the rules cannot
        // commit the event's step before them, so the writes it gives follow the wrap-up's in
        // the lane, as when the event was in the same file. Other writes through the main
        // writer queue for it meanwhile without holding a thread.
        self.owned
            .hold(async {
                // Then the event, in the events file (the two files cannot commit together):
                // should the rest not be stored, the agent is told so and saves again, and the
                // session data gets the wrap-up again; the other way round, a retry would send
                // the CRM writes twice.
                let outcome = self.ingest(std::slice::from_ref(event)).await?;
                if let Some(c) = outcome.conflicts.first() {
                    return Err(StoreError::Conflict(format!(
                        "the wrap-up's event id {} is taken by another event; nothing was stored: save the wrap-up again",
                        c.id
                    )));
                }
                // The agent is told it is saved: synced like event intake.
                self.owned
                    .durable(|c| {
                        upsert_activity_r(c, a, true)?;
                        for e in timeline {
                            insert_timeline_r(c, &a.session_id, e)?;
                        }
                        let now = ts(Utc::now());
                        for cmd in commands {
                            insert_command_r(c, cmd, &now)?;
                        }
                        Ok(c.prepare_cached("SELECT id FROM platform_activities WHERE ext_key = ?")?
                            .query_row([&a.ext_key], |r| r.get::<_, String>(0))?)
                    })
                    .await
            })
            .await?
    }

    async fn activities(&self, f: &ActivityFilter) -> Result<Vec<ActivityRow>> {
        let mut sql = format!("SELECT * FROM ({ACTIVITY_SELECT}) WHERE 1 = 1");
        if f.person_id.is_some() {
            sql.push_str(" AND person_id = ?");
        }
        if f.session_id.is_some() {
            sql.push_str(" AND session_id = ?");
        }
        if f.from.is_some() {
            sql.push_str(" AND session_at >= ?");
        }
        if f.to.is_some() {
            sql.push_str(" AND session_at < ?");
        }
        if !f.kinds.is_empty() {
            sql.push_str(&format!(" AND kind IN ({})", vec!["?"; f.kinds.len()].join(", ")));
        }
        sql.push_str(" ORDER BY session_at DESC, id DESC");
        let mut q = sqlx::query(&sql);
        if let Some(p) = &f.person_id {
            q = q.bind(p);
        }
        if let Some(s) = &f.session_id {
            q = q.bind(s);
        }
        if let Some(t) = f.from {
            q = q.bind(ts(t));
        }
        if let Some(t) = f.to {
            q = q.bind(ts(t));
        }
        for k in &f.kinds {
            q = q.bind(k);
        }
        let rows = q.fetch_all(&self.read).await?;
        Ok(rows.iter().map(activity_row).collect())
    }

    async fn enabled_fields(&self) -> Result<Vec<EnabledFieldRow>> {
        let rows = sqlx::query("SELECT * FROM custom_fields ORDER BY key").fetch_all(&self.read).await?;
        Ok(rows
            .iter()
            .map(|r| EnabledFieldRow {
                key: r.get("key"),
                crm_field: r.get("crm_field"),
                enabled_at: parse_ts(r.get::<String, _>("enabled_at").as_str()),
            })
            .collect())
    }

    async fn enable_field(&self, key: &str, crm_field: &str, at: DateTime<Utc>) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO custom_fields (key, crm_field, enabled_at) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING",
        )
        .bind(key)
        .bind(crm_field)
        .bind(ts(at))
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
