//! Native event formats (api.md "Native event formats"): each platform's own events, with
//! its own transport and proof of origin, read by `casebridge_rules::native` into casebridge
//! events and stored with them.
//!
//! Every endpoint checks, in this order: the source is enabled (else 404), the request proves
//! its origin (the source's secret or signature, or the API bearer token; else 401), the
//! payload is the format (else 422). Nothing of a refused request is stored. Event types that
//! mean nothing to casebridge are answered 2xx (so the platform does not retry them) and
//! counted in `casebridge_ingest_events_total{source, outcome="irrelevant"}`.

pub mod amazon_connect;
mod common;
pub mod cti;
pub mod genesys;
pub mod schemas;
pub mod sns;
pub mod twilio;

use axum::Router;

use super::state::AppState;

/// The native endpoints. They sit outside the bearer-token guard: each checks its source's
/// own proof, and also accepts the API token.
pub fn router() -> Router<AppState> {
    Router::new().merge(amazon_connect::router()).merge(twilio::router()).merge(genesys::router()).merge(cti::router())
}
