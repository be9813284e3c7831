//! The shapes of the platforms' payloads, for the OpenAPI document only: each endpoint reads
//! its payloads member by member (`casebridge_rules::native`), so that every error is named.
#![allow(dead_code)] // never built: these exist for their schemas

use serde::Serialize;
use utoipa::ToSchema;

/// An EventBridge event (Amazon Connect contact events, Genesys Cloud detail events).
#[derive(Serialize, ToSchema)]
pub struct EventBridgeEvent {
    /// The envelope version ("0").
    pub version: String,
    /// The event's id: what duplicates are recognized by.
    pub id: String,
    /// "Amazon Connect Contact Event", or the Genesys topic pattern.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// aws.connect, or the partner event source.
    pub source: String,
    /// When EventBridge received it.
    pub time: String,
    /// The contact event (eventType, contactId…) or Genesys' {topicName, eventBody}.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// One EventBridge event or a batch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventBridgeIn {
    /// One event.
    One(EventBridgeEvent),
    /// A batch.
    Many(Vec<EventBridgeEvent>),
}

/// An SNS message as SNS posts it to an HTTPS subscription.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    /// Notification, SubscriptionConfirmation or UnsubscribeConfirmation.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The message's id.
    pub message_id: String,
    /// The topic.
    pub topic_arn: String,
    /// For a notification, the chat message as JSON text.
    pub message: String,
    /// When SNS sent it.
    pub timestamp: String,
    /// 1 (SHA1withRSA) or 2 (SHA256withRSA).
    pub signature_version: String,
    /// Base64 signature of the message's fields.
    pub signature: String,
    /// Where SNS keeps its signing certificate.
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    /// For a confirmation: the link that confirms the subscription.
    #[serde(rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
}

/// One record of a Firehose delivery.
#[derive(Serialize, ToSchema)]
pub struct FirehoseRecord {
    /// A contact record, JSON in base64.
    pub data: String,
}

/// A Kinesis Data Firehose HTTP endpoint delivery.
#[derive(Serialize, ToSchema)]
pub struct FirehoseIn {
    /// The delivery's id, echoed in the answer.
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// Milliseconds since 1970.
    pub timestamp: i64,
    /// The records.
    pub records: Vec<FirehoseRecord>,
}

/// A TaskRouter event callback's main fields (every field Twilio sends is kept and signed).
#[derive(Serialize, ToSchema)]
pub struct TaskRouterEvent {
    /// task.created, task-queue.entered, reservation.accepted, task.wrapup…
    #[serde(rename = "EventType")]
    pub event_type: String,
    /// The event's id.
    #[serde(rename = "Sid")]
    pub sid: Option<String>,
    /// Milliseconds since 1970.
    #[serde(rename = "TimestampMs")]
    pub timestamp_ms: Option<String>,
    /// The task.
    #[serde(rename = "TaskSid")]
    pub task_sid: String,
    /// The task's attributes, JSON text (call_sid, from, to, conversationSid…).
    #[serde(rename = "TaskAttributes")]
    pub task_attributes: Option<String>,
    /// The queue's name.
    #[serde(rename = "TaskQueueName")]
    pub task_queue_name: Option<String>,
    /// voice, chat, sms…
    #[serde(rename = "TaskChannelUniqueName")]
    pub task_channel_unique_name: Option<String>,
    /// The worker, on reservation events.
    #[serde(rename = "WorkerSid")]
    pub worker_sid: Option<String>,
}

/// A CloudEvent of a Twilio Event Streams sink.
#[derive(Serialize, ToSchema)]
pub struct CloudEvent {
    /// "1.0".
    pub specversion: String,
    /// com.twilio.taskrouter.…, com.twilio.conversations.…
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's id: what duplicates are recognized by.
    pub id: String,
    /// The sink's source.
    pub source: String,
    /// The event's data.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// One CloudEvent or a batch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum CloudEventsIn {
    /// One event.
    One(CloudEvent),
    /// A batch.
    Many(Vec<CloudEvent>),
}

/// A generic CTI event.
#[derive(Serialize, ToSchema)]
pub struct CtiEvent {
    /// newCall, answer or hangup.
    pub event: String,
    /// The call's id (`call_id` is read too).
    #[serde(rename = "callId")]
    pub call_id: String,
    /// The calling number.
    pub from: String,
    /// The called number.
    pub to: String,
    /// in or out.
    pub direction: String,
    /// The users concerned (a name or a list; `user[]` in forms).
    #[schema(value_type = Object)]
    pub user: Option<serde_json::Value>,
    /// The queue, on newCall.
    pub queue: Option<String>,
    /// Who answered, on answer and hangup.
    #[serde(rename = "answeringNumber")]
    pub answering_number: Option<String>,
    /// normalClearing, busy, cancel, noAnswer, congestion, notFound or forwarded, on hangup.
    pub cause: Option<String>,
}
