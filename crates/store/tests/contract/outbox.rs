//! Cases of [`OutboxStore`]: lanes, due times, completion, retries, dead letters.

use std::collections::BTreeMap;
use std::sync::Arc;

use casebridge_rules::model::EntryKind;
use casebridge_store::{OutboxRow, OutboxState, StepCommit, Store};
use chrono::{DateTime, Utc};

use crate::support::{command, enqueue, line, step};

fn soon() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(1)
}

fn keys(rows: &[OutboxRow]) -> Vec<&str> {
    rows.iter().map(|r| r.key.as_str()).collect()
}

async fn claim_one(store: &dyn Store, key: &str) -> OutboxRow {
    let rows = crate::support::claim(store, soon(), 100).await;
    rows.into_iter().find(|r| r.key == key).unwrap_or_else(|| panic!("{key} is not claimable"))
}

pub async fn keys_busy_while_a_write_is_pending(store: Arc<dyn Store>) {
    let phone = vec!["phone:+15550001".to_string()];
    assert!(!store.keys_busy(&phone).await.expect("busy"));
    enqueue(store.as_ref(), "s1", vec![command("w1", "l1", "s1", &["phone:+15550001", "user:u1"])]).await;
    enqueue(store.as_ref(), "s2", vec![command("w2", "l2", "s2", &["email:a@x.com"])]).await;
    assert!(store.keys_busy(&phone).await.expect("busy"));
    assert!(store.keys_busy(&["other".into(), "user:u1".into()]).await.expect("busy"), "any key counts");
    assert!(!store.keys_busy(&["other".into()]).await.expect("busy"));
    assert!(!store.keys_busy(&[]).await.expect("busy"));
    let w1 = claim_one(store.as_ref(), "w1").await;
    store.retry_command(&w1, "timeout", Utc::now(), None).await.expect("retry");
    assert!(store.keys_busy(&phone).await.expect("busy"), "a retried write is still pending");
    store.complete_command(&w1, line(1, EntryKind::Crm, "done"), None).await.expect("complete");
    assert!(!store.keys_busy(&phone).await.expect("busy"), "completed");
    let email = vec!["email:a@x.com".to_string()];
    let w2 = claim_one(store.as_ref(), "w2").await;
    store.park_command(&w2, "refused", line(1, EntryKind::Crm, "parked")).await.expect("park");
    assert!(!store.keys_busy(&email).await.expect("busy"), "parked");
}

pub async fn claim_returns_the_first_due_row_of_each_lane(store: Arc<dyn Store>) {
    let cmds = vec![command("a1", "A", "s1", &[]), command("a2", "A", "s1", &[]), command("b1", "B", "s2", &[])];
    enqueue(store.as_ref(), "s1", cmds).await;
    let past = Utc::now() - chrono::Duration::hours(1);
    assert!(crate::support::claim(&*store, past, 10).await.is_empty(), "nothing is due yet");
    let rows = crate::support::claim(&*store, soon(), 10).await;
    assert_eq!(keys(&rows), ["a1", "b1"]);
    assert!(rows.iter().all(|r| r.state == OutboxState::Pending && r.attempts == 0));
    let again = crate::support::claim(&*store, soon(), 1).await;
    assert_eq!(keys(&again), ["a1"]);
    let stale = store.complete_command(&rows[0], line(1, EntryKind::Crm, "a1 done"), None).await;
    assert!(stale.is_err(), "claimed again since: the first claim's outcome is refused");
    store.complete_command(&again[0], line(1, EntryKind::Crm, "a1 done"), None).await.expect("complete");
    assert_eq!(keys(&crate::support::claim(&*store, soon(), 10).await), ["a2", "b1"]);
}

