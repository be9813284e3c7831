//! Amazon Connect: contact events from an EventBridge API destination, chat messages from an
//! SNS subscription, contact records from a Kinesis Data Firehose HTTP endpoint.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use casebridge_rules::native::{Source, amazon_connect};
use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::common::{
    IngestOut, IngestQuery, accept, basic_password, bearer_ok, check_secret, enabled, items, json_of, malformed,
    read_all, refused,
};
use crate::api::input::body;
use crate::api::state::AppState;
use crate::error::{ApiResult, Problem};

const SOURCE: Source = Source::AmazonConnect;

/// Amazon Connect's endpoints.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ingest/amazon-connect", post(contact_events))
        .route("/v1/ingest/amazon-connect/sns", post(sns_messages))
        .route("/v1/ingest/amazon-connect/firehose", post(contact_records))
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Contact events: one EventBridge event or an array (api.md "Native event formats").
#[utoipa::path(post, path = "/v1/ingest/amazon-connect", tag = "ingest",
    params(("X-Api-Key" = Option<String>, Header, description = "ingest.amazon_connect.api_key (or Basic auth with it as the password, or the API bearer token)"),
        ("wait" = Option<f64>, Query, description = "Seconds (≤ 30) to wait until the work is settled")),
    request_body(description = "An EventBridge event (detail-type \"Amazon Connect Contact Event\") or an array of them", content = super::schemas::EventBridgeIn, content_type = "application/json"),
    responses((status = 200, description = "Stored (or of no interest: counted)", body = IngestOut),
        (status = 401, description = "Missing or wrong key; nothing stored", body = Problem),
        (status = 404, description = "The source is not enabled", body = Problem),
        (status = 422, description = "Not Amazon Connect contact events; nothing stored", body = Problem)))]
pub async fn contact_events(
    State(st): State<AppState>,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestOut>> {
    let settings = st.pipeline.settings().await;
    enabled(&settings, SOURCE)?;
    let cfg = &settings.ingest.amazon_connect;
    let given = [header(&headers, "x-api-key"), basic_password(&headers)];
    check_secret(&st, &headers, SOURCE, "amazon_connect.api_key", cfg.api_key.as_deref(), &given, "X-Api-Key")?;
    let raw = body(raw, st.max_body_bytes)?;
    let values = items(json_of(SOURCE, &raw)?);
    let readings = read_all(SOURCE, &values, |v| amazon_connect::read_contact_event(v, &cfg.mapping))?;
    Ok(Json(accept(&st, SOURCE, readings, q.wait).await?))
}

/// Chat messages streamed to an SNS topic: the HTTPS subscription's messages.
#[utoipa::path(post, path = "/v1/ingest/amazon-connect/sns", tag = "ingest",
    params(("wait" = Option<f64>, Query, description = "Seconds (≤ 30) to wait until the work is settled")),
    request_body(description = "An SNS message (Notification, SubscriptionConfirmation or UnsubscribeConfirmation) as SNS posts it (JSON sent as text/plain)", content = super::schemas::SnsMessage, content_type = "text/plain"),
    responses((status = 200, description = "Stored, confirmed, or of no interest", body = IngestOut),
        (status = 401, description = "Unsigned, forged or replayed message, or a topic not listed; nothing stored", body = Problem),
        (status = 404, description = "The source is not enabled", body = Problem),
        (status = 422, description = "Not an SNS message; nothing stored", body = Problem),
        (status = 502, description = "The subscription could not be confirmed", body = Problem)))]
