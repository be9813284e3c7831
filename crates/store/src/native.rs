//! Native ingest: platform events kept once by their own id, the per-session snapshot of what
//! they told, and the casebridge events made from them, all stored in one commit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{NewEvent, Result};

/// A platform event to keep.
#[derive(Debug, Clone)]
pub struct NewNative {
    /// amazon-connect, twilio, genesys or cti.
    pub source: String,
    /// The platform's id of the event.
    pub native_id: String,
    /// The casebridge session it belongs to.
    pub session_id: String,
    /// The platform's event type.
    pub event_type: String,
    /// Event time.
    pub at: DateTime<Utc>,
    /// The payload as received.
    pub body: String,
    /// The casebridge events it became.
    pub event_ids: Vec<String>,
}

/// What one native request stores, in one commit.
#[derive(Debug, Clone, Default)]
pub struct NativeBatch {
    /// The platform events (a known one is left as it is).
    pub natives: Vec<NewNative>,
    /// Session id → its new snapshot (JSON).
    pub snapshots: Vec<(String, String)>,
    /// casebridge events made from them (a known id is a duplicate).
    pub events: Vec<NewEvent>,
}

/// A kept platform event, as a session shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NativeRow {
    /// amazon-connect, twilio, genesys or cti.
    pub source: String,
    /// The platform's id of the event.
    pub id: String,
    /// The platform's event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Event time.
    pub at: DateTime<Utc>,
    /// When casebridge received it.
    pub received_at: DateTime<Utc>,
    /// The casebridge events it became.
    pub event_ids: Vec<String>,
    /// The payload as received.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

/// Storage of native events.
#[async_trait]
pub trait NativeStore: Send + Sync + 'static {
    /// Which of these platform event ids of a source are already kept.
    async fn native_known(&self, source: &str, native_ids: &[String]) -> Result<Vec<String>>;
    /// The stored snapshot of a session, if any.
    async fn native_snapshot(&self, session_id: &str) -> Result<Option<String>>;
    /// Stores a batch durably, atomically; returns how many casebridge events were new.
    async fn ingest_native(&self, batch: &NativeBatch) -> Result<u64>;
    /// The platform events of a session, oldest first.
    async fn native_events(&self, session_id: &str) -> Result<Vec<NativeRow>>;
}
