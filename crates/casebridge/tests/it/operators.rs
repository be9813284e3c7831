//! An operator's view: browsing sessions and accounts, metrics, auth answers, logs, the
//! simulate table.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Server, Ses, bin, call};

fn ids(v: &Value) -> Vec<String> {
    v["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_session_list_finds_waiting_sessions_and_filters_by_phone_outcome_and_time() {
    let s = Server::start().await;
    s.send(call("c1", "2026-11-20T10:00:00Z", "+1 212 736 5000", &["Q"])).await;
    s.send(call("c2", "2026-11-20T11:00:00Z", "+1 415 555 0100", &["Q"])).await;
    let mut w = Ses::new("w1", "2026-11-20T12:00:00Z");
    s.send(vec![w.assigned("ag-1")]).await;

    let waiting = s.get("/v1/sessions?state=waiting").await;
    assert_eq!(ids(&waiting), ["w1"], "a session without its session.created is listed: {waiting}");
    assert_eq!(waiting["sessions"][0]["state"], "waiting");
    assert_eq!(ids(&s.get("/v1/sessions").await), ["w1", "c2", "c1"], "no filter: everything, newest first");

    let by_phone = s.get("/v1/sessions?phone=%28212%29%20736-5000").await;
    assert_eq!(ids(&by_phone), ["c1"], "the phone is read with the settings' region");
    assert_eq!(ids(&s.get("/v1/sessions?record_outcome=created").await), ["c2", "c1"]);
    assert!(ids(&s.get("/v1/sessions?record_outcome=reopened").await).is_empty());
    let window = s.get("/v1/sessions?from=2026-11-20T10:30:00Z&to=2026-11-20T12:30:00Z").await;
    assert_eq!(ids(&window), ["w1", "c2"]);

    let p1 = s.get("/v1/sessions?limit=2").await;
    assert_eq!(ids(&p1), ["w1", "c2"]);
    let cursor = p1["next_cursor"].as_str().expect("a next page");
    let p2 = s.get(&format!("/v1/sessions?limit=2&cursor={}", urlencode(cursor))).await;
    assert_eq!((ids(&p2), &p2["next_cursor"]), (vec!["c1".to_string()], &Value::Null));

    let account = s.session("c1").await["account_id"].as_str().unwrap().to_string();
    assert_eq!(ids(&s.get(&format!("/v1/sessions?account_id={account}")).await), ["c1"]);

    let (status, bad) = s.call(reqwest::Method::GET, "/v1/sessions?state=stuck&from=yesterday", None).await;
    assert_eq!(status, 422, "{bad}");
    let fields: Vec<&str> = bad["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["state", "from"]);
}

#[tokio::test]
async fn accounts_are_listed_without_a_filter_newest_first() {
    let s = Server::start().await;
    let a = s
        .create_account(
            json!({"kind": "contact", "name": "Ann", "phone": "+14155550100", "at": "2026-11-20T10:00:00Z"}),
        )
        .await;
    let b = s
        .create_account(
            json!({"kind": "contact", "name": "Bob", "phone": "+14155550101", "at": "2026-11-20T11:00:00Z"}),
        )
        .await;
    let all = s.get("/v1/crm/accounts").await;
    let names: Vec<&str> = all["accounts"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(names, [b["id"].as_str().unwrap(), a["id"].as_str().unwrap()]);
    assert_eq!(s.get("/v1/crm/accounts?limit=1").await["accounts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn metrics_show_waiting_sessions_and_take_the_metrics_token() {
    let s = Server::start_with(&[("CASEBRIDGE_API_TOKEN", "api-secret"), ("CASEBRIDGE_METRICS_TOKEN", "scrape")], &[])
        .await;
    let mut w = Ses::new("w1", "2026-11-20T12:00:00Z");
    s.send(vec![w.assigned("ag-1")]).await;
    let text = s.get("/metrics").await;
    let text = text.as_str().unwrap();
    assert!(text.contains("casebridge_sessions_waiting 1"), "{text}");
    assert!(text.contains("casebridge_sessions_stuck 0"), "{text}");
    // SQLite's one writer: how long it has been held (the event above was stored through it).
    let busy: Option<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("casebridge_sqlite_writer_busy_seconds "))
        .and_then(|v| v.trim().parse().ok());
    if crate::harness::on_postgres() {
        assert_eq!(busy, None, "PostgreSQL has no one writer: {text}");
    } else {
        assert!(busy.is_some_and(|b| b > 0.0), "the writer was held to store the event: {text}");
        assert!(text.contains("casebridge_sqlite_writer_waiting "), "{text}");
    }

    let plain = reqwest::Client::new();
    let r = plain.get(format!("{}/metrics", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"casebridge\"");
    let r = plain.get(format!("{}/metrics", s.base)).bearer_auth("scrape").send().await.unwrap();
    assert_eq!(r.status(), 200, "the metrics token reads /metrics");
    let r = plain.get(format!("{}/v1/sessions", s.base)).bearer_auth("scrape").send().await.unwrap();
    assert_eq!(r.status(), 401, "and nothing else");
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"casebridge\"");
}

#[tokio::test]
async fn metrics_bind_serves_only_metrics_without_the_token() {
    let s =
        Server::start_capturing(&[("CASEBRIDGE_API_TOKEN", "api-secret")], &["--metrics-bind", "127.0.0.1:0"]).await;
    let line = wait_for(&s, "metrics without a token on http://").await;
    let url = line.split("on ").nth(1).unwrap().trim().to_string();
    let plain = reqwest::Client::new();
    let r = plain.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("casebridge_sessions_waiting"));
    let other = url.replace("/metrics", "/v1/sessions");
    assert_eq!(plain.get(&other).send().await.unwrap().status(), 404, "the listener serves only /metrics");
}

#[tokio::test]
async fn logs_carry_the_start_up_lines_and_refused_requests_without_colour() {
    let s = Server::start_capturing(&[("RUST_LOG", "info"), ("CASEBRIDGE_API_TOKEN", "api-secret")], &[]).await;
    wait_for(&s, "Ready.").await;
    let (status, _) = s.call(reqwest::Method::GET, "/v1/sessions/nope", None).await;
    assert_eq!(status, 404);
    let refused = wait_for(&s, "Request refused.").await;
    assert!(refused.contains("WARN") && refused.contains("/v1/sessions/nope") && refused.contains("404"), "{refused}");
    assert!(refused.contains("no session"), "the problem's detail: {refused}");
    let (status, _) = s.put("/v1/settings", json!({"records": {"append_to_open_in_leaf_queue": true}})).await;
    assert_eq!(status, 200);
    let changed = wait_for(&s, "Settings changed").await;
    assert!(changed.contains("records.append_to_open_in_leaf_queue") && changed.contains("token"), "{changed}");
    let logs = s.output();
    match &s.db {
        Some(db) => assert!(logs.contains("Storage: PostgreSQL") && logs.contains(&db.url), "{logs}"),
        None => assert!(logs.contains("Storage: SQLite") && logs.contains(s.data_dir().to_str().unwrap()), "{logs}"),
    }
    assert!(logs.contains("CRM connector: builtin"), "{logs}");
    assert!(logs.contains("Listening.") && logs.contains(s.base.trim_start_matches("http://")), "{logs}");
    assert!(!logs.contains("api-secret"), "no secret in the logs");
    assert!(!logs.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {logs:?}");
}

#[test]
fn serve_help_documents_the_tokens() {
    let out = Command::new(bin()).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["CASEBRIDGE_API_TOKEN", "CASEBRIDGE_METRICS_TOKEN", "--metrics-bind", "CASEBRIDGE_METRICS_BIND"] {
        assert!(help.contains(word), "{word} missing from serve --help:\n{help}");
    }
}

#[test]
fn the_simulate_table_names_its_columns_and_explains_its_values() {
    let ex = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let out = Command::new(bin())
        .args(["simulate", "--settings"])
        .arg(ex.join("settings-default.toml"))
        .arg("--compare")
        .arg(ex.join("settings-delay-and-append.toml"))
        .arg(ex.join("sessions.ndjson"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WITH settings-default.toml") && text.contains("WITH settings-delay-and-append.toml"),
        "{text}"
    );
    assert!(text.contains("appended (added to an open record)") && text.contains("reopened"), "{text}");
    assert!(text.contains("session(s) differ"), "{text}");
}

/// Waits until the captured output has a line containing `needle`, and returns it.
async fn wait_for(s: &Server, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(l) = s.output().lines().find(|l| l.contains(needle)) {
            return l.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no line with {needle:?} in:\n{}", s.output());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
