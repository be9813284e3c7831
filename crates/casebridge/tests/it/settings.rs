//! Settings changes through the public surface: merge patches, every error at once in plain
//! words, warnings for likely mistakes, the history and its restore, check-config's [server].

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Server, bin};

async fn patch(s: &Server, body: Value) -> (u16, Value) {
    let mut r = s.http.patch(format!("{}/v1/settings", s.base)).header("content-type", "application/merge-patch+json");
    if let Some(t) = &s.token {
        r = r.bearer_auth(t);
    }
    let resp = r.body(body.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn fields(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_merge_patch_keeps_the_other_settings_and_null_resets_to_the_default() {
    let s = Server::start().await;
    let (c, v) = patch(&s, json!({"records": {"append_to_open_in_leaf_queue": true}})).await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["changed"], json!(["records.append_to_open_in_leaf_queue"]), "{v}");
    let (c, v) = patch(&s, json!({"records": {"abandoned_calls": true}, "region": "FR"})).await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["changed"], json!(["records.abandoned_calls", "region"]), "{v}");
    let got = s.get("/v1/settings").await;
    assert_eq!(got["records"]["append_to_open_in_leaf_queue"], true, "the first switch is kept: {got}");
    assert_eq!(got["records"]["abandoned_calls"], true);
    assert_eq!(got["region"], "FR");
    assert_eq!(got["records"]["chat_short_abandon_seconds"], 20, "untouched defaults stay");

    let (c, v) = patch(&s, json!({"region": null, "records": {"abandoned_calls": null}})).await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["region"], "US", "null puts the default back: {v}");
    assert_eq!(v["records"]["abandoned_calls"], false);
    assert_eq!(v["records"]["append_to_open_in_leaf_queue"], true);

    // A patch with a mistake saves nothing.
    let before = s.get("/v1/settings").await;
    let (c, _) = patch(&s, json!({"region": "FR", "records": {"abandoned_calls": "yes"}})).await;
    assert_eq!(c, 422);
    assert_eq!(s.get("/v1/settings").await, before, "nothing saved");
    // Plain JSON is accepted too; other types are not.
    let (c, v) = s.call(reqwest::Method::PATCH, "/v1/settings", Some(&json!({"time_zone": "Europe/Paris"}))).await;
    assert_eq!(c, 200, "{v}");
    let r = s.http.patch(format!("{}/v1/settings", s.base)).header("content-type", "text/plain").body("{}").send();
    assert_eq!(r.await.unwrap().status().as_u16(), 415);
    // PUT still replaces the whole document, and says what changed.
    let v = s.put_settings(json!({"region": "GB"})).await;
    assert!(v["changed"].as_array().unwrap().contains(&json!("records.append_to_open_in_leaf_queue")), "{v}");
    assert_eq!(v["records"]["append_to_open_in_leaf_queue"], false);
}

#[tokio::test]
async fn seven_mistakes_are_seven_errors_in_plain_words() {
    let s = Server::start().await;
    let (c, v) = s
        .put(
            "/v1/settings",
            json!({
                "records": {
                    "append_to_open_in_leaf_queue": "yes",
                    "chat_short_abandon_seconds": "twenty",
                    "append_to_closed_within_days": -3,
                    "title_template": "{CALLER} on {WHEN}",
                    "colour": "blue",
                },
                "session_data": {"target": "spreadsheet"},
                "accounts": {"multiple_match": 2},
            }),
        )
        .await;
    assert_eq!(c, 422, "{v}");
    let mut got = fields(&v, "errors");
    got.sort();
    assert_eq!(
        got,
        vec![
            "accounts.multiple_match",
            "records.append_to_closed_within_days",
            "records.append_to_open_in_leaf_queue",
            "records.chat_short_abandon_seconds",
            "records.colour",
            "records.title_template",
            "session_data.target",
        ],
        "{v}"
    );
    let errors = v["errors"].as_array().unwrap();
    let msg = |f: &str| errors.iter().find(|e| e["field"] == f).unwrap()["message"].as_str().unwrap().to_string();
    assert!(msg("records.append_to_open_in_leaf_queue").starts_with("must be true or false"), "{v}");
    assert!(
        msg("records.chat_short_abandon_seconds").starts_with("must be a whole number of seconds between 0 and 86400"),
        "{v}"
    );
    assert!(msg("session_data.target").starts_with("must be one of: activity, session_object"), "{v}");
    let title = msg("records.title_template");
    assert!(title.contains("{CALLER}") && title.contains("{WHEN}"), "both unknown variables named: {title}");
    for e in errors {
        let m = e["message"].as_str().unwrap();
        assert!(!m.contains("expected") && !m.contains("invalid type"), "plain words: {m}");
    }
}

