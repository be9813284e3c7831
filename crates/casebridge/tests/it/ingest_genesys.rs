//! Genesys Cloud through HTTP: conversation detail events from its EventBridge integration,
//! for a call and a web chat, out of order and repeated, end like their own-schema twins; a
//! wrong key is refused.

use serde_json::{Value, json};

use crate::harness::{Server, Ses, outcome, raw, settled_in};

const KEY: &str = "genesys-key-0123456789";
const T0: i64 = 1_795_687_200_000; // 2026-11-20T10:00:00Z

async fn start() -> Server {
    let s = Server::start().await;
    s.put_settings(json!({"ingest": {"genesys": {"enabled": true, "api_key": KEY,
        "mapping": {"queues": {"q-1": "Support > Billing"}, "agents": {"u-7": "agent-7"}}}}}))
        .await;
    s
}

/// An EventBridge event of the Genesys Cloud integration.
fn event(step: &str, conversation: &str, media: &str, secs: i64, extra: Value) -> Value {
    let mut body = json!({"eventTime": T0 + secs * 1000, "conversationId": conversation,
        "participantId": format!("p-{step}"), "sessionId": format!("s-{}", step.split('.').next().unwrap_or(step)),
        "mediaType": media, "provider": "Edge", "direction": "INBOUND",
        "ani": "tel:+14155550100", "dnis": "tel:+18005550000"});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    json!({"version": "0", "id": format!("{conversation}-{step}"),
        "detail-type": format!("v2.detail.events.conversation.{{id}}.{step}"),
        "source": "aws.partner/genesys.com/cloud/org-1/casebridge", "account": "123456789012",
        "time": "2026-11-20T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"topicName": format!("v2.detail.events.conversation.{conversation}.{step}"), "version": "2",
                   "eventBody": body, "metadata": {"CorrelationId": "c-1"}, "timestamp": "2026-11-20T10:00:00.000Z"}})
}

fn lifecycle(conversation: &str, media: &str, customer: Value) -> Vec<Value> {
    vec![
        event("customer.start", conversation, media, 0, customer),
        event("acd.start", conversation, media, 10, json!({"queueId": "q-1"})),
        event("user.start", conversation, media, 30, json!({"userId": "u-7", "queueId": "q-1"})),
        event(
            "acd.end",
            conversation,
            media,
            31,
            json!({"queueId": "q-1", "acdOutcome": "ANSWERED", "answeredUserId": "u-7"}),
        ),
        event("user.end", conversation, media, 290, json!({"userId": "u-7", "disconnectType": "CLIENT"})),
        event(
            "customer.end",
            conversation,
            media,
            300,
            json!({"disconnectType": "ENDPOINT", "interactingDurationMs": 300000}),
        ),
    ]
}

async fn post(s: &Server, key: &str, v: &Value) -> (u16, Value) {
    raw(s, "/v1/ingest/genesys?wait=20", &[("x-api-key", key)], "application/json", v.to_string()).await
}

async fn own(session_type: &str, customer: Value) -> Value {
    let own = Server::start().await;
    let mut c = Ses::new("own-1", "2026-11-20T10:00:00Z");
    let created = c.created(session_type, customer, &["Support", "Billing"]);
    own.send(vec![created, c.assigned("agent-7"), c.connected(), c.ended()]).await;
    settled_in(&own, "own-1", "ended").await;
    outcome(&own, "own-1").await
}

#[tokio::test]
async fn a_call_out_of_order_and_repeated_ends_like_its_own_schema_twin() {
    let s = start().await;
    let ev = lifecycle("conv-1", "VOICE", json!({}));
    for i in [5, 3, 0, 2, 2, 1, 4, 5] {
        let (code, out) = post(&s, KEY, &ev[i]).await;
        assert_eq!(code, 200, "{out}");
    }
    let id = "genesys:conv-1";
    let sess = settled_in(&s, id, "ended").await;
    assert_eq!(sess["native_events"].as_array().map(Vec::len), Some(6));
    assert_eq!(outcome(&s, id).await, own("voice_inbound_ivr", json!({"phone": "+14155550100"})).await);
}

#[tokio::test]
async fn a_web_chat_out_of_order_ends_like_its_own_schema_twin() {
    let s = start().await;
    let ev = lifecycle("conv-2", "CHAT", json!({"externalContactId": "ext-42"}));
    // The EventBridge target may batch events: an array is one request.
    let (code, out) = post(&s, KEY, &json!([ev[3], ev[5], ev[1]])).await;
    assert_eq!((code, out["accepted"].clone()), (200, json!(3)), "{out}");
    for i in [0, 2, 4, 0] {
        assert_eq!(post(&s, KEY, &ev[i]).await.0, 200);
    }
    let id = "genesys:conv-2";
    settled_in(&s, id, "ended").await;
    assert_eq!(outcome(&s, id).await, own("messaging_inbound_web", json!({"user_id": "ext-42"})).await);
}

#[tokio::test]
async fn a_wrong_key_or_another_format_is_refused_and_topics_of_no_interest_counted() {
    let s = start().await;
    let ev = lifecycle("conv-3", "VOICE", json!({}));
    assert_eq!(post(&s, "not-the-key-0123456789", &ev[0]).await.0, 401);
    let (code, out) = post(
        &s,
        KEY,
        &json!({"id": "x", "detail-type": "v2.detail.events.conversation.{id}.customer.start",
        "detail": {"topicName": "v2.detail.events.conversation.c.customer.start"}}),
    )
    .await;
    assert_eq!(code, 422, "{out}");
    assert_eq!(out["errors"][0]["field"], "detail.eventBody");
    let acw = event("acw", "conv-3", "VOICE", 400, json!({"wrapupCode": "w-1"}));
    let (code, out) = post(&s, KEY, &acw).await;
    assert_eq!((code, out["irrelevant"].clone()), (200, json!(1)));
    let (code, _) = s.call(reqwest::Method::GET, "/v1/sessions/genesys:conv-3", None).await;
    assert_eq!(code, 404);
}
