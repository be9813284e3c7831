//! api.md: event intake, sessions API, settings API, auth, errors, operations.

use serde_json::{Value, json};

use crate::harness::*;

const T: &str = "2026-11-20T10:00:00Z";

#[tokio::test]
async fn one_object_array_and_ndjson_are_accepted_and_duplicates_change_nothing() {
    let s = Server::start().await;
    let evs = call("d1", T, "+14155550200", &["Q"]);
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&evs[0])).await;
    assert_eq!((c, v["accepted"].clone()), (202, json!(1)));
    let ndjson: String = evs[1..].iter().map(|e| format!("{e}\n")).collect();
    let r = s
        .http
        .post(format!("{}/v1/events?wait=10", s.base))
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["accepted"], 3);
    assert_eq!(v["settled"], true);
    let before = s.record_of("d1").await;
    let again = s.send(evs.clone()).await;
    assert_eq!(again, json!({"accepted": 0, "duplicates": 4, "settled": true}));
    assert_eq!(s.records("session_id=d1").await.len(), 1);
    assert_eq!(s.record_of("d1").await, before, "a replayed batch changes nothing");
}

#[tokio::test]
async fn an_invalid_batch_stores_nothing_and_names_every_bad_event() {
    let s = Server::start().await;
    let mut evs = call("bad", T, "+14155550201", &["Q"]);
    evs[1]["data"]["agent"] = json!(42);
    evs[2]["type"] = json!("session.exploded");
    evs[3]["at"] = json!("yesterday");
    evs[0]["unknown_field"] = json!("ignored");
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&Value::Array(evs))).await;
    assert_eq!(c, 422, "{v}");
    let errors = v["errors"].as_array().unwrap();
    let idx: Vec<u64> = errors.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, vec![1, 2, 3], "{v}");
    assert!(errors[0]["field"].as_str().unwrap().starts_with("data.agent"), "{v}");
    assert_eq!(errors[1]["field"], "type");
    assert_eq!(errors[2]["field"], "at");
    let (c, _) = s.call(reqwest::Method::GET, "/v1/sessions/bad", None).await;
    assert_eq!(c, 404, "nothing was stored");
    // Channel and session type must agree.
    let mut e = Ses::new("x", T);
    let mut ev = e.created("voice_inbound_ivr", json!({}), &[]);
    ev["data"]["channel"] = json!("chat");
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&ev)).await;
    assert_eq!((c, v["errors"][0]["field"].clone()), (422, json!("data.channel")));
    let r = s
        .http
        .post(format!("{}/v1/events", s.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn late_and_out_of_order_events() {
    let s = Server::start().await;
    let mut a = Ses::new("late", T);
    let created = a.created("voice_inbound_ivr", json!({"phone": "+14155550202"}), &["Q"]);
    let connected = a.connected();
    let assigned = a.assigned("ag-9");
    // connected arrives first, before even session.created.
    s.send(vec![connected.clone()]).await;
    assert_eq!(s.session("late").await["state"], "waiting");
    s.send(vec![created]).await;
    let v = s.session("late").await;
    assert_eq!(v["record_outcome"], "created", "connected implies the assignment: {v}");
    s.send(vec![assigned]).await;
    let v = s.session("late").await;
    assert_eq!(v["agent_id"], "ag-9");
    assert!(has_rule(&v, "events.late"));
    assert_eq!(s.records("session_id=late").await.len(), 1, "a late assignment never makes a second record");
}

#[tokio::test]
async fn sessions_of_an_account_are_listed_newest_first_in_pages() {
    let s = Server::start().await;
    for (i, t) in ["2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", "2026-11-20T12:00:00Z"].iter().enumerate() {
        s.send(call(&format!("l{i}"), t, "+14155550203", &["Q"])).await;
    }
    let acc = s.session("l0").await["account_id"].as_str().unwrap().to_string();
    let p1 = s.get(&format!("/v1/sessions?account_id={acc}&limit=2")).await;
    let ids: Vec<&str> = p1["sessions"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["l2", "l1"]);
    let cur = p1["next_cursor"].as_str().unwrap();
    let p2 = s.get(&format!("/v1/sessions?account_id={acc}&limit=2&cursor={}", urlencode(cur))).await;
    assert_eq!(p2["sessions"][0]["id"], "l0");
    assert!(p2["next_cursor"].is_null());
}

fn urlencode(s: &str) -> String {
    s.replace('|', "%7C").replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn settings_report_every_error_and_refused_saves_change_nothing() {
    let s = Server::start().await;
    let before = s.get("/v1/settings").await;
    assert_eq!(before["records"]["title_template"], "{CALL_TYPE} {PHONE_NUMBER}");
    let (c, v) = s
        .call(
            reqwest::Method::PUT,
            "/v1/settings",
            Some(&json!({
                "region": "XX", "time_zone": "Mars/Olympus",
                "accounts": {"skip_lookup": true},
                "records": {"append_to_open_in_leaf_queue": true, "title_template": "{CALL_TYPE} {NOPE}"},
            })),
        )
        .await;
    assert_eq!(c, 422);
    let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    for f in [
        "region",
        "time_zone",
        "records.append_to_open_in_leaf_queue",
        "records.title_template",
        "session_data.unrecorded_session_link",
    ] {
        assert!(fields.contains(&f), "{f} missing from {v}");
    }
    assert_eq!(s.get("/v1/settings").await, before, "nothing saved");
    let (c, v) = s
        .call(reqwest::Method::PUT, "/v1/settings", Some(&json!({"records": {"abandoned_calls": "yes"}, "bogus": 1})))
        .await;
    assert_eq!(c, 422);
    let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"bogus") && fields.iter().any(|f| f.starts_with("records")), "{v}");
}

#[tokio::test]
async fn token_auth_problem_json_and_body_limit() {
    let s = Server::start_with(&[("CASEBRIDGE_API_TOKEN", "s3cret")], &["--max-body-bytes", "2048"]).await;
    let r = s.http.get(format!("{}/v1/settings", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = s.http.get(format!("{}/v1/settings", s.base)).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s.http.post(format!("{}/v1/events", s.base)).json(&call("x", T, "1", &[])[0]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(s.http.get(format!("{}/healthz", s.base)).send().await.unwrap().status(), 200);
    let (c, _) = s.call(reqwest::Method::GET, "/v1/sessions/x", None).await;
    assert_eq!(c, 404, "the unauthenticated POST stored nothing");
    let big = Value::Array((0..40).flat_map(|i| call(&format!("b{i}"), T, "+14155550000", &["Q"])).collect());
    let (c, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&big)).await;
    assert_eq!(c, 413, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("2048"));
}

#[test]
fn refuses_to_start_on_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--bind", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("CASEBRIDGE_API_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CASEBRIDGE_API_TOKEN"));
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let s = Server::start().await;
    s.send(call("m", T, "+14155550204", &["Q"])).await;
    assert_eq!(s.get("/healthz").await["status"], "ok");
    assert_eq!(s.get("/readyz").await["status"], "ready");
    let (c, text) = s.call(reqwest::Method::GET, "/metrics", None).await;
    assert_eq!(c, 200);
    let text = text.as_str().unwrap().to_string();
    for m in [
        "casebridge_events_accepted_total",
        "casebridge_crm_writes_total",
        "casebridge_decisions_total",
        "casebridge_outbox",
        "casebridge_rules_step_seconds",
    ] {
        assert!(text.contains(m), "{m} missing");
    }
    let api = s.get("/openapi.json").await;
    for p in ["/v1/events", "/v1/sessions/{id}", "/v1/settings", "/v1/crm/records/{id}", "/v1/outbox"] {
        assert!(api["paths"][p].is_object(), "{p} missing from the OpenAPI document");
    }
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut s = Server::start().await;
    s.send(call("g", T, "+14155550205", &["Q"])).await;
    let mut child = s.child.take().unwrap();
    let st = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(std::time::Instant::now() < deadline, "still running 10 s after SIGTERM");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(code.success(), "{code:?}");
    s.restart().await;
    assert_eq!(s.session("g").await["record_outcome"], "created", "data survives the restart");
}

fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z._]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("session.created"),
            Just("session.assigned"),
            Just("message.created"),
            Just("2026-11-20T10:00:00Z")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("type".to_string()),
                    Just("data".to_string()),
                    Just("at".to_string()),
                    Just("session_id".to_string()),
                    Just("records".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[tokio::test]
async fn fuzzed_bodies_get_4xx_and_store_nothing() {
    use proptest::strategy::{Strategy, ValueTree};
    let s = Server::start().await;
    let before = s.get("/v1/settings").await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = arb_json();
    let mut refused = 0;
    for _ in 0..300 {
        let v = strategy.new_tree(&mut runner).unwrap().current();
        for path in ["/v1/events", "/v1/crm/accounts", "/v1/crm/records"] {
            let (c, out) = s.call(reqwest::Method::POST, path, Some(&v)).await;
            // A generated body may by chance be valid (201/202); anything else must be a 4xx.
            assert!((400..500).contains(&c) || c == 201 || c == 202, "{path} {v} -> {c} {out}");
            if c >= 400 {
                assert_eq!(out["status"], c, "problem+json body: {out}");
                refused += 1;
            }
        }
        let (c, out) = s.call(reqwest::Method::PUT, "/v1/settings", Some(&v)).await;
        if c == 200 {
            s.put_settings(before.clone()).await;
        } else {
            assert!((400..500).contains(&c), "settings {v} -> {c} {out}");
        }
    }
    assert!(refused > 800, "most fuzzed bodies are refused ({refused})");
    let (c, _) = s.call(reqwest::Method::GET, "/healthz", None).await;
    assert_eq!(c, 200, "still up");
}
