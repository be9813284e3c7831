//! Request bodies: their media type (checked once for every route), reading them, and one
//! typed validator that walks a JSON body once and reports every field error at once (a typed
//! serde parse would stop at the first).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use casebridge_rules::event::FieldError;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::state::AppState;
use crate::error::Problem;

/// Paths that also take NDJSON bodies.
const NDJSON_PATHS: &[&str] = &["/v1/events"];

/// Whether a `Content-Type` value is JSON (`application/json`, `application/*+json`) or, when
/// `ndjson`, NDJSON (`application/x-ndjson`, `application/ndjson`).
pub fn accepted_type(v: &str, ndjson: bool) -> bool {
    let essence = v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        || (ndjson && (essence == "application/x-ndjson" || essence == "application/ndjson"))
}

fn has_body(h: &HeaderMap) -> bool {
    let length = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || h.contains_key(header::TRANSFER_ENCODING)
}

/// Middleware: a POST, PUT or PATCH that sends a body, or names a media type, must send JSON
/// (NDJSON too where accepted); anything else is refused with 415 before any handler runs, so
/// nothing is stored. A browser can send `text/plain` or a form to any origin without asking:
/// this keeps such cross-site requests away from every endpoint.
pub async fn content_type(req: Request, next: Next) -> Response {
    // Native formats come as their platforms send them (forms, SNS's text/plain): each
    // native endpoint reads its own.
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
        || req.uri().path().starts_with("/v1/ingest/")
    {
        return next.run(req).await;
    }
    let ndjson = NDJSON_PATHS.contains(&req.uri().path());
    let sent = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(unreadable)").to_string());
    let ok = match &sent {
        Some(v) => accepted_type(v, ndjson),
        None => !has_body(req.headers()),
    };
    if ok {
        return next.run(req).await;
    }
    let mut accepted = vec!["application/json", "application/*+json"];
    if ndjson {
        accepted.push("application/x-ndjson");
    }
    let got = sent.map_or_else(|| "no Content-Type".to_string(), |v| format!("Content-Type {v}"));
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        format!("a body with {got} is not accepted here; send it as {}. Nothing was stored", accepted.join(" or ")),
    )
    .with("accepted", accepted.into())
    .into_response()
}

/// Reads a body, turning a too-large or broken body into a problem.
pub fn body(b: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, Problem> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("request body is larger than {limit} bytes: split the batch or raise --max-body-bytes"),
            )
        } else {
            Problem::bad_request(format!("could not read the request body: {e}"))
        }
    })
}

/// Parses a JSON body into a value, with a readable error.
pub fn json_body(b: &Bytes) -> Result<Value, Problem> {
    serde_json::from_slice(b).map_err(|e| Problem::bad_request(format!("body is not valid JSON: {e}")))
}

/// A field error.
pub fn field(f: &str, m: impl Into<String>) -> FieldError {
    FieldError { field: f.into(), message: m.into() }
}

/// A JSON body being read member by member, collecting field errors.
pub struct Form<'a> {
    v: &'a Value,
    errors: Vec<FieldError>,
}

impl<'a> Form<'a> {
    /// Starts reading a body.
    pub fn new(v: &'a Value) -> Self {
        Form { v, errors: Vec::new() }
    }

