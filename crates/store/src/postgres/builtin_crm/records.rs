//! The built-in CRM's records and what hangs on them: notes, attachments, activities and
//! session objects.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{activity_row, record_row};
use crate::postgres::PgStore;
use crate::postgres::rows::next_id;
use crate::{Result, StoreError, parse_ts, ts};
use casebridge_crm::builtin::storage::{
    CrmActivity, CrmAttachment, CrmNote, CrmRecord, CrmSessionObject, NewRecord, RecordFilter, is_closed_status,
};

async fn touch(tx: &mut sqlx::PgConnection, id: &str, at: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE crm_records SET updated_at = $1 WHERE id = $2").bind(ts(at)).bind(id).execute(&mut *tx).await?;
    Ok(())
}

impl PgStore {
    async fn sessions_of(&self, record_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT session_id FROM crm_record_sessions WHERE record_id = $1 ORDER BY added_at, session_id",
        )
        .bind(record_id)
        .fetch_all(self.pool())
        .await?)
    }

    async fn record_by(&self, col: &str, v: &str) -> Result<Option<CrmRecord>> {
        let sql = format!("SELECT * FROM crm_records WHERE {col} = $1");
        let row = sqlx::query(&sql).bind(v).fetch_optional(self.pool()).await?;
        match row {
            Some(r) => {
                let id: String = r.get("id");
                let s = self.sessions_of(&id).await?;
                Ok(Some(record_row(&r, s)))
            }
            None => Ok(None),
        }
    }

    /// Fails with NotFound unless the record exists (one indexed lookup).
    async fn record_must_exist(&self, id: &str) -> Result<()> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM crm_records WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("record {id} does not exist"))),
        }
    }

    async fn require_record(&self, id: &str) -> Result<CrmRecord> {
        self.record_by("id", id).await?.ok_or_else(|| StoreError::NotFound(format!("record {id} does not exist")))
    }

    pub(super) async fn create_record(&self, r: NewRecord) -> Result<(CrmRecord, bool)> {
        if let Some(k) = &r.ext_key
            && let Some(rec) = self.record_by("ext_key", k).await?
        {
            return Ok((rec, false));
        }
        let mut tx = self.pool().begin().await?;
        let id = match &r.id {
            Some(id) => id.clone(),
            None => next_id(&mut tx, "crm_records", "rec_").await?,
        };
        let status = r.status.clone().unwrap_or_else(|| "new".into());
        let at = ts(r.at);
        let closed_at =
            if is_closed_status(&status) { Some(r.closed_at.map(ts).unwrap_or_else(|| at.clone())) } else { None };
        let inserted = sqlx::query(
            "INSERT INTO crm_records (id, ext_key, account_id, title, status, closed_at, leaf_queue, channel, owner_agent_id, tags, abandoned, missed_reason, created_at, updated_at)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) ON CONFLICT (ext_key) DO NOTHING",
        )
        .bind(&id)
        .bind(&r.ext_key)
        .bind(&r.account_id)
        .bind(&r.title)
        .bind(&status)
        .bind(&closed_at)
        .bind(&r.leaf_queue)
        .bind(&r.channel)
        .bind(&r.owner_agent_id)
        .bind(serde_json::to_string(&r.tags)?)
        .bind(r.abandoned)
        .bind(&r.missed_reason)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0
            && let Some(k) = &r.ext_key
        {
            // Another writer created the same key in between: its record is the one.
            tx.rollback().await?;
            let rec = self.record_by("ext_key", k).await?;
            return rec.map(|rec| (rec, false)).ok_or_else(|| {
                StoreError::NotFound(format!(
                    "the record with key {k} was created by another writer and then removed; retry the write"
                ))
            });
        }
        if let Some(s) = &r.session_id {
            sqlx::query("INSERT INTO crm_record_sessions (record_id, session_id, added_at) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING")
                .bind(&id)
                .bind(s)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((self.require_record(&id).await?, true))
    }

    pub(super) async fn list_records(&self, f: RecordFilter) -> Result<Vec<CrmRecord>> {
        // Only the filters given go in the statement: `($1 IS NULL OR account_id = $2)` keeps
        // the planner from the account's index, and an account's records are a lookup at
        // each trigger.
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT * FROM crm_records r WHERE TRUE");
        if let Some(a) = &f.account_id {
            q.push(" AND account_id = ").push_bind(a.clone());
        }
        if let Some(st) = &f.status {
            q.push(" AND status = ").push_bind(st.clone());
        }
        if let Some(sid) = &f.session_id {
            q.push(" AND id IN (SELECT record_id FROM crm_record_sessions WHERE session_id = ")
                .push_bind(sid.clone())
                .push(")");
        }
        q.push(" ORDER BY created_at, id");
        let rows = q.build().fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.get("id");
            let s = self.sessions_of(&id).await?;
            out.push(record_row(r, s));
        }
        Ok(out)
    }

    pub(super) async fn get_record(&self, id: &str) -> Result<Option<CrmRecord>> {
        self.record_by("id", id).await
    }

    pub(super) async fn record_details(
        &self,
        id: &str,
    ) -> Result<(Vec<CrmActivity>, Vec<CrmNote>, Vec<CrmAttachment>, Vec<CrmSessionObject>)> {
        let acts = sqlx::query("SELECT * FROM crm_activities WHERE record_id = $1 ORDER BY created_at, id")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        let notes = sqlx::query("SELECT * FROM crm_notes WHERE record_id = $1 ORDER BY created_at, id")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        let atts = sqlx::query("SELECT id, name, url, content IS NOT NULL AS inline, created_at FROM crm_attachments WHERE record_id = $1 ORDER BY created_at, id").bind(id).fetch_all(self.pool()).await?;
        let sos = sqlx::query("SELECT * FROM crm_session_objects WHERE record_id = $1 ORDER BY created_at, id")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        Ok((
            acts.iter().map(activity_row).collect(),
            notes
                .iter()
                .map(|r| CrmNote {
                    id: r.get("id"),
                    body: r.get("body"),
                    created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
                })
                .collect(),
            atts.iter()
                .map(|r| {
                    let id: String = r.get("id");
                    let inline: bool = r.get("inline");
                    let url: Option<String> = r.get("url");
                    CrmAttachment {
                        url: if inline { Some(format!("/v1/crm/attachments/{id}")) } else { url },
                        id,
                        name: r.get("name"),
                        inline,
                        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
                    }
                })
                .collect(),
            sos.iter()
                .map(|r| CrmSessionObject {
                    id: r.get("id"),
                    session_id: r.get("session_id"),
                    record_id: r.get("record_id"),
                    account_id: r.get("account_id"),
                    data: serde_json::from_str(r.get::<String, _>("data").as_str()).unwrap_or_default(),
                    created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
                    updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
                })
                .collect(),
        ))
    }

    pub(super) async fn set_status(&self, id: &str, status: &str, at: DateTime<Utc>) -> Result<()> {
        self.record_must_exist(id).await?;
        let closed_at = if is_closed_status(status) { Some(ts(at)) } else { None };
        sqlx::query("UPDATE crm_records SET status = $1, closed_at = CASE WHEN $2 IS NULL THEN NULL ELSE COALESCE(CASE WHEN status IN ('solved','closed') THEN closed_at END, $3) END, updated_at = $4 WHERE id = $5")
            .bind(status)
            .bind(&closed_at)
            .bind(&closed_at)
            .bind(ts(at))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(super) async fn append_session(
        &self,
        id: &str,
        session_id: &str,
        tags: &[String],
        reopen_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let rec = self.require_record(id).await?;
        let mut all = rec.tags.clone();
        for t in tags {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO crm_record_sessions (record_id, session_id, added_at) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(session_id)
            .bind(ts(at))
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE crm_records SET tags = $1, updated_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(&all)?)
            .bind(ts(at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(s) = reopen_to
            && rec.is_closed
        {
            sqlx::query("UPDATE crm_records SET status = $1, closed_at = NULL WHERE id = $2")
                .bind(s)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn set_owner(&self, id: &str, agent_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.record_must_exist(id).await?;
        sqlx::query("UPDATE crm_records SET owner_agent_id = $1, updated_at = $2 WHERE id = $3")
            .bind(agent_id)
            .bind(ts(at))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(super) async fn mark_abandoned(&self, id: &str, reason: &str, at: DateTime<Utc>) -> Result<()> {
        self.record_must_exist(id).await?;
        sqlx::query("UPDATE crm_records SET abandoned = TRUE, missed_reason = $1, updated_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(ts(at))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(super) async fn add_note(&self, key: &str, id: &str, body: &str, at: DateTime<Utc>) -> Result<()> {
        self.record_must_exist(id).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO crm_notes (id, ext_key, record_id, body, created_at) VALUES ('note_' || nextval('crm_notes_n'),$1,$2,$3,$4) ON CONFLICT(ext_key) DO NOTHING")
            .bind(key)
            .bind(id)
            .bind(body)
            .bind(ts(at))
            .execute(&mut *tx)
            .await?;
        touch(&mut tx, id, at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn add_attachment(
        &self,
        key: &str,
        id: &str,
        name: &str,
        url: Option<&str>,
        content: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.record_must_exist(id).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO crm_attachments (id, ext_key, record_id, name, url, content, created_at) VALUES ('att_' || nextval('crm_attachments_n'),$1,$2,$3,$4,$5,$6) ON CONFLICT(ext_key) DO NOTHING")
            .bind(key)
            .bind(id)
            .bind(name)
            .bind(url)
            .bind(content)
            .bind(ts(at))
            .execute(&mut *tx)
            .await?;
        touch(&mut tx, id, at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn attachment_content(&self, id: &str) -> Result<Option<(String, Option<String>)>> {
        let r = sqlx::query("SELECT name, content FROM crm_attachments WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| (r.get("name"), r.get("content"))))
    }

    pub(super) async fn set_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let rec = self.require_record(id).await?;
        self.merge_fields("crm_records", id, rec.custom_fields, fields, at).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn upsert_activity(
        &self,
        key: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        session_id: Option<&str>,
        subject: &str,
        body: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        // One statement (the id drawn inside it): no transaction of its own to open and close.
        sqlx::query(
            "INSERT INTO crm_activities (id, ext_key, record_id, account_id, session_id, subject, body, created_at, updated_at) VALUES ('act_' || nextval('crm_activities_n'),$1,$2,$3,$4,$5,$6,$7,$8)
             ON CONFLICT(ext_key) DO UPDATE SET record_id = excluded.record_id, account_id = excluded.account_id, subject = excluded.subject, body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(record_id)
        .bind(account_id)
        .bind(session_id)
        .bind(subject)
        .bind(serde_json::to_string(body)?)
        .bind(ts(at))
        .bind(ts(at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn upsert_session_object(
        &self,
        session_id: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO crm_session_objects (id, session_id, record_id, account_id, data, created_at, updated_at) VALUES ('so_' || nextval('crm_session_objects_n'),$1,$2,$3,$4,$5,$6)
             ON CONFLICT(session_id) DO UPDATE SET record_id = excluded.record_id, account_id = excluded.account_id, data = excluded.data, updated_at = excluded.updated_at",
        )
        .bind(session_id)
        .bind(record_id)
        .bind(account_id)
        .bind(serde_json::to_string(data)?)
        .bind(ts(at))
        .bind(ts(at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn withdraw_activity(&self, key: &str, at: DateTime<Utc>) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE crm_activities SET record_id = NULL, account_id = NULL, updated_at = $1 WHERE ext_key = $2 AND (record_id IS NOT NULL OR account_id IS NOT NULL)",
        )
        .bind(ts(at))
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
