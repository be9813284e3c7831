//! Agents (api.md "Agents, wrap-up…"): identity, widget context, status sync, click-to-call.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use casebridge_rules::agent::{self, AgentState, Input, Outcome, StatusSource};
use casebridge_rules::model::CrmOp;
use casebridge_rules::phone::Phone;
use casebridge_store::agents::{AgentRow, DialRequestRow};
use casebridge_store::{NewCommand, OutboxState};
use chrono::Utc;
use serde_json::{Value, json};

use super::{AppState, body, crm_unavailable, field, json_body, opt_bool, opt_str, req_str};
use crate::agents::{AgentError, state_of};
use crate::error::{ApiResult, Problem};

impl From<AgentError> for Problem {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Unknown(_) => Problem::not_found(e.to_string()),
            AgentError::Store(s) => s.into(),
            AgentError::Json(j) => Problem::internal(j),
        }
    }
}

/// An agent as the API shows it.
pub async fn view(st: &AppState, row: &AgentRow, state: &AgentState) -> Value {
    let settings = st.pipeline.settings().await;
    let mut state = state.clone();
    agent::prune(&mut state, &settings.agent_status, Utc::now());
    let state = &state;
    let sync = agent::sync_of(state, &settings.agent_status);
    let instances: Vec<Value> = state
        .instances
        .iter()
        .map(|(id, i)| {
            json!({"instance_id": id, "viewing_record_id": i.viewing_record_id, "crm_status": i.crm_status,
                   "seen_at": i.seen_at})
        })
        .collect();
    json!({
        "id": row.id, "email": Some(&row.email).filter(|e| !e.is_empty()), "name": row.name,
        "status": state.status, "status_source": state.status_source, "status_at": state.status_at,
        "sync": sync.state, "sync_reason": sync.reason, "reason": sync.reason,
        "team": state.team, "held_status": state.held, "instances": instances,
        "unmapped_crm_statuses": state.unmapped, "history": state.history,
        "created_at": row.created_at, "updated_at": row.updated_at,
    })
}

fn with_outcome(mut v: Value, o: &Outcome) -> Value {
    v["result"] = json!(o.result);
    v["reason"] = json!(o.reason);
    v["pushed_crm_status"] = json!(o.push_crm_status);
    v
}

/// `PUT /v1/agents/{id}` {email, name?}.
#[utoipa::path(put, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, description = "The agent"), (status = 201, description = "Registered"), (status = 409, description = "Email used by another agent"), (status = 422)))]
pub async fn put_agent(
    State(st): State<AppState>,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let email = req_str(&v, "email", &mut errors);
    if !email.is_empty() && !email.contains('@') {
        errors.push(field("email", "must be an email address (it identifies the agent in the CRM)"));
    }
    let name = opt_str(&v, "name", &mut errors);
    if !errors.is_empty() {
        return Err(Problem::fields("the agent is invalid; nothing was saved", &errors));
    }
    let (row, created) = st.pipeline.agents.agent_put(&id, &email, name.as_deref()).await?;
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(view(&st, &row, &state_of(&row)).await)).into_response())
}

/// `GET /v1/agents/{id}`.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, description = "status, status_source, sync (active, off, suspended) and sync_reason"), (status = 404)))]
pub async fn get_agent(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let row = st.pipeline.agents.agent(&id).await?.ok_or_else(|| AgentError::Unknown(id.clone()))?;
    Ok(Json(view(&st, &row, &state_of(&row)).await))
}

async fn step(st: &AppState, id: &str, input: Input) -> ApiResult<Json<Value>> {
    let (row, state, out) = crate::agents::apply(&st.pipeline, id, input).await?;
    Ok(Json(with_outcome(view(st, &row, &state).await, &out)))
}

