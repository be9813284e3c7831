//! behaviour.md §2: accounts.

use serde_json::json;

use crate::harness::*;

const T: &str = "2026-11-20T10:00:00Z";

#[tokio::test]
async fn lookup_order_is_user_id_then_phone_then_email() {
    let s = Server::start().await;
    let by_phone = s.create_account(json!({"kind": "contact", "phone": "(415) 555-0100"})).await;
    let by_email = s.create_account(json!({"kind": "contact", "email": "Ann@Example.com"})).await;
    let by_user = s.create_account(json!({"kind": "contact", "user_id": "u-1"})).await;
    let mut a = Ses::new("a", T);
    let mut b = Ses::new("b", T);
    let mut c = Ses::new("c", T);
    s.send(vec![
        a.created(
            "messaging_inbound_app",
            json!({"user_id": "u-1", "phone": "+14155550100", "email": "ann@example.com"}),
            &["Q"],
        ),
        b.created("messaging_inbound_web", json!({"phone": "+1 415 555 0100", "email": "ann@example.com"}), &["Q"]),
        c.created("messaging_inbound_web", json!({"email": "ANN@example.COM"}), &["Q"]),
    ])
    .await;
    assert_eq!(s.session("a").await["account_id"], by_user["id"]);
    assert_eq!(s.session("b").await["account_id"], by_phone["id"]);
    let sc = s.session("c").await;
    assert_eq!(sc["account_id"], by_email["id"], "email matches case-insensitively");
    assert_eq!(sc["account_outcome"], "found");
    assert!(has_rule(&sc, "accounts.lookup"));
}

#[tokio::test]
async fn several_matches_follow_multiple_match_and_name_the_others() {
    let s = Server::start().await;
    let contact =
        s.create_account(json!({"kind": "contact", "phone": "+14155550100", "at": "2026-01-01T00:00:00Z"})).await;
    let lead = s.create_account(json!({"kind": "lead", "phone": "415-555-0100", "at": "2026-06-01T00:00:00Z"})).await;
    s.send(call("m1", T, "+14155550100", &["Q"])).await;
    let m1 = s.session("m1").await;
    assert_eq!(m1["account_id"], lead["id"], "most_recent picks the latest update");
    assert!(has_rule(&m1, "accounts.multiple_match.most_recent"));
    let names_other = m1["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["summary"].as_str().unwrap().contains(contact["id"].as_str().unwrap()));
    assert!(names_other, "timeline names the other match: {m1}");
    s.put_settings(settings(json!({"accounts": {"multiple_match": "priority"}}))).await;
    s.send(call("m2", "2026-11-21T10:00:00Z", "+14155550100", &["Q"])).await;
    assert_eq!(s.session("m2").await["account_id"], contact["id"], "priority: contact beats lead");
}

#[tokio::test]
async fn phones_match_in_e164_with_region_and_extension_ignored() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"region": "GB"}))).await;
    let acc = s.create_account(json!({"kind": "contact", "phone": "020 7946 0958"})).await;
    s.send(call("p1", T, "+44 (0)20 7946 0958 ext. 12", &["Q"])).await;
    let p1 = s.session("p1").await;
    assert_eq!(p1["account_id"], acc["id"], "{p1}");
    s.send(call("p2", T, "0044 20 7946 0958", &["Q"])).await;
    assert_eq!(s.session("p2").await["account_id"], acc["id"]);
}

#[tokio::test]
async fn unknown_caller_gets_an_account_with_details_and_phone_note() {
    let s = Server::start().await;
    let mut a = Ses::new("n1", T);
    s.send(vec![
        a.created("voice_inbound_ivr", json!({"phone": "(415) 555-0199"}), &["Support"]),
        a.ev(
            5,
            "session.assigned",
            json!({"agent": {"id": "ag-1"}, "customer": {"name": "Ann Lee", "email": "ann@example.com"}}),
        ),
        a.connected(),
        a.ended(),
    ])
    .await;
    let n1 = s.session("n1").await;
    assert_eq!(n1["account_outcome"], "created");
    let acc = s.get(&format!("/v1/crm/accounts/{}", n1["account_id"].as_str().unwrap())).await;
    assert_eq!(acc["phone"], "+14155550199");
    assert_eq!(acc["name"], "Ann Lee", "updated with details known at assignment");
    assert_eq!(acc["email"], "ann@example.com");
    let rec = s.record_of("n1").await;
    assert_eq!(rec["account_id"], n1["account_id"]);
    assert!(rec["notes"].as_array().unwrap().iter().any(|n| n["body"] == "Customer phone: +14155550199"), "{rec}");
}

#[tokio::test]
async fn no_account_for_anonymous_own_and_never_create_numbers() {
    let s = Server::start().await;
    s.put_settings(settings(
        json!({"own_numbers": ["+1 800 555 0000"], "accounts": {"never_create_for": ["+1900*", "4321"]}}),
    ))
    .await;
    s.send(call("anon", T, "anonymous", &["Q"])).await;
    s.send(call("own", T, "18005550000", &["Q"])).await;
    s.send(call("prefix", T, "+19005550123", &["Q"])).await;
    s.send(call("ext", T, "4321", &["Q"])).await;
    for (id, rule) in [
        ("anon", "accounts.anonymous"),
        ("own", "own_numbers"),
        ("prefix", "accounts.never_create_for"),
        ("ext", "accounts.never_create_for"),
    ] {
        let v = s.session(id).await;
        assert_eq!(v["account_outcome"], "none", "{id}: {v}");
        assert!(has_rule(&v, rule), "{id} names rule {rule}: {v}");
        assert_eq!(v["record_outcome"], "created", "records are still created without an account");
    }
}

#[tokio::test]
async fn skip_lookup_and_skip_creation_leave_the_session_without_account() {
    let s = Server::start().await;
    let existing = s.create_account(json!({"kind": "contact", "phone": "+14155550100"})).await;
    s.put_settings(settings(json!({"accounts": {"skip_creation": true}}))).await;
    s.send(call("k1", T, "+14155550100", &["Q"])).await;
    s.send(call("k2", T, "+14155550111", &["Q"])).await;
    assert_eq!(s.session("k1").await["account_id"], existing["id"], "lookup still happens");
    let k2 = s.session("k2").await;
    assert_eq!(k2["account_outcome"], "none");
    assert!(has_rule(&k2, "accounts.skip_creation"));
    s.put_settings(settings(
        json!({"accounts": {"skip_lookup": true}, "session_data": {"unrecorded_session_link": "none"}}),
    ))
    .await;
    s.send(call("k3", T, "+14155550100", &["Q"])).await;
    let k3 = s.session("k3").await;
    assert_eq!(k3["account_outcome"], "none");
    assert!(has_rule(&k3, "accounts.skip_lookup"));
}
