//! The connector registry through the public surface: the settings' `crm` member is read by
//! the kind it names, in the API, `check-config` and `serve` alike.

use std::process::Command;

use serde_json::json;

use crate::harness::{Server, bin};

#[tokio::test]
async fn an_unknown_crm_kind_is_refused_with_the_other_errors() {
    let s = Server::start().await;
    let before = s.get("/v1/settings").await;
    let (c, v) = s
        .call(
            reqwest::Method::PUT,
            "/v1/settings",
            Some(&json!({"region": "XX", "crm": {"kind": "nosuchcrm", "base_url": "https://x.example"}})),
        )
        .await;
    assert_eq!(c, 422, "{v}");
    let errors = v["errors"].as_array().unwrap();
    let crm = errors.iter().find(|e| e["field"] == "crm.kind").expect("crm.kind refused");
    assert!(crm["message"].as_str().unwrap().contains("builtin"), "names the kinds this build supports: {crm}");
    assert!(errors.iter().any(|e| e["field"] == "region"), "every error at once: {v}");
    assert_eq!(s.get("/v1/settings").await, before, "nothing saved");
}

#[tokio::test]
async fn options_the_builtin_crm_does_not_take_are_kept_with_a_warning() {
    let s = Server::start().await;
    let (c, v) = s.put("/v1/settings", json!({"crm": {"kind": "builtin", "base_url": "https://x.example"}})).await;
    assert_eq!(c, 200, "{v}");
    let w = v["warnings"].as_array().unwrap();
    assert!(w.iter().any(|w| w["field"] == "crm.base_url"), "{v}");
    assert_eq!(s.get("/v1/settings").await["crm"]["base_url"], "https://x.example");
}

#[test]
fn check_config_and_serve_read_the_crm_through_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[crm]\nkind = \"nosuchcrm\"\n").unwrap();
    let out = Command::new(bin()).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("crm.kind"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(bin())
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve refuses a CRM it cannot build");
    assert!(String::from_utf8_lossy(&out.stderr).contains("crm.kind"), "{}", String::from_utf8_lossy(&out.stderr));
}
