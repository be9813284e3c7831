//! The built-in CRM's API (api.md "Built-in CRM").

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use casebridge_crm::builtin::kind_name;
use casebridge_crm::builtin::storage::{CrmAccount, CrmRecord, NewAccount, NewRecord, RecordFilter, STATUSES};
use casebridge_rules::event::Channel;
use casebridge_rules::model::AccountKind;
use casebridge_rules::phone::Phone;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

pub use super::crm_out::*;
use super::input::{Form, FromForm, read};
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// The built-in CRM.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/crm/accounts", get(list_accounts).post(create_account))
        .route("/v1/crm/accounts/{id}", get(get_account))
        .route("/v1/crm/records", get(list_records).post(create_record))
        .route("/v1/crm/records/{id}", get(get_record).patch(patch_record))
        .route("/v1/crm/attachments/{id}", get(get_attachment))
        .route("/v1/crm/agent-statuses", get(builtin_statuses))
}

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

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AccountIn {
    /// contact, lead or person_account.
    pub kind: AccountKind,
    /// Name.
    pub name: Option<String>,
    /// Phone in any format.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// App user id.
    pub user_id: Option<String>,
    /// Creation time (default now).
    pub at: Option<DateTime<Utc>>,
}

impl FromForm for AccountIn {
    const REFUSAL: &'static str = "the account is invalid; nothing was created";
    fn from_form(f: &mut Form<'_>) -> Self {
        let kind = match f.opt_str("kind").as_deref() {
            Some("contact") => AccountKind::Contact,
            Some("lead") => AccountKind::Lead,
            Some("person_account") => AccountKind::PersonAccount,
            Some(_) => {
                f.error("kind", "must be contact, lead or person_account");
                AccountKind::Contact
            }
            None => {
                f.error("kind", "is required: contact, lead or person_account");
                AccountKind::Contact
            }
        };
        let name = f.opt_str("name");
        let phone = f.opt_str("phone");
        let email = f.opt_str("email");
        let user_id = f.opt_str("user_id");
        let at = f.opt_time("at");
        if let Some(e) = &email
            && !e.contains('@')
        {
            f.error("email", "must be an email address");
        }
        AccountIn { kind, name, phone, email, user_id, at }
    }
}

/// `POST /v1/crm/accounts`.
#[utoipa::path(post, path = "/v1/crm/accounts", tag = "builtin-crm", request_body = AccountIn,
    responses((status = 201, description = "The account", body = CrmAccount), (status = 422), (status = 409, description = "Built-in CRM not in use")))]
pub async fn create_account(State(st): State<AppState>, raw: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    require_builtin(&st).await?;
    let a = read::<AccountIn>(raw, st.max_body_bytes)?.finish()?;
    let region = st.pipeline.settings().await.region.clone();
    let phone_key = a.phone.as_deref().map(|p| Phone::parse(p, &region).number);
    let (row, _) = st
        .store
        .crm_create_account(NewAccount {
            id: None,
            kind: kind_name(a.kind).to_string(),
            name: a.name,
            phone: a.phone,
            phone_key,
            email: a.email,
            user_id: a.user_id,
            ext_key: None,
            at: a.at.unwrap_or_else(Utc::now),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
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
    /// Without a filter: at most this many, newest first (default 50, at most 500).
    pub limit: Option<i64>,
}

/// `GET /v1/crm/accounts?phone=&email=&user_id=`.
#[utoipa::path(get, path = "/v1/crm/accounts", tag = "builtin-crm",
    description = "People matching any given phone, email or user id; with no filter, the newest people first, at most `limit`.",
    params(("phone" = Option<String>, Query), ("email" = Option<String>, Query), ("user_id" = Option<String>, Query),
        ("limit" = Option<i64>, Query, description = "without a filter: page size, default 50, at most 500")),
    responses((status = 200, body = AccountsOut), (status = 422)))]
