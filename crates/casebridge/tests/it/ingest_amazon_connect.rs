//! Amazon Connect through its own formats: contact events (EventBridge), chat messages (SNS)
//! and contact records (Firehose), out of order and repeated, end like the same lifecycle in
//! casebridge's own schema; forged, replayed and unauthenticated payloads are refused.

use base64::Engine;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};

use crate::harness::{Server, Ses, outcome, raw, settled_in};

const KEY: &str = "connect-key-0123456789";
const QUEUE: &str = "arn:aws:connect:us-west-2:111122223333:instance/inst-1/queue/q-billing";
const AGENT: &str = "arn:aws:connect:us-west-2:111122223333:instance/inst-1/agent/ag-uuid-7";
const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/sns-test-cert.pem");
const SIGNING_KEY: &str = include_str!("fixtures/sns-test-key.pem");

fn settings() -> Value {
    json!({"ingest": {"amazon_connect": {"enabled": true, "api_key": KEY,
        "mapping": {"queues": {"q-billing": "Support > Billing"}, "agents": {"ag-uuid-7": "agent-7"}}}}})
}

async fn start() -> Server {
    let s = Server::start_with(&[("CASEBRIDGE_SNS_CERT_FILE", CERT)], &[]).await;
    s.put_settings(settings()).await;
    s
}

/// A contact event as EventBridge delivers it: what the contact knows at `kind`'s step.
fn contact_event(id: &str, contact: &str, channel: &str, kind: &str, phone_tag: bool) -> Value {
    let step = ["INITIATED", "CONTACT_DATA_UPDATED", "QUEUED", "CONNECTED_TO_AGENT", "DISCONNECTED"]
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0);
    let mut tags = json!({"aws:connect:instanceId": "inst-1", "aws:connect:systemEndpoint": "+18005550000"});
    if phone_tag {
        tags["customer_phone"] = json!("+14155550100");
    }
    let mut detail = json!({
        "eventType": kind, "contactId": contact, "channel": channel,
        "instanceArn": "arn:aws:connect:us-west-2:111122223333:instance/inst-1",
        "initiationMethod": if channel == "CHAT" { "API" } else { "INBOUND" },
        "initiationTimestamp": "2026-11-20T10:00:00.000Z", "tags": tags,
    });
    if step >= 2 {
        detail["queueInfo"] =
            json!({"queueArn": QUEUE, "queueType": "STANDARD", "enqueueTimestamp": "2026-11-20T10:00:20.000Z"});
    }
    if step >= 3 {
        detail["agentInfo"] = json!({"agentArn": AGENT, "connectedToAgentTimestamp": "2026-11-20T10:00:40.000Z"});
    }
    if step >= 4 {
        detail["disconnectTimestamp"] = json!("2026-11-20T10:05:00.000Z");
    }
    if kind == "CONTACT_DATA_UPDATED" {
        detail["updatedProperties"] = json!(["Tags"]);
    }
    json!({"version": "0", "id": id, "detail-type": "Amazon Connect Contact Event", "source": "aws.connect",
           "account": "111122223333", "time": "2026-11-20T10:05:01Z", "region": "us-west-2",
           "resources": [], "detail": detail})
}

async fn post_events(s: &Server, body: Value) -> (u16, Value) {
    raw(s, "/v1/ingest/amazon-connect?wait=20", &[("x-api-key", KEY)], "application/json", body.to_string()).await
}

