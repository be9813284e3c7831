//! The built-in CRM's storage: a small, real CRM kept in casebridge's own database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{CrmAccount, CrmActivity, CrmAttachment, CrmNote, CrmRecord, CrmSessionObject, Result};

/// Statuses of the built-in CRM.
pub const STATUSES: &[&str] = &["new", "open", "pending", "on_hold", "solved", "closed"];

/// Whether a built-in status counts as closed.
pub fn is_closed_status(s: &str) -> bool {
    matches!(s, "solved" | "closed")
}

/// A person to create.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// Id to use (imports and fixtures); generated when None.
    pub id: Option<String>,
    /// contact, lead or person_account.
    pub kind: String,
    /// Name.
    pub name: Option<String>,
    /// Phone as given.
    pub phone: Option<String>,
    /// Phone in the form used for matching.
    pub phone_key: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// App user id.
    pub user_id: Option<String>,
    /// casebridge's key; creating twice with one key returns the first.
    pub ext_key: Option<String>,
    /// Creation time.
    pub at: DateTime<Utc>,
}

/// A record to create.
#[derive(Debug, Clone, Default)]
pub struct NewRecord {
    /// Id to use (imports and fixtures); generated when None.
    pub id: Option<String>,
    /// Closing time for a record created closed (imports and fixtures).
    pub closed_at: Option<DateTime<Utc>>,
    /// Requester.
    pub account_id: Option<String>,
    /// Title.
    pub title: String,
    /// Status (default `new`).
    pub status: Option<String>,
    /// Originating leaf queue.
    pub leaf_queue: Option<String>,
    /// Originating channel.
    pub channel: Option<String>,
    /// Owner.
    pub owner_agent_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// First session.
    pub session_id: Option<String>,
    /// Abandoned marker.
    pub abandoned: bool,
    /// Missed reason.
    pub missed_reason: Option<String>,
    /// casebridge's key.
    pub ext_key: Option<String>,
    /// Creation time.
    pub at: DateTime<Utc>,
}

/// Filters for listing records.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Requester.
    pub account_id: Option<String>,
    /// A session on the record.
    pub session_id: Option<String>,
    /// Status.
    pub status: Option<String>,
}

/// The built-in CRM's storage operations. Writes keyed by an external key are idempotent.
#[async_trait]
pub trait BuiltinCrmStore: Send + Sync + 'static {
    /// Creates a person (or returns the one with the same key); true when new.
    async fn crm_create_account(&self, a: NewAccount) -> Result<(CrmAccount, bool)>;
    /// People matching any given key.
    async fn crm_find_accounts(
        &self,
        phone_key: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<CrmAccount>>;
    /// One person.
    async fn crm_get_account(&self, id: &str) -> Result<Option<CrmAccount>>;
    /// Updates a person's details (absent values are kept).
    async fn crm_update_account(
        &self,
        id: &str,
        name: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Activities hung on a person.
    async fn crm_account_activities(&self, id: &str) -> Result<Vec<CrmActivity>>;
    /// Creates a record (or returns the one with the same key); true when new.
    async fn crm_create_record(&self, r: NewRecord) -> Result<(CrmRecord, bool)>;
    /// Records matching the filter, oldest first.
    async fn crm_list_records(&self, f: RecordFilter) -> Result<Vec<CrmRecord>>;
    /// One record.
    async fn crm_get_record(&self, id: &str) -> Result<Option<CrmRecord>>;
    /// Activities, notes, attachments and session objects of a record.
    async fn crm_record_details(
        &self,
        id: &str,
    ) -> Result<(Vec<CrmActivity>, Vec<CrmNote>, Vec<CrmAttachment>, Vec<CrmSessionObject>)>;
    /// Changes a record's status at a time.
    async fn crm_set_status(&self, id: &str, status: &str, at: DateTime<Utc>) -> Result<()>;
    /// Adds a session to a record, adds tags, optionally reopens.
    async fn crm_append_session(
        &self,
        id: &str,
        session_id: &str,
        tags: &[String],
        reopen_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Reassigns a record.
    async fn crm_set_owner(&self, id: &str, agent_id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Marks a record abandoned.
    async fn crm_mark_abandoned(&self, id: &str, reason: &str, at: DateTime<Utc>) -> Result<()>;
    /// Adds a note (idempotent on key).
    async fn crm_add_note(&self, key: &str, id: &str, body: &str, at: DateTime<Utc>) -> Result<()>;
    /// Adds an attachment (idempotent on key).
    async fn crm_add_attachment(
        &self,
        key: &str,
        id: &str,
        name: &str,
        url: Option<&str>,
        content: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// An attachment's name and inline content.
    async fn crm_attachment_content(&self, id: &str) -> Result<Option<(String, Option<String>)>>;
    /// Merges custom fields.
    async fn crm_set_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Writes or rewrites an activity (keyed).
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
    ) -> Result<()>;
    /// Writes or rewrites a session object.
    async fn crm_upsert_session_object(
        &self,
        session_id: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Detaches a keyed activity from its person and record (a call log withdrawn).
    async fn crm_withdraw_activity(&self, key: &str, at: DateTime<Utc>) -> Result<bool>;
    /// Merges custom fields into a person.
    async fn crm_set_account_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Sets an agent's CRM status.
    async fn crm_set_agent_status(&self, email: &str, status: &str, at: DateTime<Utc>) -> Result<()>;
    /// Every agent's CRM status: (email, status, updated_at).
    async fn crm_agent_statuses(&self) -> Result<Vec<(String, String, DateTime<Utc>)>>;
    /// Defines a custom field unless one with the name exists; true when new.
    async fn crm_ensure_custom_field(&self, name: &str, object: &str, label: &str, kind: &str) -> Result<bool>;
    /// Custom field definitions: (name, object, label, type).
    async fn crm_custom_fields(&self) -> Result<Vec<(String, String, String, String)>>;
}
