//! behaviour.md §10, §13.6: agent status sync between the CRM and the contact center.

use serde_json::{Value, json};

use crate::harness::*;

fn sync_settings(mode: &str, priority: &str) -> Value {
    settings(json!({"agent_status": {
        "mode": mode, "priority": priority,
        "platform_statuses": ["Available", "Unavailable", "Wrap-up"],
        "crm_to_platform": {"Online": "Available", "Busy": "Unavailable", "On email": "Unavailable"},
        "platform_to_crm": {"Available": "Online", "Unavailable": "Busy"},
        "synced_teams": ["Support"],
    }}))
}

async fn report(s: &Server, email: &str, status: &str, instance: &str) -> Value {
    let (st, v) = s
        .post(
            "/v1/crm/agent-status",
            json!({"email": email, "crm_status": status, "instance_id": instance, "team": "Support"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn platform(s: &Server, agent: &str, status: &str, source: &str) -> Value {
    let (st, v) = s.put(&format!("/v1/agents/{agent}/status"), json!({"status": status, "source": source})).await;
    assert_eq!(st, 200, "{v}");
    v
}

#[tokio::test]
async fn crm_statuses_map_many_to_one_by_email_and_unmapped_ones_are_ignored_and_reported() {
    let s = Server::start().await;
    s.put_settings(sync_settings("one_way", "latest_wins")).await;
    let (st, v) = s.put("/v1/agents/ag-1", json!({"email": "Ana@Example.com", "name": "Ana"})).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["status"], Value::Null, "nothing is applied at login");
    assert_eq!(v["sync"], "active");
    let (st, v) = s.put("/v1/agents/ag-2", json!({"email": "ana@example.com"})).await;
    assert_eq!(st, 409, "one email, one agent: {v}");

    let v = report(&s, "ana@EXAMPLE.com", "On email", "tab-1").await;
    assert_eq!(
        (v["result"].as_str(), v["status"].as_str(), v["status_source"].as_str()),
        (Some("applied"), Some("Unavailable"), Some("crm"))
    );
    platform(&s, "ag-1", "Available", "agent").await;
    let v = report(&s, "ana@example.com", "Busy", "tab-1").await;
    assert_eq!(v["status"], "Unavailable", "two CRM statuses, one platform status");
    let v = report(&s, "ana@example.com", "Lunch", "tab-1").await;
    assert_eq!(v["result"], "ignored");
    assert!(v["reason"].as_str().unwrap().contains("crm_to_platform"), "{v}");
    assert_eq!(v["status"], "Unavailable", "unchanged");
    assert_eq!(v["unmapped_crm_statuses"]["Lunch"], 1);

    let (st, v) = s
        .post("/v1/crm/agent-status", json!({"email": "who@example.com", "crm_status": "Busy", "instance_id": "t"}))
        .await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = s.put("/v1/agents/ag-1/status", json!({"status": "Sleeping"})).await;
    assert_eq!(st, 422, "not a platform status: {v}");
    let (st, v) = s.post("/v1/crm/agent-status", json!({"email": "ana@example.com"})).await;
    assert_eq!(st, 422);
    assert_eq!(v["errors"].as_array().unwrap().len(), 2, "crm_status and instance_id: {v}");

    s.put_settings(sync_settings("off", "latest_wins")).await;
    let v = report(&s, "ana@example.com", "Online", "tab-1").await;
    assert_eq!(
        (v["result"].as_str(), v["sync"].as_str(), v["status"].as_str()),
        (Some("ignored"), Some("off"), Some("Unavailable"))
    );
}

#[tokio::test]
async fn latest_wins_and_crm_overrides_differ_on_the_platform_s_own_next_status() {
    let s = Server::start().await;
    s.put("/v1/agents/lw", json!({"email": "lw@example.com"})).await;
    s.put("/v1/agents/co", json!({"email": "co@example.com"})).await;
    for (agent, priority, after_wrapup) in [("lw", "latest_wins", "Available"), ("co", "crm_overrides", "Unavailable")]
    {
        s.put_settings(sync_settings("one_way", priority)).await;
        report(&s, &format!("{agent}@example.com"), "On email", "tab").await;
        // Wrap-up ends: the platform would make the agent available on its own.
        let v = platform(&s, agent, "Available", "system").await;
        assert_eq!(v["status"], after_wrapup, "{priority}: {v}");
        if priority == "crm_overrides" {
            assert_eq!(v["result"], "overridden");
        }
        // The agent's own choice always applies.
        let v = platform(&s, agent, "Available", "agent").await;
        assert_eq!(v["status"], "Available", "{priority}");
    }
}

#[tokio::test]
async fn two_instances_suspend_sync_until_one_closes() {
    let s = Server::start().await;
    s.put_settings(sync_settings("one_way", "latest_wins")).await;
    s.put("/v1/agents/ag-1", json!({"email": "ana@example.com"})).await;
    report(&s, "ana@example.com", "Online", "laptop").await;
    let v = report(&s, "ana@example.com", "Busy", "desktop").await;
    assert_eq!(v["result"], "ignored");
    assert_eq!(v["sync"], "suspended");
    assert!(v["sync_reason"].as_str().unwrap().contains("2 CRM instances"), "{v}");
    assert_eq!(v["status"], "Available", "not applied while suspended");
    let a = s.get("/v1/agents/ag-1").await;
    assert_eq!(a["sync"], "suspended");
    let (st, v) = s.call(reqwest::Method::DELETE, "/v1/agents/ag-1/context/laptop", None).await;
    assert_eq!(st, 200);
    assert_eq!((v["sync"].as_str(), v["sync_reason"].as_str()), (Some("active"), None), "recovered: {v}");
    let v = report(&s, "ana@example.com", "Busy", "desktop").await;
    assert_eq!((v["result"].as_str(), v["status"].as_str()), (Some("applied"), Some("Unavailable")));
}

#[tokio::test]
async fn two_way_pushes_platform_changes_to_the_crm_for_synced_teams_only() {
    let s = Server::start().await;
    s.put_settings(sync_settings("two_way", "latest_wins")).await;
    s.put("/v1/agents/sup", json!({"email": "sup@example.com"})).await;
    s.put("/v1/agents/sal", json!({"email": "sal@example.com"})).await;
    let (st, v) = s
        .post("/v1/crm/agent-status", json!({"email": "sup@example.com", "crm_status": "Online", "instance_id": "t", "team": "Support", "login": true}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (v["result"].as_str(), v["status"].clone()),
        (Some("recorded"), Value::Null),
        "not applied at login: {v}"
    );
    let v = platform(&s, "sup", "Unavailable", "agent").await;
    assert_eq!(v["pushed_crm_status"], "Busy", "{v}");
    let crm = s
        .poll("/v1/crm/agent-statuses", |v| {
            v["agents"].as_array().is_some_and(|a| a.iter().any(|x| x["crm_status"] == "Busy"))
        })
        .await;
    assert_eq!(crm["agents"][0]["email"], "sup@example.com");
    // A CRM change is applied but never echoed back.
    let v = report(&s, "sup@example.com", "Online", "t").await;
    assert_eq!((v["status"].as_str(), v["pushed_crm_status"].clone()), (Some("Available"), Value::Null));

    s.post(
        "/v1/crm/agent-status",
        json!({"email": "sal@example.com", "crm_status": "Online", "instance_id": "u", "team": "Sales"}),
    )
    .await;
    let v = platform(&s, "sal", "Unavailable", "agent").await;
    assert_eq!(v["pushed_crm_status"], Value::Null);
    assert!(v["reason"].as_str().unwrap().contains("synced_teams"), "{v}");
    let crm = s.get("/v1/crm/agent-statuses").await;
    assert_eq!(crm["agents"].as_array().unwrap().len(), 1, "nothing pushed for Sales: {crm}");
}

#[tokio::test]
async fn crm_changes_wait_while_the_agent_is_on_a_session_when_held() {
    let s = Server::start().await;
    let mut st = sync_settings("one_way", "latest_wins");
    st["agent_status"]["hold_while_busy"] = json!(true);
    s.put_settings(st).await;
    s.put("/v1/agents/ag-7", json!({"email": "seven@example.com"})).await;
    report(&s, "seven@example.com", "Online", "tab").await;
    let mut c = Ses::new("busy1", "2026-11-20T10:00:00Z");
    s.send(vec![
        c.created("voice_inbound_ivr", json!({"phone": "+14155550901"}), &["Support"]),
        c.assigned("ag-7"),
        c.connected(),
    ])
    .await;
    let v = report(&s, "seven@example.com", "Busy", "tab").await;
    assert_eq!(
        (v["result"].as_str(), v["status"].as_str(), v["held_status"].as_str()),
        (Some("held"), Some("Available"), Some("Unavailable"))
    );
    s.send(vec![c.ended()]).await;
    let a = s.poll("/v1/agents/ag-7", |a| a["status"] == "Unavailable").await;
    assert_eq!(a["held_status"], Value::Null);
    assert!(a["history"].as_array().unwrap().iter().any(|h| h["rule"] == "agent_status.hold_while_busy"), "{a}");
}

#[tokio::test]
async fn status_settings_are_checked() {
    let s = Server::start().await;
    let (st, v) = s
        .put(
            "/v1/settings",
            json!({"agent_status": {"mode": "sideways", "platform_statuses": ["Available"],
              "crm_to_platform": {"Busy": "Away"}}}),
        )
        .await;
    assert_eq!(st, 422);
    let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"agent_status.mode") && fields.contains(&"agent_status.crm_to_platform.Busy"), "{v}");
    let mut two = sync_settings("two_way", "latest_wins");
    two["agent_status"]["synced_teams"] = json!([]);
    let v = s.put_settings(two).await;
    let w: Vec<&str> = v["warnings"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(w.contains(&"agent_status.synced_teams") && w.contains(&"agent_status.platform_to_crm"), "{v}");
}

#[tokio::test]
async fn concurrent_status_changes_of_one_agent_are_all_kept() {
    let s = Server::start().await;
    s.put_settings(sync_settings("one_way", "latest_wins")).await;
    s.put("/v1/agents/ag-c", json!({"email": "c@example.com"})).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (base, http) = (s.base.clone(), s.http.clone());
        tasks.push(tokio::spawn(async move {
            let (url, body) = if i % 2 == 0 {
                (format!("{base}/v1/agents/ag-c/status"), json!({"status": "Available", "source": "agent"}))
            } else {
                (
                    format!("{base}/v1/crm/agent-status"),
                    json!({"email": "c@example.com", "crm_status": "Busy", "instance_id": "t"}),
                )
            };
            let m = if i % 2 == 0 { reqwest::Method::PUT } else { reqwest::Method::POST };
            http.request(m, url).json(&body).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let a = s.get("/v1/agents/ag-c").await;
    let applied = a["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["rule"] == "agent_status" || h["rule"] == "agent_status.crm_to_platform")
        .count();
    assert_eq!(applied, 20, "no change lost to a concurrent one: {a}");
}
