//! "What if": the events stored in the last N days replayed under the saved settings and under
//! an edited copy (the same replay as `simulate --compare`), listing the sessions whose
//! outcome would change.

use axum::Extension;
use axum::extract::{Form, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::console::render;
use crate::console::state::{Console, Viewer};

/// At most this many events are replayed.
const MAX_EVENTS: i64 = 200_000;

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `GET /what-if`: the form, with the saved settings to edit.
pub async fn what_if(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let doc = serde_json::to_value(c.app.pipeline.settings().await.redacted()).unwrap_or(Value::Null);
    let ctx = json!({"title": "What if", "days": 7, "doc": pretty(&doc)});
    render::page(&v, "what_if.html", "what_if", ctx)
}

/// `POST /what-if`: validates the edited settings like `PUT /v1/settings`, then replays.
pub async fn what_if_run(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (days_text, doc_text) = (get("days"), get("settings"));
    let mut ctx = json!({"title": "What if", "days": days_text, "doc": doc_text});
    let fail = |mut ctx: Value, errors: Value| {
        ctx["errors"] = errors;
        render::page(&v, "what_if.html", "what_if", ctx)
    };
    let days = match days_text.trim().parse::<i64>() {
        Ok(d) if (1..=366).contains(&d) => d,
        _ => return fail(ctx, json!({"days": ["must be a whole number of days from 1 to 366"]})),
    };
    let doc: Value = match serde_json::from_str(&doc_text) {
        Ok(d) => d,
        Err(e) => return fail(ctx, json!({"settings": [format!("is not valid JSON: {e}")]})),
    };
    let saved = c.app.pipeline.settings().await;
    let edited = match crate::api::settings::check(doc, Some(&saved)) {
        Ok((s, _)) => s,
        Err(p) => {
            let msgs: Vec<String> = p
                .errors
                .iter()
                .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
                .collect();
            return fail(ctx, json!({"settings": msgs}));
        }
    };
    let since = chrono::Utc::now() - chrono::Duration::days(days);
    let bodies = match c.app.store.events_since(since, MAX_EVENTS).await {
        Ok(b) => b,
        Err(e) => return fail(ctx, json!({"days": [format!("the stored events could not be read: {e}")]})),
    };
    match crate::simulate::compare_events(&saved, &edited, &bodies).await {
        Ok((sessions, diffs)) => {
            ctx["result"] = json!({"events": bodies.len(), "sessions": sessions, "diffs": diffs,
                                   "capped": bodies.len() as i64 >= MAX_EVENTS});
            render::page(&v, "what_if.html", "what_if", ctx)
        }
        Err(e) => fail(ctx, json!({"settings": [format!("the replay failed: {e:#}")]})),
    }
}
