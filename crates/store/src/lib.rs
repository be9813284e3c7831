//! Storage for casebridge: events, sessions and their timelines, the CRM outbox, settings,
//! agents, native platform events, and the built-in CRM. One trait per concern ([`EventStore`],
//! [`NativeStore`], [`SessionStore`],
//! [`OutboxStore`], [`SettingsStore`], [`AgentStore`], and the built-in CRM's
//! [`BuiltinCrmStore`]), joined in [`Store`], which each backend implements with its own
//! migrations. [`open`] picks the backend from a URL.

pub mod agents;
pub mod cluster;
pub mod events;
pub mod native;
pub mod outbox;
pub mod postgres;
pub mod sessions;
pub mod settings;
pub mod sqlite;
#[cfg(feature = "test-server")]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

tokio::task_local! {
    static RULES_WORKER: ();
}

/// Runs `work` as the rules worker's: a backend with a pool (PostgreSQL) sends its statements
/// through connections of their own, so that the worker every event waits for never queues
/// behind the delivery lanes for a connection.
pub async fn as_rules_worker<F: std::future::Future>(work: F) -> F::Output {
    RULES_WORKER.scope((), work).await
}

/// Whether the running task is the rules worker's (see [`as_rules_worker`]).
pub(crate) fn in_rules_worker() -> bool {
    RULES_WORKER.try_with(|_| ()).is_ok()
}

pub use agents::AgentStore;
pub use casebridge_crm::builtin::storage::BuiltinCrmStore;
pub use cluster::{ClusterStore, KeyLocks, NodeBeat, NodeRow, SHARDS, ShardClaim};
pub use events::{EventStore, IdConflict, IngestOutcome, NewEvent, PendingEvent};
pub use native::{NativeBatch, NativeRow, NativeStore, NewNative};
pub use outbox::{Completed, NewCommand, OutboxRow, OutboxState, OutboxStore, UnknownState};
pub use postgres::PgStore;
pub use sessions::{SessionFilter, SessionGauges, SessionRow, SessionStore, StepCommit, entry_kind, entry_kind_str};
pub use settings::{SettingsChange, SettingsStore, SettingsVersion};
pub use sqlite::SqliteStore;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// SQLite refused or failed (work run on the connection's handle).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations could not be applied.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored JSON could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A stored state name could not be read back.
    #[error("stored data is corrupt: {0}")]
    CorruptState(#[from] UnknownState),
    /// A storage file could not be synced to disk.
    #[error("storage file error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage URL names no backend this build can open.
    #[error("{0}")]
    Unsupported(String),
    /// Something the caller asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with stored data.
    #[error("{0}")]
    Conflict(String),
    /// Work this node claimed was taken over by another (its lease ran out, or the events
    /// were applied meanwhile): nothing was written.
    #[error("lease lost: {0}")]
    Fenced(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Formats a time the way every table stores it (sortable text).
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a stored time.
pub fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

/// All of casebridge's storage behind one object; upcast an `Arc<dyn Store>` to hand a
/// component only the concern it needs.
#[async_trait]
pub trait Store:
    EventStore + NativeStore + SessionStore + OutboxStore + SettingsStore + AgentStore + BuiltinCrmStore + ClusterStore
{
    /// Database reachable and migrated.
    async fn ready(&self) -> Result<()>;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Closes the connections; later calls fail.
    async fn close(&self);
    /// The ledger that paces CRM requests across every node sharing this database (none
    /// when one node is all there is).
    fn pace_ledger(&self) -> Option<std::sync::Arc<dyn casebridge_crm::pacing::PaceLedger>>;
    /// How busy the database's one writer is, where there is one (SQLite).
    fn writer_stats(&self) -> Option<WriterStats> {
        None
    }
}

/// How busy SQLite's one writer is, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    /// Seconds the writer has been held since the store opened.
    pub busy_seconds: f64,
    /// Writes waiting for the writer now.
    pub waiting: u64,
}

/// Opens the storage a URL names: `sqlite://path` or `sqlite:path` (the file is created when
/// missing), `sqlite::memory:` for a private scratch database (a temporary file without
/// fsync, removed when the store is dropped), `postgres://…` (or `postgresql://…`) for a
/// PostgreSQL database, with `pool_size` and `statement_timeout_ms` among its query
/// parameters (see [`postgres::PgOptions`]). Migrations are applied by [`Store::migrate`].
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::open(url).await?));
    }
    if url == "sqlite::memory:" {
        return Ok(Arc::new(SqliteStore::scratch().await?));
    }
    match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        Some(rest) => Ok(Arc::new(SqliteStore::open(&sqlite::path_from_url(rest)?).await?)),
        None => Err(StoreError::Unsupported(format!(
            "cannot open storage {url:?}: the URL must start with sqlite:// or postgres://"
        ))),
    }
}

/// The URL of the SQLite database kept in a data folder (`<dir>/casebridge.db`).
pub fn sqlite_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}", sqlite::url_path(&data_dir.join("casebridge.db")))
}