pub async fn list_accounts(State(st): State<AppState>, Query(q): Query<AccountQuery>) -> ApiResult<Json<AccountsOut>> {
    require_builtin(&st).await?;
    if q.phone.is_none() && q.email.is_none() && q.user_id.is_none() {
        let accounts = st.store.crm_list_accounts(q.limit.unwrap_or(50).clamp(1, 500)).await?;
        return Ok(Json(AccountsOut { accounts }));
    }
    let region = st.pipeline.settings().await.region.clone();
    let phone_key = q.phone.as_deref().map(|p| Phone::parse(p, &region).number);
    let found = st.store.crm_find_accounts(phone_key.as_deref(), q.email.as_deref(), q.user_id.as_deref()).await?;
    Ok(Json(AccountsOut { accounts: found }))
}

/// `GET /v1/crm/accounts/{id}` with its activities.
#[utoipa::path(get, path = "/v1/crm/accounts/{id}", tag = "builtin-crm", params(("id" = String, Path)),
    responses((status = 200, body = AccountDetailOut), (status = 404)))]
pub async fn get_account(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<AccountDetailOut>> {
    require_builtin(&st).await?;
    let a = st
        .store
        .crm_get_account(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no account {id:?} in the built-in CRM")))?;
    let activities = st.store.crm_account_activities(&id).await?;
    Ok(Json(AccountDetailOut { account: a, activities }))
}

/// A new record.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecordIn {
    /// Requester (an account of the built-in CRM).
    pub account_id: Option<String>,
    /// Title.
    pub title: String,
    /// One of the built-in CRM's statuses (default open).
    pub status: Option<String>,
    /// Originating leaf queue.
    pub leaf_queue: Option<String>,
    /// Originating channel.
    pub channel: Option<Channel>,
    /// Creation time (default now).
    pub at: Option<DateTime<Utc>>,
}

fn statuses() -> String {
    format!("must be one of {}", STATUSES.join(", "))
}

impl FromForm for RecordIn {
    const REFUSAL: &'static str = "the record is invalid; nothing was created";
    fn from_form(f: &mut Form<'_>) -> Self {
        let account_id = f.opt_str("account_id");
        let title = f.opt_str("title");
        if title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            f.error("title", "is required");
        }
        let status = f.opt_str("status");
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            f.error("status", statuses());
        }
        let leaf_queue = f.opt_str("leaf_queue");
        let channel = match f.opt_str("channel").as_deref() {
            None => None,
            Some("voice") => Some(Channel::Voice),
            Some("chat") => Some(Channel::Chat),
            Some("voicemail") => Some(Channel::Voicemail),
            Some(_) => {
                f.error("channel", "must be voice, chat or voicemail");
                None
            }
        };
        let at = f.opt_time("at");
        RecordIn { account_id, title: title.unwrap_or_default(), status, leaf_queue, channel, at }
    }
}

/// `POST /v1/crm/records`.
#[utoipa::path(post, path = "/v1/crm/records", tag = "builtin-crm", request_body = RecordIn,
    responses((status = 201, body = RecordOut), (status = 422)))]
pub async fn create_record(State(st): State<AppState>, raw: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    require_builtin(&st).await?;
    let mut input = read::<RecordIn>(raw, st.max_body_bytes)?;
    if let Some(a) = input.value().account_id.clone()
        && st.store.crm_get_account(&a).await?.is_none()
    {
        input.error("account_id", "no such account in the built-in CRM");
    }
    let r = input.finish()?;
    let (row, _) = st
        .store
        .crm_create_record(NewRecord {
            account_id: r.account_id,
            title: r.title,
            status: r.status,
            leaf_queue: r.leaf_queue,
            channel: r.channel.map(|c| c.as_str().to_string()),
            at: r.at.unwrap_or_else(Utc::now),
            ..Default::default()
        })
        .await?;
    Ok((StatusCode::CREATED, Json(full_record(&st, row).await?)).into_response())
}

async fn full_record(st: &AppState, r: CrmRecord) -> ApiResult<RecordOut> {
    let (acts, notes, atts, sos) = st.store.crm_record_details(&r.id).await?;
    Ok(RecordOut { record: r, activities: acts, notes, attachments: atts, session_objects: sos })
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
    responses((status = 200, body = RecordsOut)))]
