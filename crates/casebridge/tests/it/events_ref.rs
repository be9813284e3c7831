//! Event ids name one event, bodies are JSON, ids and scores are checked, and every example of
//! docs/events.md is accepted.

use serde_json::{Value, json};

use crate::harness::*;

const T: &str = "2026-11-20T10:00:00Z";

async fn raw(s: &Server, method: reqwest::Method, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
    let mut r = s.http.request(method, format!("{}{path}", s.base)).body(body.to_string());
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{v}");
    }
    (status, v)
}

#[tokio::test]
async fn an_id_reused_with_other_content_is_a_conflict_and_stores_nothing() {
    let s = Server::start().await;
    let first = call("a", T, "+14155550300", &["Q"]);
    s.send(first.clone()).await;
    // A platform numbering events per session: session b's first event reuses a-1.
    let mut b = Ses::new("b", T);
    let mut reused = b.created("voice_inbound_ivr", json!({"phone": "+14155550301"}), &["Q"]);
    reused["id"] = json!("a-1");
    let fresh = b.assigned("ag-1");
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&json!([fresh, reused]))).await;
    assert_eq!(c, 409, "{v}");
    assert_eq!(v["type"], "urn:casebridge:problem:event-id-conflict", "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("\"a-1\"") && detail.contains("session.created") && detail.contains("\"a\""), "{v}");
    assert_eq!(v["errors"][0]["index"], 1, "{v}");
    assert_eq!(v["errors"][0]["earlier"], json!({"session_id": "a", "type": "session.created"}), "{v}");
    let (c, _) = s.call(reqwest::Method::GET, "/v1/sessions/b", None).await;
    assert_eq!(c, 404, "nothing of the batch was stored");
    // Same id, same session and type, other time: still another event.
    let mut later = first[0].clone();
    later["at"] = json!("2026-11-20T11:00:00Z");
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&later)).await;
    assert_eq!(c, 409, "{v}");
    // An exact repeat is a duplicate, whatever the member order or time zone spelling.
    let mut repeat = first[1].clone();
    let at = chrono::DateTime::parse_from_rfc3339(repeat["at"].as_str().unwrap()).unwrap();
    repeat["at"] = json!(at.with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap()).to_rfc3339());
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&json!([first[0], repeat]))).await;
    assert_eq!((c, v), (202, json!({"accepted": 0, "duplicates": 2})));
}

#[tokio::test]
async fn bodies_must_be_json_or_ndjson() {
    let s = Server::start().await;
    let ev = call("ct", T, "+14155550310", &["Q"]).remove(0).to_string();
    for ct in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x"), None]
    {
        let (c, v) = raw(&s, reqwest::Method::POST, "/v1/events", ct, &ev).await;
        assert_eq!(c, 415, "{ct:?}: {v}");
        assert_eq!(v["accepted"], json!(["application/json", "application/*+json", "application/x-ndjson"]));
    }
    let (c, _) = s.call(reqwest::Method::GET, "/v1/sessions/ct", None).await;
    assert_eq!(c, 404, "nothing was stored");
    let before = s.get("/v1/settings").await;
    let body = json!({"records": {"abandoned_calls": true}}).to_string();
    for ct in [Some("text/plain"), Some("application/x-ndjson"), None] {
        let (c, v) = raw(&s, reqwest::Method::PUT, "/v1/settings", ct, &body).await;
        assert_eq!(c, 415, "{ct:?}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("application/json"), "{v}");
    }
    assert_eq!(s.get("/v1/settings").await, before, "nothing saved");
    let (c, v) = raw(&s, reqwest::Method::POST, "/v1/events", Some("application/json; charset=utf-8"), &ev).await;
    assert_eq!((c, v["accepted"].clone()), (202, json!(1)));
}

#[tokio::test]
async fn ids_and_scores_are_checked() {
    let s = Server::start().await;
    let mut e = Ses::new("chk", T);
    let created = e.created("voice_inbound_ivr", json!({}), &[]);
    let mut nul = created.clone();
    nul["id"] = json!("chk\u{0}1");
    let mut nul_session = created.clone();
    nul_session["session_id"] = json!("chk\u{0}");
    let mut blank = created.clone();
    blank["session_id"] = json!("   ");
    let csat = e.ev(5, "csat.submitted", json!({"score": 11}));
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&json!([nul, nul_session, blank, csat]))).await;
    assert_eq!(c, 422, "{v}");
    let got: Vec<(u64, &str)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [(0, "id"), (1, "session_id"), (2, "session_id"), (3, "data.score")], "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("control characters"), "{v}");
    assert!(v["errors"][3]["message"].as_str().unwrap().contains("from 0 to 10"), "{v}");
    let (c, _) = s.call(reqwest::Method::GET, "/v1/sessions/chk", None).await;
    assert_eq!(c, 404);
    let ok = e.ev(5, "csat.submitted", json!({"score": 10}));
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&json!([created, ok]))).await;
    assert_eq!((c, v["accepted"].clone()), (202, json!(2)), "{v}");
}

#[tokio::test]
async fn every_example_of_the_event_reference_is_accepted() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events.md")).unwrap();
    let examples: Vec<Value> =
        doc.split("```json\n").skip(1).map(|b| serde_json::from_str(b.split("```").next().unwrap()).unwrap()).collect();
    assert_eq!(examples.len(), 14, "one example per event type");
    let s = Server::start().await;
    for ex in &examples {
        let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(ex)).await;
        assert_eq!((c, v["accepted"].clone()), (202, json!(1)), "{ex}: {v}");
    }
}

#[tokio::test]
async fn lone_events_sharing_a_commit_conflict_alone() {
    let s = Server::start().await;
    let earlier = call("lone", T, "+14155550320", &["Q"]);
    s.send(earlier.clone()).await;
    // Single-event requests sent at once share durable commits: a conflicting one among
    // them is refused alone, the fresh ones are stored.
    let mut fresh = Vec::new();
    let mut clashing = Vec::new();
    for i in 0..24 {
        fresh.push(call(&format!("lone-{i}"), T, "+14155550321", &["Q"]).remove(0));
        let mut c = earlier[i % earlier.len()].clone();
        c["at"] = json!("2026-11-20T12:00:00Z");
        clashing.push(c);
    }
    let mut posts = tokio::task::JoinSet::new();
    for (e, ok) in fresh.iter().zip(&clashing).flat_map(|(f, c)| [(f, true), (c, false)]) {
        let req = s.http.post(format!("{}/v1/events", s.base)).json(e);
        posts.spawn(async move {
            let r = req.send().await.expect("request");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null), ok)
        });
    }
    while let Some(r) = posts.join_next().await {
        let (c, v, ok) = r.expect("task");
        if ok {
            assert_eq!((c, v), (202, json!({"accepted": 1, "duplicates": 0})));
        } else {
            assert_eq!(c, 409, "{v}");
        }
    }
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&json!(fresh))).await;
    assert_eq!((c, v), (202, json!({"accepted": 0, "duplicates": 24})), "every fresh event was stored");
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&json!(earlier))).await;
    assert_eq!((c, v["accepted"].clone()), (202, json!(0)), "the earlier events are as they were");
}
