//! Health, readiness, metrics, OpenAPI, and the outbox (dead letters).

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use casebridge_store::OutboxState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::input::field;
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// Routes that answer without a token: probes must work before anyone has one.
pub fn open_router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// Metrics and the outbox.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/outbox", get(list_outbox))
        .route("/v1/outbox/{id}/retry", post(retry_outbox))
        .route("/v1/outbox/retry", post(retry_all))
}

/// Answer of the probes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeOut {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: String,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = ProbeOut)))]
pub async fn healthz() -> Json<ProbeOut> {
    Json(ProbeOut { status: "ok".into() })
}

/// `GET /readyz`: the database is reachable and migrated.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = ProbeOut), (status = 503, description = "Not ready")))]
pub async fn readyz(State(st): State<AppState>) -> Response {
    match st.store.ready().await {
        Ok(()) => Json(ProbeOut { status: "ready".into() }).into_response(),
        Err(e) => Problem::unavailable(format!("not ready: {e}"), 1).into_response(),
    }
}

/// Only `/metrics`, without the API token: for `serve --metrics-bind`'s listener.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    description = "Prometheus text. Needs the API token, or the read-only CASEBRIDGE_METRICS_TOKEN; `serve --metrics-bind` serves it without a token on a separate listener. Besides counters and histograms: casebridge_outbox{state} (CRM writes by state), casebridge_events_pending (events not applied yet), casebridge_sessions_waiting (sessions whose events wait for their session.created) and casebridge_sessions_stuck (sessions with an event received more than a minute ago and still not applied); on SQLite, casebridge_sqlite_writer_busy_seconds (seconds its one writer has been held since start: a rate of 0.7 or more means the writer is the limit) and casebridge_sqlite_writer_waiting (writes waiting for it now).",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    let stuck_before = chrono::Utc::now() - chrono::Duration::seconds(60);
    if let Ok(g) = st.store.session_gauges(stuck_before).await {
        metrics::gauge!("casebridge_sessions_waiting").set(g.waiting as f64);
        metrics::gauge!("casebridge_sessions_stuck").set(g.stuck as f64);
    }
    if let Ok(counts) = st.store.outbox_counts().await {
        for state in OutboxState::ALL {
            let n = counts.iter().find(|(s, _)| *s == state).map(|(_, n)| *n).unwrap_or(0);
            metrics::gauge!("casebridge_outbox", "state" => state.as_str()).set(n as f64);
        }
    }
    if let Ok(n) = st.store.pending_event_count().await {
        metrics::gauge!("casebridge_events_pending").set(n as f64);
    }
    if let Some(w) = st.store.writer_stats() {
        // Seconds since start (only ever grows): a rate of 0.7 or more means SQLite's one
        // writer is the limit (the rest goes to handing it from one holder to the next).
        metrics::gauge!("casebridge_sqlite_writer_busy_seconds").set(w.busy_seconds);
        metrics::gauge!("casebridge_sqlite_writer_waiting").set(w.waiting as f64);
    }
    let text = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Query of `GET /v1/outbox`.
#[derive(Debug, Deserialize)]
pub struct OutboxQuery {
    /// pending, done or dead (default dead).
    pub state: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// A CRM write in the outbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxWriteOut {
    /// Row id (for the retry).
    pub id: i64,
    /// Idempotency key.
    pub key: String,
    /// Session.
    pub session_id: String,
    /// pending, done or dead.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Last failure.
    pub last_error: Option<String>,
    /// Next attempt.
    pub next_attempt_at: String,
    /// The write (its `op` member names it); null if it cannot be read.
    pub op: Value,
}

/// `GET /v1/outbox` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxOut {
    /// The writes.
    pub writes: Vec<OutboxWriteOut>,
}

/// `GET /v1/outbox?state=dead`: CRM writes by state (dead letters by default).
#[utoipa::path(get, path = "/v1/outbox", tag = "operations",
    params(("state" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = OutboxOut), (status = 422)))]
pub async fn list_outbox(State(st): State<AppState>, Query(q): Query<OutboxQuery>) -> ApiResult<Json<OutboxOut>> {
    let Ok(state) = q.state.as_deref().unwrap_or("dead").parse::<OutboxState>() else {
        return Err(Problem::fields("unknown state", &[field("state", "must be pending, done or dead")]));
    };
    let rows = st.store.list_commands(state, q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    let writes = rows
        .into_iter()
        .map(|r| OutboxWriteOut {
            op: serde_json::from_str::<Value>(&r.op).unwrap_or(Value::Null),
            id: r.id,
            key: r.key,
            session_id: r.session_id,
            state: r.state.to_string(),
            attempts: r.attempts,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
        })
        .collect();
    Ok(Json(OutboxOut { writes }))
}

/// A dead letter put back in line.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryOut {
    /// Row id.
    pub id: i64,
    /// Always `pending`.
    pub state: String,
}

/// `POST /v1/outbox/{id}/retry`: puts a dead letter back in line.
#[utoipa::path(post, path = "/v1/outbox/{id}/retry", tag = "operations", params(("id" = i64, Path)),
    responses((status = 202, body = RetryOut), (status = 404)))]
pub async fn retry_outbox(State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Response> {
    if st.store.redrive_command(id).await? {
        st.pipeline.outbox_in.notify_one();
        Ok((StatusCode::ACCEPTED, Json(RetryOut { id, state: "pending".into() })).into_response())
    } else {
        Err(Problem::not_found(format!("write {id} is not a dead letter (see GET /v1/outbox?state=dead)")))
    }
}

/// Query of `POST /v1/outbox/retry`.
#[derive(Debug, Deserialize)]
pub struct RetryAllQuery {
    /// Must be `dead`.
    pub state: Option<String>,
}

/// `POST /v1/outbox/retry` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryAllOut {
    /// How many dead letters were put back in line.
    pub retried: u64,
}

/// `POST /v1/outbox/retry?state=dead`: puts every dead letter back in line (after an outage
/// is over, or once the CRM is fixed).
#[utoipa::path(post, path = "/v1/outbox/retry", tag = "operations", params(("state" = String, Query, description = "dead")),
    responses((status = 202, body = RetryAllOut), (status = 422, description = "state is not dead")))]
pub async fn retry_all(State(st): State<AppState>, Query(q): Query<RetryAllQuery>) -> ApiResult<Response> {
    if q.state.as_deref() != Some("dead") {
        return Err(Problem::fields(
            "only dead letters are retried",
            &[field("state", "must be dead: POST /v1/outbox/retry?state=dead")],
        ));
    }
    let retried = st.store.redrive_dead().await?;
    if retried > 0 {
        st.pipeline.outbox_in.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(RetryAllOut { retried })).into_response())
}
