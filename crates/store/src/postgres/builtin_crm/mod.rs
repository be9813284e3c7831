//! PostgreSQL implementation of the built-in CRM's storage ([`BuiltinCrmStore`]). The work is
//! done by inherent methods in the submodules, in this crate's error type; the trait
//! implementation only translates errors into the CRM crate's terms.

mod accounts;
mod records;

use async_trait::async_trait;
use casebridge_crm::builtin::storage::{
    BuiltinCrmStore, BuiltinResult, BuiltinStoreError, CrmAccount, CrmActivity, CrmAttachment, CrmNote, CrmRecord,
    CrmSessionObject, NewAccount, NewRecord, RecordFilter, is_closed_status,
};
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PgStore;
use crate::{Result, StoreError, parse_ts, ts};

/// Missing and conflicting objects keep their meaning; any other failure is worth retrying.
fn crm_err(e: StoreError) -> BuiltinStoreError {
    match e {
        StoreError::NotFound(m) => BuiltinStoreError::NotFound(m),
        StoreError::Conflict(m) => BuiltinStoreError::Conflict(m),
        other => BuiltinStoreError::Failed(other.to_string()),
    }
}

fn account_row(r: &sqlx::postgres::PgRow) -> CrmAccount {
    CrmAccount {
        id: r.get("id"),
        kind: r.get("kind"),
        name: r.get("name"),
        phone: r.get("phone"),
        email: r.get("email"),
        user_id: r.get("user_id"),
        external_key: r.get("ext_key"),
        custom_fields: serde_json::from_str(r.get::<String, _>("custom_fields").as_str()).unwrap_or_default(),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

fn record_row(r: &sqlx::postgres::PgRow, sessions: Vec<String>) -> CrmRecord {
    let status: String = r.get("status");
    CrmRecord {
        id: r.get("id"),
        title: r.get("title"),
        is_closed: is_closed_status(&status),
        status,
        closed_at: r.get::<Option<String>, _>("closed_at").map(|s| parse_ts(&s)),
        account_id: r.get("account_id"),
        leaf_queue: r.get("leaf_queue"),
        channel: r.get("channel"),
        owner_agent_id: r.get("owner_agent_id"),
        tags: serde_json::from_str(r.get::<String, _>("tags").as_str()).unwrap_or_default(),
        session_ids: sessions,
        abandoned: r.get("abandoned"),
        missed_reason: r.get("missed_reason"),
        custom_fields: serde_json::from_str(r.get::<String, _>("custom_fields").as_str()).unwrap_or_default(),
        external_key: r.get("ext_key"),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

fn activity_row(r: &sqlx::postgres::PgRow) -> CrmActivity {
    CrmActivity {
        id: r.get("id"),
        record_id: r.get("record_id"),
        account_id: r.get("account_id"),
        session_id: r.get("session_id"),
        subject: r.get("subject"),
        body: serde_json::from_str(r.get::<String, _>("body").as_str()).unwrap_or_default(),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

impl PgStore {
    /// Writes `existing` with `fields` merged in as the object's custom fields.
    pub(super) async fn merge_fields(
        &self,
        table: &str,
        id: &str,
        mut existing: serde_json::Map<String, serde_json::Value>,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        for (k, v) in fields {
            existing.insert(k.clone(), v.clone());
        }
        let sql = format!("UPDATE {table} SET custom_fields = $1, updated_at = $2 WHERE id = $3");
        sqlx::query(&sql).bind(serde_json::to_string(&existing)?).bind(ts(at)).bind(id).execute(self.pool()).await?;
        Ok(())
    }
}

#[async_trait]
impl BuiltinCrmStore for PgStore {
    async fn crm_create_account(&self, a: NewAccount) -> BuiltinResult<(CrmAccount, bool)> {
        self.create_account(a).await.map_err(crm_err)
    }

    async fn crm_find_accounts(
        &self,
        phone_key: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> BuiltinResult<Vec<CrmAccount>> {
        self.find_accounts(phone_key, email, user_id).await.map_err(crm_err)
    }

    async fn crm_list_accounts(&self, limit: i64) -> BuiltinResult<Vec<CrmAccount>> {
        self.list_accounts(limit).await.map_err(crm_err)
    }

    async fn crm_get_account(&self, id: &str) -> BuiltinResult<Option<CrmAccount>> {
        self.get_account(id).await.map_err(crm_err)
    }

    async fn crm_update_account(
        &self,
        id: &str,
        name: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.update_account(id, name, email, user_id, at).await.map_err(crm_err)
    }

    async fn crm_account_activities(&self, id: &str) -> BuiltinResult<Vec<CrmActivity>> {
        self.account_activities(id).await.map_err(crm_err)
    }

    async fn crm_create_record(&self, r: NewRecord) -> BuiltinResult<(CrmRecord, bool)> {
        self.create_record(r).await.map_err(crm_err)
    }

    async fn crm_list_records(&self, f: RecordFilter) -> BuiltinResult<Vec<CrmRecord>> {
        self.list_records(f).await.map_err(crm_err)
    }

    async fn crm_get_record(&self, id: &str) -> BuiltinResult<Option<CrmRecord>> {
        self.get_record(id).await.map_err(crm_err)
    }

    async fn crm_record_details(
        &self,
        id: &str,
    ) -> BuiltinResult<(Vec<CrmActivity>, Vec<CrmNote>, Vec<CrmAttachment>, Vec<CrmSessionObject>)> {
        self.record_details(id).await.map_err(crm_err)
    }

    async fn crm_set_status(&self, id: &str, status: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.set_status(id, status, at).await.map_err(crm_err)
    }

    async fn crm_append_session(
        &self,
        id: &str,
        session_id: &str,
        tags: &[String],
        reopen_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.append_session(id, session_id, tags, reopen_to, at).await.map_err(crm_err)
    }

    async fn crm_set_owner(&self, id: &str, agent_id: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.set_owner(id, agent_id, at).await.map_err(crm_err)
    }

    async fn crm_mark_abandoned(&self, id: &str, reason: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.mark_abandoned(id, reason, at).await.map_err(crm_err)
    }

    async fn crm_add_note(&self, key: &str, id: &str, body: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.add_note(key, id, body, at).await.map_err(crm_err)
    }

    async fn crm_add_attachment(
        &self,
        key: &str,
        id: &str,
        name: &str,
        url: Option<&str>,
        content: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.add_attachment(key, id, name, url, content, at).await.map_err(crm_err)
    }

    async fn crm_attachment_content(&self, id: &str) -> BuiltinResult<Option<(String, Option<String>)>> {
        self.attachment_content(id).await.map_err(crm_err)
    }

    async fn crm_set_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.set_fields(id, fields, at).await.map_err(crm_err)
    }

    #[allow(clippy::too_many_arguments)]
    async fn crm_upsert_activity(
        &self,
        key: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        session_id: Option<&str>,
        subject: &str,
        body: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.upsert_activity(key, record_id, account_id, session_id, subject, body, at).await.map_err(crm_err)
    }

    async fn crm_upsert_session_object(
        &self,
        session_id: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.upsert_session_object(session_id, record_id, account_id, data, at).await.map_err(crm_err)
    }

    async fn crm_withdraw_activity(&self, key: &str, at: DateTime<Utc>) -> BuiltinResult<bool> {
        self.withdraw_activity(key, at).await.map_err(crm_err)
    }

    async fn crm_set_account_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.set_account_fields(id, fields, at).await.map_err(crm_err)
    }

    async fn crm_set_agent_status(&self, email: &str, status: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.set_agent_status(email, status, at).await.map_err(crm_err)
    }

    async fn crm_agent_statuses(&self) -> BuiltinResult<Vec<(String, String, DateTime<Utc>)>> {
        self.agent_statuses().await.map_err(crm_err)
    }

    async fn crm_ensure_custom_field(&self, name: &str, object: &str, label: &str, kind: &str) -> BuiltinResult<bool> {
        self.ensure_custom_field(name, object, label, kind).await.map_err(crm_err)
    }

    async fn crm_custom_fields(&self) -> BuiltinResult<Vec<(String, String, String, String)>> {
        self.custom_fields().await.map_err(crm_err)
    }
}
