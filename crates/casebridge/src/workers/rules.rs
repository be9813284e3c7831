//! The rules worker: pending events → the pure step (`casebridge_rules::engine`) → decisions,
//! timeline lines and outbox rows, committed in batches.
//!
//! Serialization: one rules worker per node applies the events of its rules shards in
//! arrival order, and a step that needs a lookup waits until no CRM write concerning any of
//! its customer keys is left to deliver, so a lookup always sees what earlier sessions of the
//! same customer wrote. With several nodes, that step also holds its customer keys locked in
//! the database until its outcome is committed, so another node's step for the same customer
//! waits; a commit of events another node applied meanwhile is refused whole (fenced).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use casebridge_rules::ops::CrmOp;
use casebridge_rules::session::Session;
use casebridge_store::StepCommit;
use tokio_util::sync::CancellationToken;

use super::turn::{Stage, Turn};
use crate::pipeline::Pipeline;

mod step;
use step::{Made, make_step};

/// Steps committed together, at most; 128 when some give CRM writes, so that writes reach
/// the CRM soon (fewer, larger commits write fewer pages a session: with 64 the rules fell
/// behind at 2,000 sessions/s offered; 256 was no better than 128, see BENCHMARKS.md).
const STEPS_PER_COMMIT: usize = 256;
const STEPS_PER_COMMIT_WITH_WRITES: usize = 128;
/// After a pass that applied fewer events than this, the worker waits [`GATHER`] before the
/// next one (when events keep coming; an idle worker waits for them as before).
const GATHER_BELOW: usize = 64;
const GATHER: Duration = Duration::from_millis(2);
/// Pending events read by a pass, at most.
const PENDING_READ: i64 = 512;

/// State of one rules pass whose steps are not committed yet.
#[derive(Default)]
struct Pass {
    /// Customer keys locked across nodes until the pass's steps are committed.
    locks: Option<Box<dyn casebridge_store::KeyLocks>>,
    commits: Vec<StepCommit>,
    /// The CRM writes of `commits`' commands, in order, where one may be sent with the commit.
    ops: Vec<Option<CrmOp>>,
    /// Some of `commits` give CRM writes.
    with_writes: bool,
    /// Sessions as this pass's steps left them (committed or not).
    sessions: HashMap<String, Session>,
    /// The stored state of every session the pass's events belong to, read once at its start
    /// (`None`: not stored yet).
    loaded: HashMap<String, Option<String>>,
    /// CRM ids of casebridge's keys read during the pass (an id, once known, stays).
    refs: std::sync::Mutex<HashMap<String, String>>,
    dirty_keys: HashSet<String>,
    /// The commits of the previous batches, oldest first, running while this batch's steps
    /// are made.
    in_flight: std::collections::VecDeque<InFlight>,
    blocked: HashSet<String>,
    /// Agents whose session ended in steps not yet in a batch (held statuses may apply once
    /// their batch is committed).
    freed_agents: Vec<String>,
    /// Agents whose session ended in a committed batch.
    freed_committed: Vec<String>,
    /// Batches known committed during the pass.
    settled: usize,
    /// Where its batches' commits run (the runtime's workers when `None`).
    committer: Option<tokio::runtime::Handle>,
    /// Events of a batch whose commit failed: each is committed alone (see [`Carry`]).
    suspects: HashSet<i64>,
    /// The events of the first batch whose commit failed during the pass (not fenced).
    failed: Option<HashSet<i64>>,
}

/// A batch being committed.
struct InFlight {
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Keys the batch gave new writes to: busy until its commit is known done.
    keys: HashSet<String>,
    /// How far its commit got, for the batch after it.
    stage: tokio::sync::watch::Receiver<Stage>,
    /// Its events: pending in the store until it is committed.
    seqs: HashSet<i64>,
    /// The sessions it changes: newer in memory than in the store until it is committed.
    sessions: HashSet<String>,
    freed_agents: Vec<String>,
}

/// Batches still being committed when a pass ends, carried into the next pass with the
/// sessions they changed, so that the writer need not wait for the next pass's first
/// batch (SQLite, one node: see `turn`).
///
/// Also the events of a batch whose commit failed: the next passes commit each of them alone,
/// so that a step the store keeps refusing holds back its own session (which then waits and
/// retries, as a step whose lookup failed) and not every other one.
#[derive(Default)]
pub struct Carry {
    in_flight: std::collections::VecDeque<InFlight>,
    sessions: HashMap<String, Session>,
    committer: Option<tokio::runtime::Handle>,
    suspects: HashSet<i64>,
}

