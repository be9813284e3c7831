//! Storage of agents, dispositions, wrap-ups and casebridge's activity log, dial requests and
//! the standard custom fields enabled in the CRM.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{NewCommand, NewEvent, Result};
use casebridge_rules::model::Entry;

/// A disposition code.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispositionRow {
    /// Code.
    pub code: String,
    /// Label.
    pub label: String,
    /// Can be chosen at wrap-up.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// An agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    /// Platform agent id.
    pub id: String,
    /// Email (identity shared with the CRM).
    pub email: String,
    /// Name.
    pub name: Option<String>,
    /// Sync state JSON.
    pub state: String,
    /// Compare-and-swap version.
    pub version: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// A click-to-call dial request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DialRequestRow {
    /// Id.
    pub id: String,
    /// Agent.
    pub agent_id: String,
    /// Number (E.164).
    pub phone: String,
    /// Record it was dialed from.
    pub origin_record_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A line of casebridge's own activity log to write (keyed: a rewrite replaces).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewActivity {
    /// Unique key (`<session>:<kind>`).
    pub ext_key: String,
    /// Session.
    pub session_id: String,
    /// call_log, missed, abandoned or voicemail.
    pub kind: String,
    /// log or do_not_log (wrap-ups).
    pub action: Option<String>,
    /// Person: CRM id, or casebridge key when `person_is_key`.
    pub person_ref: Option<String>,
    /// Whether `person_ref` is a casebridge key.
    pub person_is_key: bool,
    /// Related record (CRM id).
    pub record_id: Option<String>,
    /// origin_record or viewing_record.
    pub related_by: Option<String>,
    /// Disposition code.
    pub disposition: Option<String>,
    /// Disposition label.
    pub label: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Menu path.
    pub queue: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// Missed-session reason.
    pub missed_reason: Option<String>,
    /// Session start (reports count by it).
    pub session_at: DateTime<Utc>,
}

/// A line of casebridge's own activity log.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityRow {
    /// Id.
    pub id: String,
    /// Session.
    pub session_id: String,
    /// call_log, missed, abandoned or voicemail.
    pub kind: String,
    /// log or do_not_log.
    pub action: Option<String>,
    /// The person's CRM id (None while the person is still being created, or none).
    pub person_id: Option<String>,
    /// Related record.
    pub record_id: Option<String>,
    /// How the record was chosen.
    pub related_by: Option<String>,
    /// Disposition code.
    pub disposition: Option<String>,
    /// Disposition label.
    pub label: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Menu path.
    pub queue: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// Missed-session reason.
    pub missed_reason: Option<String>,
    /// Wrap-ups so far (a later one replaces an earlier).
    pub revision: i64,
    /// Session start.
    pub session_at: DateTime<Utc>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// Filter of the activity log.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// A person's CRM id.
    pub person_id: Option<String>,
    /// A session.
    pub session_id: Option<String>,
    /// Kinds.
    pub kinds: Vec<String>,
    /// Sessions started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Sessions started before.
    pub to: Option<DateTime<Utc>>,
}

/// A standard custom field enabled in the CRM.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnabledFieldRow {
    /// Catalog key.
    pub key: String,
    /// CRM field name.
    pub crm_field: String,
    /// Enabled at.
    pub enabled_at: DateTime<Utc>,
}

/// Storage for agents and everything around wrap-up.
#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Every disposition, by code.
    async fn dispositions(&self) -> Result<Vec<DispositionRow>>;
    /// One disposition.
    async fn disposition(&self, code: &str) -> Result<Option<DispositionRow>>;
    /// Creates a disposition; Conflict when the code exists.
    async fn disposition_create(&self, code: &str, label: &str) -> Result<DispositionRow>;
    /// Changes a disposition; None when unknown.
    async fn disposition_update(
        &self,
        code: &str,
        label: Option<&str>,
        active: Option<bool>,
    ) -> Result<Option<DispositionRow>>;
    /// One agent.
    async fn agent(&self, id: &str) -> Result<Option<AgentRow>>;
    /// The agent with this email (case-insensitive).
    async fn agent_by_email(&self, email: &str) -> Result<Option<AgentRow>>;
    /// Creates or updates an agent's identity; Conflict when another agent has the email.
    async fn agent_put(&self, id: &str, email: &str, name: Option<&str>) -> Result<(AgentRow, bool)>;
    /// Registers an agent known so far only by its platform id (no email: no CRM sync yet).
    async fn agent_ensure(&self, id: &str) -> Result<()>;
    /// Saves an agent's state if its version is still `version`, with outbox rows; false when
    /// someone saved in between.
    async fn agent_save(&self, id: &str, version: i64, state: &str, commands: &[NewCommand]) -> Result<bool>;
    /// Whether the agent is on a session that is not over.
    async fn agent_busy(&self, agent_id: &str) -> Result<bool>;
    /// Stores a dial request and, when the hand-off is configured, its webhook delivery.
    async fn dial_create(&self, d: &DialRequestRow, command: Option<&NewCommand>) -> Result<()>;
    /// One dial request.
    async fn dial(&self, id: &str) -> Result<Option<DialRequestRow>>;
    /// Writes a wrap-up durably: its activity line (replacing an earlier one), timeline lines,
    /// outbox rows and the event that carries it to the session's data. The rules apply the
    /// event only after the rest is stored (PostgreSQL: one commit; SQLite: the event in its
    /// file first, the main file's writer held across both). Returns the activity id.
    async fn wrapup_commit(
        &self,
        a: &NewActivity,
        timeline: &[Entry],
        commands: &[NewCommand],
        event: &NewEvent,
    ) -> Result<String>;
    /// The activity log, newest session first.
    async fn activities(&self, f: &ActivityFilter) -> Result<Vec<ActivityRow>>;
    /// Standard fields enabled in the CRM.
    async fn enabled_fields(&self) -> Result<Vec<EnabledFieldRow>>;
    /// Records a field as enabled (keeps the first time); true when new.
    async fn enable_field(&self, key: &str, crm_field: &str, at: DateTime<Utc>) -> Result<bool>;
}