#[tokio::test]
async fn likely_mistakes_are_saved_with_warnings() {
    let s = Server::start().await;
    let v = s
        .put_settings(json!({
            "own_numbers": ["abc", "+14155550100"],
            "records": {"chat_short_abandon_seconds": 0, "append_to_open_in_leaf_queue": true,
                        "append_to_closed_within_days": 100000},
        }))
        .await;
    let w = fields(&v, "warnings");
    for f in ["own_numbers[0]", "records.chat_short_abandon_seconds", "records.append_to_closed_within_days"] {
        assert!(w.contains(&f.to_string()), "warning for {f}: {v}");
    }
    assert!(!w.contains(&"own_numbers[1]".to_string()), "{v}");
}

#[tokio::test]
async fn the_history_lists_each_change_and_a_version_can_be_restored() {
    let s = Server::start().await;
    let secret = "a-secret-of-twenty-chars";
    let (c, v) = patch(
        &s,
        json!({"records": {"append_to_open_in_leaf_queue": true},
               "click_to_call": {"webhook_url": "https://cc.example/dial", "signing_secret": secret}}),
    )
    .await;
    assert_eq!(c, 200, "{v}");
    let first = v["history_id"].as_i64().unwrap();
    let (c, v) = patch(&s, json!({"records": {"append_to_open_in_leaf_queue": false}, "region": "FR"})).await;
    assert_eq!(c, 200, "{v}");
    let h = s.get("/v1/settings/history?limit=10").await;
    let changes = h["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{h}");
    assert_eq!(changes[0]["changed"], json!(["records.append_to_open_in_leaf_queue", "region"]), "newest first: {h}");
    assert_eq!(changes[0]["source"], "loopback");
    assert_eq!(changes[1]["id"], first);
    assert_eq!(changes[1]["settings"]["records"]["append_to_open_in_leaf_queue"], true);
    assert!(!h.to_string().contains(secret), "secrets are redacted in the history");
    assert_eq!(s.get("/v1/settings/history?limit=1").await["changes"].as_array().unwrap().len(), 1);

    let (c, v) = s.post(&format!("/v1/settings/history/{first}/restore"), json!({})).await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["changed"], json!(["records.append_to_open_in_leaf_queue", "region"]), "{v}");
    let got = s.get("/v1/settings").await;
    assert_eq!(got["records"]["append_to_open_in_leaf_queue"], true);
    assert_eq!(got["region"], "US");
    assert_eq!(got["click_to_call"]["signing_secret"], "********", "the secret came back with the version");
    let h = s.get("/v1/settings/history").await;
    assert_eq!(h["changes"][0]["restored_from"], first, "{h}");
    let (c, _) = s.post("/v1/settings/history/999/restore", json!({})).await;
    assert_eq!(c, 404);
}

#[test]
fn check_config_refuses_a_bad_server_bind_and_serve_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nbind = \"nonsense\"\nmax_body_bytes = 0\n\n[records]\nabandoned_calls = \"no\"\n")
        .unwrap();
    let out = Command::new(bin()).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for f in ["server.bind", "server.max_body_bytes", "records.abandoned_calls"] {
        assert!(err.contains(f), "every error at once, {f} among them: {err}");
    }
    std::fs::write(&bad, "[server]\nbind = \"nonsense\"\n").unwrap();
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.bind") && !err.contains("--bind"), "{err}");
}
