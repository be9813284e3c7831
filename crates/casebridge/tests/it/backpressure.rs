//! Back-pressure: a flood beyond what the rules can apply is answered 429 with Retry-After
//! while the backlog stays near its bound and the process's memory stays flat; what was
//! accepted is all applied afterwards.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::Server;

const BOUND: i64 = 300;
const BATCH: usize = 100;
const CLIENTS: usize = 4;

/// A batch of `BATCH` events: call sessions, four events each.
fn batch(client: usize, k: usize) -> Vec<Value> {
    (0..BATCH / 4)
        .flat_map(|i| {
            let sid = format!("bp-{client}-{k}-{i}");
            let at = |s: u32| format!("2026-11-20T10:00:{s:02}Z");
            vec![
                json!({"id": format!("{sid}-1"), "session_id": sid, "type": "session.created", "at": at(0),
                       "data": {"channel": "voice", "session_type": "voice_inbound_ivr", "direction": "inbound",
                                "customer": {"phone": format!("+1415{:07}", 1_000_000 + client * 100_000 + k * 100 + i)},
                                "queue_path": ["Q"]}}),
                json!({"id": format!("{sid}-2"), "session_id": sid, "type": "session.assigned", "at": at(5),
                       "data": {"agent": {"id": "a"}}}),
                json!({"id": format!("{sid}-3"), "session_id": sid, "type": "session.connected", "at": at(6)}),
                json!({"id": format!("{sid}-4"), "session_id": sid, "type": "session.ended", "at": at(50), "data": {}}),
            ]
        })
        .collect()
}

fn rss_kib(s: &Server) -> u64 {
    let pid = s.child.as_ref().map(|c| c.id()).unwrap_or(0);
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

async fn pending(s: &Server) -> i64 {
    let text = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with("casebridge_events_pending "))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as i64
}

#[tokio::test]
async fn a_flood_beyond_capacity_is_told_to_come_back_and_the_backlog_stays_bounded() {
    let s = Server::start_with(&[("CASEBRIDGE_MAX_BACKLOG", "300")], &[]).await;
    let before = rss_kib(&s);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (http, url) = (s.http.clone(), format!("{}/v1/events", s.base));
        clients.spawn(async move {
            let (mut accepted, mut refused, mut retry_after) = (0usize, 0usize, Vec::new());
            let until = Instant::now() + Duration::from_secs(4);
            let mut k = 0;
            while Instant::now() < until {
                let r = http.post(&url).json(&batch(c, k)).send().await.unwrap();
                match r.status().as_u16() {
                    202 => {
                        accepted += 1;
                        k += 1;
                    }
                    429 => {
                        refused += 1;
                        retry_after.push(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap());
                        let v: Value = r.json().await.unwrap();
                        assert_eq!(v["type"], "urn:casebridge:problem:backlog-full", "{v}");
                        assert!(v["detail"].as_str().unwrap().contains("nothing was stored"), "{v}");
                        // A client that obeyed would wait; this one keeps pushing to hold the flood.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("unexpected {other}"),
                }
            }
            (accepted, refused, retry_after)
        });
    }
    let mut highest = 0;
    // Which waiting request gets the room the rules make is first come, first served: on a
    // slow backend (PostgreSQL, debug build) one client can go 4 s without any, so only the
    // clients together must have got events in.
    let mut accepted_in_all = 0;
    while !clients.is_empty() {
        highest = highest.max(pending(&s).await);
        if let Some(Ok((accepted, refused, waits))) = clients.try_join_next() {
            accepted_in_all += accepted;
            assert!(refused > 0, "every client was told to come back");
            assert!(waits.iter().all(|w| (1..=60).contains(w)), "Retry-After in seconds: {waits:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepted_in_all > 0, "the clients got some events in");
    // The bound, plus what requests already admitted carry, plus one refresh of slack.
    let limit = 2 * BOUND + (CLIENTS * BATCH) as i64;
    assert!(highest <= limit, "the backlog reached {highest} events, over {limit}");
    let grown = rss_kib(&s).saturating_sub(before);
    assert!(grown < 100 * 1024, "memory grew by {grown} KiB during the flood");
    // What was accepted is all applied.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending(&s).await > 0 {
        assert!(Instant::now() < deadline, "the backlog never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
