//! `casebridge loadgen` through its command line: its own server, SIGKILLed during the run,
//! then checked by the oracle; and the do-nothing baseline measured in the same run.

use std::process::Command;

use crate::harness::bin;

fn report(args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin()).arg("loadgen").args(args).arg("--json").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loadgen failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON report ({e}): {stdout}"))
}

#[test]
fn a_run_with_sigkills_verifies_clean() {
    // Kills every 0.15–0.3 s: the run lasts about a second, so several land in it.
    let r =
        report(&["--sessions", "300", "--connections", "8", "--customers", "40", "--verify", "--kill-every", "0.3"]);
    assert!(r["kills"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["verify"]["clean"], true, "{r}");
    assert_eq!(r["sessions"], 300, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    // Every session sent all its events: about seven each.
    assert!(r["events"].as_u64().unwrap() > 1500, "{r}");
    // A restarted server's CPU is not the round's: not reported.
    assert!(r["cpu_ms_per_session"]["server"].is_null(), "{r}");
}

#[test]
fn the_baseline_is_measured_in_the_same_run_and_latency_is_reported() {
    let r = report(&["--sessions", "200", "--connections", "8", "--baseline"]);
    let base = r["baseline_events_per_s"].as_f64().unwrap();
    let ratio = r["ratio_to_baseline"].as_f64().unwrap();
    assert!(base > 0.0 && ratio > 0.0, "{r}");
    assert!((ratio - r["events_per_s"].as_f64().unwrap() / base).abs() < 0.01, "{r}");
    let lat = &r["accepted_to_crm_write_ms"];
    assert!(lat["writes"].as_f64().unwrap() > 200.0, "{r}");
    assert!(lat["p50"].as_f64().unwrap() <= lat["p99"].as_f64().unwrap(), "{r}");
    assert!(r["verify"].is_null(), "{r}");
    if cfg!(target_os = "linux") {
        // What a session costs in CPU, the server's and loadgen's own, read from /proc.
        let cpu = &r["cpu_ms_per_session"];
        for k in ["server", "loadgen"] {
            assert!(cpu[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {r}");
        }
        let cores = r["server_cores_busy"].as_f64().unwrap_or(0.0);
        assert!(cores > 0.0 && cores < 64.0, "{r}");
    }
}

#[test]
fn bad_options_exit_2() {
    let out =
        Command::new(bin()).args(["loadgen", "--url", "http://127.0.0.1:9", "--kill-every", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kill-every needs loadgen's own server"));
}

#[test]
fn verify_refuses_a_server_that_already_holds_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    report(&["--sessions", "20", "--connections", "4", "--data-dir", data]);
    let out = Command::new(bin())
        .args(["loadgen", "--sessions", "20", "--connections", "4", "--verify", "--data-dir", data])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--verify needs a server that holds no sessions yet"), "{stderr}");
}
