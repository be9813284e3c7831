//! Amazon Connect: contact events (EventBridge), chat messages (SNS) and contact records
//! (Kinesis Data Firehose), read into [`Facts`].
//!
//! A session is a contact chain: `amazon-connect:<initialContactId>` (the contact's own id
//! when it has no initial contact). Every contact event carries what is known of its contact
//! so far (start, queue, agent, end), so a late or lost event is made up for by the next one.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::attributes;
use super::facts::{Facts, Native, NativeMessage, NativeTransfer, Reading, Source};
use super::read::{Problems, at, iso_time, member, number, text};
use crate::event::{Agent, Channel, Direction, FieldError, Sender, SessionType};
use crate::settings::ingest::Mapping;

/// The EventBridge `detail-type` of contact events.
pub const CONTACT_EVENT: &str = "Amazon Connect Contact Event";

/// Contact event types that tell casebridge something.
const RELEVANT: &[&str] = &[
    "INITIATED",
    "CONNECTED_TO_SYSTEM",
    "QUEUED",
    "CONNECTED_TO_AGENT",
    "DISCONNECTED",
    "CONTACT_DATA_UPDATED",
    "COMPLETED",
];

fn channel_of(s: &str) -> Option<Channel> {
    match s.to_ascii_uppercase().as_str() {
        "VOICE" => Some(Channel::Voice),
        "CHAT" => Some(Channel::Chat),
        _ => None,
    }
}

/// What one contact (event `detail` or contact record) tells, in the keys both share.
struct Contact<'a> {
    v: &'a Value,
    record: bool,
}

impl Contact<'_> {
    fn get(&self, event_key: &str, record_key: &str) -> Option<&Value> {
        at(self.v, if self.record { record_key } else { event_key })
    }
    fn text(&self, event_key: &str, record_key: &str) -> Option<String> {
        text(self.v, if self.record { record_key } else { event_key })
    }
    fn time(&self, event_key: &str, record_key: &str) -> Option<DateTime<Utc>> {
        iso_time(self.v, if self.record { record_key } else { event_key })
    }
}

