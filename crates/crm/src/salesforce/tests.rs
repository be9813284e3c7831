//! The connector against the Salesforce fake, in process: batching into composite requests
//! and replays that make nothing twice.

use casebridge_rules::model::{AccountKind, ObjRef, SessionData};
use casebridge_rules::ops::CrmOp;
use casebridge_rules::settings::CrmSettings;
use chrono::Utc;
use serde_json::{Value, json};

use super::{SalesforceConfig, SalesforceConnector};
use crate::http::HttpClient;
use crate::{Connector, Write};

async fn fake() -> String {
    let f = casebridge_fakes::fake("salesforce").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(casebridge_fakes::serve(f, listener));
    base
}

fn connector(base: &str) -> SalesforceConnector {
    let crm: CrmSettings = serde_json::from_value(json!({"kind": "salesforce", "base_url": base,
        "credentials": {"client_id": "casebridge-test", "client_secret": "fake-secret"},
        "queue_field": "Casebridge_Queue__c"}))
    .unwrap();
    let (cfg, _) = SalesforceConfig::parse(&crm).unwrap();
    SalesforceConnector::new(cfg, HttpClient::new().unwrap())
}

async fn get(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}")).await.unwrap().json().await.unwrap()
}

fn writes() -> Vec<Write> {
    let at = Utc::now();
    let data = SessionData { session_id: "b1".into(), session_type: "voice_inbound_ivr".into(), ..Default::default() };
    vec![
        Write {
            key: "b1#1".into(),
            op: CrmOp::CreateAccount {
                key: "cb-acct-b1".into(),
                kind: AccountKind::Contact,
                name: Some("Ann Lee".into()),
                phone: Some("+14155550100".into()),
                phone_extension: None,
                email: None,
                user_id: None,
                at,
            },
        },
        Write {
            key: "b1#2".into(),
            op: CrmOp::CreateRecord {
                key: "cb-rec-b1".into(),
                account: Some(ObjRef::Key("cb-acct-b1".into())),
                title: "Call".into(),
                leaf_queue: Some("Support".into()),
                channel: casebridge_rules::event::Channel::Voice,
                owner: None,
                tags: vec![],
                session_id: "b1".into(),
                abandoned: false,
                missed_reason: None,
                note: None,
                at,
            },
        },
        Write {
            key: "b1#3".into(),
            op: CrmOp::WriteSessionData {
                target: casebridge_rules::model::DataTarget::Activity,
                record: Some(ObjRef::Key("cb-rec-b1".into())),
                account: Some(ObjRef::Key("cb-acct-b1".into())),
                data,
            },
        },
        Write {
            key: "b1#4".into(),
            op: CrmOp::AddNote { record: ObjRef::Key("cb-rec-b1".into()), body: "CSAT score: 9".into(), at },
        },
    ]
}

#[tokio::test]
async fn a_lane_goes_out_in_composite_requests_and_a_replay_makes_nothing_twice() {
    let base = fake().await;
    let c = connector(&base);
    let out = c.execute_batch(&writes()).await;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    let created: Vec<_> = out.iter().filter_map(|o| o.as_ref().ok().and_then(|o| o.created.clone())).collect();
    assert_eq!(created.len(), 2);
    let log = get(&base, "/__fake/stats").await["log"].as_array().unwrap().clone();
    let routes: Vec<String> =
        log.iter().map(|l| format!("{} {}", l["method"].as_str().unwrap(), l["route"].as_str().unwrap())).collect();
    // The three upserts in one composite; the note reads the case first, so it goes after.
    assert_eq!(
        routes,
        [
            "POST /services/oauth2/token",
            "POST /services/data/{version}/composite",
            "POST /services/data/{version}/sobjects/{object}",
        ],
        "{log:#?}"
    );
    let tasks = get(&base, "/__fake/objects/Task").await;
    let case = get(&base, "/__fake/objects/Case").await[0].clone();
    assert_eq!(tasks[0]["WhatId"], case["Id"], "the reference was resolved in the composite request");
    assert_eq!(case["ContactId"], get(&base, "/__fake/objects/Contact").await[0]["Id"]);

    // The same lane again, from a fresh process (nothing remembered): nothing is made twice.
    let again = connector(&base).execute_batch(&writes()).await;
    assert!(again.iter().all(Result::is_ok), "{again:?}");
    assert!(again[3].as_ref().unwrap().summary.contains("replay"), "{again:?}");
    for (obj, n) in [("Contact", 1), ("Case", 1), ("Task", 1), ("CaseComment", 1)] {
        assert_eq!(get(&base, &format!("/__fake/objects/{obj}")).await.as_array().unwrap().len(), n, "{obj}");
    }
}
