//! behaviour.md §3, §4, §6, §8, §13.1, §13.2: when records are created, appended, reopened.

use serde_json::{Value, json};

use crate::harness::*;

const T: &str = "2026-11-20T10:00:00Z";

fn phone(n: u32) -> Value {
    json!({"phone": format!("+1415555{:04}", n)})
}

#[tokio::test]
async fn voice_record_at_assignment_or_at_connection_with_delay() {
    let s = Server::start().await;
    let mut a = Ses::new("v1", T);
    s.send(vec![a.created("voice_inbound_ivr", phone(1), &["Q"]), a.assigned("ag-1")]).await;
    let v1 = s.session("v1").await;
    assert_eq!(v1["record_outcome"], "created", "assigned is the default trigger");
    assert!(has_rule(&v1, "records.trigger.assigned"));
    s.put_settings(settings(json!({"records": {"delay_call_until_connected": true}}))).await;
    let mut b = Ses::new("v2", T);
    s.send(vec![b.created("voice_inbound_ivr", phone(2), &["Q"]), b.assigned("ag-1")]).await;
    assert_eq!(s.session("v2").await["record_outcome"], "pending");
    s.send(vec![b.connected()]).await;
    let v2 = s.session("v2").await;
    assert_eq!(v2["record_outcome"], "created");
    assert!(has_rule(&v2, "records.delay_call_until_connected"));
}

#[tokio::test]
async fn outbound_record_at_creation_and_voicemail_always_new() {
    let s = Server::start().await;
    let mut o = Ses::new("o1", T);
    s.send(vec![o.created("voice_outbound", phone(3), &[])]).await;
    assert_eq!(s.session("o1").await["record_outcome"], "created");
    s.put_settings(settings(json!({"records": {"append_to_open_in_leaf_queue": true}}))).await;
    s.send(call("c1", T, "+14155550004", &["Q"])).await;
    let mut vm = Ses::new("vm1", "2026-11-20T11:00:00Z");
    s.send(vec![vm.created("voicemail", phone(4), &["Q"])]).await;
    let v = s.session("vm1").await;
    assert_eq!(v["record_outcome"], "created", "a voicemail never appends: {v}");
    assert_ne!(v["record_id"], s.session("c1").await["record_id"]);
    assert!(has_rule(&v, "conversation.voicemail"));
}

#[tokio::test]
async fn chat_record_at_connection_or_after_n_customer_messages() {
    let s = Server::start().await;
    let mut a = Ses::new("ch1", T);
    s.send(vec![a.created("messaging_inbound_web", phone(5), &["Chat"]), a.assigned("ag-1")]).await;
    assert_eq!(s.session("ch1").await["record_outcome"], "pending", "assignment is not a chat trigger");
    s.send(vec![a.connected()]).await;
    assert_eq!(s.session("ch1").await["record_outcome"], "created");

    s.put_settings(settings(json!({"records": {"delay_chat_until_customer_messages": 2}}))).await;
    let mut b = Ses::new("ch2", T);
    s.send(vec![
        b.created("messaging_inbound_web", phone(6), &["Chat"]),
        b.msg("customer"),
        b.assigned("ag-1"),
        b.connected(),
    ])
    .await;
    assert_eq!(s.session("ch2").await["record_outcome"], "pending");
    s.send(vec![b.msg("agent"), b.msg("customer")]).await;
    let ch2 = s.session("ch2").await;
    assert_eq!(ch2["record_outcome"], "created", "connected and 2 customer messages: {ch2}");

    let mut c = Ses::new("ch3", T);
    s.send(vec![
        c.created("messaging_inbound_web", phone(7), &["Chat"]),
        c.assigned("ag-1"),
        c.connected(),
        c.msg("customer"),
        c.ended(),
    ])
    .await;
    let ch3 = s.session("ch3").await;
    assert_eq!(ch3["record_outcome"], "none", "ended before N messages");
    assert!(has_rule(&ch3, "records.delay_chat_until_customer_messages"));
}

