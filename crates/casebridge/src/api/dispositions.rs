//! Disposition codes agents choose at wrap-up (api.md "Agents, wrap-up, dispositions, reports").

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use casebridge_store::agents::DispositionRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::{Checked, Form, FromForm};
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// Dispositions.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/dispositions", get(list_dispositions).post(create_disposition))
        .route("/v1/dispositions/{code}", axum::routing::patch(patch_disposition))
}

/// `GET /v1/dispositions` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DispositionsOut {
    /// By code.
    pub dispositions: Vec<DispositionRow>,
}

/// Query of `GET /v1/dispositions`.
#[derive(Debug, Deserialize)]
pub struct DispositionQuery {
    /// Only active (true) or inactive (false) codes.
    pub active: Option<bool>,
}

/// `GET /v1/dispositions`.
#[utoipa::path(get, path = "/v1/dispositions", tag = "dispositions", params(("active" = Option<bool>, Query)),
    responses((status = 200, body = DispositionsOut)))]
pub async fn list_dispositions(
    State(st): State<AppState>,
    Query(q): Query<DispositionQuery>,
) -> ApiResult<Json<DispositionsOut>> {
    let mut all = st.store.dispositions().await?;
    if let Some(a) = q.active {
        all.retain(|d| d.active == a);
    }
    Ok(Json(DispositionsOut { dispositions: all }))
}

fn valid_code(c: &str) -> bool {
    !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
}

/// A new disposition code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DispositionIn {
    /// 1 to 64 letters, digits, '_', '-' or '.'.
    pub code: String,
    /// What agents see.
    pub label: String,
}

impl FromForm for DispositionIn {
    const REFUSAL: &'static str = "the disposition is invalid; nothing was created";
    fn from_form(f: &mut Form<'_>) -> Self {
        let code = f.req_str("code");
        if !code.is_empty() && !valid_code(&code) {
            f.error("code", "use 1 to 64 letters, digits, '_', '-' or '.'");
        }
        DispositionIn { code, label: f.req_str("label") }
    }
}

/// `POST /v1/dispositions` {code, label}.
#[utoipa::path(post, path = "/v1/dispositions", tag = "dispositions", request_body = DispositionIn,
    responses((status = 201, description = "The disposition", body = DispositionRow), (status = 409, description = "Code exists"), (status = 422)))]
pub async fn create_disposition(State(st): State<AppState>, input: Checked<DispositionIn>) -> ApiResult<Response> {
    let d = input.finish()?;
    let row = st.store.disposition_create(&d.code, &d.label).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// A change to a disposition.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DispositionPatchIn {
    /// New label.
    pub label: Option<String>,
    /// Whether it can be chosen.
    pub active: Option<bool>,
}

impl FromForm for DispositionPatchIn {
    const REFUSAL: &'static str = "the change is invalid; nothing was changed";
    fn from_form(f: &mut Form<'_>) -> Self {
        let label = f.opt_str("label");
        if label.as_deref().is_some_and(|l| l.trim().is_empty()) {
            f.error("label", "must not be empty");
        }
        DispositionPatchIn { label: label.map(|l| l.trim().to_string()), active: f.opt_bool("active") }
    }
}

/// `PATCH /v1/dispositions/{code}` {label?, active?}.
#[utoipa::path(patch, path = "/v1/dispositions/{code}", tag = "dispositions", params(("code" = String, Path)),
    request_body = DispositionPatchIn,
    responses((status = 200, description = "The disposition", body = DispositionRow), (status = 404), (status = 422)))]
pub async fn patch_disposition(
    State(st): State<AppState>,
    Path(code): Path<String>,
    input: Checked<DispositionPatchIn>,
) -> ApiResult<Json<DispositionRow>> {
    let change = input.finish()?;
    let d =
        st.store.disposition_update(&code, change.label.as_deref(), change.active).await?.ok_or_else(|| {
            Problem::not_found(format!("no disposition {code:?}; create it with POST /v1/dispositions"))
        })?;
    Ok(Json(d))
}