pub async fn list_records(State(st): State<AppState>, Query(q): Query<RecordQuery>) -> ApiResult<Json<RecordsOut>> {
    require_builtin(&st).await?;
    let recs = st
        .store
        .crm_list_records(RecordFilter { account_id: q.account_id, session_id: q.session_id, status: q.status })
        .await?;
    Ok(Json(RecordsOut { records: recs }))
}

/// `GET /v1/crm/records/{id}`.
#[utoipa::path(get, path = "/v1/crm/records/{id}", tag = "builtin-crm", params(("id" = String, Path)),
    responses((status = 200, body = RecordOut), (status = 404)))]
pub async fn get_record(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RecordOut>> {
    require_builtin(&st).await?;
    let r = st
        .store
        .crm_get_record(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no record {id:?} in the built-in CRM")))?;
    Ok(Json(full_record(&st, r).await?))
}

/// An agent working a record.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecordPatchIn {
    /// One of the built-in CRM's statuses.
    pub status: String,
    /// When (default now).
    pub at: Option<DateTime<Utc>>,
}

impl FromForm for RecordPatchIn {
    const REFUSAL: &'static str = "the change is invalid; nothing was changed";
    fn from_form(f: &mut Form<'_>) -> Self {
        let status = f.opt_str("status");
        match &status {
            Some(s) if !STATUSES.contains(&s.as_str()) => f.error("status", statuses()),
            None => f.error("status", "is required"),
            _ => {}
        }
        RecordPatchIn { status: status.unwrap_or_default(), at: f.opt_time("at") }
    }
}

/// `PATCH /v1/crm/records/{id}` {status, at?}: an agent working the record.
#[utoipa::path(patch, path = "/v1/crm/records/{id}", tag = "builtin-crm", params(("id" = String, Path)), request_body = RecordPatchIn,
    responses((status = 200, body = RecordOut), (status = 404), (status = 422)))]
pub async fn patch_record(
    State(st): State<AppState>,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<RecordOut>> {
    require_builtin(&st).await?;
    let change = read::<RecordPatchIn>(raw, st.max_body_bytes)?.finish()?;
    if st.store.crm_get_record(&id).await?.is_none() {
        return Err(Problem::not_found(format!("no record {id:?} in the built-in CRM")));
    }
    st.store.crm_set_status(&id, &change.status, change.at.unwrap_or_else(Utc::now)).await?;
    let r = st.store.crm_get_record(&id).await?.ok_or_else(|| Problem::not_found("record vanished"))?;
    Ok(Json(full_record(&st, r).await?))
}

/// `GET /v1/crm/attachments/{id}`: an inline attachment's content (transcripts).
#[utoipa::path(get, path = "/v1/crm/attachments/{id}", tag = "builtin-crm", params(("id" = String, Path)),
    responses((status = 200, description = "The content", body = String, content_type = "text/plain"), (status = 404)))]
pub async fn get_attachment(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    require_builtin(&st).await?;
    match st.store.crm_attachment_content(&id).await? {
        Some((_, Some(content))) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], content).into_response())
        }
        Some((name, None)) => Err(Problem::not_found(format!("attachment {name} is a link, not stored here"))),
        None => Err(Problem::not_found(format!("no attachment {id:?}"))),
    }
}

/// `GET /v1/crm/agent-statuses`: the built-in CRM's own agent statuses (two-way pushes land here).
#[utoipa::path(get, path = "/v1/crm/agent-statuses", tag = "builtin-crm", responses((status = 200, body = CrmAgentStatusesOut)))]
pub async fn builtin_statuses(State(st): State<AppState>) -> ApiResult<Json<CrmAgentStatusesOut>> {
    require_builtin(&st).await?;
    let rows = st.store.crm_agent_statuses().await?;
    let agents = rows
        .into_iter()
        .map(|(email, crm_status, updated_at)| CrmAgentStatusOut { email, crm_status, updated_at })
        .collect();
    Ok(Json(CrmAgentStatusesOut { agents }))
}