    /// A member as sent, null counting as absent.
    pub fn raw(&self, k: &str) -> Option<&'a Value> {
        self.v.get(k).filter(|v| !v.is_null())
    }

    /// Records a field error.
    pub fn error(&mut self, f: &str, m: impl Into<String>) {
        self.errors.push(field(f, m));
    }

    /// Whether this field already has an error.
    pub fn has_error(&self, f: &str) -> bool {
        self.errors.iter().any(|e| e.field == f)
    }

    /// An optional string member; a wrong type is an error.
    pub fn opt_str(&mut self, k: &str) -> Option<String> {
        match self.raw(k) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(k, "must be a string");
                None
            }
        }
    }

    /// An optional string member, blank counting as absent.
    pub fn opt_text(&mut self, k: &str) -> Option<String> {
        self.opt_str(k).filter(|s| !s.trim().is_empty())
    }

    /// A required non-empty string member, trimmed.
    pub fn req_str(&mut self, k: &str) -> String {
        match self.opt_str(k) {
            Some(s) if !s.trim().is_empty() => s.trim().to_string(),
            Some(_) => {
                self.error(k, "must not be empty");
                String::new()
            }
            None => {
                if !self.has_error(k) {
                    self.error(k, "is required");
                }
                String::new()
            }
        }
    }

    /// An optional boolean member.
    pub fn opt_bool(&mut self, k: &str) -> Option<bool> {
        match self.raw(k) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(k, "must be true or false");
                None
            }
        }
    }

    /// An optional RFC 3339 time member.
    pub fn opt_time(&mut self, k: &str) -> Option<DateTime<Utc>> {
        let s = self.opt_str(k)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.error(k, "must be an RFC 3339 timestamp such as 2026-11-20T10:00:00Z");
                None
            }
        }
    }
}

/// A request type read from a JSON body with [`Form`].
pub trait FromForm: Sized {
    /// The detail of the 422 when a field is wrong.
    const REFUSAL: &'static str;
    /// Reads the body; the errors stay in the form.
    fn from_form(f: &mut Form<'_>) -> Self;
}

/// A body read into `T` with the field errors found so far; the handler may add errors from
/// its own checks against stored state before [`Checked::finish`].
pub struct Checked<T> {
    value: T,
    errors: Vec<FieldError>,
}

impl<T: FromForm> Checked<T> {
    /// Reads a JSON value.
    pub fn read(v: &Value) -> Self {
        let mut f = Form::new(v);
        let value = T::from_form(&mut f);
        Checked { value, errors: f.errors }
    }

    /// The request as read (fields in error hold placeholders).
    pub fn value(&self) -> &T {
        &self.value
    }

    /// Records a field error.
    pub fn error(&mut self, f: &str, m: impl Into<String>) {
        self.errors.push(field(f, m));
    }

    /// The request, or every field error as one 422.
    pub fn finish(self) -> Result<T, Problem> {
        if self.errors.is_empty() { Ok(self.value) } else { Err(Problem::fields(T::REFUSAL, &self.errors)) }
    }
}

/// Reads a body into `T`, for handlers that must refuse for other reasons before reading it.
pub fn read<T: FromForm>(raw: Result<Bytes, BytesRejection>, limit: usize) -> Result<Checked<T>, Problem> {
    Ok(Checked::read(&json_body(&body(raw, limit)?)?))
}

impl<T: FromForm> FromRequest<AppState> for Checked<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Problem> {
        read(Bytes::from_request(req, st).await, st.max_body_bytes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Two {
        a: String,
        b: Option<bool>,
    }

    impl FromForm for Two {
        const REFUSAL: &'static str = "no";
        fn from_form(f: &mut Form<'_>) -> Self {
            Two { a: f.req_str("a"), b: f.opt_bool("b") }
        }
    }

    #[test]
    fn json_types_and_ndjson_where_accepted() {
        for t in ["application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"] {
            assert!(accepted_type(t, false), "{t}");
        }
        for t in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json+x"] {
            assert!(!accepted_type(t, true), "{t}");
        }
        assert!(accepted_type("application/x-ndjson", true));
        assert!(!accepted_type("application/x-ndjson", false));
    }

    #[test]
    fn every_error_at_once() {
        let c = Checked::<Two>::read(&json!({"a": 1, "b": "x"}));
        let p = c.finish().err().map(|p| p.errors);
        assert_eq!(
            p,
            Some(vec![
                json!({"field": "a", "message": "must be a string"}),
                json!({"field": "b", "message": "must be true or false"})
            ])
        );
        let ok = Checked::<Two>::read(&json!({"a": " x ", "b": null})).finish().ok().map(|t| (t.a, t.b));
        assert_eq!(ok, Some(("x".to_string(), None)));
        let missing = Checked::<Two>::read(&json!([])).finish().err().map(|p| p.errors);
        assert_eq!(missing, Some(vec![json!({"field": "a", "message": "is required"})]));
    }
}