/// Batches committing at once, at most: two where the store has one writer (the next one
/// queues for it while the one before holds it), else one.
fn commits_in_flight(p: &Pipeline) -> usize {
    if p.store.one_writer() && !p.node.shared { 2 } else { 1 }
}

/// Applies events until cancelled.
pub async fn run(p: Arc<Pipeline>, stop: CancellationToken) {
    let mut carry = Carry::default();
    // Commits with writes that take turns on SQLite's one writer run on a thread of their own.
    let own = (commits_in_flight(&p) > 1).then(super::commit_thread::CommitThread::for_rules).flatten();
    carry.committer = own.as_ref().map(|t| t.handle().clone());
    while !stop.is_cancelled() {
        let progressed = match casebridge_store::as_rules_worker(pass(&p, &mut carry)).await {
            Ok(n) => n,
            Err(e) if crate::pipeline::is_fenced(&e) => {
                tracing::info!(error = %e, "Rules steps dropped: another node applied those events.");
                metrics::counter!("casebridge_lease_fenced_total", "kind" => "rules_step").increment(1);
                0
            }
            Err(e) => {
                tracing::warn!(error = %e, "Rules pass failed; retrying.");
                0
            }
        };
        if progressed > 0 && progressed < GATHER_BELOW {
            // A short pass: let a few more events arrive so that the next one commits more
            // steps at once (a commit rewrites the same index pages whatever it holds).
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(GATHER) => {},
            }
        }
        if progressed == 0 {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = p.events_in.notified() => {},
                _ = tokio::time::sleep(Duration::from_millis(250)) => {},
            }
        }
    }
    // Stopping: the batches still being committed finish rather than be cut off mid-commit.
    let mut last = Pass { in_flight: std::mem::take(&mut carry.in_flight), ..Pass::default() };
    if let Err(e) = settle_in_flight(&mut last).await {
        tracing::warn!(error = %e, "Rules batch not committed at shutdown; its events stay pending.");
    }
    // Only now: the commits settled above may have run on it.
    drop(own);
}

/// Applies what can be applied now; returns how many events were applied.
///
/// Steps are committed in batches; until a batch is committed, the pass reads the sessions
/// it changed from memory and treats keys it gave new writes to as busy. Batches still being
/// committed at the end of a pass that applied events go on into the next (`carry`); a pass
/// that applied none waits for them.
pub async fn pass(p: &Arc<Pipeline>, carry: &mut Carry) -> anyhow::Result<usize> {
    let mut pass = Pass {
        in_flight: std::mem::take(&mut carry.in_flight),
        sessions: std::mem::take(&mut carry.sessions),
        committer: carry.committer.clone(),
        suspects: std::mem::take(&mut carry.suspects),
        ..Pass::default()
    };
    let out = read_and_apply(p, &mut pass).await;
    let carried = matches!(out, Ok(n) if n > 0) && commits_in_flight(p) > 1;
    let committed = if carried { settle_finished(&mut pass).await } else { settle_in_flight(&mut pass).await };
    let mut out = out.and_then(|n| committed.map(|()| n));
    if let Some(mut locks) = pass.locks.take()
        && let Err(e) = locks.release().await
        && out.is_ok()
    {
        out = Err(e.into());
    }
    if out.is_err() {
        // A failed commit fails the batches made on top of it: none is carried over, and
        // none is left running while the next pass reads pending events.
        let _ = settle_in_flight(&mut pass).await;
    }
    carry.suspects = std::mem::take(&mut pass.suspects);
    if let Some(failed) = pass.failed.take() {
        carry.suspects.extend(failed);
    }
    if pass.settled > 0 {
        p.progress.notify_waiters();
    }
    for agent in std::mem::take(&mut pass.freed_committed) {
        if let Err(e) = crate::agents::sessions_over(p, &agent).await {
            tracing::warn!(agent = %agent, error = %e, "Held agent status not applied.");
        }
    }
    let out = out?;
    let live: HashSet<&String> = pass.in_flight.iter().flat_map(|f| f.sessions.iter()).collect();
    pass.sessions.retain(|id, _| live.contains(id));
    carry.sessions = std::mem::take(&mut pass.sessions);
    carry.in_flight = std::mem::take(&mut pass.in_flight);
    Ok(out)
}