#[tokio::test]
async fn abandoned_calls_get_records_only_when_asked_and_never_with_delay() {
    let s = Server::start().await;
    let abandon = |id: &str, n: u32| {
        let mut a = Ses::new(id, T);
        vec![
            a.created("voice_inbound_ivr", phone(n), &["Q"]),
            a.ev(5, "session.queued", json!({"queue_path": ["Q"]})),
            a.abandoned(30),
            a.ended(),
        ]
    };
    s.send(abandon("ab1", 10)).await;
    let ab1 = s.session("ab1").await;
    assert_eq!(ab1["record_outcome"], "none");
    assert!(has_rule(&ab1, "records.abandoned_calls"));
    assert_eq!(ab1["missed_reason"], "abandoned_in_queue");

    s.put_settings(settings(json!({"records": {"abandoned_calls": true}}))).await;
    s.send(abandon("ab2", 11)).await;
    let rec = s.record_of("ab2").await;
    assert_eq!(rec["abandoned"], true);
    assert_eq!(rec["missed_reason"], "abandoned_in_queue");

    let (code, out) = s
        .call(
            reqwest::Method::PUT,
            "/v1/settings",
            Some(&json!({"records": {"abandoned_calls": true, "delay_call_until_connected": true}})),
        )
        .await;
    assert_eq!(code, 200);
    assert!(out["warnings"].as_array().unwrap().iter().any(|w| w["field"] == "records.abandoned_calls"), "{out}");
    s.send(abandon("ab3", 12)).await;
    let ab3 = s.session("ab3").await;
    assert_eq!(ab3["record_outcome"], "none");
    assert!(has_rule(&ab3, "records.delay_call_until_connected"));
}

#[tokio::test]
async fn abandoned_chat_modes_and_short_abandons() {
    let s = Server::start().await;
    let chat = |id: &str, n: u32, msgs: usize, after: i64| {
        let mut a = Ses::new(id, T);
        let mut v = vec![a.created("messaging_inbound_web", phone(n), &["Chat"])];
        for _ in 0..msgs {
            v.push(a.msg("customer"));
        }
        v.push(a.abandoned(after));
        v
    };
    s.send(chat("off", 20, 3, 60)).await;
    assert_eq!(s.session("off").await["record_outcome"], "none");
    s.put_settings(settings(json!({"records": {"abandoned_chats": {"mode": "all"}}}))).await;
    s.send(chat("all-short", 21, 0, 5)).await;
    let short = s.session("all-short").await;
    assert_eq!(short["record_outcome"], "created", "all includes short abandons");
    assert_eq!(short["missed_reason"], "short_abandoned");
    s.put_settings(settings(
        json!({"records": {"abandoned_chats": {"mode": "min_customer_messages", "min_customer_messages": 2}}}),
    ))
    .await;
    s.send(chat("min-1", 22, 1, 60)).await;
    s.send(chat("min-2", 23, 2, 60)).await;
    assert_eq!(s.session("min-1").await["record_outcome"], "none");
    let m2 = s.session("min-2").await;
    assert_eq!(m2["record_outcome"], "created");
    assert_eq!(m2["missed_reason"], "abandoned_in_ivr");
    assert_eq!(s.record_of("min-2").await["abandoned"], true);
}

#[tokio::test]
async fn append_to_latest_open_record_in_the_same_leaf_queue() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"records": {"append_to_open_in_leaf_queue": true}}))).await;
    s.send(call("a1", T, "+14155550030", &["Support", "Billing"])).await;
    s.send(call("a2", "2026-11-20T11:00:00Z", "+14155550030", &["Support", "Billing"])).await;
    s.send(call("a3", "2026-11-20T12:00:00Z", "+14155550030", &["Sales", "Billing"])).await;
    let (a1, a2, a3) = (s.session("a1").await, s.session("a2").await, s.session("a3").await);
    assert_eq!(a2["record_outcome"], "appended");
    assert_eq!(a2["record_id"], a1["record_id"]);
    assert!(has_rule(&a2, "records.append_to_open_in_leaf_queue"));
    assert_eq!(a3["record_outcome"], "created", "a leaf with the same name under another parent is another queue");
    let rec = s.record_of("a1").await;
    assert_eq!(rec["session_ids"], json!(["a1", "a2"]));
    assert_eq!(rec["title"], "IVR Call +18005550000", "append leaves the title unchanged");
}

