//! What the rules ask of the CRM, what they decide, and what they tell it to do.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Channel;

/// A CRM object as the rules know it: by the CRM's id, or by casebridge's own key while the
/// object is still being created (the connector maps one to the other).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjRef {
    /// The CRM's id.
    Crm(String),
    /// casebridge's idempotency key (external id) of an object it creates.
    Key(String),
}

impl ObjRef {
    /// The id or key as text.
    pub fn as_str(&self) -> &str {
        match self {
            ObjRef::Crm(s) | ObjRef::Key(s) => s,
        }
    }
}

/// Kinds of CRM person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A contact.
    Contact,
    /// A lead.
    Lead,
    /// A person account.
    PersonAccount,
}

impl AccountKind {
    /// Rank for `multiple_match: priority` (lower wins).
    pub fn priority_rank(self) -> u8 {
        match self {
            AccountKind::Contact => 0,
            AccountKind::PersonAccount => 1,
            AccountKind::Lead => 2,
        }
    }
}

/// A question the rules need answered before they can decide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "lookup", content = "key", rename_all = "snake_case")]
pub enum Lookup {
    /// Accounts with this app user id.
    AccountsByUserId(String),
    /// Accounts with this phone (E.164, or verbatim when unparseable).
    AccountsByPhone(String),
    /// Accounts with this email (lowercase).
    AccountsByEmail(String),
    /// The account's records.
    RecordsOfAccount(ObjRef),
    /// The record another session ended up with.
    RecordOfSession(String),
    /// The origin record of a click-to-call dial request (behaviour.md §12).
    DialRequestOrigin(String),
}

/// An account found by a lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountHit {
    /// CRM id.
    pub id: String,
    /// Kind of person.
    pub kind: AccountKind,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Last update in the CRM.
    pub updated_at: DateTime<Utc>,
}

/// A record as lookups see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordInfo {
    /// The record.
    pub id: ObjRef,
    /// Originating leaf queue (menu path).
    #[serde(default)]
    pub leaf_queue: Option<String>,
    /// Originating channel.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Current status.
    pub status: String,
    /// Whether the status is a closed one.
    pub is_closed: bool,
    /// When it was closed.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The answer to a [`Lookup`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Accounts found.
    Accounts(Vec<AccountHit>),
    /// Records found.
    Records(Vec<RecordInfo>),
    /// A session's record, if any.
    Record(Option<ObjRef>),
    /// A dial request's origin record id, if the request is known and has one.
    Origin(Option<String>),
}

/// Answers gathered so far for one step.
pub type Answers = BTreeMap<Lookup, Answer>;

/// How a CRM formats tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagStyle {
    /// The CRM has no tags.
    None,
    /// Display name as is (built-in, Freshdesk).
    AsIs,
    /// Lowercase, words joined with `_` (Zendesk).
    Snake,
    /// Parenthesis turned into a dash (Kustomer).
    Dash,
}

impl TagStyle {
    /// Formats a session type's display name as a tag, if the CRM has tags.
    pub fn format(self, display: &str) -> Option<String> {
        match self {
            TagStyle::None => None,
            TagStyle::AsIs => Some(display.to_string()),
            TagStyle::Snake => {
                let words: Vec<String> = display
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(|w| w.to_lowercase())
                    .collect();
                Some(words.join("_"))
            }
            TagStyle::Dash => {
                let s = display.replace(" (", " - ").replace(['(', ')'], "");
                Some(s.trim().to_string())
            }
        }
    }
}

/// What the rules must know about the connected CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmProfile {
    /// How tags are written.
    pub tags: TagStyle,
    /// Status a reopened record gets when settings do not say.
    pub default_open_status: String,
    /// Whether the caller's phone is written as a note on new records.
    pub phone_note: bool,
    /// Standard custom fields enabled in the CRM: catalog key → when (behaviour.md §11).
    #[serde(default)]
    pub custom_fields: BTreeMap<String, EnabledField>,
}

/// A standard custom field enabled in the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnabledField {
    /// The CRM's field name.
    pub crm_field: String,
    /// Sessions that start at or after this time get values.
    pub enabled_at: DateTime<Utc>,
}

impl CrmProfile {
    /// The built-in CRM.
    pub fn builtin() -> Self {
        CrmProfile {
            tags: TagStyle::AsIs,
            default_open_status: "open".into(),
            phone_note: true,
            custom_fields: BTreeMap::new(),
        }
    }
}

