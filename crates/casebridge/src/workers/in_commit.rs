//! Delivery with the rules' commit: with the built-in CRM on a store of one writer (SQLite),
//! a rules batch's writes are sent inside the transaction that stores the batch (see
//! docs/decisions.md). Everything else about a write (order per lane, retries, relinks, dead
//! letters) stays with `delivery`.

use std::collections::HashSet;
use std::sync::Arc;

use casebridge_rules::ops::{CrmOp, OutboxOp};
use casebridge_store::{NewCommand, StepCommit};
use chrono::Utc;

use super::delivery::{BATCH, LANES_PER_CLAIM, SUPERSEDED, crm_line, deliver_lane, resolve, superseded};
use super::turn::Turn;
use crate::pipeline::Pipeline;

/// What a rules commit that carried its writes delivered.
pub(super) struct Delivered {
    /// Some writes were settled: steps that waited for them can go.
    pub any: bool,
    /// As many lanes were claimed as a claim takes: more may be due.
    pub more_due: bool,
}

/// Commits a batch with writes. With the built-in CRM on a store of one writer (SQLite),
/// its writes are delivered in the same transaction: those that can go at once straight
/// from the batch (stored done), then the lanes left due (as delivery does). One commit
/// instead of three (the steps, delivery's claim, the writes with their outcomes), and no
/// write waits for the delivery worker. `None` when delivery is left to its worker.
pub(super) async fn commit_and_deliver(
    p: &Arc<Pipeline>,
    mut commits: Vec<StepCommit>,
    ops: Vec<Option<CrmOp>>,
    turn: &mut Turn,
) -> anyhow::Result<Option<Delivered>> {
    let crm = p.crm();
    if !(p.store.one_writer() && crm.in_store()) {
        commit_steps(p, commits, turn).await?;
        return Ok(None);
    }
    let mut out = Ok(0);
    let mut told = Vec::new();
    p.store
        .in_one_commit(Box::pin(async {
            // Waiting here for the batch before is safe: its task writes nothing after its hold.
            if let Err(e) = turn.held().await {
                out = Err(e);
                return;
            }
            // Should the steps' commit fail after this, the transaction is rolled back, the
            // built-in CRM's objects with it, when the hold has it alone (as rules holds do);
            // one that joined an open group keeps them. Either way the batch, made again,
            // repeats the writes, which land on the same objects (each carries its key).
            told = deliver_new(p, &crm, &mut commits, ops).await;
            out = match p.store.commit_steps(commits).await {
                // A delivery failure undoes only its own writes (each in a savepoint): the
                // steps still commit, and the delivery worker takes those writes up later.
                Ok(()) => Ok(pass_here(p).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "Delivery with the rules' commit failed; the delivery worker retries.");
                    0
                })),
                Err(e) => Err(e.into()),
            };
        }))
        .await?;
    let lanes = out?;
    let any = lanes > 0 || !told.is_empty();
    for (key, sent) in told {
        p.write_settled(&key, sent);
    }
    Ok(Some(Delivered { any, more_due: lanes >= LANES_PER_CLAIM }))
}

/// Commits a batch without writes in its turn: holding the store's one writer, so that the
/// next batch may queue behind it.
pub(super) async fn commit_steps(p: &Arc<Pipeline>, commits: Vec<StepCommit>, turn: &mut Turn) -> anyhow::Result<()> {
    if !p.store.one_writer() {
        turn.before_committed().await?;
        p.store.commit_steps(commits).await?;
        return Ok(());
    }
    let mut out = Ok(());
    p.store
        .in_one_commit(Box::pin(async {
            out = match turn.held().await {
                Ok(()) => p.store.commit_steps(commits).await.map_err(Into::into),
                Err(e) => Err(e),
            };
        }))
        .await?;
    out
}

