//! Kustomer's HTTP side: bearer-authenticated JSON requests through [`CrmHttp`] (paced,
//! logged, counted), the `x-ratelimit-*` headers obeyed (a hold until the reset once nothing
//! remains), errors read from both of Kustomer's error shapes, and the object ids casebridge
//! derives from its keys so that a replayed create is refused as a duplicate instead of
//! creating twice.

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

use crate::CrmError;
use crate::http::{CrmHttp, bearer, wait_hint};

use super::config::KustomerConfig;

/// An answer the caller reads itself: 2xx, 400, 404, 409 or 422.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body (JSON, or the text as a string).
    pub body: Value,
}

impl Reply {
    /// Whether the request succeeded.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether Kustomer refused a write because an identifier or id is taken.
    pub fn is_duplicate(&self) -> bool {
        if self.status == 409 {
            return true;
        }
        let text = error_text(&self.body).to_lowercase();
        matches!(self.status, 400 | 422)
            && ["duplicate", "already exists", "unique", "already in use"].iter().any(|w| text.contains(w))
    }

    /// The data of a success, or the failure as a [`CrmError`] (404 is gone).
    pub fn data(self, what: &str) -> Result<Value, CrmError> {
        if self.ok() {
            return Ok(self.body.get("data").cloned().unwrap_or(Value::Null));
        }
        Err(self.error(what))
    }

    /// The failure as a [`CrmError`].
    pub fn error(&self, what: &str) -> CrmError {
        let msg = error_text(&self.body);
        match self.status {
            404 | 410 => CrmError::Gone(format!("Kustomer: {what}: not found ({msg})")),
            s => CrmError::Permanent(format!("Kustomer refused {what} ({s}): {msg}")),
        }
    }
}

/// The message of an error body: JSON:API error objects (`title`, `detail`, `source.pointer`)
/// or `{errors: [{code, message}]}`, else the text.
pub fn error_text(body: &Value) -> String {
    let Some(errors) = body.get("errors").and_then(Value::as_array) else {
        return match body {
            Value::String(s) => s.chars().take(300).collect(),
            Value::Null => "no details".into(),
            other => other.to_string().chars().take(300).collect(),
        };
    };
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let mut s = [field("title"), field("detail"), field("message")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            if s.is_empty() {
                s = field("code");
            }
            if let Some(p) = e.pointer("/source/pointer").and_then(Value::as_str) {
                s.push_str(&format!(" (at {p})"));
            }
            s
        })
        .collect();
    parts.join("; ")
}

/// Percent-encodes a path segment value (`+` and `@` included).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Kustomer object id casebridge gives the object it creates under `key`: the rule time as
/// the leading seconds (ids sort by time in Kustomer) and 8 bytes of a hash of the key. The
/// same key always gives the same id, so a replayed create meets the object it already made.
pub fn object_id(key: &str, at_secs: i64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "casebridge:".bytes().chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}{h:016x}", (at_secs.max(0) as u64) & 0xffff_ffff)
}

/// Kustomer over HTTP.
#[derive(Clone)]
pub struct Api {
    http: CrmHttp,
    config: Arc<KustomerConfig>,
}

impl Api {
    /// A client for the configured org.
    pub fn new(http: CrmHttp, config: Arc<KustomerConfig>) -> Api {
        Api { http, config }
    }

    /// The connection's configuration.
    pub fn config(&self) -> &KustomerConfig {
        &self.config
    }

    /// The raw client, for requests to other hosts (recording downloads, uploads).
    pub fn http(&self) -> &CrmHttp {
        &self.http
    }

