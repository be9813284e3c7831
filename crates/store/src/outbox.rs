//! The CRM outbox: writes waiting for delivery, one lane at a time, with retries and dead
//! letters.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Where an outbox row stands. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for a (first or further) attempt.
    Pending,
    /// Delivered.
    Done,
    /// Parked as a dead letter until someone redrives it.
    Dead,
}

impl OutboxState {
    /// Every state, in lifecycle order.
    pub const ALL: [OutboxState; 3] = [OutboxState::Pending, OutboxState::Done, OutboxState::Dead];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Done => "done",
            OutboxState::Dead => "dead",
        }
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: must be {expected}")]
pub struct UnknownState {
    /// What kind of state was parsed.
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The accepted names, for the message.
    pub expected: &'static str,
}

impl FromStr for OutboxState {
    type Err = UnknownState;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        OutboxState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownState {
            what: "outbox state",
            value: s.to_string(),
            expected: "pending, done or dead",
        })
    }
}

/// A CRM write to enqueue.
#[derive(Debug, Clone)]
pub struct NewCommand {
    /// Idempotency key.
    pub key: String,
    /// Serialization lane.
    pub lane: String,
    /// Session that caused it.
    pub session_id: String,
    /// The write as JSON.
    pub op: String,
    /// Customer keys the write concerns (see `customer_keys` in the rules crate).
    pub keys: Vec<String>,
    /// Not delivered on its own before this time (trailing writes wait to be coalesced with
    /// the session's next ones); it goes earlier as part of its lane's batch.
    pub not_before: Option<DateTime<Utc>>,
    /// Already delivered in the transaction that stores it, with this timeline line: stored
    /// done, without customer keys. Only where [`OutboxStore::one_writer`] holds (elsewhere
    /// the row is stored pending and delivered again, which the key makes harmless).
    pub done: Option<Entry>,
}

/// A write the CRM took, for [`OutboxStore::complete_commands`].
#[derive(Debug, Clone)]
pub struct Completed {
    /// The row.
    pub row: OutboxRow,
    /// Its timeline line.
    pub line: Entry,
    /// The casebridge key a create made known, and the CRM id it got.
    pub created: Option<(String, String)>,
}

/// An outbox row claimed for delivery.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Idempotency key.
    pub key: String,
    /// Lane.
    pub lane: String,
    /// Session.
    pub session_id: String,
    /// The write as JSON.
    pub op: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Where the row stands.
    pub state: OutboxState,
    /// Last failure.
    pub last_error: Option<String>,
    /// Next attempt.
    pub next_attempt_at: String,
    /// Grows with every claim: the outcome of an attempt is only recorded under the fence it
    /// was claimed with.
    #[serde(skip)]
    pub fence: i64,
    /// Claimed from a node whose lease had run out.
    #[serde(skip)]
    pub taken_over: bool,
}

/// Storage of the CRM outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Whether a CRM write that concerns any of these customer keys is still to be delivered.
    async fn keys_busy(&self, keys: &[String]) -> Result<bool>;
    /// Whether a lane has a write still to be delivered (a new write of it must go after).
    async fn lane_pending(&self, lane: &str) -> Result<bool>;
    /// Leases to `node` for `lease_ms` the due first pending row of each lane no node holds
    /// a live lease in (at most `limit`, oldest first); lanes leased by others are skipped.
    async fn claim_commands(&self, node: &str, now: DateTime<Utc>, limit: i64, lease_ms: i64)
    -> Result<Vec<OutboxRow>>;
    /// Leases to `node` the rows that go with a claimed head as one batch: the lane's next
    /// pending rows never tried yet, in order, at most `limit` (due or not).
    async fn lane_batch(&self, node: &str, head: &OutboxRow, limit: i64, lease_ms: i64) -> Result<Vec<OutboxRow>>;
    /// [`OutboxStore::claim_commands`], each head followed by its [`OutboxStore::lane_batch`]
    /// of at most `batch - 1` rows, all leased in one commit.
    async fn claim_lanes(
        &self,
        node: &str,
        now: DateTime<Utc>,
        limit: i64,
        batch: i64,
        lease_ms: i64,
    ) -> Result<Vec<Vec<OutboxRow>>>;
    /// Gives back leased rows not attempted after all.
    async fn release_commands(&self, rows: &[OutboxRow]) -> Result<()>;
    /// Marks a write done; for a create, remembers the CRM id of the key in the same commit.
    /// [`crate::StoreError::Fenced`] when the row's lease was taken over meanwhile.
    async fn complete_command(&self, row: &OutboxRow, line: Entry, created: Option<(&str, &str)>) -> Result<()>;
    /// Marks several writes done in one commit, each as [`OutboxStore::complete_command`];
    /// fenced as a whole (none is marked when one was taken over).
    async fn complete_commands(&self, done: &[Completed]) -> Result<()> {
        for d in done {
            self.complete_command(&d.row, d.line.clone(), d.created.as_ref().map(|(k, id)| (k.as_str(), id.as_str())))
                .await?;
        }
        Ok(())
    }
    /// Runs `work` with the database's writer held where the backend has one (SQLite): the
    /// writes `work` makes through this store (the built-in CRM's writes and their outcomes)
    /// then share one transaction and one commit. Elsewhere it just runs `work`.
    async fn in_one_commit<'a>(
        &'a self,
        work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>,
    ) -> Result<()> {
        work.await;
        Ok(())
    }
    /// Whether [`OutboxStore::in_one_commit`] really shares one transaction (SQLite's one
    /// writer): a rules commit may then deliver the built-in CRM's writes in its own commit.
    fn one_writer(&self) -> bool {
        false
    }
    /// Schedules another attempt (fenced like [`OutboxStore::complete_command`]).
    async fn retry_command(&self, row: &OutboxRow, error: &str, next: DateTime<Utc>, line: Option<Entry>)
    -> Result<()>;
    /// Parks a write as a dead letter (fenced like [`OutboxStore::complete_command`]).
    async fn park_command(&self, row: &OutboxRow, error: &str, line: Entry) -> Result<()>;
    /// Outbox rows in a state, oldest first.
    async fn list_commands(&self, state: OutboxState, limit: i64) -> Result<Vec<OutboxRow>>;
    /// Counts of outbox rows by state (states without rows are left out).
    async fn outbox_counts(&self) -> Result<Vec<(OutboxState, i64)>>;
    /// Puts a dead letter back in line.
    async fn redrive_command(&self, id: i64) -> Result<bool>;
    /// Puts every dead letter back in line; returns how many.
    async fn redrive_dead(&self) -> Result<u64>;
    /// An outbox row by key: (state, attempts, last error).
    async fn command_state(&self, key: &str) -> Result<Option<(OutboxState, i64, Option<String>)>>;
    /// Whether every outbox row with these keys is done, parked or attempted at least once.
    async fn commands_settled(&self, keys: &[String]) -> Result<bool>;
}

/// The outcome of an attempt whose lease another node took over is not recorded.
pub(crate) fn fenced(affected: u64, row: &OutboxRow) -> Result<()> {
    if affected == 1 {
        Ok(())
    } else {
        Err(crate::StoreError::Fenced(format!("write {} was taken over by another attempt", row.key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_their_stored_and_wire_names() {
        for (state, name) in OutboxState::ALL.into_iter().zip(["pending", "done", "dead"]) {
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
            assert_eq!(name.parse::<OutboxState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).ok(), Some(serde_json::Value::from(name)));
        }
        let err = "Dead".parse::<OutboxState>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some(r#"unknown outbox state "Dead": must be pending, done or dead"#));
    }
}
