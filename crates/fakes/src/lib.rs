//! Stateful local fakes of CRM vendors' APIs: the endpoints casebridge's connectors call plus
//! the vendor's list and read endpoints, its status codes, error bodies, pagination and
//! rate-limit headers. Every fake also answers the control routes of [`control`]:
//! `GET /__fake/stats`, `POST /__fake/faults`, `GET /__fake/objects/{type}`.

pub mod control;
pub mod kustomer;
pub mod salesforce;

use std::net::SocketAddr;
use std::sync::Arc;

pub use control::{Fake, app};

/// Makes a fresh (empty) fake.
type MakeFake = fn() -> Arc<dyn Fake>;

/// Each vendor this build fakes.
const FAKES: &[(&str, MakeFake)] = &[("kustomer", kustomer::make), ("salesforce", salesforce::make)];

/// The vendors this build fakes.
pub fn kinds() -> Vec<&'static str> {
    FAKES.iter().map(|(k, _)| *k).collect()
}

/// A fresh fake of a vendor, if this build has one.
pub fn fake(kind: &str) -> Option<Arc<dyn Fake>> {
    FAKES.iter().find(|(k, _)| *k == kind).map(|(_, make)| make())
}

/// Serves a fake on `listener` until the process ends.
pub async fn serve(fake: Arc<dyn Fake>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(kind = fake.kind(), ?addr, "Fake CRM listening.");
    axum::serve(listener, app(fake)).await
}