/// The facts of one contact; `default_at` stands for the time of the step the event names
/// when the contact does not carry it.
fn contact_facts(
    c: &Contact<'_>,
    m: &Mapping,
    kind: &str,
    default_at: DateTime<Utc>,
    p: &mut Problems,
) -> (String, Facts) {
    let mut f = Facts::default();
    let contact_id = p.id(c.v, if c.record { "ContactId" } else { "contactId" }, "the contact's id");
    let initial = c.text("initialContactId", "InitialContactId").filter(|s| !s.is_empty());
    let root = initial.clone().unwrap_or_else(|| contact_id.clone());
    let channel_text = c.text("channel", "Channel").unwrap_or_default();
    f.channel = channel_of(&channel_text);
    let method = c.text("initiationMethod", "InitiationMethod").unwrap_or_default().to_ascii_uppercase();
    f.direction =
        Some(if matches!(method.as_str(), "OUTBOUND" | "CALLBACK") { Direction::Outbound } else { Direction::Inbound });
    let subtype = at(c.v, "segmentAttributes.connect:Subtype").and_then(|s| text(s, "ValueString"));
    f.session_type = match (f.channel, f.direction, subtype.as_deref()) {
        (Some(Channel::Chat), _, Some("connect:SMS")) => Some(SessionType::MessagingInboundSms),
        (Some(Channel::Chat), _, _) => Some(SessionType::MessagingInboundWeb),
        (Some(Channel::Voice), Some(Direction::Outbound), _) => Some(SessionType::VoiceOutbound),
        _ => None,
    };
    let queue = c.get("queueInfo", "Queue");
    let queue_path = queue.and_then(|q| {
        m.queue_path(text(q, if c.record { "ARN" } else { "queueArn" }).as_deref(), text(q, "Name").as_deref())
    });
    let enqueued = queue.and_then(|q| iso_time(q, if c.record { "EnqueueTimestamp" } else { "enqueueTimestamp" }));
    let agent_v = c.get("agentInfo", "Agent");
    let agent = agent_v.and_then(|a| {
        let arn = text(a, if c.record { "ARN" } else { "agentArn" });
        let user = text(a, "Username");
        let keys: Vec<&str> = [arn.as_deref(), user.as_deref()].into_iter().flatten().collect();
        m.agent_id(&keys).map(|id| Agent { id, email: None, name: None })
    });
    let connected = agent_v.and_then(|a| iso_time(a, "connectedToAgentTimestamp"));
    let disconnected = c.time("disconnectTimestamp", "DisconnectTimestamp");
    let initiated = c.time("initiationTimestamp", "InitiationTimestamp");
    let is_first_leg = contact_id == root;
    let kind = kind.to_ascii_uppercase();
    if is_first_leg {
        f.created_at = initiated.or(Some(default_at));
        f.queue_path = queue_path.clone();
        f.queued_at = enqueued.or((kind == "QUEUED").then_some(default_at)).filter(|_| queue.is_some());
        f.agent = agent.clone();
        f.connected_at = connected.or((kind == "CONNECTED_TO_AGENT").then_some(default_at)).filter(|_| agent.is_some());
    } else {
        // A transfer: another leg of the same chain.
        if queue_path.is_some() {
            f.transfers.push(NativeTransfer {
                leg: format!("{contact_id}:queue"),
                at: enqueued.or(initiated).unwrap_or(default_at),
                queue_path: queue_path.clone(),
                agent: None,
            });
        }
        if let Some(a) = &agent {
            f.transfers.push(NativeTransfer {
                leg: format!("{contact_id}:agent"),
                at: connected.unwrap_or(default_at),
                queue_path: None,
                agent: Some(a.clone()),
            });
        }
    }
    f.legs.insert(contact_id.clone());
    let over =
        disconnected.or(matches!(kind.as_str(), "DISCONNECTED" | "COMPLETED" | "CONTACT_RECORD").then_some(default_at));
    if let Some(end) = over {
        f.legs_over.insert(contact_id.clone());
        f.ended_at = Some(end);
        let chat_abandoned =
            at(c.v, "chatMetrics.customerMetrics.conversationAbandon").and_then(Value::as_bool).unwrap_or(false);
        let never_connected = connected.is_none() && agent_v.is_none();
        if is_first_leg && (chat_abandoned || (never_connected && queue.is_some())) {
            f.abandoned_at = Some(end);
        }
    }
    if is_first_leg {
        f.customer.phone = c.text("customerEndpoint.address", "CustomerEndpoint.Address");
        f.dialed_number = c
            .text("tags.aws:connect:systemEndpoint", "SystemEndpoint.Address")
            .or_else(|| c.text("systemEndpoint.address", "SystemEndpoint.Address"));
    }
    let attrs: Vec<&Value> = [c.get("attributes", "Attributes"), c.get("tags", "Tags")].into_iter().flatten().collect();
    attributes::apply(&mut f, m, &attrs);
    if c.record {
        f.ended.hold_s = agent_v.and_then(|a| number(a, "CustomerHoldDuration"));
        f.ended.duration_s = agent_v.and_then(|a| number(a, "AgentInteractionDuration"));
    }
    (root, f)
}

/// One EventBridge event (`Amazon Connect Contact Event`).
pub fn read_contact_event(v: &Value, m: &Mapping) -> Result<Reading, Vec<FieldError>> {
    let mut p = Problems::default();
    if !v.is_object() {
        p.add("", "an EventBridge event must be a JSON object with id, detail-type and detail");
        return Err(p.errors);
    }
    let id = p.id(v, "id", "the EventBridge event id");
    let detail_type = text(v, "detail-type");
    let Some(detail_type) = detail_type else {
        p.add("detail-type", "is required (\"Amazon Connect Contact Event\")");
        return Err(p.errors);
    };
    if detail_type != CONTACT_EVENT {
        return p.finish(Reading::Irrelevant { kind: detail_type });
    }
    let Some(detail) = member(v, "detail").filter(|d| d.is_object()) else {
        p.add("detail", "is required (an object with eventType and contactId)");
        return Err(p.errors);
    };
    let Some(kind) = text(detail, "eventType") else {
        p.add("detail.eventType", "is required (INITIATED, QUEUED, CONNECTED_TO_AGENT, DISCONNECTED…)");
        return Err(p.errors);
    };
    let channel = text(detail, "channel").unwrap_or_default();
    if !RELEVANT.contains(&kind.to_ascii_uppercase().as_str()) || channel_of(&channel).is_none() {
        let what = if channel_of(&channel).is_none() { format!("{kind} ({channel} contact)") } else { kind };
        return p.finish(Reading::Irrelevant { kind: what });
    }
    let time = iso_time(v, "time");
    let event_time = match kind.to_ascii_uppercase().as_str() {
        "DISCONNECTED" | "COMPLETED" => iso_time(detail, "disconnectTimestamp"),
        "QUEUED" => iso_time(detail, "queueInfo.enqueueTimestamp"),
        "CONNECTED_TO_AGENT" => iso_time(detail, "agentInfo.connectedToAgentTimestamp"),
        "INITIATED" => iso_time(detail, "initiationTimestamp"),
        _ => None,
    }
    .or(time);
    let Some(event_time) = event_time else {
        p.add("time", "is required (an ISO 8601 time)");
        return Err(p.errors);
    };
    let mut sub = Problems::default();
    let (root, facts) = contact_facts(&Contact { v: detail, record: false }, m, &kind, event_time, &mut sub);
    for e in sub.errors {
        p.add(&format!("detail.{}", e.field), e.message);
    }
    p.finish(Reading::Session(Box::new(Native {
        source: Source::AmazonConnect,
        id,
        kind,
        session_id: Source::AmazonConnect.session_id(&root),
        at: event_time,
        facts,
        payload: v.clone(),
    })))
}

