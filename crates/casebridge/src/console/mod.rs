//! The admin console and the agent widget: server-rendered pages next to the API, with the
//! same token (a login page turns it into a session cookie) and the same handlers behind
//! them, so a page shows and changes exactly what the API does.

pub mod assets;
pub mod auth;
pub mod call;
pub mod pages;
pub mod render;
pub mod rules_form;
pub mod state;
pub mod widget;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

pub use self::state::Console;

/// The Content-Security-Policy of every console page: only this origin's scripts, styles,
/// images and requests; no inline script or style, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The console's routes: the login page and the assets are open; every other page needs
/// the token (bearer header or session cookie), and every POST a CSRF token.
pub fn router(console: Console) -> Router {
    let limit = console.app.max_body_bytes;
    let guarded = Router::new()
        .route("/", get(pages::ops::overview))
        .route("/rules", get(rules_form::page).post(rules_form::save))
        .route("/rules/check", post(rules_form::check))
        .route("/rules/title-preview", post(rules_form::title_preview))
        .route("/crm", get(pages::admin::crm_page).post(pages::admin::crm_save))
        .route("/crm/test", post(pages::admin::crm_test))
        .route("/sources", get(pages::sources::page).post(pages::sources::save))
        .route("/dispositions", get(pages::admin::dispositions).post(pages::admin::disposition_create))
        .route("/dispositions/{code}", post(pages::admin::disposition_update))
        .route("/agent-statuses", get(pages::admin::statuses).post(pages::admin::statuses_save))
        .route("/custom-fields", get(pages::admin::fields).post(pages::admin::fields_create))
        .route("/custom-fields/mapping", post(pages::admin::mapping_save))
        .route("/sessions", get(pages::data::sessions))
        .route("/sessions/{id}", get(pages::data::session))
        .route("/crm-data", get(pages::data::crm_data))
        .route("/crm-data/accounts/{id}", get(pages::data::crm_account))
        .route("/crm-data/records/{id}", get(pages::data::crm_record))
        .route("/dead-letters", get(pages::ops::dead_letters))
        .route("/dead-letters/retry-all", post(pages::ops::retry_all))
        .route("/dead-letters/{id}/retry", post(pages::ops::retry_one))
        .route("/reports", get(pages::ops::reports))
        .route("/what-if", get(pages::what_if::what_if).post(pages::what_if::what_if_run))
        .route("/agent", get(widget::page))
        .route("/agent/panel", get(widget::panel))
        .route("/agent/context", post(widget::context))
        .route("/agent/context/close", post(widget::close))
        .route("/agent/wrapup", post(widget::wrapup))
        .route("/agent/status", post(widget::status))
        .route("/agent/dial", post(widget::dial))
        .route("/logout", post(auth::logout))
        .layer(axum::middleware::from_fn_with_state(console.clone(), auth::guard));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/assets/{*path}", get(assets::serve))
        .merge(guarded)
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(crate::api::state::log_refusals))
        .with_state(console)
}