/// Sends a rules batch's new writes to the CRM before the batch is stored, for a caller
/// holding the store's writer with the built-in CRM: a write goes when its lane has nothing
/// older to deliver, it is due now and its references resolve; it is then stored done with
/// its timeline line. A session-data write rewritten later in the batch is stored done
/// unsent, as delivery does within a lane's batch. Once one of a lane's writes cannot go (or
/// the CRM refuses it), that lane's later writes stay pending too, for delivery proper
/// (retries, relinks, dead letters, which record what became of it). `ops` are the writes of
/// the batch's commands in order, where one may be sent at once (parsed from the rows should
/// the two not line up). Returns the keys of the writes settled, with whether each was sent.
async fn deliver_new(
    p: &Arc<Pipeline>,
    crm: &Arc<dyn casebridge_crm::Connector>,
    commits: &mut [StepCommit],
    ops: Vec<Option<CrmOp>>,
) -> Vec<(String, bool)> {
    let cmds: Vec<&mut NewCommand> = commits.iter_mut().flat_map(|s| s.commands.iter_mut()).collect();
    let ops: Vec<Option<CrmOp>> = if ops.len() == cmds.len() {
        ops
    } else {
        cmds.iter().map(|c| serde_json::from_str::<OutboxOp>(&c.op).ok().and_then(|op| sendable_now(c, op))).collect()
    };
    let superseded = superseded(cmds.iter().zip(&ops).map(|(c, op)| (c.lane.as_str(), op.as_ref())));
    let mut lanes = LaneGate::default();
    let mut settled = Vec::new();
    for (i, (cmd, op)) in cmds.into_iter().zip(ops).enumerate() {
        let Some(mut op) = op else {
            lanes.block(&cmd.lane);
            continue;
        };
        if !lanes.clear(p, &cmd.lane).await {
            continue;
        }
        if superseded.contains(&i) {
            cmd.done = Some(crm_line(SUPERSEDED, None));
            settled.push((cmd.key.clone(), false));
            continue;
        }
        let started = std::time::Instant::now();
        let sent = match resolve(p, &mut op, &HashSet::new()).await {
            Ok(Ok(())) => crm.execute(&cmd.key, &op).await.ok(),
            _ => None,
        };
        let Some(out) = sent else {
            lanes.block(&cmd.lane);
            continue;
        };
        if let Some((key, id)) = &out.created
            && let Err(e) = p.store.ref_set(key, id).await
        {
            tracing::warn!(error = %e, "CRM id of a new object not recorded; the write goes through delivery.");
            lanes.block(&cmd.lane);
            continue;
        }
        cmd.done = Some(crm_line(&out.summary, None));
        metrics::counter!("casebridge_crm_writes_total", "op" => op.name(), "outcome" => "done").increment(1);
        metrics::histogram!("casebridge_crm_write_seconds").record(started.elapsed().as_secs_f64());
        settled.push((cmd.key.clone(), true));
    }
    settled
}

/// The CRM write of a new command, when it may be sent with its rules commit: due now, and
/// with the customer keys delivery would check (a contact center's webhook never is).
pub(super) fn sendable_now(cmd: &NewCommand, op: OutboxOp) -> Option<CrmOp> {
    match op {
        OutboxOp::Crm(op) if cmd.not_before.is_none() && !cmd.keys.is_empty() => Some(op),
        _ => None,
    }
}

/// Which lanes of a batch may still have writes sent at once: not one with older writes
/// pending in the store, nor one whose earlier write in the batch could not go.
#[derive(Default)]
struct LaneGate {
    blocked: HashSet<String>,
    clear: HashSet<String>,
}

impl LaneGate {
    fn block(&mut self, lane: &str) {
        self.blocked.insert(lane.to_string());
    }

    async fn clear(&mut self, p: &Pipeline, lane: &str) -> bool {
        if self.blocked.contains(lane) {
            return false;
        }
        if self.clear.contains(lane) {
            return true;
        }
        match p.store.lane_pending(lane).await {
            Ok(false) => {
                self.clear.insert(lane.to_string());
                true
            }
            Ok(true) => {
                self.block(lane);
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not tell whether a lane has writes pending; its new writes wait for delivery.");
                self.block(lane);
                false
            }
        }
    }
}

/// Delivers due lanes one after another on this task, for a caller holding the store's
/// writer (the rules worker's commit): a failed lane does not stop the others. A lane whose
/// next write is a contact center's webhook is given back to the delivery worker: no call
/// leaves the process while the writer is held. Returns how many lanes were attempted.
async fn pass_here(p: &Arc<Pipeline>) -> anyhow::Result<usize> {
    if !p.crm().in_store() {
        // The CRM was switched meanwhile: no CRM call is made holding the writer.
        return Ok(0);
    }
    let claimed = std::time::Instant::now();
    let lanes =
        p.store.claim_lanes(&p.node.id, Utc::now(), LANES_PER_CLAIM as i64, BATCH, crate::node::lease_ms()).await?;
    let n = lanes.len();
    let mut elsewhere = Vec::new();
    for lane in lanes {
        let webhook = matches!(serde_json::from_str::<OutboxOp>(&lane[0].op), Ok(OutboxOp::ContactCenter(_)));
        if webhook {
            elsewhere.extend(lane);
            continue;
        }
        if let Err(e) = deliver_lane(p, lane, claimed).await {
            tracing::warn!(error = %e, "Delivery of a lane failed; retrying.");
        }
    }
    if !elsewhere.is_empty() {
        p.store.release_commands(&elsewhere).await?;
        p.outbox_in.notify_one();
    }
    Ok(n)
}
