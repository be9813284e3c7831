//! SQLite work run in the calling task, with no thread in between.
//!
//! sqlx's SQLite driver runs each statement on a worker thread: two thread hand-offs per
//! statement, about 75 µs on a 2-core machine, against well under a microsecond for the
//! statement itself. The hot paths (intake, rules commits and reads, outbox progress, the
//! built-in CRM, agents' status changes, dial requests, wrap-ups) run their whole batch on
//! connections casebridge holds itself ([`Owned`]).

use std::sync::atomic::Ordering;

use crate::Result;

/// Connections to the database file held by casebridge itself, used from the calling task
/// with no thread in between: one writer and a few readers.
///
/// One writer, queued in order on an async lock: a second writing connection would wait for
/// SQLite's lock in its busy handler, which sleeps the thread for milliseconds at a time.
///
/// What is acknowledged as stored is made durable after its commit by syncing the WAL file
/// outside the writer's lock: the next commit (intake's next group, a rules batch) proceeds
/// during the sync, and one sync covers every commit made before it started.
/// This is as durable as `synchronous=FULL`: a commit's frames are either still in the WAL
/// (synced here) or were copied to the database file by a checkpoint, which under
/// `synchronous=NORMAL` syncs the WAL before and the database after.
///
/// Group commit: a write whose transaction finds other writes queued for the writer leaves
/// the transaction open for them (their work in savepoints, so a failing write undoes only
/// itself) and waits for the commit the last of them makes. Every commit rewrites the
/// pages of the tables and indexes it touches, whatever it holds: sixteen delivery lanes,
/// the rules worker and intake write at once, and fewer commits write less. A task may also
/// hold the writer across several writes ([`Owned::hold`]): delivery does around the
/// built-in CRM's writes and their outcomes, which then cost one transaction.
pub(crate) struct Owned {
    write: std::sync::Arc<tokio::sync::Mutex<Writer>>,
    /// Writes waiting for the writer's lock.
    queued: std::sync::atomic::AtomicUsize,
    /// Nanoseconds the writer has been held.
    busy_ns: std::sync::atomic::AtomicU64,
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
    /// Told the events each commit recorded applied ([`super::staged::stage_applied`]), once it is committed.
    applied_sink: std::sync::OnceLock<super::staged::AppliedSink>,
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

pub(crate) fn open_one(path: &std::path::Path, synchronous: &str) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = OFF;"
    ))?;
    // Room for every hot statement and the session rewrite's variants (one per set of
    // changed columns), so none is prepared again after an eviction.
    c.set_prepared_statement_cache_capacity(256);
    Ok(c)
}

impl Owned {
    /// Opens the connections on an existing file.
    pub(crate) fn open(path: &std::path::Path, sync: Sync, scratch: bool) -> Result<Owned> {
        Self::open_with(path, sync, scratch, super::checkpoint::CHECKPOINT_PAGES)
    }

    /// [`Owned::open`] with the WAL pages after which a checkpoint is due.
    pub(crate) fn open_with(path: &std::path::Path, sync: Sync, scratch: bool, checkpoint_pages: i64) -> Result<Owned> {
        let work = match sync {
            Sync::Service => "NORMAL",
            Sync::Off => "OFF",
        };
        let wal = matches!(sync, Sync::Service).then(|| {
            let mut p = path.to_path_buf().into_os_string();
            p.push("-wal");
            std::path::PathBuf::from(p)
        });
        let conn = open_one(path, work)?;
        // Savepoints' journals in memory, not in temporary files.
        conn.execute_batch("PRAGMA temp_store = MEMORY")?;
        let checkpoints = match sync {
            Sync::Service => {
                Some(super::checkpoint::Checkpointer::start(open_one(path, work)?, &conn, checkpoint_pages)?)
            }
            // A scratch database's writer copies the WAL itself: nothing waits on it for long.
            Sync::Off => {
                conn.pragma_update(None, "wal_autocheckpoint", checkpoint_pages)?;
                None
            }
        };
        Ok(Owned {
            write: std::sync::Arc::new(tokio::sync::Mutex::new(Writer {
                conn,
                group: None,
                applied: Vec::new(),
                _checkpoints: checkpoints,
            })),
            queued: std::sync::atomic::AtomicUsize::new(0),
            busy_ns: std::sync::atomic::AtomicU64::new(0),
            wal,
            commits: std::sync::atomic::AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
            read: (0..2).map(|_| open_one(path, work).map(tokio::sync::Mutex::new)).collect::<Result<_>>()?,
            next: std::sync::atomic::AtomicUsize::new(0),
            scratch: scratch.then(|| path.to_path_buf()),
            applied_sink: std::sync::OnceLock::new(),
        })
    }

