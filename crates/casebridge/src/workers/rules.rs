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

use casebridge_crm::CrmLookup;
use casebridge_rules::engine::{self, Step};
use casebridge_rules::event::Event;
use casebridge_rules::keys::CustomerKey;
use casebridge_rules::model::{Answer, Answers, Entry, EntryKind, Lookup, ObjRef};
use casebridge_rules::ops::{CrmOp, OutboxOp};
use casebridge_rules::session::Session;
use casebridge_store::StepCommit;
use tokio_util::sync::CancellationToken;

use super::step_rows::{base_keys, lookup_name, new_activity, outcome_name, ref_pair};
use super::turn::{Stage, Turn};
use crate::pipeline::Pipeline;

/// Steps committed together, at most; 128 when some give CRM writes, so that writes reach
/// the CRM soon (fewer, larger commits write fewer pages a session: with 64 the rules fell
/// behind at 2,000 sessions/s offered; 256 was no better than 128, see BENCHMARKS.md).
const STEPS_PER_COMMIT: usize = 256;
const STEPS_PER_COMMIT_WITH_WRITES: usize = 128;
/// After a pass that applied fewer events than this, the worker waits [`GATHER`] before the
/// next one (when events keep coming; an idle worker waits for them as before).
const GATHER_BELOW: usize = 64;
const GATHER: Duration = Duration::from_millis(2);

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
#[derive(Default)]
pub struct Carry {
    in_flight: std::collections::VecDeque<InFlight>,
    sessions: HashMap<String, Session>,
    committer: Option<tokio::runtime::Handle>,
}

/// Batches committing at once, at most: two where the store has one writer (the next one
/// queues for it while the one before holds it), else one.
fn commits_in_flight(p: &Pipeline) -> usize {
    if p.store.one_writer() && !p.node.shared { 2 } else { 1 }
}

