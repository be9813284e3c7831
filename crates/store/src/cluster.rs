//! Several nodes on one database: who is alive, which rules shards each node works on, and
//! per-customer locks held across a rules step's CRM lookups. A backend that serves one node
//! (SQLite) answers with "everything is mine".

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// Rules work is split by session into this many shards (PostgreSQL: the low bits of
/// `hashtextextended(session_id, 0)`); each is worked on by one node at a time.
pub const SHARDS: i32 = 16;

/// What a node says of itself at each heartbeat.
#[derive(Debug, Clone)]
pub struct NodeBeat {
    /// Unique per process.
    pub id: String,
    /// Host name and listening address, for people.
    pub name: String,
    /// casebridge version.
    pub version: String,
    /// When the process started.
    pub started_at: DateTime<Utc>,
}

/// A node as the database knows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    /// Unique per process.
    pub id: String,
    /// Host name and listening address.
    pub name: String,
    /// casebridge version.
    pub version: String,
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// Heartbeat within the lease time (and not stopped).
    pub live: bool,
    /// Stopped cleanly.
    pub stopped: bool,
    /// Rules shards it holds.
    pub shards: Vec<i32>,
    /// CRM writes it is delivering now.
    pub leased_writes: i64,
}

/// The shards a node holds after a claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardClaim {
    /// Every shard held now, ascending.
    pub held: Vec<i32>,
    /// Shards taken from a node whose lease had run out.
    pub taken_over: u64,
}

/// Per-customer locks that outlive a transaction: taken before a rules step's lookups, held
/// until its outcome is committed, so another node's step for the same customer waits.
#[async_trait]
pub trait KeyLocks: Send + Sync {
    /// Takes all of `keys` or none; false when another node holds one.
    async fn try_lock(&mut self, keys: &[String]) -> Result<bool>;
    /// Lets go of every key taken.
    async fn release(&mut self) -> Result<()>;
}

/// Storage of the cluster's coordination.
#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// Whether several nodes may share this database (PostgreSQL) or only one (SQLite).
    fn shared(&self) -> bool;
    /// Records a node's heartbeat.
    async fn heartbeat(&self, beat: &NodeBeat) -> Result<()>;
    /// Every node seen in the last day, newest first; `live` per `lease_ms`.
    async fn nodes(&self, lease_ms: i64) -> Result<Vec<NodeRow>>;
    /// Keeps the shards `node` holds, takes free or expired ones up to `want`, gives back
    /// the ones beyond it; `None` when the backend has no shards (one node does all).
    async fn claim_shards(&self, node: &str, want: usize, lease_ms: i64) -> Result<Option<ShardClaim>>;
    /// Extends the leases of the CRM writes `node` is delivering; returns how many.
    async fn renew_write_leases(&self, node: &str, lease_ms: i64) -> Result<u64>;
    /// A stopping node gives back its shards and leases and is marked stopped.
    async fn leave(&self, node: &str) -> Result<()>;
    /// A fresh set of per-customer locks (one database connection while any is held).
    async fn key_locks(&self) -> Result<Box<dyn KeyLocks>>;
}

/// Locks for a backend serving one node: every key is free (the node's own rules worker is
/// the only one).
pub struct NoLocks;

#[async_trait]
impl KeyLocks for NoLocks {
    async fn try_lock(&mut self, _keys: &[String]) -> Result<bool> {
        Ok(true)
    }
    async fn release(&mut self) -> Result<()> {
        Ok(())
    }
}
