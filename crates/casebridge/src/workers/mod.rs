//! The two workers: rules (pending events → decisions and outbox rows, one commit per step)
//! and delivery (outbox rows → CRM writes and webhooks, in order per lane, retried, parked).

pub mod delivery;
pub mod rules;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

/// Runs both workers until cancelled.
pub async fn run(p: Arc<Pipeline>, stop: CancellationToken) {
    let a = tokio::spawn(rules::run(p.clone(), stop.clone()));
    let b = tokio::spawn(delivery::run(p, stop));
    let _ = tokio::join!(a, b);
}