/// Why a session without a connected agent counts as missed (behaviour.md §13.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MissedReason {
    /// Left before reaching a queue.
    AbandonedInIvr,
    /// Left while waiting in a queue.
    AbandonedInQueue,
    /// A chat abandoned within the short-abandon window.
    ShortAbandoned,
    /// Left after an agent was assigned, before connecting.
    AbandonedAfterAssignment,
    /// Ended by the platform without an agent.
    NoAgentAvailable,
}

impl MissedReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedReason::AbandonedInIvr => "abandoned_in_ivr",
            MissedReason::AbandonedInQueue => "abandoned_in_queue",
            MissedReason::ShortAbandoned => "short_abandoned",
            MissedReason::AbandonedAfterAssignment => "abandoned_after_assignment",
            MissedReason::NoAgentAvailable => "no_agent_available",
        }
    }
}

/// One leg of a session: an agent it rang or was transferred to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    /// When the leg started.
    pub at: DateTime<Utc>,
    /// `assigned` or `transferred`.
    pub kind: String,
    /// The agent, if any.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The queue, if it changed.
    #[serde(default)]
    pub queue: Option<String>,
}

/// The session data written once per session (behaviour.md §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SessionData {
    /// Session id.
    pub session_id: String,
    /// Session type.
    pub session_type: String,
    /// Menu path.
    pub queue: Option<String>,
    /// Customer phone.
    pub customer_phone: Option<String>,
    /// Agent who handled it last.
    pub agent_id: Option<String>,
    /// Start.
    pub started_at: Option<DateTime<Utc>>,
    /// Agent connected.
    pub connected_at: Option<DateTime<Utc>>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
    /// Talk time.
    pub duration_s: Option<f64>,
    /// Hold time.
    pub hold_s: Option<f64>,
    /// Wait time.
    pub wait_s: Option<f64>,
    /// Customer messages.
    pub customer_messages: u32,
    /// CSAT score.
    pub csat_score: Option<f64>,
    /// CSAT comment.
    pub csat_comment: Option<String>,
    /// Wrap-up disposition.
    pub disposition: Option<String>,
    /// Wrap-up notes.
    pub notes: Option<String>,
    /// Recording link.
    pub recording_url: Option<String>,
    /// Whether a transcript was attached.
    pub transcript: Option<String>,
    /// Abandoned before an agent connected.
    pub abandoned: bool,
    /// Why it was missed.
    pub missed_reason: Option<MissedReason>,
    /// Agents rung or transferred to, in order (one session, one log).
    pub legs: Vec<Leg>,
    /// Voicemail actions, smart action results and other updates kept with the session.
    pub updates: Vec<String>,
    /// SDK custom data.
    pub custom_data: BTreeMap<String, serde_json::Value>,
}

/// Where a session's data is hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataTarget {
    /// An activity.
    Activity,
    /// A session object.
    SessionObject,
}

