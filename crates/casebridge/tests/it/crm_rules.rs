//! Rules whose outcome is the same on every CRM, checked on each vendor's fake: what the
//! fake stores, not what casebridge says.

use serde_json::json;

use crate::fakes::FakeCrm;
use crate::harness::{Server, Ses, settings};

/// With "delay until connected", a call abandoned in the queue makes no record in the CRM;
/// a connected one makes one.
async fn delay_until_connected(kind: &'static str) {
    let fake = FakeCrm::start(kind).await;
    let s = Server::start().await;
    s.put_settings(settings(json!({"crm": fake.crm_settings(), "records": {"delay_call_until_connected": true}})))
        .await;
    let mut a = Ses::new("dl-1", "2026-11-20T10:00:00Z");
    s.send(vec![
        a.created("voice_inbound_ivr", json!({"phone": "+14155550190"}), &["Support"]),
        a.ev(5, "session.queued", json!({"queue_path": ["Support"]})),
        a.assigned("ag-1"),
        a.abandoned(20),
    ])
    .await;
    assert_eq!(s.session("dl-1").await["record_outcome"], "none");
    let mut b = Ses::new("dl-2", "2026-11-20T11:00:00Z");
    s.send(vec![
        b.created("voice_inbound_ivr", json!({"phone": "+14155550191"}), &["Support"]),
        b.assigned("ag-1"),
        b.connected(),
        b.ended(),
    ])
    .await;
    let records = fake.poll_objects(fake.record_type(), |v| !v.is_empty()).await;
    assert_eq!(records.len(), 1, "only the connected call has a record: {records:?}");
    assert_eq!(s.session("dl-2").await["record_outcome"], "created");
}

#[tokio::test]
async fn salesforce_delay_until_connected() {
    delay_until_connected("salesforce").await;
}

#[tokio::test]
async fn kustomer_delay_until_connected() {
    delay_until_connected("kustomer").await;
}
