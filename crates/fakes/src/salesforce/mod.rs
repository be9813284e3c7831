//! A stateful fake of a Salesforce org's REST API, as casebridge's connector uses it: the
//! OAuth 2.0 client-credentials token endpoint (tokens that expire), sObjects, SOQL, SOSL,
//! composite, Tooling custom fields, `Sforce-Limit-Info` on every answer and 403
//! `REQUEST_LIMIT_EXCEEDED` past the daily allocation, errors as Salesforce's JSON arrays.
//!
//! Its own control routes (served next to the vendor's, so counted in `/__fake/stats`):
//! - `GET|POST /__fake/salesforce/config` `{daily_limit, api_usage, person_accounts,
//!   tooling_allowed, token_ttl_s, page_size}` (POST changes the members it names);
//! - `POST /__fake/salesforce/expire-tokens`: every issued token answers 401 from now on;
//! - `POST /__fake/salesforce/seed/{type}` `{fields}`: stores a record as given (derived fields
//!   computed), to set up people, closed cases, duplicates → 201 `{id}`.

mod dispatch;
mod multipart;
mod org;
mod schema;
mod soql;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use crate::control::Fake;
use dispatch::{Answer, Api, Call, param};
use org::{OrgConfig, SfError};

/// The client id the fake accepts.
pub const CLIENT_ID: &str = "casebridge-test";
/// The client secret the fake accepts.
pub const CLIENT_SECRET: &str = "fake-secret";

struct State_ {
    api: Api,
    /// Issued tokens and when each expires.
    tokens: BTreeMap<String, Option<Instant>>,
    token_seq: u64,
}

/// The Salesforce fake.
pub struct SalesforceFake {
    state: Mutex<State_>,
}

impl SalesforceFake {
    /// A fresh org.
    pub fn new() -> SalesforceFake {
        SalesforceFake { state: Mutex::new(State_ { api: Api::default(), tokens: BTreeMap::new(), token_seq: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for SalesforceFake {
    fn default() -> Self {
        SalesforceFake::new()
    }
}

/// Makes a fresh Salesforce fake (for the registry of fakes).
pub fn make() -> Arc<dyn Fake> {
    Arc::new(SalesforceFake::new())
}

fn limit_info(c: &OrgConfig) -> HeaderValue {
    HeaderValue::from_str(&format!("api-usage={}/{}", c.api_usage, c.daily_limit))
        .unwrap_or(HeaderValue::from_static("api-usage=0/0"))
}

fn respond(answer: Answer, limit: HeaderValue) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match answer.body {
        Some(b) => (status, [(header::CONTENT_TYPE, "application/json;charset=UTF-8")], b.to_string()).into_response(),
        None => status.into_response(),
    };
    resp.headers_mut().insert("sforce-limit-info", limit);
    resp
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("OAuth ")).map(|t| t.trim().to_string())
}

async fn data(
    State(f): State<Arc<SalesforceFake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = f.lock();
    let now = Instant::now();
    let valid = bearer(&headers).and_then(|t| s.tokens.get(&t).copied()).is_some_and(|exp| exp.is_none_or(|e| e > now));
    let limit = limit_info(&s.api.org.config);
    if !valid {
        let e = SfError::new(401, "INVALID_SESSION_ID", "Session expired or invalid");
        return respond(e.into(), limit);
    }
    let c = &mut s.api.org.config;
    if c.api_usage >= c.daily_limit {
        let e = SfError::new(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
        return respond(e.into(), limit);
    }
    c.api_usage += 1;
    let limit = limit_info(c);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let call = Call {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        content_type: &content_type,
        body: &body,
    };
    let answer = s.api.handle(&call);
    respond(answer, limit)
}

async fn token(State(f): State<Arc<SalesforceFake>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = String::from_utf8_lossy(&body).to_string();
    let oauth_error = |error: &str, description: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error, "error_description": description}))).into_response()
    };
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return oauth_error("invalid_request", "the body must be application/x-www-form-urlencoded");
    }
    if param(Some(&form), "grant_type").as_deref() != Some("client_credentials") {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    let id = param(Some(&form), "client_id");
    let secret = param(Some(&form), "client_secret");
    if id.as_deref() != Some(CLIENT_ID) || secret.as_deref() != Some(CLIENT_SECRET) {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let mut s = f.lock();
    s.token_seq += 1;
    let token = format!("00DFK0000000001!fake.token.{}", s.token_seq);
    let expiry = s.api.org.config.token_ttl_s.map(|t| Instant::now() + Duration::from_secs(t));
    s.tokens.insert(token.clone(), expiry);
    let run_as = s.api.org.run_as.clone();
    let issued = chrono::Utc::now().timestamp_millis().to_string();
    axum::Json(json!({"access_token": token, "instance_url": format!("http://{host}"),
        "id": format!("http://{host}/id/00DFK0000000001/{run_as}"), "token_type": "Bearer",
        "issued_at": issued, "signature": "ZmFrZQ=="}))
    .into_response()
}

async fn get_config(State(f): State<Arc<SalesforceFake>>) -> Response {
    axum::Json(f.lock().api.org.config.clone()).into_response()
}

async fn set_config(State(f): State<Arc<SalesforceFake>>, axum::Json(patch): axum::Json<Value>) -> Response {
    let mut s = f.lock();
    let mut current = serde_json::to_value(&s.api.org.config).unwrap_or_default();
    if let (Some(c), Some(p)) = (current.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            c.insert(k.clone(), v.clone());
        }
    }
    match serde_json::from_value::<OrgConfig>(current) {
        Ok(c) => {
            s.api.org.config = c.clone();
            axum::Json(c).into_response()
        }
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("bad config: {e}")).into_response(),
    }
}

