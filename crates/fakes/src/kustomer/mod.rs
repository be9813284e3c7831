//! A stateful fake of Kustomer's REST API (`/v1/...`): customers with org-unique identifiers,
//! conversations (open, snoozed, done; an inbound message reopens a done one), tags by name,
//! notes, messages, attachments with the two-step upload, custom attribute metadata and
//! users. Answers are JSON:API (`data.{type,id,attributes,relationships}`, `meta`,
//! `links.next`), lists page with `page` and `pageSize`, errors are JSON:API error objects.
//!
//! Every `/v1` request needs `Authorization: Bearer <key>` (401 otherwise) and counts against
//! an org-wide limit per window; every answer carries `x-ratelimit-limit`, `-remaining` and
//! `-reset` (seconds until the window resets), and a request over the limit gets 429 with
//! `Retry-After`. Notes and messages are limited per customer (120 a minute by default).
//!
//! `POST /__fake/kustomer/limits` `{org_per_minute?, window_s?, notes_per_customer?,
//! denied?: [permission], keys?: [key]}` changes the limits, the permissions every key lacks
//! (e.g. `metadata.update`) and the accepted keys (default `fake-api-key`).

// Helpers answer their refusal as the vendor's response; the fake is not a hot path.
#![allow(clippy::result_large_err)]

mod conversations;
mod customers;
pub mod db;
mod files;
mod notes;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::control::Fake;
use db::Db;

/// The API key the fake accepts unless told otherwise.
pub const API_KEY: &str = "fake-api-key";

/// Where uploads go (Kustomer hands out a storage bucket's address; the fake's points back at
/// itself).
pub const UPLOAD_PATH: &str = "/fake-s3/kustomer-attachments";

/// The fake.
pub struct KustomerFake {
    db: Mutex<Db>,
    limits: Mutex<Limits>,
}

struct Limits {
    org_per_minute: u32,
    window: Duration,
    notes_per_customer: u32,
    denied: BTreeSet<String>,
    keys: BTreeSet<String>,
    window_start: Option<Instant>,
    used: u32,
    per_customer: HashMap<String, VecDeque<Instant>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            org_per_minute: 1000,
            window: Duration::from_secs(60),
            notes_per_customer: 120,
            denied: BTreeSet::new(),
            keys: BTreeSet::from([API_KEY.to_string()]),
            window_start: None,
            used: 0,
            per_customer: HashMap::new(),
        }
    }
}

/// A fresh, empty fake.
pub fn make() -> Arc<dyn Fake> {
    Arc::new(KustomerFake::new())
}

impl Default for KustomerFake {
    fn default() -> Self {
        Self::new()
    }
}

impl KustomerFake {
    /// A fresh, empty fake.
    pub fn new() -> KustomerFake {
        KustomerFake { db: Mutex::new(Db::default()), limits: Mutex::new(Limits::default()) }
    }

    /// The storage.
    pub(crate) fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn limits(&self) -> MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether keys lack a permission (`metadata.update`, …).
    pub(crate) fn denied(&self, permission: &str) -> bool {
        self.limits().denied.contains(permission)
    }

