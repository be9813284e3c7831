//! The CRM connection as an operator handles it: the connection test, secrets sealed at
//! rest, and retrying every dead letter at once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Server, Ses, bin, settings};

#[tokio::test]
async fn the_connection_test_checks_the_saved_or_a_given_connection() {
    let s = Server::start().await;
    for body in [None, Some(json!({}))] {
        let (c, v) = s.call(reqwest::Method::POST, "/v1/crm/test", body.as_ref()).await;
        assert_eq!(c, 200, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["kind"], "builtin", "{v}");
        assert!(v["checks"].as_array().is_some_and(|c| !c.is_empty()), "{v}");
    }
    // A given connection that cannot be built is refused on its fields, and nothing is saved.
    let (c, v) = s.post("/v1/crm/test", json!({"kind": "nope"})).await;
    assert_eq!(c, 422, "{v}");
    assert!(v.to_string().contains("crm.kind"), "{v}");
    assert_eq!(s.get("/v1/settings").await["crm"]["kind"], "builtin");
}

#[tokio::test]
async fn every_dead_letter_is_retried_at_once() {
    let s = Server::start().await;
    for (i, phone) in ["+14155550601", "+14155550602"].iter().enumerate() {
        let mut o = Ses::new(&format!("ghost-{i}"), "2026-11-20T10:00:00Z");
        s.send(vec![o.ev(
            0,
            "session.created",
            json!({"channel": "voice", "session_type": "voice_outbound", "direction": "outbound",
                   "customer": {"phone": phone}, "origin_record_id": "rec_does_not_exist"}),
        )])
        .await;
    }
    let dead = s.get("/v1/outbox?state=dead").await;
    assert_eq!(dead["writes"].as_array().map(Vec::len), Some(2), "{dead}");
    let (c, v) = s.call(reqwest::Method::POST, "/v1/outbox/retry?state=pending", None).await;
    assert_eq!(c, 422, "only dead letters are retried: {v}");
    let (c, v) = s.call(reqwest::Method::POST, "/v1/outbox/retry?state=dead", None).await;
    assert_eq!(c, 202, "{v}");
    assert_eq!(v["retried"], 2, "{v}");
    // Both went again (and, the record still missing, were parked again).
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let d = s.get("/v1/outbox?state=dead").await;
        let writes = d["writes"].as_array().cloned().unwrap_or_default();
        if writes.len() == 2 && writes.iter().all(|w| w["attempts"].as_i64() == Some(2)) {
            break;
        }
        assert!(Instant::now() < end, "the retries never ran: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the server stored of its settings: every byte of the data folder's files on SQLite,
/// the settings document and its history on PostgreSQL.
async fn stored_bytes(s: &Server) -> Vec<u8> {
    let Some(db) = &s.db else { return folder_bytes(&s.data_dir()) };
    let store = casebridge_store::open(&db.url).await.unwrap();
    let mut out = store.settings_get().await.unwrap().unwrap_or_default().into_bytes();
    for v in store.settings_history(1000).await.unwrap() {
        out.extend(v.doc.into_bytes());
    }
    store.close().await;
    out
}

/// Every byte of the data folder's files, as text where it can be read.
fn folder_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_file() {
            out.extend(std::fs::read(e.path()).unwrap_or_default());
        }
    }
    out
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_need_their_key() {
    let key = [("CASEBRIDGE_SECRET_KEY", "a long random string for the test")];
    let mut s = Server::start_with(&key, &[]).await;
    let secret = "whsec-plain-text-4242";
    s.put_settings(settings(
        json!({"click_to_call": {"webhook_url": "https://cc.example/dial", "signing_secret": secret}}),
    ))
    .await;
    let bytes = stored_bytes(&s).await;
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is stored in clear");
    assert!(bytes.windows(10).any(|w| w == b"sealed:v1:"), "a sealed value is stored");

    // The same key opens it again.
    s.restart_with(&key).await;
    assert_eq!(s.get("/v1/settings").await["click_to_call"]["signing_secret"], "********");

    // Without the key the service refuses to start, and says which setting and what to do.
    s.kill();
    let mut serve = std::process::Command::new(bin());
    serve.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"]).arg(s.data_dir());
    if let Some(db) = &s.db {
        serve.arg("--database-url").arg(&db.url);
    }
    let out = serve.env_remove("CASEBRIDGE_SECRET_KEY").env_remove("CASEBRIDGE_API_TOKEN").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("click_to_call.signing_secret") && err.contains("CASEBRIDGE_SECRET_KEY"), "{err}");
}