/// One contact record (delivered by Kinesis Data Firehose, base64-decoded). Records are
/// re-sent when they change: each version is its own event (`ContactId@LastUpdateTimestamp`).
pub fn read_contact_record(v: &Value, m: &Mapping) -> Result<Reading, Vec<FieldError>> {
    let mut p = Problems::default();
    if !v.is_object() {
        p.add("", "a contact record must be a JSON object with ContactId");
        return Err(p.errors);
    }
    let channel = text(v, "Channel").unwrap_or_default();
    if channel_of(&channel).is_none() && text(v, "ContactId").is_some() {
        return p.finish(Reading::Irrelevant { kind: format!("contact record ({channel} contact)") });
    }
    let at_time = iso_time(v, "DisconnectTimestamp")
        .or_else(|| iso_time(v, "LastUpdateTimestamp"))
        .or_else(|| iso_time(v, "InitiationTimestamp"));
    let Some(at_time) = at_time else {
        p.add("InitiationTimestamp", "is required (an ISO 8601 time)");
        return Err(p.errors);
    };
    let (root, mut facts) = contact_facts(&Contact { v, record: true }, m, "CONTACT_RECORD", at_time, &mut p);
    if facts.connected_at.is_none() && at(v, "Agent.ConnectedToAgentTimestamp").is_some() {
        facts.connected_at = iso_time(v, "Agent.ConnectedToAgentTimestamp");
    }
    let contact_id = text(v, "ContactId").unwrap_or_default();
    let version = text(v, "LastUpdateTimestamp").unwrap_or_default();
    p.finish(Reading::Session(Box::new(Native {
        source: Source::AmazonConnect,
        id: format!("{contact_id}@{version}"),
        kind: "CONTACT_RECORD".into(),
        session_id: Source::AmazonConnect.session_id(&root),
        at: at_time,
        facts,
        payload: v.clone(),
    })))
}

/// One chat message streamed through SNS (the notification's `Message`, parsed).
pub fn read_chat_message(v: &Value) -> Result<Reading, Vec<FieldError>> {
    let mut p = Problems::default();
    if !v.is_object() {
        p.add("Message", "must hold a JSON object (a chat message of Amazon Connect)");
        return Err(p.errors);
    }
    let kind = text(v, "Type").unwrap_or_default();
    let content_type = text(v, "ContentType").unwrap_or_default();
    if !kind.eq_ignore_ascii_case("MESSAGE") || !content_type.starts_with("text/") {
        let what = if content_type.is_empty() { kind } else { content_type };
        return p.finish(Reading::Irrelevant { kind: format!("chat {what}") });
    }
    let id = p.id(v, "Id", "the message id");
    let contact = p.id(v, "ContactId", "the chat contact's id");
    let root = text(v, "InitialContactId").unwrap_or(contact);
    let Some(sent) = iso_time(v, "AbsoluteTime") else {
        p.add("Message.AbsoluteTime", "is required (an ISO 8601 time)");
        return Err(p.errors);
    };
    let sender = match text(v, "ParticipantRole").unwrap_or_default().to_ascii_uppercase().as_str() {
        "CUSTOMER" => Sender::Customer,
        "AGENT" | "SUPERVISOR" | "MANAGER" => Sender::Agent,
        "CUSTOM_BOT" => Sender::Bot,
        _ => Sender::System,
    };
    let mut facts = Facts::default();
    facts.messages.push(NativeMessage {
        id: id.clone(),
        at: sent,
        sender,
        text: text(v, "Content").unwrap_or_default(),
        participant: None,
    });
    p.finish(Reading::Session(Box::new(Native {
        source: Source::AmazonConnect,
        id,
        kind: "chat MESSAGE".into(),
        session_id: Source::AmazonConnect.session_id(&root),
        at: sent,
        facts,
        payload: v.clone(),
    })))
}

