//! Twilio: TaskRouter event callbacks (form fields) and Event Streams (CloudEvents) for
//! TaskRouter and Conversations.
//!
//! A session is `twilio:<CallSid>` for a call (from the task's `call_sid` attribute),
//! `twilio:<ConversationSid>` for a conversation (the task's `conversationSid` attribute, or
//! the Conversations event's own), else `twilio:<TaskSid>`: the task events, the conversation's
//! messages and its close meet in one session.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::attributes;
use super::facts::{Facts, Native, NativeMessage, Reading, Source};
use super::read::{Problems, embedded, iso_time, ms_time, phone_of, text};
use crate::event::{Agent, Channel, Direction, FieldError, Sender, SessionType};
use crate::settings::ingest::Mapping;

/// TaskRouter event types that tell casebridge something.
const TASK_EVENTS: &[&str] = &[
    "task.created",
    "task.updated",
    "task-queue.entered",
    "reservation.created",
    "reservation.accepted",
    "task.canceled",
    "task.wrapup",
    "task.completed",
];

fn channel_of(name: &str) -> (Channel, Option<SessionType>) {
    match name.to_ascii_lowercase().as_str() {
        "voice" => (Channel::Voice, None),
        "sms" | "whatsapp" => (Channel::Chat, Some(SessionType::MessagingInboundSms)),
        _ => (Channel::Chat, Some(SessionType::MessagingInboundWeb)),
    }
}

/// The session key of a task: its call, else its conversation, else the task itself.
fn task_session(attrs: &Value, task_sid: &str) -> String {
    text(attrs, "call_sid")
        .or_else(|| text(attrs, "conversationSid"))
        .or_else(|| text(attrs, "conversation_sid"))
        .or_else(|| text(attrs, "channelSid"))
        .unwrap_or_else(|| task_sid.to_string())
}

/// One TaskRouter event, its fields as Twilio posts them (`EventType`, `TaskSid`,
/// `TaskAttributes`…); `native_id` is the event's id (its `Sid`, or the CloudEvent's `id`).
pub fn read_task_event(v: &Value, m: &Mapping, native_id: Option<String>) -> Result<Reading, Vec<FieldError>> {
    let mut p = Problems::default();
    let Some(kind) = text(v, "EventType") else {
        p.add("EventType", "is required (task.created, reservation.accepted…)");
        return Err(p.errors);
    };
    if !TASK_EVENTS.contains(&kind.as_str()) {
        return p.finish(Reading::Irrelevant { kind });
    }
    let task_sid = p.id(v, "TaskSid", "the task's sid");
    let Some(at) = ms_time(v, "TimestampMs").or_else(|| epoch(v, "Timestamp")) else {
        p.add("TimestampMs", "is required (milliseconds since 1970, or Timestamp in seconds)");
        return Err(p.errors);
    };
    let attrs = embedded(v, "TaskAttributes");
    let worker = embedded(v, "WorkerAttributes");
    let session = task_session(&attrs, &task_sid);
    let mut f = Facts::default();
    let (channel, session_type) = channel_of(&text(v, "TaskChannelUniqueName").unwrap_or_else(|| "voice".into()));
    f.channel = Some(channel);
    let outbound = text(&attrs, "direction").is_some_and(|d| d.starts_with("outbound"));
    f.direction = Some(if outbound { Direction::Outbound } else { Direction::Inbound });
    f.session_type =
        if outbound && channel == Channel::Voice { Some(SessionType::VoiceOutbound) } else { session_type };
    let from = text(&attrs, "from").or_else(|| text(&attrs, "caller"));
    let to = text(&attrs, "to").or_else(|| text(&attrs, "called"));
    let (customer, dialed) = if outbound { (to.clone(), to) } else { (from, to) };
    f.customer.phone = customer.map(|c| phone_of(c.strip_prefix("whatsapp:").unwrap_or(&c)));
    f.customer.name = text(&attrs, "name").or_else(|| text(&attrs, "customers.name"));
    f.customer.email = text(&attrs, "customers.email");
    f.dialed_number = dialed.map(|d| phone_of(d.strip_prefix("whatsapp:").unwrap_or(&d)));
    f.queue_path = m.queue_path(text(v, "TaskQueueSid").as_deref(), text(v, "TaskQueueName").as_deref());
    attributes::apply(&mut f, m, &[&attrs]);
    let created = ms_time(v, "TaskDateCreated")
        .or_else(|| {
            text(v, "TaskDateCreated").and_then(|t| t.parse::<i64>().ok()).and_then(|s| DateTime::from_timestamp(s, 0))
        })
        .or_else(|| iso_time(v, "TaskDateCreated"));
    f.created_at = created.or((kind == "task.created").then_some(at));
    let agent = || {
        let sid = text(v, "WorkerSid");
        let name = text(v, "WorkerName");
        let keys: Vec<&str> = [sid.as_deref(), name.as_deref()].into_iter().flatten().collect();
        m.agent_id(&keys).map(|id| Agent {
            id,
            email: text(&worker, "email"),
            name: text(&worker, "full_name").or_else(|| name.clone()),
        })
    };
    match kind.as_str() {
        "task-queue.entered" => f.queued_at = Some(at),
        "reservation.created" => {
            f.agent = agent();
            f.assigned_at = Some(at);
        }
        "reservation.accepted" => {
            f.agent = agent();
            f.connected_at = Some(at);
        }
        "task.canceled" => {
            f.ended_at = Some(at);
            f.abandoned_at = Some(at);
        }
        "task.wrapup" | "task.completed" => {
            f.ended_at = Some(at);
            f.answered = true;
        }
        _ => {}
    }
    let id =
        native_id.or_else(|| text(v, "Sid")).unwrap_or_else(|| format!("{kind}:{task_sid}:{}", at.timestamp_millis()));
    p.finish(Reading::Session(Box::new(Native {
        source: Source::Twilio,
        id,
        kind,
        session_id: Source::Twilio.session_id(&session),
        at,
        facts: f,
        payload: v.clone(),
    })))
}

