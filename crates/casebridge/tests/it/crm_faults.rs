//! Delivery through faults, for every CRM fake: an outage that ends, throttling with a wait,
//! a write that landed while casebridge saw a timeout, casebridge killed mid-write. After
//! each, every session has exactly the CRM objects the rules give it, none twice, and
//! nothing is dead-lettered that should have landed. Also the API calls one ordinary call
//! costs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fakes::FakeCrm;
use crate::harness::{Server, Ses, settings};

/// Fast retries and a short CRM timeout, so faults play out in seconds.
const ENV: &[(&str, &str)] = &[("CASEBRIDGE_RETRY_BASE_MS", "100"), ("CASEBRIDGE_CRM_TIMEOUT_MS", "1500")];

async fn connected(kind: &'static str) -> (FakeCrm, Server) {
    let fake = FakeCrm::start(kind).await;
    let s = Server::start_with(ENV, &[]).await;
    s.put_settings(settings(json!({"crm": fake.crm_settings()}))).await;
    (fake, s)
}

/// An ordinary inbound call from `phone`: created, assigned, connected, ended, recording, CSAT.
fn ordinary_call(id: &str, phone: &str) -> Vec<Value> {
    let mut c = Ses::new(id, "2026-11-20T10:00:00Z");
    vec![
        c.created("voice_inbound_ivr", json!({"phone": phone}), &["Support", "Billing"]),
        c.assigned("ag-1"),
        c.connected(),
        c.ended(),
        c.ev(5, "recording.available", json!({"url": "https://files.example/r.mp3"})),
        c.ev(30, "csat.submitted", json!({"score": 5})),
    ]
}

/// Posts events without waiting for the CRM.
async fn post(s: &Server, events: Vec<Value>) {
    let (st, v) = s.post("/v1/events", Value::Array(events)).await;
    assert_eq!(st, 202, "{v}");
}

