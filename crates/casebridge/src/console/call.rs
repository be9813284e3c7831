//! Pages call the API's own handlers and read their answers as JSON, so a page shows and
//! changes exactly what the API does, refusals included.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::api::input::{Checked, FromForm};

/// An API answer: its status and its JSON body (a problem document on refusal).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// Whether the API said yes.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's detail, for a refusal.
    pub fn detail(&self) -> String {
        self.body["detail"].as_str().unwrap_or("").to_string()
    }

    /// Field errors of a refusal as `{field: [message, …]}`.
    pub fn field_errors(&self) -> Value {
        let mut out = serde_json::Map::new();
        for e in self.body["errors"].as_array().into_iter().flatten() {
            let f = e["field"].as_str().unwrap_or("").to_string();
            let list = out.entry(f).or_insert_with(|| json!([]));
            if let Some(l) = list.as_array_mut() {
                l.push(e["message"].clone());
            }
        }
        Value::Object(out)
    }

    /// The body when the API said yes, else `fallback`.
    pub fn or(self, fallback: Value) -> Value {
        if self.ok() { self.body } else { fallback }
    }
}

/// Runs a handler's result into an answer.
pub async fn answer(r: impl IntoResponse) -> Answer {
    let res = r.into_response();
    let status = res.status();
    let body = match axum::body::to_bytes(res.into_body(), usize::MAX).await {
        Ok(b) if !b.is_empty() => {
            serde_json::from_slice(&b).unwrap_or_else(|_| json!({"detail": String::from_utf8_lossy(&b)}))
        }
        _ => Value::Null,
    };
    Answer { status, body }
}

/// A request body as the API's handlers read it.
pub fn body<T: FromForm>(v: Value) -> Checked<T> {
    Checked::read(&v)
}

/// Calls an endpoint through the API's router in-process, with the API token: for endpoints
/// a page needs by their HTTP contract (a 404 when this build lacks one).
pub async fn via_router(c: &super::state::Console, method: &str, uri: &str, json_body: Option<Value>) -> Answer {
    use tower::ServiceExt;
    let mut b = axum::http::Request::builder().method(method).uri(uri);
    if let Some(t) = &c.app.token {
        b = b.header(axum::http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match json_body {
        Some(v) => {
            b = b.header(axum::http::header::CONTENT_TYPE, "application/json");
            axum::body::Body::from(v.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let req = match b.body(body) {
        Ok(r) => r,
        Err(e) => return Answer { status: StatusCode::INTERNAL_SERVER_ERROR, body: json!({"detail": e.to_string()}) },
    };
    match crate::api::router(c.app.clone()).oneshot(req).await {
        Ok(res) => answer(res).await,
        Err(e) => Answer { status: StatusCode::INTERNAL_SERVER_ERROR, body: json!({"detail": e.to_string()}) },
    }
}