/// Whether a value looks like a contact record rather than an EventBridge event (for files
/// that mix both, as `simulate` reads them).
pub fn is_contact_record(v: &Value) -> bool {
    member(v, "ContactId").is_some() && member(v, "detail").is_none()
}

/// Whether a value is an SNS chat message (`Message` JSON or the message itself).
pub fn is_chat_message(v: &Value) -> bool {
    member(v, "ParticipantRole").is_some() || member(v, "AbsoluteTime").is_some()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn facts(r: Reading) -> Native {
        match r {
            Reading::Session(n) => *n,
            other => panic!("expected a session event, got {other:?}"),
        }
    }

    /// The shape of AWS's CONTACT_DATA_UPDATED sample (placeholders made real): unset times
    /// are the 1970 sentinel, which means "not yet".
    #[test]
    fn the_unset_sentinel_is_no_time() {
        let v = json!({"version": "0", "id": "ev-1", "detail-type": CONTACT_EVENT, "source": "aws.connect",
            "time": "2021-08-04T17:43:48Z", "detail": {"eventType": "CONTACT_DATA_UPDATED", "contactId": "c-1",
            "channel": "CHAT", "initiationMethod": "API",
            "queueInfo": {"queueArn": "arn:aws:connect:us-west-2:1:instance/i/queue/q-1",
                          "enqueueTimestamp": "2023-10-24T02:39:15.240Z", "queueType": "STANDARD"},
            "agentInfo": {"agentArn": "arn:aws:connect:us-west-2:1:instance/i/agent/a-1",
                          "connectedToAgentTimestamp": "1970-01-01T00:00:00.001Z"},
            "updatedProperties": ["ContactLens.ConversationalAnalytics.Configuration"],
            "initiationTimestamp": "2023-10-24T02:39:15.154Z",
            "connectedToSystemTimestamp": "1970-01-01T00:00:00.001Z"}});
        let n = facts(read_contact_event(&v, &Mapping::default()).unwrap_or_else(|e| panic!("{e:?}")));
        assert_eq!(n.session_id, "amazon-connect:c-1");
        assert_eq!(n.facts.connected_at, None, "the sentinel is not a connect");
        assert!(n.facts.queued_at.is_some());
        assert_eq!(n.facts.session_type, Some(SessionType::MessagingInboundWeb));
    }

    /// The 2023 sample mixes `AgentInfo`/`AgentArn` with camelCase and writes `Voice`.
    #[test]
    fn keys_and_enums_are_read_whatever_their_case() {
        let v = json!({"version": "0", "id": "ev-2", "detail-type": CONTACT_EVENT, "time": "2021-08-04T17:43:48Z",
            "detail": {"eventType": "DISCONNECTED", "contactId": "c-2", "initialContactId": "c-1",
            "previousContactId": "c-1", "channel": "Voice", "initiationMethod": "TRANSFER",
            "initiationTimestamp": "2021-08-04T17:17:53.000Z", "disconnectTimestamp": "2021-08-04T17:18:37.000Z",
            "queueInfo": {"queueArn": "arn", "enqueueTimestamp": "2021-08-04T17:29:04.000Z"},
            "AgentInfo": {"AgentArn": "arn:x/agent/a-9", "connectedToAgentTimestamp": "2021-08-04T17:29:09.000Z"}}});
        let n = facts(read_contact_event(&v, &Mapping::default()).unwrap_or_else(|e| panic!("{e:?}")));
        assert_eq!(n.session_id, "amazon-connect:c-1", "a transfer leg belongs to its initial contact");
        let agents: Vec<_> = n.facts.transfers.iter().filter_map(|t| t.agent.as_ref().map(|a| a.id.clone())).collect();
        assert_eq!(agents, ["a-9"]);
        assert!(n.facts.legs_over.contains("c-2"));
        assert_eq!(n.facts.created_at, None, "only the first leg starts the session");
    }

    #[test]
    fn a_detail_without_its_envelope_is_refused_with_the_field() {
        let v = json!({"eventType": "CONNECTED_TO_AGENT", "contactId": "c-1", "channel": "VOICE"});
        let fields: Vec<String> = read_contact_event(&v, &Mapping::default())
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["id", "detail-type"]);
    }
}
