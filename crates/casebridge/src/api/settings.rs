//! `GET`/`PUT /v1/settings`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::get;
use axum::{Json, Router};
use casebridge_rules::settings::{Settings, Warning, parse_settings};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::input::{body, json_body};
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// The settings document.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/settings", get(get_settings).put(put_settings))
}

/// The saved document and what in it has no effect.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsOut {
    /// The document as saved (secrets redacted).
    #[serde(flatten)]
    pub settings: Settings,
    /// Valid settings that have no effect, and why.
    pub warnings: Vec<Warning>,
}

/// Validates a settings document: the settings and their warnings, or a 422.
pub fn check(mut v: Value, saved: Option<&Settings>) -> Result<(Settings, Vec<Warning>), Problem> {
    // A document saved from a PUT answer carries its warnings; they are not settings.
    if let Some(o) = v.as_object_mut() {
        o.remove("warnings");
    }
    let mut s =
        parse_settings(v).map_err(|e| Problem::fields("the settings document is invalid; nothing was saved", &e))?;
    if let Some(saved) = saved {
        s.keep_secrets_from(saved);
    }
    let w = crate::config::validate(&s)
        .map_err(|e| Problem::fields("the settings document is invalid; nothing was saved", &e))?;
    Ok((s, w))
}

/// `GET /v1/settings`: the whole document.
#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    responses((status = 200, description = "The settings document (secrets redacted)", body = Settings)))]
pub async fn get_settings(State(st): State<AppState>) -> Json<Settings> {
    Json(st.pipeline.settings().await.redacted())
}

/// `PUT /v1/settings`: replaces the document.
#[utoipa::path(put, path = "/v1/settings", tag = "settings",
    request_body(content = Settings, description = "The whole document; missing members take their defaults"),
    responses((status = 200, description = "Saved, with warnings", body = SettingsOut),
              (status = 422, description = "Every error at once; nothing saved")))]
pub async fn put_settings(
    State(st): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<SettingsOut>> {
    let raw = body(raw, st.max_body_bytes)?;
    let v = json_body(&raw)?;
    let saved = st.pipeline.settings().await;
    let (s, warnings) = check(v, Some(&saved))?;
    let doc = serde_json::to_string(&s).map_err(Problem::internal)?;
    let mut guard = st.pipeline.settings.write().await;
    st.store.settings_put(&doc).await?;
    *guard = Arc::new(s.clone());
    drop(guard);
    Ok(Json(SettingsOut { settings: s.redacted(), warnings }))
}
