//! Storage for casebridge: events, sessions and their timelines, the CRM outbox, settings,
//! and the built-in CRM. One trait ([`Store`]), a SQLite implementation here and room for
//! PostgreSQL beside it, each with its own migrations.

pub mod agents;
pub mod builtin;
pub mod sqlite;
mod sqlite_agents;

use async_trait::async_trait;
use casebridge_rules::model::{Entry, EntryKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

pub use agents::AgentStore;
pub use builtin::BuiltinCrmStore;
pub use sqlite::SqliteStore;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored JSON could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// Something the caller asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with stored data.
    #[error("{0}")]
    Conflict(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Formats a time the way every table stores it (sortable text).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a stored time.
pub fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Event id.
    pub id: String,
    /// Session id.
    pub session_id: String,
    /// Event type.
    pub event_type: String,
    /// Event time.
    pub at: DateTime<Utc>,
    /// The event as JSON.
    pub body: String,
}

/// What an intake did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Newly stored.
    pub accepted: u64,
    /// Already known ids.
    pub duplicates: u64,
}

/// A stored event waiting for the rules.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// Arrival order.
    pub seq: i64,
    /// Session id.
    pub session_id: String,
    /// The event as JSON.
    pub body: String,
}

/// A CRM write to enqueue.
#[derive(Debug, Clone)]
pub struct NewCommand {
    /// Idempotency key.
    pub key: String,
    /// Serialization lane.
    pub lane: String,
    /// Session that caused it.
    pub session_id: String,
    /// The write as JSON.
    pub op: String,
    /// Customer keys the write concerns (see `customer_keys` in the rules crate).
    pub keys: Vec<String>,
}

/// Everything one rules step commits at once.
#[derive(Debug, Clone)]
pub struct StepCommit {
    /// Events consumed.
    pub event_seqs: Vec<i64>,
    /// Session id.
    pub session_id: String,
    /// The session's new state as JSON.
    pub session: String,
    /// Lane.
    pub lane: Option<String>,
    /// Account ref (`key` or CRM id) and whether it is a casebridge key.
    pub account: Option<(String, bool)>,
    /// Record ref and whether it is a casebridge key.
    pub record: Option<(String, bool)>,
    /// Session start.
    pub created_at: Option<DateTime<Utc>>,
    /// Timeline lines.
    pub timeline: Vec<Entry>,
    /// Outbox rows.
    pub commands: Vec<NewCommand>,
    /// Lines of casebridge's own activity log.
    pub activities: Vec<agents::NewActivity>,
    /// The session's current agent.
    pub agent_id: Option<String>,
    /// The session is over (abandoned or ended).
    pub over: bool,
}

/// An outbox row claimed for delivery.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Idempotency key.
    pub key: String,
    /// Lane.
    pub lane: String,
    /// Session.
    pub session_id: String,
    /// The write as JSON.
    pub op: String,
    /// Attempts so far.
    pub attempts: i64,
    /// pending, done or dead.
    pub state: String,
    /// Last failure.
    pub last_error: Option<String>,
    /// Next attempt.
    pub next_attempt_at: String,
}

/// A session as the API shows it.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// The state JSON.
    pub body: String,
    /// Resolved account id.
    pub account_id: Option<String>,
    /// Resolved record id.
    pub record_id: Option<String>,
}

/// Storage of everything but the built-in CRM.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Database reachable and migrated.
    async fn ready(&self) -> Result<()>;
    /// Stores a batch atomically; known ids count as duplicates.
    async fn ingest(&self, events: &[NewEvent]) -> Result<IngestOutcome>;
    /// Stores several batches in one durable commit; each batch is counted on its own.
    async fn ingest_groups(&self, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>>;
    /// Oldest events the rules have not applied yet.
    async fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>>;
    /// Number of events not applied yet.
    async fn pending_event_count(&self) -> Result<i64>;
    /// A session's state JSON.
    async fn load_session(&self, id: &str) -> Result<Option<SessionRow>>;
    /// Commits several steps in one transaction, in order.
    async fn commit_steps(&self, steps: Vec<StepCommit>) -> Result<()>;
    /// Whether a CRM write that concerns any of these customer keys is still to be delivered.
    async fn keys_busy(&self, keys: &[String]) -> Result<bool>;
    /// Due outbox rows, the first pending one of each lane.
    async fn claim_commands(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxRow>>;
    /// Marks a write done; for a create, remembers the CRM id of the key in the same commit.
    async fn complete_command(&self, row: &OutboxRow, line: Entry, created: Option<(&str, &str)>) -> Result<()>;
    /// Schedules another attempt.
    async fn retry_command(&self, row: &OutboxRow, error: &str, next: DateTime<Utc>, line: Option<Entry>)
    -> Result<()>;
    /// Parks a write as a dead letter.
    async fn park_command(&self, row: &OutboxRow, error: &str, line: Entry) -> Result<()>;
    /// Outbox rows by state.
    async fn list_commands(&self, state: &str, limit: i64) -> Result<Vec<OutboxRow>>;
    /// Counts of outbox rows by state.
    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>>;
    /// Puts a dead letter back in line.
    async fn redrive_command(&self, id: i64) -> Result<bool>;
    /// The CRM id of an object casebridge created.
    async fn ref_get(&self, key: &str) -> Result<Option<String>>;
    /// The saved settings document.
    async fn settings_get(&self) -> Result<Option<String>>;
    /// Saves the settings document.
    async fn settings_put(&self, doc: &str) -> Result<()>;
    /// Timeline of a session.
    async fn timeline(&self, session_id: &str) -> Result<Vec<Entry>>;
    /// Sessions of an account, newest first; cursor is the last row's `created_at|id`.
    async fn sessions_by_account(
        &self,
        account_id: &str,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<Vec<(String, SessionRow)>>;
    /// Whether the listed events are applied and their sessions' writes done or parked.
    async fn settled(&self, event_ids: &[String]) -> Result<bool>;
    /// Whether a session has no event to apply and no write not yet attempted.
    async fn session_settled(&self, session_id: &str) -> Result<bool>;
}

/// Converts a stored timeline kind.
pub fn entry_kind(s: &str) -> EntryKind {
    match s {
        "event" => EntryKind::Event,
        "crm" => EntryKind::Crm,
        _ => EntryKind::Decision,
    }
}

/// The stored name of a timeline kind.
pub fn entry_kind_str(k: EntryKind) -> &'static str {
    match k {
        EntryKind::Event => "event",
        EntryKind::Decision => "decision",
        EntryKind::Crm => "crm",
    }
}

/// Built-in CRM account as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// Built-in CRM record as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    pub body: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A note.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    pub data: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}
