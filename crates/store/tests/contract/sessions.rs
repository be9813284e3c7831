//! Cases of [`SessionStore`]: step commits, timelines, paging, settledness.

use std::sync::Arc;

use casebridge_rules::model::EntryKind;
use casebridge_store::agents::ActivityFilter;
use casebridge_store::{NewEvent, OutboxState, SessionFilter, SessionGauges, StepCommit, Store};
use chrono::Utc;

use crate::support::{activity, at, command, event, line, step};

pub async fn commit_steps_writes_session_timeline_outbox_and_activities(store: Arc<dyn Store>) {
    store.ingest(&[event("e1", "s1"), event("e2", "s2")]).await.expect("ingest");
    let seqs: Vec<i64> = store.pending_events(None, 10).await.expect("pending").iter().map(|p| p.seq).collect();
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

pub async fn load_sessions_reads_the_stored_ones_at_once(store: Arc<dyn Store>) {
    assert!(store.load_sessions(&[]).await.expect("none asked").is_empty());
    let one = StepCommit { session: r#"{"state":"one"}"#.into(), ..step("s1") };
    let two = StepCommit { session: r#"{"state":"two"}"#.into(), ..step("s2") };
    store.commit_steps(vec![one, two]).await.expect("commit");
    let got = store.load_sessions(&["s2", "nope", "s1"]).await.expect("load");
    assert_eq!(got.len(), 2, "only stored sessions are answered: {got:?}");
    assert_eq!(got.get("s1").map(String::as_str), Some(r#"{"state":"one"}"#));
    assert_eq!(got.get("s2").map(String::as_str), Some(r#"{"state":"two"}"#));
    let again = StepCommit { session: r#"{"state":"three"}"#.into(), ..step("s1") };
    store.commit_steps(vec![again]).await.expect("commit");
    let got = store.load_sessions(&["s1"]).await.expect("load");
    assert_eq!(got.get("s1").map(String::as_str), Some(r#"{"state":"three"}"#), "the latest state");
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

pub async fn steps_of_one_session_in_one_commit_apply_in_order(store: Arc<dyn Store>) {
    let a1 = StepCommit {
        session: body("sa", "waiting", "pending", None),
        first_at: Some(at(5)),
        timeline: vec![line(5, EntryKind::Event, "a one")],
        commands: vec![command("wa1", "lane-a", "sa", &["phone:+15550001"])],
        ..step("sa")
    };
    let b1 = StepCommit {
        timeline: vec![line(6, EntryKind::Event, "b one")],
        commands: vec![command("wb1", "lane-b", "sb", &[])],
        ..step("sb")
    };
    let a2 = StepCommit {
        session: body("sa", "created", "pending", None),
        first_at: Some(at(3)),
        timeline: vec![line(3, EntryKind::Event, "a two"), line(3, EntryKind::Decision, "a two decided")],
        commands: vec![command("wa2", "lane-a", "sa", &["phone:+15550001", "account:x"])],
        ..step("sa")
    };
    let last = body("sa", "connected", "created", None);
    let a3 = StepCommit { session: last.clone(), first_at: Some(at(9)), ..step("sa") };
    store.commit_steps(vec![a1, b1, a2, a3]).await.expect("commit");

    let row = store.load_session("sa").await.expect("load").expect("stored");
    assert_eq!(row.body, last, "the last step's session wins");
    let f = SessionFilter { from: Some(at(2)), to: Some(at(4)), limit: 10, ..Default::default() };
    assert_eq!(listed(&store.list_sessions(&f).await.expect("list")), ["sa"], "it starts at its steps' earliest event");
    let summaries: Vec<String> = store.timeline("sa").await.expect("timeline").into_iter().map(|e| e.summary).collect();
    assert_eq!(summaries, ["a one", "a two", "a two decided"]);
    let keys: Vec<String> =
        store.list_commands(OutboxState::Pending, 10).await.expect("list").into_iter().map(|c| c.key).collect();
    assert_eq!(keys, ["wa1", "wb1", "wa2"], "writes keep the order of their steps");
    assert!(store.keys_busy(&["account:x".into()]).await.expect("busy"));
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
    let seq = store.pending_events(None, 1).await.expect("pending")[0].seq;
    let s = StepCommit { event_seqs: vec![seq], commands: vec![command("w1", "l", "s1", &[])], ..step("s1") };
    store.commit_steps(vec![s]).await.expect("commit");
    assert!(!store.session_settled("s1").await.expect("settled"), "a write not attempted yet");
    assert!(store.session_settled("s2").await.expect("settled"));
    let row = crate::support::claim(&*store, Utc::now() + chrono::Duration::seconds(1), 1).await.remove(0);
    store.park_command(&row, "refused", line(3, EntryKind::Crm, "parked")).await.expect("park");
    assert!(store.session_settled("s1").await.expect("settled"));
}

/// A session body as the rules write it, with the fields the list filters on.
fn body(id: &str, phase: &str, outcome: &str, phone: Option<&str>) -> String {
    let phone = phone.map(|p| serde_json::json!({"number": p, "parsed": true}));
    serde_json::json!({"id": id, "phase": phase, "record_outcome": outcome, "phone": phone}).to_string()
}

fn listed(page: &[(String, casebridge_store::SessionRow)]) -> Vec<String> {
    page.iter()
        .map(|(_, r)| {
            let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
            v["id"].as_str().expect("id").to_string()
        })
        .collect()
}

pub async fn list_sessions_filters_and_pages_newest_first(store: Arc<dyn Store>) {
    let on = |id: &str, phase: &str, outcome: &str, phone: Option<&str>, account: Option<&str>, secs: i64| StepCommit {
        session: body(id, phase, outcome, phone),
        account: account.map(|a| (a.to_string(), false)),
        created_at: Some(at(secs)),
        ..step(id)
    };
    let steps = vec![
        on("s1", "ended", "created", Some("+15550001"), Some("A"), 10),
        on("s2", "ended", "appended", Some("+15550001"), Some("A"), 20),
        on("s3", "connected", "pending", Some("+15550002"), None, 30),
        on("s4", "abandoned", "none", None, Some("B"), 40),
    ];
    store.commit_steps(steps).await.expect("commit");
    let list = |f: SessionFilter| {
        let store = store.clone();
        async move { listed(&store.list_sessions(&SessionFilter { limit: 10, ..f }).await.expect("list")) }
    };
    assert_eq!(list(SessionFilter::default()).await, ["s4", "s3", "s2", "s1"]);
    assert_eq!(list(SessionFilter { phase: Some("ended".into()), ..Default::default() }).await, ["s2", "s1"]);
    assert_eq!(list(SessionFilter { record_outcome: Some("none".into()), ..Default::default() }).await, ["s4"]);
    assert_eq!(list(SessionFilter { account_id: Some("A".into()), ..Default::default() }).await, ["s2", "s1"]);
    assert_eq!(list(SessionFilter { phone: Some("+15550001".into()), ..Default::default() }).await, ["s2", "s1"]);
    let window = SessionFilter { from: Some(at(20)), to: Some(at(40)), ..Default::default() };
    assert_eq!(list(window).await, ["s3", "s2"], "from is included, to is not");
    let both = SessionFilter { phase: Some("ended".into()), phone: Some("+15550002".into()), ..Default::default() };
    assert!(list(both).await.is_empty(), "every filter must hold");

    let p1 = store.list_sessions(&SessionFilter { limit: 3, ..Default::default() }).await.expect("page 1");
    assert_eq!(listed(&p1), ["s4", "s3", "s2"]);
    let f2 = SessionFilter { limit: 3, cursor: Some(p1[2].0.clone()), ..Default::default() };
    let p2 = store.list_sessions(&f2).await.expect("page 2");
    assert_eq!(listed(&p2), ["s1"]);
}

pub async fn each_rewrite_of_a_session_keeps_its_filters_in_step(store: Arc<dyn Store>) {
    let list = |f: SessionFilter| {
        let store = store.clone();
        async move { listed(&store.list_sessions(&SessionFilter { limit: 10, ..f }).await.expect("list")) }
    };
    let phase = |p: &str| SessionFilter { phase: Some(p.into()), ..Default::default() };
    let phone = |p: &str| SessionFilter { phone: Some(p.into()), ..Default::default() };
    let account = SessionFilter { account_id: Some("acct_1".into()), ..Default::default() };
    let first = StepCommit {
        session: body("s", "connected", "pending", Some("+15550001")),
        account: Some(("key:a".into(), true)),
        created_at: Some(at(10)),
        agent_id: Some("agent-1".into()),
        ..step("s")
    };
    store.commit_steps(vec![first.clone()]).await.expect("commit");
    store.ref_set("key:a", "acct_1").await.expect("resolve the account");
    assert_eq!(list(account.clone()).await, ["s"]);
    // The same columns again (the body alone changes): the resolved account stays.
    let same = StepCommit { session: body("s", "connected", "created", Some("+15550001")), ..first.clone() };
    store.commit_steps(vec![same]).await.expect("commit");
    assert_eq!(list(account.clone()).await, ["s"], "a key already resolved keeps its id");
    assert_eq!(list(phase("connected")).await, ["s"]);
    assert_eq!(store.load_session("s").await.expect("load").expect("stored").account_id.as_deref(), Some("acct_1"));
    assert!(store.agent_busy("agent-1").await.expect("busy"));
    // Phase, phone, agent and the end change: every list follows.
    let ended = StepCommit {
        session: body("s", "ended", "created", Some("+15550002")),
        agent_id: Some("agent-2".into()),
        over: true,
        ..first.clone()
    };
    store.commit_steps(vec![ended]).await.expect("commit");
    assert!(list(phase("connected")).await.is_empty());
    assert_eq!(list(phase("ended")).await, ["s"]);
    assert!(list(phone("+15550001")).await.is_empty());
    assert_eq!(list(phone("+15550002")).await, ["s"]);
    assert!(!store.agent_busy("agent-1").await.expect("busy"));
    assert!(!store.agent_busy("agent-2").await.expect("busy"), "an ended session keeps no agent busy");
    let start = SessionFilter { from: Some(at(10)), to: Some(at(11)), ..Default::default() };
    assert_eq!(list(start).await, ["s"], "its start stays its creation through the rewrites");
    // Another account's key: the old id goes with the old key.
    let moved = StepCommit { account: Some(("key:b".into(), true)), ..first };
    store.commit_steps(vec![moved]).await.expect("commit");
    assert!(list(account).await.is_empty(), "a new key is not resolved yet");
    assert_eq!(store.load_session("s").await.expect("load").expect("stored").account_id, None);
}

pub async fn a_waiting_session_is_listed_by_its_first_event(store: Arc<dyn Store>) {
    let early = NewEvent { at: at(100), event_type: "session.assigned".into(), ..event("w-1", "w") };
    store.ingest(&[early]).await.expect("ingest");
    let seq = store.pending_events(None, 1).await.expect("pending")[0].seq;
    let waiting = StepCommit {
        event_seqs: vec![seq],
        session: body("w", "waiting", "pending", None),
        first_at: Some(at(100)),
        ..step("w")
    };
    let older = StepCommit { session: body("old", "ended", "created", None), created_at: Some(at(50)), ..step("old") };
    store.commit_steps(vec![waiting, older]).await.expect("commit");
    let f = SessionFilter { phase: Some("waiting".into()), limit: 10, ..Default::default() };
    assert_eq!(listed(&store.list_sessions(&f).await.expect("list")), ["w"]);
    let f = SessionFilter { from: Some(at(90)), to: Some(at(110)), limit: 10, ..Default::default() };
    assert_eq!(listed(&store.list_sessions(&f).await.expect("list")), ["w"], "its start is its first event");
    let all = SessionFilter { limit: 10, ..Default::default() };
    assert_eq!(listed(&store.list_sessions(&all).await.expect("list")), ["w", "old"]);
    // A late event that happened earlier moves the start back; a later one does not move it.
    let earlier = StepCommit { session: body("w", "waiting", "pending", None), first_at: Some(at(80)), ..step("w") };
    let later = StepCommit { first_at: Some(at(120)), ..earlier.clone() };
    store.commit_steps(vec![earlier, later]).await.expect("commit");
    let f = SessionFilter { from: Some(at(75)), to: Some(at(85)), limit: 10, ..Default::default() };
    assert_eq!(listed(&store.list_sessions(&f).await.expect("list")), ["w"], "its start is its earliest event");
}

pub async fn session_gauges_count_waiting_and_stuck_sessions(store: Arc<dyn Store>) {
    assert_eq!(store.session_gauges(Utc::now()).await.expect("gauges"), SessionGauges::default());
    store.ingest(&[event("e1", "a"), event("e2", "a"), event("e3", "b")]).await.expect("ingest");
    let waiting = StepCommit { session: body("w", "waiting", "pending", None), ..step("w") };
    store.commit_steps(vec![waiting]).await.expect("commit");
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(store.session_gauges(later).await.expect("gauges"), SessionGauges { waiting: 1, stuck: 2 });
    let earlier = Utc::now() - chrono::Duration::seconds(60);
    assert_eq!(store.session_gauges(earlier).await.expect("gauges").stuck, 0, "received after the cut-off");
}
