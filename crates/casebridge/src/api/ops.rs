//! Health, readiness, metrics, OpenAPI, and the outbox (dead letters).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use casebridge_store::OutboxState;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiResult, Problem};

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database is reachable and migrated.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200), (status = 503)))]
pub async fn readyz(State(st): State<AppState>) -> Response {
    match st.store.ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => Problem::unavailable(format!("not ready: {e}"), 1).into_response(),
    }
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    if let Ok(counts) = st.store.outbox_counts().await {
        for state in OutboxState::ALL {
            let n = counts.iter().find(|(s, _)| *s == state).map(|(_, n)| *n).unwrap_or(0);
            metrics::gauge!("casebridge_outbox", "state" => state.as_str()).set(n as f64);
        }
    }
    if let Ok(n) = st.store.pending_event_count().await {
        metrics::gauge!("casebridge_events_pending").set(n as f64);
    }
    let text = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}

/// Query of `GET /v1/outbox`.
#[derive(Debug, Deserialize)]
pub struct OutboxQuery {
    /// pending, done or dead (default dead).
    pub state: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// `GET /v1/outbox?state=dead`: CRM writes by state (dead letters by default).
#[utoipa::path(get, path = "/v1/outbox", tag = "operations",
    params(("state" = Option<String>, Query), ("limit" = Option<i64>, Query)), responses((status = 200)))]
pub async fn list_outbox(State(st): State<AppState>, Query(q): Query<OutboxQuery>) -> ApiResult<Json<Value>> {
    let Ok(state) = q.state.as_deref().unwrap_or("dead").parse::<OutboxState>() else {
        return Err(Problem::fields(
            "unknown state",
            &[casebridge_rules::event::FieldError {
                field: "state".into(),
                message: "must be pending, done or dead".into(),
            }],
        ));
    };
    let rows = st.store.list_commands(state, q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"id": r.id, "key": r.key, "session_id": r.session_id, "state": r.state, "attempts": r.attempts,
                   "last_error": r.last_error, "next_attempt_at": r.next_attempt_at,
                   "op": serde_json::from_str::<Value>(&r.op).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(json!({"writes": items})))
}

/// `POST /v1/outbox/{id}/retry`: puts a dead letter back in line.
#[utoipa::path(post, path = "/v1/outbox/{id}/retry", tag = "operations", params(("id" = i64, Path)),
    responses((status = 202), (status = 404)))]
pub async fn retry_outbox(State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Response> {
    if st.store.redrive_command(id).await? {
        st.pipeline.outbox_in.notify_one();
        Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "state": "pending"}))).into_response())
    } else {
        Err(Problem::not_found(format!("write {id} is not a dead letter (see GET /v1/outbox?state=dead)")))
    }
}
