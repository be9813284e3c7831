//! Wrap-up, dispositions, casebridge's activity log, reports and standard custom fields
//! (api.md "Agents, wrap-up, dispositions, reports"; behaviour.md §9, §11).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use casebridge_crm::{CrmLookup, FieldSpec};
use casebridge_rules::fields::{CATALOG, FieldLevel, catalog_field};
use casebridge_rules::keys::{CustomerKey, wrapup_person_key, wrapup_write_key};
use casebridge_rules::model::{Answer, CrmOp, Entry, EntryKind, ObjRef, OutboxOp};
use casebridge_rules::session::Session;
use casebridge_rules::wrapup::{self, Action, Disposition, Facts, Person, Refusal};
use casebridge_store::agents::{ActivityFilter, NewActivity};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, body, crm_unavailable, field, json_body, opt_bool, opt_str, req_str};
use crate::error::{ApiResult, Problem};

// ---- dispositions ----

/// Query of `GET /v1/dispositions`.
#[derive(Debug, Deserialize)]
pub struct DispositionQuery {
    /// Only active (true) or inactive (false) codes.
    pub active: Option<bool>,
}

/// `GET /v1/dispositions`.
#[utoipa::path(get, path = "/v1/dispositions", tag = "dispositions", params(("active" = Option<bool>, Query)),
    responses((status = 200, description = "{dispositions: [{code, label, active}]}")))]
pub async fn list_dispositions(
    State(st): State<AppState>,
    Query(q): Query<DispositionQuery>,
) -> ApiResult<Json<Value>> {
    let mut all = st.pipeline.agents.dispositions().await?;
    if let Some(a) = q.active {
        all.retain(|d| d.active == a);
    }
    Ok(Json(json!({"dispositions": all})))
}

fn valid_code(c: &str) -> bool {
    !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
}

/// `POST /v1/dispositions` {code, label}.
#[utoipa::path(post, path = "/v1/dispositions", tag = "dispositions", request_body = serde_json::Value,
    responses((status = 201, description = "The disposition"), (status = 409, description = "Code exists"), (status = 422)))]
pub async fn create_disposition(State(st): State<AppState>, raw: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let code = req_str(&v, "code", &mut errors);
    if !code.is_empty() && !valid_code(&code) {
        errors.push(field("code", "use 1 to 64 letters, digits, '_', '-' or '.'"));
    }
    let label = req_str(&v, "label", &mut errors);
    if !errors.is_empty() {
        return Err(Problem::fields("the disposition is invalid; nothing was created", &errors));
    }
    let d = st.pipeline.agents.disposition_create(&code, &label).await?;
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

/// `PATCH /v1/dispositions/{code}` {label?, active?}.
#[utoipa::path(patch, path = "/v1/dispositions/{code}", tag = "dispositions", params(("code" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, description = "The disposition"), (status = 404), (status = 422)))]
pub async fn patch_disposition(
    State(st): State<AppState>,
    Path(code): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let mut errors = Vec::new();
    let label = opt_str(&v, "label", &mut errors);
    if label.as_deref().is_some_and(|l| l.trim().is_empty()) {
        errors.push(field("label", "must not be empty"));
    }
    let active = opt_bool(&v, "active", &mut errors);
    if !errors.is_empty() {
        return Err(Problem::fields("the change is invalid; nothing was changed", &errors));
    }
    let d =
        st.pipeline.agents.disposition_update(&code, label.as_deref().map(str::trim), active).await?.ok_or_else(
            || Problem::not_found(format!("no disposition {code:?}; create it with POST /v1/dispositions")),
        )?;
    Ok(Json(serde_json::to_value(d).map_err(Problem::internal)?))
}

// ---- wrap-up ----

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
#[utoipa::path(post, path = "/v1/sessions/{id}/wrapup", tag = "agents", params(("id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, description = "{activity_id, person_id?, record_id?, related_by?, relate_to_case}"),
              (status = 409, description = "{candidates: [{id, kind, name}]}: several people match, choose one"),
              (status = 422, description = "Unknown or inactive disposition, or person_id outside the candidates")))]
