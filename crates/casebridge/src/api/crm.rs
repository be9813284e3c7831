//! The built-in CRM's API (api.md "Built-in CRM").

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use casebridge_crm::builtin_storage::{CrmRecord, NewAccount, NewRecord, RecordFilter, STATUSES};
use casebridge_rules::phone::Phone;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, body, field, json_body, opt_str, opt_time};
use crate::error::{ApiResult, Problem};

async fn require_builtin(st: &AppState) -> ApiResult<()> {
    let s = st.pipeline.settings().await;
    if s.crm.kind != "builtin" {
        return Err(Problem::conflict(format!(
            "the built-in CRM is not in use (crm.kind is {:?}); set crm.kind to \"builtin\" in the settings to use it",
            s.crm.kind
        )));
    }
    Ok(())
}

/// `POST /v1/crm/accounts`.
#[utoipa::path(post, path = "/v1/crm/accounts", tag = "builtin-crm", request_body = serde_json::Value,
    responses((status = 201, description = "The account"), (status = 422), (status = 409, description = "Built-in CRM not in use")))]
pub async fn create_account(State(st): State<AppState>, raw: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    require_builtin(&st).await?;
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let kind = opt_str(&v, "kind", &mut errors);
    match kind.as_deref() {
        Some("contact" | "lead" | "person_account") => {}
        Some(_) => errors.push(field("kind", "must be contact, lead or person_account")),
        None => errors.push(field("kind", "is required: contact, lead or person_account")),
    }
    let name = opt_str(&v, "name", &mut errors);
    let phone = opt_str(&v, "phone", &mut errors);
    let email = opt_str(&v, "email", &mut errors);
    let user_id = opt_str(&v, "user_id", &mut errors);
    let at = opt_time(&v, "at", &mut errors);
    if let Some(e) = &email
        && !e.contains('@')
    {
        errors.push(field("email", "must be an email address"));
    }
    if !errors.is_empty() {
        return Err(Problem::fields("the account is invalid; nothing was created", &errors));
    }
    let region = st.pipeline.settings().await.region.clone();
    let phone_key = phone.as_deref().map(|p| Phone::parse(p, &region).number);
    let (a, _) = st
        .builtin
        .crm_create_account(NewAccount {
            id: None,
            kind: kind.unwrap_or_default(),
            name,
            phone,
            phone_key,
            email,
            user_id,
            ext_key: None,
            at: at.unwrap_or_else(Utc::now),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

/// Query of `GET /v1/crm/accounts`.
#[derive(Debug, Deserialize)]
pub struct AccountQuery {
    /// Phone in any format.
    pub phone: Option<String>,
    /// Email (case-insensitive).
    pub email: Option<String>,
    /// App user id.
    pub user_id: Option<String>,
}

/// `GET /v1/crm/accounts?phone=&email=&user_id=`.
#[utoipa::path(get, path = "/v1/crm/accounts", tag = "builtin-crm",
    params(("phone" = Option<String>, Query), ("email" = Option<String>, Query), ("user_id" = Option<String>, Query)),
    responses((status = 200, description = "{accounts}")))]
pub async fn list_accounts(State(st): State<AppState>, Query(q): Query<AccountQuery>) -> ApiResult<Json<Value>> {
    require_builtin(&st).await?;
    if q.phone.is_none() && q.email.is_none() && q.user_id.is_none() {
        return Err(Problem::fields("give a filter", &[field("phone", "give phone, email or user_id")]));
    }
    let region = st.pipeline.settings().await.region.clone();
    let phone_key = q.phone.as_deref().map(|p| Phone::parse(p, &region).number);
    let found = st.builtin.crm_find_accounts(phone_key.as_deref(), q.email.as_deref(), q.user_id.as_deref()).await?;
    Ok(Json(json!({"accounts": found})))
}

/// `GET /v1/crm/accounts/{id}` with its activities.
#[utoipa::path(get, path = "/v1/crm/accounts/{id}", tag = "builtin-crm", params(("id" = String, Path)),
    responses((status = 200), (status = 404)))]
pub async fn get_account(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    require_builtin(&st).await?;
    let a = st
        .builtin
        .crm_get_account(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no account {id:?} in the built-in CRM")))?;
    let mut v = serde_json::to_value(a).map_err(Problem::internal)?;
    v["activities"] = serde_json::to_value(st.builtin.crm_account_activities(&id).await?).map_err(Problem::internal)?;
    Ok(Json(v))
}

/// `POST /v1/crm/records`.
#[utoipa::path(post, path = "/v1/crm/records", tag = "builtin-crm", request_body = serde_json::Value,
    responses((status = 201), (status = 422)))]
pub async fn create_record(State(st): State<AppState>, raw: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    require_builtin(&st).await?;
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let account_id = opt_str(&v, "account_id", &mut errors);
    let title = opt_str(&v, "title", &mut errors);
    if title.as_deref().is_none_or(|t| t.trim().is_empty()) {
        errors.push(field("title", "is required"));
    }
    let status = opt_str(&v, "status", &mut errors);
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        errors.push(field("status", &format!("must be one of {}", STATUSES.join(", "))));
    }
    let leaf_queue = opt_str(&v, "leaf_queue", &mut errors);
    let channel = opt_str(&v, "channel", &mut errors);
    if let Some(c) = &channel
        && !["voice", "chat", "voicemail"].contains(&c.as_str())
    {
        errors.push(field("channel", "must be voice, chat or voicemail"));
    }
    let at = opt_time(&v, "at", &mut errors);
    if let Some(a) = &account_id
        && st.builtin.crm_get_account(a).await?.is_none()
    {
        errors.push(field("account_id", "no such account in the built-in CRM"));
    }
    if !errors.is_empty() {
        return Err(Problem::fields("the record is invalid; nothing was created", &errors));
    }
    let (r, _) = st
        .builtin
        .crm_create_record(NewRecord {
            account_id,
            title: title.unwrap_or_default(),
            status,
            leaf_queue,
            channel,
            at: at.unwrap_or_else(Utc::now),
            ..Default::default()
        })
        .await?;
    Ok((StatusCode::CREATED, Json(full_record(&st, r).await?)).into_response())
}