/// An SNS notification of a chat message, signed with the test certificate's key.
fn sns_chat(message_id: &str, contact: &str, role: &str, text: &str, at: &str, sent: &str, version: &str) -> Value {
    let inner = json!({"AbsoluteTime": at, "Content": text, "ContentType": "text/plain", "Id": message_id,
        "Type": "MESSAGE", "ParticipantId": "p-1", "DisplayName": "Jane", "ParticipantRole": role,
        "InitialContactId": contact, "ContactId": contact});
    let mut n = json!({"Type": "Notification", "MessageId": format!("sns-{message_id}"),
        "TopicArn": "arn:aws:sns:us-west-2:111122223333:connect-chat", "Message": inner.to_string(),
        "Timestamp": sent, "SignatureVersion": version,
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-test.pem"});
    sign(&mut n);
    n
}

fn sign(n: &mut Value) {
    let fields: &[&str] = if n["Type"] == "Notification" {
        &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    } else {
        &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    };
    let mut text = String::new();
    for f in fields {
        if let Some(v) = n[*f].as_str() {
            text.push_str(&format!("{f}\n{v}\n"));
        }
    }
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(SIGNING_KEY).unwrap();
    let sig = if n["SignatureVersion"] == "1" {
        rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key).sign(text.as_bytes()).to_vec()
    } else {
        rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key).sign(text.as_bytes()).to_vec()
    };
    n["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(sig));
}

async fn post_sns(s: &Server, n: &Value) -> (u16, Value) {
    raw(
        s,
        "/v1/ingest/amazon-connect/sns?wait=20",
        &[("x-amz-sns-message-type", "Notification")],
        "text/plain; charset=UTF-8",
        n.to_string(),
    )
    .await
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The same call in casebridge's own schema.
async fn own_call() -> Value {
    let s = Server::start().await;
    let mut c = Ses::new("call-1", "2026-11-20T10:00:00Z");
    let created = c.created("voice_inbound_ivr", json!({"phone": "+14155550100"}), &["Support", "Billing"]);
    s.send(vec![created, c.assigned("agent-7"), c.connected(), c.ended()]).await;
    settled_in(&s, "call-1", "ended").await;
    outcome(&s, "call-1").await
}

#[tokio::test]
async fn a_voice_call_out_of_order_and_repeated_ends_like_its_own_schema_twin() {
    let s = start().await;
    let c = "c-voice-1";
    let ev = |id: &str, kind: &str, tag: bool| contact_event(id, c, "VOICE", kind, tag);
    // The flow tags the caller's number after INITIATED; every later event carries the tag.
    let order = [
        ev("e-queued", "QUEUED", true),
        ev("e-initiated", "INITIATED", false),
        ev("e-disconnected", "DISCONNECTED", true),
        ev("e-queued", "QUEUED", true),
        ev("e-connected", "CONNECTED_TO_AGENT", true),
        ev("e-updated", "CONTACT_DATA_UPDATED", true),
        ev("e-disconnected", "DISCONNECTED", true),
    ];
    let mut duplicates = 0;
    for e in order {
        let (code, out) = post_events(&s, e).await;
        assert_eq!(code, 200, "{out}");
        duplicates += out["duplicates"].as_u64().unwrap_or(0);
    }
    assert_eq!(duplicates, 2);
    let id = format!("amazon-connect:{c}");
    let sess = settled_in(&s, &id, "ended").await;
    assert_eq!(outcome(&s, &id).await, own_call().await);
    // The platform's event is kept with the casebridge events it became, and on the timeline.
    let natives = sess["native_events"].as_array().cloned().unwrap_or_default();
    assert_eq!(natives.len(), 5, "{sess}");
    let disconnected = natives.iter().find(|n| n["id"] == "e-disconnected").unwrap();
    assert_eq!(disconnected["type"], "DISCONNECTED");
    assert_eq!(disconnected["payload"]["detail"]["contactId"], c);
    let line = sess["timeline"].as_array().unwrap().iter().find(|l| l["summary"] == "session.ended").unwrap();
    assert_eq!(line["native"]["type"], "DISCONNECTED", "{line}");
    assert_eq!(line["native"]["payload"]["id"], "e-disconnected");
}

#[tokio::test]
async fn a_later_contact_data_update_names_the_customer_an_earlier_event_lacked() {
    let s = start().await;
    let c = "c-voice-2";
    let (code, _) = post_events(&s, contact_event("f-1", c, "VOICE", "INITIATED", false)).await;
    assert_eq!(code, 200);
    // In the IVR, without a customer: nothing is made yet.
    let (code, _) = s.call(reqwest::Method::GET, &format!("/v1/sessions/amazon-connect:{c}"), None).await;
    assert_eq!(code, 404);
    let (code, _) = post_events(&s, contact_event("f-2", c, "VOICE", "CONTACT_DATA_UPDATED", true)).await;
    assert_eq!(code, 200);
    let sess = settled_in(&s, &format!("amazon-connect:{c}"), "created").await;
    assert_eq!(sess["account_outcome"], "created");
    let account = s.get(&format!("/v1/crm/accounts/{}", sess["account_id"].as_str().unwrap())).await;
    assert_eq!(account["phone"], "+14155550100");
}

#[tokio::test]
async fn a_chat_with_streamed_messages_out_of_order_ends_like_its_own_schema_twin() {
    let s = start().await;
    let c = "c-chat-1";
    let ev = |id: &str, kind: &str| {
        let mut e = contact_event(id, c, "CHAT", kind, false);
        e["detail"]["tags"]["customer_email"] = json!("jane@example.com");
        e
    };
    let sent = now();
    let m1 = sns_chat("m-1", c, "CUSTOMER", "my invoice is wrong", "2026-11-20T10:00:50.000Z", &sent, "1");
    let m2 = sns_chat("m-2", c, "AGENT", "let me look", "2026-11-20T10:01:10.000Z", &sent, "2");
    let m3 = sns_chat("m-3", c, "CUSTOMER", "thanks", "2026-11-20T10:02:00.000Z", &sent, "2");
    let (code, out) = post_sns(&s, &m2).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(post_events(&s, ev("g-connected", "CONNECTED_TO_AGENT")).await.0, 200);
    assert_eq!(post_sns(&s, &m1).await.0, 200);
    assert_eq!(post_events(&s, ev("g-initiated", "INITIATED")).await.0, 200);
    assert_eq!(post_sns(&s, &m1).await.1["duplicates"], 1);
    assert_eq!(post_events(&s, ev("g-queued", "QUEUED")).await.0, 200);
    assert_eq!(post_sns(&s, &m3).await.0, 200);
    assert_eq!(post_events(&s, ev("g-disconnected", "DISCONNECTED")).await.0, 200);
    assert_eq!(post_events(&s, ev("g-connected", "CONNECTED_TO_AGENT")).await.1["duplicates"], 1);
    let id = format!("amazon-connect:{c}");
    settled_in(&s, &id, "ended").await;

    let own = Server::start().await;
    let mut t = Ses::new("chat-1", "2026-11-20T10:00:00Z");
    let created = t.created("messaging_inbound_web", json!({"email": "jane@example.com"}), &["Support", "Billing"]);
    let mut events = vec![created, t.assigned("agent-7"), t.connected()];
    for (sender, text, at) in [
        ("customer", "my invoice is wrong", "2026-11-20T10:00:50Z"),
        ("agent", "let me look", "2026-11-20T10:01:10Z"),
        ("customer", "thanks", "2026-11-20T10:02:00Z"),
    ] {
        let mut m = t.ev(0, "message.created", json!({"sender": sender, "text": text}));
        m["at"] = json!(at);
        events.push(m);
    }
    let mut end = t.ev(0, "session.ended", json!({}));
    end["at"] = json!("2026-11-20T10:05:00Z");
    events.push(end);
    own.send(events).await;
    settled_in(&own, "chat-1", "ended").await;
    let (a, b) = (outcome(&s, &id).await, outcome(&own, "chat-1").await);
    assert_eq!(a["session"]["customer_messages"], 2);
    // Transcripts name their session; the rest is the same.
    let strip = |mut v: Value| {
        v["record"]["transcripts"] = json!(v["record"]["transcripts"].as_array().map(|a| a.len()));
        v
    };
    assert_eq!(strip(a), strip(b));
}

#[tokio::test]
async fn contact_records_from_firehose_are_answered_in_its_format() {
    let s = start().await;
    let record = json!({"ContactId": "c-rec-1", "Channel": "VOICE", "InitiationMethod": "INBOUND",
        "InitiationTimestamp": "2026-11-20T10:00:00Z", "DisconnectTimestamp": "2026-11-20T10:05:00Z",
        "LastUpdateTimestamp": "2026-11-20T10:06:00Z",
        "CustomerEndpoint": {"Address": "+14155550100", "Type": "TELEPHONE_NUMBER"},
        "SystemEndpoint": {"Address": "+18005550000", "Type": "TELEPHONE_NUMBER"},
        "Queue": {"ARN": QUEUE, "Name": "Billing", "EnqueueTimestamp": "2026-11-20T10:00:20Z"},
        "Agent": {"ARN": AGENT, "Username": "ann", "ConnectedToAgentTimestamp": "2026-11-20T10:00:40Z",
                  "AgentInteractionDuration": 260, "CustomerHoldDuration": 10},
        "Attributes": {}});
    let data = base64::engine::general_purpose::STANDARD.encode(record.to_string());
    let body = json!({"requestId": "req-1", "timestamp": 1_800_000_000_000_i64, "records": [{"data": data}]});
    let path = "/v1/ingest/amazon-connect/firehose?wait=20";
    let (code, out) = raw(
        &s,
        path,
        &[("x-amz-firehose-access-key", "wrong-key-0123456789"), ("x-amz-firehose-request-id", "req-1")],
        "application/json",
        body.to_string(),
    )
    .await;
    assert_eq!((code, out["requestId"].clone()), (401, json!("req-1")), "{out}");
    let (code, out) = raw(
        &s,
        path,
        &[("x-amz-firehose-access-key", KEY), ("x-amz-firehose-request-id", "req-1")],
        "application/json",
        body.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["requestId"], "req-1");
    assert!(out["timestamp"].as_i64().is_some());
    let sess = settled_in(&s, "amazon-connect:c-rec-1", "ended").await;
    assert_eq!(sess["record_outcome"], "created");
    assert_eq!(sess["leaf_queue"], "Support > Billing");
    assert_eq!(sess["agent_id"], "agent-7");
}

#[tokio::test]
async fn forged_replayed_and_unauthenticated_payloads_are_refused_and_nothing_is_stored() {
    let s = start().await;
    let c = "c-refused";
    let e = contact_event("h-1", c, "VOICE", "DISCONNECTED", true);
    for headers in [vec![], vec![("x-api-key", "not-the-key-0123456789")]] {
        let (code, out) = raw(&s, "/v1/ingest/amazon-connect", &headers, "application/json", e.to_string()).await;
        assert_eq!(code, 401, "{out}");
    }
    // Basic auth with the key as password is what an API destination may send.
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("connect:{KEY}")));
    let (code, _) = raw(
        &s,
        "/v1/ingest/amazon-connect?wait=20",
        &[("authorization", &basic)],
        "application/json",
        contact_event("h-ok", "c-basic", "VOICE", "DISCONNECTED", true).to_string(),
    )
    .await;
    assert_eq!(code, 200);

    let sent = now();
    let good = sns_chat("n-1", c, "CUSTOMER", "hi", "2026-11-20T10:00:50.000Z", &sent, "2");
    let mut forged = good.clone();
    forged["Message"] = json!(good["Message"].as_str().unwrap().replace("hi", "send me the refund"));
    let old = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let replayed = sns_chat("n-2", c, "CUSTOMER", "hi", "2026-11-20T10:00:50.000Z", &old, "1");
    let mut unsigned = good.clone();
    unsigned.as_object_mut().unwrap().remove("Signature");
    for bad in [&forged, &replayed, &unsigned] {
        let (code, out) = post_sns(&s, bad).await;
        assert_eq!(code, 401, "{out}");
    }
    // The topic allow-list refuses other topics' messages, signed or not.
    let mut settings = settings();
    settings["ingest"]["amazon_connect"]["api_key"] = json!("set");
    settings["ingest"]["amazon_connect"]["sns_topic_arns"] = json!(["arn:aws:sns:us-west-2:111122223333:other"]);
    s.put_settings(settings).await;
    let (code, out) = post_sns(&s, &good).await;
    assert_eq!(code, 401, "{out}");
    assert!(out["detail"].as_str().unwrap().contains("sns_topic_arns"), "{out}");

    // Not the format: 422 naming the field; an event of no interest: 200 and counted.
    let mut no_contact = e.clone();
    no_contact["detail"].as_object_mut().unwrap().remove("contactId");
    let (code, out) = post_events(&s, no_contact).await;
    assert_eq!(code, 422, "{out}");
    assert_eq!(out["errors"][0]["field"], "detail.contactId", "{out}");
    let lens = json!({"version": "0", "id": "lens-1", "detail-type": "Contact Lens Analysis State Change",
        "source": "aws.connect", "time": "2026-11-20T10:00:00Z", "detail": {}});
    let (code, out) = post_events(&s, json!([lens, contact_event("p-1", c, "VOICE", "PAUSED", true)])).await;
    assert_eq!((code, out["irrelevant"].clone()), (200, json!(2)), "{out}");
    let metrics = s.get("/metrics").await.as_str().unwrap_or_default().to_string();
    let counted = |outcome: &str| {
        metrics.lines().find(|l| {
            l.starts_with("casebridge_ingest_events_total{")
                && l.contains(r#"source="amazon-connect""#)
                && l.contains(&format!(r#"outcome="{outcome}""#))
        })
    };
    assert!(counted("irrelevant").is_some_and(|l| l.ends_with(" 2")), "{metrics}");
    assert!(counted("refused").is_some(), "{metrics}");
    let (code, _) = s.call(reqwest::Method::GET, &format!("/v1/sessions/amazon-connect:{c}"), None).await;
    assert_eq!(code, 404, "nothing of the refused requests was stored");

    // The secret is write-only.
    let shown = s.get("/v1/settings").await;
    assert_eq!(shown["ingest"]["amazon_connect"]["api_key"], "set");
    // A disabled source answers 404.
    s.put_settings(json!({})).await;
    let (code, _) = post_events(&s, e).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_subscription_is_confirmed_by_visiting_its_link() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let link = format!("http://{}/confirm?Token=t-1", listener.local_addr().unwrap());
    let visited = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = sock.read(&mut buf).await.unwrap();
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    });
    let mut c = json!({"Type": "SubscriptionConfirmation", "MessageId": "sub-1", "Token": "t-1",
        "TopicArn": "arn:aws:sns:us-west-2:111122223333:connect-chat", "Message": "You have chosen to subscribe",
        "SubscribeURL": link, "Timestamp": now(), "SignatureVersion": "1",
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-test.pem"});
    sign(&mut c);
    let (code, out) = post_sns(&s, &c).await;
    assert_eq!(code, 200, "{out}");
    let request = tokio::time::timeout(std::time::Duration::from_secs(10), visited).await.unwrap().unwrap();
    assert!(request.starts_with("GET /confirm?Token=t-1 "), "{request}");
}

#[tokio::test]
async fn simulate_reads_a_file_of_amazon_connect_events() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connect.ndjson");
    let lines: Vec<String> = ["DISCONNECTED", "INITIATED", "QUEUED", "CONNECTED_TO_AGENT", "QUEUED"]
        .iter()
        .map(|k| contact_event(&format!("s-{k}"), "c-sim", "VOICE", k, true).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let settings_file = dir.path().join("settings.json");
    std::fs::write(&settings_file, settings().to_string()).unwrap();
    let out = std::process::Command::new(crate::harness::bin())
        .args(["simulate", "--source", "amazon-connect", "--format", "json", "--settings"])
        .arg(&settings_file)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["session_id"], "amazon-connect:c-sim");
    assert_eq!(line["account_outcome"], "created");
    assert_eq!(line["record_outcome"], "created");
    assert_eq!(line["title"], "IVR Call +18005550000");
}