pub async fn wrapup(
    State(st): State<AppState>,
    Path(id): Path<String>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let (req, agent_id) = parse_wrapup(&v)?;
    let s = load_session(&st, &id).await?;
    let settings = st.pipeline.settings().await;
    let p = &st.pipeline;
    let agent = agent_id.or_else(|| s.agent.as_ref().map(|a| a.id.clone()));
    let g = gather(&st, &s, &settings, &req, agent.as_deref()).await?;
    let phone = g.phone.clone();
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
        && !p.crm.record_exists(rid).await.map_err(crm_unavailable)?
    {
        plan.relate = Err(format!("record {rid} does not exist in the CRM (save a new record before wrap-up)"));
    }

    // What was logged before: a later wrap-up replaces it.
    let previous = p
        .agents
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

    let Writes { commands, lines, act, person_ref, record, created_key, nonce, now } =
        writes(&id, &s, &plan, phone, agent, revision, logged_before)?;
    // The session data carries the wrap-up too: through the rules, like any event, stored in
    // the same commit as the wrap-up itself.
    let ev = casebridge_rules::event::Event {
        id: casebridge_rules::keys::wrapup_event_id(&id, &nonce),
        session_id: id.clone(),
        at: now,
        kind: casebridge_rules::event::EventKind::WrappedUp(casebridge_rules::event::WrappedUp {
            disposition: plan.disposition.clone(),
            notes: plan.notes.clone(),
        }),
    };
    let stored = casebridge_store::NewEvent {
        id: ev.id.clone(),
        session_id: id.clone(),
        event_type: ev.kind.type_name().to_string(),
        at: now,
        body: serde_json::to_string(&ev).map_err(Problem::internal)?,
    };
    let activity_id = p.agents.wrapup_commit(&act, &lines, &commands, &stored).await?;
    p.events_in.notify_one();
    metrics::counter!("casebridge_wrapups_total", "action" => if plan.action == Action::Log { "log" } else { "do_not_log" })
        .increment(1);

    // The agent's widget shows where the call went: wait briefly for the CRM writes.
    let cmd_keys: Vec<String> = commands.iter().map(|c| c.key.clone()).collect();
    let mut done = cmd_keys.is_empty();
    if !done {
        p.outbox_in.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if p.agents.commands_settled(&cmd_keys).await? {
                done = true;
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), p.progress.notified()).await;
        }
    }
    let person_id = match &person_ref {
        Some(ObjRef::Crm(c)) => Some(c.clone()),
        Some(ObjRef::Key(k)) => st.store.ref_get(k).await?,
        None => None,
    };
    let (applied, reason) = match &plan.relate {
        Ok(_) => (true, None),
        Err(r) => (false, Some(r.clone())),
    };
    Ok(Json(json!({
        "activity_id": activity_id,
        "session_id": id,
        "action": plan.action,
        "disposition": plan.disposition,
        "label": plan.label,
        "notes": plan.notes,
        "person_id": person_id,
        "person_created": created_key.is_some(),
        "person_reason": match &plan.person { Person::None { reason } => Some(reason.clone()), _ => None },
        "record_id": record.as_ref().map(|r| r.as_str()),
        "related_by": plan.relate.as_ref().ok().map(|(_, by)| *by),
        "relate_to_case": {"applied": applied, "reason": reason},
        "revision": revision,
        "crm_write": if done { "done" } else { "pending" },
    })))
}

/// The CRM writes, timeline lines and activity line of a decided wrap-up.
struct Writes {
    commands: Vec<casebridge_store::NewCommand>,
    lines: Vec<Entry>,
    act: NewActivity,
    person_ref: Option<ObjRef>,
    record: Option<ObjRef>,
    created_key: Option<String>,
    nonce: String,
    now: DateTime<Utc>,
}