/// `PUT /v1/agents/{id}/context` {instance_id, viewing_record_id?}.
#[utoipa::path(put, path = "/v1/agents/{id}/context", tag = "agents", params(("id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, description = "The agent"), (status = 404), (status = 422)))]
pub async fn put_context(
    State(st): State<AppState>,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let instance_id = req_str(&v, "instance_id", &mut errors);
    let viewing_record_id = opt_str(&v, "viewing_record_id", &mut errors).filter(|r| !r.trim().is_empty());
    if !errors.is_empty() {
        return Err(Problem::fields("the context is invalid; nothing was saved", &errors));
    }
    step(&st, &id, Input::Context { instance_id, viewing_record_id }).await
}

/// `DELETE /v1/agents/{id}/context/{instance_id}`: a widget closed.
#[utoipa::path(delete, path = "/v1/agents/{id}/context/{instance_id}", tag = "agents",
    params(("id" = String, Path), ("instance_id" = String, Path)), responses((status = 200, description = "The agent"), (status = 404)))]
pub async fn delete_context(
    State(st): State<AppState>,
    Path((id, instance_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    step(&st, &id, Input::Closed { instance_id }).await
}

/// `PUT /v1/agents/{id}/status` {status, source: agent|system}.
#[utoipa::path(put, path = "/v1/agents/{id}/status", tag = "agents", params(("id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, description = "The agent, with result and reason"), (status = 404), (status = 422)))]
pub async fn put_status(
    State(st): State<AppState>,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let status = req_str(&v, "status", &mut errors);
    let source = match opt_str(&v, "source", &mut errors).as_deref() {
        Some("agent") | None => StatusSource::Agent,
        Some("system") => StatusSource::System,
        Some(_) => {
            errors.push(field("source", "must be agent or system"));
            StatusSource::Agent
        }
    };
    let settings = st.pipeline.settings().await;
    let known = &settings.agent_status.platform_statuses;
    if !status.is_empty() && !known.is_empty() && !known.contains(&status) {
        errors.push(field(
            "status",
            &format!("unknown platform status {status:?}; agent_status.platform_statuses has: {}", known.join(", ")),
        ));
    }
    if !errors.is_empty() {
        return Err(Problem::fields("the status change is invalid; nothing was changed", &errors));
    }
    step(&st, &id, Input::Platform { status, source }).await
}

/// `POST /v1/crm/agent-status` {email, crm_status, instance_id, team?, login?}: from the CRM side.
#[utoipa::path(post, path = "/v1/crm/agent-status", tag = "agents", request_body = serde_json::Value,
    responses((status = 200, description = "The agent, with result (applied, ignored, held, recorded) and reason"), (status = 404, description = "No agent has this email"), (status = 422)))]
pub async fn crm_status(State(st): State<AppState>, raw: Result<Bytes, BytesRejection>) -> ApiResult<Json<Value>> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let email = req_str(&v, "email", &mut errors);
    let crm_status = req_str(&v, "crm_status", &mut errors);
    let instance_id = req_str(&v, "instance_id", &mut errors);
    let team = opt_str(&v, "team", &mut errors).filter(|t| !t.trim().is_empty());
    let login = opt_bool(&v, "login", &mut errors).unwrap_or(false);
    if !errors.is_empty() {
        return Err(Problem::fields("the status report is invalid; nothing was changed", &errors));
    }
    let row = st.pipeline.agents.agent_by_email(&email).await?.ok_or_else(|| {
        Problem::not_found(format!(
            "no agent has the email {email:?}; register the agent with PUT /v1/agents/{{id}} using the email it signs in to the CRM with"
        ))
    })?;
    step(&st, &row.id, Input::Crm { crm_status, instance_id, team, login }).await
}

/// `POST /v1/agents/{id}/dial` {phone, origin_record_id?} → 201 {dial_request_id}.
#[utoipa::path(post, path = "/v1/agents/{id}/dial", tag = "agents", params(("id" = String, Path)), request_body = serde_json::Value,
    responses((status = 201, description = "{dial_request_id, handoff: queued|not_configured}"), (status = 422)))]
