//! SQLite implementation. The hot paths (intake, rules commits and reads, outbox progress, the
//! built-in CRM) run on connections the store holds itself, one writer and a few readers
//! (see `direct`); the rest goes through sqlx pools: a writer, a `synchronous=FULL` writer
//! for acknowledged settings, and readers. Every write
//! transaction takes the lock at its start (`BEGIN IMMEDIATE`), so writers queue on SQLite's
//! busy handler rather than fail.
//!
//! Events are in a file of their own (`events_file`), with its own owned writer: intake never
//! queues behind the rules' commits, and the rules record what they applied in the main file
//! (`unapplied`).
//!
//! Durability: WAL mode. Acknowledged writes fsync before the answer (intake's groups by a
//! sync of the WAL file after the writer's lock is released: see `direct::Owned`); everything
//! else commits with `NORMAL`. Work derived from events (rules
//! steps, outbox progress, built-in CRM writes) survives a process crash either way; a power
//! loss can only drop a suffix of that derived work, which is then redone from the stored
//! events, idempotently. The WAL keeps commits in order, so a FULL commit also makes every
//! earlier commit durable.

mod agents;
mod builtin_crm;
mod checkpoint;
mod cluster;
mod direct;
mod events;
mod events_file;
mod native;
mod outbox;
mod rows;
mod sessions;
mod settings;
mod staged;
mod unapplied;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use self::events_file::events_path;
use self::events_file::prepare_events_file;
use self::rows::insert_event_r;
use crate::{IdConflict, IngestOutcome, NewEvent, Result, Store, StoreError, ts};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite-backed store (and built-in CRM).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) write: SqlitePool,
    /// The `synchronous=FULL` writer.
    pub(crate) durable: SqlitePool,
    pub(crate) read: SqlitePool,
    /// The hot paths' own connections (see `direct`).
    pub(crate) owned: std::sync::Arc<direct::Owned>,
    /// The events file's connections: intake writes there alone (see [`events_path`]).
    pub(crate) events: std::sync::Arc<direct::Owned>,
    /// The events the rules have not applied yet.
    pub(crate) unapplied: std::sync::Arc<unapplied::Unapplied>,
    /// The main file.
    path: PathBuf,
}

/// sqlx's options for the file: WAL, created when missing, waits up to 10 s for the lock.
fn connect_options(path: &Path, sync: SqliteSynchronous) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(sync)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(false)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file; migrations are applied by [`Store::migrate`].
    pub async fn open(path: &Path) -> Result<Self> {
        direct::configure_process();
        let opts = connect_options(path, SqliteSynchronous::Normal);
        let write = SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(opts.clone()).await?;
        let durable = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(opts.read_only(false)).await?;
        let owned = std::sync::Arc::new(direct::Owned::open(path, direct::Sync::Service, false)?);
        let events_file = events_path(path);
        let last = prepare_events_file(&events_file, true)?;
        let events = std::sync::Arc::new(direct::Owned::open(&events_file, direct::Sync::Service, false)?);
        Ok(Self::assemble(write, durable, read, owned, events, last, path))
    }

    fn assemble(
        write: SqlitePool,
        durable: SqlitePool,
        read: SqlitePool,
        owned: std::sync::Arc<direct::Owned>,
        events: std::sync::Arc<direct::Owned>,
        last: i64,
        path: &Path,
    ) -> Self {
        let unapplied = std::sync::Arc::new(unapplied::Unapplied::new(last));
        let sink = std::sync::Arc::downgrade(&unapplied);
        owned.on_applied(Box::new(move |seqs| {
            if let Some(u) = sink.upgrade() {
                u.committed(seqs);
            }
        }));
        SqliteStore { write, durable, read, owned, events, unapplied, path: path.to_path_buf() }
    }

    /// A private scratch database (for `simulate`): a temporary file without fsync, removed
    /// when the store is dropped; its size is bounded by the disk rather than memory.
    pub async fn scratch() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("casebridge-scratch-{}.db", uuid::Uuid::new_v4()));
        direct::configure_process();
        let opts = connect_options(&path, SqliteSynchronous::Off);
        let pool = SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(opts.clone()).await?;
        let read = SqlitePoolOptions::new().max_connections(2).connect_with(opts).await?;
        let owned = std::sync::Arc::new(direct::Owned::open(&path, direct::Sync::Off, true)?);
        let events_file = events_path(&path);
        let last = prepare_events_file(&events_file, false)?;
        let events = std::sync::Arc::new(direct::Owned::open(&events_file, direct::Sync::Off, true)?);
        Ok(Self::assemble(pool.clone(), pool, read, owned, events, last, &path))
    }

    /// Whether every migration is applied.
    async fn migrated(&self) -> Result<bool> {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(&self.read)
            .await
            .unwrap_or(0);
        if (applied as usize) < MIGRATOR.iter().count() {
            return Ok(false);
        }
        let old_events: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'")
                .fetch_one(&self.read)
                .await?;
        Ok(old_events == 0)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ready(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        if !self.migrated().await? {
            return Err(StoreError::Conflict("migrations are not applied: run `casebridge migrate`".into()));
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.write).await?;
        let path = self.path.clone();
        let last = tokio::task::spawn_blocking(move || events_file::move_events(&path))
            .await
            .map_err(std::io::Error::other)??;
        self.unapplied.synced_exactly(last);
        Ok(())
    }

    async fn close(&self) {
        self.write.close().await;
        self.durable.close().await;
        self.read.close().await;
    }

    fn pace_ledger(&self) -> Option<std::sync::Arc<dyn casebridge_crm::pacing::PaceLedger>> {
        None
    }

    fn writer_stats(&self) -> Option<crate::WriterStats> {
        Some(self.owned.stats())
    }
}