/// One write to the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // serialized into the outbox, rarely held in bulk
pub enum CrmOp {
    /// Create a person, idempotent on `key`.
    CreateAccount {
        /// casebridge's key (external id).
        key: String,
        /// Kind to create.
        kind: AccountKind,
        /// Name.
        name: Option<String>,
        /// Phone (E.164).
        phone: Option<String>,
        /// The phone's extension, kept apart from `phone` (vendors have a field for it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone_extension: Option<String>,
        /// Email.
        email: Option<String>,
        /// App user id.
        user_id: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Update a person created by this session with later details.
    UpdateAccount {
        /// Which account.
        account: ObjRef,
        /// Name.
        name: Option<String>,
        /// Email.
        email: Option<String>,
        /// App user id.
        user_id: Option<String>,
    },
    /// Create a record, idempotent on `key`.
    CreateRecord {
        /// casebridge's key (external id).
        key: String,
        /// Requester.
        account: Option<ObjRef>,
        /// Title.
        title: String,
        /// Originating leaf queue.
        leaf_queue: Option<String>,
        /// Originating channel.
        channel: Channel,
        /// Owner agent id.
        owner: Option<String>,
        /// Tags.
        tags: Vec<String>,
        /// The session.
        session_id: String,
        /// Abandoned marker.
        abandoned: bool,
        /// Missed-session reason.
        missed_reason: Option<MissedReason>,
        /// Note written with the record (the caller's phone).
        note: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Add a session to an existing record, re-tag it and optionally reopen it.
    AppendSession {
        /// The record.
        record: ObjRef,
        /// The session.
        session_id: String,
        /// Tags to add.
        tags: Vec<String>,
        /// Reopen to this status.
        reopen_to: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Reassign a record.
    SetOwner {
        /// The record.
        record: ObjRef,
        /// The agent.
        agent_id: String,
    },
    /// Mark a record as belonging to an abandoned session.
    MarkAbandoned {
        /// The record.
        record: ObjRef,
        /// Why.
        missed_reason: MissedReason,
    },
    /// Add an internal note.
    AddNote {
        /// The record.
        record: ObjRef,
        /// Text.
        body: String,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Attach a file (by link, or inline text such as a transcript).
    AddAttachment {
        /// The record.
        record: ObjRef,
        /// File name.
        name: String,
        /// Link, when the file lives elsewhere.
        url: Option<String>,
        /// Inline text content.
        content: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Set record fields.
    SetFields {
        /// The record.
        record: ObjRef,
        /// Field → value.
        fields: BTreeMap<String, serde_json::Value>,
    },
    /// Change a record's status.
    SetStatus {
        /// The record.
        record: ObjRef,
        /// New status.
        status: String,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Set custom fields on a person.
    SetAccountFields {
        /// The person.
        account: ObjRef,
        /// Field → value.
        fields: BTreeMap<String, serde_json::Value>,
    },
    /// Write (or rewrite) the call log of a wrap-up on a person and/or a record; with neither,
    /// remove the session's call log (a later wrap-up chose "Do not log").
    LogCall {
        /// The session.
        session_id: String,
        /// The person it is logged on.
        person: Option<ObjRef>,
        /// The record it is related to.
        record: Option<ObjRef>,
        /// Disposition code.
        disposition: String,
        /// Disposition label.
        label: String,
        /// Agent's notes.
        notes: String,
        /// The agent.
        agent_id: Option<String>,
        /// When the call started.
        at: DateTime<Utc>,
    },
    /// Set an agent's status in the CRM (two-way status sync).
    SetAgentStatus {
        /// The agent's email (the identity both sides share).
        email: String,
        /// CRM status.
        crm_status: String,
        /// When the platform status changed.
        at: DateTime<Utc>,
    },
    /// Write (or rewrite) the session's activity or session object.
    WriteSessionData {
        /// activity or session_object.
        target: DataTarget,
        /// Record it hangs on.
        record: Option<ObjRef>,
        /// Account it hangs on.
        account: Option<ObjRef>,
        /// The data.
        data: SessionData,
    },
}

impl CrmOp {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            CrmOp::CreateAccount { .. } => "create_account",
            CrmOp::UpdateAccount { .. } => "update_account",
            CrmOp::CreateRecord { .. } => "create_record",
            CrmOp::AppendSession { .. } => "append_session",
            CrmOp::SetOwner { .. } => "set_owner",
            CrmOp::MarkAbandoned { .. } => "mark_abandoned",
            CrmOp::AddNote { .. } => "add_note",
            CrmOp::AddAttachment { .. } => "add_attachment",
            CrmOp::SetFields { .. } => "set_fields",
            CrmOp::SetStatus { .. } => "set_status",
            CrmOp::WriteSessionData { .. } => "write_session_data",
            CrmOp::SetAccountFields { .. } => "set_account_fields",
            CrmOp::LogCall { .. } => "log_call",
            CrmOp::SetAgentStatus { .. } => "set_agent_status",
        }
    }

    /// The object references the write carries, to replace casebridge's keys by CRM ids
    /// before delivery.
    pub fn refs_mut(&mut self) -> Vec<&mut ObjRef> {
        match self {
            CrmOp::CreateAccount { .. } | CrmOp::SetAgentStatus { .. } => vec![],
            CrmOp::UpdateAccount { account, .. } | CrmOp::SetAccountFields { account, .. } => vec![account],
            CrmOp::CreateRecord { account, .. } => account.iter_mut().collect(),
            CrmOp::AppendSession { record, .. }
            | CrmOp::SetOwner { record, .. }
            | CrmOp::MarkAbandoned { record, .. }
            | CrmOp::AddNote { record, .. }
            | CrmOp::AddAttachment { record, .. }
            | CrmOp::SetFields { record, .. }
            | CrmOp::SetStatus { record, .. } => vec![record],
            CrmOp::LogCall { person, record, .. } => person.iter_mut().chain(record.iter_mut()).collect(),
            CrmOp::WriteSessionData { record, account, .. } => record.iter_mut().chain(account.iter_mut()).collect(),
        }
    }
}

/// A click-to-call dial request handed to the contact center: casebridge's own webhook, not
/// a CRM write, delivered from the same outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DialHandoff {
    /// Dial request id.
    pub dial_request_id: String,
    /// The agent.
    pub agent_id: String,
    /// The agent's email.
    pub agent_email: Option<String>,
    /// Number to dial (E.164).
    pub phone: String,
    /// Record it was dialed from.
    pub origin_record_id: Option<String>,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
}

/// Writes to the contact center.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ContactCenterOp {
    /// Hand a dial request over (signed outbound webhook).
    DialWebhook(DialHandoff),
}

/// What one outbox row delivers, as stored: a CRM write or a write to the contact center.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // serialized into the outbox, rarely held in bulk
pub enum OutboxOp {
    /// To the CRM, through the connector.
    Crm(CrmOp),
    /// To the contact center.
    ContactCenter(ContactCenterOp),
}

impl OutboxOp {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            OutboxOp::Crm(op) => op.name(),
            OutboxOp::ContactCenter(ContactCenterOp::DialWebhook(_)) => "dial_webhook",
        }
    }
}

