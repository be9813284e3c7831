//! The saved settings document.

use async_trait::async_trait;

use crate::Result;

/// Storage of the settings document (one JSON document, replaced whole).
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// The saved settings document.
    async fn settings_get(&self) -> Result<Option<String>>;
    /// Saves the settings document.
    async fn settings_put(&self, doc: &str) -> Result<()>;
}
