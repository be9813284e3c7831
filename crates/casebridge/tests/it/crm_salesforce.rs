//! The rules against a Salesforce org (the fake), through the real binary and real HTTP:
//! what lands in Contacts, Cases, Tasks, CaseComments and Files, and how the connector meets
//! Salesforce's token expiry, limits and error arrays.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::crm_faults;
use crate::fakes::FakeCrm;
use crate::harness::*;

const T: &str = "2026-11-20T10:00:00Z";

/// The `crm` member for the fake, with casebridge's queue and tags fields.
fn crm(fake: &FakeCrm, extra: Value) -> Value {
    let mut c = fake.crm_settings();
    c["queue_field"] = json!("Casebridge_Queue__c");
    c["tags_field"] = json!("Casebridge_Tags__c");
    c["limit_backoff_seconds"] = json!(1);
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

/// A server whose settings (from a config file) point at the fake.
async fn start(fake: &FakeCrm, crm_extra: Value, rules: Value) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = settings(rules);
    doc["crm"] = crm(fake, crm_extra);
    let path = dir.path().join("config.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let s = Server::start_with(&[], &["--config", path.to_str().unwrap()]).await;
    (s, dir)
}

/// Changes the rules, keeping the CRM.
async fn rules(s: &Server, fake: &FakeCrm, crm_extra: Value, rules: Value) {
    let mut doc = settings(rules);
    doc["crm"] = crm(fake, crm_extra);
    s.put_settings(doc).await;
}

async fn fake_post(fake: &FakeCrm, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(format!("{}{path}", fake.base)).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

async fn seed(fake: &FakeCrm, obj: &str, fields: Value) -> String {
    fake_post(fake, &format!("/__fake/salesforce/seed/{obj}"), fields).await["id"].as_str().unwrap().to_string()
}

fn by_key<'a>(objs: &'a [Value], key: &str) -> Option<&'a Value> {
    objs.iter().find(|o| o["Casebridge_Key__c"] == key)
}

fn one_with_key(key: &'static str) -> impl Fn(&[Value]) -> bool {
    move |v: &[Value]| by_key(v, key).is_some()
}

