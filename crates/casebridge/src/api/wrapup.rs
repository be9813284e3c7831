//! Wrap-up (api.md "Agents, wrap-up, dispositions, reports"; behaviour.md §9): the handler
//! reads the request, gathers the facts from the store and the CRM, lets the rules decide
//! (`casebridge_rules::wrapup`) and commits what they decided.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use casebridge_crm::CrmLookup;
use casebridge_rules::keys::{activity_key, wrapup_event_id, wrapup_write_key};
use casebridge_rules::model::{Answer, ObjRef};
use casebridge_rules::ops::OutboxOp;
use casebridge_rules::session::Session;
use casebridge_rules::wrapup::{self, Action, Context, Disposition, Facts, Person, Refusal};
use casebridge_store::agents::{ActivityFilter, NewActivity};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{Checked, Form, FromForm};
use super::state::{AppState, crm_unavailable};
use crate::error::{ApiResult, Problem};

/// Wrap-up.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sessions/{id}/wrapup", post(wrapup))
}

/// What the agent submits at wrap-up.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WrapupIn {
    /// Disposition code (required for log while dispositions are enabled).
    pub disposition: Option<String>,
    /// The agent's notes.
    pub notes: Option<String>,
    /// log, or do_not_log (casebridge's activity log only).
    pub action: Action,
    /// The agent's choice when several CRM people match.
    pub person_id: Option<String>,
    /// The agent wrapping up (default: the session's agent).
    pub agent_id: Option<String>,
}

impl FromForm for WrapupIn {
    const REFUSAL: &'static str = "the wrap-up is invalid; nothing was logged";
    fn from_form(f: &mut Form<'_>) -> Self {
        let disposition = f.opt_str("disposition");
        let notes = f.opt_str("notes");
        let person_id = f.opt_text("person_id");
        let agent_id = f.opt_text("agent_id");
        let action = match f.opt_str("action").as_deref() {
            Some("log") => Action::Log,
            Some("do_not_log") => Action::DoNotLog,
            Some(_) => {
                f.error("action", "must be log or do_not_log");
                Action::Log
            }
            None => {
                f.error("action", "is required: log or do_not_log");
                Action::Log
            }
        };
        WrapupIn { disposition, notes, action, person_id, agent_id }
    }
}

/// Whether relate-to-case was applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelateOut {
    /// The call was related to a record.
    pub applied: bool,
    /// Why not.
    pub reason: Option<String>,
}

/// What a wrap-up did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WrapupOut {
    /// The activity log line.
    pub activity_id: String,
    /// The session.
    pub session_id: String,
    /// log or do_not_log.
    pub action: Action,
    /// Disposition code (empty for Do not log).
    pub disposition: String,
    /// Its label.
    pub label: String,
    /// Notes written.
    pub notes: String,
    /// The CRM person the call is logged on (null while being created, or none).
    pub person_id: Option<String>,
    /// A person was created for an unmatched caller.
    pub person_created: bool,
    /// Why the call is not logged on a person.
    pub person_reason: Option<String>,
    /// The related record.
    pub record_id: Option<String>,
    /// origin_record or viewing_record.
    pub related_by: Option<String>,
    /// Relate-to-case.
    pub relate_to_case: RelateOut,
    /// 1 for the first wrap-up of the session; a later one replaces an earlier.
    pub revision: i64,
    /// done, or pending when the CRM writes took longer than the wait.
    pub crm_write: String,
}

async fn load_session(st: &AppState, id: &str) -> ApiResult<Session> {
    let row = st.store.load_session(id).await?.ok_or_else(|| {
        Problem::not_found(format!("no session {id:?} has been received; send its events to POST /v1/events first"))
    })?;
    let s: Session = serde_json::from_str(&row.body).map_err(Problem::internal)?;
    if !s.is_created() {
        return Err(Problem::conflict(format!(
            "session {id:?} has not started yet (no session.created); wrap it up once it has"
        )));
    }
    Ok(s)
}

/// `POST /v1/sessions/{id}/wrapup` {disposition, notes?, action, person_id?, agent_id?}.
#[utoipa::path(post, path = "/v1/sessions/{id}/wrapup", tag = "agents", params(("id" = String, Path)), request_body = WrapupIn,
    responses((status = 200, body = WrapupOut),
              (status = 409, description = "{candidates: [{id, kind, name}]}: several people match, choose one"),
              (status = 422, description = "Unknown or inactive disposition, or person_id outside the candidates")))]
