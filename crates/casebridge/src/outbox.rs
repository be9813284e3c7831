//! The one way writes enter the outbox: every CRM write, status push and dial hand-off is a
//! [`NewCommand`] built here, committed by the store in the same transaction as what caused it.

use casebridge_rules::keys::{CustomerKey, Lane};
use casebridge_rules::ops::OutboxOp;
use casebridge_store::NewCommand;

/// An outbox row for `op`: `key` is its idempotency key, `lane` orders it. A session's
/// write names the customer keys it concerns (`Some`): a lookup for any of them, or for its
/// lane, waits until it is delivered. Agent pushes and dial hand-offs concern no customer.
pub fn command(
    key: String,
    lane: &Lane,
    session_id: &str,
    op: &OutboxOp,
    customer: Option<&[CustomerKey]>,
) -> Result<NewCommand, serde_json::Error> {
    let concerns = match customer {
        Some(keys) => keys.iter().map(ToString::to_string).chain([lane.to_string()]).collect(),
        None => vec![],
    };
    Ok(NewCommand {
        key,
        lane: lane.to_string(),
        session_id: session_id.to_string(),
        op: serde_json::to_string(op)?,
        keys: concerns,
        not_before: None,
        done: None,
    })
}
