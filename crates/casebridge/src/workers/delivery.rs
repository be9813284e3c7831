//! Delivery: due outbox rows go to the CRM connector (or, for dial hand-offs, to the contact
//! center's webhook). Lanes are delivered concurrently, each in order: the first due row of
//! a lane goes with the lane's next pending rows as one batch, so the connector can send a
//! session's writes in few calls. Failures are retried with backoff, jitter and the CRM's
//! Retry-After, and parked as dead letters after [`MAX_ATTEMPTS`].
//!
//! Several nodes: a lane's rows are leased to the node delivering them (claimed with `SKIP
//! LOCKED`, renewed by the heartbeat). A write is sent only while its lease is fresh, and its
//! outcome is recorded only under the fence it was claimed with; a node that stalled past its
//! lease finds its outcome refused and drops it (the node that took over sent the write
//! again, under the same idempotency key).

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use casebridge_crm::{CrmError, Write, WriteOutcome};
use casebridge_rules::model::{Entry, EntryKind, ObjRef};
use casebridge_rules::ops::{ContactCenterOp, CrmOp, OutboxOp};
use casebridge_store::OutboxRow;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

/// Attempts before a write is parked as a dead letter.
pub const MAX_ATTEMPTS: i64 = 12;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Lanes delivered at once: a slow or failing customer holds back only its own lane.
const CONCURRENT_LANES: usize = 16;
/// The timeline line of a session-data write a later one made pointless.
pub(crate) const SUPERSEDED: &str = "Session data superseded by a later write of it: not sent";
/// Lanes claimed at once.
pub const LANES_PER_CLAIM: usize = 256;
/// Rows of one lane sent as one batch.
pub(crate) const BATCH: i64 = 24;

/// Delivers until cancelled.
pub async fn run(p: Arc<Pipeline>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let n = match pass(&p).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "Delivery pass failed; retrying.");
                0
            }
        };
        if n == 0 {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = p.outbox_in.notified() => {},
                _ = tokio::time::sleep(Duration::from_millis(200)) => {},
            }
        }
    }
}

