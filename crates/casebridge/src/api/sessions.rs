//! Sessions and their timelines.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use casebridge_rules::event::FieldError;
use casebridge_rules::event::{Channel, Direction, SessionType};
use casebridge_rules::model::{Entry, MissedReason};
use casebridge_rules::phone::Phone;
use casebridge_rules::session::{AccountOutcome, RecordOutcome, Session};
use casebridge_store::{SessionFilter, SessionRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::field;
use super::state::AppState;
use crate::error::{ApiResult, Problem};
use casebridge_store::agents::ActivityRow;

/// Sessions.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sessions", get(list_sessions)).route("/v1/sessions/{id}", get(get_session))
}

/// A session as lists show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionSummaryOut {
    /// Session id.
    pub id: String,
    /// Channel, once created.
    pub channel: Option<Channel>,
    /// Session type, once created.
    pub session_type: Option<SessionType>,
    /// Direction, once created.
    pub direction: Option<Direction>,
    /// waiting, created, queued, assigned, connected, abandoned or ended.
    pub state: String,
    /// The last node of the queue path.
    pub leaf_queue: Option<String>,
    /// The CRM account.
    pub account_id: Option<String>,
    /// How the account was decided.
    pub account_outcome: AccountOutcome,
    /// The CRM record.
    pub record_id: Option<String>,
    /// How the record was decided.
    pub record_outcome: RecordOutcome,
    /// The rule that decided the record.
    pub record_rule: Option<String>,
    /// Abandoned before an agent connected.
    pub abandoned: bool,
    /// Why it counts as missed.
    pub missed_reason: Option<MissedReason>,
    /// Messages the customer sent.
    pub customer_messages: u32,
    /// The current agent.
    pub agent_id: Option<String>,
    /// Start.
    pub created_at: Option<DateTime<Utc>>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
}

impl SessionSummaryOut {
    /// The public view of a stored session.
    pub fn of(id: &str, row: &SessionRow, s: &Session) -> Self {
        SessionSummaryOut {
            id: id.to_string(),
            channel: s.channel,
            session_type: s.session_type,
            direction: s.direction,
            state: s.phase.as_str().to_string(),
            leaf_queue: s.leaf_queue(),
            account_id: row.account_id.clone(),
            account_outcome: s.account_outcome,
            record_id: row.record_id.clone(),
            record_outcome: s.record_outcome,
            record_rule: s.record_rule.clone(),
            abandoned: s.abandoned,
            missed_reason: s.missed_reason,
            customer_messages: s.customer_messages,
            agent_id: s.agent.as_ref().map(|a| a.id.clone()),
            created_at: s.created_at,
            ended_at: s.ended_at,
        }
    }
}

/// A session with its timeline and activity log lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// The session.
    #[serde(flatten)]
    pub session: SessionSummaryOut,
    /// No event left to apply and no write left to attempt.
    pub settled: bool,
    /// What happened and why, oldest first.
    pub timeline: Vec<Entry>,
    /// casebridge's activity log lines of the session.
    pub activities: Vec<ActivityRow>,
    /// The platform's own events behind the session (native ingest), oldest first, each with
    /// the casebridge events it became.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub native_events: Vec<casebridge_store::NativeRow>,
}

