//! behaviour.md §5, §7, §13.3: conversation rules and session data.

use serde_json::json;

use crate::harness::*;

const T: &str = "2026-11-20T10:00:00Z";

#[tokio::test]
async fn outbound_appends_to_origin_record_or_latest_open() {
    let s = Server::start().await;
    let acc = s.create_account(json!({"kind": "contact", "phone": "+14155550100"})).await;
    let origin = s
        .create_record(json!({"title": "Billing dispute", "account_id": acc["id"], "at": "2026-11-01T00:00:00Z"}))
        .await;
    let latest =
        s.create_record(json!({"title": "Later", "account_id": acc["id"], "at": "2026-11-10T00:00:00Z"})).await;
    let mut o1 = Ses::new("o1", T);
    s.send(vec![o1.ev(
        0,
        "session.created",
        json!({"channel": "voice", "session_type": "voice_outbound", "direction": "outbound",
        "customer": {"phone": "+14155550100"}, "origin_record_id": origin["id"]}),
    )])
    .await;
    let v = s.session("o1").await;
    assert_eq!(v["record_id"], origin["id"]);
    assert!(has_rule(&v, "conversation.outbound.origin_record"));
    let mut o2 = Ses::new("o2", T);
    s.send(vec![o2.created("voice_outbound", json!({"phone": "+14155550100"}), &[])]).await;
    let v = s.session("o2").await;
    assert_eq!(v["record_id"], latest["id"], "most recent record is open");
    s.call(
        reqwest::Method::PATCH,
        &format!("/v1/crm/records/{}", latest["id"].as_str().unwrap()),
        Some(&json!({"status": "closed"})),
    )
    .await;
    let mut o3 = Ses::new("o3", T);
    s.send(vec![o3.created("voice_outbound", json!({"phone": "+14155550100"}), &[])]).await;
    assert_eq!(s.session("o3").await["record_outcome"], "created", "most recent is closed: new record");
}

#[tokio::test]
async fn callback_appends_to_the_related_sessions_record() {
    let s = Server::start().await;
    s.send(call("first", T, "+14155550101", &["Q"])).await;
    let mut cb = Ses::new("cb", "2026-11-20T10:10:00Z");
    s.send(vec![cb.ev(
        0,
        "session.created",
        json!({"channel": "voice", "session_type": "voice_outbound", "direction": "outbound",
        "customer": {"phone": "+14155550101"}, "related_session_id": "first"}),
    )])
    .await;
    let v = s.session("cb").await;
    assert_eq!(v["record_outcome"], "appended");
    assert_eq!(v["record_id"], s.session("first").await["record_id"]);
    assert!(has_rule(&v, "conversation.callback"));
}

