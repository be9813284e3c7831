//! SQLite implementation. The hot paths (intake, rules commits and reads, outbox progress, the
//! built-in CRM) run on connections the store holds itself, one writer and a few readers
//! (see `direct`); the rest goes through sqlx pools: a writer, a `synchronous=FULL` writer
//! for acknowledged writes (native intake, wrap-ups, settings) and readers. Every write
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
mod unapplied;

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
        self.unapplied.synced_upto(last);
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
mod tests {
    use super::*;

    #[test]
    fn url_paths_round_trip() {
        for p in ["casebridge-data/casebridge.db", "/tmp/a b/c?d#e%f.db", "/tmp/ünï.db"] {
            let url = url_path(Path::new(p));
            assert!(!url.contains(['?', '#', ' ']), "{url}");
            assert_eq!(path_from_url(&url).expect("decodes"), PathBuf::from(p));
        }
    }

    /// A database file in `dir` with the migrations before `version` applied, and a pool on it
    /// for writing rows the way that schema held them.
    async fn migrated_before(dir: &tempfile::TempDir, version: i64) -> (PathBuf, sqlx::SqlitePool) {
        let path = dir.path().join("old.db");
        let url = format!("sqlite://{}?mode=rwc", url_path(&path));
        let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
        let mut before = sqlx::migrate::Migrator::DEFAULT;
        before.migrations =
            MIGRATOR.migrations.iter().filter(|m| m.version < version).cloned().collect::<Vec<_>>().into();
        before.run(&pool).await.expect("earlier migrations");
        (path, pool)
    }

    /// Sessions stored before their filter columns were written by casebridge keep their
    /// phase, outcome and phone, and the list still finds them by those.
    #[tokio::test]
    async fn session_columns_are_backfilled() {
        use crate::{SessionFilter, SessionStore};
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, pool) = migrated_before(&dir, 10).await;
        sqlx::query("INSERT INTO sessions (id, body, updated_at, first_at) VALUES ('s1', ?, '2026-12-01T10:00:00.000000Z', '2026-12-01T10:00:00.000000Z')")
            .bind(r#"{"phase":"ended","record_outcome":"appended","phone":{"number":"+14155550100","parsed":true}}"#)
            .execute(&pool)
            .await
            .expect("old row");
        pool.close().await;
        let store = SqliteStore::open(&path).await.expect("open store");
        store.migrate().await.expect("migration 10");
        let f = SessionFilter {
            phase: Some("ended".into()),
            record_outcome: Some("appended".into()),
            phone: Some("+14155550100".into()),
            limit: 10,
            ..Default::default()
        };
        let found = store.list_sessions(&f).await.expect("list");
        assert_eq!(found.len(), 1, "the old session is found by its phase, outcome and phone");
    }

    /// Events, timeline lines and outbox rows stored under AUTOINCREMENT keep their numbers;
    /// rows added after the upgrade are numbered after them, and the outbox tally still counts.
    #[tokio::test]
    async fn rows_keep_their_numbers_without_autoincrement() {
        use crate::EventStore;
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, pool) = migrated_before(&dir, 14).await;
        for (id, at) in [("e1", "2026-12-01T10:00:00Z"), ("e2", "2026-12-01T10:00:01Z")] {
            sqlx::query("INSERT INTO events (id, session_id, type, at, body, received_at) VALUES (?, 's1', 'session.created', ?, '{}', ?)")
                .bind(id).bind(at).bind(at).execute(&pool).await.expect("old event");
        }
        sqlx::query("INSERT INTO timeline (session_id, at, kind, summary) VALUES ('s1', '2026-12-01T10:00:00Z', 'note', 'old line')")
            .execute(&pool).await.expect("old line");
        sqlx::query("INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at) VALUES ('k1', 'l1', 's1', '{}', '2026-12-01T10:00:00Z', '2026-12-01T10:00:00Z')")
            .execute(&pool).await.expect("old write");
        pool.close().await;