/// A time in seconds or milliseconds since 1970 (told apart by size), or ISO 8601.
fn epoch(v: &Value, path: &str) -> Option<DateTime<Utc>> {
    match text(v, path)?.parse::<i64>() {
        Ok(n) if n > 100_000_000_000 => ms_time(v, path),
        Ok(n) => DateTime::from_timestamp(n, 0),
        Err(_) => iso_time(v, path),
    }
}

/// `task_queue_name` → `TaskQueueName`: Event Streams' TaskRouter payloads in callback names.
fn pascal(k: &str) -> String {
    k.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Who wrote a message, when its participant is not known: the customer writes from an
/// address (`+1…`, `whatsapp:+1…`), agents from their identity.
fn sender_of(author: &str) -> Sender {
    if author.eq_ignore_ascii_case("system") {
        Sender::System
    } else if author.starts_with('+') || author.contains(':') {
        Sender::Customer
    } else {
        Sender::Agent
    }
}

/// One CloudEvent of an Event Streams webhook sink.
pub fn read_cloud_event(v: &Value, m: &Mapping) -> Result<Reading, Vec<FieldError>> {
    let mut p = Problems::default();
    let id = p.id(v, "id", "the CloudEvent id");
    let Some(kind) = text(v, "type") else {
        p.add("type", "is required (a CloudEvent type such as com.twilio.conversations.message.added)");
        return Err(p.errors);
    };
    let data = super::read::member(v, "data").cloned().unwrap_or(Value::Null);
    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    if let Some(event) = kind.strip_prefix("com.twilio.taskrouter.") {
        let payload = super::read::member(&data, "payload").cloned().unwrap_or(data);
        let mut fields = Map::new();
        if let Value::Object(o) = &payload {
            for (k, x) in o {
                fields.insert(pascal(k), x.clone());
            }
        }
        fields.entry("EventType").or_insert_with(|| Value::String(event.to_string()));
        let mut r = read_task_event(&Value::Object(fields), m, Some(id))?;
        if let Reading::Session(n) = &mut r {
            n.payload = v.clone();
        }
        return Ok(r);
    }
    let conversation = || text(&data, "ConversationSid");
    let mut f = Facts::default();
    let at;
    match kind.as_str() {
        "com.twilio.conversations.message.added" => {
            let Some(c) = conversation() else {
                p.add("data.ConversationSid", "is required");
                return Err(p.errors);
            };
            let Some(t) = iso_time(&data, "DateCreated") else {
                p.add("data.DateCreated", "is required (an ISO 8601 time)");
                return Err(p.errors);
            };
            at = t;
            let author = text(&data, "Author").unwrap_or_default();
            f.messages.push(NativeMessage {
                id: text(&data, "MessageSid").unwrap_or_else(|| id.clone()),
                at,
                sender: sender_of(&author),
                text: text(&data, "MessageBody").or_else(|| text(&data, "Body")).unwrap_or_default(),
                participant: text(&data, "ParticipantSid"),
            });
            return p.finish(native(id, kind, &c, at, f, v));
        }
        "com.twilio.conversations.participant.added" => {
            let Some(c) = conversation() else {
                p.add("data.ConversationSid", "is required");
                return Err(p.errors);
            };
            at = iso_time(&data, "DateCreated").unwrap_or_default();
            let binding = super::read::member(&data, "MessagingBinding");
            let role = if binding.is_some() { Sender::Customer } else { Sender::Agent };
            if let Some(sid) = text(&data, "ParticipantSid") {
                f.participants.insert(sid, role);
            }
            if let Some(b) = binding {
                f.customer.phone = text(b, "Address").map(|a| phone_of(a.rsplit(':').next().unwrap_or(&a)));
                f.customer.name = text(b, "Name");
            }
            return p.finish(native(id, kind, &c, at, f, v));
        }
        "com.twilio.conversations.conversation-state.updated" => {
            let Some(c) = conversation() else {
                p.add("data.ConversationSid", "is required");
                return Err(p.errors);
            };
            if text(&data, "StateTo").as_deref() != Some("closed") {
                return p.finish(Reading::Irrelevant {
                    kind: format!("{kind} ({})", text(&data, "StateTo").unwrap_or_default()),
                });
            }
            at = iso_time(&data, "StateUpdated").unwrap_or_default();
            f.ended_at = Some(at);
            return p.finish(native(id, kind, &c, at, f, v));
        }
        _ => {}
    }
    p.finish(Reading::Irrelevant { kind })
}

fn native(id: String, kind: String, conversation: &str, at: DateTime<Utc>, facts: Facts, payload: &Value) -> Reading {
    Reading::Session(Box::new(Native {
        source: Source::Twilio,
        id,
        kind,
        session_id: Source::Twilio.session_id(conversation),
        at,
        facts,
        payload: payload.clone(),
    }))
}
