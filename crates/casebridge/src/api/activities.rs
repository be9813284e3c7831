//! casebridge's own activity log (api.md "Agents, wrap-up, dispositions, reports"; behaviour.md §9).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use casebridge_store::agents::{ActivityFilter, ActivityRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::field;
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// The activity log.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/activities", get(list_activities))
}

/// `GET /v1/activities` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivitiesOut {
    /// Newest first.
    pub activities: Vec<ActivityRow>,
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
    Ok(Json(ActivitiesOut { activities: rows }))
}
