//! Twilio through HTTP: TaskRouter callbacks (signed forms) and Event Streams (CloudEvents)
//! for a call and an SMS conversation, out of order and repeated, end like their own-schema
//! twins; forged and replayed signatures are refused.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::harness::{Server, Ses, outcome, raw, settled_in};

const TOKEN: &str = "twilio-auth-token-0123456789";
const BASE: &str = "https://cb.example.com";
const TASKROUTER: &str = "/v1/ingest/twilio/taskrouter?wait=20";
const T0: i64 = 1_795_687_200_000; // 2026-11-20T10:00:00Z

async fn start() -> Server {
    let s = Server::start().await;
    s.put_settings(json!({"ingest": {"twilio": {"enabled": true, "auth_token": TOKEN, "public_base_url": BASE,
        "mapping": {"queues": {"Billing": "Support > Billing"}, "agents": {"WK7": "agent-7"}}}}}))
        .await;
    s
}

fn sign(url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let data: String = std::iter::once(url.to_string()).chain(sorted.iter().map(|(k, v)| format!("{k}{v}"))).collect();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A TaskRouter callback's fields.
fn task_event(kind: &str, sid: &str, task: &str, channel: &str, attrs: &Value, secs: i64) -> Vec<(String, String)> {
    let mut p = vec![
        ("EventType", kind.to_string()),
        ("Sid", sid.to_string()),
        ("AccountSid", "AC1".into()),
        ("WorkspaceSid", "WS1".into()),
        ("TimestampMs", (T0 + secs * 1000).to_string()),
        ("TaskSid", task.to_string()),
        ("TaskAttributes", attrs.to_string()),
        ("TaskQueueName", "Billing".into()),
        ("TaskQueueSid", "WQ1".into()),
        ("TaskChannelUniqueName", channel.into()),
        ("TaskDateCreated", (T0 / 1000).to_string()),
    ];
    if kind.starts_with("reservation.") {
        p.push(("WorkerSid", "WK7".into()));
        p.push(("WorkerName", "Ann".into()));
        p.push(("WorkerAttributes", json!({"email": "ann@example.com"}).to_string()));
    }
    p.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

async fn post_task(s: &Server, params: &[(String, String)]) -> (u16, Value) {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let sig = sign(&format!("{BASE}{TASKROUTER}"), params);
    raw(s, TASKROUTER, &[("x-twilio-signature", &sig)], "application/x-www-form-urlencoded", body).await
}

async fn post_streams(s: &Server, events: Value) -> (u16, Value) {
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("twilio:{TOKEN}")));
    raw(
        s,
        "/v1/ingest/twilio/event-streams?wait=20",
        &[("authorization", &basic)],
        "application/json",
        events.to_string(),
    )
    .await
}

fn lifecycle(task: &str, channel: &str, attrs: &Value) -> Vec<Vec<(String, String)>> {
    [
        ("task.created", 0),
        ("task-queue.entered", 1),
        ("reservation.created", 20),
        ("reservation.accepted", 25),
        ("task.wrapup", 300),
        ("task.completed", 320),
    ]
    .iter()
    .map(|(k, t)| task_event(k, &format!("EV-{task}-{k}"), task, channel, attrs, *t))
    .collect()
}

#[tokio::test]
async fn a_call_from_taskrouter_out_of_order_and_repeated_ends_like_its_own_schema_twin() {
    let s = start().await;
    let attrs = json!({"call_sid": "CA100", "from": "+14155550100", "to": "+18005550000", "direction": "inbound"});
    let ev = lifecycle("WT100", "voice", &attrs);
    for i in [5, 3, 0, 4, 3, 1, 2, 5] {
        let (code, out) = post_task(&s, &ev[i]).await;
        assert_eq!(code, 200, "{out}");
    }
    // An event type of no interest is answered and counted.
    let (code, out) = post_task(&s, &task_event("worker.activity.update", "EV-w", "WT100", "voice", &attrs, 5)).await;
    assert_eq!((code, out["irrelevant"].clone()), (200, json!(1)));
    let id = "twilio:CA100";
    settled_in(&s, id, "ended").await;

    let own = Server::start().await;
    let mut c = Ses::new("call-1", "2026-11-20T10:00:00Z");
    let created = c.created("voice_inbound_ivr", json!({"phone": "+14155550100"}), &["Support", "Billing"]);
    own.send(vec![created, c.assigned("agent-7"), c.connected(), c.ended()]).await;
    settled_in(&own, "call-1", "ended").await;
    assert_eq!(outcome(&s, id).await, outcome(&own, "call-1").await);
}

fn cloud(id: &str, kind: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "type": kind, "source": "AB1", "id": id,
           "dataschema": "https://events-schemas.twilio.com/x/2", "datacontenttype": "application/json", "data": data})
}

fn message(sid: &str, author: &str, participant: &str, body: &str, at: &str) -> Value {
    cloud(
        &format!("NO-{sid}"),
        "com.twilio.conversations.message.added",
        json!({"AccountSid": "AC1",
        "Author": author, "ParticipantSid": participant, "ConversationSid": "CH200", "MessageSid": sid,
        "Index": 1, "MessageBody": body, "DateCreated": at}),
    )
}

