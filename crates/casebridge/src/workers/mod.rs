//! The two workers: rules (pending events → decisions and outbox rows, one commit per step)
//! and delivery (outbox rows → CRM writes and webhooks, in order per lane, retried, parked);
//! `in_commit` sends the built-in CRM's writes inside the rules' commit on SQLite, and
//! `turn` lets the rules' next commit queue for SQLite's writer while one holds it, and
//! `commit_thread` runs those with CRM writes on a thread of their own.

mod commit_thread;
pub mod delivery;
mod in_commit;
pub mod rules;
mod step_rows;
mod turn;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

/// Runs both workers until cancelled.
pub async fn run(p: Arc<Pipeline>, stop: CancellationToken) {
    let a = own_thread(rules::run(p.clone(), stop.clone()));
    let b = own_thread(delivery::run(p, stop));
    let _ = tokio::join!(a, b);
}

/// Runs a worker on a thread of its own, with the runtime's timers and sockets: its SQLite
/// work blocks that thread, not one of the runtime's workers that serve requests and intake,
/// and the operating system shares the cores between them.
fn own_thread(f: impl std::future::Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(f))
}