/// What happened to one pending event.
enum Applied {
    Done,
    Blocked,
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
    let pending = p.store.pending_events_besides(shards.as_deref(), 512, &besides).await?;
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
    f.task.await.map_err(anyhow::Error::from).and_then(|r| r)?;
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
        let event: Event = match serde_json::from_str(&ev.body) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(seq = ev.seq, error = %e, "Stored event unreadable; skipped.");
                let body = match pass.sessions.get(&ev.session_id) {
                    Some(s) => serde_json::to_string(s)?,
                    None => p.store.load_session(&ev.session_id).await?.map(|s| s.body).unwrap_or_else(|| "{}".into()),
                };
                pass.commits.push(StepCommit {
                    event_seqs: vec![ev.seq],
                    session_id: ev.session_id.clone(),
                    session: body,
                    lane: None,
                    account: None,
                    record: None,
                    created_at: None,
                    first_at: None,
                    timeline: vec![],
                    commands: vec![],
                    activities: vec![],
                    agent_id: None,
                    over: false,
                });
                continue;
            }
        };
        match apply_one(p, &ev, &event, pass).await {
            Ok(Applied::Done) => {
                p.attempt_succeeded(&ev.session_id);
                applied += 1;
                metrics::counter!("casebridge_events_applied_total").increment(1);
            }
            Ok(Applied::Blocked) => {
                pass.blocked.insert(ev.session_id.clone());
            }
            Err(e) => {
                let wait = p.attempt_failed(&ev.session_id);
                tracing::warn!(session = %ev.session_id, error = %e, retry_in_ms = wait.as_millis() as u64, "Event not applied yet; will retry.");
                metrics::counter!("casebridge_rules_step_failures_total").increment(1);
                pass.blocked.insert(ev.session_id.clone());
            }
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

async fn apply_one(
    p: &Pipeline,
    ev: &casebridge_store::PendingEvent,
    event: &Event,
    pass: &mut Pass,
) -> anyhow::Result<Applied> {
    let seq = ev.seq;
    let started = std::time::Instant::now();
    let session: Option<Session> = match (pass.sessions.get(&event.session_id), pass.loaded.get(&event.session_id)) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(Some(body))) => Some(serde_json::from_str(body)?),
        (None, Some(None)) => None,
        (None, None) => match p.store.load_session(&event.session_id).await? {
            Some(row) => Some(serde_json::from_str(&row.body)?),
            None => None,
        },
    };
    let settings = p.settings().await;
    let profile = p.profile().await;
    let mut answers = Answers::new();
    let mut checked: HashSet<String> = HashSet::new();
    // The CRM requests lookups made, for the timeline.
    let mut lookup_lines: Vec<Entry> = Vec::new();
    loop {
        match engine::apply(session.as_ref(), event, &settings, &profile, &answers) {
            Step::Need(lookups) => {
                // A lookup must see every write that concerns the same customer: wait until
                // none is left to deliver for any of its keys.
                let mut keys = base_keys(session.as_ref(), event, &settings);
                for l in &lookups {
                    if let Lookup::RecordsOfAccount(a) = l {
                        keys.extend(account_keys(p, pass, a).await?.iter().map(ToString::to_string));
                    }
                }
                keys.retain(|k| !checked.contains(k));
                if !keys.is_empty() {
                    if keys
                        .iter()
                        .any(|k| pass.dirty_keys.contains(k) || pass.in_flight.iter().any(|f| f.keys.contains(k)))
                    {
                        return Ok(Applied::Blocked);
                    }
                    if p.node.shared {
                        if pass.locks.is_none() {
                            pass.locks = Some(p.store.key_locks().await?);
                        }
                        if let Some(locks) = pass.locks.as_mut()
                            && !locks.try_lock(&keys).await?
                        {
                            // Another node is deciding for the same customer (or this
                            // node's batch being committed holds its keys).
                            metrics::counter!("casebridge_rules_customer_waits_total").increment(1);
                            return Ok(Applied::Blocked);
                        }
                    }
                    if p.store.keys_busy(&keys).await? {
                        return Ok(Applied::Blocked);
                    }
                    checked.extend(keys);
                }
                for l in lookups {
                    let (a, requests) = casebridge_crm::http::logged(answer(p, &l, pass)).await;
                    if !requests.is_empty() {
                        lookup_lines.push(Entry {
                            at: chrono::Utc::now(),
                            kind: EntryKind::Crm,
                            summary: format!("Lookup of {}: {}", lookup_name(&l), requests.join("; ")),
                            rule: None,
                            native: None,
                        });
                    }
                    answers.insert(l, a?);
                }
            }
            Step::Done(out) => {
                let s = out.session;
                let lane = s.lane();
                let mut keys = CustomerKey::of_customer(&s.customer, s.phone.as_ref());
                if let Some(a) = &s.account {
                    keys.extend(account_keys(p, pass, a).await?);
                }
                // Trailing writes wait a moment so that the session's next ones go with them.
                let window = p.crm().coalesce_window();
                let hold = (!window.is_zero()).then(|| chrono::Utc::now() + window);
                let mut commands = Vec::with_capacity(out.commands.len());
                let mut ops = Vec::with_capacity(out.commands.len());
                for c in out.commands {
                    let trailing = c.op.is_trailing();
                    let op = OutboxOp::Crm(c.op);
                    let mut row = crate::outbox::command(c.key, &lane, &s.id, &op, Some(&keys))?;
                    row.not_before = hold.filter(|_| trailing);
                    // What the commit may send at once, kept so it need not parse the row back.
                    ops.push(super::in_commit::sendable_now(&row, op));
                    commands.push(row);
                }
                for e in out.timeline.iter().filter(|e| e.kind == EntryKind::Decision) {
                    if let Some(rule) = &e.rule {
                        metrics::counter!("casebridge_decisions_total", "rule" => rule.clone()).increment(1);
                    }
                }
                let was = session.as_ref().map(|x| (x.account_outcome, x.record_outcome));
                if was.map(|w| w.0) != Some(s.account_outcome) {
                    metrics::counter!("casebridge_account_outcomes_total", "outcome" => outcome_name(&s.account_outcome)).increment(1);
                }
                if was.map(|w| w.1) != Some(s.record_outcome) {
                    metrics::counter!("casebridge_record_outcomes_total", "outcome" => outcome_name(&s.record_outcome))
                        .increment(1);
                }
                if let Some(c) = commands.first() {
                    pass.dirty_keys.extend(c.keys.iter().cloned());
                    let received = casebridge_store::parse_ts(&ev.received_at).timestamp_millis();
                    p.writes_caused(commands.iter().map(|c| c.key.clone()), received);
                }
                if s.is_over()
                    && !session.as_ref().is_some_and(|x| x.is_over())
                    && let Some(a) = &s.agent
                {
                    pass.freed_agents.push(a.id.clone());
                }
                let activities = out.activities.iter().map(new_activity).collect();
                pass.with_writes |= !commands.is_empty();
                pass.commits.push(StepCommit {
                    event_seqs: vec![seq],
                    session_id: s.id.clone(),
                    session: serde_json::to_string(&s)?,
                    lane: s.lane.as_ref().map(ToString::to_string),
                    account: s.account.as_ref().map(ref_pair),
                    record: s.record.as_ref().map(ref_pair),
                    created_at: s.created_at,
                    first_at: Some(event.at),
                    timeline: lookup_lines.into_iter().chain(out.timeline).collect(),
                    commands,
                    activities,
                    agent_id: s.agent.as_ref().map(|a| a.id.clone()),
                    over: s.is_over(),
                });
                pass.ops.extend(ops);
                pass.sessions.insert(s.id.clone(), s);
                metrics::histogram!("casebridge_rules_step_seconds").record(started.elapsed().as_secs_f64());
                return Ok(Applied::Done);
            }
        }
    }
}

