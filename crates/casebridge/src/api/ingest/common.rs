//! What every native endpoint shares: the enabled check, secrets and the API token, reading
//! payloads, and storing what they tell.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use casebridge_rules::event::FieldError;
use casebridge_rules::native::{Native, Reading, Snapshot, Source};
use casebridge_rules::settings::Settings;
use casebridge_store::{NativeBatch, NewEvent, NewNative};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::api::state::AppState;
use crate::error::Problem;

/// Query of the native endpoints.
#[derive(Debug, Deserialize)]
pub struct IngestQuery {
    /// Seconds (≤ 30) to wait until the work the events caused is settled.
    pub wait: Option<f64>,
}

/// What a native request did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct IngestOut {
    /// Platform events new to casebridge.
    pub accepted: u64,
    /// Platform events received before (nothing changes).
    pub duplicates: u64,
    /// Platform events of types that mean nothing to casebridge (counted, not stored).
    pub irrelevant: u64,
    /// casebridge events made from them.
    pub events: u64,
    /// With `wait`: whether the work was settled in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled: Option<bool>,
}

fn count(source: Source, outcome: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("casebridge_ingest_events_total", "source" => source.as_str(), "outcome" => outcome)
            .increment(n);
    }
}

/// 404 for a source that is not enabled.
pub fn enabled(settings: &Settings, source: Source) -> Result<(), Problem> {
    let on = match source {
        Source::AmazonConnect => settings.ingest.amazon_connect.enabled,
        Source::Twilio => settings.ingest.twilio.enabled,
        Source::Genesys => settings.ingest.genesys.enabled,
        Source::Cti => settings.ingest.cti.enabled,
    };
    if on {
        Ok(())
    } else {
        Err(Problem::not_found(format!(
            "the {} source is not enabled: set ingest.{}.enabled to true in the settings",
            source.as_str(),
            source.settings_key()
        )))
    }
}

/// 401, counted as refused.
pub fn refused(source: Source, detail: impl Into<String>) -> Problem {
    count(source, "refused", 1);
    let mut p = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    p.title = "Unauthorized".into();
    p
}

/// 422 with every field error, counted as refused.
pub fn malformed(source: Source, detail: impl Into<String>, errors: Vec<serde_json::Value>) -> Problem {
    count(source, "refused", 1);
    Problem::validation(detail, errors)
}

/// The field errors of the `index`-th payload of a request, for a 422.
pub fn indexed(index: usize, errors: Vec<FieldError>) -> Vec<serde_json::Value> {
    errors.into_iter().map(|e| serde_json::json!({"index": index, "field": e.field, "message": e.message})).collect()
}

/// Whether the request carries the API bearer token.
pub fn bearer_ok(st: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &st.token else { return false };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
}

