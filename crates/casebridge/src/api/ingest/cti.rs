//! The generic CTI format: `POST /v1/ingest/cti/{token}`, JSON or form, answered the way
//! phone systems that speak it expect (`{}`, or `{"action": "reject", "reason": "busy"}` for
//! a blocked caller's `newCall`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use casebridge_rules::native::{Source, cti};
use casebridge_rules::phone::Phone;
use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::common::{IngestQuery, accept, check_secret, enabled, read_all};
use crate::api::input::body;
use crate::api::state::AppState;
use crate::error::Problem;

const SOURCE: Source = Source::Cti;

/// The CTI endpoint.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ingest/cti/{token}", post(cti_event))
}

/// The answer to a CTI event: empty, or an action for the phone system.
#[derive(Debug, Serialize, ToSchema)]
pub struct CtiOut {
    /// `reject` for a blocked caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Why (`busy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Reads a form body into an object (repeated `user[]` members into a list).
fn form_object(raw: &[u8]) -> Value {
    let mut o = Map::new();
    for (k, v) in form_urlencoded::parse(raw).into_owned() {
        if let Some(list) = k.strip_suffix("[]") {
            let entry = o.entry(list.to_string()).or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(a) = entry {
                a.push(Value::String(v));
            }
        } else {
            o.insert(k, Value::String(v));
        }
    }
    Value::Object(o)
}

/// A generic CTI event (`newCall`, `answer`, `hangup`).
#[utoipa::path(post, path = "/v1/ingest/cti/{token}", tag = "ingest",
    params(("token" = String, Path, description = "ingest.cti.token"),
        ("wait" = Option<f64>, Query, description = "Seconds (≤ 30) to wait until the work is settled")),
    request_body(description = "event, callId, from, to, direction, user, queue, answeringNumber, cause: JSON or a form", content = super::schemas::CtiEvent, content_type = "application/json"),
    responses((status = 200, description = "Stored; {} or the action for the phone system", body = CtiOut),
        (status = 401, description = "Wrong token; nothing stored", body = Problem),
        (status = 404, description = "The source is not enabled", body = Problem),
        (status = 422, description = "Not a CTI event; nothing stored", body = Problem)))]
pub async fn cti_event(
    State(st): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(&st, &token, q, &headers, raw).await {
        Ok(out) => Json(out).into_response(),
        // Phone systems read `error`.
        Err(p) => {
            let detail = p.detail.clone();
            p.with("error", detail.into()).into_response()
        }
    }
}

async fn handle(
    st: &AppState,
    token: &str,
    q: IngestQuery,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<CtiOut, Problem> {
    let settings = st.pipeline.settings().await;
    enabled(&settings, SOURCE)?;
    let cfg = &settings.ingest.cti;
    check_secret(
        st,
        headers,
        SOURCE,
        "cti.token",
        cfg.token.as_deref(),
        &[Some(token.to_string())],
        "the token in the path",
    )?;
    let raw = body(raw, st.max_body_bytes)?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded") || v.starts_with("multipart/"));
    let v = if is_form { form_object(&raw) } else { super::common::json_of(SOURCE, &raw)? };
    let received = Utc::now();
    let readings = read_all(SOURCE, std::slice::from_ref(&v), |x| cti::read(x, &cfg.mapping, received))?;
    // Phone systems write numbers as digits with their country code and no `+`: compare
    // the digits as well as the normalized numbers.
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let blocked = cti::caller(&v).is_some_and(|from| {
        let caller = Phone::parse(&from, &settings.region).number;
        cfg.blocked_numbers
            .iter()
            .any(|b| digits(b) == digits(&from) || Phone::parse(b, &settings.region).number == caller)
    });
    accept(st, SOURCE, readings, q.wait).await?;
    Ok(if blocked {
        CtiOut { action: Some("reject".into()), reason: Some("busy".into()) }
    } else {
        CtiOut { action: None, reason: None }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn forms_keep_lists() {
        let v = form_object(b"event=newCall&user%5B%5D=Ann&user%5B%5D=Bob&from=49301");
        assert_eq!(v, json!({"event": "newCall", "user": ["Ann", "Bob"], "from": "49301"}));
    }
}