    /// Sets what is told of the events each commit recorded applied (once).
    pub(crate) fn on_applied(&self, sink: super::staged::AppliedSink) {
        let _ = self.applied_sink.set(sink);
    }

    /// Runs `f` in a transaction on the writer; returns once that transaction is committed
    /// (perhaps with other writes: see the group commit above).
    pub(crate) async fn write<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        if let Some(h) = self.held() {
            return h.with(|w| w.run(f))?;
        }
        let (out, group) = {
            let mut w = self.lock_writer().await;
            let _busy = self.busy();
            let out = w.run(f);
            (out, self.finish(&mut w)?)
        };
        let out = out?;
        if let Some(rx) = group {
            self.await_group(rx).await?;
        }
        Ok(out)
    }

    /// [`Owned::write`] for a write whose failure fails everything written with it: inside a
    /// hold whose transaction is its own, it runs without a savepoint (which would copy every
    /// page it changes to a journal), and should it fail, the hold's whole transaction is
    /// rolled back and the hold's later writes fail. Elsewhere it is [`Owned::write`].
    pub(crate) async fn write_whole<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        match self.held() {
            Some(h) if h.alone => h.with(|w| {
                let out = w.run_whole(f);
                if out.is_err() {
                    h.undone.store(true, Ordering::Release);
                }
                out
            })?,
            _ => self.write(f).await,
        }
    }

    /// After a write: leaves the group open for the writes queued behind it (the receiver
    /// tells when it is committed), or commits it.
    fn finish(&self, w: &mut Writer) -> Result<Option<GroupDone>> {
        let open = w.group.as_ref().filter(|g| g.members > 0 && g.members < GROUP_MAX);
        match open {
            Some(g) if self.queued.load(Ordering::Acquire) > 0 => Ok(Some(g.done.subscribe())),
            _ => {
                self.commit_group(w)?;
                Ok(None)
            }
        }
    }

    /// Runs `work` holding the writer: every write and read `work` makes on these
    /// connections (in this task) goes to the writer, in one transaction, committed as soon
    /// as `work` is done. Writes in it fail alone, as in a group commit. `work` must
    /// not wait for another task that writes here: that task does not share the hold and
    /// would wait for the writer forever.
    pub(crate) async fn hold<F: std::future::Future>(&self, work: F) -> Result<F::Output> {
        if self.held().is_some() {
            return Ok(work.await);
        }
        let guard = {
            let _queued = self.queue();
            self.write.clone().lock_owned().await
        };
        let busy = self.busy();
        let alone = guard.group.as_ref().is_none_or(|g| g.members == 0);
        let held = Held {
            owner: self.id(),
            writer: std::sync::Arc::new(std::sync::Mutex::new(Some(guard))),
            durable: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            alone,
            undone: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let out = HELD.scope(held.clone(), work).await;
        let taken = held.writer.lock().ok().and_then(|mut g| g.take());
        let Some(mut w) = taken else { return Err(std::io::Error::other("the held writer was lost").into()) };
        if held.undone.load(Ordering::Acquire) && w.group.is_some() {
            // Its rollback failed too: nothing of this transaction may be committed.
            w.group = None;
            w.applied.clear();
            if !w.conn.is_autocommit() {
                run_cached(&w.conn, "ROLLBACK")?;
            }
        }
        // A hold commits at once rather than leave its transaction open for the writes queued
        // behind it: the next of them may be a hold that waits for this one's task to finish.
        self.commit_group(&mut w)?;
        drop(busy);
        drop(w);
        if held.durable.load(Ordering::Acquire) {
            self.sync_upto(self.commits.load(Ordering::Acquire)).await?;
        }
        Ok(out)
    }

    /// The writer this task holds on these connections, if it does.
    fn held(&self) -> Option<Held> {
        HELD.try_with(|h| (h.owner == self.id()).then(|| h.clone())).ok().flatten()
    }

    /// Tells these connections from another store's in [`HELD`].
    fn id(&self) -> usize {
        std::sync::Arc::as_ptr(&self.write) as usize
    }

    /// The writer's lock, counted as queued while waited for.
    async fn lock_writer(&self) -> tokio::sync::MutexGuard<'_, Writer> {
        let _queued = self.queue();
        self.write.lock().await
    }

    /// Counts the writer as busy until dropped.
    fn busy(&self) -> Busy<'_> {
        Busy { since: std::time::Instant::now(), total: &self.busy_ns }
    }

    /// How busy the writer has been, and how many writes wait for it now.
    pub(crate) fn stats(&self) -> crate::WriterStats {
        crate::WriterStats {
            busy_seconds: self.busy_ns.load(Ordering::Relaxed) as f64 / 1e9,
            waiting: self.queued.load(Ordering::Relaxed) as u64,
        }
    }

    /// Counts a write as queued for the writer until dropped.
    fn queue(&self) -> Queued<'_> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        Queued(&self.queued)
    }

    /// Commits the open group, if any, and tells its members.
    fn commit_group(&self, w: &mut Writer) -> Result<()> {
        let Some(group) = w.group.take() else { return Ok(()) };
        let applied = std::mem::take(&mut w.applied);
        if group.members == 0 {
            // Only a failed first write, whose rollback failed too: nothing to keep.
            let r = run_cached(&w.conn, "ROLLBACK");
            let _ = group.done.send(Some(Ok(())));
            return Ok(r?);
        }
        let r = run_cached(&w.conn, "COMMIT");
        if r.is_err() {
            let _ = run_cached(&w.conn, "ROLLBACK");
        } else {
            self.commits.fetch_add(1, Ordering::AcqRel);
            if let Some(sink) = self.applied_sink.get()
                && !applied.is_empty()
            {
                sink(&applied);
            }
        }
        let _ = group.done.send(Some(r.as_ref().map(|_| ()).map_err(|e| e.to_string())));
        Ok(r?)
    }

    /// Waits for the commit of the group a write joined. Should the writes queued behind it
    /// never come (their tasks dropped), the group is committed here after a short wait.
    async fn await_group(&self, mut rx: GroupDone) -> Result<()> {
        let timed_out =
            tokio::time::timeout(std::time::Duration::from_millis(20), rx.wait_for(|v| v.is_some())).await.is_err();
        if timed_out {
            let mut w = self.write.lock().await;
            let ours = w.group.as_ref().is_some_and(|g| rx.same_channel(&g.done.subscribe()));
            if ours {
                let _busy = self.busy();
                self.commit_group(&mut w)?;
            }
        }
        let answer = rx.wait_for(|v| v.is_some()).await.ok().and_then(|v| v.clone());
        match answer {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(std::io::Error::other(format!("the commit that held this write failed: {e}")).into()),
            None => Err(std::io::Error::other("the commit that held this write did not finish").into()),
        }
    }

    /// Runs `f` in a transaction on the writer whose commit is on disk before it returns
    /// (inside [`Owned::hold`], once the hold's commit is).
    pub(crate) async fn durable<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        if let Some(h) = self.held() {
            h.durable.store(true, Ordering::Release);
            return h.with(|w| w.run(f))?;
        }
        let mine = {
            let mut w = self.lock_writer().await;
            let busy = self.busy();
            let out = w.run(f);
            // Acknowledged writes do not wait for others: the group commits now.
            self.commit_group(&mut w)?;
            drop(busy);
            drop(w);
            (self.commits.load(Ordering::Acquire), out?)
        };
        self.sync_upto(mine.0).await?;
        Ok(mine.1)
    }

    /// Makes the first `mine` commits durable, unless a sync already did.
    async fn sync_upto(&self, mine: u64) -> Result<()> {
        let Some(wal) = &self.wal else { return Ok(()) };
        let mut synced = self.synced.lock().await;
        if *synced >= mine {
            return Ok(());
        }
        // Every commit counted so far is in the WAL file's pages: this sync covers them all.
        let upto = self.commits.load(Ordering::Acquire);
        let sync = |path: &std::path::Path| std::fs::OpenOptions::new().write(true).open(path)?.sync_data();
        if inline_sync() {
            // A fraction of a millisecond on this thread, and one sync at a time (`synced` is
            // held): cheaper than the two thread hand-offs of a blocking task, which cost about
            // as much as the sync itself and a third of intake's context switches.
            sync(wal)?;
        } else {
            let path = wal.clone();
            tokio::task::spawn_blocking(move || sync(&path)).await.map_err(std::io::Error::other)??;
        }
        *synced = upto;
        Ok(())
    }

    /// Runs `f` on a reader (a free one when there is one).
    pub(crate) async fn read<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        if let Some(h) = self.held() {
            // The hold's own writes are not committed yet: only the writer sees them.
            return h.with(|w| f(&w.conn))?;
        }
        self.read_committed(f).await
    }

    /// Runs `f` on a reader, inside a hold too: what is committed, without the hold's writes.
    pub(crate) async fn read_committed<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
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

