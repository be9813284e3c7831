//! A session's state as the rules keep it between events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Agent, Channel, Customer, Direction, Event, SessionType};
use crate::keys::{CustomerKey, Lane};
use crate::model::{Leg, MissedReason, ObjRef};
use crate::phone::Phone;

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Events arrived before `session.created`; they wait for it.
    #[default]
    Waiting,
    /// Created, in the IVR.
    Created,
    /// Waiting in a queue.
    Queued,
    /// Offered to an agent.
    Assigned,
    /// Talking to an agent.
    Connected,
    /// Customer left before an agent connected.
    Abandoned,
    /// Over.
    Ended,
}

impl Phase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Created => "created",
            Phase::Queued => "queued",
            Phase::Assigned => "assigned",
            Phase::Connected => "connected",
            Phase::Abandoned => "abandoned",
            Phase::Ended => "ended",
        }
    }
}

/// Account outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccountOutcome {
    /// Not decided yet.
    #[default]
    Pending,
    /// An existing account matched.
    Found,
    /// casebridge created one.
    Created,
    /// No account.
    None,
}

/// Record outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// Trigger not reached yet.
    #[default]
    Pending,
    /// A new record.
    Created,
    /// Added to an open record.
    Appended,
    /// Added to a closed record, which was reopened.
    Reopened,
    /// No record.
    None,
}

/// A record update waiting for the record to exist (behaviour.md §5.10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "update", rename_all = "snake_case")]
pub enum PendingUpdate {
    /// A note.
    Note {
        /// Text.
        body: String,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// A file.
    Attachment {
        /// Name.
        name: String,
        /// Link.
        url: Option<String>,
        /// Inline content.
        content: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Field values.
    Fields {
        /// Field → value.
        fields: BTreeMap<String, serde_json::Value>,
    },
}

/// A session's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// Life phase.
    pub phase: Phase,
    /// Channel (known once created).
    pub channel: Option<Channel>,
    /// Session type.
    pub session_type: Option<SessionType>,
    /// Direction.
    pub direction: Option<Direction>,
    /// Customer as given.
    pub customer: Customer,
    /// Customer details changed after creation (queued/assigned carried new ones).
    pub customer_changed: bool,
    /// Customer phone, normalized.
    pub phone: Option<Phone>,
    /// Queue path.
    pub queue_path: Vec<String>,
    /// Language.
    pub language: Option<String>,
    /// Number dialed.
    pub dialed_number: Option<String>,
    /// Record the outbound call was dialed from.
    pub origin_record_id: Option<String>,
    /// Session this one calls back.
    pub related_session_id: Option<String>,
    /// Click-to-call request.
    pub dial_request_id: Option<String>,
    /// Platform records the session.
    pub recording_enabled: bool,
    /// Serialization lane (customer key), fixed at creation.
    pub lane: Option<Lane>,
    /// Start time.
    pub created_at: Option<DateTime<Utc>>,
    /// Reached a queue.
    pub queued: bool,
    /// First assignment.
    pub assigned_at: Option<DateTime<Utc>>,
    /// Agent connected.
    pub connected_at: Option<DateTime<Utc>>,
    /// Customer abandoned.
    pub abandoned_at: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Current agent.
    pub agent: Option<Agent>,
    /// Agents rung or transferred to.
    pub legs: Vec<Leg>,
    /// Customer messages so far.
    pub customer_messages: u32,
    /// Chat transcript lines.
    pub transcript: Vec<String>,
    /// Durations from `session.ended`.
    pub duration_s: Option<f64>,
    /// Hold time.
    pub hold_s: Option<f64>,
    /// Wait time.
    pub wait_s: Option<f64>,
    /// Account outcome.
    pub account_outcome: AccountOutcome,
    /// The account.
    pub account: Option<ObjRef>,
    /// Record outcome.
    pub record_outcome: RecordOutcome,
    /// The record.
    pub record: Option<ObjRef>,
    /// The record was created by this session.
    pub record_is_own: bool,
    /// The record's owner as casebridge last set it.
    pub record_owner: Option<String>,
    /// Rule that decided the record outcome.
    pub record_rule: Option<String>,
    /// Abandoned before an agent connected.
    pub abandoned: bool,
    /// Why it was missed.
    pub missed_reason: Option<MissedReason>,
    /// Recording link.
    pub recording_url: Option<String>,
    /// Recording attached.
    pub recording_attached: bool,
    /// Transcript attached.
    pub transcript_attached: bool,
    /// CSAT score.
    pub csat_score: Option<f64>,
    /// CSAT comment.
    pub csat_comment: Option<String>,
    /// SDK custom data.
    pub custom_data: BTreeMap<String, serde_json::Value>,
    /// Updates kept with the session (voicemail actions, smart actions…).
    pub updates: Vec<String>,
    /// Record updates waiting for the record.
    pub pending: Vec<PendingUpdate>,
    /// Session data written at least once.
    pub data_written: bool,
    /// Wrap-up disposition.
    pub disposition: Option<String>,
    /// Wrap-up notes.
    pub notes: Option<String>,
    /// Events that arrived before `session.created`.
    pub buffered: Vec<Event>,
    /// Commands issued so far (makes command keys deterministic).
    pub commands_issued: u32,
    /// Standard custom field values written on the record so far (catalog key → value).
    #[serde(default)]
    pub fields_written: BTreeMap<String, serde_json::Value>,
    /// The account's custom user id field is written.
    #[serde(default)]
    pub account_fields_written: bool,
}

impl Session {
    /// The leaf queue: the whole queue path joined with ` > `.
    pub fn leaf_queue(&self) -> Option<String> {
        if self.queue_path.is_empty() { None } else { Some(self.queue_path.join(" > ")) }
    }

    /// Whether `session.created` has been applied.
    pub fn is_created(&self) -> bool {
        self.phase != Phase::Waiting
    }

    /// Whether the session is over (abandoned or ended).
    pub fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Ended | Phase::Abandoned) || self.ended_at.is_some()
    }

    /// The session's lane (the session's own until `session.created` fixes it).
    pub fn lane(&self) -> Lane {
        self.lane.clone().unwrap_or_else(|| Lane::session(&self.id))
    }

    /// Every customer key of the session: app user id, phone, email, and its account once known.
    pub fn customer_keys(&self) -> Vec<CustomerKey> {
        let mut keys = CustomerKey::of_customer(&self.customer, self.phone.as_ref());
        keys.extend(self.account.as_ref().map(CustomerKey::account));
        keys
    }
}
