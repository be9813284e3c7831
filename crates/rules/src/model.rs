//! What the rules ask of the CRM, what they decide, and what they tell it to do.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Channel, NativeOrigin};

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
    /// For an event made from a platform's own event: that event, as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeOrigin>,
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
