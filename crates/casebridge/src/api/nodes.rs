//! `GET /v1/nodes`: the nodes sharing this database, their liveness and their work.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;
use crate::error::ApiResult;

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/nodes", get(list_nodes))
}

/// One node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeOut {
    /// Unique per process (a restarted node is a new one).
    pub id: String,
    /// Host name and listening address.
    pub name: String,
    /// casebridge version.
    pub version: String,
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// `live` (heartbeat within the lease time), `stopped` (left cleanly) or `lost` (stopped
    /// answering: its leases have been or will be taken over).
    pub state: String,
    /// The rules shards it works on.
    pub rules_shards: Vec<i32>,
    /// CRM writes it is delivering now.
    pub leased_writes: i64,
    /// Whether this is the node that answered.
    pub this_node: bool,
}

/// The nodes.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodesOut {
    /// Nodes seen in the last day, newest first.
    pub nodes: Vec<NodeOut>,
    /// Live nodes.
    pub live: usize,
    /// Rules shards the work is split into.
    pub shards: i32,
    /// How long a lease lasts without a heartbeat, in seconds.
    pub lease_seconds: f64,
    /// `postgres` (several nodes may share it) or `sqlite` (one node).
    pub database: String,
}

/// `GET /v1/nodes`: the nodes on this database.
#[utoipa::path(get, path = "/v1/nodes", tag = "operations",
    responses((status = 200, description = "The nodes, newest first", body = NodesOut)))]
pub async fn list_nodes(State(st): State<AppState>) -> ApiResult<Json<NodesOut>> {
    let rows = st.store.nodes(crate::node::lease_ms()).await?;
    let me = &st.pipeline.node.id;
    let nodes: Vec<NodeOut> = rows
        .into_iter()
        .map(|n| NodeOut {
            this_node: &n.id == me,
            state: if n.live {
                "live"
            } else if n.stopped {
                "stopped"
            } else {
                "lost"
            }
            .into(),
            id: n.id,
            name: n.name,
            version: n.version,
            started_at: n.started_at,
            last_seen: n.last_seen,
            rules_shards: n.shards,
            leased_writes: n.leased_writes,
        })
        .collect();
    Ok(Json(NodesOut {
        live: nodes.iter().filter(|n| n.state == "live").count(),
        nodes,
        shards: casebridge_store::SHARDS,
        lease_seconds: crate::node::lease().as_secs_f64(),
        database: if st.store.shared() { "postgres" } else { "sqlite" }.into(),
    }))
}
