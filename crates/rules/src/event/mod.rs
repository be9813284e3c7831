//! Session events as the contact center sends them (api.md "Events in"); reading and
//! checking them is in `parse`.

mod parse;

pub use parse::{CSAT_MAX, CSAT_MIN, EVENT_TYPES, MAX_ID_LEN, parse_event};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which kind of conversation a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A phone call.
    Voice,
    /// A chat (web, app or SMS).
    Chat,
    /// A voicemail left by the customer.
    Voicemail,
}

impl Channel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Chat => "chat",
            Channel::Voicemail => "voicemail",
        }
    }
}

/// Who started the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The customer reached the contact center.
    Inbound,
    /// An agent reached the customer.
    Outbound,
}

/// The session types of behaviour.md §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    /// Inbound call through the IVR.
    VoiceInboundIvr,
    /// Inbound call from the mobile app.
    VoiceInboundApp,
    /// Inbound call from the web.
    VoiceInboundWeb,
    /// Scheduled call booked in the app.
    VoiceScheduledApp,
    /// Scheduled call booked on the web.
    VoiceScheduledWeb,
    /// Call placed by an agent.
    VoiceOutbound,
    /// Web chat.
    MessagingInboundWeb,
    /// In-app chat.
    MessagingInboundApp,
    /// SMS conversation.
    MessagingInboundSms,
    /// Voicemail.
    Voicemail,
}

impl SessionType {
    /// Display name, used for tags.
    pub fn display_name(self) -> &'static str {
        match self {
            SessionType::VoiceInboundIvr => "Voice Inbound (IVR)",
            SessionType::VoiceInboundApp => "Voice Inbound (App)",
            SessionType::VoiceInboundWeb => "Voice Inbound (Web)",
            SessionType::VoiceScheduledApp => "Voice Scheduled (App)",
            SessionType::VoiceScheduledWeb => "Voice Scheduled (Web)",
            SessionType::VoiceOutbound => "Voice Outbound",
            SessionType::MessagingInboundWeb => "Messaging Inbound (Web Chat)",
            SessionType::MessagingInboundApp => "Messaging Inbound (App Chat)",
            SessionType::MessagingInboundSms => "Messaging Inbound (SMS)",
            SessionType::Voicemail => "Voicemail",
        }
    }

    /// CALL_TYPE label, used in titles.
    pub fn call_type_label(self) -> &'static str {
        match self {
            SessionType::VoiceInboundIvr => "IVR Call",
            SessionType::VoiceInboundApp => "Inbound Call (App)",
            SessionType::VoiceInboundWeb => "Inbound Call (Web)",
            SessionType::VoiceScheduledApp => "Voice Scheduled (App)",
            SessionType::VoiceScheduledWeb => "Scheduled Call (Web)",
            SessionType::VoiceOutbound => "Outbound Call",
            SessionType::MessagingInboundWeb => "Web Chat",
            SessionType::MessagingInboundApp => "App Chat",
            SessionType::MessagingInboundSms => "SMS",
            SessionType::Voicemail => "Voicemail",
        }
    }

    /// The channel this type belongs to.
    pub fn channel(self) -> Channel {
        match self {
            SessionType::MessagingInboundWeb | SessionType::MessagingInboundApp | SessionType::MessagingInboundSms => {
                Channel::Chat
            }
            SessionType::Voicemail => Channel::Voicemail,
            _ => Channel::Voice,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::VoiceInboundIvr => "voice_inbound_ivr",
            SessionType::VoiceInboundApp => "voice_inbound_app",
            SessionType::VoiceInboundWeb => "voice_inbound_web",
            SessionType::VoiceScheduledApp => "voice_scheduled_app",
            SessionType::VoiceScheduledWeb => "voice_scheduled_web",
            SessionType::VoiceOutbound => "voice_outbound",
            SessionType::MessagingInboundWeb => "messaging_inbound_web",
            SessionType::MessagingInboundApp => "messaging_inbound_app",
            SessionType::MessagingInboundSms => "messaging_inbound_sms",
            SessionType::Voicemail => "voicemail",
        }
    }
}

/// The customer as the contact center knows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    /// Phone number as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// App user id (mobile or web SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An agent of the contact center.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    /// Agent id on the platform.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub id: String,
    /// Email, the identity shared with the CRM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `session.created` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionCreated {
    /// voice, chat or voicemail.
    pub channel: Channel,
    /// One of behaviour.md §1.
    pub session_type: SessionType,
    /// inbound or outbound.
    pub direction: Direction,
    /// Who is on the other side.
    #[serde(default)]
    pub customer: Customer,
    /// Menu/queue nodes, outermost first.
    #[serde(default)]
    pub queue_path: Vec<String>,
    /// Language of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The number dialed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialed_number: Option<String>,
    /// Record the outbound call was dialed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_record_id: Option<String>,
    /// Earlier session this one calls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_session_id: Option<String>,
    /// Click-to-call request that produced this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_request_id: Option<String>,
    /// Whether the platform records this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_enabled: Option<bool>,
}

/// `session.queued` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionQueued {
    /// The queue path the session now waits in.
    pub queue_path: Vec<String>,
    /// Customer details learnt since creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
}

/// `session.assigned` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionAssigned {
    /// The agent the session is offered to.
    pub agent: Agent,
    /// Customer details learnt since creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
}

/// `message.created` sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    /// The customer.
    Customer,
    /// An agent.
    Agent,
    /// A bot.
    Bot,
    /// The platform.
    System,
}

/// `message.created` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageCreated {
    /// Who sent it.
    pub sender: Sender,
    /// What was written.
    pub text: String,
}

/// `session.ended` data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionEnded {
    /// Talk time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Hold time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_s: Option<f64>,
    /// Wait time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_s: Option<f64>,
}