    /// Counts a note or message for a customer: the 429 answer when over the limit.
    pub(crate) fn per_customer(&self, customer: &str) -> Result<(), Response> {
        let mut l = self.limits();
        let (limit, window) = (l.notes_per_customer as usize, l.window);
        let now = Instant::now();
        let q = l.per_customer.entry(customer.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= limit {
            let wait = q.front().map(|t| window.saturating_sub(now.duration_since(*t))).unwrap_or(window);
            return Err(throttled(wait, "Too many notes or messages for this customer"));
        }
        q.push_back(now);
        Ok(())
    }
}

/// A JSON:API error answer.
pub(crate) fn error(status: StatusCode, code: &str, title: &str, detail: String, pointer: Option<&str>) -> Response {
    let mut e = json!({"status": status.as_u16(), "code": code, "title": title, "detail": detail});
    if let Some(p) = pointer {
        e["source"] = json!({"pointer": p});
    }
    (status, Json(json!({"errors": [e]}))).into_response()
}

fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn throttled(wait: Duration, detail: &str) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too Many Requests", detail.into(), None);
    if let Ok(v) = HeaderValue::from_str(&secs_up(wait).max(1).to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Authentication and the org-wide limit, with the rate-limit headers on every answer.
async fn gate(State(f): State<Arc<KustomerFake>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let authorized = bearer(&req).is_some_and(|k| f.limits().keys.contains(k));
    let (limit, remaining, reset, over) = {
        let mut l = f.limits();
        let now = Instant::now();
        let window = l.window;
        if l.window_start.is_none_or(|s| now.duration_since(s) >= window) {
            l.window_start = Some(now);
            l.used = 0;
        }
        let reset = l.window_start.map(|s| window.saturating_sub(now.duration_since(s))).unwrap_or(window);
        let over = l.used >= l.org_per_minute;
        if !over {
            l.used += 1;
        }
        (l.org_per_minute, l.org_per_minute.saturating_sub(l.used), reset, over)
    };
    let mut resp = if over {
        throttled(reset, "API rate limit exceeded for the organization")
    } else if !authorized {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "missing or invalid API key: send Authorization: Bearer <API key>".into(),
            None,
        )
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    for (name, v) in [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", secs_up(reset).to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(name, v);
        }
    }
    resp
}

#[derive(Deserialize)]
struct LimitsIn {
    org_per_minute: Option<u32>,
    window_s: Option<u64>,
    notes_per_customer: Option<u32>,
    denied: Option<Vec<String>>,
    keys: Option<Vec<String>>,
}

async fn set_limits(State(f): State<Arc<KustomerFake>>, Json(b): Json<LimitsIn>) -> StatusCode {
    let mut l = f.limits();
    if let Some(n) = b.org_per_minute {
        l.org_per_minute = n;
    }
    if let Some(s) = b.window_s {
        l.window = Duration::from_secs(s.max(1));
    }
    if let Some(n) = b.notes_per_customer {
        l.notes_per_customer = n;
    }
    if let Some(d) = b.denied {
        l.denied = d.into_iter().collect();
    }
    if let Some(k) = b.keys {
        l.keys = k.into_iter().collect();
    }
    l.window_start = None;
    l.used = 0;
    l.per_customer.clear();
    StatusCode::NO_CONTENT
}

impl Fake for KustomerFake {
    fn kind(&self) -> &'static str {
        "kustomer"
    }

    fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .merge(customers::routes())
            .merge(conversations::routes())
            .merge(notes::routes())
            .merge(files::routes())
            .route("/__fake/kustomer/limits", post(set_limits))
            .layer(middleware::from_fn_with_state(self.clone(), gate))
            .with_state(self)
    }

    fn objects(&self, object_type: &str) -> Option<Value> {
        let db = self.db();
        let kind = match object_type {
            "customer" | "customers" => "customer",
            "conversation" | "conversations" => "conversation",
            "note" | "notes" => "note",
            "message" | "messages" => "message",
            "attachment" | "attachments" => "attachment",
            "tag" | "tags" => "tag",
            "user" | "users" => "user",
            "metadata" => {
                let all: Vec<Value> = db.metadata.iter().map(|(k, v)| json!({"id": k, "properties": v})).collect();
                return Some(Value::Array(all));
            }
            _ => return None,
        };
        let mut v: Vec<Value> = db.all(kind).cloned().collect();
        v.sort_by(|a, b| {
            let k = |o: &Value| (o["createdAt"].as_str().unwrap_or_default().to_string(), o["id"].to_string());
            k(a).cmp(&k(b))
        });
        Some(Value::Array(v))
    }

    fn fault_response(&self, status: StatusCode, retry_after_s: Option<u64>) -> Response {
        let title = status.canonical_reason().unwrap_or("Error");
        let mut r = error(status, &status.as_u16().to_string(), title, format!("injected {status}"), None);
        let h = r.headers_mut();
        if let Some(s) = retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            h.insert("retry-after", v);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        }
        r
    }
}
