//! This node's identity among the others on one database, and the lease timings every
//! node works by (the heartbeat that renews them is in `cluster.rs`).
//!
//! Every lease runs for [`lease()`] (15 s; `CASEBRIDGE_LEASE_MS`) by the database's clock and
//! is renewed every fifth of it. A node acts on a lease only while its last renewal is
//! younger than two thirds of it, so a node that stalls stops before another may take over;
//! what a stalled node still tries to record afterwards is refused by the fences in storage.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use casebridge_store::NodeBeat;

/// How long a lease lasts without renewal, unless configured.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

static LEASE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Sets the lease length (once, at start).
pub fn configure(lease: Duration) {
    let _ = LEASE.set(lease.max(Duration::from_millis(500)));
}

/// How long a lease (a rules shard, a CRM write being delivered, a node's liveness) lasts
/// without renewal.
pub fn lease() -> Duration {
    *LEASE.get().unwrap_or(&DEFAULT_LEASE)
}

/// How often leases are renewed and settings checked.
pub fn heartbeat() -> Duration {
    lease() / 5
}

/// A lease is acted on only while younger than this.
pub(crate) fn usable() -> Duration {
    lease() * 2 / 3
}

/// This node.
pub struct Node {
    /// Unique per process.
    pub id: String,
    /// Host name and listening address.
    name: Mutex<String>,
    started_at: chrono::DateTime<chrono::Utc>,
    /// Several nodes may share the database.
    pub shared: bool,
    /// Rules shards held, and until when (local clock) they may be worked on.
    pub(crate) shards: Mutex<(Vec<i32>, Option<Instant>)>,
    /// When the last renewal of the write leases started.
    pub(crate) renewed: Mutex<Option<Instant>>,
    /// The settings document as last loaded or saved here.
    pub(crate) settings_doc: Mutex<Option<String>>,
    /// No other node is live (the CRM lookup cache is on only then).
    pub alone: Arc<AtomicBool>,
}

impl Node {
    /// A new node identity for this process; `alone` is the flag its connectors read.
    pub fn new(shared: bool, alone: Option<Arc<AtomicBool>>) -> Node {
        Node {
            alone: alone.unwrap_or_else(|| Arc::new(AtomicBool::new(!shared))),
            id: uuid::Uuid::new_v4().to_string(),
            name: Mutex::new(hostname()),
            started_at: chrono::Utc::now(),
            shared,
            shards: Mutex::new((vec![], None)),
            renewed: Mutex::new(None),
            settings_doc: Mutex::new(None),
        }
    }

    /// Names the node after the address it listens on.
    pub fn set_address(&self, addr: std::net::SocketAddr) {
        *lock(&self.name) = format!("{} {addr}", hostname());
    }

    /// What the heartbeat says of this node.
    pub fn beat(&self) -> NodeBeat {
        NodeBeat {
            id: self.id.clone(),
            name: lock(&self.name).clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
        }
    }

    /// The rules shards this node may work on now: `None` for all of them (one node), an
    /// empty list when its claim is too old to act on.
    pub fn rules_shards(&self) -> Option<Vec<i32>> {
        if !self.shared {
            return None;
        }
        let s = lock(&self.shards);
        match s.1 {
            Some(until) if until > Instant::now() => Some(s.0.clone()),
            _ => Some(vec![]),
        }
    }

    /// Whether a write claimed at `claimed` may still be sent: its lease, from the claim or
    /// the last renewal, has a third or more to run.
    pub fn lease_fresh(&self, claimed: Instant) -> bool {
        let from = lock(&self.renewed).map_or(claimed, |r| r.max(claimed));
        from.elapsed() < usable()
    }

    /// Remembers the settings document this node saved or loaded (so it is not loaded again).
    pub fn saw_settings(&self, doc: Option<String>) {
        *lock(&self.settings_doc) = doc;
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The lease length in the database's milliseconds.
pub fn lease_ms() -> i64 {
    lease().as_millis() as i64
}
