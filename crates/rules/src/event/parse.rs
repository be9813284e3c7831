//! Reading one event from JSON: every problem reported with its field, at once.

use super::*;

/// The event types casebridge accepts.
pub const EVENT_TYPES: &[&str] = &[
    "session.created",
    "session.queued",
    "session.assigned",
    "session.connected",
    "message.created",
    "session.abandoned",
    "session.ended",
    "session.transferred",
    "voicemail.updated",
    "recording.available",
    "csat.submitted",
    "smart_action.completed",
    "smart_action.failed",
    "custom_data.updated",
];

/// Longest id (event, session, agent…), in bytes.
pub const MAX_ID_LEN: usize = 200;
/// Lowest CSAT score.
pub const CSAT_MIN: f64 = 0.0;
/// Highest CSAT score.
pub const CSAT_MAX: f64 = 10.0;

/// What is wrong with an id, if anything: blank, too long, or holding a control character.
fn id_problem(s: &str) -> Option<String> {
    if s.trim().is_empty() {
        Some("must not be empty or only spaces".into())
    } else if s.len() > MAX_ID_LEN {
        Some(format!("must be at most {MAX_ID_LEN} characters long"))
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters (such as \\u0000, tabs or line breaks)".into())
    } else {
        None
    }
}

fn check_id(field: &str, s: &str, errors: &mut Vec<FieldError>) {
    if let Some(message) = id_problem(s) {
        errors.push(FieldError { field: field.into(), message });
    }
}

fn check_opt_id(field: &str, s: &Option<String>, errors: &mut Vec<FieldError>) {
    if let Some(s) = s
        && s.chars().any(char::is_control)
    {
        errors.push(FieldError { field: field.into(), message: "must not contain control characters".into() });
    }
}

fn id_field(v: &serde_json::Value, name: &str, errors: &mut Vec<FieldError>) -> String {
    match v.get(name) {
        Some(serde_json::Value::String(s)) => match id_problem(s) {
            None => s.clone(),
            Some(message) => {
                errors.push(FieldError { field: name.into(), message });
                String::new()
            }
        },
        Some(_) => {
            errors.push(FieldError { field: name.into(), message: "must be a string".into() });
            String::new()
        }
        None => {
            errors.push(FieldError { field: name.into(), message: "is required".into() });
            String::new()
        }
    }
}

/// Parses and validates one event, reporting every problem with its field.
pub fn parse_event(v: &serde_json::Value) -> Result<Event, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !v.is_object() {
        return Err(vec![FieldError {
            field: String::new(),
            message: "an event must be a JSON object with id, session_id, type, at and data".into(),
        }]);
    }
    let id = id_field(v, "id", &mut errors);
    let session_id = id_field(v, "session_id", &mut errors);
    let at = match v.get("at") {
        Some(serde_json::Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(FieldError {
                    field: "at".into(),
                    message: "must be an RFC 3339 timestamp such as 2026-11-20T10:00:00Z".into(),
                });
                None
            }
        },
        Some(_) => {
            errors.push(FieldError { field: "at".into(), message: "must be an RFC 3339 string".into() });
            None
        }
        None => {
            errors.push(FieldError { field: "at".into(), message: "is required".into() });
            None
        }
    };
    let ty = match v.get("type") {
        Some(serde_json::Value::String(s)) if EVENT_TYPES.contains(&s.as_str()) => Some(s.clone()),
        Some(serde_json::Value::String(s)) => {
            errors.push(FieldError {
                field: "type".into(),
                message: format!("unknown event type {s:?}; expected one of {}", EVENT_TYPES.join(", ")),
            });
            None
        }
        _ => {
            errors.push(FieldError { field: "type".into(), message: "is required (a string)".into() });
            None
        }
    };
    let mut kind = None;
    if let Some(ty) = ty {
        let data = v.get("data").cloned().unwrap_or(serde_json::Value::Null);
        let data = if data.is_null() { serde_json::json!({}) } else { data };
        let wrapped = serde_json::json!({"type": ty, "data": data});
        match parse_kind(&wrapped) {
            Ok(k) => {
                if let EventKind::Created(c) = &k {
                    check_created(c, &mut errors);
                }
                check_data(&k, &mut errors);
                kind = Some(k)
            }
            Err(e) => errors.push(e),
        }
    }
    match (errors.is_empty(), at, kind) {
        (true, Some(at), Some(kind)) => Ok(Event { id, session_id, at, kind, native: None }),
        _ => Err(errors),
    }
}