/// Reads the pending events (but those of batches being committed) and applies them.
async fn read_and_apply(p: &Arc<Pipeline>, pass: &mut Pass) -> anyhow::Result<usize> {
    let shards = p.node.rules_shards();
    if shards.as_ref().is_some_and(Vec::is_empty) {
        return Ok(0);
    }
    let besides: HashSet<i64> = pass.in_flight.iter().flat_map(|f| f.seqs.iter().copied()).collect();
    let pending = p.store.pending_events_besides(shards.as_deref(), PENDING_READ, &besides).await?;
    if (pending.len() as i64) < PENDING_READ && !pass.suspects.is_empty() {
        // Every pending event was read: a suspect not among them is applied (or gone).
        let seen: HashSet<i64> = pending.iter().map(|e| e.seq).chain(besides.iter().copied()).collect();
        pass.suspects.retain(|s| seen.contains(s));
    }
    if !pending.is_empty() {
        let ids: HashSet<&str> =
            pending.iter().map(|e| e.session_id.as_str()).filter(|id| !pass.sessions.contains_key(*id)).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut stored = p.store.load_sessions(&ids).await?;
        pass.loaded = ids.iter().map(|id| (id.to_string(), stored.remove(*id))).collect();
    }
    pass_over(p, pending, pass).await
}

/// Waits for the batches being committed; their new writes' keys are then in the store.
async fn settle_in_flight(pass: &mut Pass) -> anyhow::Result<()> {
    let mut out = Ok(());
    while !pass.in_flight.is_empty() {
        let r = settle_oldest(pass).await;
        if out.is_ok() {
            out = r;
        }
    }
    out
}

/// Settles the batches whose commits are over, oldest first, up to one still running.
async fn settle_finished(pass: &mut Pass) -> anyhow::Result<()> {
    while pass.in_flight.front().is_some_and(|f| f.task.is_finished()) {
        settle_oldest(pass).await?;
    }
    Ok(())
}

/// Waits for the oldest batch being committed.
async fn settle_oldest(pass: &mut Pass) -> anyhow::Result<()> {
    let Some(f) = pass.in_flight.pop_front() else { return Ok(()) };
    let out = f.task.await.map_err(anyhow::Error::from).and_then(|r| r);
    if let Err(e) = &out
        && pass.failed.is_none()
        && !crate::pipeline::is_fenced(e)
    {
        pass.failed = Some(f.seqs);
    }
    out?;
    pass.settled += 1;
    pass.freed_committed.extend(f.freed_agents);
    Ok(())
}

async fn pass_over(
    p: &Arc<Pipeline>,
    pending: Vec<casebridge_store::PendingEvent>,
    pass: &mut Pass,
) -> anyhow::Result<usize> {
    let mut applied = 0;
    let now = std::time::Instant::now();
    for ev in pending {
        if pass.blocked.contains(&ev.session_id) {
            continue;
        }
        if p.retry_later(&ev.session_id, now) {
            // Its last attempt failed (a CRM lookup, most often): it waits its turn so that
            // one failing customer neither spins on the CRM nor holds the others back.
            pass.blocked.insert(ev.session_id.clone());
            continue;
        }
        let alone = pass.suspects.contains(&ev.seq);
        if alone {
            // A batch holding this event failed to commit: the batches before it first, then
            // its step in a commit of its own, so that a refusal names the session.
            flush(p, pass).await?;
            settle_in_flight(pass).await?;
        }
        let made = make_step(p, &ev, pass).await?;
        if alone && made != Made::Nothing && !commit_alone(p, pass, &ev).await? {
            continue;
        }
        if made == Made::Step {
            p.attempt_succeeded(&ev.session_id);
            applied += 1;
            metrics::counter!("casebridge_events_applied_total").increment(1);
        }
        if pass.commits.len() >= STEPS_PER_COMMIT
            || (pass.with_writes && pass.commits.len() >= STEPS_PER_COMMIT_WITH_WRITES)
        {
            flush(p, pass).await?;
        }
        // Let requests waiting on this thread in between (intake must not queue behind a pass).
        tokio::task::yield_now().await;
    }
    flush(p, pass).await?;
    Ok(applied)
}

