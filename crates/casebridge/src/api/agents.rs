//! Agents (api.md "Agents, wrap-up…"): identity, widget context, status sync, click-to-call.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use casebridge_rules::agent::{self, AgentState, Input, Outcome, StatusLine, StatusSource};
use casebridge_rules::keys::{Lane, dial_write_key};
use casebridge_rules::model::Entry;
use casebridge_rules::ops::{ContactCenterOp, DialHandoff, OutboxOp};
use casebridge_rules::phone::Phone;
use casebridge_store::agents::{AgentRow, DialRequestRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::{Checked, Form, FromForm};
use super::state::{AppState, crm_unavailable};
use crate::agents::{AgentError, state_of};
use crate::error::{ApiResult, Problem};

/// Agents, their widgets and status sync, and click-to-call.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agents/{id}", put(put_agent).get(get_agent))
        .route("/v1/agents/{id}/context", put(put_context))
        .route("/v1/agents/{id}/context/{instance_id}", axum::routing::delete(delete_context))
        .route("/v1/agents/{id}/status", put(put_status))
        .route("/v1/agents/{id}/dial", post(dial))
        .route("/v1/dial-requests/{id}", get(get_dial))
        .route("/v1/crm/agent-status", post(crm_status))
}

impl From<AgentError> for Problem {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Unknown(_) => Problem::not_found(e.to_string()),
            AgentError::Store(s) => s.into(),
            AgentError::Json(j) => Problem::internal(j),
        }
    }
}

/// A CRM tab or machine where the agent's widget is open.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceOut {
    /// The instance.
    pub instance_id: String,
    /// The record its widget shows.
    pub viewing_record_id: Option<String>,
    /// The last CRM status it reported.
    pub crm_status: Option<String>,
    /// Last heard from.
    pub seen_at: Option<DateTime<Utc>>,
}

/// An agent and how its status sync stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    /// Platform agent id.
    pub id: String,
    /// Email (identity shared with the CRM); null until registered.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Current platform status.
    pub status: Option<String>,
    /// Where it came from.
    pub status_source: Option<StatusSource>,
    /// When it changed.
    pub status_at: Option<DateTime<Utc>>,
    /// active, off or suspended.
    pub sync: String,
    /// Why the sync is not active.
    pub sync_reason: Option<String>,
    /// Same as sync_reason; after a change, why the change had the result it had.
    pub reason: Option<String>,
    /// The agent's CRM team.
    pub team: Option<String>,
    /// A CRM status held while the agent is on a session.
    pub held_status: Option<String>,
    /// Open widget instances.
    pub instances: Vec<InstanceOut>,
    /// CRM statuses reported that map to nothing, with counts.
    pub unmapped_crm_statuses: BTreeMap<String, u64>,
    /// Status history, newest last.
    pub history: Vec<StatusLine>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// An agent after a status or context change, with what the change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentChangeOut {
    /// The agent (its `reason` says why the change had this result).
    #[serde(flatten)]
    pub agent: AgentOut,
    /// applied, ignored, held, overridden or recorded.
    pub result: String,
    /// A CRM status pushed to the CRM (two-way sync).
    pub pushed_crm_status: Option<String>,
}

/// An agent as the API shows it.
pub async fn view(st: &AppState, row: &AgentRow, state: &AgentState) -> AgentOut {
    let settings = st.pipeline.settings().await;
    let mut state = state.clone();
    agent::prune(&mut state, &settings.agent_status, Utc::now());
    let sync = agent::sync_of(&state, &settings.agent_status);
    let instances = state
        .instances
        .into_iter()
        .map(|(id, i)| InstanceOut {
            instance_id: id,
            viewing_record_id: i.viewing_record_id,
            crm_status: i.crm_status,
            seen_at: i.seen_at,
        })
        .collect();
    AgentOut {
        id: row.id.clone(),
        email: Some(row.email.clone()).filter(|e| !e.is_empty()),
        name: row.name.clone(),
        status: state.status,
        status_source: state.status_source,
        status_at: state.status_at,
        sync: sync.state.to_string(),
        sync_reason: sync.reason.clone(),
        reason: sync.reason,
        team: state.team,
        held_status: state.held,
        instances,
        unmapped_crm_statuses: state.unmapped,
        history: state.history,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn with_outcome(mut agent: AgentOut, o: Outcome) -> AgentChangeOut {
    agent.reason = Some(o.reason);
    AgentChangeOut { agent, result: o.result.to_string(), pushed_crm_status: o.push_crm_status }
}

/// An agent's identity.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentIn {
    /// The email it signs in to the CRM with.
    pub email: String,
    /// Name.
    pub name: Option<String>,
}

impl FromForm for AgentIn {
    const REFUSAL: &'static str = "the agent is invalid; nothing was saved";
    fn from_form(f: &mut Form<'_>) -> Self {
        let email = f.req_str("email");
        if !email.is_empty() && !email.contains('@') {
            f.error("email", "must be an email address (it identifies the agent in the CRM)");
        }
        AgentIn { email, name: f.opt_str("name") }
    }
}

/// `PUT /v1/agents/{id}` {email, name?}.
#[utoipa::path(put, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = AgentIn,
    responses((status = 200, description = "The agent", body = AgentOut), (status = 201, description = "Registered", body = AgentOut),
              (status = 409, description = "Email used by another agent"), (status = 422)))]
