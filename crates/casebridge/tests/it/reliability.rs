//! Serialization per customer, and crash safety (SIGKILL between accept and CRM write).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn concurrent_sessions_of_one_customer_make_one_account_and_one_record() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"records": {"append_to_open_in_leaf_queue": true}}))).await;
    let mut posts = Vec::new();
    for i in 0..12 {
        let mut c = Ses::new(&format!("race{i}"), "2026-11-20T10:00:00Z");
        let evs = vec![
            c.created("messaging_inbound_web", json!({"phone": "+14155550300"}), &["Chat"]),
            c.assigned("ag"),
            c.connected(),
        ];
        let http = s.http.clone();
        let url = format!("{}/v1/events?wait=20", s.base);
        posts.push(tokio::spawn(async move { http.post(url).json(&evs).send().await.map(|r| r.status().as_u16()) }));
    }
    for p in posts {
        assert_eq!(p.await.unwrap().unwrap(), 202);
    }
    let accounts = s.get("/v1/crm/accounts?phone=%2B14155550300").await;
    assert_eq!(accounts["accounts"].as_array().unwrap().len(), 1, "{accounts}");
    let acc = accounts["accounts"][0]["id"].as_str().unwrap();
    let recs = s.records(&format!("account_id={acc}")).await;
    assert_eq!(recs.len(), 1, "one record, the others appended: {recs:?}");
    assert_eq!(recs[0]["session_ids"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn sessions_sharing_any_identifier_are_serialized_too() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"records": {"append_to_open_in_leaf_queue": true}}))).await;
    let mut posts = Vec::new();
    for i in 0..12 {
        // Half know the customer by phone and email, half by email only: different lanes.
        let customer = if i % 2 == 0 {
            json!({"phone": "+14155550310", "email": "pat@example.com"})
        } else {
            json!({"email": "Pat@Example.com"})
        };
        let mut c = Ses::new(&format!("mix{i}"), "2026-11-20T10:00:00Z");
        let evs = vec![c.created("messaging_inbound_web", customer, &["Chat"]), c.assigned("ag"), c.connected()];
        let http = s.http.clone();
        let url = format!("{}/v1/events?wait=20", s.base);
        posts.push(tokio::spawn(async move { http.post(url).json(&evs).send().await.map(|r| r.status().as_u16()) }));
    }
    for p in posts {
        assert_eq!(p.await.unwrap().unwrap(), 202);
    }
    let accounts = s.get("/v1/crm/accounts?email=pat%40example.com").await;
    assert_eq!(accounts["accounts"].as_array().unwrap().len(), 1, "{accounts}");
    let acc = accounts["accounts"][0]["id"].as_str().unwrap();
    let recs = s.records(&format!("account_id={acc}")).await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["session_ids"].as_array().unwrap().len(), 12);
}

