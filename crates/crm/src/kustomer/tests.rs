//! The connector against the Kustomer fake over HTTP: batches folded into few calls, and
//! replays (a new process resending the same writes) creating nothing twice.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure with its message

use casebridge_rules::event::Channel;
use casebridge_rules::model::{AccountKind, DataTarget, ObjRef, SessionData};
use casebridge_rules::ops::CrmOp;
use casebridge_rules::settings::CrmSettings;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{KustomerConfig, KustomerConnector};
use crate::http::HttpClient;
use crate::{Connector, CrmLookup, Write};

async fn fake() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let f = casebridge_fakes::fake("kustomer").unwrap();
    tokio::spawn(casebridge_fakes::serve(f, listener));
    base
}

fn connector(base: &str) -> KustomerConnector {
    let crm: CrmSettings = serde_json::from_value(json!({"kind": "kustomer", "base_url": base,
        "credentials": {"api_key": "fake-api-key"}, "agent_users": {"ag-1": "ann@example.com"}}))
    .unwrap();
    let (cfg, _) = KustomerConfig::parse(&crm).unwrap();
    KustomerConnector::new(cfg, HttpClient::new().unwrap())
}

async fn control(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut r = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth("fake-api-key");
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap().json().await.unwrap_or(Value::Null)
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap().with_timezone(&Utc)
}

fn w(key: &str, op: CrmOp) -> Write {
    Write { key: key.into(), op }
}

fn data(csat: Option<f64>) -> SessionData {
    SessionData {
        session_id: "s1".into(),
        session_type: "voice_inbound_ivr".into(),
        queue: Some("Support".into()),
        started_at: Some(at()),
        ended_at: Some(at() + chrono::Duration::seconds(70)),
        duration_s: Some(60.0),
        recording_url: Some("https://files.example/s1.mp3".into()),
        csat_score: csat,
        ..SessionData::default()
    }
}

#[tokio::test]
async fn kustomer_an_ordinary_inbound_call_costs_three_calls_and_replays_create_nothing() {
    let base = fake().await;
    control(&base, reqwest::Method::POST, "/v1/users", Some(json!({"email": "ann@example.com"}))).await;
    let c = connector(&base);
    let account = CrmOp::CreateAccount {
        key: "cb-acct-s0".into(),
        kind: AccountKind::Contact,
        name: Some("Ann".into()),
        phone: Some("+14155550100".into()),
        phone_extension: None,
        email: None,
        user_id: None,
        at: at(),
    };
    let acc = c.execute("s0#1", &account).await.unwrap().created.unwrap().1;
    // Warm the user cache as an earlier call would have.
    assert!(c.user_for("ag-1").await.unwrap().is_some());
    control(&base, reqwest::Method::POST, "/__fake/reset", None).await;

    let create = vec![w(
        "s1#1",
        CrmOp::CreateRecord {
            key: "cb-rec-s1".into(),
            account: Some(ObjRef::Crm(acc.clone())),
            title: "IVR Call".into(),
            leaf_queue: Some("Support".into()),
            channel: Channel::Voice,
            owner: Some("ag-1".into()),
            tags: vec!["casebridge".into()],
            session_id: "s1".into(),
            abandoned: false,
            missed_reason: None,
            note: Some("Caller: +14155550100".into()),
            at: at(),
        },
    )];
    let out = c.execute_batch(&create).await;
    let conv = out[0].as_ref().unwrap().created.clone().unwrap().1;
    let record = || Some(ObjRef::Crm(conv.clone()));
    let trailing = vec![
        w(
            "s1#2",
            CrmOp::WriteSessionData { target: DataTarget::Activity, record: record(), account: None, data: data(None) },
        ),
        w(
            "s1#3",
            CrmOp::AddAttachment {
                record: ObjRef::Crm(conv.clone()),
                name: "recording-s1".into(),
                url: Some("https://files.example/s1.mp3".into()),
                content: None,
                at: at(),
            },
        ),
        w("s1#4", CrmOp::AddNote { record: ObjRef::Crm(conv.clone()), body: "CSAT score: 5".into(), at: at() }),
        w(
            "s1#5",
            CrmOp::WriteSessionData {
                target: DataTarget::Activity,
                record: record(),
                account: None,
                data: data(Some(5.0)),
            },
        ),
    ];
    let out = c.execute_batch(&trailing).await;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    let stats = control(&base, reqwest::Method::GET, "/__fake/stats", None).await;
    assert_eq!(stats["requests"], 3, "create, phone note, one session note: {stats}");

    // Another process replays everything: still one of each.
    let again = connector(&base);
    assert!(again.execute_batch(&create).await[0].as_ref().unwrap().summary.contains("replay"));
    assert!(again.execute_batch(&trailing).await.iter().all(Result::is_ok));
    let convs = control(&base, reqwest::Method::GET, "/__fake/objects/conversation", None).await;
    assert_eq!(convs.as_array().unwrap().len(), 1);
    let notes = control(&base, reqwest::Method::GET, "/__fake/objects/note", None).await;
    let notes = notes.as_array().unwrap();
    assert_eq!(notes.len(), 2, "the phone note and the session note: {notes:?}");
    let session = notes.iter().find(|n| n["externalId"] == "session:s1").unwrap();
    let body = session["body"].as_str().unwrap();
    assert!(body.contains("CSAT score: 5") && body.contains("s1.mp3"), "{body}");
    let recs = again.lookup(&CrmLookup::RecordsOfAccount(acc)).await.unwrap();
    let casebridge_rules::model::Answer::Records(recs) = recs else { panic!("records") };
    assert_eq!((recs.len(), recs[0].leaf_queue.as_deref(), recs[0].is_closed), (1, Some("Support"), false));
    assert_eq!(recs[0].channel, Some(Channel::Voice));
}

