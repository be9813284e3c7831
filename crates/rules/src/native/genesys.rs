//! Genesys Cloud: analytics detail events delivered by its EventBridge integration
//! (`detail-type` the topic pattern, `detail.topicName`, `detail.eventBody`).
//!
//! A session is `genesys:<conversationId>`. The customer's participant starts and ends the
//! session (`customer.start`, `customer.end`), the ACD leg queues it and says whether it was
//! answered or abandoned (`acd.start`, `acd.end`), the agent's leg says who took it
//! (`user.start`).

use serde_json::Value;

use super::facts::{Facts, Native, Reading, Source};
use super::read::{Problems, member, ms_time, number, phone_of, text};
use crate::event::{Agent, Channel, Direction, FieldError, SessionType};
use crate::settings::ingest::Mapping;

/// The step a topic names (`v2.detail.events.conversation.{id}.customer.start` → `customer.start`).
fn step_of(topic: &str) -> Option<&'static str> {
    ["customer.start", "customer.end", "acd.start", "acd.end", "user.start", "user.end"]
        .into_iter()
        .find(|s| topic.ends_with(&format!(".{s}")))
}

fn media(body: &Value) -> Option<(Channel, Option<SessionType>)> {
    let message_type = text(body, "messageType").unwrap_or_default().to_ascii_uppercase();
    match text(body, "mediaType")?.to_ascii_uppercase().as_str() {
        "VOICE" => Some((Channel::Voice, None)),
        "CALLBACK" => Some((Channel::Voice, Some(SessionType::VoiceOutbound))),
        "CHAT" => Some((Channel::Chat, Some(SessionType::MessagingInboundWeb))),
        "MESSAGE" if matches!(message_type.as_str(), "SMS" | "WHATSAPP") => {
            Some((Channel::Chat, Some(SessionType::MessagingInboundSms)))
        }
        "MESSAGE" => Some((Channel::Chat, Some(SessionType::MessagingInboundWeb))),
        _ => None,
    }
}

/// One EventBridge event of the Genesys Cloud integration.
pub fn read(v: &Value, m: &Mapping) -> Result<Reading, Vec<FieldError>> {
    let mut p = Problems::default();
    if !v.is_object() {
        p.add("", "an EventBridge event must be a JSON object with id, detail-type and detail");
        return Err(p.errors);
    }
    let id = p.id(v, "id", "the EventBridge event id");
    let Some(detail) = member(v, "detail").filter(|d| d.is_object()) else {
        p.add("detail", "is required (an object with topicName and eventBody)");
        return Err(p.errors);
    };
    let topic = text(detail, "topicName").or_else(|| text(v, "detail-type"));
    let Some(topic) = topic else {
        p.add("detail.topicName", "is required (v2.detail.events.conversation.{id}.customer.start…)");
        return Err(p.errors);
    };
    let Some(step) = step_of(&topic) else {
        return p.finish(Reading::Irrelevant { kind: text(v, "detail-type").unwrap_or(topic) });
    };
    let Some(body) = member(detail, "eventBody").filter(|b| b.is_object()) else {
        p.add("detail.eventBody", "is required (an object)");
        return Err(p.errors);
    };
    let Some((channel, session_type)) = media(body) else {
        let what = text(body, "mediaType").unwrap_or_else(|| "no mediaType".into());
        return p.finish(Reading::Irrelevant { kind: format!("{step} ({what})") });
    };
    let conversation = p.id(body, "conversationId", "the conversation's id");
    let Some(at) = ms_time(body, "eventTime") else {
        p.add("detail.eventBody.eventTime", "is required (milliseconds since 1970)");
        return Err(p.errors);
    };
    let mut f = Facts { channel: Some(channel), ..Facts::default() };
    let outbound = text(body, "direction").is_some_and(|d| d.eq_ignore_ascii_case("OUTBOUND"));
    f.direction = Some(if outbound { Direction::Outbound } else { Direction::Inbound });
    f.session_type =
        if outbound && channel == Channel::Voice { Some(SessionType::VoiceOutbound) } else { session_type };
    let agent =
        |key: &str| text(body, key).and_then(|u| m.agent_id(&[&u])).map(|id| Agent { id, email: None, name: None });
    let queue = || m.queue_path(text(body, "queueId").as_deref(), None);
    let leg = text(body, "sessionId").unwrap_or_default();
    match step {
        "customer.start" => {
            f.created_at = Some(at);
            let (customer, dialed) = if outbound {
                (text(body, "dnis"), text(body, "dnis"))
            } else {
                (text(body, "ani"), text(body, "dnis"))
            };
            if channel == Channel::Voice || session_type == Some(SessionType::MessagingInboundSms) {
                f.customer.phone = customer.map(|c| phone_of(&c));
            }
            f.dialed_number = dialed.map(|d| phone_of(&d));
            f.customer.user_id = text(body, "externalContactId");
        }
        "acd.start" => {
            f.queued_at = Some(at);
            f.queue_path = queue();
            f.legs.insert(format!("acd:{leg}"));
        }
        "acd.end" => {
            // The end waits for the ACD leg's outcome: answered or abandoned.
            f.legs.insert(format!("acd:{leg}"));
            f.legs_over.insert(format!("acd:{leg}"));
            f.queue_path = queue();
            match text(body, "acdOutcome").unwrap_or_default().to_ascii_uppercase().as_str() {
                "ANSWERED" => {
                    f.agent = agent("answeredUserId");
                    f.connected_at = f.agent.as_ref().map(|_| at);
                }
                "ABANDON" => f.abandoned_at = Some(at),
                _ => {}
            }
        }
        "user.start" => {
            f.agent = agent("userId");
            f.assigned_at = Some(at);
        }
        "user.end" => {
            f.agent = agent("userId");
            f.ended.hold_s = number(body, "heldDurationMs").map(|ms| ms / 1000.0);
        }
        _ => {
            f.ended_at = Some(at);
            f.ended.duration_s = number(body, "interactingDurationMs").map(|ms| ms / 1000.0);
        }
    }
    p.finish(Reading::Session(Box::new(Native {
        source: Source::Genesys,
        id,
        kind: step.to_string(),
        session_id: Source::Genesys.session_id(&conversation),
        at,
        facts: f,
        payload: v.clone(),
    })))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The shape of Genesys' EventBridge test fixture for customer.start.
    #[test]
    fn a_customer_start_starts_a_chat() {
        let v = json!({"version": "0", "id": "adbcfa5b", "detail-type": "v2.detail.events.conversation.{id}.customer.start",
            "source": "aws.partner/genesys.com/cloud/o/bus", "time": "2022-04-06T09:30:45Z", "resources": [],
            "detail": {"topicName": "v2.detail.events.conversation.2f7b.customer.start", "version": "2",
              "eventBody": {"eventTime": 1_649_237_444_949_i64, "conversationId": "2f7b", "participantId": "p",
                "sessionId": "s", "mediaType": "CHAT", "provider": "PureCloud Webchat v2", "direction": "INBOUND",
                "externalContactId": "ext-1"},
              "metadata": {"CorrelationId": "c"}, "timestamp": "2022-04-06T09:30:45.013Z"}});
        let Ok(Reading::Session(n)) = read(&v, &Mapping::default()) else { panic!("not read") };
        assert_eq!((n.session_id.as_str(), n.kind.as_str()), ("genesys:2f7b", "customer.start"));
        assert_eq!(n.facts.session_type, Some(SessionType::MessagingInboundWeb));
        assert_eq!(n.facts.customer.user_id.as_deref(), Some("ext-1"));
        assert!(n.facts.created_at.is_some());
    }
}
