//! Event intake: events stored once by id, then handed to the rules in arrival order.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Event id.
    pub id: String,
    /// Session id.
    pub session_id: String,
    /// Event type.
    pub event_type: String,
    /// Event time.
    pub at: DateTime<Utc>,
    /// The event as JSON.
    pub body: String,
}

/// What an intake did. A batch with a conflict stores nothing: `accepted` and `duplicates`
/// are then 0 and `conflicts` names every refused id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Newly stored.
    pub accepted: u64,
    /// Ids already known with the same content (exact repeats: nothing changes).
    pub duplicates: u64,
    /// Ids already known with other content; when any, nothing of the batch was stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<IdConflict>,
}

impl IngestOutcome {
    /// An outcome without conflicts.
    pub fn counts(accepted: u64, duplicates: u64) -> Self {
        IngestOutcome { accepted, duplicates, conflicts: Vec::new() }
    }
}

/// An event id sent again with other content (session, type, time or data), and the earlier
/// event that holds it (stored before, or earlier in the same batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdConflict {
    /// The event id.
    pub id: String,
    /// Session of the earlier event.
    pub session_id: String,
    /// Type of the earlier event.
    pub event_type: String,
}

/// A stored event waiting for the rules.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// Arrival order.
    pub seq: i64,
    /// Session id.
    pub session_id: String,
    /// The event as JSON.
    pub body: String,
    /// When intake stored it (RFC 3339, as stored).
    pub received_at: String,
}

/// Storage of incoming events.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores a batch atomically. A known id with the same body (compared as JSON) is a
    /// duplicate; with another body it is a conflict, and then nothing of the batch is stored.
    async fn ingest(&self, events: &[NewEvent]) -> Result<IngestOutcome>;
    /// Stores several batches in one durable commit; each batch is counted on its own, and a
    /// batch with a conflict is left out whole without failing the others.
    async fn ingest_groups(&self, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>>;
    /// Oldest events the rules have not applied yet, of the given rules shards only (all
    /// when `None`; see [`crate::cluster`]).
    async fn pending_events(&self, shards: Option<&[i32]>, limit: i64) -> Result<Vec<PendingEvent>>;
    /// [`EventStore::pending_events`] but those numbered in `besides` (events whose steps are
    /// being committed): up to `limit` others, however many of those come first.
    async fn pending_events_besides(
        &self,
        shards: Option<&[i32]>,
        limit: i64,
        besides: &std::collections::HashSet<i64>,
    ) -> Result<Vec<PendingEvent>> {
        let wider = limit.saturating_add(i64::try_from(besides.len()).unwrap_or(i64::MAX));
        let mut out = self.pending_events(shards, wider).await?;
        out.retain(|e| !besides.contains(&e.seq));
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(out)
    }
    /// Number of events not applied yet.
    async fn pending_event_count(&self) -> Result<i64>;
    /// Whether the listed events are applied and their sessions' writes done or parked.
    async fn settled(&self, event_ids: &[String]) -> Result<bool>;
    /// The bodies of the events received at or after `since`, in arrival order, at most
    /// `limit` (the console's what-if replays them).
    async fn events_since(&self, since: DateTime<Utc>, limit: i64) -> Result<Vec<String>>;
}