/// Delivers due writes; returns how many lanes were attempted.
pub async fn pass(p: &Arc<Pipeline>) -> anyhow::Result<usize> {
    let claimed = std::time::Instant::now();
    let lanes =
        p.store.claim_lanes(&p.node.id, Utc::now(), LANES_PER_CLAIM as i64, BATCH, crate::node::lease_ms()).await?;
    let n = lanes.len();
    let taken = lanes.iter().filter(|l| l[0].taken_over).count();
    if taken > 0 {
        tracing::info!(writes = taken, "Took over CRM writes of a node that stopped answering.");
        metrics::counter!("casebridge_lease_takeovers_total", "kind" => "crm_write").increment(taken as u64);
    }
    let mut tasks = tokio::task::JoinSet::new();
    let mut first_error = None;
    for lane in lanes {
        while tasks.len() >= CONCURRENT_LANES {
            if let Some(Ok(Err(e))) = tasks.join_next().await {
                first_error.get_or_insert(e);
            }
        }
        let p = p.clone();
        tasks.spawn(async move { deliver_lane(&p, lane, claimed).await });
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            first_error.get_or_insert(e);
        }
    }
    if n > 0 {
        p.progress.notify_waiters();
        p.events_in.notify_one();
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// Delivers the batch that starts at a lane's first due row (only rows never tried go along:
/// a row that failed waits for its own turn), then gives back the leases of the rows it did
/// not get to.
pub(crate) async fn deliver_lane(
    p: &Pipeline,
    rows: Vec<OutboxRow>,
    claimed: std::time::Instant,
) -> anyhow::Result<()> {
    let lane = rows.first().map(|r| r.lane.clone()).unwrap_or_default();
    let mut settled = HashSet::new();
    let out = deliver_rows(p, rows.clone(), claimed, &mut settled).await;
    let left: Vec<OutboxRow> = rows.into_iter().filter(|r| !settled.contains(&r.id)).collect();
    if !left.is_empty() {
        p.store.release_commands(&left).await?;
    }
    match out {
        Err(e) if crate::pipeline::is_fenced(&e) => {
            tracing::info!(lane = %lane, error = %e, "Outcome dropped: another node took the write over.");
            metrics::counter!("casebridge_lease_fenced_total", "kind" => "crm_write").increment(1);
            Ok(())
        }
        other => other,
    }
}

async fn deliver_rows(
    p: &Pipeline,
    rows: Vec<OutboxRow>,
    claimed: std::time::Instant,
    settled: &mut HashSet<i64>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();

    let mut writes: Vec<(OutboxRow, Write)> = Vec::new();
    for row in rows {
        let op: OutboxOp = match serde_json::from_str(&row.op) {
            Ok(op) => op,
            Err(e) => {
                if writes.is_empty() {
                    let line = crm_line("Write unreadable: parked", None);
                    p.store.park_command(&row, &format!("unreadable write: {e}"), line).await?;
                    settled.insert(row.id);
                }
                break;
            }
        };
        match op {
            OutboxOp::ContactCenter(ContactCenterOp::DialWebhook(h)) => {
                // Not a CRM write: alone, and only as the head.
                if writes.is_empty() && p.node.lease_fresh(claimed) {
                    let settings = p.settings().await;
                    let result = crate::dial::deliver(&p.http, &settings.click_to_call, &row.key, &h).await;
                    settle(p, &row, "dial_webhook", result, &[]).await?;
                    settled.insert(row.id);
                }
                break;
            }
            OutboxOp::Crm(op) => writes.push((row.clone(), Write { key: row.key.clone(), op })),
        }
    }
    if writes.is_empty() {
        return Ok(());
    }

    // A later rewrite of the same session data makes an earlier one pointless.
    let superseded = superseded(writes.iter().map(|(_, w)| ("", Some(&w.op))));

    // casebridge's keys → CRM ids; a key created earlier in this batch stays a key.
    let mut batch_creates: HashSet<String> = HashSet::new();
    let mut resolved: Vec<(OutboxRow, Write)> = Vec::new();
    let mut dropped: Vec<OutboxRow> = Vec::new();
    for (i, (row, mut w)) in writes.into_iter().enumerate() {
        if superseded.contains(&i) {
            dropped.push(row);
            continue;
        }
        match resolve(p, &mut w.op, &batch_creates).await? {
            Ok(()) => {}
            Err(missing) if resolved.is_empty() => {
                // Another lane's create has not landed yet (or was parked): wait for it.
                let e = CrmError::Transient {
                    message: format!("{missing} is not created in the CRM yet"),
                    retry_after: None,
                };
                settle(p, &row, w.op.name(), Err(e), &[]).await?;
                settled.insert(row.id);
                return Ok(());
            }
            Err(_) => break,
        }
        if let Some(k) = created_key(&w.op) {
            batch_creates.insert(k.to_string());
        }
        resolved.push((row, w));
    }
    // Recorded with the writes the CRM takes, in the same commit.
    let mut done: Vec<(casebridge_store::Completed, Option<&'static str>)> = dropped
        .into_iter()
        .map(|row| {
            let line = crm_line(SUPERSEDED, None);
            (casebridge_store::Completed { row, line, created: None }, None)
        })
        .collect();
    let fresh = p.node.lease_fresh(claimed);
    if resolved.is_empty() || !fresh {
        let told = complete_all(p, &mut done, settled).await?;
        tell(p, told);
        if let Some((row, _)) = resolved.first() {
            // The lease may have run out (this node stalled or lost the database): another
            // node may be sending these writes now.
            tracing::info!(lane = %row.lane, "Lease too old to send; the writes go back in line.");
        }
        return Ok(());
    }

    let crm = p.crm();
    let mut out = Ok(());
    let mut told = Vec::new();
    let work = send(p, &crm, &resolved, &mut done, settled, &mut told, &mut out);
    if crm.in_store() {
        // The built-in CRM: its writes and their outcomes in one transaction of the writer.
        p.store.in_one_commit(Box::pin(work)).await?;
    } else {
        work.await;
    }
    // Only now committed: the latency to "CRM write done" ends here.
    tell(p, told);
    out?;
    metrics::histogram!("casebridge_crm_write_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// Sends resolved writes as one batch and records what became of each; `told` gets the
/// writes recorded as done, `out` the first failure to record one.
async fn send(
    p: &Pipeline,
    crm: &Arc<dyn casebridge_crm::Connector>,
    resolved: &[(OutboxRow, Write)],
    done: &mut Vec<(casebridge_store::Completed, Option<&'static str>)>,
    settled: &mut HashSet<i64>,
    told: &mut Vec<(String, bool)>,
    out: &mut anyhow::Result<()>,
) {
    *out = async {
        let only: Vec<Write> = resolved.iter().map(|(_, w)| w.clone()).collect();
        let (results, requests) = casebridge_crm::http::logged(crm.execute_batch(&only)).await;
        metrics::histogram!("casebridge_crm_batch_size").record(resolved.len() as f64);
        let mut requests = Some(requests);
        // Writes the CRM took are recorded together, in one commit.
        for ((row, w), result) in resolved.iter().zip(results) {
            let result = match result {
                Err(CrmError::Gone(gone)) => relink(p, crm, row, w, gone).await?,
                other => other,
            };
            let reqs = requests.take().unwrap_or_default();
            match result {
                Ok(out) => done.push((completed(row, out, &reqs), Some(w.op.name()))),
                Err(e) => {
                    told.extend(complete_all(p, done, settled).await?);
                    settle(p, row, w.op.name(), Err(e), &reqs).await?;
                    settled.insert(row.id);
                    // The rows after it go again with the failed one, in order (writes are safe to repeat).
                    break;
                }
            }
        }
        told.extend(complete_all(p, done, settled).await?);
        Ok(())
    }
    .await;
}

/// behaviour.md §13.4: the CRM says an object the write names no longer exists. When it is
/// the customer's account (merged or deleted), look the customer up again and send the write
/// to the account found; the timeline says so. Otherwise the write fails as it did.
async fn relink(
    p: &Pipeline,
    crm: &Arc<dyn casebridge_crm::Connector>,
    row: &OutboxRow,
    w: &Write,
    gone: String,
) -> anyhow::Result<Result<WriteOutcome, CrmError>> {
    let failed = || Ok(Err(CrmError::Gone(gone.clone())));
    let mut op = w.op.clone();
    let accounts: Vec<String> = account_refs(&mut op).iter().map(|r| r.as_str().to_string()).collect();
    if accounts.is_empty() {
        return failed();
    }
    let Some(session) = p.store.load_session(&row.session_id).await? else { return failed() };
    let Ok(session) = serde_json::from_str::<casebridge_rules::session::Session>(&session.body) else {
        return failed();
    };
    let mut lookups = Vec::new();
    lookups.extend(session.customer.user_id.clone().map(casebridge_crm::CrmLookup::AccountsByUserId));
    lookups.extend(session.phone.as_ref().map(|ph| casebridge_crm::CrmLookup::AccountsByPhone(ph.number.clone())));
    lookups.extend(session.customer.email.clone().map(casebridge_crm::CrmLookup::AccountsByEmail));
    for l in lookups {
        let Ok(casebridge_rules::model::Answer::Accounts(hits)) = crm.lookup(&l).await else { continue };
        if hits.iter().any(|h| accounts.contains(&h.id)) {
            // The account is still there: something else is gone.
            return failed();
        }
        let Some(found) = hits.iter().max_by_key(|h| h.updated_at) else { continue };
        let old = accounts[0].clone();
        for r in account_refs(&mut op) {
            if r.as_str() == old {
                *r = ObjRef::Crm(found.id.clone());
            }
        }
        // Later writes that name the account by casebridge's key now reach the one found.
        let original: Option<OutboxOp> = serde_json::from_str(&row.op).ok();
        if let Some(OutboxOp::Crm(mut original)) = original {
            for r in account_refs(&mut original) {
                if let ObjRef::Key(k) = r
                    && p.store.ref_get(k).await?.as_deref() == Some(old.as_str())
                {
                    p.store.ref_set(k, &found.id).await?;
                }
            }
        }
        metrics::counter!("casebridge_crm_relinked_total").increment(1);
        let result = crm.execute(&w.key, &op).await.map(|mut out| {
            out.summary = format!(
                "Account {old} no longer exists in the CRM (merged or deleted); found the customer again as {}. {}",
                found.id, out.summary
            );
            out
        });
        return Ok(result);
    }
    failed()
}

/// The references to people a write carries.
fn account_refs(op: &mut CrmOp) -> Vec<&mut ObjRef> {
    match op {
        CrmOp::CreateRecord { account, .. } => account.iter_mut().collect(),
        CrmOp::UpdateAccount { account, .. } | CrmOp::SetAccountFields { account, .. } => vec![account],
        CrmOp::LogCall { person, .. } => person.iter_mut().collect(),
        CrmOp::WriteSessionData { account, .. } => account.iter_mut().collect(),
        _ => vec![],
    }
    .into_iter()
    .filter(|r| matches!(r, ObjRef::Crm(_)))
    .collect()
}

/// The key a create makes known.
fn created_key(op: &CrmOp) -> Option<&str> {
    match op {
        CrmOp::CreateAccount { key, .. } | CrmOp::CreateRecord { key, .. } => Some(key),
        _ => None,
    }
}

/// A write the CRM took, with its timeline line (the CRM requests it made, when any).
fn completed(row: &OutboxRow, out: WriteOutcome, requests: &[String]) -> casebridge_store::Completed {
    let summary = if requests.is_empty() { out.summary } else { format!("{} · {}", out.summary, requests.join("; ")) };
    casebridge_store::Completed { row: row.clone(), line: crm_line(&summary, None), created: out.created }
}

/// Records the writes the CRM took (and those not sent, without a name), in one commit;
/// returns their keys for [`tell`], with whether the CRM took each.
async fn complete_all(
    p: &Pipeline,
    done: &mut Vec<(casebridge_store::Completed, Option<&'static str>)>,
    settled: &mut HashSet<i64>,
) -> anyhow::Result<Vec<(String, bool)>> {
    if done.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<casebridge_store::Completed> = done.iter().map(|(c, _)| c.clone()).collect();
    p.store.complete_commands(&rows).await?;
    let mut told = Vec::with_capacity(done.len());
    for (c, name) in done.drain(..) {
        settled.insert(c.row.id);
        told.push((c.row.key, name.is_some()));
        if let Some(name) = name {
            metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "done").increment(1);
        }
    }
    Ok(told)
}

/// Tells the pipeline that recorded writes are settled (their latency ends here).
fn tell(p: &Pipeline, told: Vec<(String, bool)>) {
    for (key, done) in told {
        p.write_settled(&key, done);
    }
}

/// Records what a delivery attempt did: done, another attempt later, or a dead letter.
/// `requests` are the CRM requests the attempt made, for the timeline.
async fn settle(
    p: &Pipeline,
    row: &OutboxRow,
    name: &'static str,
    result: Result<WriteOutcome, CrmError>,
    requests: &[String],
) -> anyhow::Result<()> {
    let with_requests = |s: String| if requests.is_empty() { s } else { format!("{s} · {}", requests.join("; ")) };
    match result {
        Ok(out) => {
            let created = out.created.as_ref().map(|(k, id)| (k.as_str(), id.as_str()));
            p.store.complete_command(row, crm_line(&with_requests(out.summary), None), created).await?;
            p.write_settled(&row.key, true);
            metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "done").increment(1);
        }
        Err(CrmError::Transient { message, retry_after }) if row.attempts + 1 < MAX_ATTEMPTS => {
            let wait = match retry_after {
                // The CRM said when: not a moment before.
                Some(w) => w.min(MAX_BACKOFF),
                None => backoff(p.retry_base, row),
            };
            let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            let line = (row.attempts == 0).then(|| {
                crm_line(&with_requests(format!("{name} failed ({message}); will retry")), Some("outbox.retry"))
            });
            p.store.retry_command(row, &message, next, line).await?;
            metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "retry").increment(1);
        }
        Err(e) => {
            let msg = e.to_string();
            let line =
                crm_line(&with_requests(format!("{name} parked as a dead letter: {msg}")), Some("outbox.dead_letter"));
            p.store.park_command(row, &msg, line).await?;
            p.write_settled(&row.key, false);
            metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "dead").increment(1);
        }
    }
    Ok(())
}

/// Exponential backoff with jitter: between half and all of `base · 2^attempts`, capped, so
/// writes that failed together do not all come back at once.
fn backoff(base: Duration, row: &OutboxRow) -> Duration {
    let full = base.saturating_mul(2u32.saturating_pow(row.attempts.clamp(0, 20) as u32)).min(MAX_BACKOFF);
    let r = std::collections::hash_map::RandomState::new().hash_one((row.id, row.attempts));
    let frac = 0.5 + (r % 1000) as f64 / 2000.0;
    full.mul_f64(frac)
}

/// The positions of session-data writes that a later write of the same data in the same
/// lane makes pointless (writes given in order, with their lane; `None` for other writes).
pub(crate) fn superseded<'a>(
    writes: impl DoubleEndedIterator<Item = (&'a str, Option<&'a CrmOp>)> + ExactSizeIterator,
) -> HashSet<usize> {
    let mut later = HashSet::new();
    writes
        .enumerate()
        .rev()
        .filter(|(_, (lane, op))| match op {
            Some(CrmOp::WriteSessionData { target, data, .. }) => {
                !later.insert((*lane, format!("{target:?}"), data.session_id.as_str()))
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

/// Replaces casebridge's keys in `op` by the CRM ids they were created as (keys created
/// earlier in the batch stay keys); `Err` names a key that has no CRM id yet.
pub(crate) async fn resolve(
    p: &Pipeline,
    op: &mut CrmOp,
    in_batch: &HashSet<String>,
) -> anyhow::Result<Result<(), String>> {
    for r in op.refs_mut() {
        if let ObjRef::Key(k) = r {
            if in_batch.contains(k.as_str()) {
                continue;
            }
            match p.store.ref_get(k).await? {
                Some(id) => *r = ObjRef::Crm(id),
                None => return Ok(Err(k.clone())),
            }
        }
    }
    Ok(Ok(()))
}

pub(crate) fn crm_line(summary: &str, rule: Option<&str>) -> Entry {
    Entry {
        at: Utc::now(),
        kind: EntryKind::Crm,
        summary: summary.to_string(),
        rule: rule.map(str::to_string),
        native: None,
    }
}
