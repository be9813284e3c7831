//! The HTTP API (api.md): routes, auth, body media types, body limits.

pub mod activities;
pub mod agents;
pub mod connection;
pub mod crm;
pub mod crm_out;
pub mod custom_fields;
pub mod dispositions;
pub mod events;
pub mod ingest;
pub mod input;
pub mod nodes;
pub mod openapi;
pub mod ops;
pub mod reports;
pub mod sessions;
pub mod settings;
pub mod state;
pub mod wrapup;

use axum::Router;

pub use self::state::AppState;
use crate::error::Problem;

/// The whole API: each resource mounts its own routes; all but health and readiness sit
/// behind the bearer token.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let guarded = Router::new()
        .merge(ops::router())
        .merge(nodes::router())
        .merge(openapi::router())
        .merge(events::router())
        .merge(sessions::router())
        .merge(settings::router())
        .merge(crm::router())
        .merge(connection::router())
        .merge(wrapup::router())
        .merge(dispositions::router())
        .merge(activities::router())
        .merge(reports::router())
        .merge(custom_fields::router())
        .merge(agents::router())
        .layer(axum::middleware::from_fn(input::content_type))
        .layer(axum::middleware::from_fn_with_state(state.clone(), state::auth));
    ops::open_router()
        .merge(ingest::router())
        .merge(guarded)
        .fallback(|| async { Problem::not_found("no such endpoint; see /openapi.json for the API") })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Problem::internal("handler panicked"))
        }))
        .layer(axum::middleware::from_fn(state::log_refusals))
        .with_state(state)
}

/// Only `/metrics`, unauthenticated: the router of `serve --metrics-bind`.
pub fn metrics_router(state: AppState) -> Router {
    ops::metrics_router()
        .fallback(|| async { Problem::not_found("this listener serves only /metrics") })
        .layer(axum::middleware::from_fn(state::log_refusals))
        .with_state(state)
}

#[cfg(test)]
mod events_doc;