fn writes(
    id: &str,
    s: &Session,
    plan: &wrapup::Plan,
    phone: Option<String>,
    agent: Option<String>,
    revision: i64,
    logged_before: bool,
) -> ApiResult<Writes> {
    let id = id.to_string();
    let at = s.created_at.unwrap_or_else(Utc::now);
    let lane = s.lane();
    let keys = CustomerKey::of_customer(&s.customer, s.phone.as_ref());
    let mut ops = Vec::new();
    let mut created_key = None;
    let person_ref: Option<ObjRef> = match &plan.person {
        Person::Existing { id } => Some(ObjRef::Crm(id.clone())),
        Person::Create { kind } => {
            let key = wrapup_person_key(&id);
            ops.push(CrmOp::CreateAccount {
                key: key.clone(),
                kind: *kind,
                name: s.customer.name.clone(),
                phone: phone.clone(),
                phone_extension: s.phone.as_ref().and_then(|p| p.extension.clone()),
                email: s.customer.email.clone(),
                user_id: s.customer.user_id.clone(),
                at,
            });
            created_key = Some(key.clone());
            Some(ObjRef::Key(key))
        }
        Person::None { .. } => None,
    };
    let record = plan.relate.as_ref().ok().map(|(r, _)| ObjRef::Crm(r.clone()));
    if plan.action == Action::Log && (person_ref.is_some() || record.is_some()) {
        ops.push(CrmOp::LogCall {
            session_id: id.clone(),
            person: person_ref.clone(),
            record: record.clone(),
            disposition: plan.disposition.clone(),
            label: plan.label.clone(),
            notes: plan.notes.clone(),
            agent_id: agent.clone(),
            at,
        });
    } else if logged_before {
        ops.push(CrmOp::LogCall {
            session_id: id.clone(),
            person: None,
            record: None,
            disposition: String::new(),
            label: String::new(),
            notes: String::new(),
            agent_id: agent.clone(),
            at,
        });
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let commands = ops
        .iter()
        .enumerate()
        .map(|(n, op)| {
            let key = wrapup_write_key(&id, &nonce, n);
            crate::outbox::command(key, &lane, &id, &OutboxOp::Crm(op.clone()), Some(&keys))
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(Problem::internal)?;

    let now = Utc::now();
    let mut lines = Vec::new();
    let what = match (&plan.action, &plan.person) {
        (Action::DoNotLog, _) => "Wrap-up: Do not log (platform activity only)".to_string(),
        (_, Person::Existing { id: pid }) => format!("Wrap-up {}: logged on person {pid}", plan.disposition),
        (_, Person::Create { kind }) => format!(
            "Wrap-up {}: no CRM person matches the caller, a {} is created",
            plan.disposition,
            casebridge_crm::builtin::kind_name(*kind)
        ),
        (_, Person::None { reason }) => format!("Wrap-up {}: not logged on a person ({reason})", plan.disposition),
    };
    let rule = if revision > 1 { "call_logging.wrapup.replaced" } else { "call_logging.wrapup" };
    lines.push(Entry { at: now, kind: EntryKind::Decision, summary: what, rule: Some(rule.into()) });
    if plan.action == Action::Log {
        let summary = match &plan.relate {
            Ok((r, by)) => format!("Related to record {r} ({by})"),
            Err(why) => format!("Relate-to-case not applied: {why}"),
        };
        lines.push(Entry {
            at: now,
            kind: EntryKind::Decision,
            summary,
            rule: Some("call_logging.relate_to_case".into()),
        });
    }
    let (pref, pkey) = match &person_ref {
        Some(ObjRef::Key(k)) => (Some(k.clone()), true),
        Some(ObjRef::Crm(c)) => (Some(c.clone()), false),
        None => (None, false),
    };
    let act = NewActivity {
        ext_key: casebridge_rules::keys::activity_key(&id, "call_log"),
        session_id: id.clone(),
        kind: "call_log".into(),
        action: Some(if plan.action == Action::Log { "log" } else { "do_not_log" }.into()),
        person_ref: pref,
        person_is_key: pkey,
        record_id: record.as_ref().map(|r| r.as_str().to_string()),
        related_by: plan.relate.as_ref().ok().map(|(_, by)| by.to_string()),
        disposition: Some(plan.disposition.clone()),
        label: Some(plan.label.clone()),
        notes: Some(plan.notes.clone()),
        agent_id: agent.clone(),
        queue: s.leaf_queue(),
        channel: s.channel.map(|c| c.as_str().to_string()),
        missed_reason: s.missed_reason.map(|m| m.as_str().to_string()),
        session_at: at,
    };
    Ok(Writes { commands, lines, act, person_ref, record, created_key, nonce, now })
}

/// The request, and the agent it names.
fn parse_wrapup(v: &Value) -> ApiResult<(wrapup::Request, Option<String>)> {
    let mut errors = Vec::new();
    let disposition = opt_str(v, "disposition", &mut errors);
    let notes = opt_str(v, "notes", &mut errors);
    let person_id = opt_str(v, "person_id", &mut errors).filter(|p| !p.trim().is_empty());
    let agent_id = opt_str(v, "agent_id", &mut errors).filter(|p| !p.trim().is_empty());
    let action = match opt_str(v, "action", &mut errors).as_deref() {
        Some("log") => Action::Log,
        Some("do_not_log") => Action::DoNotLog,
        Some(_) => {
            errors.push(field("action", "must be log or do_not_log"));
            Action::Log
        }
        None => {
            errors.push(field("action", "is required: log or do_not_log"));
            Action::Log
        }
    };
    if !errors.is_empty() {
        return Err(Problem::fields("the wrap-up is invalid; nothing was logged", &errors));
    }
    Ok((wrapup::Request { disposition, notes, action, person_id }, agent_id))
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
        Some(c) => p.agents.disposition(c.trim()).await?.map(|d| Disposition {
            code: d.code,
            label: d.label,
            active: d.active,
        }),
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
            && let Answer::Accounts(hits) = p.crm.lookup(&l).await.map_err(crm_unavailable)?
        {
            candidates = hits;
        }
    }
    let instances = match agent {
        Some(a) => match p.agents.agent(a).await? {
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
        origin = p.agents.dial(d).await?.and_then(|d| d.origin_record_id);
    }
    Ok(Gathered { disposition, candidates, phone, email, origin, instances })
}

// ---- activity log ----

/// Query of `GET /v1/activities`.
#[derive(Debug, Deserialize)]
pub struct ActivityQuery {
    /// A CRM person's id.
    pub person_id: Option<String>,
    /// A session.
    pub session_id: Option<String>,
    /// call_log, missed, abandoned or voicemail.
    pub kind: Option<String>,
}

/// `GET /v1/activities?person_id=&session_id=&kind=`: casebridge's own activity log.
#[utoipa::path(get, path = "/v1/activities", tag = "agents",
    params(("person_id" = Option<String>, Query), ("session_id" = Option<String>, Query), ("kind" = Option<String>, Query)),
    responses((status = 200, description = "{activities}"), (status = 422)))]
pub async fn list_activities(State(st): State<AppState>, Query(q): Query<ActivityQuery>) -> ApiResult<Json<Value>> {
    if q.person_id.is_none() && q.session_id.is_none() {
        return Err(Problem::fields(
            "give a filter",
            &[field("person_id", "give person_id (a CRM person's id) or session_id")],
        ));
    }
    let kinds = q.kind.map(|k| vec![k]).unwrap_or_default();
    let rows = st
        .pipeline
        .agents
        .activities(&ActivityFilter { person_id: q.person_id, session_id: q.session_id, kinds, ..Default::default() })
        .await?;
    Ok(Json(json!({"activities": rows})))
}

// ---- reports ----

/// Query of the reports.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// Start: RFC 3339, or a date (start of that day in the settings' time zone).
    pub from: Option<String>,
    /// End (exclusive): RFC 3339, or a date (included: up to the end of that day).
    pub to: Option<String>,
    /// Grouping.
    pub group_by: Option<String>,
}