/// The password of a Basic `Authorization` header.
pub fn basic_password(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(v.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.split_once(':').map(|(_, p)| p.to_string())
}

/// Constant-time equality of a given secret with the expected one.
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Checks a shared secret: the API bearer token always passes; otherwise a configured secret
/// must be given, and without one only loopback open mode (no API token) lets requests in.
pub fn check_secret(
    st: &AppState,
    headers: &HeaderMap,
    source: Source,
    setting: &str,
    secret: Option<&str>,
    given: &[Option<String>],
    how: &str,
) -> Result<(), Problem> {
    if bearer_ok(st, headers) {
        return Ok(());
    }
    match secret {
        Some(s) if given.iter().flatten().any(|g| same_secret(g, s)) => Ok(()),
        Some(_) => Err(refused(
            source,
            format!("missing or wrong secret: send {how} (ingest.{setting}), or the API bearer token"),
        )),
        None if st.token.is_none() => Ok(()),
        None => Err(refused(
            source,
            format!("ingest.{setting} is not set: send the API bearer token, or set the secret and send {how}"),
        )),
    }
}

/// Stores what a request's platform events tell: new platform events are kept with their
/// session's snapshot and the casebridge events they made, in one commit; platform events
/// received before are duplicates.
pub async fn accept(
    st: &AppState,
    source: Source,
    readings: Vec<Reading>,
    wait: Option<f64>,
) -> Result<IngestOut, Problem> {
    let wait = match wait {
        Some(w) if !(0.0..=30.0).contains(&w) || w.is_nan() => {
            return Err(Problem::fields(
                "query parameter wait is out of range",
                &[FieldError { field: "wait".into(), message: "must be between 0 and 30 seconds".into() }],
            ));
        }
        w => w,
    };
    let mut out = IngestOut::default();
    let mut natives: Vec<Native> = Vec::new();
    for r in readings {
        match r {
            Reading::Session(n) => natives.push(*n),
            Reading::Irrelevant { kind } => {
                tracing::debug!(source = source.as_str(), kind, "Native event of no interest; answered and counted.");
                out.irrelevant += 1;
            }
        }
    }
    if !natives.is_empty() {
        // The platform sends again after Retry-After (every platform retries a 429).
        st.intake.admit(natives.len())?;
    }
    // Apply by event time within a request; across requests the snapshot orders the steps.
    natives.sort_by_key(|n| n.at);
    let guard = st.native.lock.lock().await;
    let ids: Vec<String> = natives.iter().map(|n| n.id.clone()).collect();
    let known: HashSet<String> = st.store.native_known(source.as_str(), &ids).await?.into_iter().collect();
    let mut seen = HashSet::new();
    let mut snapshots: HashMap<String, Snapshot> = HashMap::new();
    let mut batch = NativeBatch::default();
    for n in natives {
        if known.contains(&n.id) || !seen.insert(n.id.clone()) {
            out.duplicates += 1;
            continue;
        }
        if !snapshots.contains_key(&n.session_id) {
            let stored = st.store.native_snapshot(&n.session_id).await?;
            let snap = match stored {
                Some(s) => serde_json::from_str(&s).map_err(Problem::internal)?,
                None => Snapshot::default(),
            };
            snapshots.insert(n.session_id.clone(), snap);
        }
        let Some(snap) = snapshots.get_mut(&n.session_id) else { continue };
        let events = snap.absorb(&n.session_id, &n);
        for e in &events {
            batch.events.push(NewEvent {
                id: e.id.clone(),
                session_id: e.session_id.clone(),
                event_type: e.kind.type_name().to_string(),
                at: e.at,
                body: serde_json::to_string(e).map_err(Problem::internal)?,
            });
        }
        batch.natives.push(NewNative {
            source: source.as_str().into(),
            native_id: n.id.clone(),
            session_id: n.session_id.clone(),
            event_type: n.kind.clone(),
            at: n.at,
            body: serde_json::to_string(&n.payload).map_err(Problem::internal)?,
            event_ids: events.iter().map(|e| e.id.clone()).collect(),
        });
        out.accepted += 1;
    }
    for (sid, snap) in &snapshots {
        batch.snapshots.push((sid.clone(), serde_json::to_string(snap).map_err(Problem::internal)?));
    }
    let event_ids: Vec<String> = batch.events.iter().map(|e| e.id.clone()).collect();
    if !batch.natives.is_empty() {
        out.events = st.store.ingest_native(&batch).await?;
    }
    drop(guard);
    count(source, "accepted", out.accepted);
    count(source, "duplicate", out.duplicates);
    count(source, "irrelevant", out.irrelevant);
    if out.events > 0 {
        metrics::counter!("casebridge_events_accepted_total").increment(out.events);
        st.pipeline.events_in.notify_one();
    }
    if let Some(w) = wait {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(w);
        let settled = loop {
            if st.store.settled(&event_ids).await? {
                break true;
            }
            if tokio::time::Instant::now() >= deadline {
                break false;
            }
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                st.pipeline.progress.notified(),
            )
            .await;
        };
        out.settled = Some(settled);
    }
    Ok(out)
}

/// A body as JSON, or a 422 naming what is wrong.
pub fn json_of(source: Source, raw: &[u8]) -> Result<serde_json::Value, Problem> {
    serde_json::from_slice(raw).map_err(|e| {
        malformed(
            source,
            format!("the body is not JSON ({e}); nothing was stored"),
            vec![serde_json::json!({"field": "", "message": "must be a JSON document"})],
        )
    })
}

/// One payload or a JSON array of them.
pub fn items(v: serde_json::Value) -> Vec<serde_json::Value> {
    match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    }
}

/// Reads every payload; one that is not the format refuses the whole request.
pub fn read_all(
    source: Source,
    values: &[serde_json::Value],
    read: impl Fn(&serde_json::Value) -> Result<Reading, Vec<FieldError>>,
) -> Result<Vec<Reading>, Problem> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match read(v) {
            Ok(r) => out.push(r),
            Err(e) => errors.extend(indexed(i, e)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(malformed(
            source,
            format!("the request holds events that are not {} events; nothing was stored", source.as_str()),
            errors,
        ))
    }
}