pub async fn lanes_are_claimed_with_their_batches(store: Arc<dyn Store>) {
    let cmds = vec![
        command("a1", "A", "s1", &[]),
        command("a2", "A", "s1", &[]),
        command("a3", "A", "s1", &[]),
        command("b1", "B", "s2", &[]),
    ];
    enqueue(store.as_ref(), "s1", cmds).await;
    let lanes = store.claim_lanes("n1", soon(), 10, 2, 60_000).await.expect("claim");
    let got: Vec<Vec<&str>> = lanes.iter().map(|l| keys(l)).collect();
    assert_eq!(got, [vec!["a1", "a2"], vec!["b1"]], "each head with at most batch - 1 rows after it");
    assert!(store.claim_lanes("n2", soon(), 10, 2, 60_000).await.expect("claim").is_empty(), "all leased");
    // The rows leased with a head are the node's: their outcomes are recorded under that lease.
    let done = |row: &OutboxRow| casebridge_store::Completed {
        row: row.clone(),
        line: line(1, EntryKind::Crm, &format!("{} done", row.key)),
        created: None,
    };
    store.retry_command(&lanes[0][1], "timeout", Utc::now(), None).await.expect("retry a2");
    store.release_commands(&[lanes[0][0].clone(), lanes[1][0].clone()]).await.expect("release");
    let next = store.claim_lanes("n2", soon(), 10, 24, 60_000).await.expect("claim");
    let got: Vec<Vec<&str>> = next.iter().map(|l| keys(l)).collect();
    assert_eq!(got, [vec!["a1"], vec!["b1"]], "a tried row waits for its own turn");
    store.complete_commands(&[done(&next[0][0]), done(&next[1][0])]).await.expect("complete");
    let last = store.claim_lanes("n1", soon(), 10, 24, 60_000).await.expect("claim");
    let got: Vec<Vec<&str>> = last.iter().map(|l| keys(l)).collect();
    assert_eq!(got, [vec!["a2", "a3"]], "a tried row leads its own batch");
}