pub async fn put_agent(
    State(st): State<AppState>,
    Path(id): Path<String>,
    input: Checked<AgentIn>,
) -> ApiResult<Response> {
    let a = input.finish()?;
    let (row, created) = st.store.agent_put(&id, &a.email, a.name.as_deref()).await?;
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(view(&st, &row, &state_of(&row)).await)).into_response())
}

/// `GET /v1/agents/{id}`.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, description = "status, status_source, sync (active, off, suspended) and sync_reason", body = AgentOut), (status = 404)))]
pub async fn get_agent(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<AgentOut>> {
    let row = st.store.agent(&id).await?.ok_or_else(|| AgentError::Unknown(id.clone()))?;
    Ok(Json(view(&st, &row, &state_of(&row)).await))
}

async fn step(st: &AppState, id: &str, input: Input) -> ApiResult<Json<AgentChangeOut>> {
    let (row, state, out) = crate::agents::apply(&st.pipeline, id, input).await?;
    Ok(Json(with_outcome(view(st, &row, &state).await, out)))
}

/// What a widget shows.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContextIn {
    /// The widget instance (one per CRM tab or machine).
    pub instance_id: String,
    /// The record it shows, if any.
    pub viewing_record_id: Option<String>,
}

impl FromForm for ContextIn {
    const REFUSAL: &'static str = "the context is invalid; nothing was saved";
    fn from_form(f: &mut Form<'_>) -> Self {
        ContextIn { instance_id: f.req_str("instance_id"), viewing_record_id: f.opt_text("viewing_record_id") }
    }
}

/// `PUT /v1/agents/{id}/context` {instance_id, viewing_record_id?}.
#[utoipa::path(put, path = "/v1/agents/{id}/context", tag = "agents", params(("id" = String, Path)), request_body = ContextIn,
    responses((status = 200, description = "The agent", body = AgentChangeOut), (status = 404), (status = 422)))]
pub async fn put_context(
    State(st): State<AppState>,
    Path(id): Path<String>,
    input: Checked<ContextIn>,
) -> ApiResult<Json<AgentChangeOut>> {
    let c = input.finish()?;
    step(&st, &id, Input::Context { instance_id: c.instance_id, viewing_record_id: c.viewing_record_id }).await
}

/// `DELETE /v1/agents/{id}/context/{instance_id}`: a widget closed.
#[utoipa::path(delete, path = "/v1/agents/{id}/context/{instance_id}", tag = "agents",
    params(("id" = String, Path), ("instance_id" = String, Path)),
    responses((status = 200, description = "The agent", body = AgentChangeOut), (status = 404)))]
pub async fn delete_context(
    State(st): State<AppState>,
    Path((id, instance_id)): Path<(String, String)>,
) -> ApiResult<Json<AgentChangeOut>> {
    step(&st, &id, Input::Closed { instance_id }).await
}

/// Who changed a platform status.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformSource {
    /// The agent chose it.
    Agent,
    /// The contact center set it on its own.
    System,
}

/// A platform status change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusIn {
    /// One of agent_status.platform_statuses (when that list is set).
    pub status: String,
    /// agent (default) or system.
    pub source: Option<PlatformSource>,
}

impl FromForm for StatusIn {
    const REFUSAL: &'static str = "the status change is invalid; nothing was changed";
    fn from_form(f: &mut Form<'_>) -> Self {
        let status = f.req_str("status");
        let source = match f.opt_str("source").as_deref() {
            Some("agent") | None => PlatformSource::Agent,
            Some("system") => PlatformSource::System,
            Some(_) => {
                f.error("source", "must be agent or system");
                PlatformSource::Agent
            }
        };
        StatusIn { status, source: Some(source) }
    }
}