/// Whether the WAL may be synced on the calling thread: only when the runtime has another
/// worker to serve requests meanwhile.
fn inline_sync() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| h.metrics().num_workers() > 1)
}

use super::writer::Writer;
pub(crate) use super::writer::run_cached;

tokio::task_local! {
    /// The writer a task holds ([`Owned::hold`]).
    static HELD: Held;
}

/// A writer held across several writes of one task.
#[derive(Clone)]
struct Held {
    /// Whose writer ([`Owned::id`]).
    owner: usize,
    writer: std::sync::Arc<std::sync::Mutex<Option<tokio::sync::OwnedMutexGuard<Writer>>>>,
    /// A durable write was made in the hold: its commit is synced.
    durable: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The transaction holds only this hold's writes (it joined no group left open).
    alone: bool,
    /// A write of the whole ([`Owned::write_whole`]) failed: the transaction was rolled back.
    undone: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Held {
    /// Runs `f` on the held writer.
    fn with<T>(&self, f: impl FnOnce(&mut Writer) -> T) -> Result<T> {
        if self.undone.load(Ordering::Acquire) {
            return Err(std::io::Error::other("an earlier write of this transaction failed and undid it").into());
        }
        let mut g = self.writer.lock().map_err(|_| std::io::Error::other("the held writer's lock is poisoned"))?;
        let w = g.as_mut().ok_or_else(|| std::io::Error::other("the writer is no longer held"))?;
        let begun = w.group.as_ref().is_some_and(|g| g.members > 0);
        let out = f(w);
        if begun && w.group.is_none() {
            // The transaction holding the hold's earlier writes is gone (rolled back, by a
            // failed write of the whole or by SQLite itself): none of the later writes may
            // commit without them.
            self.undone.store(true, Ordering::Release);
        }
        Ok(out)
    }
}

/// A write waiting for the writer; uncounted when dropped.
struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Time the writer is held, added to the total when dropped.
struct Busy<'a> {
    since: std::time::Instant,
    total: &'a std::sync::atomic::AtomicU64,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let ns = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.total.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Tells a group's members its commit's outcome.
type GroupDone = tokio::sync::watch::Receiver<Option<std::result::Result<(), String>>>;

/// Writes at most in one group commit.
const GROUP_MAX: usize = 64;

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

#[cfg(test)]
mod tests;
