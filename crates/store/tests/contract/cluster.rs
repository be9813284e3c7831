//! Cases of [`ClusterStore`] and of the outbox leases: what lets several nodes share a
//! database without doing anything twice.

use std::sync::Arc;
use std::time::Duration;

use casebridge_rules::model::EntryKind;
use casebridge_store::{NodeBeat, OutboxRow, StepCommit, Store, StoreError};
use chrono::Utc;

use crate::support::{command, enqueue, event, line, step};

fn soon() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(1)
}

fn keys(rows: &[OutboxRow]) -> Vec<&str> {
    rows.iter().map(|r| r.key.as_str()).collect()
}

fn beat(id: &str) -> NodeBeat {
    NodeBeat { id: id.into(), name: format!("host {id}"), version: "1.0.0".into(), started_at: Utc::now() }
}

pub async fn a_leased_lane_is_left_to_its_node(store: Arc<dyn Store>) {
    let cmds = vec![command("a1", "A", "s1", &[]), command("a2", "A", "s1", &[]), command("b1", "B", "s2", &[])];
    enqueue(store.as_ref(), "s1", cmds).await;
    let n1 = store.claim_commands("n1", soon(), 1, 60_000).await.expect("claim");
    assert_eq!(keys(&n1), ["a1"]);
    let n2 = store.claim_commands("n2", soon(), 10, 60_000).await.expect("claim");
    assert_eq!(keys(&n2), ["b1"], "lane A is n1's");
    let batch = store.lane_batch("n1", &n1[0], 10, 60_000).await.expect("batch");
    assert_eq!(keys(&batch), ["a2"]);
    store.complete_command(&n1[0], line(1, EntryKind::Crm, "a1 done"), None).await.expect("complete");
    assert!(store.claim_commands("n2", soon(), 10, 60_000).await.expect("claim").is_empty(), "a2 is leased with a1");
    store.release_commands(&batch).await.expect("release");
    let again = store.claim_commands("n2", soon(), 10, 60_000).await.expect("claim");
    assert_eq!(keys(&again), ["a2"]);
    assert!(!again[0].taken_over, "given back, not taken over");
}

pub async fn a_node_renews_only_its_own_live_write_leases(store: Arc<dyn Store>) {
    let cmds = vec![command("a1", "A", "s1", &[]), command("b1", "B", "s1", &[]), command("c1", "C", "s1", &[])];
    enqueue(store.as_ref(), "s1", cmds).await;
    assert_eq!(store.claim_commands("n1", soon(), 2, 60_000).await.expect("claim").len(), 2);
    assert_eq!(store.claim_commands("n2", soon(), 10, 60_000).await.expect("claim").len(), 1);
    assert_eq!(store.renew_write_leases("n1", 60_000).await.expect("renew"), 2);
    assert_eq!(store.renew_write_leases("n2", 60_000).await.expect("renew"), 1);
    assert_eq!(store.renew_write_leases("n3", 60_000).await.expect("renew"), 0, "a node without leases");
}

pub async fn an_outcome_under_an_old_fence_is_refused(store: Arc<dyn Store>) {
    enqueue(store.as_ref(), "s1", vec![command("w1", "A", "s1", &[])]).await;
    let stale = store.claim_commands("n1", soon(), 10, 1).await.expect("claim").remove(0);
    // n1's lease (1 ms) runs out: n2 takes the write over.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let fresh = loop {
        let rows = store.claim_commands("n2", soon(), 10, 60_000).await.expect("claim");
        if let Some(r) = rows.into_iter().next() {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "the expired lease was never taken over");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(fresh.taken_over);
    assert!(fresh.fence > stale.fence);
    let late = store.complete_command(&stale, line(1, EntryKind::Crm, "late"), Some(("key:x", "crm_1"))).await;
    assert!(matches!(late, Err(StoreError::Fenced(_))), "{late:?}");
    assert!(matches!(store.retry_command(&stale, "x", Utc::now(), None).await, Err(StoreError::Fenced(_))));
    assert!(matches!(store.park_command(&stale, "x", line(1, EntryKind::Crm, "p")).await, Err(StoreError::Fenced(_))));
    assert_eq!(store.ref_get("key:x").await.expect("ref"), None, "nothing of a refused outcome is kept");
    store.complete_command(&fresh, line(2, EntryKind::Crm, "done"), Some(("key:x", "crm_2"))).await.expect("complete");
    assert_eq!(store.ref_get("key:x").await.expect("ref").as_deref(), Some("crm_2"));
    let timeline = store.timeline("s1").await.expect("timeline");
    assert_eq!(timeline.iter().filter(|e| e.kind == EntryKind::Crm).count(), 1);
}

