//! What every fake shares: request counting by route, injected faults, and the routes that
//! let a test or a person see and steer the fake.
//!
//! - `GET /__fake/stats`: `{requests, in_flight, by_route, log}`; `log` lists the latest
//!   answered requests (`at_ms` since the fake started, `method`, `route`, `path`, `status`).
//! - `POST /__fake/faults` `{status, count, retry_after_s?, latency_ms?, path_contains?}`:
//!   the next `count` vendor requests (whose path contains `path_contains`, when given)
//!   answer `status` with the vendor's error body (and `Retry-After` when given), after
//!   `latency_ms`. A 2xx `status` lets the request through and only delays its answer: the
//!   write lands while the client may time out. `DELETE /__fake/faults` clears them.
//! - `GET /__fake/objects/{type}`: every stored object of a type, as the vendor stores it.
//! - `POST /__fake/reset`: forgets the counters (not the objects).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Requests kept in the stats' log.
const LOG_LEN: usize = 2000;

/// A vendor's fake.
pub trait Fake: Send + Sync + 'static {
    /// The vendor (`salesforce`, `kustomer`, …).
    fn kind(&self) -> &'static str;
    /// The vendor's API routes.
    fn routes(self: Arc<Self>) -> Router;
    /// Every stored object of a type (`None` for a type the fake does not know).
    fn objects(&self, object_type: &str) -> Option<serde_json::Value>;
    /// The vendor's answer for an injected failure with this status.
    fn fault_response(&self, status: StatusCode, retry_after_s: Option<u64>) -> Response;
}

/// A fault to inject, as posted to `/__fake/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// Status to answer.
    pub status: u16,
    /// How many requests it applies to.
    pub count: u32,
    /// `Retry-After` to send, in seconds.
    #[serde(default)]
    pub retry_after_s: Option<u64>,
    /// Delay before answering.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Only requests whose path contains this.
    #[serde(default)]
    pub path_contains: Option<String>,
}

/// One request in the stats' log.
#[derive(Debug, Clone, Serialize)]
pub struct Logged {
    /// Milliseconds since the fake started.
    pub at_ms: u64,
    /// HTTP method.
    pub method: String,
    /// The route template (ids left out).
    pub route: String,
    /// The path as requested.
    pub path: String,
    /// Status answered.
    pub status: u16,
}

#[derive(Default)]
struct Counters {
    /// Requests answered.
    requests: u64,
    /// Requests received, answered or not yet.
    arrived: u64,
    by_route: BTreeMap<String, u64>,
    log: std::collections::VecDeque<Logged>,
}

struct Control {
    fake: Arc<dyn Fake>,
    started: Instant,
    counters: Mutex<Counters>,
    faults: Mutex<Vec<Fault>>,
}

/// The whole app of a fake: its vendor routes, counted and faultable, plus the control routes.
pub fn app(fake: Arc<dyn Fake>) -> Router {
    let control = Arc::new(Control {
        fake: fake.clone(),
        started: Instant::now(),
        counters: Mutex::new(Counters::default()),
        faults: Mutex::new(Vec::new()),
    });
    let vendor = fake.routes().route_layer(middleware::from_fn_with_state(control.clone(), observe));
    let ctl = Router::new()
        .route("/__fake/stats", get(stats))
        .route("/__fake/faults", post(add_fault).delete(clear_faults))
        .route("/__fake/objects/{object_type}", get(objects))
        .route("/__fake/reset", post(reset))
        .with_state(control);
    vendor.merge(ctl)
}

async fn observe(State(c): State<Arc<Control>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| path.clone());
    c.counters.lock().unwrap_or_else(|e| e.into_inner()).arrived += 1;
    let fault = {
        let mut faults = c.faults.lock().unwrap_or_else(|e| e.into_inner());
        let hit = faults.iter_mut().find(|f| f.count > 0 && f.path_contains.as_ref().is_none_or(|p| path.contains(p)));
        let fault = hit.map(|f| {
            f.count -= 1;
            f.clone()
        });
        faults.retain(|f| f.count > 0);
        fault
    };
    let at_ms = c.started.elapsed().as_millis() as u64;
    let resp = match fault {
        Some(f) => {
            if let Some(ms) = f.latency_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_success() { next.run(req).await } else { c.fake.fault_response(status, f.retry_after_s) }
        }
        None => next.run(req).await,
    };
    let mut k = c.counters.lock().unwrap_or_else(|e| e.into_inner());
    k.requests += 1;
    *k.by_route.entry(format!("{method} {route}")).or_default() += 1;
    k.log.push_back(Logged { at_ms, method, route, path, status: resp.status().as_u16() });
    if k.log.len() > LOG_LEN {
        k.log.pop_front();
    }
    resp
}

async fn stats(State(c): State<Arc<Control>>) -> Json<serde_json::Value> {
    let k = c.counters.lock().unwrap_or_else(|e| e.into_inner());
    let in_flight = k.arrived.saturating_sub(k.requests);
    Json(serde_json::json!({"requests": k.requests, "in_flight": in_flight, "by_route": k.by_route, "log": k.log}))
}

async fn add_fault(State(c): State<Arc<Control>>, Json(f): Json<Fault>) -> Response {
    if StatusCode::from_u16(f.status).is_err() {
        return (StatusCode::UNPROCESSABLE_ENTITY, "status must be an HTTP status code").into_response();
    }
    c.faults.lock().unwrap_or_else(|e| e.into_inner()).push(f);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(c): State<Arc<Control>>) -> StatusCode {
    c.faults.lock().unwrap_or_else(|e| e.into_inner()).clear();
    StatusCode::NO_CONTENT
}

async fn reset(State(c): State<Arc<Control>>) -> StatusCode {
    *c.counters.lock().unwrap_or_else(|e| e.into_inner()) = Counters::default();
    StatusCode::NO_CONTENT
}

async fn objects(State(c): State<Arc<Control>>, Path(object_type): Path<String>) -> Response {
    match c.fake.objects(&object_type) {
        Some(v) => Json(v).into_response(),
        None => (StatusCode::NOT_FOUND, format!("this fake stores no objects of type {object_type:?}")).into_response(),
    }
}