fn parse_bound(s: &str, tz: chrono_tz::Tz, end: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let d = if end { d.succ_opt()? } else { d };
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).earliest().map(|t| t.with_timezone(&Utc))
}

fn period(q: &ReportQuery, tz: chrono_tz::Tz) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let mut errors = Vec::new();
    let msg = "must be an RFC 3339 time or a date such as 2026-11-20";
    let to = match &q.to {
        Some(s) => parse_bound(s, tz, true).or_else(|| {
            errors.push(field("to", msg));
            None
        }),
        None => Some(Utc::now()),
    };
    let from = match &q.from {
        Some(s) => parse_bound(s, tz, false).or_else(|| {
            errors.push(field("from", msg));
            None
        }),
        None => to.map(|t| t - chrono::Duration::days(7)),
    };
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            errors.push(field("from", "must be before to"));
        } else if t - f > chrono::Duration::days(366) {
            errors.push(field("from", "the period is at most 366 days"));
        }
    }
    match (from, to) {
        (Some(f), Some(t)) if errors.is_empty() => Ok((f, t)),
        _ => Err(Problem::fields("the report period is invalid", &errors)),
    }
}

type Counts = BTreeMap<String, BTreeMap<String, u64>>;

fn rows_of(counts: &Counts, second: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for (g, by) in counts {
        for (k, n) in by {
            rows.push(json!({"group": g, second: k, "count": n}));
        }
    }
    rows
}