fn parse_kind(wrapped: &serde_json::Value) -> Result<EventKind, FieldError> {
    fn data<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, FieldError> {
        serde_path_to_error::deserialize::<_, T>(v.clone()).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() { "data".to_string() } else { format!("data.{path}") };
            let inner = e.into_inner().to_string();
            let message = inner.split(" at line ").next().unwrap_or(&inner).to_string();
            FieldError { field, message }
        })
    }
    let d = &wrapped["data"];
    Ok(match wrapped["type"].as_str().unwrap_or_default() {
        "session.created" => EventKind::Created(data(d)?),
        "session.queued" => EventKind::Queued(data(d)?),
        "session.assigned" => EventKind::Assigned(data(d)?),
        "session.connected" => EventKind::Connected,
        "message.created" => EventKind::Message(data(d)?),
        "session.abandoned" => EventKind::Abandoned,
        "session.ended" => EventKind::Ended(data(d)?),
        "session.transferred" => EventKind::Transferred(data(d)?),
        "voicemail.updated" => EventKind::VoicemailUpdated(data(d)?),
        "recording.available" => EventKind::Recording(data(d)?),
        "csat.submitted" => EventKind::Csat(data(d)?),
        "smart_action.completed" => EventKind::SmartActionCompleted(data(d)?),
        "smart_action.failed" => EventKind::SmartActionFailed(data(d)?),
        "custom_data.updated" => EventKind::CustomData(data(d)?),
        other => return Err(FieldError { field: "type".into(), message: format!("unknown event type {other:?}") }),
    })
}

fn check_created(c: &SessionCreated, errors: &mut Vec<FieldError>) {
    if c.session_type.channel() != c.channel {
        errors.push(FieldError {
            field: "data.channel".into(),
            message: format!(
                "session_type {} belongs to channel {}, not {}",
                c.session_type.as_str(),
                c.session_type.channel().as_str(),
                c.channel.as_str()
            ),
        });
    }
    let outbound_type = c.session_type == SessionType::VoiceOutbound;
    if outbound_type != (c.direction == Direction::Outbound) {
        errors.push(FieldError {
            field: "data.direction".into(),
            message: "direction must be outbound exactly when session_type is voice_outbound".into(),
        });
    }
}

/// Ids inside the data and the CSAT range.
fn check_data(k: &EventKind, errors: &mut Vec<FieldError>) {
    let customer = |c: &Customer, prefix: &str, errors: &mut Vec<FieldError>| {
        check_opt_id(&format!("{prefix}.user_id"), &c.user_id, errors);
    };
    match k {
        EventKind::Created(c) => {
            customer(&c.customer, "data.customer", errors);
            check_opt_id("data.origin_record_id", &c.origin_record_id, errors);
            check_opt_id("data.related_session_id", &c.related_session_id, errors);
            check_opt_id("data.dial_request_id", &c.dial_request_id, errors);
        }
        EventKind::Queued(q) => {
            if let Some(c) = &q.customer {
                customer(c, "data.customer", errors);
            }
        }
        EventKind::Assigned(a) => {
            check_id("data.agent.id", &a.agent.id, errors);
            if let Some(c) = &a.customer {
                customer(c, "data.customer", errors);
            }
        }
        EventKind::Transferred(t) => {
            if let Some(a) = &t.agent {
                check_id("data.agent.id", &a.id, errors);
            }
        }
        EventKind::VoicemailUpdated(v) => check_id("data.agent.id", &v.agent.id, errors),
        EventKind::Csat(c) if !(CSAT_MIN..=CSAT_MAX).contains(&c.score) => {
            errors.push(FieldError {
                field: "data.score".into(),
                message: format!("must be a number from {CSAT_MIN} to {CSAT_MAX}"),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(v: serde_json::Value) -> Vec<String> {
        parse_event(&v).err().unwrap_or_default().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn ids_refuse_control_characters_and_blanks() {
        let ev = |id: &str, sid: &str, agent: &str| {
            json!({"id": id, "session_id": sid, "type": "session.assigned", "at": "2026-11-20T10:00:00Z",
                   "data": {"agent": {"id": agent}}})
        };
        assert!(parse_event(&ev("e1", "s1", "a1")).is_ok());
        assert_eq!(fields(ev("e\u{0}1", "s1", "a1")), ["id"]);
        assert_eq!(fields(ev("e1", "s\n1", "a1")), ["session_id"]);
        assert_eq!(fields(ev(" ", "s1", "a\u{7}")), ["id", "data.agent.id"]);
        assert_eq!(fields(ev("e1", "s1", "")), ["data.agent.id"]);
    }

    #[test]
    fn csat_score_has_a_range() {
        let ev = |score: f64| {
            json!({"id": "e", "session_id": "s", "type": "csat.submitted", "at": "2026-11-20T10:00:00Z",
                   "data": {"score": score}})
        };
        assert!(parse_event(&ev(0.0)).is_ok() && parse_event(&ev(10.0)).is_ok() && parse_event(&ev(4.5)).is_ok());
        assert_eq!(fields(ev(-1.0)), ["data.score"]);
        assert_eq!(fields(ev(11.0)), ["data.score"]);
    }
}
