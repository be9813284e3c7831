//! The generic CTI format (newCall, answer, hangup) through HTTP: out of order and repeated,
//! a call ends like its own-schema twin; the token is checked; newCall is answered as phone
//! systems expect.

use serde_json::{Value, json};

use crate::harness::{Server, Ses, outcome, raw, settled_in};

const TOKEN: &str = "cti-token-0123456789abcdef";

async fn start() -> Server {
    let s = Server::start().await;
    s.put_settings(json!({"region": "DE", "ingest": {"cti": {"enabled": true, "token": TOKEN,
        "blocked_numbers": ["+49 30 9999999"],
        "mapping": {"queues": {"billing": "Support > Billing"}, "agents": {"emma@chrispresso.com": "agent-7"}}}}}))
        .await;
    s
}

async fn post(s: &Server, token: &str, v: &Value) -> (u16, Value) {
    raw(s, &format!("/v1/ingest/cti/{token}?wait=20"), &[], "application/json", v.to_string()).await
}

fn call(event: &str, id: &str) -> Value {
    let mut v = json!({"event": event, "from": "493023125741", "to": "492214710334", "direction": "in", "callId": id});
    match event {
        "newCall" => v["queue"] = json!("billing"),
        "answer" => v["answeringNumber"] = json!("emma@chrispresso.com"),
        _ => {
            v["answeringNumber"] = json!("emma@chrispresso.com");
            v["cause"] = json!("normalClearing");
        }
    }
    v
}

#[tokio::test]
async fn a_call_posted_backwards_and_twice_ends_like_its_own_schema_twin() {
    let s = start().await;
    for e in ["hangup", "answer", "answer", "newCall", "hangup"] {
        let (code, out) = post(&s, TOKEN, &call(e, "call-cti-1")).await;
        assert_eq!((code, out.clone()), (200, json!({})), "{e}: {out}");
    }
    let id = "cti:call-cti-1";
    let sess = settled_in(&s, id, "ended").await;
    assert_eq!(sess["native_events"].as_array().map(Vec::len), Some(3), "{sess}");

    let own = Server::start().await;
    own.put_settings(json!({"region": "DE"})).await;
    let mut c = Ses::new("call-1", "2026-11-20T10:00:00Z");
    let mut created = c.created("voice_inbound_ivr", json!({"phone": "493023125741"}), &["Support", "Billing"]);
    created["data"]["dialed_number"] = json!("492214710334");
    own.send(vec![created, c.assigned("agent-7"), c.connected(), c.ended()]).await;
    settled_in(&own, "call-1", "ended").await;
    assert_eq!(outcome(&s, id).await, outcome(&own, "call-1").await);
}

#[tokio::test]
async fn a_caller_who_hangs_up_before_pickup_abandons() {
    let s = start().await;
    let mut hangup = call("hangup", "call-cti-2");
    hangup["cause"] = json!("cancel");
    hangup.as_object_mut().unwrap().remove("answeringNumber");
    assert_eq!(post(&s, TOKEN, &hangup).await.0, 200);
    assert_eq!(post(&s, TOKEN, &call("newCall", "call-cti-2")).await.0, 200);
    let sess = settled_in(&s, "cti:call-cti-2", "ended").await;
    assert_eq!(sess["abandoned"], true, "{sess}");
}

#[tokio::test]
async fn forms_are_read_and_blocked_callers_rejected() {
    let s = start().await;
    let form = "event=newCall&from=49309999999&to=492214710334&direction=in&callId=call-cti-3&user%5B%5D=Emma";
    let (code, out) =
        raw(&s, &format!("/v1/ingest/cti/{TOKEN}?wait=20"), &[], "application/x-www-form-urlencoded", form).await;
    assert_eq!((code, out.clone()), (200, json!({"action": "reject", "reason": "busy"})), "{out}");
    settled_in(&s, "cti:call-cti-3", "created").await;
}

#[tokio::test]
async fn a_wrong_token_or_a_malformed_event_is_refused_and_nothing_is_stored() {
    let s = start().await;
    let (code, out) = post(&s, "not-the-token-0123456789", &call("newCall", "call-cti-4")).await;
    assert_eq!(code, 401, "{out}");
    assert!(out["error"].is_string(), "phone systems read error: {out}");
    let mut bad = call("newCall", "call-cti-4");
    bad.as_object_mut().unwrap().remove("callId");
    bad["direction"] = json!("sideways");
    let (code, out) = post(&s, TOKEN, &bad).await;
    assert_eq!(code, 422, "{out}");
    let fields: Vec<&str> = out["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["callId", "direction"], "{out}");
    let (code, _) = s.call(reqwest::Method::GET, "/v1/sessions/cti:call-cti-4", None).await;
    assert_eq!(code, 404);
    s.put_settings(json!({})).await;
    assert_eq!(post(&s, TOKEN, &call("newCall", "call-cti-5")).await.0, 404);
}

#[tokio::test]
async fn simulate_reads_a_file_of_cti_events() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cti.ndjson");
    let lines: Vec<String> = [("newCall", "10:00:00"), ("answer", "10:00:20"), ("hangup", "10:03:00")]
        .iter()
        .map(|(e, t)| {
            let mut v = call(e, "sim-1");
            v["at"] = json!(format!("2026-11-20T{t}Z"));
            v.to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = std::process::Command::new(crate::harness::bin())
        .args(["simulate", "--source", "cti", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((line["session_id"].as_str(), line["record_outcome"].as_str()), (Some("cti:sim-1"), Some("created")));
}
