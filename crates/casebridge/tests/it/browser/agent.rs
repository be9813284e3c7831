//! Sessions and their timelines; the agent widget's wrap-up.

use serde_json::json;

use super::Browser;
use crate::harness::{Server, Ses, call};

#[tokio::test]
async fn a_posted_session_is_found_and_its_timeline_explains_the_record() {
    let s = Server::start().await;
    s.send(call("tl-1", "2026-11-20T10:00:00Z", "(415) 555-0100", &["Support", "Billing"])).await;
    let Some(b) = Browser::start("a_posted_session_is_found_and_its_timeline_explains_the_record", &s.base).await
    else {
        return;
    };
    b.goto("/sessions").await;
    b.fill("#q-phone", "+1 415 555 0100").await;
    b.click("#session-search button[type=submit]").await;
    b.wait_text("#sessions", "tl-1").await;
    b.screenshot("sessions").await;
    b.click("#sessions a[href='/sessions/tl-1']").await;
    b.wait_text("#record-outcome", "created").await;
    let timeline = b.text("#timeline").await;
    assert!(timeline.contains("records.trigger"), "the rule that created the record: {timeline}");
    assert!(timeline.contains("CRM CALL"), "the CRM writes: {timeline}");
    b.screenshot("session").await;
    // Straight to a session by its id; an unknown id says so.
    b.goto("/sessions?id=tl-1").await;
    b.wait_text("h1", "Session tl-1").await;
    b.goto("/sessions?id=nope").await;
    b.wait_text("#notice", "No session \"nope\"").await;
    b.assert_no_errors().await;
    b.close().await;
}

#[tokio::test]
async fn the_widget_wraps_up_a_call_choosing_between_two_matching_people() {
    let s = Server::start().await;
    let ann = s.create_account(json!({"kind": "contact", "name": "Ann Older", "phone": "+14155550123"})).await;
    let bob = s.create_account(json!({"kind": "lead", "name": "Bob Newer", "phone": "+14155550123"})).await;
    let (c, v) = s.put("/v1/agents/ag-7", json!({"email": "ag7@example.com", "name": "Agent Seven"})).await;
    assert!(c == 200 || c == 201, "{v}");
    s.post("/v1/dispositions", json!({"code": "resolved", "label": "Resolved"})).await;
    let mut w = Ses::new("wid-1", "2026-11-20T10:00:00Z");
    s.send(vec![
        w.created("voice_inbound_ivr", json!({"phone": "+14155550123", "name": "Caller"}), &["Support"]),
        w.assigned("ag-7"),
        w.connected(),
    ])
    .await;
    let record = s.session("wid-1").await["record_id"].as_str().unwrap().to_string();
    let Some(b) = Browser::start("the_widget_wraps_up_a_call_choosing_between_two_matching_people", &s.base).await
    else {
        return;
    };
    b.goto("/agent?agent=ag-7").await;
    b.wait_text("#caller", "+14155550123").await;
    b.wait_text("#w-record", &record).await;
    // The widget told the API which record it shows.
    s.poll("/v1/agents/ag-7", |a| {
        a["instances"].as_array().is_some_and(|i| i.iter().any(|x| x["viewing_record_id"] == record.as_str()))
    })
    .await;
    b.fill("#w-notes", "Refund issued").await;
    b.click("#w-log").await;
    b.wait_text("#widget-result", "Several people match").await;
    b.find("#w-person").await.select_by_value(bob["id"].as_str().unwrap()).await.unwrap();
    b.screenshot("agent-widget").await;
    b.click("#w-log").await;
    b.wait_text("#widget-result", &format!("Logged on {}", bob["id"].as_str().unwrap())).await;
    let acts = s.get("/v1/activities?session_id=wid-1").await;
    let logged = acts["activities"].as_array().unwrap().iter().find(|a| a["action"] == "log").cloned().unwrap();
    assert_eq!(logged["person_id"], bob["id"], "{acts}");
    assert_ne!(logged["person_id"], ann["id"]);
    assert_eq!(logged["notes"], "Refund issued");
    assert_eq!(logged["disposition"], "resolved");
    b.assert_no_errors().await;
    b.close().await;
}