/// `GET /v1/reports/dispositions?from=&to=&group_by=day|agent|queue`.
#[utoipa::path(get, path = "/v1/reports/dispositions", tag = "reports",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("group_by" = Option<String>, Query, description = "day (default), agent or queue")),
    responses((status = 200, description = "{rows: [{group, disposition, count}], totals, trend}"), (status = 422)))]
pub async fn report_dispositions(State(st): State<AppState>, Query(q): Query<ReportQuery>) -> ApiResult<Json<Value>> {
    let settings = st.pipeline.settings().await;
    let tz: chrono_tz::Tz = settings.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let group_by = q.group_by.clone().unwrap_or_else(|| "day".into());
    if !["day", "agent", "queue"].contains(&group_by.as_str()) {
        return Err(Problem::fields("the report is invalid", &[field("group_by", "must be day, agent or queue")]));
    }
    let (from, to) = period(&q, tz)?;
    let span = to - from;
    let logged = |from, to| ActivityFilter {
        kinds: vec!["call_log".into()],
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    let rows = st.pipeline.agents.activities(&logged(from, to)).await?;
    let prev = st.pipeline.agents.activities(&logged(from - span, from)).await?;
    let mut counts: Counts = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for a in rows.iter().filter(|a| a.action.as_deref() == Some("log")) {
        let Some(code) = a.disposition.clone().filter(|d| !d.is_empty()) else { continue };
        let group = match group_by.as_str() {
            "agent" => a.agent_id.clone().unwrap_or_else(|| "(none)".into()),
            "queue" => a.queue.clone().unwrap_or_else(|| "(none)".into()),
            _ => a.session_at.with_timezone(&tz).format("%Y-%m-%d").to_string(),
        };
        *counts.entry(group).or_default().entry(code.clone()).or_default() += 1;
        *totals.entry(code.clone()).or_default() += 1;
        if let Some(l) = &a.label {
            labels.insert(code, l.clone());
        }
    }
    let mut before: BTreeMap<String, u64> = BTreeMap::new();
    for a in prev.iter().filter(|a| a.action.as_deref() == Some("log")) {
        if let Some(code) = a.disposition.clone().filter(|d| !d.is_empty()) {
            *before.entry(code).or_default() += 1;
        }
    }
    let codes: std::collections::BTreeSet<&String> = totals.keys().chain(before.keys()).collect();
    let trend: Vec<Value> = codes
        .into_iter()
        .map(|c| {
            let now = totals.get(c).copied().unwrap_or(0);
            let was = before.get(c).copied().unwrap_or(0);
            json!({"disposition": c, "count": now, "previous_count": was, "change": now as i64 - was as i64})
        })
        .collect();
    Ok(Json(json!({
        "from": from, "to": to, "group_by": group_by, "time_zone": settings.time_zone,
        "rows": rows_of(&counts, "disposition"), "totals": totals, "labels": labels,
        "trend": {"previous_from": from - span, "previous_to": from, "dispositions": trend},
    })))
}

/// `GET /v1/reports/abandoned?from=&to=&group_by=reason|day|queue`: missed sessions by reason.
#[utoipa::path(get, path = "/v1/reports/abandoned", tag = "reports",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("group_by" = Option<String>, Query, description = "reason (default), day or queue")),
    responses((status = 200, description = "{rows: [{group, reason, count}], totals}"), (status = 422)))]
pub async fn report_abandoned(State(st): State<AppState>, Query(q): Query<ReportQuery>) -> ApiResult<Json<Value>> {
    let settings = st.pipeline.settings().await;
    let tz: chrono_tz::Tz = settings.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let group_by = q.group_by.clone().unwrap_or_else(|| "reason".into());
    if !["reason", "day", "queue"].contains(&group_by.as_str()) {
        return Err(Problem::fields("the report is invalid", &[field("group_by", "must be reason, day or queue")]));
    }
    let (from, to) = period(&q, tz)?;
    let rows = st
        .pipeline
        .agents
        .activities(&ActivityFilter {
            kinds: vec!["missed".into(), "abandoned".into()],
            from: Some(from),
            to: Some(to),
            ..Default::default()
        })
        .await?;
    let mut counts: Counts = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for a in &rows {
        let reason = a.missed_reason.clone().unwrap_or_else(|| "unknown".into());
        let group = match group_by.as_str() {
            "day" => a.session_at.with_timezone(&tz).format("%Y-%m-%d").to_string(),
            "queue" => a.queue.clone().unwrap_or_else(|| "(none)".into()),
            _ => reason.clone(),
        };
        *counts.entry(group).or_default().entry(reason.clone()).or_default() += 1;
        *totals.entry(reason).or_default() += 1;
    }
    Ok(Json(json!({
        "from": from, "to": to, "group_by": group_by, "time_zone": settings.time_zone,
        "rows": rows_of(&counts, "reason"), "totals": totals, "total": rows.len(),
    })))
}