#[tokio::test]
async fn append_requires_same_channel_when_asked() {
    let s = Server::start().await;
    s.put_settings(settings(
        json!({"records": {"append_to_open_in_leaf_queue": true, "append_requires_same_channel": true}}),
    ))
    .await;
    s.send(call("sc1", T, "+14155550031", &["Q"])).await;
    let mut chat = Ses::new("sc2", "2026-11-20T11:00:00Z");
    s.send(vec![chat.created("messaging_inbound_sms", phone(31), &["Q"]), chat.assigned("ag"), chat.connected()]).await;
    assert_eq!(s.session("sc2").await["record_outcome"], "created");
    s.send(call("sc3", "2026-11-20T12:00:00Z", "+14155550031", &["Q"])).await;
    assert_eq!(s.session("sc3").await["record_id"], s.session("sc1").await["record_id"]);
}

#[tokio::test]
async fn closed_record_within_d_days_is_reopened_to_default_open_status() {
    let s = Server::start().await;
    s.put_settings(settings(
        json!({"records": {"append_to_open_in_leaf_queue": true, "append_to_closed_within_days": 3}}),
    ))
    .await;
    s.send(call("r1", T, "+14155550040", &["Q"])).await;
    let rid = s.session("r1").await["record_id"].as_str().unwrap().to_string();
    let (c, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/crm/records/{rid}"),
            Some(&json!({"status": "closed", "at": "2026-11-20T12:00:00Z"})),
        )
        .await;
    assert_eq!(c, 200);
    s.send(call("r2", "2026-11-23T11:00:00Z", "+14155550040", &["Q"])).await;
    let r2 = s.session("r2").await;
    assert_eq!(r2["record_outcome"], "reopened", "{r2}");
    assert_eq!(r2["record_id"], rid.as_str());
    let rec = s.get(&format!("/v1/crm/records/{rid}")).await;
    assert_eq!(rec["status"], "open");
    assert_eq!(rec["is_closed"], false);
    // Closed again, and the next call is more than 3 days after the close.
    s.call(
        reqwest::Method::PATCH,
        &format!("/v1/crm/records/{rid}"),
        Some(&json!({"status": "solved", "at": "2026-11-23T12:00:00Z"})),
    )
    .await;
    s.send(call("r3", "2026-11-27T12:00:01Z", "+14155550040", &["Q"])).await;
    let r3 = s.session("r3").await;
    assert_eq!(r3["record_outcome"], "created");
    assert_ne!(r3["record_id"], rid.as_str());
}

#[tokio::test]
async fn skip_record_creation_still_appends_otherwise_links_per_setting() {
    let s = Server::start().await;
    s.send(call("s1", T, "+14155550050", &["Q"])).await;
    s.put_settings(settings(json!({"records": {"skip_creation": true, "append_to_open_in_leaf_queue": true}}))).await;
    s.send(call("s2", "2026-11-20T11:00:00Z", "+14155550050", &["Q"])).await;
    assert_eq!(s.session("s2").await["record_outcome"], "appended");
    s.send(call("s3", "2026-11-20T11:00:00Z", "+14155550050", &["Other"])).await;
    let s3 = s.session("s3").await;
    assert_eq!(s3["record_outcome"], "none");
    assert!(has_rule(&s3, "records.skip_creation"));
    assert!(has_rule(&s3, "session_data.unrecorded_session_link.account"));
    let acc = s.get(&format!("/v1/crm/accounts/{}", s3["account_id"].as_str().unwrap())).await;
    assert!(
        acc["activities"].as_array().unwrap().iter().any(|a| a["session_id"] == "s3" && a["record_id"].is_null()),
        "{acc}"
    );

    s.put_settings(settings(
        json!({"records": {"skip_creation": true}, "session_data": {"unrecorded_session_link": "latest_record"}}),
    ))
    .await;
    s.send(call("s4", "2026-11-20T12:00:00Z", "+14155550050", &["Other"])).await;
    let rec = s.record_of("s1").await;
    assert!(rec["activities"].as_array().unwrap().iter().any(|a| a["session_id"] == "s4"), "latest_record link: {rec}");
}

