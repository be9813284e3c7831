//! Reading platform payloads: members found whatever their case (vendors mix `agentInfo` and
//! `AgentInfo`), timestamps in the forms platforms use, and every missing or wrong field
//! reported with its path.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use crate::event::{FieldError, MAX_ID_LEN};

/// A member by name: exact first, then ignoring case.
pub fn member<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    let o = v.as_object()?;
    o.get(k)
        .or_else(|| o.iter().find(|(name, _)| name.eq_ignore_ascii_case(k)).map(|(_, v)| v))
        .filter(|v| !v.is_null())
}

/// A member by dotted path (`queueInfo.queueArn`).
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| member(v, k))
}

/// A non-blank text (numbers and booleans as written).
pub fn text(v: &Value, path: &str) -> Option<String> {
    match at(v, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An ISO 8601 time; Amazon Connect's "unset" sentinel (`1970-01-01T00:00:00.001Z`) is none.
pub fn iso_time(v: &Value, path: &str) -> Option<DateTime<Utc>> {
    let s = text(v, path)?;
    let t = DateTime::parse_from_rfc3339(&s).ok()?.with_timezone(&Utc);
    (t.timestamp() > 86_400).then_some(t)
}

/// Milliseconds since the epoch, as a number or a string.
pub fn ms_time(v: &Value, path: &str) -> Option<DateTime<Utc>> {
    let ms: i64 = match at(v, path)? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Utc.timestamp_millis_opt(ms).single()
}

/// A number.
pub fn number(v: &Value, path: &str) -> Option<f64> {
    match at(v, path)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Field errors of one payload.
#[derive(Debug, Default)]
pub struct Problems {
    /// What is wrong so far.
    pub errors: Vec<FieldError>,
}

impl Problems {
    /// Records an error.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
    }

    /// A required text member, also usable as an id (no control characters, not too long).
    pub fn id(&mut self, v: &Value, path: &str, what: &str) -> String {
        match text(v, path) {
            Some(s) if s.len() > MAX_ID_LEN => {
                self.add(path, format!("is longer than {MAX_ID_LEN} characters"));
                String::new()
            }
            Some(s) if s.chars().any(char::is_control) => {
                self.add(path, "must not contain control characters");
                String::new()
            }
            Some(s) => s,
            None => {
                self.add(path, format!("is required ({what})"));
                String::new()
            }
        }
    }

    /// The payload's reading, or every error found.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() { Ok(value) } else { Err(self.errors) }
    }
}

/// Strips URI schemes platforms put on phone numbers (`tel:+1…`, `sip:+1…@host`).
pub fn phone_of(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix("tel:").or_else(|| s.strip_prefix("sip:")).unwrap_or(s);
    s.split('@').next().unwrap_or(s).to_string()
}

/// A JSON object held in a string member (Twilio's `TaskAttributes`), or the member itself.
pub fn embedded(v: &Value, path: &str) -> Value {
    match at(v, path) {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(o @ Value::Object(_)) => o.clone(),
        _ => Value::Null,
    }
}
