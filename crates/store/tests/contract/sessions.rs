//! Cases of [`SessionStore`]: step commits, timelines, paging, settledness.

use std::sync::Arc;

use casebridge_rules::model::EntryKind;
use casebridge_store::agents::ActivityFilter;
use casebridge_store::{OutboxState, StepCommit, Store};
use chrono::Utc;

use crate::support::{activity, at, command, event, line, step};

pub async fn commit_steps_writes_session_timeline_outbox_and_activities(store: Arc<dyn Store>) {
    store.ingest(&[event("e1", "s1"), event("e2", "s2")]).await.expect("ingest");
    let seqs: Vec<i64> = store.pending_events(10).await.expect("pending").iter().map(|p| p.seq).collect();
    let timeline = vec![line(1, EntryKind::Event, "call started"), line(2, EntryKind::Decision, "new record")];
    let s1 = StepCommit {
        event_seqs: vec![seqs[0]],
        session: r#"{"state":"one"}"#.into(),
        lane: Some("lane-1".into()),
        account: Some(("key:acct".into(), true)),
        record: Some(("rec_9".into(), false)),
        created_at: Some(at(1)),
        timeline: timeline.clone(),
        commands: vec![command("w1", "lane-1", "s1", &["phone:+15550001"])],
        activities: vec![activity("s1", "missed", None, 1)],
        agent_id: Some("agent-1".into()),
        ..step("s1")
    };
    let s2 = StepCommit { event_seqs: vec![seqs[1]], ..step("s2") };
    store.commit_steps(vec![s1, s2]).await.expect("commit");

    let row = store.load_session("s1").await.expect("load").expect("stored");
    assert_eq!(row.body, r#"{"state":"one"}"#);
    assert_eq!(row.account_id, None, "a key without a CRM id yet");
    assert_eq!(row.record_id.as_deref(), Some("rec_9"));
    assert!(store.load_session("s2").await.expect("load").is_some());
    assert!(store.load_session("nope").await.expect("load").is_none());
    assert_eq!(store.timeline("s1").await.expect("timeline"), timeline);
    assert!(store.timeline("s2").await.expect("timeline").is_empty());
    let pending = store.list_commands(OutboxState::Pending, 10).await.expect("list");
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].key.as_str(), pending[0].lane.as_str()), ("w1", "lane-1"));
    assert_eq!((pending[0].attempts, pending[0].state), (0, OutboxState::Pending));
    assert_eq!(pending[0].op, r#"{"op":"w1"}"#);
    let f = ActivityFilter { session_id: Some("s1".into()), ..Default::default() };
    let acts = store.activities(&f).await.expect("activities");
    assert_eq!(acts.len(), 1);
    assert_eq!((acts[0].kind.as_str(), acts[0].revision), ("missed", 1));
    assert_eq!(store.pending_event_count().await.expect("count"), 0);
    assert!(store.agent_busy("agent-1").await.expect("busy"));
}

pub async fn a_later_step_replaces_the_session_and_extends_the_timeline(store: Arc<dyn Store>) {
    let first = StepCommit {
        timeline: vec![line(1, EntryKind::Event, "one")],
        commands: vec![command("w1", "l", "s1", &[])],
        activities: vec![activity("s1", "missed", None, 1)],
        ..step("s1")
    };
    store.commit_steps(vec![first.clone()]).await.expect("commit");
    // Replayed writes and activity lines are already there: nothing is duplicated.
    let second =
        StepCommit { session: r#"{"state":"two"}"#.into(), timeline: vec![line(2, EntryKind::Crm, "two")], ..first };
    store.commit_steps(vec![second]).await.expect("commit");
    let row = store.load_session("s1").await.expect("load").expect("stored");
    assert_eq!(row.body, r#"{"state":"two"}"#);
    let summaries: Vec<String> = store.timeline("s1").await.expect("timeline").into_iter().map(|e| e.summary).collect();
    assert_eq!(summaries, ["one", "two"]);
    assert_eq!(store.list_commands(OutboxState::Pending, 10).await.expect("list").len(), 1);
    let f = ActivityFilter { session_id: Some("s1".into()), ..Default::default() };
    let acts = store.activities(&f).await.expect("activities");
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].revision, 1);
}

pub async fn sessions_by_account_pages_newest_first(store: Arc<dyn Store>) {
    let on = |id: &str, account: &str, secs: i64| StepCommit {
        account: Some((account.into(), false)),
        created_at: Some(at(secs)),
        ..step(id)
    };
    let steps = vec![on("s1", "A", 1), on("s2a", "A", 2), on("s2b", "A", 2), on("s3", "A", 3), on("x", "B", 4)];
    store.commit_steps(steps).await.expect("commit");
    let ids = |page: &[(String, casebridge_store::SessionRow)]| -> Vec<String> {
        page.iter()
            .map(|(_, r)| {
                let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
                v["id"].as_str().expect("id").to_string()
            })
            .collect()
    };
    let p1 = store.sessions_by_account("A", 2, None).await.expect("page 1");
    assert_eq!(ids(&p1), ["s3", "s2b"]);
    assert!(p1.iter().all(|(_, r)| r.account_id.as_deref() == Some("A")));
    let p2 = store.sessions_by_account("A", 2, Some(&p1[1].0)).await.expect("page 2");
    assert_eq!(ids(&p2), ["s2a", "s1"]);
    let p3 = store.sessions_by_account("A", 2, Some(&p2[1].0)).await.expect("page 3");
    assert!(p3.is_empty());
    assert_eq!(ids(&store.sessions_by_account("A", 10, None).await.expect("all")).len(), 4);
    assert!(store.sessions_by_account("C", 10, None).await.expect("none").is_empty());
}

pub async fn session_settled_waits_for_events_and_first_attempts(store: Arc<dyn Store>) {
    assert!(store.session_settled("s1").await.expect("settled"), "an unknown session has nothing to wait for");
    store.ingest(&[event("e1", "s1")]).await.expect("ingest");
    assert!(!store.session_settled("s1").await.expect("settled"), "an event to apply");
    let seq = store.pending_events(1).await.expect("pending")[0].seq;
    let s = StepCommit { event_seqs: vec![seq], commands: vec![command("w1", "l", "s1", &[])], ..step("s1") };
    store.commit_steps(vec![s]).await.expect("commit");
    assert!(!store.session_settled("s1").await.expect("settled"), "a write not attempted yet");
    assert!(store.session_settled("s2").await.expect("settled"));
    let row = store.claim_commands(Utc::now() + chrono::Duration::seconds(1), 1).await.expect("claim").remove(0);
    store.park_command(&row, "refused", line(3, EntryKind::Crm, "parked")).await.expect("park");
    assert!(store.session_settled("s1").await.expect("settled"));
}