/// A CRM write with its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Idempotency key, unique across all commands.
    pub key: String,
    /// The write.
    pub op: CrmOp,
}

/// Timeline entry kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An event arrived.
    Event,
    /// A rule decided something.
    Decision,
    /// A CRM write happened.
    Crm,
}

/// One line of a session's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entry {
    /// When (event time for events and decisions; write time for CRM lines).
    pub at: DateTime<Utc>,
    /// event, decision or crm.
    pub kind: EntryKind,
    /// What happened.
    pub summary: String,
    /// The rule that fired or prevented something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A line of casebridge's own activity log (behaviour.md §9): every interaction on the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformActivity {
    /// The session.
    pub session_id: String,
    /// `call_log`, `missed`, `abandoned` or `voicemail`.
    pub kind: String,
    /// Why the session was missed.
    pub missed_reason: Option<MissedReason>,
    /// The person (the session's account).
    pub person: Option<ObjRef>,
    /// The agent.
    pub agent_id: Option<String>,
    /// Menu path.
    pub queue: Option<String>,
    /// Channel.
    pub channel: Option<Channel>,
    /// When the session started.
    pub session_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_rows_written_before_the_split_still_read() {
        let dial = r#"{"op":"dial_webhook","dial_request_id":"dial_1","agent_id":"a1","agent_email":null,"phone":"+14155550100","origin_record_id":"rec_1","requested_at":"2026-11-20T10:00:00Z"}"#;
        let op: OutboxOp = serde_json::from_str(dial).expect("dial row");
        assert!(
            matches!(&op, OutboxOp::ContactCenter(ContactCenterOp::DialWebhook(h)) if h.dial_request_id == "dial_1")
        );
        assert_eq!(serde_json::to_value(&op).ok(), serde_json::from_str::<serde_json::Value>(dial).ok());
        let note = r#"{"op":"add_note","record":{"key":"cb-rec-s1"},"body":"hi","at":"2026-11-20T10:00:00Z"}"#;
        let op: OutboxOp = serde_json::from_str(note).expect("note row");
        assert_eq!(op.name(), "add_note");
    }

    #[test]
    fn refs_are_rewritten_in_place() {
        let mut op = CrmOp::LogCall {
            session_id: "s1".into(),
            person: Some(ObjRef::Key("cb-wrapacct-s1".into())),
            record: Some(ObjRef::Crm("rec_1".into())),
            disposition: String::new(),
            label: String::new(),
            notes: String::new(),
            agent_id: None,
            at: DateTime::<Utc>::default(),
        };
        for r in op.refs_mut() {
            if let ObjRef::Key(_) = r {
                *r = ObjRef::Crm("acc_9".into());
            }
        }
        assert!(matches!(op, CrmOp::LogCall { person: Some(ObjRef::Crm(ref p)), .. } if p == "acc_9"));
    }
}
