//! The saved settings document and the history of its changes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

/// One saved version of the settings document, as a change made it.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsVersion {
    /// Increasing id of the change.
    pub id: i64,
    /// When it was saved.
    pub at: DateTime<Utc>,
    /// Who made it (`token`, `loopback`, `config`…).
    pub source: String,
    /// The dotted paths whose values changed.
    pub changed: Vec<String>,
    /// The version this change restored, when it was a restore.
    pub restored_from: Option<i64>,
    /// The whole document after the change (secrets included: redact before showing).
    pub doc: String,
}

/// A change about to be saved.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsChange<'a> {
    /// The whole new document.
    pub doc: &'a str,
    /// Who makes it.
    pub source: &'a str,
    /// The dotted paths whose values change.
    pub changed: &'a [String],
    /// The version restored, when it is a restore.
    pub restored_from: Option<i64>,
}

/// Storage of the settings document (one JSON document, replaced whole) and its history.
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// The saved settings document.
    async fn settings_get(&self) -> Result<Option<String>>;
    /// Saves the settings document without a history row (start-up from a config file).
    async fn settings_put(&self, doc: &str) -> Result<()>;
    /// Saves the settings document and its history row in one transaction; the row's id.
    async fn settings_change(&self, change: SettingsChange<'_>) -> Result<i64>;
    /// The latest `limit` changes, newest first.
    async fn settings_history(&self, limit: u32) -> Result<Vec<SettingsVersion>>;
    /// One change by id.
    async fn settings_version(&self, id: i64) -> Result<Option<SettingsVersion>>;
}
