//! The generic CTI format (as Zammad documents it, spoken by many PBXs): `newCall`, `answer`
//! and `hangup`, with their causes. It carries no timestamps: the time a request is received
//! stands for the event's time.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::facts::{Facts, Native, Reading, Source};
use super::read::{Problems, at, text};
use crate::event::{Agent, Channel, Direction, FieldError};
use crate::settings::ingest::Mapping;

/// Causes of an inbound hang-up that mean nobody answered.
const UNANSWERED: &[&str] = &["cancel", "noAnswer", "busy", "congestion", "notFound"];

/// The users a `user` member names (a string or a list; `user[]` in forms).
fn users(v: &Value) -> Vec<String> {
    match at(v, "user").or_else(|| at(v, "user[]")) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

fn agent(m: &Mapping, who: &str) -> Option<Agent> {
    let id = m.agent_id(&[who])?;
    Some(Agent { id, email: who.contains('@').then(|| who.to_string()), name: None })
}

/// One CTI event (JSON, or a form read into an object of strings).
pub fn read(v: &Value, m: &Mapping, received: DateTime<Utc>) -> Result<Reading, Vec<FieldError>> {
    let mut p = Problems::default();
    if !v.is_object() {
        p.add("", "a CTI event must be an object with event, callId, from, to and direction");
        return Err(p.errors);
    }
    let Some(event) = text(v, "event") else {
        p.add("event", "is required (newCall, answer or hangup)");
        return Err(p.errors);
    };
    if !matches!(event.as_str(), "newCall" | "answer" | "hangup") {
        return p.finish(Reading::Irrelevant { kind: event });
    }
    let call_id = if at(v, "call_id").is_some() {
        p.id(v, "call_id", "the call's id")
    } else {
        p.id(v, "callId", "the call's id")
    };
    let direction = match text(v, "direction").as_deref() {
        Some("in") => Direction::Inbound,
        Some("out") => Direction::Outbound,
        _ => {
            p.add("direction", "is required: in or out");
            Direction::Inbound
        }
    };
    let from = text(v, "from");
    let to = text(v, "to");
    let mut f = Facts { channel: Some(Channel::Voice), direction: Some(direction), ..Facts::default() };
    let (customer, dialed) = match direction {
        Direction::Inbound => (from, to),
        // PHONE_NUMBER of an outbound session is the customer's number.
        Direction::Outbound => (to.clone(), to),
    };
    f.customer.phone = customer;
    f.dialed_number = dialed;
    match event.as_str() {
        "newCall" => {
            f.created_at = Some(received);
            if let Some(q) = text(v, "queue") {
                f.queue_path = m.queue_path(None, Some(&q));
                f.queued_at = Some(received);
            }
            if direction == Direction::Outbound {
                f.agent = users(v).first().and_then(|u| agent(m, u));
            }
        }
        "answer" => {
            let who = text(v, "answeringNumber").or_else(|| users(v).into_iter().next());
            f.agent = who.as_deref().and_then(|w| agent(m, w));
            f.connected_at = Some(received);
            if f.agent.is_none() {
                f.agent = Some(Agent { id: "unknown".into(), email: None, name: None });
            }
        }
        _ => {
            f.ended_at = Some(received);
            let cause = text(v, "cause").unwrap_or_default();
            if UNANSWERED.contains(&cause.as_str()) {
                if direction == Direction::Inbound {
                    f.abandoned_at = Some(received);
                }
            } else if cause == "normalClearing" || text(v, "answeringNumber").is_some() {
                f.answered = true;
            }
        }
    }
    p.finish(Reading::Session(Box::new(Native {
        source: Source::Cti,
        id: format!("{call_id}:{event}"),
        kind: event,
        session_id: Source::Cti.session_id(&call_id),
        at: received,
        facts: f,
        payload: v.clone(),
    })))
}

/// The caller of a `newCall` (for the reject answer).
pub fn caller(v: &Value) -> Option<String> {
    (text(v, "event").as_deref() == Some("newCall") && text(v, "direction").as_deref() == Some("in"))
        .then(|| text(v, "from"))
        .flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Zammad's documented answer sample names the users `caller`; `answeringNumber` decides.
    #[test]
    fn an_answer_names_its_agent_and_a_hangup_its_cause() {
        let m = Mapping::default();
        let now = Utc::now();
        let answer = json!({"event": "answer", "from": "493023125741", "to": "492214710334", "direction": "in",
            "callId": "307f", "answeringNumber": "emma@chrispresso.com", "caller": ["Christopher Miller", "Emma Taylor"]});
        let Ok(Reading::Session(n)) = read(&answer, &m, now) else { panic!("not read") };
        assert_eq!(n.facts.agent.as_ref().and_then(|a| a.email.as_deref()), Some("emma@chrispresso.com"));
        assert_eq!(n.facts.connected_at, Some(now));
        let cancel = json!({"event": "hangup", "from": "4930", "to": "4922", "direction": "out", "callId": "f4eb",
            "cause": "cancel"});
        let Ok(Reading::Session(n)) = read(&cancel, &m, now) else { panic!("not read") };
        assert_eq!(n.facts.abandoned_at, None, "an outbound call the customer did not pick up is not abandoned");
        assert_eq!(n.facts.customer.phone.as_deref(), Some("4922"), "outbound: the customer is the called number");
    }
}
