//! Every page of the console, with some data: it renders without a browser error, names
//! every area in its navigation, and fits a narrow screen. With CASEBRIDGE_SCREENSHOTS=1 the
//! pictures in docs/screenshots/ are made again.

use serde_json::json;

use super::Browser;
use crate::harness::{Server, Ses, call};

const AREAS: &[&str] = &[
    "Overview",
    "Rules",
    "CRM connection",
    "Native sources",
    "Dispositions",
    "Agent status mapping",
    "Custom fields",
    "Sessions",
    "Built-in CRM",
    "Dead letters",
    "Reports",
    "What if",
    "Agent widget",
];

#[tokio::test]
async fn every_page_renders_without_errors_wide_and_narrow() {
    let s = Server::start().await;
    s.post("/v1/dispositions", json!({"code": "resolved", "label": "Resolved"})).await;
    s.send(call("pg-1", "2026-11-20T10:00:00Z", "+14155550100", &["Support", "Billing"])).await;
    let mut c = Ses::new("pg-2", "2026-11-20T11:00:00Z");
    s.send(vec![c.created("voice_inbound_ivr", json!({"phone": "+14155550111"}), &["Sales"]), c.abandoned(20)]).await;
    let rec = s.session("pg-1").await["record_id"].as_str().unwrap().to_string();
    let acct = s.session("pg-1").await["account_id"].as_str().unwrap().to_string();
    let Some(b) = Browser::start("every_page_renders_without_errors_wide_and_narrow", &s.base).await else { return };
    let pages = [
        ("/".to_string(), "overview"),
        ("/crm".into(), "crm"),
        ("/sources".into(), "sources"),
        ("/dispositions".into(), "dispositions"),
        ("/agent-statuses".into(), "agent-statuses"),
        ("/custom-fields".into(), "custom-fields"),
        ("/crm-data".into(), "crm-data"),
        (format!("/crm-data/accounts/{acct}"), "crm-account"),
        (format!("/crm-data/records/{rec}"), "crm-record"),
        ("/what-if".into(), "what-if"),
    ];
    for (path, name) in pages {
        b.goto(&path).await;
        let nav = b.text("nav[aria-label=Console]").await;
        for area in AREAS {
            assert!(nav.contains(area), "{path}: the navigation names {area}: {nav}");
        }
        b.screenshot(name).await;
        b.assert_no_errors().await;
    }
    b.goto("/").await;
    b.wait_text("#sessions-today", "").await;
    b.goto("/crm").await;
    b.click("#test-crm").await;
    b.find("#crm-test p").await;
    // Native sources: enable the generic CTI source with its token; the token is write-only.
    b.goto("/sources").await;
    b.click("#cti-enabled").await;
    b.fill("#cti-secret", "a-cti-token-long-enough").await;
    b.click("#save-sources").await;
    b.wait_text("main", "Saved").await;
    b.assert_no_errors().await;
    let saved = s.get("/v1/settings").await;
    assert_eq!(saved["ingest"]["cti"]["enabled"], true, "{saved}");
    assert_eq!(saved["ingest"]["cti"]["token"], "set", "{saved}");
    // What if: the stored events under settings that delay records until connected.
    b.goto("/what-if").await;
    let doc = s.get("/v1/settings").await;
    let mut edited = doc.clone();
    edited["records"]["skip_creation"] = json!(true);
    b.fill("#settings", &edited.to_string()).await;
    b.click("#run-what-if").await;
    b.wait_text("#what-if-summary", "1 of 2 session(s) would change").await;
    b.wait_text("#what-if-diffs", "pg-1").await;
    b.screenshot("what-if-result").await;
    // A narrow screen: nothing wider than the window.
    b.c.set_window_size(390, 844).await.unwrap();
    for path in ["/rules", "/sessions", "/agent?agent=ag-1"] {
        b.goto(path).await;
        b.find("main").await;
        b.wait_js(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            &format!("{path} fits a narrow screen"),
        )
        .await;
    }
    b.screenshot("rules-narrow").await;
    b.assert_no_errors().await;
    b.close().await;
}
