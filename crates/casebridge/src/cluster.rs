//! The heartbeat of this node among the others on one database: liveness, the rules shards it
//! holds, the leases of the CRM writes it delivers, and the settings other nodes saved (the
//! node itself and the lease timings are in `node.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use casebridge_store::{SHARDS, Store};
use tokio_util::sync::CancellationToken;

use crate::node::{Node, heartbeat, lease, lease_ms, lock, usable};
use crate::pipeline::Pipeline;

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
    let Some(text) = doc.as_deref() else { return Ok(()) };
    let s = crate::secrets::stored_settings(sealer, text).map_err(|e| e.context("settings saved by another node"))?;
    p.follow_crm(&guard.crm, &s.crm).await?;
    *guard = Arc::new(s);
    p.node.saw_settings(doc);
    tracing::info!("Settings saved by another node loaded.");
    metrics::counter!("casebridge_settings_reloads_total").increment(1);
    Ok(())
}

/// After its first heartbeat, a node joining live ones waits until each of them has beaten
/// again (so has seen it and stopped caching CRM lookups) before it works, at most a lease.
pub async fn join(p: &Pipeline) -> anyhow::Result<()> {
    if !p.node.shared {
        // One process owns an SQLite file: a node still shown live is this one's predecessor,
        // killed before it could leave. Its leases go back now rather than when they run out.
        for n in p.store.nodes(lease_ms()).await?.iter().filter(|n| n.live && n.id != p.node.id) {
            p.store.leave(&n.id).await?;
        }
        return Ok(());
    }
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
