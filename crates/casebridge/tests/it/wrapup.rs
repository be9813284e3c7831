//! behaviour.md §9, §11, §12: wrap-up, dispositions, relate-to-case, the activity log,
//! reports, standard custom fields and click-to-call.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::*;

const T: &str = "2026-11-20T10:00:00Z";

async fn dispositions(s: &Server) {
    for (c, l) in [("sale", "Sale"), ("support", "Support question"), ("old", "Retired code")] {
        let (st, v) = s.post("/v1/dispositions", json!({"code": c, "label": l})).await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, v) = s.call(reqwest::Method::PATCH, "/v1/dispositions/old", Some(&json!({"active": false}))).await;
    assert_eq!((st, &v["active"]), (200, &json!(false)), "{v}");
}

async fn wrap(s: &Server, session: &str, body: Value) -> (u16, Value) {
    s.post(&format!("/v1/sessions/{session}/wrapup"), body).await
}

fn errors_field(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e["field"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn dispositions_are_managed_and_inactive_or_unknown_codes_are_refused() {
    let s = Server::start().await;
    dispositions(&s).await;
    let (st, v) = s.post("/v1/dispositions", json!({"code": "sale", "label": "again"})).await;
    assert_eq!(st, 409, "a code exists once: {v}");
    let (st, v) = s.post("/v1/dispositions", json!({"code": "bad code!", "label": ""})).await;
    assert_eq!(st, 422);
    assert_eq!(errors_field(&v), vec!["code", "label"], "{v}");
    let all = s.get("/v1/dispositions").await;
    assert_eq!(all["dispositions"].as_array().unwrap().len(), 3, "inactive codes stay listed: {all}");
    let active = s.get("/v1/dispositions?active=true").await;
    assert_eq!(active["dispositions"].as_array().unwrap().len(), 2);

    s.send(call("c1", T, "+14155550101", &["Sales"])).await;
    let (st, v) = wrap(&s, "c1", json!({"disposition": "old", "action": "log"})).await;
    assert_eq!(st, 422, "inactive code: {v}");
    assert_eq!(errors_field(&v), vec!["disposition"]);
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("inactive"), "{v}");
    let (st, v) = wrap(&s, "c1", json!({"disposition": "nope", "action": "log"})).await;
    assert_eq!((st, errors_field(&v)), (422, vec!["disposition".to_string()]), "{v}");
    let (st, v) = wrap(&s, "c1", json!({"disposition": "sale", "action": "maybe"})).await;
    assert_eq!((st, errors_field(&v)), (422, vec!["action".to_string()]), "{v}");
    let (st, _) = wrap(&s, "nosuch", json!({"disposition": "sale", "action": "log"})).await;
    assert_eq!(st, 404);
    // Reactivated, the code can be chosen again.
    s.call(reqwest::Method::PATCH, "/v1/dispositions/old", Some(&json!({"active": true, "label": "Back"}))).await;
    let (st, v) = wrap(&s, "c1", json!({"disposition": "old", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["label"], "Back");
}

#[tokio::test]
async fn several_matches_ask_the_agent_and_only_a_candidate_is_accepted() {
    let s = Server::start().await;
    dispositions(&s).await;
    let a = s.create_account(json!({"kind": "contact", "name": "Ann", "phone": "+14155550102"})).await;
    let b = s.create_account(json!({"kind": "lead", "name": "Ann (lead)", "phone": "(415) 555-0102"})).await;
    let other = s.create_account(json!({"kind": "contact", "name": "Bob", "phone": "+14155550999"})).await;
    s.send(call("c2", T, "+14155550102", &["Sales"])).await;

    let (st, v) = wrap(&s, "c2", json!({"disposition": "sale", "notes": "bought", "action": "log"})).await;
    assert_eq!(st, 409, "{v}");
    let cands = v["candidates"].as_array().unwrap();
    let ids: Vec<&str> = cands.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a["id"].as_str().unwrap()) && ids.contains(&b["id"].as_str().unwrap()));
    assert!(cands.iter().any(|c| c["kind"] == "lead" && c["name"] == "Ann (lead)"), "{v}");
    assert!(s.get("/v1/activities?session_id=c2").await["activities"].as_array().unwrap().is_empty());

    let (st, v) = wrap(&s, "c2", json!({"disposition": "sale", "action": "log", "person_id": other["id"]})).await;
    assert_eq!((st, errors_field(&v)), (422, vec!["person_id".to_string()]), "outside the list: {v}");

    let (st, v) =
        wrap(&s, "c2", json!({"disposition": "sale", "notes": "bought", "action": "log", "person_id": b["id"]})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["person_id"], b["id"]);
    assert_eq!(v["crm_write"], "done");
    let lead = s.get(&format!("/v1/crm/accounts/{}", b["id"].as_str().unwrap())).await;
    let logs: Vec<&Value> =
        lead["activities"].as_array().unwrap().iter().filter(|x| x["body"]["type"] == "call_log").collect();
    assert_eq!(logs.len(), 1, "{lead}");
    assert_eq!(logs[0]["body"]["disposition"], "sale");
    assert_eq!(logs[0]["body"]["notes"], "bought");
    let ann = s.get(&format!("/v1/crm/accounts/{}", a["id"].as_str().unwrap())).await;
    assert!(!ann["activities"].as_array().unwrap().iter().any(|x| x["body"]["type"] == "call_log"));
}

#[tokio::test]
async fn unmatched_callers_become_a_lead_a_contact_or_nobody() {
    let s = Server::start().await;
    dispositions(&s).await;
    // The rules create no account; wrap-up follows unmatched_caller alone.
    s.put_settings(settings(json!({"accounts": {"skip_creation": true},
        "call_logging": {"unmatched_caller": "lead"}})))
        .await;
    s.send(call("u1", T, "+14155550201", &["Sales"])).await;
    assert_eq!(s.session("u1").await["account_outcome"], "none");
    let (st, v) = wrap(&s, "u1", json!({"disposition": "sale", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["person_created"], true);
    let pid = v["person_id"].as_str().expect("created person id").to_string();
    let p = s.get(&format!("/v1/crm/accounts/{pid}")).await;
    assert_eq!(p["kind"], "lead");
    assert_eq!(p["phone"], "+14155550201");
    assert!(p["activities"].as_array().unwrap().iter().any(|x| x["body"]["type"] == "call_log"), "{p}");

    s.put_settings(settings(json!({"accounts": {"skip_creation": true}}))).await;
    s.send(call("u2", T, "+14155550202", &["Sales"])).await;
    let (_, v) = wrap(&s, "u2", json!({"disposition": "sale", "action": "log"})).await;
    let p = s.get(&format!("/v1/crm/accounts/{}", v["person_id"].as_str().unwrap())).await;
    assert_eq!(p["kind"], "contact", "contact is the default");

    s.put_settings(settings(json!({"accounts": {"skip_creation": true},
        "call_logging": {"unmatched_caller": "none"}})))
        .await;
    s.send(call("u3", T, "+14155550203", &["Sales"])).await;
    let (st, v) = wrap(&s, "u3", json!({"disposition": "sale", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["person_id"], Value::Null);
    assert!(v["person_reason"].as_str().unwrap().contains("unmatched_caller"), "{v}");
    let found = s.get("/v1/crm/accounts?phone=%2B14155550203").await;
    assert!(found["accounts"].as_array().unwrap().is_empty(), "nothing created: {found}");
}

#[tokio::test]
async fn a_second_wrapup_replaces_the_first_and_do_not_log_leaves_only_the_platform_activity() {
    let s = Server::start().await;
    dispositions(&s).await;
    s.send(call("r1", T, "+14155550301", &["Support"])).await;
    let acct = s.session("r1").await["account_id"].as_str().unwrap().to_string();
    let (st, first) = wrap(&s, "r1", json!({"disposition": "sale", "notes": "first", "action": "log"})).await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["person_id"], acct.as_str(), "one match: logged there");
    let (_, second) = wrap(&s, "r1", json!({"disposition": "support", "notes": "second", "action": "log"})).await;
    assert_eq!(second["activity_id"], first["activity_id"], "the same activity, replaced");
    let a = s.get(&format!("/v1/crm/accounts/{acct}")).await;
    let logs: Vec<&Value> =
        a["activities"].as_array().unwrap().iter().filter(|x| x["body"]["type"] == "call_log").collect();
    assert_eq!(logs.len(), 1, "no duplicate: {a}");
    assert_eq!(logs[0]["body"]["disposition"], "support");
    assert_eq!(logs[0]["body"]["notes"], "second");
    let acts = s.get("/v1/activities?session_id=r1").await;
    assert_eq!(acts["activities"].as_array().unwrap().len(), 1);
    assert_eq!(acts["activities"][0]["revision"], 2);
    // The session's own data (on its record) carries the latest wrap-up as well.
    let rid = s.session("r1").await["record_id"].as_str().unwrap().to_string();
    s.poll(&format!("/v1/crm/records/{rid}"), |r| {
        r["activities"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["session_id"] == "r1" && x["body"]["disposition"] == "support" && x["body"]["notes"] == "second"
            })
        })
    })
    .await;

    let (st, v) = wrap(&s, "r1", json!({"disposition": "sale", "notes": "ignored", "action": "do_not_log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["person_id"], Value::Null);
    let a = s.get(&format!("/v1/crm/accounts/{acct}")).await;
    assert!(!a["activities"].as_array().unwrap().iter().any(|x| x["body"]["type"] == "call_log"), "withdrawn: {a}");
    let acts = s.get("/v1/activities?session_id=r1").await;
    let only = &acts["activities"][0];
    assert_eq!(acts["activities"].as_array().unwrap().len(), 1);
    assert_eq!(
        (only["action"].as_str(), only["disposition"].as_str(), only["notes"].as_str()),
        (Some("do_not_log"), Some(""), Some(""))
    );
    // The decision is on the session's timeline, the activity with the session.
    let sess = s.session("r1").await;
    assert!(has_rule(&sess, "call_logging.wrapup.replaced"));
    assert_eq!(sess["activities"][0]["action"], "do_not_log", "{sess}");
}

#[tokio::test]
async fn relate_to_case_follows_the_viewed_record_only_with_one_widget_instance() {
    let s = Server::start().await;
    dispositions(&s).await;
    let (st, _) = s.put("/v1/agents/ag-1", json!({"email": "ag1@example.com", "name": "Agent One"})).await;
    assert_eq!(st, 201);
    s.send(call("w1", T, "+14155550401", &["Support"])).await;
    let acct = s.session("w1").await["account_id"].as_str().unwrap().to_string();
    let viewed = s.create_record(json!({"account_id": acct, "title": "Broken router", "status": "open"})).await;
    let rid = viewed["id"].as_str().unwrap();
    let (st, _) = s.put("/v1/agents/ag-1/context", json!({"instance_id": "tab-1", "viewing_record_id": rid})).await;
    assert_eq!(st, 200);
    let (st, v) = wrap(&s, "w1", json!({"disposition": "support", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["record_id"].as_str(), v["related_by"].as_str()), (Some(rid), Some("viewing_record")), "{v}");
    assert_eq!(v["relate_to_case"]["applied"], true);
    let rec = s.get(&format!("/v1/crm/records/{rid}")).await;
    assert!(rec["activities"].as_array().unwrap().iter().any(|x| x["body"]["type"] == "call_log"), "{rec}");

    // A second widget instance: not applied, and the response says why.
    s.put("/v1/agents/ag-1/context", json!({"instance_id": "tab-2", "viewing_record_id": rid})).await;
    let (st, v) = wrap(&s, "w1", json!({"disposition": "support", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["record_id"], Value::Null);
    assert_eq!(v["relate_to_case"]["applied"], false);
    assert!(v["relate_to_case"]["reason"].as_str().unwrap().contains("2 active widget instances"), "{v}");
    let rec = s.get(&format!("/v1/crm/records/{rid}")).await;
    assert!(!rec["activities"].as_array().unwrap().iter().any(|x| x["body"]["type"] == "call_log"), "moved off: {rec}");

    // One closes: relate-to-case applies again; a record that does not exist is never related.
    let (st, _) = s.call(reqwest::Method::DELETE, "/v1/agents/ag-1/context/tab-2", None).await;
    assert_eq!(st, 200);
    s.put("/v1/agents/ag-1/context", json!({"instance_id": "tab-1", "viewing_record_id": "rec_does_not_exist"})).await;
    let (_, v) = wrap(&s, "w1", json!({"disposition": "support", "action": "log"})).await;
    assert_eq!(v["relate_to_case"]["applied"], false);
    assert!(v["relate_to_case"]["reason"].as_str().unwrap().contains("does not exist"), "{v}");

    // Dispositions disabled: no relate-to-case, and no code needed.
    s.put("/v1/agents/ag-1/context", json!({"instance_id": "tab-1", "viewing_record_id": rid})).await;
    s.put_settings(settings(json!({"call_logging": {"dispositions_enabled": false}}))).await;
    let (st, v) = wrap(&s, "w1", json!({"action": "log", "notes": "n"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["relate_to_case"]["applied"], false);
    assert!(v["relate_to_case"]["reason"].as_str().unwrap().contains("dispositions_enabled"), "{v}");
}

#[tokio::test]
async fn missed_abandoned_and_voicemail_sessions_are_on_the_person_and_in_the_report() {
    let s = Server::start().await;
    dispositions(&s).await;
    let p = s.create_account(json!({"kind": "contact", "name": "Cy", "phone": "+14155550501"})).await;
    let pid = p["id"].as_str().unwrap();
    let cust = json!({"phone": "+14155550501"});
    let mut ab = Ses::new("ab1", T);
    s.send(vec![
        ab.created("voice_inbound_ivr", cust.clone(), &["Support"]),
        ab.ev(5, "session.queued", json!({"queue_path": ["Support"]})),
        ab.abandoned(30),
    ])
    .await;
    let mut ivr = Ses::new("ab2", "2026-11-20T11:00:00Z");
    s.send(vec![ivr.created("voice_inbound_ivr", cust.clone(), &[]), ivr.abandoned(10)]).await;
    let mut na = Ses::new("na1", "2026-11-20T12:00:00Z");
    s.send(vec![na.created("voice_inbound_ivr", cust.clone(), &["Support"]), na.ended()]).await;
    let mut vm = Ses::new("vm1", "2026-11-20T13:00:00Z");
    s.send(vec![vm.created("voicemail", cust.clone(), &["Support"])]).await;
    s.send(call("ok1", "2026-11-20T14:00:00Z", "+14155550501", &["Support"])).await;
    wrap(&s, "ok1", json!({"disposition": "sale", "action": "log"})).await;

    let acts = s.get(&format!("/v1/activities?person_id={pid}")).await;
    let list = acts["activities"].as_array().unwrap();
    let kinds: Vec<(&str, Option<&str>)> =
        list.iter().map(|a| (a["kind"].as_str().unwrap(), a["missed_reason"].as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            ("call_log", None),
            ("voicemail", None),
            ("missed", Some("no_agent_available")),
            ("abandoned", Some("abandoned_in_ivr")),
            ("abandoned", Some("abandoned_in_queue")),
        ],
        "every interaction, newest first: {acts}"
    );
    let r = s.get("/v1/reports/abandoned?from=2026-11-20&to=2026-11-20").await;
    assert_eq!(r["totals"], json!({"abandoned_in_ivr": 1, "abandoned_in_queue": 1, "no_agent_available": 1}), "{r}");
    let (st, v) = s.call(reqwest::Method::GET, "/v1/reports/abandoned?from=yesterday", None).await;
    assert_eq!((st, errors_field(&v)), (422, vec!["from".to_string()]));
}

#[tokio::test]
async fn disposition_report_counts_by_day_agent_and_queue_with_the_trend() {
    let s = Server::start().await;
    dispositions(&s).await;
    let rows = [
        ("d1", "2026-11-18T10:00:00Z", "ag-1", "Sales", "sale"),
        ("d2", "2026-11-19T10:00:00Z", "ag-1", "Sales", "sale"),
        ("d3", "2026-11-19T11:00:00Z", "ag-2", "Support", "support"),
        ("d4", "2026-11-19T23:30:00Z", "ag-2", "Support", "sale"),
        ("d0", "2026-11-16T10:00:00Z", "ag-2", "Support", "support"),
    ];
    for (i, (id, at, agent, q, disp)) in rows.iter().enumerate() {
        let mut c = Ses::new(id, at);
        s.send(vec![
            c.created("voice_inbound_ivr", json!({"phone": format!("+1415555060{i}")}), &[q]),
            c.assigned(agent),
            c.connected(),
            c.ended(),
        ])
        .await;
        let (st, v) = wrap(&s, id, json!({"disposition": disp, "action": "log"})).await;
        assert_eq!(st, 200, "{v}");
    }
    wrap(&s, "d4", json!({"disposition": "support", "action": "do_not_log"})).await;

    let by_day = s.get("/v1/reports/dispositions?from=2026-11-18&to=2026-11-19&group_by=day").await;
    assert_eq!(
        by_day["rows"],
        json!([{"group": "2026-11-18", "disposition": "sale", "count": 1},
               {"group": "2026-11-19", "disposition": "sale", "count": 1},
               {"group": "2026-11-19", "disposition": "support", "count": 1}]),
        "do-not-log wrap-ups carry no disposition: {by_day}"
    );
    let trend = &by_day["trend"]["dispositions"];
    assert!(
        trend
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["disposition"] == "support" && t["previous_count"] == 1 && t["change"] == 0),
        "{by_day}"
    );
    let by_agent = s.get("/v1/reports/dispositions?from=2026-11-18&to=2026-11-19&group_by=agent").await;
    assert_eq!(
        by_agent["rows"],
        json!([{"group": "ag-1", "disposition": "sale", "count": 2},
                                        {"group": "ag-2", "disposition": "support", "count": 1}])
    );
    let by_queue = s.get("/v1/reports/dispositions?from=2026-11-18&to=2026-11-19&group_by=queue").await;
    assert_eq!(by_queue["totals"], json!({"sale": 2, "support": 1}));
    // Days follow the settings' time zone: 23:30 UTC on the 19th is the 20th in Tokyo.
    s.put_settings(settings(json!({"time_zone": "Asia/Tokyo"}))).await;
    wrap(&s, "d4", json!({"disposition": "sale", "action": "log"})).await;
    let tokyo = s.get("/v1/reports/dispositions?from=2026-11-19T23:00:00Z&to=2026-11-20T00:00:00Z&group_by=day").await;
    assert_eq!(tokyo["rows"], json!([{"group": "2026-11-20", "disposition": "sale", "count": 1}]), "{tokyo}");
    let (st, _) = s.call(reqwest::Method::GET, "/v1/reports/dispositions?group_by=week", None).await;
    assert_eq!(st, 422);
}

#[tokio::test]
async fn standard_fields_are_created_once_and_written_only_for_later_sessions() {
    let s = Server::start().await;
    let cat = s.get("/v1/crm/custom-fields").await;
    assert_eq!(cat["fields"].as_array().unwrap().len(), 12);
    assert!(cat["fields"].as_array().unwrap().iter().all(|f| f["enabled"] == false));
    s.put_settings(settings(json!({"custom_data_mapping": {"order": "order_number"}}))).await;

    let before = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut b = Ses::new("before", &before.to_rfc3339());
    s.send(vec![
        b.created("voice_inbound_ivr", json!({"phone": "+14155550701"}), &["Billing", "Refunds"]),
        b.assigned("ag-1"),
    ])
    .await;

    let keys = json!({"fields": ["custom_user_id", "queue_name", "session_id", "call_duration", "csat_score", "menu_selection"]});
    let (st, v) = s.post("/v1/crm/custom-fields", keys.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["fields"].as_array().unwrap().iter().all(|f| f["outcome"] == "created"), "{v}");
    let (_, again) = s.post("/v1/crm/custom-fields", keys).await;
    assert!(again["fields"].as_array().unwrap().iter().all(|f| f["outcome"] == "reused"), "idempotent: {again}");
    let (st, bad) = s.post("/v1/crm/custom-fields", json!({"fields": ["shoe_size"]})).await;
    assert_eq!((st, errors_field(&bad)), (422, vec!["fields[0]".to_string()]));

    // The earlier session goes on after creation: still no values.
    s.send(vec![b.connected(), b.ev(3, "csat.submitted", json!({"score": 5})), b.ended()]).await;
    let rec = s.record_of("before").await;
    assert!(rec["custom_fields"].as_object().unwrap().is_empty(), "{rec}");

    let after = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mut a = Ses::new("after", &after.to_rfc3339());
    s.send(vec![
        a.created("voice_inbound_app", json!({"phone": "+14155550702", "user_id": "u-77"}), &["Billing", "Refunds"]),
        a.assigned("ag-1"),
        a.connected(),
        a.ev(1, "custom_data.updated", json!({"data": {"order": "A-1"}})),
        a.ev(3, "csat.submitted", json!({"score": 4})),
        a.ev(30, "session.ended", json!({"duration_s": 33.0})),
    ])
    .await;
    let rec = s.record_of("after").await;
    let f = &rec["custom_fields"];
    assert_eq!(f["queue_name"], "Refunds", "{rec}");
    assert_eq!(f["customer_menu_selection"], "Billing > Refunds", "menu_selection is another name for it");
    assert_eq!(f["session_id"], "after");
    assert_eq!(f["call_duration"], 33.0);
    assert_eq!(f["csat_score"], 4.0);
    assert_eq!(f["order_number"], "A-1", "SDK custom data in its mapped field");
    assert!(f.get("hold_time").is_none(), "only enabled fields");
    let acct = s.get(&format!("/v1/crm/accounts/{}", s.session("after").await["account_id"].as_str().unwrap())).await;
    assert_eq!(acct["custom_fields"]["custom_user_id"], "u-77", "{acct}");
    let cat = s.get("/v1/crm/custom-fields").await;
    assert_eq!(cat["fields"].as_array().unwrap().iter().filter(|f| f["enabled"] == true).count(), 6);
    // The one action: no list enables the whole catalog, reusing what exists.
    let (st, all) = s.post("/v1/crm/custom-fields", json!({})).await;
    assert_eq!(st, 200, "{all}");
    let outcomes: Vec<&str> =
        all["fields"].as_array().unwrap().iter().map(|f| f["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.len(), 12);
    assert_eq!(outcomes.iter().filter(|o| **o == "reused").count(), 6, "{all}");
}

type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A contact-center stand-in: records dial webhooks, fails the first `fail_first` with 503.
async fn receiver(fail_first: usize) -> (String, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/dial",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = s2.clone();
            async move {
                let mut g = seen.lock().unwrap();
                g.push((headers, body));
                if g.len() <= fail_first {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::ACCEPTED
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/dial"), seen)
}

fn valid_signature(secret: &str, h: &HeaderMap, body: &str) -> bool {
    let ts = h.get("x-casebridge-timestamp").and_then(|v| v.to_str().ok()).unwrap_or("");
    let sig = h.get("x-casebridge-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let hexsig = sig.strip_prefix("sha256=").unwrap_or("");
    hex::decode(hexsig).is_ok_and(|raw| mac.verify_slice(&raw).is_ok())
}

#[tokio::test]
async fn click_to_call_is_signed_retried_and_its_outbound_session_relates_to_the_origin_record() {
    let s = Server::start().await;
    dispositions(&s).await;
    let (url, seen) = receiver(1).await;
    let secret = "a-long-shared-secret-0123456789";
    s.put("/v1/agents/ag-9", json!({"email": "nine@example.com"})).await;
    let (st, v) = s.post("/v1/agents/ag-9/dial", json!({"phone": "+14155550801"})).await;
    assert_eq!((st, v["handoff"].as_str()), (201, Some("not_configured")), "recorded, not sent: {v}");
    s.put_settings(settings(json!({"click_to_call": {"webhook_url": url, "signing_secret": secret}}))).await;
    let shown = s.get("/v1/settings").await;
    assert_eq!(shown["click_to_call"]["signing_secret"], "********", "secrets are not shown");
    // Saving the document as shown keeps the secret.
    s.put_settings(shown).await;

    let acct = s.create_account(json!({"kind": "contact", "phone": "+14155550801"})).await;
    let origin = s.create_record(json!({"account_id": acct["id"], "title": "Call back about invoice"})).await;
    let oid = origin["id"].as_str().unwrap();
    let (st, v) =
        s.post("/v1/agents/ag-9/dial", json!({"phone": "(415) 555-0801", "origin_record_id": "rec_nope"})).await;
    assert_eq!((st, errors_field(&v)), (422, vec!["origin_record_id".to_string()]), "{v}");
    let (st, v) = s.post("/v1/agents/ag-9/dial", json!({"phone": "not a number"})).await;
    assert_eq!((st, errors_field(&v)), (422, vec!["phone".to_string()]), "{v}");
    let (st, v) = s.post("/v1/agents/ag-9/dial", json!({"phone": "(415) 555-0801", "origin_record_id": oid})).await;
    assert_eq!(st, 201, "{v}");
    let dial_id = v["dial_request_id"].as_str().unwrap().to_string();

    // The first delivery gets a 503; the retry lands.
    let d = s.poll(&format!("/v1/dial-requests/{dial_id}"), |d| d["delivered"] == true).await;
    assert_eq!(d["origin_record_id"], oid);
    assert_eq!(d["handoff"]["attempts"], 2, "{d}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one failure, one success");
    for (h, body) in &got {
        assert!(valid_signature(secret, h, body), "signature must verify: {h:?}");
        assert!(!valid_signature("wrong-secret-wrong-secret", h, body));
        assert_eq!(h.get("x-casebridge-delivery").unwrap(), &format!("dial:{dial_id}"));
    }
    let body: Value = serde_json::from_str(&got[1].1).unwrap();
    assert_eq!(body["dial_request_id"], dial_id.as_str());
    assert_eq!(body["phone"], "+14155550801");
    assert_eq!(body["agent"]["email"], "nine@example.com");
    assert_eq!(body["origin_record_id"], oid);

    // The contact center places the call and reports it with the dial request id.
    let mut o = Ses::new("out1", T);
    s.send(vec![
        o.ev(
            0,
            "session.created",
            json!({"channel": "voice", "session_type": "voice_outbound", "direction": "outbound",
             "customer": {"phone": "+14155550801"}, "queue_path": [], "dial_request_id": dial_id}),
        ),
        o.assigned("ag-9"),
        o.connected(),
        o.ended(),
    ])
    .await;
    let sess = s.session("out1").await;
    assert_eq!((sess["record_outcome"].as_str(), sess["record_id"].as_str()), (Some("appended"), Some(oid)), "{sess}");
    assert!(has_rule(&sess, "conversation.outbound.dial_request"));
    let (st, v) = wrap(&s, "out1", json!({"disposition": "sale", "action": "log"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["record_id"].as_str(), v["related_by"].as_str()), (Some(oid), Some("origin_record")), "{v}");
}

#[tokio::test]
async fn a_widget_of_an_agent_not_registered_yet_still_relates_its_calls() {
    let s = Server::start().await;
    dispositions(&s).await;
    s.send(call("n1", T, "+14155550951", &["Support"])).await;
    let acct = s.session("n1").await["account_id"].as_str().unwrap().to_string();
    let rec = s.create_record(json!({"account_id": acct, "title": "Open case"})).await;
    let (st, v) = s.put("/v1/agents/ag-1/context", json!({"instance_id": "w", "viewing_record_id": rec["id"]})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["email"], Value::Null, "known by id only: {v}");
    let (_, v) = wrap(&s, "n1", json!({"disposition": "sale", "action": "log"})).await;
    assert_eq!((v["record_id"].clone(), v["related_by"].as_str()), (rec["id"].clone(), Some("viewing_record")), "{v}");
    // Registering it later keeps what the widget reported.
    let (st, v) = s.put("/v1/agents/ag-1", json!({"email": "one@example.com"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["instances"].as_array().unwrap().len(), 1);
}