/// Stores several intake batches in one durable commit (group commit). Each batch of several
/// events runs in its own savepoint: a batch with an id conflict is rolled back alone, the
/// others commit.
pub(crate) async fn ingest_on(store: &SqliteStore, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>> {
    let (outs, last) = store
        .events
        .durable(|c| {
            let now = ts(Utc::now());
            let mut outs = Vec::with_capacity(groups.len());
            for events in groups {
                // A lone event needs no savepoint: when its id is taken, nothing was written.
                let guarded = events.len() > 1;
                if guarded {
                    direct::run_cached(c, "SAVEPOINT batch")?;
                }
                let mut out = IngestOutcome::default();
                for e in events.iter() {
                    if insert_event_r(c, e, &now)? {
                        out.accepted += 1;
                    } else {
                        match earlier_conflict(c, e)? {
                            None => out.duplicates += 1,
                            Some(x) => out.conflicts.push(x),
                        }
                    }
                }
                if !out.conflicts.is_empty() {
                    if guarded {
                        direct::run_cached(c, "ROLLBACK TO batch")?;
                    }
                    out.accepted = 0;
                    out.duplicates = 0;
                }
                if guarded {
                    direct::run_cached(c, "RELEASE batch")?;
                }
                outs.push(out);
            }
            Ok((outs, last_event(c)?))
        })
        .await?;
    store.unapplied.synced_upto(last);
    Ok(outs)
}

/// The events file's last event number (its commit is synced once `durable` returns).
pub(crate) fn last_event(c: &rusqlite::Connection) -> Result<i64> {
    Ok(c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?.query_row([], |r| r.get(0))?)
}

/// The stored event holding `e`'s id, when its content differs (compared as JSON values, so
/// member order does not count).
fn earlier_conflict(c: &rusqlite::Connection, e: &NewEvent) -> Result<Option<IdConflict>> {
    let (session_id, event_type, body): (String, String, String) = c
        .prepare_cached("SELECT session_id, type, body FROM events WHERE id = ?")?
        .query_row([&e.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let same =
        match (serde_json::from_str::<serde_json::Value>(&body), serde_json::from_str::<serde_json::Value>(&e.body)) {
            (Ok(a), Ok(b)) => a == b,
            _ => body == e.body,
        };
    Ok((!same).then(|| IdConflict { id: e.id.clone(), session_id, event_type }))
}

/// Writes a path for a `sqlite://` URL: bytes other than plain path characters are
/// percent-encoded, so any file name (`?`, `#`, `%`, spaces, non-UTF-8) survives the trip.
pub(crate) fn url_path(path: &Path) -> String {
    let mut out = String::new();
    for &b in path_bytes(path).iter() {
        if b.is_ascii_alphanumeric() || b"/\\._-~:+,=@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the path part of a `sqlite://` URL (the text after the scheme).
pub(crate) fn path_from_url(s: &str) -> Result<PathBuf> {
    let bad = |why: &str| StoreError::Unsupported(format!("cannot open storage sqlite://{s}: {why}"));
    if s.is_empty() {
        return Err(bad("the URL names no file"));
    }
    if s.contains('?') || s.contains('#') {
        return Err(bad("options after ? or # are not supported; percent-encode them in a file name"));
    }
    let raw = s.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let b = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("a % is not followed by two hex digits"))?;
            bytes.push(b);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    path_from_bytes(bytes).ok_or_else(|| bad("the file name is not valid on this system"))
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().as_bytes().to_vec()
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    String::from_utf8(bytes).ok().map(PathBuf::from)
}

#[cfg(test)]
mod tests;