async fn full_record(st: &AppState, r: CrmRecord) -> ApiResult<Value> {
    let (acts, notes, atts, sos) = st.builtin.crm_record_details(&r.id).await?;
    let mut v = serde_json::to_value(&r).map_err(Problem::internal)?;
    v["activities"] = serde_json::to_value(acts).map_err(Problem::internal)?;
    v["notes"] = serde_json::to_value(notes).map_err(Problem::internal)?;
    v["attachments"] = serde_json::to_value(atts).map_err(Problem::internal)?;
    v["session_objects"] = serde_json::to_value(sos).map_err(Problem::internal)?;
    Ok(v)
}

/// Query of `GET /v1/crm/records`.
#[derive(Debug, Deserialize)]
pub struct RecordQuery {
    /// Requester.
    pub account_id: Option<String>,
    /// A session on the record.
    pub session_id: Option<String>,
    /// Status.
    pub status: Option<String>,
}

/// `GET /v1/crm/records?account_id=&session_id=&status=`.
#[utoipa::path(get, path = "/v1/crm/records", tag = "builtin-crm",
    params(("account_id" = Option<String>, Query), ("session_id" = Option<String>, Query), ("status" = Option<String>, Query)),
    responses((status = 200, description = "{records}")))]
pub async fn list_records(State(st): State<AppState>, Query(q): Query<RecordQuery>) -> ApiResult<Json<Value>> {
    require_builtin(&st).await?;
    let recs = st
        .builtin
        .crm_list_records(RecordFilter { account_id: q.account_id, session_id: q.session_id, status: q.status })
        .await?;
    Ok(Json(json!({"records": recs})))
}

/// `GET /v1/crm/records/{id}`.
#[utoipa::path(get, path = "/v1/crm/records/{id}", tag = "builtin-crm", params(("id" = String, Path)),
    responses((status = 200), (status = 404)))]
pub async fn get_record(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    require_builtin(&st).await?;
    let r = st
        .builtin
        .crm_get_record(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no record {id:?} in the built-in CRM")))?;
    Ok(Json(full_record(&st, r).await?))
}

/// `PATCH /v1/crm/records/{id}` {status, at?}: an agent working the record.
#[utoipa::path(patch, path = "/v1/crm/records/{id}", tag = "builtin-crm", params(("id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200), (status = 404), (status = 422)))]
pub async fn patch_record(
    State(st): State<AppState>,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    require_builtin(&st).await?;
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let status = opt_str(&v, "status", &mut errors);
    match &status {
        Some(s) if !STATUSES.contains(&s.as_str()) => {
            errors.push(field("status", &format!("must be one of {}", STATUSES.join(", "))))
        }
        None => errors.push(field("status", "is required")),
        _ => {}
    }
    let at = opt_time(&v, "at", &mut errors);
    if !errors.is_empty() {
        return Err(Problem::fields("the change is invalid; nothing was changed", &errors));
    }
    if st.builtin.crm_get_record(&id).await?.is_none() {
        return Err(Problem::not_found(format!("no record {id:?} in the built-in CRM")));
    }
    st.builtin.crm_set_status(&id, &status.unwrap_or_default(), at.unwrap_or_else(Utc::now)).await?;
    let r = st.builtin.crm_get_record(&id).await?.ok_or_else(|| Problem::not_found("record vanished"))?;
    Ok(Json(full_record(&st, r).await?))
}

/// `GET /v1/crm/attachments/{id}`: an inline attachment's content (transcripts).
#[utoipa::path(get, path = "/v1/crm/attachments/{id}", tag = "builtin-crm", params(("id" = String, Path)),
    responses((status = 200, description = "text/plain"), (status = 404)))]
pub async fn get_attachment(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    require_builtin(&st).await?;
    match st.builtin.crm_attachment_content(&id).await? {
        Some((_, Some(content))) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], content).into_response())
        }
        Some((name, None)) => Err(Problem::not_found(format!("attachment {name} is a link, not stored here"))),
        None => Err(Problem::not_found(format!("no attachment {id:?}"))),
    }
}

/// `GET /v1/crm/agent-statuses`: the built-in CRM's own agent statuses (two-way pushes land here).
#[utoipa::path(get, path = "/v1/crm/agent-statuses", tag = "builtin-crm", responses((status = 200, description = "{agents: [{email, crm_status, updated_at}]}")))]
pub async fn builtin_statuses(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    require_builtin(&st).await?;
    let rows = st.builtin.crm_agent_statuses().await?;
    let list: Vec<Value> =
        rows.into_iter().map(|(e, s, t)| json!({"email": e, "crm_status": s, "updated_at": t})).collect();
    Ok(Json(json!({"agents": list})))
}
