//! This node among the others on one database: its heartbeat, the rules shards it holds, the
//! leases of the CRM writes it delivers, and the settings other nodes saved.
//!
//! Every lease runs for [`lease()`] (15 s; `CASEBRIDGE_LEASE_MS`) by the database's clock and
//! is renewed every fifth of it. A node acts on a lease only while its last renewal is
//! younger than two thirds of it, so a node that stalls stops before another may take over;
//! what a stalled node still tries to record afterwards is refused by the fences in storage.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use casebridge_store::{NodeBeat, SHARDS, Store};
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

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
fn usable() -> Duration {
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
    shards: Mutex<(Vec<i32>, Option<Instant>)>,
    /// When the last renewal of the write leases started.
    renewed: Mutex<Option<Instant>>,
    /// The settings document as last loaded or saved here.
    settings_doc: Mutex<Option<String>>,
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

    fn beat(&self) -> NodeBeat {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

/// One heartbeat: liveness, shards, write leases, settings saved by other nodes.
pub async fn beat(p: &Pipeline, sealer: &crate::secrets::Sealer) -> anyhow::Result<()> {
    let node = &p.node;
    let started = Instant::now();
    p.store.heartbeat(&node.beat()).await?;
    let renewed = p.store.renew_write_leases(&node.id, lease_ms()).await?;
    *lock(&node.renewed) = Some(started);
    let nodes = p.store.nodes(lease_ms()).await?;
    let others = nodes.iter().filter(|n| n.live && n.id != node.id).count();
    let live = others + 1;
    node.alone.store(others == 0, Ordering::Release);
    metrics::gauge!("casebridge_nodes_live").set(live as f64);
    metrics::gauge!("casebridge_node_write_leases").set(renewed as f64);
    let want = (SHARDS as usize).div_ceil(live);
    if let Some(claim) = p.store.claim_shards(&node.id, want, lease_ms()).await? {
        if claim.taken_over > 0 {
            tracing::info!(shards = claim.taken_over, "Took over rules shards of a node that stopped answering.");
            metrics::counter!("casebridge_lease_takeovers_total", "kind" => "rules_shard").increment(claim.taken_over);
        }
        metrics::gauge!("casebridge_node_rules_shards").set(claim.held.len() as f64);
        let mut s = lock(&node.shards);
        if s.0 != claim.held {
            tracing::debug!(shards = ?claim.held, "Rules shards held.");
        }
        *s = (claim.held, Some(started + usable()));
    }
    if node.shared {
        follow_settings(p, sealer).await?;
        p.load_fields().await?;
    }
    Ok(())
}

/// Loads the settings when another node saved them.
async fn follow_settings(p: &Pipeline, sealer: &crate::secrets::Sealer) -> anyhow::Result<()> {
    let doc = p.store.settings_get().await?;
    if *lock(&p.node.settings_doc) == doc {
        return Ok(());
    }
    // Under the settings lock, so a save on this node is not taken for another node's.
    let mut guard = p.settings.write().await;
    let doc = p.store.settings_get().await?;
    if *lock(&p.node.settings_doc) == doc {
        return Ok(());
    }
    let Some(text) = doc.clone() else { return Ok(()) };
    let mut v: serde_json::Value = serde_json::from_str(&text)?;
    sealer.open(&mut v).map_err(|e| anyhow::anyhow!("settings saved by another node: {e}"))?;
    let s = casebridge_rules::settings::parse_settings(v)
        .map_err(|e| anyhow::anyhow!("settings saved by another node are unreadable: {e:?}"))?;
    if guard.crm != s.crm {
        let (config, _) = casebridge_crm::ConnectorConfig::parse(&s.crm)
            .map_err(|e| anyhow::anyhow!("the crm settings are invalid: {}", crate::config::describe(&e)))?;
        p.set_crm(p.connect(&config)).await?;
    }
    *guard = Arc::new(s);
    p.node.saw_settings(doc);
    tracing::info!("Settings saved by another node loaded.");
    metrics::counter!("casebridge_settings_reloads_total").increment(1);
    Ok(())
}

/// After its first heartbeat, a node joining live ones waits until each of them has beaten
/// again (so has seen it and stopped caching CRM lookups) before it works, at most a lease.
pub async fn join(p: &Pipeline) -> anyhow::Result<()> {
    let deadline = Instant::now() + lease();
    let mut joined = None;
    loop {
        let nodes = p.store.nodes(lease_ms()).await?;
        // Times by the database's clock: this node's first heartbeat.
        let me = *joined.get_or_insert_with(|| nodes.iter().find(|n| n.id == p.node.id).map(|n| n.last_seen));
        let waiting =
            nodes.iter().filter(|n| n.live && n.id != p.node.id && me.is_none_or(|t| n.last_seen <= t)).count();
        if waiting == 0 || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Beats until cancelled, then gives back this node's shards and leases.
pub async fn run(p: Arc<Pipeline>, sealer: Arc<crate::secrets::Sealer>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(heartbeat()) => {},
        }
        if let Err(e) = beat(&p, &sealer).await {
            tracing::warn!(error = %e, "Heartbeat failed; leases are given up if it keeps failing.");
        }
    }
}

/// A stopping node's shards and leases go to the others at once.
pub async fn leave(store: &Arc<dyn Store>, node: &Node) {
    if let Err(e) = store.leave(&node.id).await {
        tracing::warn!(error = %e, "Could not give back this node's leases; they run out on their own.");
    }
}