async fn all_settled(s: &Server, ids: &[String], deadline: Duration) {
    let end = Instant::now() + deadline;
    for id in ids {
        loop {
            let (c, v) = s.call(reqwest::Method::GET, &format!("/v1/sessions/{id}"), None).await;
            if c == 200 && v["settled"] == true && v["state"] == "ended" {
                break;
            }
            assert!(Instant::now() < end, "session {id} never settled: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Ten customers (phones +1415555 and `first`..`first`+9), each with one account and one
/// record holding its `sessions` sessions, an activity each and the phone note once; no dead
/// letter.
async fn once_each(s: &Server, first: u32, sessions: usize) {
    for i in 0..10 {
        let phone = format!("%2B1415555{:04}", first + i);
        let accounts = s.get(&format!("/v1/crm/accounts?phone={phone}")).await;
        assert_eq!(accounts["accounts"].as_array().unwrap().len(), 1, "one account per customer: {accounts}");
        let acc = accounts["accounts"][0]["id"].as_str().unwrap();
        let recs = s.records(&format!("account_id={acc}")).await;
        assert_eq!(recs.len(), 1, "every later call appended to the one open record: {recs:?}");
        assert_eq!(recs[0]["session_ids"].as_array().unwrap().len(), sessions);
        let rec = s.get(&format!("/v1/crm/records/{}", recs[0]["id"].as_str().unwrap())).await;
        assert_eq!(rec["activities"].as_array().unwrap().len(), sessions, "one activity per session");
        assert_eq!(rec["notes"].as_array().unwrap().len(), 1, "the phone note once");
    }
    let dead = s.get("/v1/outbox?state=dead").await;
    assert!(dead["writes"].as_array().unwrap().is_empty(), "{dead}");
}

#[tokio::test]
async fn sigkill_between_accept_and_crm_write_loses_and_doubles_nothing() {
    let mut s = Server::start().await;
    s.put_settings(settings(json!({"records": {"append_to_open_in_leaf_queue": true}}))).await;
    let mut ids = Vec::new();
    for round in 0..3 {
        let mut batch: Vec<Value> = Vec::new();
        for i in 0..60 {
            let id = format!("k{round}-{i}");
            // Ten customers, each calling several times: appends race with creates.
            let phone = format!("+1415555{:04}", 400 + i % 10);
            let start = format!("2026-11-20T{:02}:{:02}:00Z", 10 + round, i % 60);
            batch.extend(call(&id, &start, &phone, &["Support"]));
            ids.push(id);
        }
        let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&Value::Array(batch))).await;
        assert_eq!(c, 202, "{v}");
        assert_eq!(v["accepted"], 240);
        // Accepted means on disk: kill at once, mid-way through the work.
        s.kill();
        s.restart().await;
    }
    all_settled(&s, &ids, Duration::from_secs(60)).await;
    once_each(&s, 400, 18).await;
}

/// A rules commit that fails half-way through a step (the database refuses one session's
/// timeline after its row: a trigger injected into the server's own database) fails every
/// batch made with or after it, the built-in CRM's writes sent with it included. Those
/// batches' events are then committed one step at a time: every other session goes on while
/// the refused one waits and retries; once the cause is gone it is applied too, and nothing
/// is lost or doubled.
#[tokio::test]
async fn failing_rules_commits_are_made_again_without_doubles() {
    // Retries of the refused session start at 20 ms (doubling), so that it is tried again
    // soon after the cause is gone.
    let s = Server::start_capturing(&[("CASEBRIDGE_RETRY_BASE_MS", "20")], &[]).await;
    s.put_settings(settings(json!({"records": {"append_to_open_in_leaf_queue": true}}))).await;
    let (inject, heal): (&[&str], &[&str]) = if on_postgres() {
        (
            &[
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
                "CREATE TRIGGER poison BEFORE INSERT ON timeline FOR EACH ROW WHEN (NEW.session_id = 'poison') EXECUTE FUNCTION poison()",
            ],
            &["DROP TRIGGER poison ON timeline"],
        )
    } else {
        (
            &[
                "CREATE TRIGGER poison BEFORE INSERT ON timeline WHEN NEW.session_id = 'poison' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            ],
            &["DROP TRIGGER poison"],
        )
    };
    let url = match &s.url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", s.data_dir().join("casebridge.db").display()),
    };
    run_sql(&url, inject).await;
    let mut batch = call("poison", "2026-11-20T09:00:00Z", "+14155550499", &["Support"]);
    let mut ids = vec!["poison".to_string()];
    for i in 0..60 {
        let id = format!("f{i}");
        let phone = format!("+1415555{:04}", 500 + i % 10);
        batch.extend(call(&id, &format!("2026-11-20T10:{:02}:00Z", i % 60), &phone, &["Support"]));
        ids.push(id);
    }
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&Value::Array(batch))).await;
    assert_eq!((c, v["accepted"].clone()), (202, json!(244)), "{v}");
    let end = Instant::now() + Duration::from_secs(30);
    while !s.output().contains("injected failure") {
        assert!(Instant::now() < end, "the injected fault never failed a rules commit: {}", s.output());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The others are not held back by the one the database refuses.
    all_settled(&s, &ids[1..], Duration::from_secs(60)).await;
    let (c, _) = s.call(reqwest::Method::GET, "/v1/sessions/poison", None).await;
    assert_eq!(c, 404, "nothing of the failing commit is stored");
    assert!(s.output().contains("Rules step not stored"), "the refused step is named in the log: {}", s.output());
    run_sql(&url, heal).await;
    all_settled(&s, &ids, Duration::from_secs(60)).await;
    s.record_of("poison").await;
    once_each(&s, 500, 6).await;
}

/// Runs statements on the server's database, beside the server.
async fn run_sql(url: &str, statements: &[&str]) {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.expect("the server's database");
        for q in statements {
            sqlx::query(q).execute(&mut c).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("the server's database");
        for q in statements {
            sqlx::query(q).execute(&mut c).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }
}

#[tokio::test]
async fn a_write_the_crm_refuses_is_parked_visible_and_retryable() {
    let s = Server::start().await;
    let mut o = Ses::new("ghost", "2026-11-20T10:00:00Z");
    s.send(vec![o.ev(
        0,
        "session.created",
        json!({"channel": "voice", "session_type": "voice_outbound", "direction": "outbound",
        "customer": {"phone": "+14155550500"}, "origin_record_id": "rec_does_not_exist"}),
    )])
    .await;
    let dead = s.get("/v1/outbox?state=dead").await;
    let writes = dead["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 1, "{dead}");
    assert_eq!(writes[0]["session_id"], "ghost");
    assert!(writes[0]["last_error"].as_str().unwrap().contains("rec_does_not_exist"), "{dead}");
    let v = s.session("ghost").await;
    assert!(has_rule(&v, "outbox.dead_letter"), "the timeline says the write was parked: {v}");
    let id = writes[0]["id"].as_i64().unwrap();
    let (c, _) = s.call(reqwest::Method::POST, &format!("/v1/outbox/{id}/retry"), None).await;
    assert_eq!(c, 202);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let d = s.get("/v1/outbox?state=dead").await;
        if d["writes"][0]["attempts"].as_i64() == Some(2) {
            break;
        }
        assert!(Instant::now() < end, "retry never ran: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (c, _) = s.call(reqwest::Method::POST, "/v1/outbox/999999/retry", None).await;
    assert_eq!(c, 404);
}

#[tokio::test]
async fn built_in_crm_writes_are_done_once_their_events_are_applied() {
    let s = Server::start().await;
    let mut c = Ses::new("once", "2026-11-20T10:00:00Z");
    let first = vec![c.created("voice_inbound_ivr", json!({"phone": "+14155550520"}), &["Support"]), c.assigned("ag")];
    s.send(first).await;
    s.send(vec![c.connected(), c.ended()]).await;
    let pending = s.get("/v1/outbox?state=pending").await;
    assert_eq!(pending["writes"].as_array().unwrap().len(), 0, "{pending}");
    let done = s.get("/v1/outbox?state=done").await;
    let writes = done["writes"].as_array().unwrap();
    assert!(writes.len() >= 2, "an account and a record at least: {done}");
    assert!(writes.iter().all(|w| w["attempts"] == 1 && w["session_id"] == "once"), "each sent once: {done}");
    let v = s.session("once").await;
    let kinds: Vec<&str> = v["timeline"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    let crm = kinds.iter().filter(|k| **k == "crm").count();
    assert_eq!(crm, writes.len(), "a timeline line per write: {v}");
    assert_ne!(kinds.first(), Some(&"crm"), "a write comes after the step that made it: {v}");
    let record = s.record_of("once").await;
    assert_eq!(record["session_ids"], json!(["once"]), "{record}");
}