/// Vendor API requests in the fake's log (data API and token; not the control routes).
async fn api_calls(fake: &FakeCrm) -> Vec<String> {
    let st = fake.stats().await;
    st["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["path"].as_str().is_some_and(|p| p.starts_with("/services/")))
        .map(|l| format!("{} {}", l["method"].as_str().unwrap(), l["path"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn an_inbound_call_becomes_a_contact_a_case_a_call_task_and_notes() {
    let fake = FakeCrm::start("salesforce").await;
    let (s, _d) = start(&fake, json!({}), json!({"records": {"tag_session_type": true, "tag_platform": true}})).await;
    let mut c = Ses::new("sf1", T);
    s.send(vec![
        c.created("voice_inbound_ivr", json!({"phone": "(415) 555-0100", "name": "Ann Lee"}), &["Support", "Billing"]),
        c.assigned("ag-1"),
        c.connected(),
        c.ended(),
        c.ev(5, "recording.available", json!({"url": "https://files.example/sf1.mp3"})),
        c.ev(5, "csat.submitted", json!({"score": 9, "comment": "quick"})),
    ])
    .await;
    let contacts = fake.poll_objects("Contact", one_with_key("cb-acct-sf1")).await;
    let contact = by_key(&contacts, "cb-acct-sf1").unwrap();
    assert_eq!((contact["FirstName"].as_str(), contact["LastName"].as_str()), (Some("Ann"), Some("Lee")));
    assert_eq!(contact["Phone"], "+14155550100");
    let cases = fake.poll_objects("Case", one_with_key("cb-rec-sf1")).await;
    assert_eq!(cases.len(), 1);
    let case = &cases[0];
    assert_eq!(case["Subject"], "IVR Call +18005550000", "the title: {case}");
    assert_eq!(case["Origin"], "Phone");
    assert_eq!(case["Status"], "New", "CaseStatus's default");
    assert_eq!(case["ContactId"], contact["Id"]);
    assert_eq!(case["Casebridge_Queue__c"], "Support > Billing");
    let tags: Vec<&str> = case["Casebridge_Tags__c"].as_str().unwrap().split(';').collect();
    assert!(tags.contains(&"Voice Inbound (IVR)") && tags.contains(&"casebridge"), "{tags:?}");
    let tasks = fake
        .poll_objects("Task", |t| {
            by_key(t, "session:sf1").is_some_and(|t| t["Description"].as_str().is_some_and(|d| d.contains("CSAT: 9")))
        })
        .await;
    assert_eq!(tasks.len(), 1, "one session, one Task: {tasks:?}");
    let task = &tasks[0];
    assert_eq!((task["TaskSubtype"].as_str(), task["CallType"].as_str()), (Some("Call"), Some("Inbound")));
    assert_eq!(task["CallObject"], "sf1");
    assert_eq!(task["CallDurationInSeconds"], 60);
    assert_eq!((task["WhatId"].as_str(), task["WhoId"].as_str()), (case["Id"].as_str(), contact["Id"].as_str()));
    assert_eq!(task["Status"], "Completed");
    let desc = task["Description"].as_str().unwrap();
    assert!(desc.contains("Recording: https://files.example/sf1.mp3"), "the recording linked on the Task: {desc}");
    let comments = fake.poll_objects("CaseComment", |v| v.len() >= 2).await;
    let bodies: Vec<&str> = comments.iter().filter_map(|c| c["CommentBody"].as_str()).collect();
    assert!(bodies.iter().any(|b| b.starts_with("CSAT score: 9 (quick)")), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains("https://files.example/sf1.mp3")), "{bodies:?}");
    assert!(comments.iter().all(|c| c["ParentId"] == case["Id"] && c["IsPublished"] == false));
    let sess = s.session("sf1").await;
    assert_eq!(sess["record_id"], case["Id"], "the session knows its case");
    let calls = api_calls(&fake).await;
    println!("salesforce calls for one inbound call ({}): {calls:#?}", calls.len());
}

#[tokio::test]
async fn append_to_the_open_case_in_the_same_queue_and_reopen_a_recently_closed_one() {
    let fake = FakeCrm::start("salesforce").await;
    let ann = seed(&fake, "Contact", json!({"LastName": "Ann", "Phone": "+1 415-555-0110"})).await;
    let open = seed(
        &fake,
        "Case",
        json!({"Subject": "open", "ContactId": ann, "Status": "Escalated",
        "Casebridge_Queue__c": "Support", "CreatedDate": "2026-11-19T09:00:00.000+0000"}),
    )
    .await;
    let bo = seed(&fake, "Contact", json!({"LastName": "Bo", "Phone": "415 555 0111"})).await;
    // Resolved is closed by CaseStatus data, not by its name.
    let resolved = seed(
        &fake,
        "Case",
        json!({"Subject": "resolved", "ContactId": bo, "Status": "Resolved",
        "Casebridge_Queue__c": "Support", "CreatedDate": "2026-11-10T09:00:00.000+0000",
        "ClosedDate": "2026-11-18T09:00:00.000+0000"}),
    )
    .await;
    let r = json!({"records": {"append_to_open_in_leaf_queue": true, "append_to_closed_within_days": 7}});
    let (s, _d) = start(&fake, json!({}), r).await;
    s.send(call("a1", T, "+14155550110", &["Support"])).await;
    let a1 = s.session("a1").await;
    assert_eq!(
        (a1["record_outcome"].as_str(), a1["record_id"].as_str()),
        (Some("appended"), Some(open.as_str())),
        "{a1}"
    );
    s.send(call("a2", T, "+14155550110", &["Sales"])).await;
    assert_eq!(s.session("a2").await["record_outcome"], "created", "another queue: a new case");
    s.send(call("b1", T, "+14155550111", &["Support"])).await;
    let b1 = s.session("b1").await;
    assert_eq!(
        (b1["record_outcome"].as_str(), b1["record_id"].as_str()),
        (Some("reopened"), Some(resolved.as_str())),
        "{b1}"
    );
    let cases =
        fake.poll_objects("Case", |v| v.iter().any(|c| c["Id"] == resolved.as_str() && c["Status"] == "New")).await;
    let c = cases.iter().find(|c| c["Id"] == resolved.as_str()).unwrap();
    assert_eq!((c["IsClosed"].as_bool(), c["ClosedDate"].is_null()), (Some(false), true), "reopened: {c}");
    assert_eq!(cases.len(), 3, "two seeded, one created: {cases:?}");
    let tasks = fake.poll_objects("Task", |v| v.len() >= 3).await;
    let on = |sid: &str| by_key(&tasks, &format!("session:{sid}")).map(|t| t["WhatId"].clone());
    assert_eq!(on("a1"), Some(json!(open)), "the appended session's Task is on the open case");
    assert_eq!(on("b1"), Some(json!(resolved)));
}

#[tokio::test]
async fn abandons_skips_and_unrecorded_sessions() {
    let fake = FakeCrm::start("salesforce").await;
    let r = json!({"records": {"abandoned_calls": true}, "accounts": {"skip_creation": true}});
    let (s, _d) = start(&fake, json!({}), r).await;
    let mut a = Ses::new("ab1", T);
    s.send(vec![a.created("voice_inbound_ivr", json!({"phone": "+14155550120"}), &["Support"]), a.abandoned(20)]).await;
    let cases = fake.poll_objects("Case", one_with_key("cb-rec-ab1")).await;
    let case = by_key(&cases, "cb-rec-ab1").unwrap();
    assert!(case["Description"].as_str().unwrap().contains("Abandoned: abandoned_in_ivr"), "{case}");
    assert!(case["ContactId"].is_null(), "account creation skipped: no contact");
    assert!(fake.objects("Contact").await.is_empty());

    // Record creation skipped, data on the account: the Task hangs on the person.
    let bo = seed(&fake, "Contact", json!({"LastName": "Bo", "Phone": "+14155550121"})).await;
    rules(
        &s,
        &fake,
        json!({}),
        json!({"records": {"skip_creation": true},
        "session_data": {"unrecorded_session_link": "account"}}),
    )
    .await;
    s.send(call("nr1", T, "+14155550121", &["Support"])).await;
    assert_eq!(s.session("nr1").await["record_outcome"], "none");
    let tasks = fake.poll_objects("Task", one_with_key("session:nr1")).await;
    let t = by_key(&tasks, "session:nr1").unwrap();
    assert_eq!((t["WhoId"].as_str(), t["WhatId"].is_null()), (Some(bo.as_str()), true), "{t}");
    assert!(by_key(&fake.objects("Case").await, "cb-rec-nr1").is_none());
}

async fn dispositions(s: &Server) {
    for (c, l) in [("sale", "Sale"), ("support", "Support question")] {
        let (st, v) = s.post("/v1/dispositions", json!({"code": c, "label": l})).await;
        assert_eq!(st, 201, "{v}");
    }
}

#[tokio::test]
async fn wrapup_logs_on_the_person_relates_to_the_viewed_case_and_do_not_log_withdraws() {
    let fake = FakeCrm::start("salesforce").await;
    let (s, _d) = start(&fake, json!({}), json!({})).await;
    dispositions(&s).await;
    s.send(call("w1", T, "+14155550130", &["Support"])).await;
    let contacts = fake.poll_objects("Contact", one_with_key("cb-acct-w1")).await;
    let person = by_key(&contacts, "cb-acct-w1").unwrap()["Id"].as_str().unwrap().to_string();
    let (st, v) =
        s.post("/v1/sessions/w1/wrapup", json!({"disposition": "sale", "notes": "upsold", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["person_id"], person.as_str(), "found by phone in Salesforce: {v}");
    let tasks =
        fake.poll_objects("Task", |t| by_key(t, "call:w1").is_some_and(|t| t["CallDisposition"] == "Sale")).await;
    let log = by_key(&tasks, "call:w1").unwrap();
    assert_eq!((log["WhoId"].as_str(), log["Description"].as_str()), (Some(person.as_str()), Some("upsold")));
    assert_eq!((log["TaskSubtype"].as_str(), log["CallObject"].as_str()), (Some("Call"), Some("w1")));
    assert!(log["WhatId"].is_null());

    // Relate-to-case: the case the agent views (a Salesforce case id) becomes WhatId.
    let viewed = s.session("w1").await["record_id"].as_str().unwrap().to_string();
    s.put("/v1/agents/ag-1", json!({"email": "ag1@example.com"})).await;
    let (st, _) = s.put("/v1/agents/ag-1/context", json!({"instance_id": "tab-1", "viewing_record_id": viewed})).await;
    assert_eq!(st, 200);
    let (st, v) = s.post("/v1/sessions/w1/wrapup", json!({"disposition": "support", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["related_by"], "viewing_record", "{v}");
    let tasks =
        fake.poll_objects("Task", |t| by_key(t, "call:w1").is_some_and(|t| t["WhatId"] == viewed.as_str())).await;
    let log = by_key(&tasks, "call:w1").unwrap();
    assert_eq!(
        (log["CallDisposition"].as_str(), log["WhoId"].as_str()),
        (Some("Support question"), Some(person.as_str()))
    );
    assert_eq!(
        tasks.iter().filter(|t| t["CallObject"] == "w1" && t["Subject"].as_str().unwrap().starts_with("Call")).count(),
        1
    );

    // Do not log: the call log leaves Salesforce; the session's own Task stays.
    let (st, _) = s.post("/v1/sessions/w1/wrapup", json!({"disposition": "sale", "action": "do_not_log"})).await;
    assert_eq!(st, 200);
    let tasks = fake.poll_objects("Task", |t| by_key(t, "call:w1").is_none()).await;
    assert!(by_key(&tasks, "session:w1").is_some());
}

#[tokio::test]
async fn wrapup_on_a_person_account_hangs_the_task_on_the_account() {
    let fake = FakeCrm::start("salesforce").await;
    fake_post(&fake, "/__fake/salesforce/config", json!({"person_accounts": true})).await;
    let pa =
        seed(&fake, "Account", json!({"FirstName": "Cy", "LastName": "Dee", "PersonMobilePhone": "(415) 555-0140"}))
            .await;
    let (s, _d) = start(&fake, json!({}), json!({})).await;
    dispositions(&s).await;
    s.send(call("p1", T, "+14155550140", &["Support"])).await;
    assert_eq!(s.session("p1").await["account_id"], pa.as_str(), "the person account is found by phone");
    let (st, v) = s.post("/v1/sessions/p1/wrapup", json!({"disposition": "sale", "action": "log"})).await;
    assert_eq!((st, v["person_id"].as_str()), (200, Some(pa.as_str())), "{v}");
    let tasks = fake.poll_objects("Task", one_with_key("call:p1")).await;
    let log = by_key(&tasks, "call:p1").unwrap();
    assert_eq!((log["WhatId"].as_str(), log["WhoId"].is_null()), (Some(pa.as_str()), true), "{log}");
    let cases = fake.objects("Case").await;
    assert_eq!(by_key(&cases, "cb-rec-p1").unwrap()["AccountId"], pa.as_str());
}

#[tokio::test]
async fn standard_fields_are_created_with_the_tooling_api_unless_the_user_may_not() {
    let fake = FakeCrm::start("salesforce").await;
    let (s, _d) = start(&fake, json!({}), json!({})).await;
    let (st, v) = s.post("/v1/crm/custom-fields", json!({"fields": ["csat_score", "custom_user_id"]})).await;
    assert_eq!(st, 200, "{v}");
    let fields = fake.objects("CustomField").await;
    let names: Vec<&str> = fields.iter().filter_map(|f| f["FullName"].as_str()).collect();
    assert_eq!(
        names,
        ["Case.Casebridge_Csat_Score__c", "Contact.Casebridge_Custom_User_Id__c", "Lead.Casebridge_Custom_User_Id__c"]
    );
    let (_, again) = s.post("/v1/crm/custom-fields", json!({"fields": ["csat_score"]})).await;
    assert_eq!(again["fields"][0]["outcome"], "reused", "{again}");
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    let mut c = Ses::new("cf1", &after.to_rfc3339());
    s.send(vec![
        c.created("voice_inbound_ivr", json!({"phone": "+14155550150"}), &["Support"]),
        c.assigned("ag-1"),
        c.connected(),
        c.ev(3, "csat.submitted", json!({"score": 4})),
        c.ended(),
    ])
    .await;
    fake.poll_objects("Case", |v| by_key(v, "cb-rec-cf1").is_some_and(|c| c["Casebridge_Csat_Score__c"] == 4.0)).await;

    fake_post(&fake, "/__fake/salesforce/config", json!({"tooling_allowed": false})).await;
    let (st, v) = s.post("/v1/crm/custom-fields", json!({"fields": ["hold_time"]})).await;
    assert_ne!(st, 200, "{v}");
    let text = v.to_string();
    assert!(text.contains("INSUFFICIENT_ACCESS") && text.contains("Customize Application"), "{text}");
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_write_lands() {
    let fake = FakeCrm::start("salesforce").await;
    let (s, _d) = start(&fake, json!({}), json!({})).await;
    s.send(call("t1", T, "+14155550160", &["Support"])).await;
    fake.poll_objects("Case", one_with_key("cb-rec-t1")).await;
    fake_post(&fake, "/__fake/salesforce/expire-tokens", json!({})).await;
    s.send(call("t2", T, "+14155550161", &["Support"])).await;
    fake.poll_objects("Case", one_with_key("cb-rec-t2")).await;
    let calls = api_calls(&fake).await;
    let tokens = calls.iter().filter(|c| c.ends_with("/services/oauth2/token")).count();
    assert_eq!(tokens, 2, "one token, then one renewal: {calls:#?}");
    let log = fake.stats().await["log"].clone();
    assert!(log.as_array().unwrap().iter().any(|l| l["status"] == 401), "the expired token was refused once");
    let dead = s.get("/v1/outbox?state=dead").await;
    assert!(!dead.to_string().contains("INVALID_SESSION_ID"), "nothing parked for the expiry: {dead}");
}

#[tokio::test]
async fn request_limit_exceeded_is_throttling_obeyed_before_the_next_request() {
    let fake = FakeCrm::start("salesforce").await;
    let (s, _d) = start(&fake, json!({}), json!({})).await;
    s.send(call("l0", T, "+14155550170", &["Support"])).await;
    fake.poll_objects("Case", one_with_key("cb-rec-l0")).await;
    fake.reset_stats().await;
    fake.fault(json!({"status": 403, "count": 1, "retry_after_s": 2, "path_contains": "/composite"})).await;
    s.send(call("l1", T, "+14155550171", &["Support"])).await;
    fake.poll_objects("Case", one_with_key("cb-rec-l1")).await;
    let log = fake.stats().await["log"].as_array().unwrap().clone();
    let at = log.iter().position(|l| l["status"] == 403).expect("the 403 was answered");
    let refused = log[at]["at_ms"].as_u64().unwrap();
    let next = log[at + 1..].iter().find(|l| l["path"].as_str().unwrap().starts_with("/services/")).expect("a retry");
    assert!(next["at_ms"].as_u64().unwrap() >= refused + 2000, "no request before the wait: {log:#?}");

    // The org's daily allocation runs out: the write waits (never refused) and lands later.
    let usage = fake_post(&fake, "/__fake/salesforce/config", json!({})).await;
    let used = usage["api_usage"].as_u64().unwrap();
    fake_post(&fake, "/__fake/salesforce/config", json!({"daily_limit": used})).await;
    // The lookup of a new session is refused too: post without waiting for it to settle.
    let mut c = Ses::new("l2", T);
    let events =
        vec![c.created("voice_inbound_ivr", json!({"phone": "+14155550179"}), &["Support"]), c.assigned("ag-1")];
    let (st, v) = s.call(reqwest::Method::POST, "/v1/events", Some(&Value::Array(events))).await;
    assert_eq!(st, 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fake.stats().await["log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["status"] == 403 && l["at_ms"].as_u64() > Some(refused))
    {
        assert!(Instant::now() < deadline, "never refused by the allocation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused_at = Instant::now();
    assert!(by_key(&fake.objects("Case").await, "cb-rec-l2").is_none());
    fake_post(&fake, "/__fake/salesforce/config", json!({"daily_limit": used + 1000})).await;
    fake.poll_objects("Case", one_with_key("cb-rec-l2")).await;
    assert!(refused_at.elapsed() < Duration::from_secs(20));
    let dead = s.get("/v1/outbox?state=dead").await;
    assert!(!dead.to_string().contains("REQUEST_LIMIT_EXCEEDED"), "never a dead letter: {dead}");
}

#[tokio::test]
async fn salesforce_refusals_carry_its_words_and_the_fix() {
    let fake = FakeCrm::start("salesforce").await;
    // Two cases already carry the key this session's case would get: 300 Multiple Choices.
    for _ in 0..2 {
        seed(&fake, "Case", json!({"Subject": "dup", "Casebridge_Key__c": "cb-rec-e1"})).await;
    }
    let (s, _d) = start(&fake, json!({"queue_field": "Nope_Queue__c"}), json!({})).await;
    s.send(call("e1", T, "+14155550180", &["Support"])).await;
    let dead = s.poll("/v1/outbox?state=dead", |v| v.to_string().contains("create_record")).await;
    let text = dead.to_string();
    assert!(text.contains("several records carry this key") && text.contains("Unique"), "{text}");
    s.send(call("e2", T, "+14155550181", &["Support"])).await;
    let dead = s.poll("/v1/outbox?state=dead", |v| v.to_string().contains("Nope_Queue__c")).await;
    let text = dead.to_string();
    assert!(text.contains("INVALID_FIELD") && text.contains("Create the field"), "{text}");
}

#[tokio::test]
async fn recordings_from_allowed_hosts_are_uploaded_as_files_on_the_case() {
    let fake = FakeCrm::start("salesforce").await;
    let app = axum::Router::new().route("/rec/u1.wav", axum::routing::get(|| async { "RIFF-fake-audio" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (s, _d) = start(&fake, json!({"upload_recordings_from": ["127.0.0.1"]}), json!({})).await;
    let mut c = Ses::new("u1", T);
    s.send(vec![
        c.created("voice_inbound_ivr", json!({"phone": "+14155550190"}), &["Support"]),
        c.assigned("ag-1"),
        c.connected(),
        c.ended(),
        c.ev(5, "recording.available", json!({"url": format!("http://{host}/rec/u1.wav")})),
    ])
    .await;
    let files = fake.poll_objects("ContentVersion", |v| !v.is_empty()).await;
    let case = by_key(&fake.objects("Case").await, "cb-rec-u1").unwrap().clone();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(
        (f["VersionData"].as_str(), f["PathOnClient"].as_str()),
        (Some("RIFF-fake-audio"), Some("recording-u1.wav"))
    );
    assert_eq!(f["FirstPublishLocationId"], case["Id"]);
}

// The delivery's fault tests, against the Salesforce fake. A session's creates go out in one
// composite request, so that is the write left in flight or landed during a timeout.

#[tokio::test]
async fn faults_an_outage_then_recovery() {
    crm_faults::outage_then_recovery("salesforce").await;
}

#[tokio::test]
async fn faults_request_limit_exceeded_with_a_wait_is_obeyed() {
    crm_faults::throttling_wait_is_obeyed("salesforce", 403).await;
}

#[tokio::test]
async fn faults_a_create_that_landed_during_a_timeout_is_not_made_twice() {
    crm_faults::landed_during_timeout_is_not_created_twice("salesforce", "/composite").await;
}

#[tokio::test]
async fn faults_killed_mid_write_then_restarted() {
    crm_faults::killed_mid_write_then_restarted("salesforce", "/composite").await;
}

#[tokio::test]
async fn an_ordinary_call_from_a_known_caller_costs_at_most_three_calls() {
    let n = crm_faults::calls_per_ordinary_call("salesforce").await;
    assert!(n <= 3, "{n} Salesforce API calls");
}

#[tokio::test]
async fn faults_the_configured_rate_limit_is_never_exceeded() {
    crm_faults::rate_limit_is_never_exceeded("salesforce").await;
}

/// A Salesforce REST call as an admin would make it (token from the client credentials).
async fn as_admin(fake: &FakeCrm, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let tok: Value = http
        .post(format!("{}/services/oauth2/token", fake.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "casebridge-test"),
            ("client_secret", "fake-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut r = http
        .request(method, format!("{}/services/data/v66.0{path}", fake.base))
        .bearer_auth(tok["access_token"].as_str().unwrap());
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_merged_contact_is_looked_up_again_and_the_case_goes_to_the_survivor() {
    let fake = FakeCrm::start("salesforce").await;
    let (s, _d) = start(&fake, json!({}), json!({})).await;
    s.send(call("m1", T, "+14155550170", &["Support"])).await;
    let first = fake.poll_objects("Contact", |v| v.len() == 1).await;
    let old = first[0]["Id"].as_str().unwrap().to_string();

    // An admin merges the contact into another one: the one casebridge knows is deleted.
    let (c, v) = as_admin(
        &fake,
        reqwest::Method::POST,
        "/sobjects/Contact",
        Some(json!({"LastName": "Survivor", "Phone": "+14155550170"})),
    )
    .await;
    assert_eq!(c, 201, "{v}");
    let survivor = v["id"].as_str().unwrap().to_string();
    let (c, v) = as_admin(&fake, reqwest::Method::DELETE, &format!("/sobjects/Contact/{old}"), None).await;
    assert!(c == 204 || c == 200, "{c} {v}");

    // The next call still names the old contact (casebridge remembered it), is told it is
    // gone, finds the customer again, and the case goes to the survivor.
    s.send(call("m2", "2026-11-20T11:00:00Z", "+14155550170", &["Support"])).await;
    let cases = fake.poll_objects("Case", |v| v.len() == 2).await;
    let second = cases.iter().find(|c| c["ContactId"] == survivor.as_str());
    assert!(second.is_some(), "the second case hangs on the survivor: {cases:?}");
    let dead = s.get("/v1/outbox?state=dead").await;
    assert!(dead["writes"].as_array().is_some_and(Vec::is_empty), "{dead}");
    let v = s.session("m2").await;
    assert!(v.to_string().contains("no longer exists in the CRM"), "the timeline says so: {v}");
}
