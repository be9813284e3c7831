//! The CLI: simulate, check-config, migrate.

use std::process::Command;

use crate::harness::bin;

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn simulate_prints_one_json_line_per_session() {
    let ex = examples();
    let out = Command::new(bin())
        .args(["simulate", "--format", "json", "--crm-fixture"])
        .arg(ex.join("crm-fixture.json"))
        .arg(ex.join("sessions.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 5);
    for l in &lines {
        for k in
            ["session_id", "account_outcome", "account_id", "record_outcome", "record_id", "title", "tags", "reason"]
        {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
    }
}

#[test]
fn simulate_compare_shows_what_changes_between_two_settings_files() {
    let ex = examples();
    let out = Command::new(bin())
        .args(["simulate", "--format", "json", "--settings"])
        .arg(ex.join("settings-default.toml"))
        .arg("--compare")
        .arg(ex.join("settings-delay-and-append.toml"))
        .arg("--crm-fixture")
        .arg(ex.join("crm-fixture.json"))
        .arg(ex.join("sessions.ndjson"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty(), "the two settings differ on some session");
    for l in &lines {
        assert!(l["a"].is_object() && l["b"].is_object());
        assert_ne!(
            (&l["a"]["record_outcome"], &l["a"]["title"]),
            (&l["b"]["record_outcome"], &l["b"]["title"]),
            "only differences: {l}"
        );
    }
    let abandoned = lines.iter().find(|l| l["session_id"] == "abandoned-call").expect("the abandoned call differs");
    assert_eq!(abandoned["a"]["record_outcome"], "created");
    assert_eq!(abandoned["b"]["record_outcome"], "none");
    let table = Command::new(bin())
        .args(["simulate", "--settings"])
        .arg(ex.join("settings-default.toml"))
        .arg("--compare")
        .arg(ex.join("settings-delay-and-append.toml"))
        .arg(ex.join("sessions.ndjson"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("session(s) differ"));
}

#[test]
fn simulate_exits_2_with_the_line_number_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.ndjson");
    std::fs::write(&f, "{\"id\":\"e1\",\"session_id\":\"s\",\"type\":\"session.connected\",\"at\":\"2026-11-20T10:00:00Z\"}\n\n{oops\n").unwrap();
    let out = Command::new(bin()).arg("simulate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn simulate_plays_agents_closing_records() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("e.ndjson");
    let s = dir.path().join("s.json");
    std::fs::write(&s, r#"{"records": {"append_to_open_in_leaf_queue": true}}"#).unwrap();
    let call = |id: &str, h: u32| {
        format!(
            "{{\"id\":\"{id}-1\",\"session_id\":\"{id}\",\"type\":\"session.created\",\"at\":\"2026-11-20T{h:02}:00:00Z\",\"data\":{{\"channel\":\"voice\",\"session_type\":\"voice_inbound_ivr\",\"direction\":\"inbound\",\"customer\":{{\"phone\":\"+14155550100\"}},\"queue_path\":[\"Q\"]}}}}\n{{\"id\":\"{id}-2\",\"session_id\":\"{id}\",\"type\":\"session.assigned\",\"at\":\"2026-11-20T{h:02}:00:10Z\",\"data\":{{\"agent\":{{\"id\":\"a\"}}}}}}\n"
        )
    };
    let text = format!(
        "{}{{\"type\":\"crm.record.updated\",\"at\":\"2026-11-20T10:30:00Z\",\"data\":{{\"record_of_session\":\"s1\",\"status\":\"closed\"}}}}\n{}",
        call("s1", 10),
        call("s2", 11)
    );
    std::fs::write(&f, text).unwrap();
    let out =
        Command::new(bin()).args(["simulate", "--format", "json", "--settings"]).arg(&s).arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[1]["record_outcome"], "created", "s1's record was closed, so s2 gets a new one: {lines:?}");
}

#[test]
fn check_config_reports_errors_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[server]\nbind = \"127.0.0.1:9000\"\n\n[records]\nabandoned_calls = true\ndelay_call_until_connected = true\n",
    )
    .unwrap();
    let out = Command::new(bin()).arg("check-config").arg(&good).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning: records.abandoned_calls"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[records]\ntitle_template = \"{NOPE}\"\n").unwrap();
    let out = Command::new(bin()).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("records.title_template"));
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin()).args(["migrate", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("casebridge.db").exists());
}
