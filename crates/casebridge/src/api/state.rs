//! What every handler is given, the bearer-token check, and the refusal for a CRM that did
//! not answer.

use std::sync::Arc;

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

/// Refuses a request without the bearer token (when one is set).
pub async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Result<Response, Problem> {
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
