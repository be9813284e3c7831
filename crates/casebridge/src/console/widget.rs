//! The agent widget at `/agent`: the agent, the current session and caller, the matched
//! person (a choice when several match), the record, dispositions, notes, Log / Do not log,
//! the status and click-to-call. Every action is the API's own handler; the widget reports
//! which record it shows (`PUT /v1/agents/{id}/context`) so relate-to-case can use it.

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use casebridge_rules::session::Session;
use casebridge_store::SessionFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{answer, body};
use super::render;
use super::state::{Console, Viewer};

/// Which agent, and optionally which session.
#[derive(Debug, Deserialize, Default)]
pub struct WidgetQuery {
    /// The agent's id.
    pub agent: Option<String>,
    /// A session to show instead of the agent's newest.
    pub session: Option<String>,
}

type Pairs = Vec<(String, String)>;

fn get(form: &Pairs, k: &str) -> Option<String> {
    form.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The agent's newest session among the latest ones.
async fn current_session(c: &Console, agent: &str) -> Option<String> {
    let rows = c.app.store.list_sessions(&SessionFilter { limit: 200, ..Default::default() }).await.ok()?;
    rows.into_iter().find_map(|(_, row)| {
        let s: Session = serde_json::from_str(&row.body).ok()?;
        (s.agent.as_ref().is_some_and(|a| a.id == agent)).then_some(s.id)
    })
}

/// Everything the panel shows.
async fn panel_ctx(c: &Console, agent: &str, session: Option<String>) -> Value {
    let st = &c.app;
    let settings = st.pipeline.settings().await;
    let session_id = match session {
        Some(s) => Some(s),
        None => current_session(c, agent).await,
    };
    let a = answer(crate::api::agents::get_agent(State(st.clone()), Path(agent.to_string())).await).await;
    let agent_view = if a.ok() { a.body } else { json!({"id": agent, "unknown": a.detail()}) };
    let mut ctx = json!({"agent": agent_view, "agent_id": agent, "statuses": settings.agent_status.platform_statuses,
                         "builtin": settings.crm.kind == "builtin",
                         "dispositions_enabled": settings.call_logging.dispositions_enabled});
    let q = Query(crate::api::dispositions::DispositionQuery { active: Some(true) });
    let d = answer(crate::api::dispositions::list_dispositions(State(st.clone()), q).await).await;
    ctx["dispositions"] = d.or(json!({}))["dispositions"].clone();
    if let Some(id) = session_id {
        let s = answer(crate::api::sessions::get_session(State(st.clone()), Path(id.clone())).await).await;
        if s.ok() {
            let customer = match st.store.load_session(&id).await.ok().flatten() {
                Some(row) => serde_json::from_str::<Session>(&row.body)
                    .map(|s| json!({"name": s.customer.name, "phone": s.customer.phone, "email": s.customer.email}))
                    .unwrap_or(Value::Null),
                None => Value::Null,
            };
            ctx["customer"] = customer;
            ctx["session"] = s.body;
        } else {
            ctx["session_error"] = json!(s.detail());
        }
    }
    ctx
}

/// `GET /agent`: the widget around its panel.
pub async fn page(State(c): State<Console>, Extension(v): Extension<Viewer>, Query(q): Query<WidgetQuery>) -> Response {
    let agent = q.agent.map(|a| a.trim().to_string()).filter(|a| !a.is_empty());
    let mut ctx = match &agent {
        Some(a) => panel_ctx(&c, a, q.session.filter(|s| !s.trim().is_empty())).await,
        None => json!({}),
    };
    ctx["title"] = json!("Agent widget");
    ctx["instance_id"] = json!(uuid::Uuid::new_v4().to_string());
    render::page(&v, "agent.html", "agent", ctx)
}

/// `GET /agent/panel`: the panel alone (htmx refresh).
pub async fn panel(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<WidgetQuery>,
) -> Response {
    let Some(agent) = q.agent.filter(|a| !a.trim().is_empty()) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "agent: is required").into_response();
    };
    let ctx = panel_ctx(&c, &agent, q.session.filter(|s| !s.trim().is_empty())).await;
    render::page(&v, "agent_panel.html", "agent", ctx)
}

async fn panel_with(c: &Console, v: &Viewer, form: &Pairs, result: Value) -> Response {
    let agent = get(form, "agent").unwrap_or_default();
    let mut ctx = panel_ctx(c, &agent, get(form, "session")).await;
    ctx["result"] = result;
    render::page(v, "agent_panel.html", "agent", ctx)
}

