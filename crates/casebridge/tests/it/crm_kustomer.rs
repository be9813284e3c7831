//! The Kustomer connector through the real binary against the Kustomer fake over HTTP: the
//! rules (records, append, reopen, voicemail, abandons, tags, titles, skip options, call
//! logging, custom fields, agent status), `POST /v1/crm/test`, and Kustomer's own failures
//! (a refused key, throttling obeyed, a create that landed unseen).

use serde_json::{Value, json};

use crate::fakes::FakeCrm;
use crate::harness::*;

/// A session start a few minutes ago (the fake stamps objects with the real time).
fn recent(mins_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(mins_ago)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn vendor(fake: &FakeCrm, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method, format!("{}{path}", fake.base)).bearer_auth("fake-api-key");
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A fake with one Kustomer user (ann@example.com) and a server pointed at it, with `patch`
/// merged into the settings (its `crm` member into the connection's).
async fn start(patch: Value) -> (FakeCrm, Server, String) {
    let fake = FakeCrm::start("kustomer").await;
    let (st, user) =
        vendor(&fake, reqwest::Method::POST, "/v1/users", Some(json!({"name": "Ann", "email": "ann@example.com"})))
            .await;
    assert_eq!(st, 201, "{user}");
    let user_id = user["data"]["id"].as_str().unwrap().to_string();
    let mut crm = fake.crm_settings();
    crm["agent_users"] = json!({"ag-1": "ann@example.com"});
    let mut patch = patch;
    if let Some(extra) = patch.get("crm").and_then(Value::as_object).cloned() {
        for (k, v) in extra {
            crm[k] = v;
        }
    }
    patch["crm"] = crm;
    let mut s = Server::start().await;
    s.put_settings(patch).await;
    s.restart().await;
    (fake, s, user_id)
}

fn by_ext<'a>(convs: &'a [Value], key: &str) -> Option<&'a Value> {
    convs.iter().find(|c| c["externalId"] == key)
}

async fn tag_names(fake: &FakeCrm, conv: &Value) -> Vec<String> {
    let tags = fake.objects("tag").await;
    conv["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|id| tags.iter().find(|t| t["id"] == *id).and_then(|t| t["name"].as_str()).map(str::to_string))
        .collect()
}

fn notes_of<'a>(notes: &'a [Value], conv: &str) -> Vec<&'a Value> {
    notes.iter().filter(|n| n["conversation"] == conv && n["deleted"] != true).collect()
}

#[tokio::test]
async fn kustomer_inbound_call_makes_one_customer_one_conversation_and_its_notes() {
    let (fake, s, ann) =
        start(json!({"records": {"tag_session_type": true, "tag_platform": true}, "session_data": {"attach_recordings": true}})).await;
    let mut c = Ses::new("k1", &recent(5));
    s.send(vec![
        c.created(
            "voice_inbound_ivr",
            json!({"phone": "+1 (415) 555-0100", "name": "Ann Caller"}),
            &["Support", "Billing"],
        ),
        c.assigned("ag-1"),
        c.connected(),
        c.ended(),
        c.ev(2, "recording.available", json!({"url": "https://files.example/k1.mp3"})),
        c.ev(5, "csat.submitted", json!({"score": 4, "comment": "quick"})),
    ])
    .await;
    let customers = fake.poll_objects("customer", |v| v.len() == 1).await;
    assert_eq!(customers[0]["phones"][0]["phone"], "+14155550100", "E.164: {customers:?}");
    assert!(customers[0]["externalIds"].as_array().unwrap().iter().any(|x| x["externalId"] == "cb-acct-k1"));
    let convs = fake.poll_objects("conversation", |v| v.len() == 1).await;
    let conv = by_ext(&convs, "cb-rec-k1").expect("keyed by casebridge's key");
    assert_eq!(conv["customer"], customers[0]["id"]);
    assert_eq!(conv["status"], "open");
    assert_eq!(conv["name"], "IVR Call +18005550000", "name is the title");
    assert_eq!(conv["assignedUsers"], json!([ann]), "owner mapped to the Kustomer user by email");
    assert_eq!(conv["custom"]["casebridgeQueueStr"], "Support > Billing", "the leaf queue attribute: {conv}");
    let mut tags = tag_names(&fake, conv).await;
    tags.sort();
    assert_eq!(tags, ["Voice Inbound - IVR", "casebridge"]);
    let id = conv["id"].as_str().unwrap().to_string();
    assert_eq!(s.session("k1").await["record_id"], id.as_str());
    let notes = fake
        .poll_objects("note", |v| {
            v.iter().any(|n| n["body"].as_str().is_some_and(|b| b.contains("CSAT score: 4") && b.contains("k1.mp3")))
        })
        .await;
    let on_conv = notes_of(&notes, &id);
    assert!(
        on_conv.iter().any(|n| n["body"].as_str().unwrap().contains("+14155550100")),
        "the phone note: {on_conv:?}"
    );
    let mut keys: Vec<&str> = on_conv.iter().map(|n| n["externalId"].as_str().unwrap()).collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), all, "no note twice: {on_conv:?}");
    assert!(keys.contains(&"session:k1"), "one session note, rewritten in place: {on_conv:?}");
}

