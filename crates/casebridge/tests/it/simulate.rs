//! `simulate` replays in memory: for the same events it must give what the service gives.
//! The events are loadgen's realistic mix (IVR, app and web calls, chats, voicemails,
//! abandons, callbacks, transfers of repeat customers), with records closed by agents along
//! the way so that the append and reopen rules run, and sessions interleaved three at a time.

use std::collections::HashMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Server, bin};

/// Ids renamed by first appearance, so that two runs that number their objects differently
/// still compare (the service delivers customers' writes concurrently).
#[derive(Default)]
struct Names(HashMap<String, String>);

impl Names {
    fn of(&mut self, id: &Value) -> Value {
        match id.as_str() {
            Some(id) => {
                let n = self.0.len();
                json!(self.0.entry(id.to_string()).or_insert_with(|| format!("#{n}")).clone())
            }
            None => Value::Null,
        }
    }
}

#[tokio::test]
async fn simulate_gives_the_outcomes_the_service_gives() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated.ndjson");
    let out = Command::new(bin())
        .args(["loadgen", "--sessions", "90", "--customers", "12", "--write-events"])
        .arg(&generated)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut sessions: Vec<(String, Vec<Value>)> = Vec::new();
    for line in std::fs::read_to_string(&generated).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let sid = e["session_id"].as_str().unwrap().to_string();
        match sessions.last_mut() {
            Some((id, evs)) if *id == sid => evs.push(e),
            _ => sessions.push((sid, vec![e])),
        }
    }
    assert_eq!(sessions.len(), 90);
    let kinds: std::collections::HashSet<String> =
        sessions.iter().map(|(_, evs)| evs[0]["data"]["session_type"].as_str().unwrap_or("?").to_string()).collect();
    assert!(kinds.len() >= 5, "the mix has calls, chats and voicemails: {kinds:?}");

    let settings = json!({"records": {"append_to_open_in_leaf_queue": true, "append_to_closed_within_days": 30,
        "abandoned_calls": true, "tag_session_type": true}});
    let s = Server::start().await;
    s.put_settings(settings.clone()).await;
    // The same events to the service and into simulate's file, three sessions at a time with
    // their events interleaved (so that a session's lookups wait for another's writes); every
    // seventh record is closed by an agent after its group.
    let mut file = String::new();
    for (g, group) in sessions.chunks(3).enumerate() {
        let mut batch = Vec::new();
        for k in 0..group.iter().map(|(_, evs)| evs.len()).max().unwrap_or(0) {
            batch.extend(group.iter().filter_map(|(_, evs)| evs.get(k).cloned()));
        }
        s.send(batch.clone()).await;
        for e in &batch {
            file.push_str(&format!("{e}\n"));
        }
        for (j, (sid, evs)) in group.iter().enumerate() {
            if (g * 3 + j) % 7 != 3 {
                continue;
            }
            let Some(rid) = s.session(sid).await["record_id"].as_str().map(str::to_string) else { continue };
            // Closed at the session's start: later sessions of the customer start after it.
            let at = evs[0]["at"].clone();
            let (code, v) = s
                .call(
                    reqwest::Method::PATCH,
                    &format!("/v1/crm/records/{rid}"),
                    Some(&json!({"status": "closed", "at": at})),
                )
                .await;
            assert_eq!(code, 200, "{v}");
            file.push_str(&format!(
                "{}\n",
                json!({"type": "crm.record.updated", "at": at, "data": {"record_of_session": sid, "status": "closed"}})
            ));
        }
    }
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, file).unwrap();
    let settings_file = dir.path().join("settings.json");
    std::fs::write(&settings_file, settings.to_string()).unwrap();
    let out = Command::new(bin())
        .args(["simulate", "--format", "json", "--settings"])
        .arg(&settings_file)
        .arg(&events)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let simulated: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(simulated.len(), sessions.len());

    let (mut served_names, mut simulated_names) = (Names::default(), Names::default());
    let mut outcomes = HashMap::new();
    for (sid, _) in &sessions {
        let v = s.session(sid).await;
        let rec = match v["record_id"].as_str() {
            Some(rid) => s.get(&format!("/v1/crm/records/{rid}")).await,
            None => Value::Null,
        };
        let served = json!({"session_id": sid, "account_outcome": v["account_outcome"],
            "account_id": served_names.of(&v["account_id"]), "record_outcome": v["record_outcome"],
            "record_id": served_names.of(&v["record_id"]), "title": rec["title"],
            "tags": rec.get("tags").cloned().unwrap_or(json!([]))});
        outcomes.insert(sid.clone(), served);
    }
    let mut created = 0;
    for o in &simulated {
        let sid = o["session_id"].as_str().unwrap();
        let mine = json!({"session_id": sid, "account_outcome": o["account_outcome"],
            "account_id": simulated_names.of(&o["account_id"]), "record_outcome": o["record_outcome"],
            "record_id": simulated_names.of(&o["record_id"]), "title": o["title"], "tags": o["tags"]});
        assert_eq!(mine, outcomes[sid], "simulate and the service differ on {sid}");
        created += (o["record_outcome"] == "created") as usize;
    }
    let outcomes_seen: std::collections::HashSet<String> =
        simulated.iter().map(|o| o["record_outcome"].as_str().unwrap_or("?").to_string()).collect();
    for o in ["created", "appended", "reopened"] {
        assert!(outcomes_seen.contains(o), "the run has {o} records: {outcomes_seen:?}");
    }
    assert!(created < sessions.len(), "repeat customers share records");
}
