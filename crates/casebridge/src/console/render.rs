//! Templates: compiled into the binary (`include_str!`), rendered with auto-escaping, one
//! environment for the process.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde_json::{Value, json};

use super::state::Viewer;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = templates!(
    "base.html",
    "macros.html",
    "login.html",
    "error.html",
    "overview.html",
    "rules.html",
    "rules_feedback.html",
    "crm.html",
    "crm_test.html",
    "dispositions.html",
    "statuses.html",
    "fields.html",
    "sessions.html",
    "session.html",
    "crm_data.html",
    "crm_account.html",
    "crm_record.html",
    "dead_letters.html",
    "reports.html",
    "what_if.html",
    "sources.html",
    "agent.html",
    "agent_panel.html",
);

/// The navigation: path, label, the key pages name as active.
pub const NAV: &[(&str, &str, &str)] = &[
    ("/", "Overview", "overview"),
    ("/rules", "Rules", "rules"),
    ("/crm", "CRM connection", "crm"),
    ("/sources", "Native sources", "sources"),
    ("/dispositions", "Dispositions", "dispositions"),
    ("/agent-statuses", "Agent status mapping", "statuses"),
    ("/custom-fields", "Custom fields", "fields"),
    ("/sessions", "Sessions", "sessions"),
    ("/crm-data", "Built-in CRM", "crm_data"),
    ("/dead-letters", "Dead letters", "dead"),
    ("/reports", "Reports", "reports"),
    ("/what-if", "What if", "what_if"),
    ("/agent", "Agent widget", "agent"),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.add_function("asset", |name: String| super::assets::url(&name));
    for (name, src) in TEMPLATES {
        if let Err(e) = env.add_template(name, src) {
            // A template that does not parse is a build defect; the page says so when used.
            tracing::error!(template = name, error = %e, "Console template does not parse.");
        }
    }
    env
});

fn html(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// Renders a template to a string.
pub fn to_string(name: &str, ctx: &Value) -> Result<String, minijinja::Error> {
    ENV.get_template(name)?.render(ctx)
}

/// Renders a template with the given context, without the viewer (login and error pages).
pub fn bare(name: &str, ctx: Value) -> Response {
    match to_string(name, &ctx) {
        Ok(s) => html(s),
        Err(e) => {
            tracing::error!(template = name, error = %format!("{e:#}"), "Console page failed to render.");
            let mut r = html(
                "<!doctype html><title>Error</title><p>This page could not be shown; see the server log.</p>".into(),
            );
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// Renders a page (or fragment) for a signed-in viewer: the context gets the CSRF token, the
/// navigation and which entry is active.
pub fn page(v: &Viewer, name: &str, active: &str, mut ctx: Value) -> Response {
    let nav: Vec<Value> =
        NAV.iter().map(|(href, label, key)| json!({"href": href, "label": label, "key": key})).collect();
    if let Some(o) = ctx.as_object_mut() {
        o.insert("csrf".into(), json!(v.csrf));
        o.insert("signed_in".into(), json!(v.cookie));
        o.insert("active".into(), json!(active));
        o.insert("nav".into(), json!(nav));
    }
    bare(name, ctx)
}

/// A page with a status other than 200.
pub fn page_with(status: StatusCode, v: &Viewer, name: &str, active: &str, ctx: Value) -> Response {
    let mut r = page(v, name, active, ctx);
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}