/// Commits the step just made for a suspect event on its own. `false` when it was not stored:
/// another node applied the event (fenced), or the store refused it, and the session then waits
/// and retries; either way the pass leaves the session alone and goes on with the others.
async fn commit_alone(p: &Arc<Pipeline>, pass: &mut Pass, ev: &casebridge_store::PendingEvent) -> anyhow::Result<bool> {
    flush(p, pass).await?;
    let earlier = pass.failed.take();
    let out = settle_in_flight(pass).await;
    pass.failed = earlier;
    let Err(e) = out else {
        pass.suspects.remove(&ev.seq);
        return Ok(true);
    };
    if crate::pipeline::is_fenced(&e) {
        tracing::info!(seq = ev.seq, error = %e, "Rules step dropped: another node applied its event.");
        pass.suspects.remove(&ev.seq);
        pass.blocked.insert(ev.session_id.clone());
    } else {
        step_failed(
            p,
            pass,
            ev,
            &e,
            "Rules step not stored: the database refused its commit; its session waits and retries, the others go on.",
        );
    }
    // What memory holds of the session was never stored.
    pass.sessions.remove(&ev.session_id);
    Ok(false)
}

/// A session's step failed: the session waits (backoff doubling up to a minute) and the pass
/// leaves it alone.
fn step_failed(p: &Pipeline, pass: &mut Pass, ev: &casebridge_store::PendingEvent, e: &anyhow::Error, what: &str) {
    let wait = p.attempt_failed(&ev.session_id);
    tracing::warn!(session = %ev.session_id, seq = ev.seq, error = %e, retry_in_ms = wait.as_millis() as u64, "{what}");
    metrics::counter!("casebridge_rules_step_failures_total").increment(1);
    pass.blocked.insert(ev.session_id.clone());
}

/// Starts committing the batch made so far, behind the one before it (see `turn`): the
/// worker makes the next batch's steps meanwhile. A batch's customer-key locks go with its
/// commit and are released after it; a failed commit fails the pass, and the steps made on
/// top of it are dropped uncommitted (their events stay pending).
async fn flush(p: &Arc<Pipeline>, pass: &mut Pass) -> anyhow::Result<()> {
    if pass.commits.is_empty() {
        return Ok(());
    }
    while pass.in_flight.len() >= commits_in_flight(p) {
        settle_oldest(pass).await?;
    }
    let commits = std::mem::take(&mut pass.commits);
    let ops = std::mem::take(&mut pass.ops);
    let with_writes = std::mem::take(&mut pass.with_writes);
    let locks = pass.locks.take();
    let (mut turn, stage) = Turn::after(pass.in_flight.back().map(|f| f.stage.clone()));
    let seqs = commits.iter().flat_map(|c| c.event_seqs.iter().copied()).collect();
    let sessions = commits.iter().map(|c| c.session_id.clone()).collect();
    let p = p.clone();
    let work = casebridge_store::as_rules_worker(async move {
        let out = commit(&p, commits, ops, with_writes, locks, &mut turn).await;
        turn.done(out.is_ok());
        out
    });
    // A batch without writes commits its steps alone, briefly: on the runtime, where it takes
    // no core from intake's requests.
    let task = match &pass.committer {
        Some(h) if with_writes => h.spawn(work),
        _ => tokio::spawn(work),
    };
    // Until the commit is known done, its writes are not visible to `keys_busy`.
    pass.in_flight.push_back(InFlight {
        task,
        keys: std::mem::take(&mut pass.dirty_keys),
        stage,
        seqs,
        sessions,
        freed_agents: std::mem::take(&mut pass.freed_agents),
    });
    Ok(())
}

/// Commits one batch in its turn, then releases its locks and wakes whoever its writes let go.
async fn commit(
    p: &Arc<Pipeline>,
    commits: Vec<StepCommit>,
    ops: Vec<Option<CrmOp>>,
    with_writes: bool,
    locks: Option<Box<dyn casebridge_store::KeyLocks>>,
    turn: &mut Turn,
) -> anyhow::Result<()> {
    turn.queue().await;
    let delivered = if with_writes {
        super::in_commit::commit_and_deliver(p, commits, ops, turn).await?
    } else {
        super::in_commit::commit_steps(p, commits, turn).await?;
        None
    };
    // Committed: other nodes see the writes. `pass.sessions` stays: it is what was
    // stored, and the sessions read at the pass's start are older than it.
    if let Some(mut locks) = locks {
        locks.release().await?;
    }
    match delivered {
        Some(d) => {
            if d.any {
                // Steps that waited for these writes can go now.
                p.events_in.notify_one();
            }
            if d.more_due {
                p.outbox_in.notify_one();
            }
        }
        None if with_writes => p.outbox_in.notify_one(),
        None => {}
    }
    Ok(())
}