        let store = SqliteStore::open(&path).await.expect("open store");
        store.migrate().await.expect("migration 14");
        let new = NewEvent {
            id: "e3".into(),
            session_id: "s1".into(),
            event_type: "session.ended".into(),
            at: chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:02Z").expect("time").into(),
            body: "{}".into(),
        };
        store.ingest_groups(&[std::slice::from_ref(&new)]).await.expect("new event");
        assert_eq!(event_numbers(&store).await, vec![("e1".into(), 1), ("e2".into(), 2), ("e3".into(), 3)]);
        sqlx::query("INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at) VALUES ('k2', 'l1', 's1', '{}', '2026-12-01T10:00:00Z', '2026-12-01T10:00:00Z')")
            .execute(&store.write).await.expect("new write");
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM outbox ORDER BY id").fetch_all(&store.read).await.expect("outbox");
        assert_eq!(ids, vec![1, 2]);
        let pending: i64 = sqlx::query_scalar("SELECT SUM(n) FROM outbox_tally WHERE state = 'pending'")
            .fetch_one(&store.read)
            .await
            .expect("tally");
        assert_eq!(pending, 2, "the tally counts the copied row and the new one");
        let line: String =
            sqlx::query_scalar("SELECT summary FROM timeline WHERE n = 1").fetch_one(&store.read).await.expect("line");
        assert_eq!(line, "old line");
        let autoincrement: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE sql LIKE '%AUTOINCREMENT%' AND name IN ('timeline', 'outbox')",
        )
        .fetch_one(&store.read)
        .await
        .expect("schema");
        assert_eq!(autoincrement, 0);
    }

    /// The events file's events: id and number, in order.
    async fn event_numbers(store: &SqliteStore) -> Vec<(String, i64)> {
        store
            .events
            .read(|c| {
                let mut st = c.prepare("SELECT id, seq FROM events ORDER BY seq")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
            .expect("events")
    }

    fn event(id: &str, session: &str) -> NewEvent {
        NewEvent {
            id: id.into(),
            session_id: session.into(),
            event_type: "session.created".into(),
            at: chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:02Z").expect("time").into(),
            body: "{}".into(),
        }
    }

    /// A database from before the events file: its events move into the events file with
    /// their numbers, those the rules had applied stay applied, native intake's rows move
    /// with them, and the move is not made twice.
    #[tokio::test]
    async fn events_move_into_their_own_file() {
        use crate::{EventStore, NativeStore};
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, pool) = migrated_before(&dir, 15).await;
        for (id, applied) in [("e1", 1), ("e2", 0), ("e3", 1), ("e4", 0), ("e5", 1)] {
            sqlx::query("INSERT INTO events (id, session_id, type, at, body, received_at, applied) VALUES (?, 's1', 'session.created', '2026-12-01T10:00:00Z', '{}', '2026-12-01T10:00:00Z', ?)")
                .bind(id).bind(applied).execute(&pool).await.expect("old event");
        }
        sqlx::query("INSERT INTO native_events (source, native_id, session_id, type, at, body, event_ids, received_at) VALUES ('cti', 'n1', 's1', 'call', '2026-12-01T10:00:00Z', '{}', '[\"e1\"]', '2026-12-01T10:00:00Z')")
            .execute(&pool).await.expect("old native event");
        sqlx::query("INSERT INTO native_sessions (session_id, snapshot, updated_at) VALUES ('s1', '{\"x\":1}', '2026-12-01T10:00:00Z')")
            .execute(&pool).await.expect("old snapshot");
        pool.close().await;

        let store = SqliteStore::open(&path).await.expect("open store");
        assert!(store.ready().await.is_err(), "not ready before the move");
        store.migrate().await.expect("migration 15");
        store.ready().await.expect("ready after the move");
        assert!(events_path(&path).exists());
        let pending: Vec<i64> = store.pending_events(None, 10).await.expect("pending").iter().map(|e| e.seq).collect();
        assert_eq!(pending, vec![2, 4], "what was not applied is pending, nothing else");
        assert_eq!(store.pending_event_count().await.expect("count"), 2);
        assert!(store.settled(&["e1".into(), "e3".into(), "e5".into()]).await.expect("settled"));
        assert!(!store.settled(&["e2".into()]).await.expect("settled"));
        assert_eq!(
            store.native_known("cti", &["n1".into(), "n2".into()]).await.expect("known"),
            vec!["n1".to_string()]
        );
        assert_eq!(store.native_snapshot("s1").await.expect("snapshot").as_deref(), Some("{\"x\":1}"));
        let gone: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('events', 'native_events', 'native_sessions')",
        )
        .fetch_one(&store.read)
        .await
        .expect("schema");
        assert_eq!(gone, 0, "the main file keeps no events");
        store.migrate().await.expect("a second migrate changes nothing");
        store.ingest_groups(&[std::slice::from_ref(&event("e6", "s2"))]).await.expect("new event");
        let numbers: Vec<i64> = event_numbers(&store).await.into_iter().map(|(_, n)| n).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6]);
        let pending: Vec<i64> = store.pending_events(None, 10).await.expect("pending").iter().map(|e| e.seq).collect();
        assert_eq!(pending, vec![2, 4, 6]);
    }

    /// What the rules applied stays applied across a restart, a rules commit that is rolled
    /// back leaves its events pending, and applied events below the oldest pending one are
    /// folded into the mark.
    #[tokio::test]
    async fn applied_events_survive_restarts_and_rollbacks() {
        use crate::{EventStore, SessionStore, StepCommit};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("casebridge.db");
        let store = SqliteStore::open(&path).await.expect("open");
        store.migrate().await.expect("migrate");
        let events: Vec<NewEvent> = (0..1200).map(|i| event(&format!("e{i}"), &format!("s{}", i % 50))).collect();
        let groups: Vec<&[NewEvent]> = events.chunks(100).collect();
        store.ingest_groups(&groups).await.expect("ingest");
        let pending = store.pending_events(None, 2000).await.expect("pending");
        assert_eq!(pending.len(), 1200);
        let step = |seqs: Vec<i64>, sid: &str| StepCommit { event_seqs: seqs, ..StepCommit::bare(sid, "{}".into()) };

        // A commit whose second step fails (its event is applied already) is undone whole.
        store.commit_steps(vec![step(vec![1], "s1")]).await.expect("apply 1");
        let failed = store.commit_steps(vec![step(vec![2], "s2"), step(vec![1], "s1")]).await;
        assert!(failed.is_err(), "event 1 is applied already");
        let pending: Vec<i64> = store.pending_events(None, 3).await.expect("pending").iter().map(|e| e.seq).collect();
        assert_eq!(pending, vec![2, 3, 4], "the undone commit's event 2 is pending again");

        // Apply everything but event 1000, in commits of 100.
        let rest: Vec<i64> = (2..=1200).filter(|&s| s != 1000).collect();
        for chunk in rest.chunks(100) {
            store.commit_steps(vec![step(chunk.to_vec(), "s1")]).await.expect("apply");
        }
        let pending: Vec<i64> = store.pending_events(None, 10).await.expect("pending").iter().map(|e| e.seq).collect();
        assert_eq!(pending, vec![1000]);
        let mark: i64 = sqlx::query_scalar("SELECT seq FROM applied_mark").fetch_one(&store.read).await.expect("mark");
        assert!((512..1000).contains(&mark), "the mark moved up to the held event: {mark}");
        let below: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM applied_events WHERE seq <= ?")
            .bind(mark)
            .fetch_one(&store.read)
            .await
            .expect("applied");
        assert_eq!(below, 0, "what the mark covers is no longer listed");
        store.close().await;
        drop(store);

        let store = SqliteStore::open(&path).await.expect("reopen");
        store.migrate().await.expect("migrate");
        let pending: Vec<i64> = store.pending_events(None, 10).await.expect("pending").iter().map(|e| e.seq).collect();
        assert_eq!(pending, vec![1000], "after a restart, only the held event is pending");
        assert_eq!(store.pending_event_count().await.expect("count"), 1);
        let again = store.commit_steps(vec![step(vec![5], "s5")]).await;
        assert!(matches!(again, Err(crate::StoreError::Fenced(_))), "an event below the mark is applied: {again:?}");
        store.commit_steps(vec![step(vec![1000], "s0")]).await.expect("apply the held one");
        assert!(store.pending_events(None, 10).await.expect("pending").is_empty());
        assert!(store.settled(&["e999".into()]).await.expect("settled"));
    }

    /// A main file that records applied events its events file lacks (the two restored from
    /// different backups) is refused, naming both files.
    #[tokio::test]
    async fn an_events_file_older_than_the_main_file_is_refused() {
        use crate::{EventStore, SessionStore, StepCommit};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("casebridge.db");
        let store = SqliteStore::open(&path).await.expect("open");
        store.migrate().await.expect("migrate");
        store.ingest_groups(&[std::slice::from_ref(&event("e1", "s1"))]).await.expect("ingest");
        store.pending_events(None, 10).await.expect("pending");
        let step = StepCommit { event_seqs: vec![1], ..StepCommit::bare("s1", "{}".into()) };
        store.commit_steps(vec![step]).await.expect("apply");
        store.close().await;
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let mut f = events_path(&path).into_os_string();
            f.push(suffix);
            let _ = std::fs::remove_file(f);
        }
        let store = SqliteStore::open(&path).await.expect("reopen");
        let refused = store.migrate().await.expect_err("the pair is refused");
        let text = refused.to_string();
        assert!(text.contains("casebridge-events.db") && text.contains("event 1"), "{text}");
    }

    #[test]
    fn url_options_are_refused() {
        assert!(path_from_url("x.db?mode=ro").is_err());
        assert!(path_from_url("x%4").is_err());
        assert!(path_from_url("").is_err());
    }
}