/// An account's keys: casebridge's key and, once created, the CRM id.
async fn account_keys(p: &Pipeline, pass: &Pass, a: &ObjRef) -> anyhow::Result<Vec<CustomerKey>> {
    let mut keys = vec![CustomerKey::account(a)];
    if let ObjRef::Crm(id) = resolve(p, pass, a).await?
        && id != a.as_str()
    {
        keys.push(CustomerKey::Account(id));
    }
    Ok(keys)
}

/// The CRM id of casebridge's key, when the object is created (read once a pass).
async fn resolve(p: &Pipeline, pass: &Pass, r: &ObjRef) -> anyhow::Result<ObjRef> {
    let ObjRef::Key(k) = r else { return Ok(r.clone()) };
    let known = pass.refs.lock().unwrap_or_else(|e| e.into_inner()).get(k).cloned();
    if let Some(id) = known {
        return Ok(ObjRef::Crm(id));
    }
    Ok(match p.store.ref_get(k).await? {
        Some(id) => {
            pass.refs.lock().unwrap_or_else(|e| e.into_inner()).insert(k.clone(), id.clone());
            ObjRef::Crm(id)
        }
        None => r.clone(),
    })
}

/// Answers a lookup: casebridge's own (a session's record, a dial request's origin) from
/// storage, the rest from the CRM.
async fn answer(p: &Pipeline, l: &Lookup, pass: &Pass) -> anyhow::Result<Answer> {
    let started = std::time::Instant::now();
    let out = match l {
        Lookup::RecordOfSession(id) => {
            let related = match pass.sessions.get(id) {
                Some(s) => Some(s.clone()),
                None => match p.store.load_session(id).await? {
                    Some(row) => Some(serde_json::from_str::<Session>(&row.body)?),
                    None => None,
                },
            };
            let rec = match related.and_then(|s| s.record) {
                Some(r) => Some(resolve(p, pass, &r).await?),
                None => None,
            };
            Answer::Record(rec)
        }
        Lookup::DialRequestOrigin(id) => Answer::Origin(p.store.dial(id).await?.and_then(|d| d.origin_record_id)),
        Lookup::RecordsOfAccount(a) => match resolve(p, pass, a).await? {
            ObjRef::Crm(id) => p.crm().lookup(&CrmLookup::RecordsOfAccount(id)).await?,
            // The account's creation never landed (parked): it has no records.
            ObjRef::Key(_) => Answer::Records(vec![]),
        },
        Lookup::AccountsByUserId(u) => p.crm().lookup(&CrmLookup::AccountsByUserId(u.clone())).await?,
        Lookup::AccountsByPhone(n) => p.crm().lookup(&CrmLookup::AccountsByPhone(n.clone())).await?,
        Lookup::AccountsByEmail(e) => p.crm().lookup(&CrmLookup::AccountsByEmail(e.clone())).await?,
    };
    metrics::histogram!("casebridge_crm_lookup_seconds").record(started.elapsed().as_secs_f64());
    Ok(out)
}
