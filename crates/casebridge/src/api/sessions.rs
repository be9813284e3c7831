//! Sessions and their timelines.

use axum::Json;
use axum::extract::{Path, Query, State};
use casebridge_rules::session::Session;
use casebridge_store::SessionRow;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiResult, Problem};

/// The public view of a session.
pub fn view(id: &str, row: &SessionRow, s: &Session) -> Value {
    json!({
        "id": id,
        "channel": s.channel.map(|c| c.as_str()),
        "session_type": s.session_type.map(|t| t.as_str()),
        "direction": s.direction,
        "state": s.phase.as_str(),
        "leaf_queue": s.leaf_queue(),
        "account_id": row.account_id,
        "account_outcome": s.account_outcome,
        "record_id": row.record_id,
        "record_outcome": s.record_outcome,
        "record_rule": s.record_rule,
        "abandoned": s.abandoned,
        "missed_reason": s.missed_reason,
        "customer_messages": s.customer_messages,
        "agent_id": s.agent.as_ref().map(|a| a.id.clone()),
        "created_at": s.created_at,
        "ended_at": s.ended_at,
    })
}

/// `GET /v1/sessions/{id}`.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, description = "The session with its timeline"), (status = 404)))]
pub async fn get_session(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let Some(row) = st.store.load_session(&id).await? else {
        return Err(Problem::not_found(format!("no session {id:?} has been received")));
    };
    let s: Session = serde_json::from_str(&row.body).map_err(Problem::internal)?;
    let mut v = view(&id, &row, &s);
    v["settled"] = st.store.session_settled(&id).await?.into();
    v["timeline"] = serde_json::to_value(st.store.timeline(&id).await?).map_err(Problem::internal)?;
    let f = casebridge_store::agents::ActivityFilter { session_id: Some(id.clone()), ..Default::default() };
    v["activities"] = serde_json::to_value(st.pipeline.agents.activities(&f).await?).map_err(Problem::internal)?;
    Ok(Json(v))
}

/// Query of `GET /v1/sessions`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// CRM account id.
    pub account_id: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// `GET /v1/sessions?account_id=…`.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    params(("account_id" = String, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{sessions, next_cursor}")))]
pub async fn list_sessions(State(st): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let Some(account) = q.account_id.filter(|a| !a.is_empty()) else {
        return Err(Problem::fields(
            "account_id is required",
            &[casebridge_rules::event::FieldError {
                field: "account_id".into(),
                message: "give the CRM account id whose sessions to list".into(),
            }],
        ));
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = st.store.sessions_by_account(&account, limit + 1, q.cursor.as_deref()).await?;
    let mut out = Vec::new();
    let mut next = None;
    for (i, (cursor, row)) in rows.iter().enumerate() {
        if i as i64 == limit {
            break;
        }
        let s: Session = serde_json::from_str(&row.body).map_err(Problem::internal)?;
        out.push(view(&s.id, row, &s));
        next = Some(cursor.clone());
    }
    if rows.len() as i64 <= limit {
        next = None;
    }
    Ok(Json(json!({"sessions": out, "next_cursor": next})))
}
