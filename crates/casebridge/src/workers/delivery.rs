//! Delivery: due outbox rows go to the CRM connector (or, for dial hand-offs, to the contact
//! center's webhook), one at a time per lane; failures are retried with backoff and the
//! server's Retry-After, and parked as dead letters after [`MAX_ATTEMPTS`].

use std::sync::Arc;
use std::time::Duration;

use casebridge_crm::{CrmError, WriteOutcome};
use casebridge_rules::model::{Entry, EntryKind, ObjRef};
use casebridge_rules::ops::{ContactCenterOp, CrmOp, OutboxOp};
use casebridge_store::OutboxRow;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

/// Attempts before a write is parked as a dead letter.
pub const MAX_ATTEMPTS: i64 = 8;

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

/// Delivers due writes; returns how many were attempted.
pub async fn pass(p: &Pipeline) -> anyhow::Result<usize> {
    let rows = p.store.claim_commands(Utc::now(), 256).await?;
    let n = rows.len();
    for row in rows {
        deliver(p, row).await?;
    }
    if n > 0 {
        p.progress.notify_waiters();
        p.events_in.notify_one();
    }
    Ok(n)
}

async fn deliver(p: &Pipeline, row: OutboxRow) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let op: OutboxOp = match serde_json::from_str(&row.op) {
        Ok(op) => op,
        Err(e) => {
            p.store
                .park_command(&row, &format!("unreadable write: {e}"), crm_line("Write unreadable: parked", None))
                .await?;
            return Ok(());
        }
    };
    let name = op.name();
    let result = match op {
        OutboxOp::ContactCenter(ContactCenterOp::DialWebhook(h)) => {
            let settings = p.settings().await;
            crate::dial::deliver(&p.http, &settings.click_to_call, &row.key, &h).await
        }
        OutboxOp::Crm(op) => match resolve(p, op).await? {
            Ok(op) => p.crm.execute(&row.key, &op).await,
            // Another lane's create has not landed yet (or was parked): wait for it.
            Err(missing) => Err(CrmError::Transient {
                message: format!("{missing} is not created in the CRM yet"),
                retry_after: None,
            }),
        },
    };
    settle(p, &row, name, result).await?;
    metrics::histogram!("casebridge_crm_write_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// Records what a delivery attempt did: done, another attempt later, or a dead letter.
async fn settle(
    p: &Pipeline,
    row: &OutboxRow,
    name: &'static str,
    result: Result<WriteOutcome, CrmError>,
) -> anyhow::Result<()> {
    match result {
        Ok(out) => {
            let created = out.created.as_ref().map(|(k, id)| (k.as_str(), id.as_str()));
            p.store.complete_command(row, crm_line(&out.summary, None), created).await?;
            metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "done").increment(1);
        }
        Err(CrmError::Transient { message, retry_after }) if row.attempts + 1 < MAX_ATTEMPTS => {
            let backoff = p.retry_base * 2u32.saturating_pow(row.attempts as u32);
            let wait = retry_after.unwrap_or(backoff).min(Duration::from_secs(600));
            let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            let line = (row.attempts == 0)
                .then(|| crm_line(&format!("{name} failed ({message}); will retry"), Some("outbox.retry")));
            p.store.retry_command(row, &message, next, line).await?;
            metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "retry").increment(1);
        }
        Err(e) => {
            let msg = e.to_string();
            let line = crm_line(&format!("{name} parked as a dead letter: {msg}"), Some("outbox.dead_letter"));
            p.store.park_command(row, &msg, line).await?;
            metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "dead").increment(1);
        }
    }
    Ok(())
}

/// Replaces casebridge's keys in `op` by the CRM ids they were created as; `Err` names a key
/// that has no CRM id yet.
async fn resolve(p: &Pipeline, mut op: CrmOp) -> anyhow::Result<Result<CrmOp, String>> {
    for r in op.refs_mut() {
        if let ObjRef::Key(k) = r {
            match p.store.ref_get(k).await? {
                Some(id) => *r = ObjRef::Crm(id),
                None => return Ok(Err(k.clone())),
            }
        }
    }
    Ok(Ok(op))
}

fn crm_line(summary: &str, rule: Option<&str>) -> Entry {
    Entry {
        at: Utc::now(),
        kind: EntryKind::Crm,
        summary: summary.to_string(),
        rule: rule.map(str::to_string),
        native: None,
    }
}
