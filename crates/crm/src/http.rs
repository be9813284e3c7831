//! What every connector that speaks HTTP shares: one client (rustls, timeouts), the reading
//! of an answer's status into a [`CrmError`], `Retry-After` and vendors' rate-limit headers,
//! authentication headers, and request counting for the metrics.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::CrmError;
use crate::pacing::Pacer;

/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a whole request, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client connectors and webhooks share (cheap to clone: one connection pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    /// Paces CRM requests together with the other nodes (see [`crate::pacing::Cluster`]).
    cluster: Option<crate::pacing::Cluster>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("shared", &self.cluster.is_some()).finish()
    }
}

impl HttpClient {
    /// A client with casebridge's user agent and timeouts.
    pub fn new() -> Result<HttpClient, CrmError> {
        HttpClient::with_timeout(REQUEST_TIMEOUT)
    }

    /// A client whose requests (answer included) time out after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Result<HttpClient, CrmError> {
        let inner = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .user_agent(concat!("casebridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CrmError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpClient { inner, cluster: None })
    }

    /// This client, pacing its CRM requests together with other nodes.
    pub fn with_cluster(mut self, cluster: Option<crate::pacing::Cluster>) -> HttpClient {
        self.cluster = cluster;
        self
    }

    /// What is shared with other nodes, when several may run.
    pub fn cluster(&self) -> Option<&crate::pacing::Cluster> {
        self.cluster.as_ref()
    }

    /// The underlying client, to build a request.
    pub fn client(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Sends a request and counts it under `target` (a connector kind or `dial_webhook`);
    /// a failure to get any answer is transient.
    pub async fn send(
        &self,
        target: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CrmError> {
        let started = std::time::Instant::now();
        let result = req.send().await;
        let outcome = match &result {
            Ok(r) => status_class(r.status()),
            Err(_) => "unreachable",
        };
        metrics::counter!("casebridge_http_requests_total", "target" => target, "outcome" => outcome).increment(1);
        metrics::histogram!("casebridge_http_request_seconds", "target" => target)
            .record(started.elapsed().as_secs_f64());
        result.map_err(|e| CrmError::Transient {
            message: format!("{target} unreachable: {}", error_chain(&e)),
            retry_after: None,
        })
    }
}

tokio::task_local! {
    static REQUEST_LOG: RefCell<Vec<String>>;
}

/// Runs `f`, collecting one line per CRM request it makes (method, path, status, time: no
/// query, body or header, so no secret or personal data), for the session's timeline.
pub async fn logged<F: Future>(f: F) -> (F::Output, Vec<String>) {
    REQUEST_LOG
        .scope(RefCell::new(Vec::new()), async {
            let out = f.await;
            let lines = REQUEST_LOG.try_with(|l| l.take()).unwrap_or_default();
            (out, lines)
        })
        .await
}

/// A connector's way to its CRM: the shared client, the CRM's [`Pacer`], metrics and the
/// request log.
#[derive(Clone, Debug)]
pub struct CrmHttp {
    http: HttpClient,
    target: &'static str,
    pacer: Arc<Pacer>,
}

impl CrmHttp {
    /// Requests to `target` (the connector kind) through `http`, paced by `pacer`.
    pub fn new(http: HttpClient, target: &'static str, pacer: Arc<Pacer>) -> CrmHttp {
        if let Some(c) = &http.cluster {
            pacer.share(c.ledger.clone(), target);
        }
        CrmHttp { http, target, pacer }
    }

    /// The underlying client, to build a request.
    pub fn client(&self) -> &reqwest::Client {
        self.http.client()
    }

    /// The CRM's pacer (to hold requests on a vendor's own limit signal).
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Sends a request once the pacer admits it and logs it; a 429 or 503 that says how long
    /// to wait holds every further request to this CRM for that long. Failing to get any
    /// answer is transient.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, CrmError> {
        let req = req.build().map_err(|e| CrmError::Permanent(format!("cannot build the request: {e}")))?;
        let line = format!("{} {}", req.method(), req.url().path());
        self.pacer.admit().await;
        let started = std::time::Instant::now();
        let result = self.http.client().execute(req).await;
        let elapsed = started.elapsed();
        let crm = self.target;
        let outcome = match &result {
            Ok(r) => status_class(r.status()),
            Err(e) if e.is_timeout() => "timeout",
            Err(_) => "unreachable",
        };
        metrics::counter!("casebridge_crm_requests_total", "crm" => crm, "outcome" => outcome).increment(1);
        metrics::histogram!("casebridge_crm_request_seconds", "crm" => crm).record(elapsed.as_secs_f64());
        let answer = match &result {
            Ok(r) => r.status().as_u16().to_string(),
            Err(_) => outcome.to_string(),
        };
        let _ =
            REQUEST_LOG.try_with(|l| l.borrow_mut().push(format!("{line} → {answer} ({} ms)", elapsed.as_millis())));
        let resp = result.map_err(|e| CrmError::Transient {
            message: format!("{crm} {}: {}", if e.is_timeout() { "timed out" } else { "unreachable" }, error_chain(&e)),
            retry_after: None,
        })?;
        if matches!(resp.status().as_u16(), 429 | 503) {
            metrics::counter!("casebridge_crm_throttled_total", "crm" => crm).increment(1);
            if let Some(wait) = wait_hint(resp.headers()) {
                self.pacer.hold_for(wait).await;
            }
        }
        Ok(resp)
    }

    /// Reads a success answer as JSON, or the failure as a [`CrmError`] (see [`classify`]).
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
        what: &str,
    ) -> Result<T, CrmError> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| CrmError::Transient {
            message: format!("{what}: answer cut short: {e}"),
            retry_after: None,
        })?;
        if !status.is_success() {
            return Err(classify(status, &headers, what, &body));
        }
        let body = if body.trim().is_empty() { "null" } else { body.as_str() };
        serde_json::from_str(body)
            .map_err(|e| CrmError::Transient { message: format!("{what}: unreadable answer: {e}"), retry_after: None })
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        429 => "429",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Reads a non-success answer as a [`CrmError`]: 408, 429 and 5xx are worth retrying (with
/// the server's wait when it gives one), 404 and 410 mean the object is gone, other 4xx will
/// fail the same way again. `what` names the call for the message.
pub fn classify(status: StatusCode, headers: &HeaderMap, what: &str, body: &str) -> CrmError {
    let detail = body.trim();
    let message = if detail.is_empty() {
        format!("{what} answered {status}")
    } else {
        format!("{what} answered {status}: {}", truncate(detail, 300))
    };
    match status.as_u16() {
        408 | 429 | 500..=599 => CrmError::Transient { message, retry_after: wait_hint(headers) },
        404 | 410 => CrmError::Gone(message),
        _ => CrmError::Permanent(message),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// How long the server asks to wait: `Retry-After` (seconds or an HTTP date), else the
/// rate-limit reset headers vendors send (`X-RateLimit-Reset` as seconds to wait or as a Unix
/// time, `RateLimit-Reset` in seconds).
pub fn wait_hint(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = header("retry-after") {
        return retry_after(v, chrono::Utc::now());
    }
    if let Some(v) = header("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(v));
    }
    let v = header("x-ratelimit-reset")?.parse::<u64>().ok()?;
    // A large value is a Unix time; a small one is seconds to wait.
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    Some(Duration::from_secs(if v > 1_000_000_000 { v.saturating_sub(now) } else { v }))
}

/// Parses a `Retry-After` value (delta seconds or an HTTP date) against `now`.
pub fn retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or_default())
}

/// `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Authorization: Basic <base64(user:password)>`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_are_classified_for_the_outbox() {
        let h = HeaderMap::new();
        assert!(matches!(classify(StatusCode::SERVICE_UNAVAILABLE, &h, "x", ""), CrmError::Transient { .. }));
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS, &h, "x", ""), CrmError::Transient { .. }));
        assert!(matches!(classify(StatusCode::REQUEST_TIMEOUT, &h, "x", ""), CrmError::Transient { .. }));
        assert!(matches!(classify(StatusCode::NOT_FOUND, &h, "x", ""), CrmError::Gone(_)));
        assert!(
            matches!(classify(StatusCode::BAD_REQUEST, &h, "x", "bad field"), CrmError::Permanent(m) if m.contains("bad field"))
        );
    }

    #[test]
    fn waits_are_read_from_the_headers() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").map(|t| t.to_utc()).ok();
        let now = now.expect("valid time");
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Tue, 01 Dec 2026 10:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("soon", now), None);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("12"));
        assert_eq!(wait_hint(&h), Some(Duration::from_secs(12)));
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(wait_hint(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn auth_headers() {
        assert_eq!(basic("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(bearer("t"), "Bearer t");
    }
}
