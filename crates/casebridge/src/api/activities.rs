//! casebridge's own activity log (api.md "Agents, wrap-up, dispositions, reports"; behaviour.md §9).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use casebridge_store::agents::{ActivityFilter, ActivityRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::input::field;
use crate::error::{ApiResult, Problem};

/// The activity log.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/activities", get(list_activities))
}

/// A line of casebridge's activity log: every interaction on a person.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityOut {
    /// Id.
    pub id: String,
    /// Session.
    pub session_id: String,
    /// call_log, missed, abandoned or voicemail.
    pub kind: String,
    /// log or do_not_log (call logs).
    pub action: Option<String>,
    /// The person's CRM id (null while the person is still being created, or none).
    pub person_id: Option<String>,
    /// Related record.
    pub record_id: Option<String>,
    /// How the record was chosen: origin_record or viewing_record.
    pub related_by: Option<String>,
    /// Disposition code.
    pub disposition: Option<String>,
    /// Disposition label.
    pub label: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Menu path.
    pub queue: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// Missed-session reason.
    pub missed_reason: Option<String>,
    /// Wrap-ups so far (a later one replaces an earlier).
    pub revision: i64,
    /// Session start.
    pub session_at: DateTime<Utc>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

impl From<ActivityRow> for ActivityOut {
    fn from(r: ActivityRow) -> Self {
        ActivityOut {
            id: r.id,
            session_id: r.session_id,
            kind: r.kind,
            action: r.action,
            person_id: r.person_id,
            record_id: r.record_id,
            related_by: r.related_by,
            disposition: r.disposition,
            label: r.label,
            notes: r.notes,
            agent_id: r.agent_id,
            queue: r.queue,
            channel: r.channel,
            missed_reason: r.missed_reason,
            revision: r.revision,
            session_at: r.session_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Lines of the activity log, mapped for the API.
pub fn activities_out(rows: Vec<ActivityRow>) -> Vec<ActivityOut> {
    rows.into_iter().map(ActivityOut::from).collect()
}

/// `GET /v1/activities` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivitiesOut {
    /// Newest first.
    pub activities: Vec<ActivityOut>,
}

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
    responses((status = 200, body = ActivitiesOut), (status = 422)))]
pub async fn list_activities(
    State(st): State<AppState>,
    Query(q): Query<ActivityQuery>,
) -> ApiResult<Json<ActivitiesOut>> {
    if q.person_id.is_none() && q.session_id.is_none() {
        return Err(Problem::fields(
            "give a filter",
            &[field("person_id", "give person_id (a CRM person's id) or session_id")],
        ));
    }
    let kinds = q.kind.map(|k| vec![k]).unwrap_or_default();
    let rows = st
        .pipeline
        .store
        .activities(&ActivityFilter { person_id: q.person_id, session_id: q.session_id, kinds, ..Default::default() })
        .await?;
    Ok(Json(ActivitiesOut { activities: activities_out(rows) }))
}