pub async fn dial(
    State(st): State<AppState>,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let raw_phone = req_str(&v, "phone", &mut errors);
    let origin_record_id = opt_str(&v, "origin_record_id", &mut errors).filter(|r| !r.trim().is_empty());
    let settings = st.pipeline.settings().await;
    let phone = Phone::parse(&raw_phone, &settings.region);
    if !raw_phone.is_empty() && !phone.parsed {
        errors.push(field("phone", &format!("{raw_phone:?} is not a phone number casebridge can dial")));
    }
    // Agents need not be registered to dial; a registered one's email goes with the request.
    let agent_email = st.pipeline.agents.agent(&id).await?.map(|a| a.email);
    if let Some(r) = &origin_record_id
        && !st.pipeline.crm.record_exists(r).await.map_err(crm_unavailable)?
    {
        errors.push(field("origin_record_id", &format!("record {r:?} does not exist in the CRM; save it first")));
    }
    if !errors.is_empty() {
        return Err(Problem::fields("the dial request is invalid; nothing was dialed", &errors));
    }
    let now = Utc::now();
    let dial_id = format!("dial_{}", uuid::Uuid::new_v4().simple());
    let d = DialRequestRow {
        id: dial_id.clone(),
        agent_id: id.clone(),
        phone: phone.number.clone(),
        origin_record_id: origin_record_id.clone(),
        created_at: now,
    };
    let op = CrmOp::DialWebhook {
        dial_request_id: dial_id.clone(),
        agent_id: id.clone(),
        agent_email: agent_email.clone(),
        phone: phone.number.clone(),
        origin_record_id: origin_record_id.clone(),
        requested_at: now,
    };
    let cmd = NewCommand {
        key: format!("dial:{dial_id}"),
        lane: format!("dial:{dial_id}"),
        session_id: format!("dial:{dial_id}"),
        op: serde_json::to_string(&op).map_err(Problem::internal)?,
        keys: vec![],
    };
    // Without a webhook the request is only recorded: the contact center may read it, and the
    // outbound session that carries its id still relates to the origin record.
    let handoff = settings.click_to_call.webhook_url.is_some();
    st.pipeline.agents.dial_create(&d, handoff.then_some(&cmd)).await?;
    if handoff {
        st.pipeline.outbox_in.notify_one();
    }
    metrics::counter!("casebridge_dial_requests_total").increment(1);
    let mut out = json!({"dial_request_id": dial_id, "agent_id": id, "phone": phone.number,
                         "origin_record_id": origin_record_id, "created_at": now,
                         "handoff": if handoff { "queued" } else { "not_configured" }});
    if !handoff {
        out["warning"] =
            json!("click_to_call.webhook_url is not set: the request is recorded but not sent to the contact center");
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `GET /v1/dial-requests/{id}`: a dial request and its hand-off.
#[utoipa::path(get, path = "/v1/dial-requests/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, description = "The request, `delivered`, and `handoff` {state: pending|done|dead|not_configured, attempts, last_error}"), (status = 404)))]
pub async fn get_dial(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let d = st.pipeline.agents.dial(&id).await?.ok_or_else(|| {
        Problem::not_found(format!("no dial request {id:?}; its id is the one POST /v1/agents/{{id}}/dial answered"))
    })?;
    let timeline = st.store.timeline(&format!("dial:{id}")).await?;
    let delivery = st.store.command_state(&format!("dial:{id}")).await?;
    let mut v = serde_json::to_value(&d).map_err(Problem::internal)?;
    v["dial_request_id"] = json!(d.id);
    v["delivered"] = json!(delivery.as_ref().is_some_and(|(state, _, _)| *state == OutboxState::Done));
    v["handoff"] = match &delivery {
        Some((state, attempts, error)) => json!({"state": state, "attempts": attempts, "last_error": error}),
        None => json!({"state": "not_configured"}),
    };
    v["timeline"] = serde_json::to_value(&timeline).map_err(Problem::internal)?;
    Ok(Json(v))
}