#[tokio::test]
async fn kustomer_append_reopen_voicemail_and_abandons() {
    let (fake, s, _) = start(json!({
        "records": {"append_to_open_in_leaf_queue": true, "append_to_closed_within_days": 3, "abandoned_calls": true,
                    "tag_session_type": true}
    }))
    .await;
    s.send(call("a1", &recent(50), "+14155550120", &["Support"])).await;
    s.send(call("a2", &recent(40), "+14155550120", &["Support"])).await;
    let a1 = s.session("a1").await["record_id"].as_str().unwrap().to_string();
    assert_eq!(s.session("a2").await["record_id"], a1.as_str(), "appended to the open conversation");
    assert_eq!(fake.objects("conversation").await.len(), 1);
    // An agent closes it in Kustomer: the next call reopens it.
    let (st, v) =
        vendor(&fake, reqwest::Method::PATCH, &format!("/v1/conversations/{a1}"), Some(json!({"status": "done"})))
            .await;
    assert_eq!(st, 200, "{v}");
    // Closed just now: a session starting after it may reopen it.
    s.send(call("a3", &recent(-1), "+14155550120", &["Support"])).await;
    let v = s.session("a3").await;
    assert_eq!(v["record_id"], a1.as_str(), "{v}");
    let convs =
        fake.poll_objects("conversation", |v| v.iter().any(|c| c["status"] == "open" && c["ended"] == false)).await;
    assert_eq!(convs.len(), 1, "reopened, not recreated: {convs:?}");
    // Another leaf queue: a new conversation.
    s.send(call("a4", &recent(-2), "+14155550120", &["Sales"])).await;
    assert_eq!(fake.objects("conversation").await.len(), 2);
    // A voicemail is always new; closing it marks it done.
    let mut vm = Ses::new("vm1", &recent(-3));
    s.send(vec![
        vm.created("voicemail", json!({"phone": "+14155550120"}), &["Support"]),
        vm.ev(60, "voicemail.updated", json!({"action": "closed", "agent": {"id": "ag-1"}})),
    ])
    .await;
    let convs = fake
        .poll_objects("conversation", |v| {
            v.len() == 3 && v.iter().any(|c| c["externalId"] == "cb-rec-vm1" && c["status"] == "done")
        })
        .await;
    assert_eq!(by_ext(&convs, "cb-rec-vm1").unwrap()["custom"]["casebridgeChannelStr"], "voicemail");
    // An abandoned call gets a conversation marked abandoned.
    let mut ab = Ses::new("ab1", &recent(5));
    s.send(vec![
        ab.created("voice_inbound_ivr", json!({"phone": "+14155550121"}), &["Support"]),
        ab.ev(5, "session.queued", json!({"queue_path": ["Support"]})),
        ab.abandoned(30),
        ab.ended(),
    ])
    .await;
    let convs = fake.poll_objects("conversation", |v| v.iter().any(|c| c["externalId"] == "cb-rec-ab1")).await;
    let ab1 = by_ext(&convs, "cb-rec-ab1").unwrap();
    assert_eq!(ab1["custom"]["casebridgeAbandonedBool"], true, "{ab1}");
    assert_eq!(ab1["custom"]["casebridgeMissedReasonStr"], "abandoned_in_queue");
    assert!(ab1["assignedUsers"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn kustomer_titles_tags_and_skip_options() {
    let (fake, s, _) = start(json!({"records": {"title_template": "{CALL_TYPE} in {MENU_PATH}", "tag_platform": true,
        "platform_tag": "cc"}, "accounts": {"skip_creation": true}}))
    .await;
    s.send(call("t1", &recent(10), "+14155550130", &["Support", "Refunds"])).await;
    let convs = fake.poll_objects("conversation", |v| v.len() == 1).await;
    assert_eq!(convs[0]["name"], "IVR Call in Support > Refunds");
    assert_eq!(tag_names(&fake, &convs[0]).await, ["cc"], "no session type tag unless asked");
    let customers = fake.objects("customer").await;
    assert_eq!(customers.len(), 1, "a stand-in customer holds the conversation: {customers:?}");
    assert!(customers[0]["phones"].as_array().unwrap().is_empty(), "account creation skipped: no caller's customer");
    s.put_settings(settings(json!({"records": {"skip_creation": true}}))).await;
    s.send(call("t2", &recent(5), "+14155550131", &["Support"])).await;
    assert_eq!(s.session("t2").await["record_outcome"], "none");
    assert_eq!(fake.objects("conversation").await.len(), 1, "no conversation when record creation is skipped");
}

#[tokio::test]
async fn kustomer_call_logging_and_do_not_log() {
    let (fake, s, _) = start(json!({})).await;
    for (c, l) in [("sale", "Sale"), ("support", "Support question")] {
        let (st, v) = s.post("/v1/dispositions", json!({"code": c, "label": l})).await;
        assert_eq!(st, 201, "{v}");
    }
    s.send(call("w1", &recent(10), "+14155550140", &["Support"])).await;
    let conv = s.session("w1").await["record_id"].as_str().unwrap().to_string();
    let (st, v) =
        s.post("/v1/sessions/w1/wrapup", json!({"disposition": "sale", "notes": "first", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    let (_, v) =
        s.post("/v1/sessions/w1/wrapup", json!({"disposition": "support", "notes": "second", "action": "log"})).await;
    assert!(v["person_id"].is_string(), "{v}");
    let notes = fake
        .poll_objects("note", |n| {
            n.iter().any(|x| x["externalId"] == "call:w1" && x["body"].as_str().unwrap().contains("second"))
        })
        .await;
    let logs: Vec<&Value> = notes.iter().filter(|n| n["externalId"] == "call:w1").collect();
    assert_eq!(logs.len(), 1, "one call log, rewritten: {logs:?}");
    assert_eq!(logs[0]["conversation"], conv.as_str(), "on the customer's conversation");
    assert!(logs[0]["body"].as_str().unwrap().contains("Support question (support)"));
    let (st, _) = s.post("/v1/sessions/w1/wrapup", json!({"disposition": "sale", "action": "do_not_log"})).await;
    assert_eq!(st, 200);
    fake.poll_objects("note", |n| n.iter().any(|x| x["externalId"] == "call:w1" && x["deleted"] == true)).await;
}

#[tokio::test]
async fn kustomer_custom_attributes_are_created_in_one_action_and_filled() {
    let (fake, s, _) = start(json!({})).await;
    let some = json!({"fields": ["custom_user_id", "queue_name", "call_duration", "csat_score"]});
    let (st, v) = s.post("/v1/crm/custom-fields", some.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["fields"].as_array().unwrap().iter().all(|f| f["outcome"] == "created"), "{v}");
    let md = fake.objects("metadata").await;
    let conv = md.iter().find(|m| m["id"] == "conversation").unwrap();
    assert!(conv["properties"]["casebridgeCallDurationNum"].is_object(), "{md:?}");
    assert_eq!(conv["properties"]["casebridgeQueueNameStr"]["displayName"], "Queue name");
    assert!(md.iter().any(|m| m["id"] == "customer" && m["properties"]["casebridgeCustomUserIdStr"].is_object()));
    let (_, again) = s.post("/v1/crm/custom-fields", some).await;
    assert!(again["fields"].as_array().unwrap().iter().all(|f| f["outcome"] == "reused"), "{again}");

    let mut a = Ses::new("f1", &(chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339());
    s.send(vec![
        a.created("voice_inbound_app", json!({"phone": "+14155550150", "user_id": "u-9"}), &["Billing", "Refunds"]),
        a.assigned("ag-1"),
        a.connected(),
        a.ev(3, "csat.submitted", json!({"score": 4})),
        a.ev(30, "session.ended", json!({"duration_s": 33.0})),
    ])
    .await;
    let convs =
        fake.poll_objects("conversation", |v| v.iter().any(|c| c["custom"]["casebridgeCsatScoreNum"] == 4.0)).await;
    let c = &convs[0]["custom"];
    assert_eq!(c["casebridgeQueueNameStr"], "Refunds", "{c}");
    assert_eq!(c["casebridgeCallDurationNum"], 33.0);
    let customers =
        fake.poll_objects("customer", |v| v.iter().any(|c| c["custom"]["casebridgeCustomUserIdStr"] == "u-9")).await;
    assert_eq!(customers.len(), 1);

    // A key that may not change metadata: a clear refusal.
    let r = reqwest::Client::new()
        .post(format!("{}/__fake/kustomer/limits", fake.base))
        .json(&json!({"denied": ["metadata.update"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (st, v) = s.post("/v1/crm/custom-fields", json!({"fields": ["wait_time"]})).await;
    assert_ne!(st, 200);
    assert!(v.to_string().contains("metadata.update"), "{v}");
}

#[tokio::test]
async fn kustomer_refused_key_parks_the_write_with_what_to_fix() {
    // No lookups, so the refusal meets a write (lookups are retried by the rules worker).
    let (fake, s, _) =
        start(json!({"accounts": {"skip_lookup": true}, "session_data": {"unrecorded_session_link": "none"}})).await;
    let r = reqwest::Client::new()
        .post(format!("{}/__fake/kustomer/limits", fake.base))
        .json(&json!({"keys": ["another-key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    s.send(vec![Ses::new("d1", &recent(5)).created("voice_outbound", json!({"phone": "+14155550160"}), &[])]).await;
    let dead = s.poll("/v1/outbox?state=dead", |d| d.to_string().contains("api_key")).await;
    assert!(dead.to_string().contains("Kustomer refused the API key"), "{dead}");
}

/// The generic delivery faults (`crm_faults`), played against the Kustomer fake.
mod faults {
    use crate::crm_faults::*;

    #[tokio::test]
    async fn kustomer_outage_then_recovery() {
        outage_then_recovery("kustomer").await;
    }

    #[tokio::test]
    async fn kustomer_throttling_wait_is_obeyed() {
        throttling_wait_is_obeyed("kustomer", 429).await;
    }

    #[tokio::test]
    async fn kustomer_landed_during_timeout_is_not_created_twice() {
        landed_during_timeout_is_not_created_twice("kustomer", "/v1/conversations").await;
    }

    #[tokio::test]
    async fn kustomer_killed_mid_write_then_restarted() {
        killed_mid_write_then_restarted("kustomer", "/v1/conversations").await;
    }

    #[tokio::test]
    async fn kustomer_a_failing_customer_waits_its_turn() {
        a_failing_customer_waits_its_turn("kustomer", "5550199").await;
    }

    #[tokio::test]
    async fn kustomer_rate_limit_is_never_exceeded() {
        rate_limit_is_never_exceeded("kustomer").await;
    }

    #[tokio::test]
    async fn kustomer_ordinary_call_costs_at_most_three_calls() {
        // 3 writes (conversation, phone note, one session note carrying the recording link
        // and CSAT); the customer's lookup by phone comes from the cache, which learnt the
        // customer when the first call created it.
        let n = calls_per_ordinary_call("kustomer").await;
        assert!(n <= 3, "{n} Kustomer API calls for an ordinary inbound call");
    }
}

#[tokio::test]
async fn kustomer_call_log_relates_to_the_conversation_the_agent_views() {
    let (fake, s, _) = start(json!({})).await;
    let (st, v) = s.post("/v1/dispositions", json!({"code": "sale", "label": "Sale"})).await;
    assert_eq!(st, 201, "{v}");
    s.send(call("r1", &recent(30), "+14155550180", &["Support"])).await;
    s.send(call("r2", &recent(10), "+14155550180", &["Sales"])).await;
    let older = s.session("r1").await["record_id"].as_str().unwrap().to_string();
    let newer = s.session("r2").await["record_id"].as_str().unwrap().to_string();
    assert_ne!(older, newer, "two conversations");
    s.put("/v1/agents/ag-1", json!({"email": "ann@example.com"})).await;
    let (st, _) = s.put("/v1/agents/ag-1/context", json!({"instance_id": "tab-1", "viewing_record_id": older})).await;
    assert_eq!(st, 200);
    let (st, v) = s.post("/v1/sessions/r2/wrapup", json!({"disposition": "sale", "notes": "n", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["related_by"], "viewing_record", "{v}");
    let notes = fake.poll_objects("note", |n| n.iter().any(|x| x["externalId"] == "call:r2")).await;
    let log = notes.iter().find(|n| n["externalId"] == "call:r2").unwrap();
    assert_eq!(log["conversation"], older.as_str(), "the call log is on the viewed conversation: {log}");
}