async fn expire_tokens(State(f): State<Arc<SalesforceFake>>) -> StatusCode {
    f.lock().tokens.clear();
    StatusCode::NO_CONTENT
}

async fn seed(
    State(f): State<Arc<SalesforceFake>>,
    Path(obj): Path<String>,
    axum::Json(v): axum::Json<Value>,
) -> Response {
    let mut s = f.lock();
    if !s.api.org.knows(&obj) || !v.is_object() {
        return (StatusCode::NOT_FOUND, format!("this fake cannot seed {obj:?} from that body")).into_response();
    }
    let id = s.api.org.insert_raw(&obj, v);
    (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
}

impl Fake for SalesforceFake {
    fn kind(&self) -> &'static str {
        "salesforce"
    }

    fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/services/oauth2/token", post(token))
            .route("/services/data/{version}/query", any(data))
            .route("/services/data/{version}/query/{cursor}", any(data))
            .route("/services/data/{version}/search", any(data))
            .route("/services/data/{version}/limits", any(data))
            .route("/services/data/{version}/composite", any(data))
            .route("/services/data/{version}/sobjects/{object}", any(data))
            .route("/services/data/{version}/sobjects/{object}/describe", any(data))
            .route("/services/data/{version}/sobjects/{object}/{id}", any(data))
            .route("/services/data/{version}/sobjects/{object}/{field}/{value}", any(data))
            .route("/services/data/{version}/tooling/sobjects/{object}", any(data))
            .route("/__fake/salesforce/config", get(get_config).post(set_config))
            .route("/__fake/salesforce/expire-tokens", post(expire_tokens))
            .route("/__fake/salesforce/seed/{object}", post(seed))
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(self)
    }

    fn objects(&self, object_type: &str) -> Option<Value> {
        let s = self.lock();
        let org = &s.api.org;
        (org.knows(object_type) || org.objects.contains_key(object_type))
            .then(|| Value::Array(org.all(object_type).iter().cloned().map(Value::Object).collect()))
    }

    fn fault_response(&self, status: StatusCode, retry_after_s: Option<u64>) -> Response {
        let (code, message) = match status.as_u16() {
            401 => ("INVALID_SESSION_ID", "Session expired or invalid"),
            403 => ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
            404 => ("NOT_FOUND", "The requested resource does not exist"),
            400 => ("INVALID_FIELD", "injected failure"),
            503 => ("SERVER_UNAVAILABLE", "Server temporarily unavailable, please try again later."),
            _ => (
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact support: 0-0 (fake).",
            ),
        };
        let limit = limit_info(&self.lock().api.org.config);
        let mut resp = respond(
            Answer { status: status.as_u16(), body: Some(SfError::new(status.as_u16(), code, message).body()) },
            limit,
        );
        if let Some(s) = retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
