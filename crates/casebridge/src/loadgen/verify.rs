//! `loadgen --verify`: after a run, waits until the server has applied everything, then
//! checks the outcome against the rules through the public API.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::{Client, metric};
use super::traffic::{Expect, Session, phone};

/// CRM writes pending, as `/metrics` text `m` gives them.
pub fn pending_writes(m: &str) -> f64 {
    metric(m, "casebridge_outbox", "state=\"pending\"")
}

/// Waits until no event waits for the rules and at most `held` CRM writes are pending (or
/// `limit` passes). `held` is what was pending, not due, before a round began: writes held
/// back by the CRM (retries far off) are not this round's work.
pub async fn drained(c: &Client, limit: Duration, held: f64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let m = c.metrics().await.unwrap_or_default();
        let events = metric(&m, "casebridge_events_pending", "");
        let writes = pending_writes(&m);
        if m.contains("casebridge_events_pending") && events == 0.0 && writes <= held {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            anyhow::bail!(
                "not drained after {} s: {events} events wait for the rules, {writes} CRM writes pending",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The problems found (empty: clean). `accepted` counts the events each session had accepted.
pub async fn check(c: &Client, sessions: &[Session], accepted: &HashMap<String, usize>) -> Vec<String> {
    let mut problems = Vec::new();
    match c.get("/v1/outbox?state=dead").await {
        Ok(v) => {
            let n = v.get("writes").and_then(Value::as_array).map_or(0, Vec::len);
            if n > 0 {
                problems.push(format!("{n} CRM writes parked as dead letters"));
            }
        }
        Err(e) => problems.push(format!("cannot read the dead letters: {e}")),
    }
    let got = c.get_all(sessions.iter().map(|s| format!("/v1/sessions/{}", s.id)).collect()).await;
    let mut record_of: HashMap<String, Option<String>> = HashMap::new();
    for (s, v) in sessions.iter().zip(got) {
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("session {}: {e}", s.id));
                continue;
            }
        };
        let applied = v
            .get("timeline")
            .and_then(Value::as_array)
            .map_or(0, |t| t.iter().filter(|e| e.get("kind").and_then(Value::as_str) == Some("event")).count());
        let sent = accepted.get(&s.id).copied().unwrap_or(0);
        if applied != sent {
            problems.push(format!("session {}: {applied} events applied, {sent} accepted", s.id));
        }
        record_of.insert(s.id.clone(), v.get("record_id").and_then(Value::as_str).map(str::to_string));
    }
    // Which sessions must share a record, and which must have none.
    let mut groups: HashMap<String, HashSet<String>> = HashMap::new();
    for s in sessions.iter().filter(|s| accepted.contains_key(&s.id)) {
        let rec = record_of.get(&s.id).cloned().flatten();
        let group = match &s.expect {
            Expect::NoRecord => {
                if let Some(r) = rec {
                    problems.push(format!("session {} ({:?}) has record {r}; the rules give it none", s.id, s.kind));
                }
                continue;
            }
            Expect::Group(c, leaf) => format!("customer {c} in {leaf}"),
            Expect::Own => format!("voicemail {}", s.id),
            Expect::SameAs(other) => match record_of.get(other).cloned().flatten() {
                Some(r) => format!("record {r}"),
                None => format!("session {other}"),
            },
        };
        match rec {
            Some(r) => {
                groups.entry(group).or_default().insert(r);
            }
            None => problems.push(format!("session {} ({:?}) has no record; the rules give it one", s.id, s.kind)),
        }
    }
    // A group whose sessions sit on records of other groups would merge groups: check both ways.
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (g, set) in &groups {
        if set.len() > 1 && !g.starts_with("record ") {
            problems.push(format!("{g}: {} records where the rules give one ({set:?})", set.len()));
        }
        for r in set {
            if let Some(other) = owner.insert(r, g)
                && !other.starts_with("record ")
                && !g.starts_with("record ")
                && other != g
            {
                problems.push(format!("record {r} holds sessions of {other} and of {g}"));
            }
        }
    }
    // Accounts: exactly one per customer, and no record the sessions do not account for.
    let mut customers: Vec<u64> =
        sessions.iter().filter(|s| accepted.contains_key(&s.id)).map(|s| s.customer).collect();
    customers.sort_unstable();
    customers.dedup();
    let expected_records: HashSet<&str> = groups.values().flatten().map(String::as_str).collect();
    let paths = customers
        .iter()
        .map(|cu| {
            format!("/v1/crm/accounts?{}", serde_urlencoded::to_string([("phone", phone(*cu))]).unwrap_or_default())
        })
        .collect();
    let found = c.get_all(paths).await;
    let mut accounts = Vec::new();
    for (&cu, v) in customers.iter().zip(found) {
        match v.map(|v| v.get("accounts").and_then(Value::as_array).cloned().unwrap_or_default()) {
            Ok(a) if a.len() == 1 => {
                accounts.extend(a[0].get("id").and_then(Value::as_str).map(str::to_string));
            }
            Ok(a) => problems.push(format!("customer {cu} ({}): {} accounts, the rules give one", phone(cu), a.len())),
            Err(e) => problems.push(format!("customer {cu}: {e}")),
        }
    }
    let recs = c.get_all(accounts.iter().map(|a| format!("/v1/crm/records?account_id={a}")).collect()).await;
    for r in recs {
        match r {
            Ok(v) => {
                for rec in v.get("records").and_then(Value::as_array).cloned().unwrap_or_default() {
                    let id = rec.get("id").and_then(Value::as_str).unwrap_or_default();
                    if !expected_records.contains(id) {
                        problems.push(format!("record {id} is held by no session (created twice?)"));
                    }
                }
            }
            Err(e) => problems.push(format!("cannot list records: {e}")),
        }
    }
    problems
}

/// Sets the record rules `--verify` checks against (built-in CRM only).
pub async fn verify_settings(c: &Client) -> anyhow::Result<()> {
    let mut s = c.get("/v1/settings").await?;
    let kind = s.pointer("/crm/kind").and_then(Value::as_str).unwrap_or("builtin").to_string();
    if kind != "builtin" {
        anyhow::bail!("--verify checks the built-in CRM; this server's crm.kind is {kind}");
    }
    // The checks count every record of the customers' accounts: an earlier run's would show
    // as doubles.
    let held = c.get("/v1/sessions?limit=1").await?;
    if held.get("sessions").and_then(Value::as_array).is_some_and(|s| !s.is_empty()) {
        anyhow::bail!(
            "--verify needs a server that holds no sessions yet (its checks count every record of the customers' accounts): use a new --data-dir or database, or leave out --verify"
        );
    }
    let set = |s: &mut Value, path: &str, v: Value| {
        if let Some(x) = s.pointer_mut(path) {
            *x = v;
        }
    };
    set(&mut s, "/records/append_to_open_in_leaf_queue", json!(true));
    set(&mut s, "/records/append_requires_same_channel", json!(false));
    set(&mut s, "/records/append_to_closed_within_days", Value::Null);
    set(&mut s, "/records/skip_creation", json!(false));
    set(&mut s, "/records/abandoned_calls", json!(false));
    set(&mut s, "/records/delay_call_until_connected", json!(false));
    set(&mut s, "/records/delay_chat_until_customer_messages", Value::Null);
    set(&mut s, "/accounts/skip_lookup", json!(false));
    set(&mut s, "/accounts/skip_creation", json!(false));
    set(&mut s, "/accounts/never_create_for", json!([]));
    c.put("/v1/settings", &s).await
}
