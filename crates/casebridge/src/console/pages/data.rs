//! Sessions (search and timeline) and the built-in CRM's browser: the API's read handlers,
//! drawn as pages.

use axum::Extension;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::console::call::answer;
use crate::console::render;
use crate::console::state::{Console, Viewer};

/// The session search form.
#[derive(Debug, Deserialize, Default)]
pub struct SessionSearch {
    /// A session id: straight to its timeline.
    pub id: Option<String>,
    /// Customer phone, any format.
    pub phone: Option<String>,
    /// CRM account id.
    pub account_id: Option<String>,
    /// Session phase.
    pub state: Option<String>,
    /// Record outcome.
    pub record_outcome: Option<String>,
    /// Next page.
    pub cursor: Option<String>,
}

fn some(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `GET /sessions`: search by id, phone or account; newest first.
pub async fn sessions(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<SessionSearch>,
) -> Response {
    let mut notice = Value::Null;
    if let Some(id) = some(&q.id) {
        if c.app.store.load_session(&id).await.ok().flatten().is_some() {
            let path = format!("/sessions/{}", urlencode(&id));
            return Redirect::to(&path).into_response();
        }
        notice = json!({"ok": false, "text": format!("No session {id:?} has been received.")});
    }
    let lq = crate::api::sessions::ListQuery {
        state: some(&q.state),
        from: None,
        to: None,
        record_outcome: some(&q.record_outcome),
        account_id: some(&q.account_id),
        phone: some(&q.phone),
        limit: Some(50),
        cursor: some(&q.cursor),
    };
    let a = answer(crate::api::sessions::list_sessions(State(c.app.clone()), Query(lq)).await).await;
    let errors = a.field_errors();
    if !a.ok() && notice.is_null() {
        notice = json!({"ok": false, "text": a.detail()});
    }
    let next = a.body["next_cursor"].as_str().map(|cur| {
        let mut q2 = vec![("cursor", cur.to_string())];
        for (k, val) in [
            ("phone", &q.phone),
            ("account_id", &q.account_id),
            ("state", &q.state),
            ("record_outcome", &q.record_outcome),
        ] {
            if let Some(x) = some(val) {
                q2.push((k, x));
            }
        }
        format!("/sessions?{}", serde_urlencoded::to_string(q2).unwrap_or_default())
    });
    let ctx = json!({
        "title": "Sessions", "sessions": a.body["sessions"], "next": next, "notice": notice, "errors": errors,
        "q": {"id": q.id, "phone": q.phone, "account_id": q.account_id, "state": q.state, "record_outcome": q.record_outcome},
        "states": ["waiting", "created", "queued", "assigned", "connected", "abandoned", "ended"],
        "outcomes": ["pending", "created", "appended", "reopened", "none"],
    });
    render::page(&v, "sessions.html", "sessions", ctx)
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap_or_default().trim_start_matches('=').to_string()
}

/// `GET /sessions/{id}`: the session, its timeline with each decision's rule and each CRM
/// write, and its activity log lines.
pub async fn session(State(c): State<Console>, Extension(v): Extension<Viewer>, Path(id): Path<String>) -> Response {
    let a = answer(crate::api::sessions::get_session(State(c.app.clone()), Path(id.clone())).await).await;
    if !a.ok() {
        let ctx = json!({"title": format!("Session {id}"), "missing": a.detail()});
        return render::page_with(a.status, &v, "session.html", "sessions", ctx);
    }
    let builtin = c.app.pipeline.settings().await.crm.kind == "builtin";
    let ctx = json!({"title": format!("Session {id}"), "s": a.body, "builtin": builtin});
    render::page(&v, "session.html", "sessions", ctx)
}

async fn require_builtin(c: &Console, v: &Viewer) -> Option<Response> {
    let kind = c.app.pipeline.settings().await.crm.kind.clone();
    (kind != "builtin").then(|| {
        let ctx = json!({"title": "Built-in CRM", "off": format!("The built-in CRM is not in use: the CRM connection is {kind}.")});
        render::page_with(StatusCode::CONFLICT, v, "crm_data.html", "crm_data", ctx)
    })
}

/// `GET /crm-data`: accounts (newest first, or by phone or email) and records.
pub async fn crm_data(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    if let Some(r) = require_builtin(&c, &v).await {
        return r;
    }
    // Empty boxes of the search form are no filter.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let kept: Vec<(String, String)> = pairs.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
    let uri: axum::http::Uri =
        format!("/crm-data?{}", serde_urlencoded::to_string(&kept).unwrap_or_default()).parse().unwrap_or_default();
    let aq = Query::<crate::api::crm::AccountQuery>::try_from_uri(&uri);
    let rq = Query::<crate::api::crm::RecordQuery>::try_from_uri(&uri);
    let (Ok(aq), Ok(rq)) = (aq, rq) else {
        let ctx = json!({"title": "Built-in CRM", "off": "The search is not readable: check the filters."});
        return render::page_with(StatusCode::BAD_REQUEST, &v, "crm_data.html", "crm_data", ctx);
    };
    let q = json!({"phone": aq.phone, "email": aq.email, "account_id": rq.account_id, "status": rq.status});
    let accounts = answer(crate::api::crm::list_accounts(State(c.app.clone()), aq).await).await;
    let records = answer(crate::api::crm::list_records(State(c.app.clone()), rq).await).await;
    let ctx = json!({"title": "Built-in CRM", "accounts": accounts.body["accounts"], "records": records.body["records"],
                     "q": q, "account_error": if accounts.ok() { Value::Null } else { json!(accounts.detail()) },
                     "record_error": if records.ok() { Value::Null } else { json!(records.detail()) },
                     "statuses": casebridge_crm::builtin::storage::STATUSES});
    render::page(&v, "crm_data.html", "crm_data", ctx)
}

/// `GET /crm-data/accounts/{id}`: an account, its activities, records and sessions.
pub async fn crm_account(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = require_builtin(&c, &v).await {
        return r;
    }
    let a = answer(crate::api::crm::get_account(State(c.app.clone()), Path(id.clone())).await).await;
    if !a.ok() {
        let ctx = json!({"title": format!("Account {id}"), "missing": a.detail()});
        return render::page_with(a.status, &v, "crm_account.html", "crm_data", ctx);
    }
    let rq = crate::api::crm::RecordQuery { account_id: Some(id.clone()), session_id: None, status: None };
    let records = answer(crate::api::crm::list_records(State(c.app.clone()), Query(rq)).await).await;
    let ctx = json!({"title": format!("Account {id}"), "a": a.body, "records": records.body["records"]});
    render::page(&v, "crm_account.html", "crm_data", ctx)
}

/// `GET /crm-data/records/{id}`: a record with its activities, notes and attachments.
pub async fn crm_record(State(c): State<Console>, Extension(v): Extension<Viewer>, Path(id): Path<String>) -> Response {
    if let Some(r) = require_builtin(&c, &v).await {
        return r;
    }
    let a = answer(crate::api::crm::get_record(State(c.app.clone()), Path(id.clone())).await).await;
    let status = a.status;
    let ctx = if a.ok() {
        json!({"title": format!("Record {id}"), "r": a.body})
    } else {
        json!({"title": format!("Record {id}"), "missing": a.detail()})
    };
    render::page_with(status, &v, "crm_record.html", "crm_data", ctx)
}
