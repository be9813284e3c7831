//! `GET`/`PUT /v1/settings`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use casebridge_rules::settings::{Settings, parse_settings};
use serde_json::Value;

use super::{AppState, body, json_body};
use crate::error::{ApiResult, Problem};

/// Validates a settings document: the settings and their warnings, or a 422.
pub fn check(
    mut v: Value,
    saved: Option<&Settings>,
) -> Result<(Settings, Vec<casebridge_rules::settings::Warning>), Problem> {
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
#[utoipa::path(get, path = "/v1/settings", tag = "settings", responses((status = 200, description = "The settings document")))]
pub async fn get_settings(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let s = st.pipeline.settings().await;
    Ok(Json(serde_json::to_value(s.redacted()).map_err(Problem::internal)?))
}

/// `PUT /v1/settings`: replaces the document.
#[utoipa::path(put, path = "/v1/settings", tag = "settings", request_body = serde_json::Value,
    responses((status = 200, description = "Saved, with warnings"), (status = 422, description = "Every error at once; nothing saved")))]
pub async fn put_settings(State(st): State<AppState>, raw: Result<Bytes, BytesRejection>) -> ApiResult<Json<Value>> {
    let raw = body(raw, st.max_body_bytes)?;
    let v = json_body(&raw)?;
    let saved = st.pipeline.settings().await;
    let (s, warnings) = check(v, Some(&saved))?;
    let doc = serde_json::to_string(&s).map_err(Problem::internal)?;
    let mut guard = st.pipeline.settings.write().await;
    st.store.settings_put(&doc).await?;
    *guard = Arc::new(s.clone());
    drop(guard);
    let mut out = serde_json::to_value(s.redacted()).map_err(Problem::internal)?;
    out["warnings"] = serde_json::to_value(&warnings).map_err(Problem::internal)?;
    Ok(Json(out))
}
