//! `POST /v1/events`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use casebridge_rules::event::{Event, parse_event};
use casebridge_store::{IdConflict, NewEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::{body, field};
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// Query of `POST /v1/events`.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// Seconds to wait for the work to settle (at most 30).
    pub wait: Option<f64>,
}

/// Events in.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", post(post_events))
}

/// What `POST /v1/events` reads as JSON: one event or an array of them. Only the schema: the
/// body is validated event by event so that every error of every event is reported.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // never built: it exists for its schema
pub enum EventsIn {
    /// One event.
    One(Box<Event>),
    /// A batch.
    Many(Vec<Event>),
}

/// Events stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsOut {
    /// Newly stored.
    pub accepted: u64,
    /// Already known ids (not stored again).
    pub duplicates: u64,
    /// With `wait`: whether the work was settled in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled: Option<bool>,
}

/// Largest number of events in one batch.
pub const MAX_BATCH: usize = 10_000;

/// Splits a body into event values: one object, an array, or NDJSON.
pub fn split_body(b: &[u8], ndjson: bool) -> Result<Vec<serde_json::Value>, Problem> {
    if ndjson {
        let text = std::str::from_utf8(b).map_err(|_| Problem::bad_request("NDJSON body is not UTF-8"))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(line).map_err(|e| {
                Problem::bad_request(format!("line {} is not valid JSON: {e}", i + 1)).with("line", (i + 1).into())
            })?;
            out.push(v);
        }
        return Ok(out);
    }
    let v: serde_json::Value =
        serde_json::from_slice(b).map_err(|e| Problem::bad_request(format!("body is not valid JSON: {e}; send one event object, an array, or NDJSON with Content-Type: application/x-ndjson")))?;
    Ok(match v {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    })
}

/// Accepts events (api.md "Events in").
#[utoipa::path(post, path = "/v1/events", tag = "events",
    params(("wait" = Option<f64>, Query, description = "Seconds (≤ 30) to wait until the work is settled")),
    request_body(description = "One event, an array of events, or NDJSON (one event per line)",
        content((EventsIn = "application/json"), (String = "application/x-ndjson"))),
    responses((status = 202, description = "Stored", body = EventsOut),
        (status = 409, description = "An event id was used before with other content; none stored", body = Problem),
        (status = 415, description = "The body is not JSON or NDJSON; none stored", body = Problem),
        (status = 422, description = "Some events are invalid; none stored", body = Problem),
        (status = 429, description = "Too many events wait for the rules; none stored: send again after Retry-After seconds", body = Problem),
        (status = 503, description = "Intake saturated or stopping; none stored: send again after Retry-After seconds", body = Problem)))]
pub async fn post_events(
    State(st): State<AppState>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw, st.max_body_bytes)?;
    let wait = match q.wait {
        Some(w) if !(0.0..=30.0).contains(&w) || w.is_nan() => {
            return Err(Problem::fields(
                "query parameter wait is out of range",
                &[field("wait", "must be between 0 and 30 seconds")],
            ));
        }
        w => w,
    };
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson") || v.starts_with("application/ndjson"));
    let values = split_body(&raw, ndjson)?;
    if values.is_empty() {
        return Err(Problem::validation("the batch holds no event", vec![]));
    }
    if values.len() > MAX_BATCH {
        return Err(Problem::validation(format!("a batch holds at most {MAX_BATCH} events; split it"), vec![]));
    }
    let mut errors = Vec::new();
    let mut events = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        match parse_event(v) {
            Ok(e) => events.push(e),
            Err(errs) => {
                for e in errs {
                    errors.push(serde_json::json!({"index": i, "field": e.field, "message": e.message}));
                }
            }
        }
    }
    if !errors.is_empty() {
        let n = errors.iter().filter_map(|e| e["index"].as_u64()).collect::<std::collections::BTreeSet<_>>().len();
        return Err(Problem::validation(
            format!(
                "{n} of {} event(s) are invalid; nothing was stored. Fix them and send the batch again",
                values.len()
            ),
            errors,
        ));
    }
    let rows: Vec<NewEvent> = events
        .iter()
        .map(|e| NewEvent {
            id: e.id.clone(),
            session_id: e.session_id.clone(),
            event_type: e.kind.type_name().to_string(),
            at: e.at,
            body: serde_json::to_string(e).unwrap_or_default(),
        })
        .collect();
    let out = st.intake.submit(rows).await?;
    if !out.conflicts.is_empty() {
        return Err(id_conflict(&events, &out.conflicts));
    }
    metrics::counter!("casebridge_events_accepted_total").increment(out.accepted);
    metrics::counter!("casebridge_events_duplicate_total").increment(out.duplicates);
    if out.accepted > 0 {
        st.pipeline.events_in.notify_one();
    }
    let mut resp = EventsOut { accepted: out.accepted, duplicates: out.duplicates, settled: None };
    if let Some(w) = wait {
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(w);
        let settled = loop {
            if st.store.settled(&ids).await? {
                break true;
            }
            if tokio::time::Instant::now() >= deadline {
                break false;
            }
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                st.pipeline.progress.notified(),
            )
            .await;
        };
        resp.settled = Some(settled);
    }
    Ok((StatusCode::ACCEPTED, Json(resp)).into_response())
}

/// The 409 of a batch reusing event ids with other content: every such id, the earlier event
/// holding it and what this batch sent under it.
fn id_conflict(events: &[Event], conflicts: &[IdConflict]) -> Problem {
    let sent = |id: &str| events.iter().enumerate().rev().find(|(_, e)| e.id == id);
    let errors: Vec<serde_json::Value> = conflicts
        .iter()
        .map(|c| {
            let (index, e) = sent(&c.id).map(|(i, e)| (Some(i), Some(e))).unwrap_or((None, None));
            serde_json::json!({
                "index": index,
                "field": "id",
                "id": c.id,
                "message": format!(
                    "event id {:?} is already used by a {} event of session {:?} with other content",
                    c.id, c.event_type, c.session_id
                ),
                "earlier": {"session_id": c.session_id, "type": c.event_type},
                "sent": e.map(|e| serde_json::json!({"session_id": e.session_id, "type": e.kind.type_name()})),
            })
        })
        .collect();
    let first = &conflicts[0];
    let mut p = Problem::new(
        StatusCode::CONFLICT,
        "event-id-conflict",
        format!(
            "event id {:?} was used before by a {} event of session {:?} and is now sent with other content{}; \
             an event id must name one event (unique across sessions and types). Nothing of this batch was stored",
            first.id,
            first.event_type,
            first.session_id,
            if conflicts.len() > 1 {
                format!(" ({} ids in all, listed in errors)", conflicts.len())
            } else {
                String::new()
            }
        ),
    );
    p.errors = errors;
    p
}
