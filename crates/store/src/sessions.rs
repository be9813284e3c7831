//! Sessions, their timelines and the CRM ids of objects casebridge created.

use async_trait::async_trait;
use casebridge_rules::model::{Entry, EntryKind};
use chrono::{DateTime, Utc};

use crate::{NewCommand, Result, agents};

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
    /// When the earliest event of this step happened: the session's start while it waits
    /// for its `session.created` (the stored value only ever moves earlier).
    pub first_at: Option<DateTime<Utc>>,
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

impl StepCommit {
    /// A step that stores `session` as given and nothing else: no events, columns, lines or writes.
    pub fn bare(session_id: impl Into<String>, session: String) -> StepCommit {
        StepCommit {
            event_seqs: vec![],
            session_id: session_id.into(),
            session,
            lane: None,
            account: None,
            record: None,
            created_at: None,
            first_at: None,
            timeline: vec![],
            commands: vec![],
            activities: vec![],
            agent_id: None,
            over: false,
        }
    }
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

/// Which sessions `list_sessions` returns: every given filter must hold. Sessions come
/// newest first by start (`created_at`, or the time of its earliest event applied so far while
/// a session waits for its `session.created`), then by id.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Phase wire name (`waiting`, `created`, … `ended`).
    pub phase: Option<String>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
    /// Record outcome wire name (`pending`, `created`, `appended`, `reopened`, `none`).
    pub record_outcome: Option<String>,
    /// Resolved CRM account id.
    pub account_id: Option<String>,
    /// The session's phone number as stored (E.164 when it could be parsed).
    pub phone: Option<String>,
    /// Cursor of the previous page (its last row's cursor).
    pub cursor: Option<String>,
    /// At most this many rows.
    pub limit: i64,
}

/// Counts of sessions an operator should look at (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionGauges {
    /// Sessions whose events wait for their `session.created`.
    pub waiting: i64,
    /// Sessions with an event received before the cut-off and still not applied.
    pub stuck: i64,
}

/// Storage of sessions and what the rules decided for them.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// A session's state JSON.
    async fn load_session(&self, id: &str) -> Result<Option<SessionRow>>;
    /// The state JSON of each of these sessions that is stored, by id, read at once (one
    /// read for a rules pass rather than one per event).
    async fn load_sessions(&self, ids: &[&str]) -> Result<std::collections::HashMap<String, String>>;
    /// Commits several steps in one transaction, in order.
    async fn commit_steps(&self, steps: Vec<StepCommit>) -> Result<()>;
    /// Timeline of a session.
    async fn timeline(&self, session_id: &str) -> Result<Vec<Entry>>;
    /// Sessions of an account, newest first; cursor is the last row's `created_at|id`.
    async fn sessions_by_account(
        &self,
        account_id: &str,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<Vec<(String, SessionRow)>>;
    /// Sessions matching a filter, newest first, each with its cursor (`started_at|id`).
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<(String, SessionRow)>>;
    /// Waiting sessions, and sessions with an event received before `stuck_before` and not
    /// applied yet.
    async fn session_gauges(&self, stuck_before: DateTime<Utc>) -> Result<SessionGauges>;
    /// Whether a session has no event to apply and no write not yet attempted.
    async fn session_settled(&self, session_id: &str) -> Result<bool>;
    /// The CRM id of an object casebridge created.
    async fn ref_get(&self, key: &str) -> Result<Option<String>>;
    /// Points casebridge's key at another CRM id (the object was merged into that one).
    async fn ref_set(&self, key: &str, crm_id: &str) -> Result<()>;
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