pub async fn sns_messages(
    State(st): State<AppState>,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestOut>> {
    let settings = st.pipeline.settings().await;
    enabled(&settings, SOURCE)?;
    let cfg = &settings.ingest.amazon_connect;
    let raw = body(raw, st.max_body_bytes)?;
    let msg = json_of(SOURCE, &raw)?;
    let kind = msg.get("Type").and_then(Value::as_str).unwrap_or_default().to_string();
    if !bearer_ok(&st, &headers)
        && let Err(why) = st.native.sns.verify(&msg, Utc::now()).await
    {
        return Err(refused(SOURCE, format!("the SNS message is refused: {why}")));
    }
    let topic = msg.get("TopicArn").and_then(Value::as_str).unwrap_or_default();
    if !cfg.sns_topic_arns.is_empty() && !cfg.sns_topic_arns.iter().any(|t| t == topic) {
        return Err(refused(
            SOURCE,
            format!("topic {topic:?} is not in ingest.amazon_connect.sns_topic_arns; add it to accept its messages"),
        ));
    }
    match kind.as_str() {
        "SubscriptionConfirmation" => {
            let url = msg.get("SubscribeURL").and_then(Value::as_str).unwrap_or_default();
            st.native.sns.confirm(url).await.map_err(|why| {
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "subscription-not-confirmed",
                    format!("{why}; SNS sends the confirmation again"),
                )
            })?;
            tracing::info!(topic, "SNS subscription confirmed.");
            Ok(Json(IngestOut::default()))
        }
        "UnsubscribeConfirmation" => {
            tracing::info!(topic, "SNS subscription ended by the topic's owner.");
            Ok(Json(IngestOut::default()))
        }
        _ => {
            let inner = msg.get("Message").and_then(Value::as_str).and_then(|m| serde_json::from_str::<Value>(m).ok());
            let Some(inner) = inner else {
                return Err(malformed(
                    SOURCE,
                    "the notification's Message is not a JSON chat message; nothing was stored",
                    vec![
                        json!({"field": "Message", "message": "must hold a JSON object (a chat message of Amazon Connect)"}),
                    ],
                ));
            };
            let readings = read_all(SOURCE, &[inner], amazon_connect::read_chat_message)?;
            Ok(Json(accept(&st, SOURCE, readings, q.wait).await?))
        }
    }
}

/// What Firehose expects back.
#[derive(Debug, Serialize, ToSchema)]
pub struct FirehoseOut {
    /// The request's id, echoed.
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// Milliseconds since 1970.
    pub timestamp: i64,
}

fn firehose_error(p: Problem, request_id: &str) -> Response {
    let message = p.detail.clone();
    p.with("requestId", request_id.into())
        .with("timestamp", Utc::now().timestamp_millis().into())
        .with("errorMessage", message.into())
        .into_response()
}

/// Contact records delivered by Kinesis Data Firehose (HTTP endpoint destination).
#[utoipa::path(post, path = "/v1/ingest/amazon-connect/firehose", tag = "ingest",
    params(("X-Amz-Firehose-Access-Key" = Option<String>, Header, description = "ingest.amazon_connect.api_key (or the API bearer token)"),
        ("wait" = Option<f64>, Query, description = "Seconds (≤ 30) to wait until the work is settled")),
    request_body(description = "{requestId, timestamp, records: [{data: base64 contact record}]}", content = super::schemas::FirehoseIn, content_type = "application/json"),
    responses((status = 200, description = "Stored; the request id echoed", body = FirehoseOut),
        (status = 401, description = "Missing or wrong access key; nothing stored", body = Problem),
        (status = 404, description = "The source is not enabled", body = Problem),
        (status = 422, description = "Not a Firehose delivery of contact records; nothing stored", body = Problem)))]
pub async fn contact_records(
    State(st): State<AppState>,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = header(&headers, "x-amz-firehose-request-id").unwrap_or_default();
    match firehose(&st, q, &headers, raw).await {
        Ok(id) => Json(FirehoseOut { request_id: id, timestamp: Utc::now().timestamp_millis() }).into_response(),
        Err(p) => firehose_error(p, &request_id),
    }
}

async fn firehose(
    st: &AppState,
    q: IngestQuery,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<String, Problem> {
    let settings = st.pipeline.settings().await;
    enabled(&settings, SOURCE)?;
    let cfg = &settings.ingest.amazon_connect;
    let given = [header(headers, "x-amz-firehose-access-key")];
    check_secret(
        st,
        headers,
        SOURCE,
        "amazon_connect.api_key",
        cfg.api_key.as_deref(),
        &given,
        "X-Amz-Firehose-Access-Key",
    )?;
    let raw = body(raw, st.max_body_bytes)?;
    let v = json_of(SOURCE, &raw)?;
    let request_id = v.get("requestId").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(records) = v.get("records").and_then(Value::as_array) else {
        return Err(malformed(
            SOURCE,
            "not a Firehose delivery; nothing was stored",
            vec![json!({"field": "records", "message": "is required (a list of {data: base64})"})],
        ));
    };
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let decoded = r
            .get("data")
            .and_then(Value::as_str)
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d.trim()).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        match decoded {
            Some(v) => values.push(v),
            None => errors.push(json!({"index": i, "field": format!("records[{i}].data"),
                "message": "must be a base64-encoded JSON contact record (turn off Firehose's record compression)"})),
        }
    }
    if !errors.is_empty() {
        return Err(malformed(SOURCE, "some records are not contact records; nothing was stored", errors));
    }
    let readings = read_all(SOURCE, &values, |v| amazon_connect::read_contact_record(v, &cfg.mapping))?;
    accept(st, SOURCE, readings, q.wait).await?;
    Ok(request_id)
}