/// `GET /v1/sessions/{id}`.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, description = "The session with its timeline", body = SessionOut), (status = 404)))]
pub async fn get_session(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<SessionOut>> {
    let Some(row) = st.store.load_session(&id).await? else {
        return Err(Problem::not_found(format!("no session {id:?} has been received")));
    };
    let s: Session = serde_json::from_str(&row.body).map_err(Problem::internal)?;
    let session = SessionSummaryOut::of(&id, &row, &s);
    let settled = st.store.session_settled(&id).await?;
    let timeline = st.store.timeline(&id).await?;
    let f = casebridge_store::agents::ActivityFilter { session_id: Some(id.clone()), ..Default::default() };
    let activities = st.store.activities(&f).await?;
    let native_events = st.store.native_events(&id).await?;
    Ok(Json(SessionOut { session, settled, timeline, activities, native_events }))
}

/// Query of `GET /v1/sessions`: every given filter must hold.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Session phase: waiting, created, queued, assigned, connected, abandoned or ended.
    pub state: Option<String>,
    /// Started at or after (RFC 3339).
    pub from: Option<String>,
    /// Started before (RFC 3339).
    pub to: Option<String>,
    /// pending, created, appended, reopened or none.
    pub record_outcome: Option<String>,
    /// CRM account id.
    pub account_id: Option<String>,
    /// Phone number in any format (read with the settings' region).
    pub phone: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// A page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsOut {
    /// Newest first.
    pub sessions: Vec<SessionSummaryOut>,
    /// Cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

const STATES: [&str; 7] = ["waiting", "created", "queued", "assigned", "connected", "abandoned", "ended"];
const RECORD_OUTCOMES: [&str; 5] = ["pending", "created", "appended", "reopened", "none"];

/// Reads the query into the store's filter, or the field errors.
fn filter(q: ListQuery, region: &str) -> Result<SessionFilter, Vec<FieldError>> {
    let mut errors = Vec::new();
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let state = nonempty(q.state);
    if let Some(s) = &state
        && !STATES.contains(&s.as_str())
    {
        errors.push(field("state", format!("must be one of {}", STATES.join(", "))));
    }
    let record_outcome = nonempty(q.record_outcome);
    if let Some(o) = &record_outcome
        && !RECORD_OUTCOMES.contains(&o.as_str())
    {
        errors.push(field("record_outcome", format!("must be one of {}", RECORD_OUTCOMES.join(", "))));
    }
    let mut time = |name: &str, v: Option<String>| {
        let v = nonempty(v)?;
        match DateTime::parse_from_rfc3339(&v) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(field(name, "must be an RFC 3339 time such as 2026-11-20T09:00:00Z"));
                None
            }
        }
    };
    let from = time("from", q.from);
    let to = time("to", q.to);
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        errors.push(field("from", "must be before to"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(SessionFilter {
        phase: state,
        from,
        to,
        record_outcome,
        account_id: nonempty(q.account_id),
        phone: nonempty(q.phone).map(|p| Phone::parse(&p, region).number),
        cursor: nonempty(q.cursor),
        limit: q.limit.unwrap_or(50).clamp(1, 500),
    })
}

/// `GET /v1/sessions?state=&from=&to=&record_outcome=&account_id=&phone=`.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    description = "Sessions, newest first by start (the session.created time, or the first event's time while the session is waiting for its session.created). Every given filter must hold; with none, every session is listed. Pages with `cursor` (the previous page's `next_cursor`).",
    params(
        ("state" = Option<String>, Query, description = "waiting (events arrived before session.created), created, queued, assigned, connected, abandoned or ended"),
        ("from" = Option<String>, Query, description = "started at or after (RFC 3339)"),
        ("to" = Option<String>, Query, description = "started before (RFC 3339)"),
        ("record_outcome" = Option<String>, Query, description = "pending, created, appended, reopened or none"),
        ("account_id" = Option<String>, Query, description = "CRM account id"),
        ("phone" = Option<String>, Query, description = "the customer's phone in any format, read with the settings' region"),
        ("limit" = Option<i64>, Query, description = "page size, default 50, at most 500"),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = SessionsOut), (status = 422)))]
pub async fn list_sessions(State(st): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<SessionsOut>> {
    let region = st.pipeline.settings().await.region.clone();
    let mut f = filter(q, &region).map_err(|e| Problem::fields("the session filter is invalid", &e))?;
    let limit = f.limit;
    f.limit = limit + 1;
    let rows = st.store.list_sessions(&f).await?;
    let mut sessions = Vec::new();
    let mut next = None;
    for (i, (cursor, row)) in rows.iter().enumerate() {
        if i as i64 == limit {
            break;
        }
        let s: Session = serde_json::from_str(&row.body).map_err(Problem::internal)?;
        sessions.push(SessionSummaryOut::of(&s.id, row, &s));
        next = Some(cursor.clone());
    }
    if rows.len() as i64 <= limit {
        next = None;
    }
    Ok(Json(SessionsOut { sessions, next_cursor: next }))
}