pub async fn wrapup(
    State(st): State<AppState>,
    Path(id): Path<String>,
    input: Checked<WrapupIn>,
) -> ApiResult<Json<WrapupOut>> {
    let input = input.finish()?;
    let req = wrapup::Request {
        disposition: input.disposition,
        notes: input.notes,
        action: input.action,
        person_id: input.person_id,
    };
    let s = load_session(&st, &id).await?;
    let settings = st.pipeline.settings().await;
    let p = &st.pipeline;
    let agent = input.agent_id.or_else(|| s.agent.as_ref().map(|a| a.id.clone()));
    let g = gather(&st, &s, &settings, &req, agent.as_deref()).await?;
    let facts = Facts {
        disposition: g.disposition.as_ref(),
        candidates: &g.candidates,
        caller_known: g.phone.is_some() || g.email.is_some(),
        origin_record_id: g.origin.clone(),
        instances: g.instances.clone(),
    };
    let mut plan = match wrapup::decide(&req, &facts, &settings.call_logging) {
        Ok(plan) => plan,
        Err(Refusal::Field(e)) => return Err(Problem::fields("the wrap-up was refused; nothing was logged", &[e])),
        Err(Refusal::Choose(c)) => {
            let list: Vec<Value> = c
                .iter()
                .map(|h| json!({"id": h.id, "kind": casebridge_crm::builtin::kind_name(h.kind), "name": h.name}))
                .collect();
            return Err(Problem::conflict(format!(
                "{} CRM people match the caller; send the wrap-up again with person_id set to one of the candidates",
                list.len()
            ))
            .with("candidates", Value::Array(list)));
        }
    };
    if let Ok((rid, _)) = &plan.relate
        && !p.crm().record_exists(rid).await.map_err(crm_unavailable)?
    {
        plan.relate = Err(format!("record {rid} does not exist in the CRM (save a new record before wrap-up)"));
    }

    // What was logged before: a later wrap-up replaces it.
    let previous = p
        .store
        .activities(&ActivityFilter {
            session_id: Some(id.clone()),
            kinds: vec!["call_log".into()],
            ..Default::default()
        })
        .await?
        .into_iter()
        .next();
    let revision = previous.as_ref().map(|a| a.revision + 1).unwrap_or(1);
    let logged_before = previous.as_ref().is_some_and(|a| a.action.as_deref() == Some("log"));

    let now = Utc::now();
    let cx = Context { session_id: &id, session: &s, phone: g.phone, agent_id: agent, revision, logged_before, now };
    let w = wrapup::writes(&plan, &cx);
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let commands = w
        .ops
        .iter()
        .enumerate()
        .map(|(n, op)| {
            let key = wrapup_write_key(&id, &nonce, n);
            crate::outbox::command(key, &w.lane, &id, &OutboxOp::Crm(op.clone()), Some(&w.keys))
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(Problem::internal)?;
    let log = &w.call_log;
    let act = NewActivity {
        ext_key: activity_key(&id, "call_log"),
        session_id: id.clone(),
        kind: "call_log".into(),
        action: Some(log.action.as_str().into()),
        person_ref: log.person.as_ref().map(|r| r.as_str().to_string()),
        person_is_key: matches!(log.person, Some(ObjRef::Key(_))),
        record_id: log.record_id.clone(),
        related_by: log.related_by.map(str::to_string),
        disposition: Some(log.disposition.clone()),
        label: Some(log.label.clone()),
        notes: Some(log.notes.clone()),
        agent_id: log.agent_id.clone(),
        queue: log.queue.clone(),
        channel: log.channel.map(|c| c.as_str().to_string()),
        missed_reason: log.missed_reason.map(|m| m.as_str().to_string()),
        session_at: log.session_at,
    };

    // The session data carries the wrap-up too: through the rules, like any event, stored with
    // the wrap-up and applied after its writes (see `AgentStore::wrapup_commit`).
    let ev = casebridge_rules::event::Event {
        id: wrapup_event_id(&id, &nonce),
        session_id: id.clone(),
        at: now,
        kind: casebridge_rules::event::EventKind::WrappedUp(casebridge_rules::event::WrappedUp {
            disposition: plan.disposition.clone(),
            notes: plan.notes.clone(),
        }),
        native: None,
    };
    let stored = casebridge_store::NewEvent {
        id: ev.id.clone(),
        session_id: id.clone(),
        event_type: ev.kind.type_name().to_string(),
        at: now,
        body: serde_json::to_string(&ev).map_err(Problem::internal)?,
    };
    let activity_id = p.store.wrapup_commit(&act, &w.lines, &commands, &stored).await?;
    p.events_in.notify_one();
    metrics::counter!("casebridge_wrapups_total", "action" => plan.action.as_str()).increment(1);

    // The agent's widget shows where the call went: wait briefly for the CRM writes.
    let cmd_keys: Vec<String> = commands.iter().map(|c| c.key.clone()).collect();
    let mut done = cmd_keys.is_empty();
    if !done {
        p.outbox_in.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if p.store.commands_settled(&cmd_keys).await? {
                done = true;
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), p.progress.notified()).await;
        }
    }
    let person_id = match &log.person {
        Some(ObjRef::Crm(c)) => Some(c.clone()),
        Some(ObjRef::Key(k)) => st.store.ref_get(k).await?,
        None => None,
    };
    let (applied, reason) = match &plan.relate {
        Ok(_) => (true, None),
        Err(r) => (false, Some(r.clone())),
    };
    Ok(Json(WrapupOut {
        activity_id,
        session_id: id,
        action: plan.action,
        person_created: matches!(plan.person, Person::Create { .. }),
        person_reason: match &plan.person {
            Person::None { reason } => Some(reason.clone()),
            _ => None,
        },
        record_id: log.record_id.clone(),
        related_by: log.related_by.map(str::to_string),
        relate_to_case: RelateOut { applied, reason },
        disposition: plan.disposition,
        label: plan.label,
        notes: plan.notes,
        person_id,
        revision,
        crm_write: if done { "done" } else { "pending" }.to_string(),
    }))
}

