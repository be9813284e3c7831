//! What the built-in CRM needs from storage: the trait its connector calls, the objects it
//! stores and their inputs. Defined here so the connector does not depend on a storage
//! crate; storage implements it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a built-in CRM storage call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuiltinStoreError {
    /// The object asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with stored data.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed (database unreachable, corrupt data); worth retrying.
    #[error("{0}")]
    Failed(String),
}

/// Result of built-in CRM storage calls.
pub type BuiltinResult<T> = std::result::Result<T, BuiltinStoreError>;

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
    async fn crm_create_account(&self, a: NewAccount) -> BuiltinResult<(CrmAccount, bool)>;
    /// People matching any given key.
    async fn crm_find_accounts(
        &self,
        phone_key: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> BuiltinResult<Vec<CrmAccount>>;
    /// The newest people first (by creation, then id), at most `limit`.
    async fn crm_list_accounts(&self, limit: i64) -> BuiltinResult<Vec<CrmAccount>>;
    /// One person.
    async fn crm_get_account(&self, id: &str) -> BuiltinResult<Option<CrmAccount>>;
    /// Updates a person's details (absent values are kept).
    async fn crm_update_account(
        &self,
        id: &str,
        name: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()>;
    /// Activities hung on a person.
    async fn crm_account_activities(&self, id: &str) -> BuiltinResult<Vec<CrmActivity>>;
    /// Creates a record (or returns the one with the same key); true when new.
    async fn crm_create_record(&self, r: NewRecord) -> BuiltinResult<(CrmRecord, bool)>;
    /// Records matching the filter, oldest first.
    async fn crm_list_records(&self, f: RecordFilter) -> BuiltinResult<Vec<CrmRecord>>;
    /// One record.
    async fn crm_get_record(&self, id: &str) -> BuiltinResult<Option<CrmRecord>>;
    /// Activities, notes, attachments and session objects of a record.
    async fn crm_record_details(
        &self,
        id: &str,
    ) -> BuiltinResult<(Vec<CrmActivity>, Vec<CrmNote>, Vec<CrmAttachment>, Vec<CrmSessionObject>)>;
    /// Changes a record's status at a time.
    async fn crm_set_status(&self, id: &str, status: &str, at: DateTime<Utc>) -> BuiltinResult<()>;
    /// Adds a session to a record, adds tags, optionally reopens.
    async fn crm_append_session(
        &self,
        id: &str,
        session_id: &str,
        tags: &[String],
        reopen_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()>;
    /// Reassigns a record.
    async fn crm_set_owner(&self, id: &str, agent_id: &str, at: DateTime<Utc>) -> BuiltinResult<()>;
    /// Marks a record abandoned.
    async fn crm_mark_abandoned(&self, id: &str, reason: &str, at: DateTime<Utc>) -> BuiltinResult<()>;
    /// Adds a note (idempotent on key).
    async fn crm_add_note(&self, key: &str, id: &str, body: &str, at: DateTime<Utc>) -> BuiltinResult<()>;
    /// Adds an attachment (idempotent on key).
    async fn crm_add_attachment(
        &self,
        key: &str,
        id: &str,
        name: &str,
        url: Option<&str>,
        content: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()>;
    /// An attachment's name and inline content.
    async fn crm_attachment_content(&self, id: &str) -> BuiltinResult<Option<(String, Option<String>)>>;
    /// Merges custom fields.
    async fn crm_set_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()>;
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
    ) -> BuiltinResult<()>;
    /// Writes or rewrites a session object.
    async fn crm_upsert_session_object(
        &self,
        session_id: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()>;
    /// Detaches a keyed activity from its person and record (a call log withdrawn).
    async fn crm_withdraw_activity(&self, key: &str, at: DateTime<Utc>) -> BuiltinResult<bool>;
    /// Merges custom fields into a person.
    async fn crm_set_account_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()>;
    /// Sets an agent's CRM status.
    async fn crm_set_agent_status(&self, email: &str, status: &str, at: DateTime<Utc>) -> BuiltinResult<()>;
    /// Every agent's CRM status: (email, status, updated_at).
    async fn crm_agent_statuses(&self) -> BuiltinResult<Vec<(String, String, DateTime<Utc>)>>;
    /// Defines a custom field unless one with the name exists; true when new.
    async fn crm_ensure_custom_field(&self, name: &str, object: &str, label: &str, kind: &str) -> BuiltinResult<bool>;
    /// Custom field definitions: (name, object, label, type).
    async fn crm_custom_fields(&self) -> BuiltinResult<Vec<(String, String, String, String)>>;
}

/// Built-in CRM account as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrmAccount {
    /// Id.
    pub id: String,
    /// contact, lead or person_account.
    pub kind: String,
    /// Name.
    pub name: Option<String>,
    /// Phone as given (E.164 when casebridge created it).
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// App user id.
    pub user_id: Option<String>,
    /// casebridge key when casebridge created it.
    pub external_key: Option<String>,
    /// Custom fields.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// Built-in CRM record as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrmRecord {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: String,
    /// Whether the status is closed.
    pub is_closed: bool,
    /// When closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Requester.
    pub account_id: Option<String>,
    /// Originating leaf queue.
    pub leaf_queue: Option<String>,
    /// Originating channel.
    pub channel: Option<String>,
    /// Owner.
    pub owner_agent_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Sessions on this record.
    pub session_ids: Vec<String>,
    /// Abandoned marker.
    pub abandoned: bool,
    /// Missed-session reason.
    pub missed_reason: Option<String>,
    /// Custom fields.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// casebridge key when casebridge created it.
    pub external_key: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// An activity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrmActivity {
    /// Id.
    pub id: String,
    /// Record it hangs on.
    pub record_id: Option<String>,
    /// Account it hangs on.
    pub account_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Session data.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub body: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A note.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrmNote {
    /// Id.
    pub id: String,
    /// Text.
    pub body: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// An attachment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrmAttachment {
    /// Id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Link (for inline files, the API's download path).
    pub url: Option<String>,
    /// Whether the content is kept inline.
    pub inline: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A session object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrmSessionObject {
    /// Id.
    pub id: String,
    /// Session.
    pub session_id: String,
    /// Record.
    pub record_id: Option<String>,
    /// Account.
    pub account_id: Option<String>,
    /// Session data.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}
