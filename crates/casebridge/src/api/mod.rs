//! The HTTP API (api.md): routes, auth, body limits.

pub mod activities;
pub mod agents;
pub mod crm;
pub mod crm_out;
pub mod custom_fields;
pub mod dispositions;
pub mod events;
pub mod input;
pub mod ops;
pub mod reports;
pub mod sessions;
pub mod settings;
pub mod wrapup;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
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
    /// Bearer token; None in loopback open mode.
    pub token: Option<Arc<str>>,
    /// Prometheus renderer.
    pub metrics: Option<PrometheusHandle>,
    /// Group committer for events.
    pub intake: crate::intake::Intake,
    /// Largest accepted body.
    pub max_body_bytes: usize,
}

/// The whole API: each resource mounts its own routes; all but health and readiness sit
/// behind the bearer token.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let guarded = Router::new()
        .merge(ops::router())
        .merge(events::router())
        .merge(sessions::router())
        .merge(settings::router())
        .merge(crm::router())
        .merge(wrapup::router())
        .merge(dispositions::router())
        .merge(activities::router())
        .merge(reports::router())
        .merge(custom_fields::router())
        .merge(agents::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    ops::open_router()
        .merge(guarded)
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

/// 503 for a CRM that did not answer (nothing was changed; the client may retry).
pub fn crm_unavailable(e: casebridge_crm::CrmError) -> Problem {
    Problem::unavailable(format!("the CRM did not answer: {e}; try again"), 5)
}