pub async fn outcomes_recorded_at_once_are_fenced_per_lane(store: Arc<dyn Store>) {
    let lanes: Vec<String> = (0..8).map(|i| format!("L{i}")).collect();
    let cmds = lanes.iter().map(|l| command(&format!("{l}-w"), l, "s1", &[])).collect();
    enqueue(store.as_ref(), "s1", cmds).await;
    let claimed = store.claim_lanes("n1", soon(), 100, 24, 60_000).await.expect("claim");
    assert_eq!(claimed.len(), 8);
    // Lanes finish together (one may be recorded in another's commit); one lane's lease was
    // taken over meanwhile: only that lane's outcome is refused.
    let tasks: Vec<_> = claimed
        .iter()
        .enumerate()
        .map(|(i, lane)| {
            let store = store.clone();
            let mut row = lane[0].clone();
            if i == 3 {
                row.fence += 1000;
            }
            tokio::spawn(async move {
                let line = line(1, EntryKind::Crm, &format!("{} done", row.key));
                store.complete_commands(&[casebridge_store::Completed { row, line, created: None }]).await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.expect("task");
        if i == 3 {
            assert!(matches!(r, Err(casebridge_store::StoreError::Fenced(_))), "{r:?}");
        } else {
            r.expect("recorded");
        }
    }
    for (i, l) in lanes.iter().enumerate() {
        let want = if i == 3 { OutboxState::Pending } else { OutboxState::Done };
        let got = store.command_state(&format!("{l}-w")).await.expect("state").map(|s| s.0);
        assert_eq!(got, Some(want), "{l}");
    }
    assert_eq!(store.timeline("s1").await.expect("timeline").len(), 7);
}

pub async fn a_batch_of_outcomes_is_recorded_whole_or_not_at_all(store: Arc<dyn Store>) {
    let s = StepCommit {
        account: Some(("key:acct".into(), true)),
        commands: vec![
            command("create-acct", "l", "s1", &["phone:+15550001"]),
            command("note", "l", "s1", &["phone:+15550001"]),
        ],
        ..step("s1")
    };
    store.commit_steps(vec![s]).await.expect("commit");
    enqueue(store.as_ref(), "s2", vec![command("other", "l2", "s2", &[])]).await;
    let first = claim_one(store.as_ref(), "create-acct").await;
    let second = store.lane_batch("test", &first, 10, 60_000).await.expect("batch").remove(0);
    let other = claim_one(store.as_ref(), "other").await;
    let done = |row: &OutboxRow, n: i64, created: Option<(&str, &str)>| casebridge_store::Completed {
        row: row.clone(),
        line: line(n, EntryKind::Crm, &format!("{} done", row.key)),
        created: created.map(|(k, id)| (k.to_string(), id.to_string())),
    };
    // One outcome under a fence that is no longer the row's: nothing of the batch is kept.
    let stale = OutboxRow { fence: other.fence + 1000, ..other.clone() };
    let refused =
        store.complete_commands(&[done(&first, 1, Some(("key:acct", "acct_1"))), done(&stale, 2, None)]).await;
    assert!(matches!(refused, Err(casebridge_store::StoreError::Fenced(_))), "{refused:?}");
    assert_eq!(store.ref_get("key:acct").await.expect("ref"), None);
    assert_eq!(store.command_state("create-acct").await.expect("state"), Some((OutboxState::Pending, 0, None)));
    assert!(store.timeline("s1").await.expect("timeline").is_empty());

    store
        .complete_commands(&[
            done(&first, 1, Some(("key:acct", "acct_1"))),
            done(&second, 2, None),
            done(&other, 3, None),
        ])
        .await
        .expect("complete");
    for key in ["create-acct", "note", "other"] {
        assert_eq!(store.command_state(key).await.expect("state"), Some((OutboxState::Done, 1, None)), "{key}");
    }
    assert_eq!(store.ref_get("key:acct").await.expect("ref").as_deref(), Some("acct_1"));
    let session = store.load_session("s1").await.expect("load").expect("stored");
    assert_eq!(session.account_id.as_deref(), Some("acct_1"));
    let summaries: Vec<String> = store.timeline("s1").await.expect("timeline").into_iter().map(|e| e.summary).collect();
    assert_eq!(summaries, ["create-acct done", "note done"]);
    assert!(!store.keys_busy(&["phone:+15550001".into()]).await.expect("busy"));
}

pub async fn a_batch_of_outcomes_resolves_every_session_of_its_keys(store: Arc<dyn Store>) {
    // Three sessions of one customer: one account key, two of them on one record key.
    let of = |id: &str, record: &str, cmds| StepCommit {
        account: Some(("key:acct".into(), true)),
        record: Some((record.into(), true)),
        commands: cmds,
        ..step(id)
    };
    let creates = vec![command("create-acct", "l", "s3", &[]), command("create-rec", "l", "s3", &[])];
    let steps = vec![of("s3", "key:rec", creates), of("s1", "key:rec", vec![]), of("s2", "key:other", vec![])];
    store.commit_steps(steps).await.expect("commit");
    let lanes = store.claim_lanes("node-a", soon(), 10, 10, 60_000).await.expect("claim");
    let rows = lanes.into_iter().next().expect("a lane");
    assert_eq!(keys(&rows), ["create-acct", "create-rec"], "one lane, claimed together");
    let done: Vec<casebridge_store::Completed> = rows
        .into_iter()
        .zip([("key:acct", "acct_7"), ("key:rec", "rec_9")])
        .map(|(row, (k, id))| casebridge_store::Completed {
            row,
            line: line(5, EntryKind::Crm, "created"),
            created: Some((k.into(), id.into())),
        })
        .collect();
    store.complete_commands(&done).await.expect("complete");
    for (id, record) in [("s1", Some("rec_9")), ("s2", None), ("s3", Some("rec_9"))] {
        let s = store.load_session(id).await.expect("load").expect("stored");
        assert_eq!(s.account_id.as_deref(), Some("acct_7"), "{id}'s account");
        assert_eq!(s.record_id.as_deref(), record, "{id}'s record");
    }
    assert_eq!(store.ref_get("key:rec").await.expect("ref").as_deref(), Some("rec_9"));
    assert_eq!(store.ref_get("key:other").await.expect("ref"), None);
}

pub async fn complete_with_a_created_ref_answers_ref_get(store: Arc<dyn Store>) {
    let s = StepCommit {
        account: Some(("key:acct".into(), true)),
        record: Some(("key:rec".into(), true)),
        commands: vec![command("create-acct", "l", "s1", &[])],
        ..step("s1")
    };
    store.commit_steps(vec![s]).await.expect("commit");
    assert_eq!(store.ref_get("key:acct").await.expect("ref"), None);
    let row = claim_one(store.as_ref(), "create-acct").await;
    let done = line(5, EntryKind::Crm, "account created");
    store.complete_command(&row, done.clone(), Some(("key:acct", "acct_7"))).await.expect("complete");
    assert_eq!(store.ref_get("key:acct").await.expect("ref").as_deref(), Some("acct_7"));
    assert_eq!(store.ref_get("key:rec").await.expect("ref"), None);
    let session = store.load_session("s1").await.expect("load").expect("stored");
    assert_eq!(session.account_id.as_deref(), Some("acct_7"), "the session resolves the key");
    assert_eq!(session.record_id, None);
    assert_eq!(store.timeline("s1").await.expect("timeline"), [done]);
    assert_eq!(store.command_state("create-acct").await.expect("state"), Some((OutboxState::Done, 1, None)));
    // A later step naming the key finds the CRM id at once.
    let s = StepCommit { account: Some(("key:acct".into(), true)), ..step("s2") };
    store.commit_steps(vec![s]).await.expect("commit");
    let s2 = store.load_session("s2").await.expect("load").expect("stored");
    assert_eq!(s2.account_id.as_deref(), Some("acct_7"));
}

pub async fn retry_schedules_the_next_attempt(store: Arc<dyn Store>) {
    enqueue(store.as_ref(), "s1", vec![command("a1", "A", "s1", &[]), command("a2", "A", "s1", &[])]).await;
    enqueue(store.as_ref(), "s2", vec![command("b1", "B", "s2", &[])]).await;
    let a1 = claim_one(store.as_ref(), "a1").await;
    let next = Utc::now() + chrono::Duration::hours(1);
    let note = line(2, EntryKind::Crm, "retrying");
    store.retry_command(&a1, "503", next, Some(note.clone())).await.expect("retry");
    assert_eq!(keys(&crate::support::claim(&*store, soon(), 10).await), ["b1"], "lane A waits for a1");
    let later = crate::support::claim(&*store, next + chrono::Duration::seconds(1), 10).await;
    assert_eq!(keys(&later), ["a1", "b1"]);
    assert_eq!((later[0].attempts, later[0].last_error.as_deref()), (1, Some("503")));
    assert_eq!(store.command_state("a1").await.expect("state"), Some((OutboxState::Pending, 1, Some("503".into()))));
    assert_eq!(store.timeline("s1").await.expect("timeline"), [note]);
    store.retry_command(&later[0], "504", Utc::now(), None).await.expect("retry");
    assert_eq!(store.command_state("a1").await.expect("state"), Some((OutboxState::Pending, 2, Some("504".into()))));
    assert_eq!(store.timeline("s1").await.expect("timeline").len(), 1, "no line asked for");
}

pub async fn park_lists_as_dead_and_redrive_puts_back(store: Arc<dyn Store>) {
    enqueue(store.as_ref(), "s1", vec![command("a1", "A", "s1", &[]), command("a2", "A", "s1", &[])]).await;
    let a1 = claim_one(store.as_ref(), "a1").await;
    store.park_command(&a1, "400 bad field", line(1, EntryKind::Crm, "parked")).await.expect("park");
    let dead = store.list_commands(OutboxState::Dead, 10).await.expect("list");
    assert_eq!(keys(&dead), ["a1"]);
    assert_eq!((dead[0].state, dead[0].attempts), (OutboxState::Dead, 1));
    assert_eq!(dead[0].last_error.as_deref(), Some("400 bad field"));
    assert_eq!(keys(&store.list_commands(OutboxState::Pending, 10).await.expect("list")), ["a2"]);
    assert_eq!(keys(&crate::support::claim(&*store, soon(), 10).await), ["a2"], "a dead letter frees its lane");

    assert!(store.redrive_command(dead[0].id).await.expect("redrive"));
    assert!(!store.redrive_command(dead[0].id).await.expect("redrive"), "no longer a dead letter");
    assert!(!store.redrive_command(dead[0].id + 1000).await.expect("redrive"), "unknown id");
    assert!(store.list_commands(OutboxState::Dead, 10).await.expect("list").is_empty());
    assert_eq!(store.command_state("a1").await.expect("state").map(|s| s.0), Some(OutboxState::Pending));
    assert_eq!(keys(&crate::support::claim(&*store, soon(), 10).await), ["a1"], "back first in its lane");
    assert_eq!(keys(&store.list_commands(OutboxState::Pending, 1).await.expect("list")), ["a1"]);
}

pub async fn outbox_counts_by_state(store: Arc<dyn Store>) {
    assert!(store.outbox_counts().await.expect("counts").is_empty());
    let cmds = vec![command("a", "A", "s", &[]), command("b", "B", "s", &[]), command("c", "C", "s", &[])];
    enqueue(store.as_ref(), "s", [cmds, vec![command("d", "D", "s", &[])]].concat()).await;
    let a = claim_one(store.as_ref(), "a").await;
    store.complete_command(&a, line(1, EntryKind::Crm, "done"), None).await.expect("complete");
    let b = claim_one(store.as_ref(), "b").await;
    store.park_command(&b, "no", line(1, EntryKind::Crm, "parked")).await.expect("park");
    let counts: BTreeMap<OutboxState, i64> = store.outbox_counts().await.expect("counts").into_iter().collect();
    let want = BTreeMap::from([(OutboxState::Pending, 2), (OutboxState::Done, 1), (OutboxState::Dead, 1)]);
    assert_eq!(counts, want);
    // Each state lists its own rows, oldest first.
    let listed = |state| {
        let store = store.clone();
        async move { store.list_commands(state, 10).await.expect("list").into_iter().map(|r| r.key).collect::<Vec<_>>() }
    };
    assert_eq!(listed(OutboxState::Pending).await, ["c", "d"]);
    assert_eq!(listed(OutboxState::Done).await, ["a"]);
    assert_eq!(listed(OutboxState::Dead).await, ["b"]);
    // Back in line: the count follows, and a state left without rows is left out.
    assert!(store.redrive_command(b.id).await.expect("redrive"));
    let counts: BTreeMap<OutboxState, i64> = store.outbox_counts().await.expect("counts").into_iter().collect();
    assert_eq!(counts, BTreeMap::from([(OutboxState::Pending, 3), (OutboxState::Done, 1)]));
}

pub async fn command_state_and_commands_settled(store: Arc<dyn Store>) {
    assert_eq!(store.command_state("w1").await.expect("state"), None);
    assert!(store.commands_settled(&[]).await.expect("settled"));
    enqueue(store.as_ref(), "s1", vec![command("w1", "A", "s1", &[]), command("w2", "B", "s1", &[])]).await;
    assert_eq!(store.command_state("w1").await.expect("state"), Some((OutboxState::Pending, 0, None)));
    let both = vec!["w1".to_string(), "w2".to_string()];
    assert!(!store.commands_settled(&both).await.expect("settled"));
    let w1 = claim_one(store.as_ref(), "w1").await;
    store.complete_command(&w1, line(1, EntryKind::Crm, "done"), None).await.expect("complete");
    assert!(store.commands_settled(&both[..1]).await.expect("settled"));
    assert!(!store.commands_settled(&both).await.expect("settled"), "w2 not attempted");
    let w2 = claim_one(store.as_ref(), "w2").await;
    store.park_command(&w2, "gone", line(1, EntryKind::Crm, "parked")).await.expect("park");
    assert!(store.commands_settled(&both).await.expect("settled"));
    assert_eq!(store.command_state("w2").await.expect("state"), Some((OutboxState::Dead, 1, Some("gone".into()))));
    assert!(store.commands_settled(&["unknown".into()]).await.expect("settled"), "no such write to wait for");
}

pub async fn lane_pending_until_its_writes_are_delivered(store: Arc<dyn Store>) {
    assert!(!store.lane_pending("L").await.expect("lane"));
    enqueue(store.as_ref(), "s1", vec![command("l1", "L", "s1", &["phone:+15550002"])]).await;
    assert!(store.lane_pending("L").await.expect("lane"));
    assert!(!store.lane_pending("M").await.expect("lane"), "another lane");
    let row = claim_one(store.as_ref(), "l1").await;
    assert!(store.lane_pending("L").await.expect("lane"), "leased is still pending");
    store.complete_command(&row, line(1, EntryKind::Crm, "done"), None).await.expect("complete");
    assert!(!store.lane_pending("L").await.expect("lane"), "delivered");
}

pub async fn a_write_delivered_with_its_step_is_stored_done(store: Arc<dyn Store>) {
    if !store.one_writer() {
        // Only a store of one writer shares the CRM's writes' transaction with the step's.
        return;
    }
    let mut cmd = command("d1", "D", "s1", &["phone:+15550003"]);
    cmd.done = Some(line(2, EntryKind::Crm, "written with its step"));
    enqueue(store.as_ref(), "s1", vec![cmd]).await;
    assert!(!store.lane_pending("D").await.expect("lane"));
    assert!(!store.keys_busy(&["phone:+15550003".into()]).await.expect("busy"), "no customer keys kept");
    assert!(crate::support::claim(&*store, soon(), 10).await.is_empty(), "nothing to deliver");
    let done = store.list_commands(OutboxState::Done, 10).await.expect("list");
    assert_eq!(keys(&done), ["d1"]);
    assert_eq!(done[0].attempts, 1);
    let counts: BTreeMap<OutboxState, i64> = store.outbox_counts().await.expect("counts").into_iter().collect();
    assert_eq!(counts.get(&OutboxState::Done), Some(&1));
    assert_eq!(counts.get(&OutboxState::Pending), None);
    let timeline = store.timeline("s1").await.expect("timeline");
    assert!(timeline.iter().any(|e| e.summary == "written with its step"), "{timeline:?}");
}