/// `POST /agent/wrapup`: `POST /v1/sessions/{id}/wrapup`; a 409 shows the matching people to
/// choose from, and the choice is sent with the next submit.
pub async fn wrapup(State(c): State<Console>, Extension(v): Extension<Viewer>, Form(form): Form<Pairs>) -> Response {
    let Some(session) = get(&form, "session") else {
        return panel_with(&c, &v, &form, json!({"ok": false, "text": "There is no session to wrap up."})).await;
    };
    let input = json!({
        "disposition": get(&form, "disposition"), "notes": get(&form, "notes"),
        "action": get(&form, "action").unwrap_or_else(|| "log".into()),
        "person_id": get(&form, "person_id"), "agent_id": get(&form, "agent"),
    });
    let a = answer(crate::api::wrapup::wrapup(State(c.app.clone()), Path(session), body(input.clone())).await).await;
    let result = if a.ok() {
        let on = a.body["person_id"].as_str().map(|p| format!(" on {p}")).unwrap_or_default();
        let rec = a.body["record_id"].as_str().map(|r| format!(", related to record {r}")).unwrap_or_default();
        let what = if a.body["action"] == "do_not_log" {
            "Not logged to the CRM (kept in the activity log)".to_string()
        } else {
            format!("Logged{on}{rec}")
        };
        json!({"ok": true, "text": format!("{what}."), "wrapup": a.body})
    } else if a.status == StatusCode::CONFLICT && a.body["candidates"].is_array() {
        json!({"ok": false, "choose": true, "candidates": a.body["candidates"], "input": input,
               "text": "Several people match this caller: choose who the call was with, then log again."})
    } else {
        let fields: Vec<String> = a.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
            .collect();
        json!({"ok": false, "text": format!("{} {}", a.detail(), fields.join("; ")).trim().to_string(), "input": input})
    };
    panel_with(&c, &v, &form, result).await
}

/// `POST /agent/status`: the agent picks a status (`PUT /v1/agents/{id}/status`).
pub async fn status(State(c): State<Console>, Extension(v): Extension<Viewer>, Form(form): Form<Pairs>) -> Response {
    let agent = get(&form, "agent").unwrap_or_default();
    let input = json!({"status": get(&form, "status"), "source": "agent"});
    let a = answer(crate::api::agents::put_status(State(c.app.clone()), Path(agent), body(input)).await).await;
    let result = if a.ok() {
        json!({"ok": true, "text": format!("Status: {}.", a.body["agent"]["status"].as_str().unwrap_or(""))})
    } else {
        json!({"ok": false, "text": a.detail()})
    };
    panel_with(&c, &v, &form, result).await
}

/// `POST /agent/dial`: click-to-call (`POST /v1/agents/{id}/dial`).
pub async fn dial(State(c): State<Console>, Extension(v): Extension<Viewer>, Form(form): Form<Pairs>) -> Response {
    let agent = get(&form, "agent").unwrap_or_default();
    let input =
        json!({"phone": get(&form, "phone").unwrap_or_default(), "origin_record_id": get(&form, "origin_record_id")});
    let a = answer(crate::api::agents::dial(State(c.app.clone()), Path(agent), body(input)).await).await;
    let result = if a.ok() {
        json!({"ok": true, "text": format!("Dial request {} sent to the contact center.", a.body["dial_request_id"].as_str().unwrap_or(""))})
    } else {
        let fields: Vec<String> = a.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
            .collect();
        json!({"ok": false, "text": format!("{} {}", a.detail(), fields.join("; ")).trim().to_string()})
    };
    panel_with(&c, &v, &form, result).await
}

/// `POST /agent/context`: which record this widget shows (`PUT /v1/agents/{id}/context`).
pub async fn context(State(c): State<Console>, Form(form): Form<Pairs>) -> Response {
    let agent = get(&form, "agent").unwrap_or_default();
    let input = json!({"instance_id": get(&form, "instance_id"), "viewing_record_id": get(&form, "viewing_record_id")});
    let a = answer(crate::api::agents::put_context(State(c.app.clone()), Path(agent), body(input)).await).await;
    (a.status, axum::Json(a.body)).into_response()
}

/// `POST /agent/context/close`: the widget closed (`DELETE /v1/agents/{id}/context/{instance}`).
pub async fn close(State(c): State<Console>, Form(form): Form<Pairs>) -> Response {
    let agent = get(&form, "agent").unwrap_or_default();
    let instance = get(&form, "instance_id").unwrap_or_default();
    let a = answer(crate::api::agents::delete_context(State(c.app.clone()), Path((agent, instance))).await).await;
    (a.status, axum::Json(a.body)).into_response()
}