#[tokio::test]
async fn transfer_reassigns_the_record_and_moves_the_queue_only_before_the_record() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"records": {"delay_call_until_connected": true}}))).await;
    let mut a = Ses::new("tr", T);
    s.send(vec![
        a.created("voice_inbound_ivr", json!({"phone": "+14155550102"}), &["Support"]),
        a.assigned("ag-1"),
        a.ev(5, "session.transferred", json!({"queue_path": ["Support", "Tier 2"]})),
        a.assigned("ag-2"),
        a.connected(),
        a.ev(30, "session.transferred", json!({"agent": {"id": "ag-3"}, "queue_path": ["Sales"]})),
        a.ended(),
    ])
    .await;
    let v = s.session("tr").await;
    assert_eq!(v["leaf_queue"], "Support > Tier 2");
    let rec = s.record_of("tr").await;
    assert_eq!(rec["leaf_queue"], "Support > Tier 2");
    assert_eq!(rec["owner_agent_id"], "ag-3");
    // One session, one log: one activity with every leg in it.
    let acts = rec["activities"].as_array().unwrap();
    assert_eq!(acts.len(), 1, "{rec}");
    assert_eq!(acts[0]["body"]["legs"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn queue_fan_out_writes_one_record_and_one_activity() {
    let s = Server::start().await;
    let mut a = Ses::new("fan", T);
    s.send(vec![
        a.created("voice_inbound_ivr", json!({"phone": "+14155550103"}), &["Q"]),
        a.assigned("ag-1"),
        a.assigned("ag-2"),
        a.assigned("ag-3"),
        a.connected(),
        a.ended(),
    ])
    .await;
    let recs = s.records("session_id=fan").await;
    assert_eq!(recs.len(), 1);
    let rec = s.record_of("fan").await;
    assert_eq!(rec["activities"].as_array().unwrap().len(), 1);
    assert_eq!(rec["owner_agent_id"], "ag-3");
}

#[tokio::test]
async fn voicemail_updates_reach_its_record() {
    let s = Server::start().await;
    let mut vm = Ses::new("vm", T);
    s.send(vec![
        vm.created("voicemail", json!({"phone": "+14155550104"}), &["Q"]),
        vm.ev(30, "recording.available", json!({"url": "https://files.example/vm.mp3"})),
        vm.ended(),
        vm.ev(600, "voicemail.updated", json!({"action": "read", "agent": {"id": "ag-1"}})),
        vm.ev(60, "voicemail.updated", json!({"action": "closed", "agent": {"id": "ag-1"}})),
    ])
    .await;
    let rec = s.record_of("vm").await;
    assert_eq!(rec["status"], "closed");
    let notes: Vec<&str> = rec["notes"].as_array().unwrap().iter().map(|n| n["body"].as_str().unwrap()).collect();
    assert!(notes.contains(&"Voicemail read by agent ag-1"), "{notes:?}");
    assert!(rec["attachments"].as_array().unwrap().iter().any(|a| a["url"] == "https://files.example/vm.mp3"));
    assert_eq!(
        rec["activities"][0]["body"]["updates"].as_array().unwrap().len(),
        2,
        "session data updated after the end"
    );
}

#[tokio::test]
async fn recording_transcript_csat_smart_actions_and_custom_data() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"custom_data_mapping": {"plan": "customer_plan"}}))).await;
    let mut c = Ses::new("rich", T);
    s.send(vec![
        c.created("messaging_inbound_app", json!({"phone": "+14155550105"}), &["Chat"]),
        c.ev(1, "custom_data.updated", json!({"data": {"plan": "gold", "other": 1}})),
        c.ev(1, "smart_action.completed", json!({"action": "identity_check", "result": {"verified": true}, "files": [{"name": "id.png", "url": "https://files.example/id.png"}]})),
        c.ev(1, "smart_action.failed", json!({"action": "payment", "error": "card declined", "user_error": true})),
        c.ev(1, "smart_action.failed", json!({"action": "photo", "error": "timeout", "user_error": false})),
        c.assigned("ag-1"),
        c.connected(),
        c.msg("customer"),
        c.msg("agent"),
        c.ended(),
        c.ev(30, "csat.submitted", json!({"score": 5, "comment": "great"})),
    ])
    .await;
    let rec = s.record_of("rich").await;
    assert_eq!(rec["custom_fields"]["customer_plan"], "gold", "kept until the record existed: {rec}");
    let notes: Vec<String> =
        rec["notes"].as_array().unwrap().iter().map(|n| n["body"].as_str().unwrap().to_string()).collect();
    assert!(notes.iter().any(|n| n.contains("identity_check") && n.contains("verified")), "{notes:?}");
    assert!(notes.iter().any(|n| n == "Smart action payment failed: card declined"));
    assert!(!notes.iter().any(|n| n.contains("photo")), "non-customer failures are not written");
    assert!(notes.iter().any(|n| n == "CSAT score: 5 (great)"));
    let atts = rec["attachments"].as_array().unwrap();
    assert!(atts.iter().any(|a| a["name"] == "id.png"));
    let transcript = atts.iter().find(|a| a["name"] == "transcript-rich.txt").expect("transcript attached");
    let (code, text) = s.call(reqwest::Method::GET, transcript["url"].as_str().unwrap(), None).await;
    assert_eq!(code, 200);
    assert!(text.as_str().unwrap().contains("customer: hello"));
    assert_eq!(rec["activities"][0]["body"]["csat_score"], 5.0, "CSAT after the end updates the session data");

    s.put_settings(settings(json!({"session_data": {"attach_recordings": false}}))).await;
    let mut v = Ses::new("norec", T);
    s.send(vec![
        v.created("voice_inbound_ivr", json!({"phone": "+14155550106"}), &["Q"]),
        v.assigned("a"),
        v.connected(),
        v.ev(5, "recording.available", json!({"url": "https://files.example/r.mp3"})),
        v.ended(),
    ])
    .await;
    assert!(s.record_of("norec").await["attachments"].as_array().unwrap().is_empty());
    let mut w = Ses::new("withrec", T);
    s.put_settings(settings(json!({}))).await;
    s.send(vec![
        w.created("voice_inbound_ivr", json!({"phone": "+14155550107"}), &["Q"]),
        w.assigned("a"),
        w.connected(),
        w.ended(),
        w.ev(5, "recording.available", json!({"url": "https://files.example/w.mp3"})),
    ])
    .await;
    assert_eq!(s.record_of("withrec").await["attachments"][0]["url"], "https://files.example/w.mp3");
}

