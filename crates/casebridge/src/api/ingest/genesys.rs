//! Genesys Cloud: conversation detail events from its EventBridge integration, posted by an
//! EventBridge API destination.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use casebridge_rules::native::{Source, genesys};

use super::common::{IngestOut, IngestQuery, accept, basic_password, check_secret, enabled, items, json_of, read_all};
use crate::api::input::body;
use crate::api::state::AppState;
use crate::error::{ApiResult, Problem};

const SOURCE: Source = Source::Genesys;

/// Genesys Cloud's endpoint.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ingest/genesys", post(conversation_events))
}

/// Conversation detail events: one EventBridge event or an array.
#[utoipa::path(post, path = "/v1/ingest/genesys", tag = "ingest",
    params(("X-Api-Key" = Option<String>, Header, description = "ingest.genesys.api_key (or Basic auth with it as the password, or the API bearer token)"),
        ("wait" = Option<f64>, Query, description = "Seconds (≤ 30) to wait until the work is settled")),
    request_body(description = "An EventBridge event of the Genesys Cloud integration (detail.topicName, detail.eventBody) or an array of them", content = super::schemas::EventBridgeIn, content_type = "application/json"),
    responses((status = 200, description = "Stored (or of no interest: counted)", body = IngestOut),
        (status = 401, description = "Missing or wrong key; nothing stored", body = Problem),
        (status = 404, description = "The source is not enabled", body = Problem),
        (status = 422, description = "Not Genesys Cloud events; nothing stored", body = Problem)))]
pub async fn conversation_events(
    State(st): State<AppState>,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestOut>> {
    let settings = st.pipeline.settings().await;
    enabled(&settings, SOURCE)?;
    let cfg = &settings.ingest.genesys;
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let given = [key, basic_password(&headers)];
    check_secret(&st, &headers, SOURCE, "genesys.api_key", cfg.api_key.as_deref(), &given, "X-Api-Key")?;
    let raw = body(raw, st.max_body_bytes)?;
    let values = items(json_of(SOURCE, &raw)?);
    let readings = read_all(SOURCE, &values, |v| genesys::read(v, &cfg.mapping))?;
    Ok(Json(accept(&st, SOURCE, readings, q.wait).await?))
}