/// `session.transferred` data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionTransferred {
    /// The agent now handling the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    /// The queue the session moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_path: Option<Vec<String>>,
}

/// What an agent did with a voicemail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VoicemailAction {
    /// Listened to it.
    Read,
    /// Closed it.
    Closed,
    /// Called the customer back.
    CalledBack,
}

/// `voicemail.updated` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoicemailUpdated {
    /// What the agent did.
    pub action: VoicemailAction,
    /// Who did it.
    pub agent: Agent,
}

/// `recording.available` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingAvailable {
    /// Where the recording can be fetched.
    pub url: String,
}

/// `csat.submitted` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CsatSubmitted {
    /// Survey score, from 0 to 10.
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 10.0))]
    pub score: f64,
    /// Free comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A file shared during a smart action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedFile {
    /// File name.
    pub name: String,
    /// Where it can be fetched.
    pub url: String,
}

/// `smart_action.completed` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmartActionCompleted {
    /// Which action (identity check, photo, payment…).
    pub action: String,
    /// Its results.
    pub result: serde_json::Map<String, serde_json::Value>,
    /// Files the customer shared.
    #[serde(default)]
    pub files: Vec<SharedFile>,
}

/// `smart_action.failed` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmartActionFailed {
    /// Which action.
    pub action: String,
    /// The error message.
    pub error: String,
    /// Whether the customer caused the failure.
    pub user_error: bool,
}

/// `custom_data.updated` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomDataUpdated {
    /// Key/values sent by the SDK.
    pub data: BTreeMap<String, serde_json::Value>,
}

/// `crm.record.updated` data (simulate input only: an agent changing a record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrmRecordUpdated {
    /// Session whose record changes.
    pub record_of_session: String,
    /// New status.
    pub status: String,
}

/// Event type and its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", content = "data")]
pub enum EventKind {
    /// A session starts.
    #[serde(rename = "session.created")]
    Created(SessionCreated),
    /// The session waits in a queue.
    #[serde(rename = "session.queued")]
    Queued(SessionQueued),
    /// An agent is assigned.
    #[serde(rename = "session.assigned")]
    Assigned(SessionAssigned),
    /// The agent and the customer are connected.
    #[serde(rename = "session.connected")]
    Connected,
    /// A chat message.
    #[serde(rename = "message.created")]
    Message(MessageCreated),
    /// The customer left before an agent connected.
    #[serde(rename = "session.abandoned")]
    Abandoned,
    /// The session is over.
    #[serde(rename = "session.ended")]
    Ended(SessionEnded),
    /// Moved to another agent or queue.
    #[serde(rename = "session.transferred")]
    Transferred(SessionTransferred),
    /// An agent acted on a voicemail.
    #[serde(rename = "voicemail.updated")]
    VoicemailUpdated(VoicemailUpdated),
    /// A recording can be fetched.
    #[serde(rename = "recording.available")]
    Recording(RecordingAvailable),
    /// A survey score.
    #[serde(rename = "csat.submitted")]
    Csat(CsatSubmitted),
    /// A smart action succeeded.
    #[serde(rename = "smart_action.completed")]
    SmartActionCompleted(SmartActionCompleted),
    /// A smart action failed.
    #[serde(rename = "smart_action.failed")]
    SmartActionFailed(SmartActionFailed),
    /// SDK custom data.
    #[serde(rename = "custom_data.updated")]
    CustomData(CustomDataUpdated),
    /// An agent wrapped the session up (written by casebridge's wrap-up API, not accepted on
    /// `POST /v1/events`).
    #[serde(rename = "session.wrapped_up")]
    WrappedUp(WrappedUp),
}

/// `session.wrapped_up` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WrappedUp {
    /// Disposition code (empty for Do not log).
    pub disposition: String,
    /// Notes (empty for Do not log).
    pub notes: String,
}

impl EventKind {
    /// The wire name of the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::Created(_) => "session.created",
            EventKind::Queued(_) => "session.queued",
            EventKind::Assigned(_) => "session.assigned",
            EventKind::Connected => "session.connected",
            EventKind::Message(_) => "message.created",
            EventKind::Abandoned => "session.abandoned",
            EventKind::Ended(_) => "session.ended",
            EventKind::Transferred(_) => "session.transferred",
            EventKind::VoicemailUpdated(_) => "voicemail.updated",
            EventKind::Recording(_) => "recording.available",
            EventKind::Csat(_) => "csat.submitted",
            EventKind::SmartActionCompleted(_) => "smart_action.completed",
            EventKind::SmartActionFailed(_) => "smart_action.failed",
            EventKind::CustomData(_) => "custom_data.updated",
            EventKind::WrappedUp(_) => "session.wrapped_up",
        }
    }
}

/// One session event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Unique event id (idempotency key): one id names one event, across sessions and types.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub id: String,
    /// The session it belongs to.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub session_id: String,
    /// When it happened (rule times come from here).
    pub at: DateTime<Utc>,
    /// Type and data.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The platform event this event was made from (native ingest only; not accepted on
    /// `POST /v1/events`, so not part of its schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub native: Option<NativeOrigin>,
}

/// The platform event a casebridge event was made from (api.md "Native event formats").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NativeOrigin {
    /// amazon-connect, twilio, genesys or cti.
    pub source: String,
    /// The platform's id of the event (what duplicates are recognized by).
    pub id: String,
    /// The platform's event type (`CONNECTED_TO_AGENT`, `task.created`, `newCall`…).
    #[serde(rename = "type")]
    pub kind: String,
    /// The event as received.
    pub payload: serde_json::Value,
}

/// One reason an event was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Dotted path of the offending field.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}