/// Waits until the session has its record in the CRM and nothing is left to deliver.
async fn settled(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        // Events are taken in asynchronously: the session may not be there yet.
        let (status, v) = s.call(reqwest::Method::GET, &format!("/v1/sessions/{id}"), None).await;
        if status == 404 {
            assert!(Instant::now() < deadline, "session {id} never arrived");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let pending = s.get("/v1/outbox?state=pending").await["writes"].as_array().map_or(0, Vec::len);
        if v["record_outcome"] != "pending" && v["record_id"].is_string() && pending == 0 {
            return v;
        }
        assert!(Instant::now() < deadline, "session {id} never settled: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn no_dead_letters(s: &Server) {
    let dead = s.get("/v1/outbox?state=dead").await;
    assert!(dead["writes"].as_array().is_some_and(Vec::is_empty), "dead letters: {dead}");
}

async fn exactly_one_each(fake: &FakeCrm, sessions: usize) {
    let records = fake.objects(fake.record_type()).await;
    assert_eq!(records.len(), sessions, "one {} per session: {records:?}", fake.record_type());
    let people = fake.objects(fake.account_type()).await;
    assert_eq!(people.len(), 1, "one {} for the caller: {people:?}", fake.account_type());
}

pub async fn outage_then_recovery(kind: &'static str) {
    let (fake, s) = connected(kind).await;
    fake.fault(json!({"status": 503, "count": 8})).await;
    post(&s, ordinary_call("out-1", "+14155550101")).await;
    let v = settled(&s, "out-1").await;
    assert_eq!(v["record_outcome"], "created", "{v}");
    exactly_one_each(&fake, 1).await;
    no_dead_letters(&s).await;
    let failed = fake.log().await.iter().filter(|r| r["status"] == 503).count();
    assert_eq!(failed, 8, "the outage was seen");
}

pub async fn throttling_wait_is_obeyed(kind: &'static str, status: u16) {
    let (fake, s) = connected(kind).await;
    fake.fault(json!({"status": status, "count": 1, "retry_after_s": 2})).await;
    post(&s, ordinary_call("thr-1", "+14155550102")).await;
    settled(&s, "thr-1").await;
    exactly_one_each(&fake, 1).await;
    no_dead_letters(&s).await;
    let log = fake.log().await;
    let at = log.iter().position(|r| r["status"] == status).expect("the throttled answer");
    let throttled_at = log[at]["at_ms"].as_u64().unwrap_or(0);
    let next = log.get(at + 1).and_then(|r| r["at_ms"].as_u64()).expect("a request after the wait");
    assert!(
        next >= throttled_at + 2000,
        "a request came {} ms after the throttle, before the 2 s wait",
        next - throttled_at
    );
}

pub async fn landed_during_timeout_is_not_created_twice(kind: &'static str, create_path: &str) {
    let (fake, s) = connected(kind).await;
    // The create is stored, but its answer comes after casebridge has given up waiting.
    fake.fault(json!({"status": 200, "count": 1, "latency_ms": 2500, "path_contains": create_path})).await;
    post(&s, ordinary_call("slow-1", "+14155550103")).await;
    settled(&s, "slow-1").await;
    exactly_one_each(&fake, 1).await;
    no_dead_letters(&s).await;
}

pub async fn killed_mid_write_then_restarted(kind: &'static str, create_path: &str) {
    let (fake, mut s) = connected(kind).await;
    fake.fault(json!({"status": 200, "count": 1, "latency_ms": 1000, "path_contains": create_path})).await;
    post(&s, ordinary_call("kill-1", "+14155550104")).await;
    // Kill casebridge while the create is in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.stats().await["in_flight"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the create never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.kill();
    s.restart_with(ENV).await;
    settled(&s, "kill-1").await;
    exactly_one_each(&fake, 1).await;
    no_dead_letters(&s).await;
}

/// API calls of an ordinary inbound call from a known caller (the first call creates the
/// person; the second is counted).
pub async fn calls_per_ordinary_call(kind: &'static str) -> u64 {
    let (fake, s) = connected(kind).await;
    post(&s, ordinary_call("first-1", "+14155550105")).await;
    settled(&s, "first-1").await;
    fake.reset_stats().await;
    post(&s, ordinary_call("second-1", "+14155550105")).await;
    settled(&s, "second-1").await;
    let stats = fake.stats().await;
    let n = stats["requests"].as_u64().unwrap_or(0);
    println!("{kind}: {n} API calls for an ordinary inbound call: {}", stats["by_route"]);
    n
}

/// With `rate_limit_per_minute` set, no more requests than that reach the CRM in a minute:
/// the next one waits in casebridge.
pub async fn rate_limit_is_never_exceeded(kind: &'static str) {
    let fake = FakeCrm::start(kind).await;
    let s = Server::start_with(ENV, &[]).await;
    let mut crm = fake.crm_settings();
    crm["rate_limit_per_minute"] = json!(2);
    s.put_settings(settings(json!({"crm": crm}))).await;
    post(&s, ordinary_call("paced-1", "+14155550106")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = s.call(reqwest::Method::GET, "/metrics", None).await;
        let paced =
            m.as_str().unwrap_or("").lines().any(|l| l.starts_with("casebridge_crm_paced_total") && !l.ends_with(" 0"));
        if paced {
            break;
        }
        assert!(Instant::now() < deadline, "no request ever waited for the rate limit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = fake.stats().await;
    let sent = stats["requests"].as_u64().unwrap_or(0) + stats["in_flight"].as_u64().unwrap_or(0);
    assert_eq!(sent, 2, "the limit of 2 a minute was kept: {stats}");
    // The rest waits its turn: a lookup held in the pacer, or writes still in the outbox.
    let (_, session) = s.call(reqwest::Method::GET, "/v1/sessions/paced-1", None).await;
    let pending = s.get("/v1/outbox?state=pending").await;
    let waiting = session["record_id"].is_null() || pending["writes"].as_array().is_some_and(|w| !w.is_empty());
    assert!(waiting, "nothing was left waiting: {session} {pending}");
}

/// A customer whose lookups keep failing waits longer and longer between attempts (it does
/// not spin on the CRM), and other customers' calls go through meanwhile.
/// `failing_path` is a part of the path only that customer's lookups carry.
pub async fn a_failing_customer_waits_its_turn(kind: &'static str, failing_path: &str) {
    let (fake, s) = connected(kind).await;
    fake.fault(json!({"status": 500, "count": 1000, "path_contains": failing_path})).await;
    post(&s, ordinary_call("stuck-1", "+14155550199")).await;
    post(&s, ordinary_call("fine-1", "+14155550198")).await;
    let v = settled(&s, "fine-1").await;
    assert_eq!(v["record_outcome"], "created", "{v}");
    // Five failed lookups of the stuck customer: the waits between them grow.
    let deadline = Instant::now() + Duration::from_secs(20);
    let times = loop {
        let times: Vec<u64> = fake
            .log()
            .await
            .iter()
            .filter(|r| r["status"] == 500 && r["path"].as_str().is_some_and(|p| p.contains(failing_path)))
            .filter_map(|r| r["at_ms"].as_u64())
            .collect();
        if times.len() >= 5 {
            break times;
        }
        assert!(Instant::now() < deadline, "the stuck customer's lookups: {times:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let gap = times[4] - times[3];
    assert!(gap >= 700, "the fifth attempt came {gap} ms after the fourth: {times:?}");
}
