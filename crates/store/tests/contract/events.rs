//! Cases of [`EventStore`]: intake, pending events, settledness.

use std::sync::Arc;

use casebridge_store::{IdConflict, IngestOutcome, NewEvent, StepCommit, Store};
use chrono::Utc;

use crate::support::{command, enqueue, event, step};

fn outcome(accepted: u64, duplicates: u64) -> IngestOutcome {
    IngestOutcome::counts(accepted, duplicates)
}

fn conflict(id: &str, session: &str, ty: &str) -> IdConflict {
    IdConflict { id: id.into(), session_id: session.into(), event_type: ty.into() }
}

/// `event(id, session)` with another body (another session, type, time or data).
fn other(id: &str, session: &str, ty: &str, body: &str) -> NewEvent {
    NewEvent { event_type: ty.into(), body: body.into(), ..event(id, session) }
}

pub async fn same_id_same_content_is_a_duplicate(store: Arc<dyn Store>) {
    let a = NewEvent { body: r#"{"id":"e1","data":{"a":1,"b":2}}"#.into(), ..event("e1", "s1") };
    assert_eq!(store.ingest(std::slice::from_ref(&a)).await.expect("ingest"), outcome(1, 0));
    // The same content with members in another order is the same event.
    let reordered = NewEvent { body: r#"{"data":{"b":2,"a":1},"id":"e1"}"#.into(), ..event("e1", "s1") };
    assert_eq!(store.ingest(&[reordered, event("e2", "s1")]).await.expect("ingest"), outcome(1, 1));
    assert_eq!(store.pending_event_count().await.expect("count"), 2);
}

pub async fn same_id_other_content_is_a_conflict_and_stores_nothing(store: Arc<dyn Store>) {
    store.ingest(&[event("e1", "s1")]).await.expect("ingest");
    let batch = [
        event("e2", "s2"),
        event("e1", "s1"),
        other("e1", "s9", "session.ended", r#"{"id":"e1","session_id":"s9"}"#),
        event("e3", "s2"),
    ];
    let out = store.ingest(&batch).await.expect("ingest");
    assert_eq!(
        out,
        IngestOutcome { accepted: 0, duplicates: 0, conflicts: vec![conflict("e1", "s1", "session.created")] }
    );
    assert_eq!(store.pending_event_count().await.expect("count"), 1, "nothing of the batch is stored");
    let pending = store.pending_events(None, 10).await.expect("pending");
    assert_eq!(pending[0].body, r#"{"id":"e1"}"#, "the earlier event is unchanged");
    // Twice in one batch with other content: the first one is the earlier event.
    let twice = [event("e4", "s4"), other("e4", "s4", "session.ended", r#"{"id":"e4","x":1}"#)];
    let out = store.ingest(&twice).await.expect("ingest");
    assert_eq!(out.conflicts, [conflict("e4", "s4", "session.created")]);
    assert_eq!(store.pending_event_count().await.expect("count"), 1);
}

pub async fn a_conflict_leaves_the_other_groups_alone(store: Arc<dyn Store>) {
    store.ingest(&[event("e1", "s1")]).await.expect("ingest");
    let g1 = [event("e2", "s2")];
    let g2 = [event("e3", "s3"), other("e1", "s3", "session.queued", r#"{"id":"e1","s":3}"#)];
    let g3 = [event("e1", "s1"), event("e4", "s4")];
    let out = store.ingest_groups(&[&g1, &g2, &g3]).await.expect("ingest groups");
    assert_eq!(
        out,
        [
            outcome(1, 0),
            IngestOutcome { accepted: 0, duplicates: 0, conflicts: vec![conflict("e1", "s1", "session.created")] },
            outcome(1, 1),
        ]
    );
    let pending = store.pending_events(None, 10).await.expect("pending");
    let sessions: Vec<&str> = pending.iter().map(|p| p.session_id.as_str()).collect();
    assert_eq!(sessions, ["s1", "s2", "s4"], "the conflicting group stored nothing, the others everything");
}

pub async fn intake_is_idempotent(store: Arc<dyn Store>) {
    let (a, b, c) = (event("e1", "s1"), event("e2", "s1"), event("e3", "s2"));
    assert_eq!(store.ingest(&[a.clone(), b.clone()]).await.expect("ingest"), outcome(2, 0));
    assert_eq!(store.ingest(&[a]).await.expect("ingest"), outcome(0, 1));
    assert_eq!(store.ingest(&[b, c]).await.expect("ingest"), outcome(1, 1));
    assert_eq!(store.pending_event_count().await.expect("count"), 3);
}

pub async fn a_batch_is_stored_whole(store: Arc<dyn Store>) {
    let batch = [event("e1", "s1"), event("e2", "s2"), event("e1", "s1"), event("e3", "s1")];
    assert_eq!(store.ingest(&batch).await.expect("ingest"), outcome(3, 1));
    let pending = store.pending_events(None, 10).await.expect("pending");
    let bodies: Vec<&str> = pending.iter().map(|p| p.body.as_str()).collect();
    assert_eq!(bodies, [r#"{"id":"e1"}"#, r#"{"id":"e2"}"#, r#"{"id":"e3"}"#]);
    assert_eq!(store.ingest(&[]).await.expect("empty batch"), outcome(0, 0));
}

pub async fn ingest_groups_counts_each_group(store: Arc<dyn Store>) {
    let g1 = [event("e1", "s1"), event("e2", "s1")];
    let g2 = [event("e2", "s1"), event("e3", "s2")];
    let out = store.ingest_groups(&[&g1, &g2, &[]]).await.expect("ingest groups");
    assert_eq!(out, [outcome(2, 0), outcome(1, 1), outcome(0, 0)]);
    assert_eq!(store.pending_event_count().await.expect("count"), 3);
}

/// Groups of nothing but new events (PostgreSQL stores them in one statement) keep the
/// order they came in, within and across groups; a repeat afterwards is still a duplicate.
pub async fn new_events_of_several_groups_keep_their_order(store: Arc<dyn Store>) {
    let g1 = [event("e9", "s2"), event("e1", "s1")];
    let g2 = [other("e5", "s1", "session.ended", r#"{"id":"e5","n":2}"#)];
    let g3 = [event("e2", "s3"), event("e3", "s1"), event("e0", "s2")];
    let out = store.ingest_groups(&[&g1, &g2, &g3]).await.expect("ingest groups");
    assert_eq!(out, [outcome(2, 0), outcome(1, 0), outcome(3, 0)]);
    let pending = store.pending_events(None, 10).await.expect("pending");
    let got: Vec<(&str, &str)> = pending.iter().map(|p| (p.session_id.as_str(), p.body.as_str())).collect();
    assert_eq!(
        got,
        [
            ("s2", r#"{"id":"e9"}"#),
            ("s1", r#"{"id":"e1"}"#),
            ("s1", r#"{"id":"e5","n":2}"#),
            ("s3", r#"{"id":"e2"}"#),
            ("s1", r#"{"id":"e3"}"#),
            ("s2", r#"{"id":"e0"}"#),
        ]
    );
    assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq), "seq grows with arrival");
    let again = [event("e1", "s1"), event("e4", "s4")];
    assert_eq!(store.ingest(&again).await.expect("ingest"), outcome(1, 1));
    let conflicting = [event("e6", "s6"), other("e5", "s1", "session.ended", r#"{"id":"e5","n":3}"#)];
    let out = store.ingest(&conflicting).await.expect("ingest");
    assert_eq!(out.conflicts, [conflict("e5", "s1", "session.ended")]);
    assert_eq!(store.pending_event_count().await.expect("count"), 7);
}

pub async fn pending_events_come_in_arrival_order_until_applied(store: Arc<dyn Store>) {
    store.ingest(&[event("e1", "s1")]).await.expect("ingest");
    store.ingest(&[event("e2", "s2"), event("e3", "s1")]).await.expect("ingest");
    let all = store.pending_events(None, 10).await.expect("pending");
    let sessions: Vec<&str> = all.iter().map(|p| p.session_id.as_str()).collect();
    assert_eq!(sessions, ["s1", "s2", "s1"]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "seq grows with arrival");
    let first_two = store.pending_events(None, 2).await.expect("pending");
    assert_eq!(first_two.len(), 2);
    assert_eq!(first_two[0].seq, all[0].seq);

    let consumed = vec![all[0].seq, all[2].seq];
    store.commit_steps(vec![StepCommit { event_seqs: consumed, ..step("s1") }]).await.expect("commit");
    let left = store.pending_events(None, 10).await.expect("pending");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, all[1].seq);
    assert_eq!(left[0].body, r#"{"id":"e2"}"#);
    assert_eq!(store.pending_event_count().await.expect("count"), 1);
}

pub async fn settled_waits_for_rules_and_first_attempts(store: Arc<dyn Store>) {
    let ids = vec!["e1".to_string()];
    assert!(!store.settled(&ids).await.expect("settled"), "an unknown event is not settled");
    assert!(store.settled(&[]).await.expect("settled"), "nothing to wait for");
    store.ingest(&[event("e1", "s1")]).await.expect("ingest");
    assert!(!store.settled(&ids).await.expect("settled"), "not applied yet");
    let seq = store.pending_events(None, 1).await.expect("pending")[0].seq;
    store
        .commit_steps(vec![StepCommit {
            event_seqs: vec![seq],
            commands: vec![command("w1", "lane", "s1", &[])],
            ..step("s1")
        }])
        .await
        .expect("commit");
    assert!(!store.settled(&ids).await.expect("settled"), "its session's write is not attempted yet");
    // A write of another session does not hold this one.
    enqueue(store.as_ref(), "s2", vec![command("w2", "other", "s2", &[])]).await;
    let rows = crate::support::claim(&*store, Utc::now() + chrono::Duration::seconds(1), 10).await;
    let w1 = rows.iter().find(|r| r.key == "w1").expect("w1 claimed");
    store.retry_command(w1, "busy", Utc::now(), None).await.expect("retry");
    assert!(store.settled(&ids).await.expect("settled"), "attempted once is settled");
}

pub async fn events_since_lists_bodies_received_after_a_time(store: Arc<dyn Store>) {
    let before = Utc::now() - chrono::Duration::seconds(5);
    store.ingest(&[event("e1", "s1"), event("e2", "s2")]).await.expect("ingest");
    let all = store.events_since(before, 10).await.expect("since");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(store.events_since(before, 1).await.expect("since").len(), 1, "at most limit");
    let later = Utc::now() + chrono::Duration::seconds(5);
    assert!(store.events_since(later, 10).await.expect("since").is_empty());
}

pub async fn pending_events_besides_those_being_committed(store: Arc<dyn Store>) {
    let batch: Vec<_> = (1..=6).map(|n| event(&format!("e{n}"), &format!("s{n}"))).collect();
    store.ingest(&batch).await.expect("ingest");
    let all: Vec<i64> = store.pending_events(None, 10).await.expect("pending").iter().map(|p| p.seq).collect();
    let besides: std::collections::HashSet<i64> = [all[0], all[1], all[3]].into_iter().collect();
    let rest = store.pending_events_besides(None, 2, &besides).await.expect("pending");
    let seqs: Vec<i64> = rest.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [all[2], all[4]], "the oldest others, up to the limit, whatever comes first");
    assert_eq!(rest[0].session_id, "s3");
    let rest = store.pending_events_besides(None, 10, &besides).await.expect("pending");
    assert_eq!(rest.iter().map(|p| p.seq).collect::<Vec<_>>(), [all[2], all[4], all[5]]);
}