#[tokio::test]
async fn session_data_as_session_object_and_updates_kept_without_record() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"session_data": {"target": "session_object"}}))).await;
    s.send(call("so", T, "+14155550108", &["Q"])).await;
    let rec = s.record_of("so").await;
    assert!(rec["activities"].as_array().unwrap().is_empty());
    let so = &rec["session_objects"][0];
    assert_eq!(so["session_id"], "so");
    assert_eq!(so["account_id"], rec["account_id"]);
    // A chat that never gets a record keeps its custom data on the session data.
    s.put_settings(settings(json!({"custom_data_mapping": {"plan": "customer_plan"}}))).await;
    let mut c = Ses::new("lost", T);
    s.send(vec![
        c.created("messaging_inbound_web", json!({"phone": "+14155550109"}), &["Chat"]),
        c.ev(1, "custom_data.updated", json!({"data": {"plan": "gold"}})),
        c.abandoned(60),
        c.ended(),
    ])
    .await;
    let v = s.session("lost").await;
    assert_eq!(v["record_outcome"], "none");
    let acc = s.get(&format!("/v1/crm/accounts/{}", v["account_id"].as_str().unwrap())).await;
    let act = acc["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["session_id"] == "lost")
        .expect("activity on the account");
    assert_eq!(act["body"]["custom_data"]["plan"], "gold");
}

#[tokio::test]
async fn session_data_rewritten_in_one_delivery_is_sent_once() {
    let s = Server::start().await;
    let mut c = Ses::new("twice", T);
    // One request: the end and the CSAT after it each write the session data, and both writes
    // wait in the same lane; only the later one goes to the CRM.
    s.send(vec![
        c.created("voice_inbound_ivr", json!({"phone": "+14155550110"}), &["Q"]),
        c.assigned("a"),
        c.connected(),
        c.ended(),
        c.ev(30, "csat.submitted", json!({"score": 4})),
    ])
    .await;
    let rec = s.record_of("twice").await;
    let acts = rec["activities"].as_array().unwrap();
    assert_eq!(acts.len(), 1, "{rec}");
    assert_eq!(acts[0]["body"]["csat_score"], 4.0);
    let v = s.session("twice").await;
    let lines: Vec<&str> = v["timeline"].as_array().unwrap().iter().filter_map(|l| l["summary"].as_str()).collect();
    assert!(lines.iter().any(|l| l.contains("superseded")), "{lines:?}");
    let outbox = s.get("/v1/outbox?state=pending").await;
    assert!(outbox["writes"].as_array().is_some_and(|w| w.is_empty()), "{outbox}");
}
