//! Twilio: TaskRouter event callbacks (form-encoded, `X-Twilio-Signature`) and Event Streams
//! webhook sinks (CloudEvents JSON, one or a batch).
//!
//! The signature is Base64(HMAC-SHA1(auth token, URL + every form parameter's name and value,
//! sorted by name)), over the URL Twilio called: `public_base_url` + path and query when set,
//! else the URL of the request as received. For a JSON body Twilio signs the URL alone, which
//! carries `bodySHA256`, the body's SHA-256 in hex.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use casebridge_rules::native::{Source, twilio};
use casebridge_rules::settings::ingest::TwilioIngest;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::common::{
    IngestOut, IngestQuery, accept, basic_password, bearer_ok, enabled, items, json_of, read_all, refused, same_secret,
};
use crate::api::input::body;
use crate::api::state::AppState;
use crate::error::{ApiResult, Problem};

const SOURCE: Source = Source::Twilio;

/// Twilio's endpoints.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ingest/twilio/taskrouter", post(taskrouter))
        .route("/v1/ingest/twilio/event-streams", post(event_streams))
}

/// The URL Twilio called.
fn called_url(cfg: &TwilioIngest, headers: &HeaderMap, uri: &Uri) -> String {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    match &cfg.public_base_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
            format!("{scheme}://{host}{path}")
        }
    }
}

/// Base64(HMAC-SHA1(token, url + sorted name/value pairs)).
pub fn signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(token.as_bytes()) else { return String::new() };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks the signature (or the bearer token, or Basic auth with the auth token).
fn check(
    st: &AppState,
    cfg: &TwilioIngest,
    headers: &HeaderMap,
    url: &str,
    params: &[(String, String)],
) -> Result<(), Problem> {
    if bearer_ok(st, headers) {
        return Ok(());
    }
    let Some(token) = cfg.auth_token.as_deref() else {
        return if st.token.is_none() {
            Ok(())
        } else {
            Err(refused(
                SOURCE,
                "ingest.twilio.auth_token is not set: send the API bearer token, or set the auth token",
            ))
        };
    };
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok());
    if let Some(given) = given
        && same_secret(given, &signature(token, url, params))
    {
        return Ok(());
    }
    if basic_password(headers).is_some_and(|p| same_secret(&p, token)) {
        return Ok(());
    }
    Err(refused(
        SOURCE,
        format!(
            "missing or wrong X-Twilio-Signature for {url}: it must be signed with ingest.twilio.auth_token over this URL{}",
            if cfg.public_base_url.is_none() {
                " (set ingest.twilio.public_base_url when a proxy changes the address)"
            } else {
                ""
            }
        ),
    ))
}

/// TaskRouter event callbacks (the workspace's `EventCallbackUrl`).
#[utoipa::path(post, path = "/v1/ingest/twilio/taskrouter", tag = "ingest",
    params(("X-Twilio-Signature" = Option<String>, Header, description = "Twilio's signature with ingest.twilio.auth_token (or the API bearer token)"),
        ("wait" = Option<f64>, Query, description = "Seconds (≤ 30) to wait until the work is settled")),
    request_body(description = "TaskRouter's event fields (EventType, TaskSid, TaskAttributes…)", content = super::schemas::TaskRouterEvent, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Stored (or of no interest: counted)", body = IngestOut),
        (status = 401, description = "Missing or wrong signature; nothing stored", body = Problem),
        (status = 404, description = "The source is not enabled", body = Problem),
        (status = 422, description = "Not a TaskRouter event; nothing stored", body = Problem)))]
pub async fn taskrouter(
    State(st): State<AppState>,
    Query(q): Query<IngestQuery>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestOut>> {
    let settings = st.pipeline.settings().await;
    enabled(&settings, SOURCE)?;
    let cfg = &settings.ingest.twilio;
    let raw = body(raw, st.max_body_bytes)?;
    let params: Vec<(String, String)> = form_urlencoded::parse(&raw).into_owned().collect();
    check(&st, cfg, &headers, &called_url(cfg, &headers, &uri), &params)?;
    let mut fields = Map::new();
    for (k, v) in &params {
        fields.insert(k.clone(), Value::String(v.clone()));
    }
    let readings = read_all(SOURCE, &[Value::Object(fields)], |v| twilio::read_task_event(v, &cfg.mapping, None))?;
    Ok(Json(accept(&st, SOURCE, readings, q.wait).await?))
}

/// Event Streams webhook sink: CloudEvents, one or a batch.
#[utoipa::path(post, path = "/v1/ingest/twilio/event-streams", tag = "ingest",
    params(("X-Twilio-Signature" = Option<String>, Header, description = "Twilio's signature over the URL with its bodySHA256 (or Basic auth with the auth token as password, or the API bearer token)"),
        ("wait" = Option<f64>, Query, description = "Seconds (≤ 30) to wait until the work is settled")),
    request_body(description = "A CloudEvent or an array of them", content = super::schemas::CloudEventsIn, content_type = "application/json"),
    responses((status = 200, description = "Stored (or of no interest: counted)", body = IngestOut),
        (status = 401, description = "Missing or wrong signature; nothing stored", body = Problem),
        (status = 404, description = "The source is not enabled", body = Problem),
        (status = 422, description = "Not CloudEvents; nothing stored", body = Problem)))]
pub async fn event_streams(
    State(st): State<AppState>,
    Query(q): Query<IngestQuery>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestOut>> {
    let settings = st.pipeline.settings().await;
    enabled(&settings, SOURCE)?;
    let cfg = &settings.ingest.twilio;
    let raw = body(raw, st.max_body_bytes)?;
    let url = called_url(cfg, &headers, &uri);
    // The signed URL names the body's hash: a body changed after signing does not match it.
    let hash = hex::encode(Sha256::digest(&raw));
    let named = uri.query().and_then(|qs| {
        form_urlencoded::parse(qs.as_bytes()).find(|(k, _)| k == "bodySHA256").map(|(_, v)| v.into_owned())
    });
    let body_ok = named.as_deref().is_none_or(|n| same_secret(n, &hash));
    if !body_ok && !bearer_ok(&st, &headers) {
        return Err(refused(SOURCE, "the body does not match the bodySHA256 the request was signed with"));
    }
    check(&st, cfg, &headers, &url, &[])?;
    let values = items(json_of(SOURCE, &raw)?);
    let readings = read_all(SOURCE, &values, |v| twilio::read_cloud_event(v, &cfg.mapping))?;
    Ok(Json(accept(&st, SOURCE, readings, q.wait).await?))
}
