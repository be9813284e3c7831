//! The HTTP API (api.md): routes, auth, body limits.

pub mod agents;
pub mod crm;
pub mod events;
pub mod ops;
pub mod sessions;
pub mod settings;
pub mod wrapup;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use casebridge_crm::builtin_storage::BuiltinCrmStore;
use casebridge_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;

use crate::error::Problem;
use crate::pipeline::Pipeline;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// Workers and settings.
    pub pipeline: Arc<Pipeline>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The built-in CRM's storage.
    pub builtin: Arc<dyn BuiltinCrmStore>,
    /// Bearer token; None in loopback open mode.
    pub token: Option<Arc<str>>,
    /// Prometheus renderer.
    pub metrics: Option<PrometheusHandle>,
    /// Group committer for events.
    pub intake: crate::intake::Intake,
    /// Largest accepted body.
    pub max_body_bytes: usize,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let open = Router::new().route("/healthz", get(ops::healthz)).route("/readyz", get(ops::readyz));
    let guarded = Router::new()
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/events", post(events::post_events))
        .route("/v1/sessions", get(sessions::list_sessions))
        .route("/v1/sessions/{id}", get(sessions::get_session))
        .route("/v1/settings", get(settings::get_settings).put(settings::put_settings))
        .route("/v1/crm/accounts", post(crm::create_account).get(crm::list_accounts))
        .route("/v1/crm/accounts/{id}", get(crm::get_account))
        .route("/v1/crm/records", post(crm::create_record).get(crm::list_records))
        .route("/v1/crm/records/{id}", get(crm::get_record).patch(crm::patch_record))
        .route("/v1/crm/attachments/{id}", get(crm::get_attachment))
        .route("/v1/sessions/{id}/wrapup", post(wrapup::wrapup))
        .route("/v1/activities", get(wrapup::list_activities))
        .route("/v1/dispositions", get(wrapup::list_dispositions).post(wrapup::create_disposition))
        .route("/v1/dispositions/{code}", axum::routing::patch(wrapup::patch_disposition))
        .route("/v1/reports/dispositions", get(wrapup::report_dispositions))
        .route("/v1/reports/abandoned", get(wrapup::report_abandoned))
        .route("/v1/crm/custom-fields", get(wrapup::list_fields).post(wrapup::create_fields))
        .route("/v1/agents/{id}", put(agents::put_agent).get(agents::get_agent))
        .route("/v1/agents/{id}/context", put(agents::put_context))
        .route("/v1/agents/{id}/context/{instance_id}", delete(agents::delete_context))
        .route("/v1/agents/{id}/status", put(agents::put_status))
        .route("/v1/agents/{id}/dial", post(agents::dial))
        .route("/v1/dial-requests/{id}", get(agents::get_dial))
        .route("/v1/crm/agent-status", post(agents::crm_status))
        .route("/v1/crm/agent-statuses", get(crm::builtin_statuses))
        .route("/v1/outbox", get(ops::list_outbox))
        .route("/v1/outbox/{id}/retry", post(ops::retry_outbox))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    open.merge(guarded)
        .fallback(|| async { Problem::not_found("no such endpoint; see /openapi.json for the API") })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Problem::internal("handler panicked"))
        }))
        .with_state(state)
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Result<Response, Problem> {
    if let Some(token) = &st.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = given.as_bytes().ct_eq(token.as_bytes()).into();
        if !ok {
            let mut p = Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token: send Authorization: Bearer <CASEBRIDGE_API_TOKEN>",
            );
            p.title = "Unauthorized".into();
            return Err(p);
        }
    }
    Ok(next.run(req).await)
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
pub fn json_body(b: &Bytes) -> Result<serde_json::Value, Problem> {
    serde_json::from_slice(b).map_err(|e| Problem::bad_request(format!("body is not valid JSON: {e}")))
}

/// 503 for a CRM that did not answer (nothing was changed; the client may retry).
pub fn crm_unavailable(e: casebridge_crm::CrmError) -> Problem {
    Problem::unavailable(format!("the CRM did not answer: {e}; try again"), 5)
}

/// A field error.
pub fn field(f: &str, m: &str) -> casebridge_rules::event::FieldError {
    casebridge_rules::event::FieldError { field: f.into(), message: m.into() }
}

/// An optional string member; a wrong type is recorded as an error.
pub fn opt_str(
    v: &serde_json::Value,
    k: &str,
    errors: &mut Vec<casebridge_rules::event::FieldError>,
) -> Option<String> {
    match v.get(k) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(field(k, "must be a string"));
            None
        }
    }
}

/// An optional boolean member.
pub fn opt_bool(v: &serde_json::Value, k: &str, errors: &mut Vec<casebridge_rules::event::FieldError>) -> Option<bool> {
    match v.get(k) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(field(k, "must be true or false"));
            None
        }
    }
}

/// An optional RFC 3339 time member.
pub fn opt_time(
    v: &serde_json::Value,
    k: &str,
    errors: &mut Vec<casebridge_rules::event::FieldError>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = opt_str(v, k, errors)?;
    match chrono::DateTime::parse_from_rfc3339(&s) {
        Ok(t) => Some(t.with_timezone(&chrono::Utc)),
        Err(_) => {
            errors.push(field(k, "must be an RFC 3339 timestamp such as 2026-11-20T10:00:00Z"));
            None
        }
    }
}

/// A required non-empty string member.
pub fn req_str(v: &serde_json::Value, k: &str, errors: &mut Vec<casebridge_rules::event::FieldError>) -> String {
    match opt_str(v, k, errors) {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => {
            errors.push(field(k, "must not be empty"));
            String::new()
        }
        None => {
            if !errors.iter().any(|e| e.field == k) {
                errors.push(field(k, "is required"));
            }
            String::new()
        }
    }
}
