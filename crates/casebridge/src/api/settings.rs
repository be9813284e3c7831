//! `GET`/`PUT`/`PATCH /v1/settings`, and the history of settings changes with its restore.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use casebridge_rules::settings::{Settings, Warning, changed_paths, merge_patch, read_settings};
use casebridge_store::SettingsChange;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::input::{body, json_body};
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// The settings document and its history.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/settings", get(get_settings).put(put_settings).patch(patch_settings))
        .route("/v1/settings/history", get(settings_history))
        .route("/v1/settings/history/{id}/restore", post(restore_settings))
}

/// The saved document, what in it has no effect, and what the change changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsOut {
    /// The document as saved (secrets redacted).
    #[serde(flatten)]
    pub settings: Settings,
    /// Valid settings that have no effect or look like mistakes, and why.
    pub warnings: Vec<Warning>,
    /// The dotted paths whose values this change changed (empty: nothing changed, nothing saved).
    pub changed: Vec<String>,
    /// The history id of this change (null when nothing changed).
    pub history_id: Option<i64>,
}

const REFUSED: &str = "the settings document is invalid; nothing was saved";

/// Validates a settings document: the settings and their warnings, or a 422 with every error.
pub fn check(mut v: Value, saved: Option<&Settings>) -> Result<(Settings, Vec<Warning>), Problem> {
    // A document saved from a PUT answer carries its warnings and change; they are not settings.
    if let Some(o) = v.as_object_mut() {
        for k in ["warnings", "changed", "history_id"] {
            o.remove(k);
        }
    }
    crate::config::check_document(v, saved).map_err(|e| Problem::fields(REFUSED, &e))
}

/// Who changes the settings, for the log and the history: the bearer token's holder, or a
/// caller on the loopback address when the server runs without a token.
fn source(st: &AppState) -> &'static str {
    if st.token.is_some() { "token" } else { "loopback" }
}

/// Saves `s` over `before` (under the settings lock) with a history row, and logs the change.
pub async fn save(
    st: &AppState,
    guard: &mut tokio::sync::RwLockWriteGuard<'_, Arc<Settings>>,
    s: Settings,
    warnings: Vec<Warning>,
    restored_from: Option<i64>,
) -> ApiResult<SettingsOut> {
    let before = serde_json::to_value(&***guard).map_err(Problem::internal)?;
    let after = serde_json::to_value(&s).map_err(Problem::internal)?;
    let changed = changed_paths(&before, &after);
    let mut history_id = None;
    if !changed.is_empty() || restored_from.is_some() {
        let mut sealed = after.clone();
        st.sealer.seal(&mut sealed);
        let doc = sealed.to_string();
        let who = source(st);
        let id = st
            .store
            .settings_change(SettingsChange { doc: &doc, source: who, changed: &changed, restored_from })
            .await?;
        st.pipeline.node.saw_settings(Some(doc.clone()));
        st.pipeline.follow_crm(&guard.crm, &s.crm).await.map_err(Problem::internal)?;
        **guard = Arc::new(s.clone());
        tracing::info!(source = who, history_id = id, restored_from, changed = %changed.join(", "), "Settings changed");
        history_id = Some(id);
    }
    Ok(SettingsOut { settings: s.redacted(), warnings, changed, history_id })
}

/// `GET /v1/settings`: the whole document.
#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    responses((status = 200, description = "The settings document (secrets redacted)", body = Settings)))]
pub async fn get_settings(State(st): State<AppState>) -> Json<Settings> {
    Json(st.pipeline.settings().await.redacted())
}

/// `PUT /v1/settings`: replaces the document (missing members take their defaults).
#[utoipa::path(put, path = "/v1/settings", tag = "settings",
    request_body(content = Settings, description = "The whole document; missing members take their defaults"),
    responses((status = 200, description = "Saved, with warnings and the changed paths", body = SettingsOut),
              (status = 422, description = "Every error at once; nothing saved")))]