/// `PUT /v1/agents/{id}/status` {status, source: agent|system}.
#[utoipa::path(put, path = "/v1/agents/{id}/status", tag = "agents", params(("id" = String, Path)), request_body = StatusIn,
    responses((status = 200, description = "The agent, with result and reason", body = AgentChangeOut), (status = 404), (status = 422)))]
pub async fn put_status(
    State(st): State<AppState>,
    Path(id): Path<String>,
    mut input: Checked<StatusIn>,
) -> ApiResult<Json<AgentChangeOut>> {
    let settings = st.pipeline.settings().await;
    let known = &settings.agent_status.platform_statuses;
    let status = input.value().status.clone();
    if !status.is_empty() && !known.is_empty() && !known.contains(&status) {
        input.error(
            "status",
            format!("unknown platform status {status:?}; agent_status.platform_statuses has: {}", known.join(", ")),
        );
    }
    let s = input.finish()?;
    let source = match s.source {
        Some(PlatformSource::System) => StatusSource::System,
        _ => StatusSource::Agent,
    };
    step(&st, &id, Input::Platform { status: s.status, source }).await
}

/// A status report from the CRM side.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CrmStatusIn {
    /// The agent's email.
    pub email: String,
    /// The CRM status.
    pub crm_status: String,
    /// The CRM instance it came from.
    pub instance_id: String,
    /// The agent's CRM team.
    pub team: Option<String>,
    /// The status the CRM shows at login (recorded, never applied).
    pub login: Option<bool>,
}

impl FromForm for CrmStatusIn {
    const REFUSAL: &'static str = "the status report is invalid; nothing was changed";
    fn from_form(f: &mut Form<'_>) -> Self {
        CrmStatusIn {
            email: f.req_str("email"),
            crm_status: f.req_str("crm_status"),
            instance_id: f.req_str("instance_id"),
            team: f.opt_text("team"),
            login: f.opt_bool("login"),
        }
    }
}

/// `POST /v1/crm/agent-status` {email, crm_status, instance_id, team?, login?}: from the CRM side.
#[utoipa::path(post, path = "/v1/crm/agent-status", tag = "agents", request_body = CrmStatusIn,
    responses((status = 200, description = "The agent, with result (applied, ignored, held, recorded) and reason", body = AgentChangeOut),
              (status = 404, description = "No agent has this email"), (status = 422)))]
pub async fn crm_status(State(st): State<AppState>, input: Checked<CrmStatusIn>) -> ApiResult<Json<AgentChangeOut>> {
    let r = input.finish()?;
    let email = &r.email;
    let row = st.store.agent_by_email(email).await?.ok_or_else(|| {
        Problem::not_found(format!(
            "no agent has the email {email:?}; register the agent with PUT /v1/agents/{{id}} using the email it signs in to the CRM with"
        ))
    })?;
    let input = Input::Crm {
        crm_status: r.crm_status,
        instance_id: r.instance_id,
        team: r.team,
        login: r.login.unwrap_or(false),
    };
    step(&st, &row.id, input).await
}

/// A click-to-call request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DialIn {
    /// The number to dial, in any format.
    pub phone: String,
    /// The record the agent dials from (the call relates to it at wrap-up).
    pub origin_record_id: Option<String>,
}

impl FromForm for DialIn {
    const REFUSAL: &'static str = "the dial request is invalid; nothing was dialed";
    fn from_form(f: &mut Form<'_>) -> Self {
        DialIn { phone: f.req_str("phone"), origin_record_id: f.opt_text("origin_record_id") }
    }
}

/// A dial request recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct DialOut {
    /// Its id (the outbound session carries it).
    pub dial_request_id: String,
    /// The agent.
    pub agent_id: String,
    /// The number (E.164).
    pub phone: String,
    /// The record dialed from.
    pub origin_record_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// queued, or not_configured when no webhook is set.
    pub handoff: String,
    /// Why the request is not sent on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// `POST /v1/agents/{id}/dial` {phone, origin_record_id?} → 201 {dial_request_id}.
#[utoipa::path(post, path = "/v1/agents/{id}/dial", tag = "agents", params(("id" = String, Path)), request_body = DialIn,
    responses((status = 201, body = DialOut), (status = 422)))]
