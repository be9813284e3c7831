//! The Tasks casebridge writes: a session's activity (`TaskSubtype` `Call`, `CallObject` = the
//! session id, `CallType`, duration, the session data as readable text) and a wrap-up's call
//! log (`CallDisposition`, the agent's notes). Both are upserted by their key, so a rewrite
//! replaces them in place.

use casebridge_rules::model::SessionData;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The limit of `Task.Description`.
const DESCRIPTION_MAX: usize = 32_000;

/// Cuts text to `max` characters.
pub fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The Salesforce user id an agent id names, when it is one (`005…`, 15 or 18 characters):
/// casebridge agent ids are the contact center's, so only agents known by their Salesforce
/// user id can own records.
pub fn user_id(agent: &str) -> Option<&str> {
    let ok =
        agent.starts_with("005") && matches!(agent.len(), 15 | 18) && agent.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then_some(agent)
}

/// Who and what a Task hangs on: `WhoId` for a Contact or Lead, `WhatId` for a case or a
/// person Account (a Task's `WhoId` takes no Account). `None` leaves the field empty.
pub fn hang(task: &mut Map<String, Value>, who: Option<String>, what: Option<String>) {
    task.insert("WhoId".into(), who.map(Value::String).unwrap_or(Value::Null));
    task.insert("WhatId".into(), what.map(Value::String).unwrap_or(Value::Null));
}

fn secs(v: f64) -> String {
    format!("{}s", v.round() as i64)
}

fn time(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The session data as the text of its Task.
pub fn describe(d: &SessionData) -> String {
    let mut lines = vec![format!("casebridge session {} ({})", d.session_id, d.session_type)];
    let mut add = |label: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            lines.push(format!("{label}: {v}"));
        }
    };
    add("Queue", d.queue.clone());
    add("Customer phone", d.customer_phone.clone());
    add("Agent", d.agent_id.clone());
    add("Started", time(&d.started_at));
    add("Connected", time(&d.connected_at));
    add("Ended", time(&d.ended_at));
    add("Talk time", d.duration_s.map(secs));
    add("Hold time", d.hold_s.map(secs));
    add("Wait time", d.wait_s.map(secs));
    add("Customer messages", (d.customer_messages > 0).then(|| d.customer_messages.to_string()));
    add(
        "CSAT",
        d.csat_score.map(|s| match &d.csat_comment {
            Some(c) => format!("{s} ({c})"),
            None => s.to_string(),
        }),
    );
    add("Disposition", d.disposition.clone());
    add("Notes", d.notes.clone());
    add("Recording", d.recording_url.clone());
    add("Abandoned", d.abandoned.then(|| d.missed_reason.map(|m| m.as_str()).unwrap_or("yes").to_string()));
    for l in &d.legs {
        let who = l.agent_id.clone().unwrap_or_else(|| "no agent".into());
        let queue = l.queue.as_ref().map(|q| format!(" in {q}")).unwrap_or_default();
        add(
            "Leg",
            Some(format!("{} {} {who}{queue}", l.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), l.kind)),
        );
    }
    for u in &d.updates {
        add("Update", Some(u.clone()));
    }
    for (k, v) in &d.custom_data {
        add(&format!("Data {k}"), Some(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())));
    }
    add("Transcript", d.transcript.clone().map(|t| format!("\n{t}")));
    cut(&lines.join("\n"), DESCRIPTION_MAX)
}

/// The Task of a session's data (without `WhoId`/`WhatId`).
pub fn session_task(d: &SessionData) -> Map<String, Value> {
    let chat = d.session_type.starts_with("messaging");
    let label = if chat {
        "Chat"
    } else if d.session_type == "voicemail" {
        "Voicemail"
    } else if d.session_type == "voice_outbound" {
        "Outbound call"
    } else {
        "Inbound call"
    };
    let mut t = Map::new();
    t.insert("Subject".into(), json!(cut(&format!("{label} {}", d.session_id), 255)));
    t.insert("Status".into(), json!("Completed"));
    t.insert("TaskSubtype".into(), json!(if chat { "Task" } else { "Call" }));
    t.insert("CallObject".into(), json!(cut(&d.session_id, 255)));
    if !chat {
        t.insert("CallType".into(), json!(if d.session_type == "voice_outbound" { "Outbound" } else { "Inbound" }));
        if let Some(s) = d.duration_s {
            t.insert("CallDurationInSeconds".into(), json!(s.round() as i64));
        }
    }
    if let Some(at) = d.started_at.or(d.ended_at) {
        t.insert("ActivityDate".into(), json!(at.format("%Y-%m-%d").to_string()));
    }
    if let Some(owner) = d.agent_id.as_deref().and_then(user_id) {
        t.insert("OwnerId".into(), json!(owner));
    }
    t.insert("Description".into(), json!(describe(d)));
    t
}

/// The Task of a wrap-up's call log (without `WhoId`/`WhatId`).
pub fn call_log_task(
    session_id: &str,
    disposition: &str,
    label: &str,
    notes: &str,
    agent_id: Option<&str>,
    at: DateTime<Utc>,
) -> Map<String, Value> {
    let shown = if label.is_empty() { disposition } else { label };
    let mut t = Map::new();
    let subject = if shown.is_empty() { "Call".to_string() } else { format!("Call: {shown}") };
    t.insert("Subject".into(), json!(cut(&subject, 255)));
    t.insert("Status".into(), json!("Completed"));
    t.insert("TaskSubtype".into(), json!("Call"));
    t.insert("CallObject".into(), json!(cut(session_id, 255)));
    t.insert("CallDisposition".into(), json!(cut(shown, 255)));
    t.insert("Description".into(), json!(cut(notes, DESCRIPTION_MAX)));
    t.insert("ActivityDate".into(), json!(at.format("%Y-%m-%d").to_string()));
    if let Some(owner) = agent_id.and_then(user_id) {
        t.insert("OwnerId".into(), json!(owner));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_as_a_call_task() {
        let d = SessionData {
            session_id: "s1".into(),
            session_type: "voice_inbound_ivr".into(),
            duration_s: Some(61.6),
            csat_score: Some(9.0),
            recording_url: Some("https://rec.example/s1.mp3".into()),
            ..SessionData::default()
        };
        let t = session_task(&d);
        assert_eq!(t["TaskSubtype"], "Call");
        assert_eq!(t["CallType"], "Inbound");
        assert_eq!(t["CallDurationInSeconds"], 62);
        let text = t["Description"].as_str().unwrap_or_default();
        assert!(text.contains("Recording: https://rec.example/s1.mp3") && text.contains("CSAT: 9"), "{text}");
        assert_eq!(user_id("005000000000001AAA"), Some("005000000000001AAA"));
        assert_eq!(user_id("ag-1"), None);
    }
}
