//! What every handler is given, the bearer-token check, and the refusal for a CRM that did
//! not answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use casebridge_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;

use crate::error::{Problem, Refusal};
use crate::pipeline::Pipeline;

/// Shared state of the handlers: one `Arc`, so the per-request clones axum makes (one per
/// middleware and handler) cost one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// Workers and settings.
    pub pipeline: Arc<Pipeline>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Bearer token; None in loopback open mode.
    pub token: Option<Arc<str>>,
    /// Read-only bearer token accepted on `/metrics` only (`CASEBRIDGE_METRICS_TOKEN`).
    pub metrics_token: Option<Arc<str>>,
    /// Prometheus renderer.
    pub metrics: Option<PrometheusHandle>,
    /// Group committer for events.
    pub intake: crate::intake::Intake,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Seals the settings' secrets at rest.
    pub sealer: Arc<crate::secrets::Sealer>,
    /// Native event formats: their lock and SNS signature checks.
    pub native: Arc<crate::native::NativeIngest>,
}

/// The challenge every 401 carries (RFC 6750).
pub const CHALLENGE: &str = "Bearer realm=\"casebridge\"";

/// Refuses a request without the bearer token (when one is set). `/metrics` also accepts
/// the read-only metrics token.
pub async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same = |t: &str| -> bool { given.as_bytes().ct_eq(t.as_bytes()).into() };
        let ok = same(token) || (req.uri().path() == "/metrics" && st.metrics_token.as_deref().is_some_and(same));
        if !ok {
            return unauthorized();
        }
    }
    next.run(req).await
}

/// 401 with the `WWW-Authenticate` challenge.
fn unauthorized() -> Response {
    let mut p = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong bearer token: send Authorization: Bearer <CASEBRIDGE_API_TOKEN>",
    );
    p.title = "Unauthorized".into();
    let mut r = p.into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    r
}

/// Logs every refused request (4xx and 5xx) at warn: method, path, status and the problem's
/// detail; never the query, the body or a header.
pub async fn log_refusals(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // A clone of the URI shares its bytes: nothing is copied unless the request is refused.
    let uri = req.uri().clone();
    let res = next.run(req).await;
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        let detail = res.extensions().get::<Refusal>().map(|r| r.0.as_str()).unwrap_or("");
        let path = uri.path();
        tracing::warn!(%method, %path, status = status.as_u16(), detail, "Request refused.");
    }
    res
}

/// 503 for a CRM that did not answer (nothing was changed; the client may retry).
pub fn crm_unavailable(e: casebridge_crm::CrmError) -> Problem {
    Problem::unavailable(format!("the CRM did not answer: {e}; try again"), 5)
}