// ---- standard custom fields ----

/// `GET /v1/crm/custom-fields`: the catalog and what is enabled.
#[utoipa::path(get, path = "/v1/crm/custom-fields", tag = "custom-fields",
    responses((status = 200, description = "{fields: [{key, level, label, type, crm_field, enabled, enabled_at}]}")))]
pub async fn list_fields(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let enabled: BTreeMap<String, _> =
        st.pipeline.agents.enabled_fields().await?.into_iter().map(|r| (r.key.clone(), r)).collect();
    let list: Vec<Value> = CATALOG
        .iter()
        .map(|c| {
            let e = enabled.get(c.key);
            json!({"key": c.key, "level": c.level, "label": c.label, "type": c.kind,
                   "crm_field": e.map(|e| e.crm_field.clone()).unwrap_or_else(|| st.pipeline.crm.custom_field_name(c.key)),
                   "enabled": e.is_some(), "enabled_at": e.map(|e| e.enabled_at)})
        })
        .collect();
    Ok(Json(json!({"fields": list})))
}

/// `POST /v1/crm/custom-fields` {fields: [key]}: creates them in the CRM (existing ones are
/// reused); no list creates the whole catalog.
#[utoipa::path(post, path = "/v1/crm/custom-fields", tag = "custom-fields", request_body = serde_json::Value,
    responses((status = 200, description = "{fields: [{key, crm_field, outcome: created|reused, enabled_at}]}"), (status = 422)))]
pub async fn create_fields(State(st): State<AppState>, raw: Result<Bytes, BytesRejection>) -> ApiResult<Json<Value>> {
    let v = json_body(&body(raw, st.max_body_bytes)?)?;
    let known: Vec<&str> = CATALOG.iter().map(|c| c.key).collect();
    // No list (or an empty one) is the one action: every standard field.
    let keys: Vec<String> = match v.get("fields") {
        None | Some(Value::Null) => known.iter().map(|k| k.to_string()).collect(),
        Some(Value::Array(a)) if a.is_empty() => known.iter().map(|k| k.to_string()).collect(),
        Some(Value::Array(a)) => {
            let mut keys = Vec::new();
            let mut errors = Vec::new();
            for (i, k) in a.iter().enumerate() {
                match k.as_str().and_then(catalog_field) {
                    Some(c) => keys.push(c.key.to_string()),
                    None => errors.push(field(
                        &format!("fields[{i}]"),
                        &format!("unknown field {k}; the catalog has: {}", known.join(", ")),
                    )),
                }
            }
            if !errors.is_empty() {
                return Err(Problem::fields("nothing was created", &errors));
            }
            keys.dedup();
            keys
        }
        Some(_) => {
            return Err(Problem::fields(
                "nothing was created",
                &[field("fields", &format!("must be a list of catalog keys: {}", known.join(", ")))],
            ));
        }
    };
    let p = &st.pipeline;
    let mut out = Vec::new();
    for k in keys {
        let Some(c) = catalog_field(&k) else { continue };
        let spec = FieldSpec {
            name: p.crm.custom_field_name(c.key),
            object: if c.level == FieldLevel::Account { "account" } else { "record" },
            label: c.label.to_string(),
            kind: c.kind,
        };
        let created = p.crm.ensure_custom_field(&spec).await.map_err(crm_unavailable)?;
        p.agents.enable_field(c.key, &spec.name, Utc::now()).await?;
        out.push((c.key, spec.name, created));
    }
    p.load_fields().await.map_err(Problem::internal)?;
    let enabled: BTreeMap<String, _> =
        p.agents.enabled_fields().await?.into_iter().map(|r| (r.key.clone(), r.enabled_at)).collect();
    let list: Vec<Value> = out
        .into_iter()
        .map(|(k, name, created)| {
            json!({"key": k, "crm_field": name, "outcome": if created { "created" } else { "reused" },
                   "enabled_at": enabled.get(k)})
        })
        .collect();
    Ok(Json(json!({"fields": list})))
}