pub async fn put_settings(
    State(st): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<SettingsOut>> {
    let raw = body(raw, st.max_body_bytes)?;
    let v = json_body(&raw)?;
    let mut guard = st.pipeline.settings.write().await;
    let saved = guard.clone();
    let (s, warnings) = check(v, Some(&saved))?;
    Ok(Json(save(&st, &mut guard, s, warnings, None).await?))
}

/// `PATCH /v1/settings`: a JSON merge patch (RFC 7396) applied to the saved document.
#[utoipa::path(patch, path = "/v1/settings", tag = "settings",
    request_body(content(
        (Settings = "application/merge-patch+json"),
        (Settings = "application/json"),
    ), description = "Only the members to change: objects merge member by member, null puts a member back to its default, lists and values replace"),
    responses((status = 200, description = "Saved: the whole document, warnings and the changed paths", body = SettingsOut),
              (status = 415, description = "Not a JSON merge patch"),
              (status = 422, description = "Every error of the patched document at once; nothing saved")))]
pub async fn patch_settings(
    State(st): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<SettingsOut>> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if mime != "application/merge-patch+json" && mime != "application/json" {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("{ct:?} is not accepted: send a JSON merge patch as application/merge-patch+json"),
        ));
    }
    let raw = body(raw, st.max_body_bytes)?;
    let patch = json_body(&raw)?;
    if !patch.is_object() {
        return Err(Problem::fields(
            REFUSED,
            &[super::input::field("", "a settings patch must be a JSON object of the members to change")],
        ));
    }
    let mut guard = st.pipeline.settings.write().await;
    let saved = guard.clone();
    let mut doc = serde_json::to_value(&*saved).map_err(Problem::internal)?;
    merge_patch(&mut doc, &patch);
    let (s, warnings) = check(doc, Some(&saved))?;
    Ok(Json(save(&st, &mut guard, s, warnings, None).await?))
}

/// Query of `GET /v1/settings/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// At most this many (default 20, at most 500).
    pub limit: Option<u32>,
}

/// One saved version of the settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsVersionOut {
    /// History id (for the restore).
    pub id: i64,
    /// When it was saved.
    pub at: DateTime<Utc>,
    /// Who saved it: `token` or `loopback`.
    pub source: String,
    /// The dotted paths whose values changed.
    pub changed: Vec<String>,
    /// The version it restored, when it was a restore.
    pub restored_from: Option<i64>,
    /// The whole document as it was after the change (secrets redacted).
    pub settings: Settings,
}

/// The settings changes, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsHistoryOut {
    /// The changes.
    pub changes: Vec<SettingsVersionOut>,
}

fn version_out(v: casebridge_store::SettingsVersion) -> SettingsVersionOut {
    let (settings, _) = read_settings(serde_json::from_str(&v.doc).unwrap_or(Value::Null));
    SettingsVersionOut {
        id: v.id,
        at: v.at,
        source: v.source,
        changed: v.changed,
        restored_from: v.restored_from,
        settings: settings.redacted(),
    }
}

/// `GET /v1/settings/history?limit=`: the settings changes, newest first.
#[utoipa::path(get, path = "/v1/settings/history", tag = "settings",
    params(("limit" = Option<u32>, Query, description = "At most this many (default 20, at most 500)")),
    responses((status = 200, description = "The changes, newest first", body = SettingsHistoryOut)))]
pub async fn settings_history(
    State(st): State<AppState>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<SettingsHistoryOut>> {
    let rows = st.store.settings_history(q.limit.unwrap_or(20).clamp(1, 500)).await?;
    Ok(Json(SettingsHistoryOut { changes: rows.into_iter().map(version_out).collect() }))
}

/// `POST /v1/settings/history/{id}/restore`: saves that version again, as a new change.
#[utoipa::path(post, path = "/v1/settings/history/{id}/restore", tag = "settings",
    params(("id" = i64, Path, description = "History id")),
    responses((status = 200, description = "Restored: the whole document, warnings and the changed paths", body = SettingsOut),
              (status = 404, description = "No such version"),
              (status = 422, description = "The version is no longer valid (every error); nothing saved")))]
pub async fn restore_settings(State(st): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<SettingsOut>> {
    let Some(v) = st.store.settings_version(id).await? else {
        return Err(Problem::not_found(format!("no settings version {id}; see GET /v1/settings/history")));
    };
    let mut doc: Value = serde_json::from_str(&v.doc).map_err(Problem::internal)?;
    st.sealer.open(&mut doc).map_err(|e| Problem::conflict(format!("version {id} cannot be restored: {e}")))?;
    let mut guard = st.pipeline.settings.write().await;
    let (s, warnings) = check(doc, None)?;
    Ok(Json(save(&st, &mut guard, s, warnings, Some(id)).await?))
}
