//! What native ingest (api.md "Native event formats") keeps between requests: the lock that
//! makes a session's snapshot change whole, and the SNS signature checks with their
//! certificate cache.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::api::ingest::sns::SnsVerifier;

/// Native ingest's shared state.
pub struct NativeIngest {
    /// One native request at a time: a session's snapshot is read, changed and stored whole.
    pub lock: Mutex<()>,
    /// Checks SNS message signatures.
    pub sns: SnsVerifier,
}

impl NativeIngest {
    /// With SNS signing certificates fetched from AWS, or `sns_cert` (PEM) trusted instead.
    pub fn new(sns_cert: Option<&[u8]>) -> anyhow::Result<Arc<NativeIngest>> {
        Ok(Arc::new(NativeIngest { lock: Mutex::new(()), sns: SnsVerifier::new(sns_cert)? }))
    }
}