#[tokio::test]
async fn an_sms_conversation_out_of_order_and_repeated_ends_like_its_own_schema_twin() {
    let s = start().await;
    let attrs = json!({"conversationSid": "CH200", "from": "+14155550100", "to": "+18005550000",
        "direction": "inbound", "channelType": "sms"});
    let tasks = lifecycle("WT200", "sms", &attrs);
    let customer = cloud(
        "NO-p1",
        "com.twilio.conversations.participant.added",
        json!({"ParticipantSid": "MB-c",
        "ConversationSid": "CH200", "DateCreated": "2026-11-20T10:00:00.000Z",
        "MessagingBinding": {"Address": "+14155550100", "ProxyAddress": "+18005550000", "Type": "SMS"}}),
    );
    let agent = cloud(
        "NO-p2",
        "com.twilio.conversations.participant.added",
        json!({"ParticipantSid": "MB-a",
        "Identity": "ann@example.com", "ConversationSid": "CH200", "DateCreated": "2026-11-20T10:00:25.000Z"}),
    );
    let m1 = message("IM1", "+14155550100", "MB-c", "my invoice", "2026-11-20T10:00:30.000Z");
    let m2 = message("IM2", "ann@example.com", "MB-a", "let me look", "2026-11-20T10:01:00.000Z");
    let m3 = message("IM3", "+14155550100", "MB-c", "thanks", "2026-11-20T10:02:00.000Z");
    let closed = cloud(
        "NO-s",
        "com.twilio.conversations.conversation-state.updated",
        json!({"ConversationSid": "CH200",
        "StateFrom": "active", "StateTo": "closed", "Reason": "API", "StateUpdated": "2026-11-20T10:04:00.000Z"}),
    );
    assert_eq!(post_streams(&s, json!([m2, agent])).await.0, 200);
    assert_eq!(post_task(&s, &tasks[3]).await.0, 200);
    assert_eq!(post_streams(&s, json!([m1, customer])).await.0, 200);
    assert_eq!(post_task(&s, &tasks[0]).await.0, 200);
    assert_eq!(post_streams(&s, json!([m1])).await.1["duplicates"], 1);
    assert_eq!(post_task(&s, &tasks[1]).await.0, 200);
    assert_eq!(post_task(&s, &tasks[2]).await.0, 200);
    assert_eq!(post_streams(&s, json!(m3)).await.0, 200);
    assert_eq!(post_streams(&s, json!([closed])).await.0, 200);
    assert_eq!(post_task(&s, &tasks[4]).await.0, 200);
    let id = "twilio:CH200";
    settled_in(&s, id, "ended").await;

    let own = Server::start().await;
    let mut t = Ses::new("chat-1", "2026-11-20T10:00:00Z");
    let created = t.created("messaging_inbound_sms", json!({"phone": "+14155550100"}), &["Support", "Billing"]);
    let mut events = vec![created, t.assigned("agent-7"), t.connected()];
    for (sender, text) in [("customer", "my invoice"), ("agent", "let me look"), ("customer", "thanks")] {
        events.push(t.ev(10, "message.created", json!({"sender": sender, "text": text})));
    }
    events.push(t.ended());
    own.send(events).await;
    settled_in(&own, "chat-1", "ended").await;
    let strip = |mut v: Value| {
        v["record"]["transcripts"] = json!(v["record"]["transcripts"].as_array().map(|a| a.len()));
        v
    };
    let a = outcome(&s, id).await;
    assert_eq!(a["session"]["customer_messages"], 2, "{a}");
    assert_eq!(strip(a), strip(outcome(&own, "chat-1").await));
}

#[tokio::test]
async fn forged_and_replayed_signatures_are_refused_and_nothing_is_stored() {
    let s = start().await;
    let attrs = json!({"call_sid": "CA300", "from": "+14155550100", "to": "+18005550000"});
    let created = task_event("task.created", "EV-300", "WT300", "voice", &attrs, 0);
    let body = |p: &[(String, String)]| form_urlencoded::Serializer::new(String::new()).extend_pairs(p).finish();
    let good_sig = sign(&format!("{BASE}{TASKROUTER}"), &created);
    // The signature of one payload on another: refused.
    let mut forged = created.clone();
    forged[6].1 = json!({"call_sid": "CA300", "from": "+19995550000"}).to_string();
    let form = "application/x-www-form-urlencoded";
    let (code, out) = raw(&s, TASKROUTER, &[("x-twilio-signature", &good_sig)], form, body(&forged)).await;
    assert_eq!(code, 401, "{out}");
    // Signed for another URL (replayed at this one): refused.
    let other = sign("https://cb.example.com/elsewhere", &created);
    assert_eq!(raw(&s, TASKROUTER, &[("x-twilio-signature", &other)], form, body(&created)).await.0, 401);
    assert_eq!(raw(&s, TASKROUTER, &[], form, body(&created)).await.0, 401);
    let (code, _) = s.call(reqwest::Method::GET, "/v1/sessions/twilio:CA300", None).await;
    assert_eq!(code, 404, "nothing stored");
    // The genuine one, then the same delivery again: a duplicate, nothing changes.
    assert_eq!(post_task(&s, &created).await.1["accepted"], 1);
    assert_eq!(post_task(&s, &created).await.1["duplicates"], 1);
    // Event Streams with a wrong password, or not CloudEvents.
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("twilio:wrong-password-0123456"));
    let path = "/v1/ingest/twilio/event-streams";
    assert_eq!(raw(&s, path, &[("authorization", &basic)], "application/json", "[]").await.0, 401);
    let (code, out) = post_streams(&s, json!([{"type": "com.twilio.conversations.message.added"}])).await;
    assert_eq!(code, 422, "{out}");
    assert_eq!(out["errors"][0]["field"], "id");
    assert_eq!(s.get("/v1/settings").await["ingest"]["twilio"]["auth_token"], "set");
}