pub async fn dial(
    State(st): State<AppState>,
    Path(id): Path<String>,
    mut input: Checked<DialIn>,
) -> ApiResult<Response> {
    let settings = st.pipeline.settings().await;
    let raw_phone = input.value().phone.clone();
    let phone = Phone::parse(&raw_phone, &settings.region);
    if !raw_phone.is_empty() && !phone.parsed {
        input.error("phone", format!("{raw_phone:?} is not a phone number casebridge can dial"));
    }
    // Agents need not be registered to dial; a registered one's email goes with the request.
    let agent_email = st.store.agent(&id).await?.map(|a| a.email);
    if let Some(r) = input.value().origin_record_id.clone()
        && !st.pipeline.crm().record_exists(&r).await.map_err(crm_unavailable)?
    {
        input.error("origin_record_id", format!("record {r:?} does not exist in the CRM; save it first"));
    }
    let origin_record_id = input.finish()?.origin_record_id;
    let now = Utc::now();
    let dial_id = format!("dial_{}", uuid::Uuid::new_v4().simple());
    let d = DialRequestRow {
        id: dial_id.clone(),
        agent_id: id.clone(),
        phone: phone.number.clone(),
        origin_record_id: origin_record_id.clone(),
        created_at: now,
    };
    let op = OutboxOp::ContactCenter(ContactCenterOp::DialWebhook(DialHandoff {
        dial_request_id: dial_id.clone(),
        agent_id: id.clone(),
        agent_email: agent_email.clone(),
        phone: phone.number.clone(),
        origin_record_id: origin_record_id.clone(),
        requested_at: now,
    }));
    let key = dial_write_key(&dial_id);
    let cmd = crate::outbox::command(key.clone(), &Lane::dial(&dial_id), &key, &op, None).map_err(Problem::internal)?;
    // Without a webhook the request is only recorded: the contact center may read it, and the
    // outbound session that carries its id still relates to the origin record.
    let handoff = settings.click_to_call.webhook_url.is_some();
    st.store.dial_create(&d, handoff.then_some(&cmd)).await?;
    if handoff {
        st.pipeline.outbox_in.notify_one();
    }
    metrics::counter!("casebridge_dial_requests_total").increment(1);
    let out = DialOut {
        dial_request_id: dial_id,
        agent_id: id,
        phone: phone.number,
        origin_record_id,
        created_at: now,
        handoff: if handoff { "queued" } else { "not_configured" }.into(),
        warning: (!handoff).then(|| {
            "click_to_call.webhook_url is not set: the request is recorded but not sent to the contact center".into()
        }),
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// How the hand-off of a dial request to the contact center stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoffOut {
    /// pending, done, dead or not_configured.
    pub state: String,
    /// Delivery attempts (absent when not configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// Last failure (absent when not configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub last_error: Option<Option<String>>,
}

/// A dial request and its hand-off.
#[derive(Debug, Serialize, ToSchema)]
pub struct DialRequestOut {
    /// Id.
    pub id: String,
    /// Same as id.
    pub dial_request_id: String,
    /// The agent.
    pub agent_id: String,
    /// The number (E.164).
    pub phone: String,
    /// The record dialed from.
    pub origin_record_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The contact center has the request.
    pub delivered: bool,
    /// The hand-off.
    pub handoff: HandoffOut,
    /// What happened to the request.
    pub timeline: Vec<Entry>,
}

/// `GET /v1/dial-requests/{id}`: a dial request and its hand-off.
#[utoipa::path(get, path = "/v1/dial-requests/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, description = "The request, `delivered`, and `handoff`", body = DialRequestOut), (status = 404)))]
pub async fn get_dial(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<DialRequestOut>> {
    let d = st.store.dial(&id).await?.ok_or_else(|| {
        Problem::not_found(format!("no dial request {id:?}; its id is the one POST /v1/agents/{{id}}/dial answered"))
    })?;
    let timeline = st.store.timeline(&dial_write_key(&id)).await?;
    let delivery = st.store.command_state(&dial_write_key(&id)).await?;
    let handoff = match delivery {
        Some((state, attempts, error)) => {
            HandoffOut { state: state.to_string(), attempts: Some(attempts), last_error: Some(error) }
        }
        None => HandoffOut { state: "not_configured".into(), attempts: None, last_error: None },
    };
    Ok(Json(DialRequestOut {
        dial_request_id: d.id.clone(),
        id: d.id,
        agent_id: d.agent_id,
        phone: d.phone,
        origin_record_id: d.origin_record_id,
        created_at: d.created_at,
        delivered: handoff.state == "done",
        handoff,
        timeline,
    }))
}