    /// Sends a request to `/v1{path}`. Answers a [`Reply`] for 2xx, 400, 404, 409 and 422;
    /// throttling, server errors and timeouts are transient; 401 and 403 are refusals that
    /// say what to fix.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>, what: &str) -> Result<Reply, CrmError> {
        let url = self.config.ext.url(&format!("/v1{path}"));
        let mut req = self
            .http
            .client()
            .request(method, url)
            .header("authorization", bearer(&self.config.api_key))
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.http.send(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if status.as_u16() != 429
            && headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()).map(str::trim) == Some("0")
            && let Some(wait) = wait_hint(&headers)
        {
            // Nothing left in this window: hold every request until it resets.
            self.http.pacer().hold_for(wait).await;
        }
        let text = resp.text().await.map_err(|e| CrmError::Transient {
            message: format!("Kustomer: {what}: answer cut short: {e}"),
            retry_after: None,
        })?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.chars().take(500).collect()))
        };
        let reply = Reply { status: status.as_u16(), body };
        match reply.status {
            200..=299 | 400 | 404 | 409 | 422 => Ok(reply),
            401 => Err(CrmError::Permanent(format!(
                "Kustomer refused the API key ({}) while {what}: put a valid key in crm.credentials.api_key \
                 (Settings > Security > API Keys in Kustomer)",
                error_text(&reply.body)
            ))),
            403 => Err(CrmError::Permanent(format!(
                "the Kustomer API key may not do this ({what}): {}; give the key the roles listed in docs/crm/kustomer.md",
                error_text(&reply.body)
            ))),
            408 | 429 | 500..=599 => Err(CrmError::Transient {
                message: format!("Kustomer: {what} answered {}: {}", reply.status, error_text(&reply.body)),
                retry_after: wait_hint(&headers),
            }),
            _ => Err(reply.error(what)),
        }
    }

    /// `GET`.
    pub async fn get(&self, path: &str, what: &str) -> Result<Reply, CrmError> {
        self.call(Method::GET, path, None, what).await
    }

    /// `POST`.
    pub async fn post(&self, path: &str, body: &Value, what: &str) -> Result<Reply, CrmError> {
        self.call(Method::POST, path, Some(body), what).await
    }

    /// `PATCH`.
    pub async fn patch(&self, path: &str, body: &Value, what: &str) -> Result<Reply, CrmError> {
        self.call(Method::PATCH, path, Some(body), what).await
    }

    /// `PUT`.
    pub async fn put(&self, path: &str, body: &Value, what: &str) -> Result<Reply, CrmError> {
        self.call(Method::PUT, path, Some(body), what).await
    }

    /// Every item of a paged list (following `links.next`), up to `max_pages` pages.
    pub async fn all_pages(&self, path: &str, what: &str, max_pages: usize) -> Result<Vec<Value>, CrmError> {
        let mut out = Vec::new();
        for page in 1..=max_pages {
            let sep = if path.contains('?') { '&' } else { '?' };
            let reply = self.get(&format!("{path}{sep}page={page}&pageSize=100"), what).await?;
            if !reply.ok() {
                return Err(reply.error(what));
            }
            let items = reply.body.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
            let more = reply.body.pointer("/links/next").is_some_and(|n| !n.is_null()) && !items.is_empty();
            out.extend(items);
            if !more {
                break;
            }
        }
        Ok(out)
    }
}

/// An attribute of a JSON:API resource.
pub fn attr<'a>(resource: &'a Value, name: &str) -> &'a Value {
    resource.get("attributes").and_then(|a| a.get(name)).unwrap_or(&Value::Null)
}

/// A resource's id.
pub fn id_of(resource: &Value) -> Option<String> {
    resource.get("id").and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kustomer_ids_are_stable_object_ids() {
        let a = object_id("cb-rec-s1", 1_764_583_200);
        assert_eq!(a, object_id("cb-rec-s1", 1_764_583_200));
        assert_ne!(a, object_id("cb-rec-s2", 1_764_583_200));
        assert_eq!(a.len(), 24);
        assert!(a.starts_with("692d"), "{a}");
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn kustomer_error_shapes_are_both_read() {
        let jsonapi = serde_json::json!({"errors": [{"status": 400, "code": "invalid", "title": "Invalid",
            "detail": "status must be one of open, snoozed, done", "source": {"pointer": "/status"}}]});
        assert_eq!(error_text(&jsonapi), "Invalid: status must be one of open, snoozed, done (at /status)");
        let other = serde_json::json!({"errors": [{"code": "E1", "message": "bad thing", "meta": {}}]});
        assert_eq!(error_text(&other), "bad thing");
        let dup = Reply { status: 400, body: serde_json::json!({"errors": [{"title": "Duplicate key"}]}) };
        assert!(dup.is_duplicate());
        assert_eq!(enc("+1 415@x"), "%2B1%20415%40x");
    }
}