/// What a wrap-up decision needs to know, gathered from the store and the CRM.
struct Gathered {
    disposition: Option<Disposition>,
    candidates: Vec<casebridge_rules::model::AccountHit>,
    phone: Option<String>,
    email: Option<String>,
    origin: Option<String>,
    instances: Vec<Option<String>>,
}

async fn gather(
    st: &AppState,
    s: &Session,
    settings: &casebridge_rules::settings::Settings,
    req: &wrapup::Request,
    agent: Option<&str>,
) -> ApiResult<Gathered> {
    let p = &st.pipeline;
    let disposition = match &req.disposition {
        Some(c) => {
            p.store.disposition(c.trim()).await?.map(|d| Disposition { code: d.code, label: d.label, active: d.active })
        }
        None => None,
    };
    let phone = s.phone.as_ref().filter(|p| p.parsed).map(|p| p.number.clone());
    let email = s.customer.email.as_deref().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty());
    let mut candidates = Vec::new();
    if req.action == Action::Log {
        let lookup = match (&phone, &email) {
            (Some(n), _) => Some(CrmLookup::AccountsByPhone(n.clone())),
            (None, Some(e)) => Some(CrmLookup::AccountsByEmail(e.clone())),
            _ => None,
        };
        if let Some(l) = lookup
            && let Answer::Accounts(hits) = p.crm().lookup(&l).await.map_err(crm_unavailable)?
        {
            candidates = hits;
        }
    }
    let instances = match agent {
        Some(a) => match p.store.agent(a).await? {
            Some(row) => {
                let mut state = crate::agents::state_of(&row);
                casebridge_rules::agent::prune(&mut state, &settings.agent_status, Utc::now());
                state.instances.into_values().map(|i| i.viewing_record_id).collect()
            }
            None => vec![],
        },
        None => vec![],
    };
    // Only outbound calls relate to the record they were dialed from.
    let outbound = s.direction == Some(casebridge_rules::event::Direction::Outbound);
    let mut origin = s.origin_record_id.clone().filter(|_| outbound);
    if origin.is_none()
        && outbound
        && let Some(d) = &s.dial_request_id
    {
        origin = p.store.dial(d).await?.and_then(|d| d.origin_record_id);
    }
    Ok(Gathered { disposition, candidates, phone, email, origin, instances })
}