pub async fn a_step_over_applied_events_is_refused(store: Arc<dyn Store>) {
    store.ingest(&[event("e1", "s1")]).await.expect("ingest");
    let seq = store.pending_events(None, 10).await.expect("pending")[0].seq;
    let mut s = step("s1");
    s.event_seqs = vec![seq];
    store.commit_steps(vec![s.clone()]).await.expect("commit");
    let again = store.commit_steps(vec![s.clone()]).await;
    assert!(matches!(again, Err(StoreError::Fenced(_))), "{again:?}");
    // In a batch, the refusal names the session whose events were applied, and the other
    // steps of the batch are not kept either.
    store.ingest(&[event("e2", "s2")]).await.expect("ingest");
    let seq2 = store.pending_events(None, 10).await.expect("pending")[0].seq;
    let fresh = StepCommit { event_seqs: vec![seq2], ..step("s2") };
    match store.commit_steps(vec![fresh, s]).await {
        Err(StoreError::Fenced(m)) => assert!(m.contains("s1") && !m.contains("s2"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(store.load_session("s2").await.expect("load").is_none());
    assert_eq!(store.pending_event_count().await.expect("count"), 1);
}

pub async fn nodes_beat_leave_and_share_the_shards(store: Arc<dyn Store>) {
    store.heartbeat(&beat("n1")).await.expect("beat");
    store.heartbeat(&beat("n2")).await.expect("beat");
    let nodes = store.nodes(15_000).await.expect("nodes");
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n.live && !n.stopped && n.name.starts_with("host ")));
    store.leave("n2").await.expect("leave");
    let n2 = store.nodes(15_000).await.expect("nodes").into_iter().find(|n| n.id == "n2").expect("n2");
    assert!(n2.stopped && !n2.live);
    let Some(all) = store.claim_shards("n1", 16, 15_000).await.expect("claim") else {
        assert!(!store.shared(), "a backend for several nodes has shards");
        return;
    };
    assert!(store.shared());
    assert_eq!(all.held, (0..16).collect::<Vec<_>>());
    let none = store.claim_shards("n2", 8, 15_000).await.expect("claim").expect("shards");
    assert!(none.held.is_empty(), "every shard is n1's");
    let half = store.claim_shards("n1", 8, 15_000).await.expect("claim").expect("shards");
    assert_eq!(half.held, (0..8).collect::<Vec<_>>(), "n1 gives back the highest");
    let other = store.claim_shards("n2", 8, 15_000).await.expect("claim").expect("shards");
    assert_eq!(other.held, (8..16).collect::<Vec<_>>());
    assert_eq!(other.taken_over, 0);
    store.ingest(&[event("e1", "s1"), event("e2", "s2"), event("e3", "s3")]).await.expect("ingest");
    let mine = store.pending_events(Some(&half.held), 10).await.expect("pending").len();
    let theirs = store.pending_events(Some(&other.held), 10).await.expect("pending").len();
    assert_eq!(mine + theirs, 3, "every event is in exactly one node's shards");
    store.leave("n1").await.expect("leave");
    let all = store.claim_shards("n2", 16, 15_000).await.expect("claim").expect("shards");
    assert_eq!(all.held.len(), 16);
    assert_eq!(all.taken_over, 0, "left cleanly: nothing to take over");
}

pub async fn customer_locks_exclude_other_holders(store: Arc<dyn Store>) {
    let mut a = store.key_locks().await.expect("locks");
    let mut b = store.key_locks().await.expect("locks");
    let k = vec!["phone:+15550001".to_string(), "user:u1".to_string()];
    assert!(a.try_lock(&k).await.expect("lock"));
    if !store.shared() {
        // One node: its one rules worker needs no locks.
        assert!(b.try_lock(&k).await.expect("lock"));
        return;
    }
    assert!(!b.try_lock(&k[1..]).await.expect("lock"), "held by a");
    assert!(b.try_lock(&["email:x@y.z".to_string()]).await.expect("lock"), "other customers are free");
    a.release().await.expect("release");
    assert!(b.try_lock(&k).await.expect("lock"), "free once a let go");
    b.release().await.expect("release");
    // A holder dropped without releasing (an error on the way) lets go too.
    assert!(a.try_lock(&k).await.expect("lock"));
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !b.try_lock(&k).await.expect("lock") {
        assert!(std::time::Instant::now() < deadline, "a dropped holder kept its locks");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.release().await.expect("release");
}

pub async fn the_pace_ledger_is_shared(store: Arc<dyn Store>) {
    let Some(ledger) = store.pace_ledger() else {
        assert!(!store.shared());
        return;
    };
    let other = store.pace_ledger().expect("ledger");
    assert_eq!(ledger.take("acme", Some(2)).await, None);
    assert_eq!(other.take("acme", Some(2)).await, None);
    let wait = ledger.take("acme", Some(2)).await.expect("the third request in a minute waits");
    assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
    assert_eq!(other.take("other-crm", Some(2)).await, None, "per CRM");
    other.hold("other-crm", Duration::from_secs(30)).await;
    let held = ledger.take("other-crm", None).await.expect("held");
    assert!(held > Duration::from_secs(25), "{held:?}");
}
