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
///
/// Stored as JSON without the fields that hold their default (absent, empty, false, zero):
/// a session is rewritten at every step, and most of its fields stay empty for most of its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// Life phase.
    pub phase: Phase,
    /// Channel (known once created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Session type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_type: Option<SessionType>,
    /// Direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Customer as given.
    pub customer: Customer,
    /// Customer details changed after creation (queued/assigned carried new ones).
    #[serde(skip_serializing_if = "is_false")]
    pub customer_changed: bool,
    /// Customer phone, normalized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    /// Queue path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queue_path: Vec<String>,
    /// Language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Number dialed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialed_number: Option<String>,
    /// Record the outbound call was dialed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_record_id: Option<String>,
    /// Session this one calls back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related_session_id: Option<String>,
    /// Click-to-call request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_request_id: Option<String>,
    /// Platform records the session.
    #[serde(skip_serializing_if = "is_false")]
    pub recording_enabled: bool,
    /// Serialization lane (customer key), fixed at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane: Option<Lane>,
    /// Start time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Reached a queue.
    #[serde(skip_serializing_if = "is_false")]
    pub queued: bool,
    /// First assignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<DateTime<Utc>>,
    /// Agent connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<DateTime<Utc>>,
    /// Customer abandoned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandoned_at: Option<DateTime<Utc>>,
    /// Ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Current agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    /// Agents rung or transferred to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub legs: Vec<Leg>,
    /// Customer messages so far.
    #[serde(skip_serializing_if = "is_zero")]
    pub customer_messages: u32,
    /// Chat transcript lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<String>,
    /// Durations from `session.ended`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Hold time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_s: Option<f64>,
    /// Wait time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_s: Option<f64>,
    /// Account outcome.
    pub account_outcome: AccountOutcome,
    /// The account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<ObjRef>,
    /// Record outcome.
    pub record_outcome: RecordOutcome,
    /// The record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<ObjRef>,
    /// The record was created by this session.
    #[serde(skip_serializing_if = "is_false")]
    pub record_is_own: bool,
    /// The record's owner as casebridge last set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_owner: Option<String>,
    /// Rule that decided the record outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_rule: Option<String>,
    /// Abandoned before an agent connected.
    #[serde(skip_serializing_if = "is_false")]
    pub abandoned: bool,
    /// Why it was missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed_reason: Option<MissedReason>,
    /// Recording link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
    /// Recording attached.
    #[serde(skip_serializing_if = "is_false")]
    pub recording_attached: bool,
    /// Transcript attached.
    #[serde(skip_serializing_if = "is_false")]
    pub transcript_attached: bool,
    /// CSAT score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csat_score: Option<f64>,
    /// CSAT comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csat_comment: Option<String>,
    /// SDK custom data.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_data: BTreeMap<String, serde_json::Value>,
    /// Updates kept with the session (voicemail actions, smart actions…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<String>,
    /// Record updates waiting for the record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingUpdate>,
    /// Session data written at least once.
    #[serde(skip_serializing_if = "is_false")]
    pub data_written: bool,
    /// Wrap-up disposition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// Wrap-up notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Events that arrived before `session.created`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buffered: Vec<Event>,
    /// Commands issued so far (makes command keys deterministic).
    #[serde(skip_serializing_if = "is_zero")]
    pub commands_issued: u32,
    /// Standard custom field values written on the record so far (catalog key → value).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields_written: BTreeMap<String, serde_json::Value>,
    /// The account's custom user id field is written.
    #[serde(skip_serializing_if = "is_false")]
    pub account_fields_written: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_session_leaves_out_its_defaults_and_reads_back_the_same() {
        let s = Session {
            id: "s-1".into(),
            recording_enabled: true,
            queue_path: vec!["Sales".into()],
            customer_messages: 2,
            ..Session::default()
        };
        let json = serde_json::to_value(&s).unwrap();
        let obj = json.as_object().unwrap();
        for absent in ["channel", "phone", "legs", "abandoned", "commands_issued", "custom_data"] {
            assert!(!obj.contains_key(absent), "{absent} stored: {json}");
        }
        for kept in ["id", "phase", "account_outcome", "record_outcome", "recording_enabled", "customer_messages"] {
            assert!(obj.contains_key(kept), "{kept} missing: {json}");
        }
        assert_eq!(serde_json::from_value::<Session>(json).unwrap(), s);
    }

    #[test]
    fn a_session_stored_with_every_field_spelled_out_reads_the_same() {
        let s = Session { id: "s-2".into(), queued: true, ..Session::default() };
        let mut full = serde_json::to_value(&s).unwrap();
        let obj = full.as_object_mut().unwrap();
        for (k, v) in [
            ("channel", serde_json::Value::Null),
            ("legs", serde_json::json!([])),
            ("abandoned", serde_json::json!(false)),
            ("commands_issued", serde_json::json!(0)),
        ] {
            obj.insert(k.into(), v);
        }
        assert_eq!(serde_json::from_value::<Session>(full).unwrap(), s);
    }
}
