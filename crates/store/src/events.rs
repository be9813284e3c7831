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

/// What an intake did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Newly stored.
    pub accepted: u64,
    /// Already known ids.
    pub duplicates: u64,
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
}

/// Storage of incoming events.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores a batch atomically; known ids count as duplicates.
    async fn ingest(&self, events: &[NewEvent]) -> Result<IngestOutcome>;
    /// Stores several batches in one durable commit; each batch is counted on its own.
    async fn ingest_groups(&self, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>>;
    /// Oldest events the rules have not applied yet.
    async fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>>;
    /// Number of events not applied yet.
    async fn pending_event_count(&self) -> Result<i64>;
    /// Whether the listed events are applied and their sessions' writes done or parked.
    async fn settled(&self, event_ids: &[String]) -> Result<bool>;
}