#[tokio::test]
async fn skip_account_creation_with_append_creates_a_new_record() {
    let s = Server::start().await;
    s.put_settings(settings(
        json!({"accounts": {"skip_creation": true}, "records": {"append_to_open_in_leaf_queue": true}}),
    ))
    .await;
    s.send(call("sa1", T, "+14155550060", &["Q"])).await;
    s.send(call("sa2", "2026-11-20T11:00:00Z", "+14155550060", &["Q"])).await;
    let (a, b) = (s.session("sa1").await, s.session("sa2").await);
    assert_eq!(b["record_outcome"], "created");
    assert_ne!(a["record_id"], b["record_id"], "no account, nothing to append to");
}

#[tokio::test]
async fn titles_render_variables_escapes_and_time_zone_and_tags_are_applied() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"time_zone": "Europe/Paris", "records": {
        "title_template": "{{{CALL_TYPE}}} {CALL_ID} {MENU_PATH} {PHONE_NUMBER} {LANGUAGE} {TIMESTAMP}",
        "tag_session_type": true, "tag_platform": true}})))
        .await;
    let mut a = Ses::new("t1", T);
    s.send(vec![a.ev(0, "session.created", json!({"channel": "voice", "session_type": "voice_inbound_ivr", "direction": "inbound",
        "customer": {"phone": "+14155550070"}, "queue_path": ["Support", "Billing"], "language": "fr", "dialed_number": "+33123456789"})), a.assigned("ag")]).await;
    let rec = s.record_of("t1").await;
    assert_eq!(rec["title"], "{IVR Call} t1 Support > Billing +33123456789 fr 2026-11-20T11:00:00+01:00");
    assert_eq!(rec["tags"], json!(["Voice Inbound (IVR)", "casebridge"]));
    let mut o = Ses::new("t2", T);
    s.put_settings(settings(json!({"records": {"title_template": "{CALL_TYPE} {PHONE_NUMBER} {TIMESTAMP}"}}))).await;
    s.send(vec![o.created("voice_outbound", json!({"phone": "+14155550071"}), &[])]).await;
    assert_eq!(
        s.record_of("t2").await["title"],
        "Outbound Call +14155550071 2026-11-20T10:00:00Z",
        "outbound: the customer's number, UTC with Z"
    );
}

#[tokio::test]
async fn default_owner_owns_records_created_before_assignment() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"records": {"default_owner": "admin-7", "abandoned_calls": true}}))).await;
    let mut vm = Ses::new("do1", T);
    s.send(vec![vm.created("voicemail", phone(80), &["Q"])]).await;
    assert_eq!(s.record_of("do1").await["owner_agent_id"], "admin-7");
    s.send(call("do2", T, "+14155550081", &["Q"])).await;
    assert_eq!(s.record_of("do2").await["owner_agent_id"], "ag-1", "an assigned agent owns the record");
}

#[tokio::test]
async fn missed_session_reasons() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"records": {"abandoned_calls": true}}))).await;
    let mut ivr = Ses::new("mr-ivr", T);
    let mut after = Ses::new("mr-after", T);
    let mut platform = Ses::new("mr-platform", T);
    s.send(vec![
        ivr.created("voice_inbound_ivr", phone(90), &[]),
        ivr.abandoned(10),
        after.created("voice_inbound_ivr", phone(91), &["Q"]),
        after.ev(1, "session.queued", json!({"queue_path": ["Q"]})),
        after.assigned("ag-2"),
        after.abandoned(10),
        platform.created("voice_inbound_ivr", phone(92), &["Q"]),
        platform.ev(1, "session.queued", json!({"queue_path": ["Q"]})),
        platform.ended(),
    ])
    .await;
    assert_eq!(s.session("mr-ivr").await["missed_reason"], "abandoned_in_ivr");
    assert_eq!(s.record_of("mr-after").await["missed_reason"], "abandoned_after_assignment");
    let p = s.record_of("mr-platform").await;
    assert_eq!(p["missed_reason"], "no_agent_available");
    assert!(p["activities"][0]["body"]["missed_reason"] == "no_agent_available", "{p}");
}
