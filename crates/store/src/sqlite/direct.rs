//! SQLite work run in the calling task, with no thread in between.
//!
//! sqlx's SQLite driver runs each statement on a worker thread: two thread hand-offs per
//! statement, about 75 µs on a 2-core machine, against well under a microsecond for the
//! statement itself. The hot paths (intake, rules commits and reads, outbox progress, the
//! built-in CRM) run their whole batch on connections casebridge holds itself ([`Owned`]);
//! helpers called inside a sqlx transaction lock that connection's handle once ([`direct`]).

use sqlx::SqliteConnection;

use crate::Result;

/// Runs `f` on `conn`'s handle. An open sqlx transaction stays open around it; `f` must
/// leave the handle as it found it (no dangling statements, its own transactions finished).
pub(crate) async fn direct<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: the handle is locked away from sqlx's worker thread until `handle` drops, after
    // the wrapper; `from_handle` never closes the database it is given.
    let c = unsafe { rusqlite::Connection::from_handle(raw.cast()) }?;
    let out = f(&c);
    drop(c);
    drop(handle);
    out
}

/// Runs `f` in a transaction of `c` (immediate: it takes the write lock at once).
pub(crate) fn in_tx<T>(c: &rusqlite::Connection, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
    c.execute_batch("BEGIN IMMEDIATE")?;
    match f(c) {
        Ok(v) => {
            c.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Connections to the database file held by casebridge itself, used from the calling task
/// with no thread in between: one writer and a few readers.
///
/// One writer, queued in order on an async lock: a second writing connection would wait for
/// SQLite's lock in its busy handler, which sleeps the thread for milliseconds at a time.
///
/// What is acknowledged as stored is made durable after its commit by syncing the WAL file on
/// a blocking thread, outside the writer's lock: the next commit (intake's next group, a rules
/// batch) proceeds during the sync, and one sync covers every commit made before it started.
/// This is as durable as `synchronous=FULL`: a commit's frames are either still in the WAL
/// (synced here) or were copied to the database file by a checkpoint, which under
/// `synchronous=NORMAL` syncs the WAL before and the database after.
pub(crate) struct Owned {
    write: tokio::sync::Mutex<rusqlite::Connection>,
    /// The WAL file synced for acknowledged commits (none on a scratch database).
    wal: Option<std::path::PathBuf>,
    /// Commits made on the writer so far.
    commits: std::sync::atomic::AtomicU64,
    /// Commits known to be on disk; held while syncing, so syncs do not pile up.
    synced: tokio::sync::Mutex<u64>,
    read: Vec<tokio::sync::Mutex<rusqlite::Connection>>,
    next: std::sync::atomic::AtomicUsize,
    /// A scratch database's file, removed with the last handle.
    scratch: Option<std::path::PathBuf>,
}

/// How durable the owned connections' commits are.
#[derive(Clone, Copy)]
pub(crate) enum Sync {
    /// WAL, NORMAL for work, FULL for acknowledged writes.
    Service,
    /// No fsync at all (a scratch database for simulation).
    Off,
}

/// Process-wide SQLite settings, applied once before the first connection opens: no memory
/// statistics, whose global mutex every allocation of every connection would otherwise take
/// (the readers, the writer and sqlx's connections contend on it).
pub(crate) fn configure_process() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: called before any connection opens (SQLite is not initialized yet); when it
        // already is, SQLite refuses with SQLITE_MISUSE and nothing changes.
        let rc = unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite memory statistics left on: SQLite was already initialized");
        }
    });
}

fn open_one(path: &std::path::Path, synchronous: &str) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = OFF;"
    ))?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(c)
}

impl Owned {
    /// Opens the connections on an existing file.
    pub(crate) fn open(path: &std::path::Path, sync: Sync, scratch: bool) -> Result<Owned> {
        let work = match sync {
            Sync::Service => "NORMAL",
            Sync::Off => "OFF",
        };
        let wal = matches!(sync, Sync::Service).then(|| {
            let mut p = path.to_path_buf().into_os_string();
            p.push("-wal");
            std::path::PathBuf::from(p)
        });
        Ok(Owned {
            write: tokio::sync::Mutex::new(open_one(path, work)?),
            wal,
            commits: std::sync::atomic::AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
            read: (0..2).map(|_| open_one(path, work).map(tokio::sync::Mutex::new)).collect::<Result<_>>()?,
            next: std::sync::atomic::AtomicUsize::new(0),
            scratch: scratch.then(|| path.to_path_buf()),
        })
    }

    /// Runs `f` in a transaction on the writer.
    pub(crate) async fn write<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        let out = {
            let c = self.write.lock().await;
            in_tx(&c, f)?
        };
        self.committed();
        Ok(out)
    }

    /// Counts a commit on the writer.
    fn committed(&self) -> u64 {
        self.commits.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1
    }

    /// Runs `f` in a transaction on the writer whose commit is on disk before it returns.
    pub(crate) async fn durable<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        let mine = {
            let c = self.write.lock().await;
            let out = in_tx(&c, f)?;
            drop(c);
            (self.committed(), out)
        };
        let Some(wal) = &self.wal else { return Ok(mine.1) };
        let mut synced = self.synced.lock().await;
        if *synced >= mine.0 {
            return Ok(mine.1);
        }
        // Every commit counted so far is in the WAL file's pages: this sync covers them all.
        let upto = self.commits.load(std::sync::atomic::Ordering::Acquire);
        let path = wal.clone();
        tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().write(true).open(&path)?.sync_data())
            .await
            .map_err(std::io::Error::other)??;
        *synced = upto;
        Ok(mine.1)
    }

    /// Runs `f` on a reader (a free one when there is one).
    pub(crate) async fn read<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        for r in &self.read {
            if let Ok(c) = r.try_lock() {
                return f(&c);
            }
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.read.len();
        let c = self.read[i].lock().await;
        f(&c)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(p) = &self.scratch {
            for suffix in ["", "-wal", "-shm"] {
                let mut f = p.clone().into_os_string();
                f.push(suffix);
                let _ = std::fs::remove_file(f);
            }
        }
    }
}