#[tokio::test]
async fn kustomer_a_duplicate_identifier_finds_the_customer_that_holds_it() {
    let base = fake().await;
    control(
        &base,
        reqwest::Method::POST,
        "/v1/customers",
        Some(json!({"name": "Existing", "phones": [{"type": "mobile", "phone": "+14155550199"}]})),
    )
    .await;
    let c = connector(&base);
    let op = CrmOp::CreateAccount {
        key: "cb-acct-x".into(),
        kind: AccountKind::Lead,
        name: None,
        phone: Some("+14155550199".into()),
        phone_extension: Some("12".into()),
        email: None,
        user_id: None,
        at: at(),
    };
    let out = c.execute("x#1", &op).await.unwrap();
    assert!(out.summary.contains("already had this phone"), "{}", out.summary);
    let customers = control(&base, reqwest::Method::GET, "/__fake/objects/customer", None).await;
    assert_eq!(customers.as_array().unwrap().len(), 1, "never a second customer");
}

#[test]
fn kustomer_attribute_names_carry_the_type_suffix() {
    assert_eq!(super::attribute_name("queue_name"), "casebridgeQueueNameStr");
    assert_eq!(super::attribute_name("call_duration"), "casebridgeCallDurationNum");
    assert_eq!(super::attribute_name("custom_user_id"), "casebridgeCustomUserIdStr");
}

#[tokio::test]
async fn kustomer_check_reports_each_part_and_what_to_fix() {
    let base = fake().await;
    let checks = connector(&base).check().await;
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "reachable",
            "credentials",
            "object customer",
            "object conversation",
            "users",
            "field casebridgeQueueStr",
            "statuses",
            "agent status"
        ]
    );
    assert!(checks[6].detail.contains("closed: done"), "{}", checks[6].detail);
    control(&base, reqwest::Method::POST, "/__fake/kustomer/limits", Some(json!({"keys": ["other"]}))).await;
    let checks = connector(&base).check().await;
    let cred = checks.iter().find(|c| c.name == "credentials").unwrap();
    assert!(!cred.ok && cred.detail.contains("crm.credentials.api_key"), "{cred:?}");
    let unreachable = connector("http://127.0.0.1:9").check().await;
    assert!(!unreachable[0].ok && unreachable[0].detail.contains("crm.base_url"), "{unreachable:?}");
}
