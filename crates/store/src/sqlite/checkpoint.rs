//! Checkpoints off the writer: a thread of its own copies the WAL into the database file, so
//! the writer's commits seldom wait for that copy and its syncs.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, on the
//! committing connection: the writer held its lock through the copy, and every write queued
//! behind it (intake's next group among them) waited. A passive checkpoint from another
//! connection runs beside the writer in WAL mode. SQLite restarts the WAL at the writer's
//! next transaction once a checkpoint has copied all of it, which the thread's copies seldom
//! do: the writer copies what is left itself once the WAL has grown well past the threshold.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::Result;

/// WAL pages after which the thread's checkpoint is due (SQLite's default is 1,000). A page
/// rewritten many times between two checkpoints is copied once, so rarer checkpoints copy
/// fewer pages in all (see BENCHMARKS.md).
pub(crate) const CHECKPOINT_PAGES: i64 = 4000;

/// WAL pages (as multiples of [`CHECKPOINT_PAGES`]) past which the writer checkpoints
/// itself, as SQLite's automatic checkpoint would. The thread's copies seldom copy the whole
/// WAL (the writer appends meanwhile), and SQLite restarts a WAL only once one has; the
/// writer's copy, made while nothing else can append, has little left to copy and lets it
/// restart. The WAL file stays under about 66 MB (2: less of the gain; 8: no faster, twice
/// the file; see BENCHMARKS.md).
const WRITER_CHECKPOINT_FACTOR: i64 = 4;

/// What the writer's commits tell the checkpoint thread.
struct Shared {
    /// Pages in the WAL at which the next checkpoint is due.
    due: AtomicI64,
    /// Pages in the WAL after the writer's last commit.
    pages: AtomicI64,
    /// The same, as the writer last saw it (the thread resets `pages`): fewer means restarted.
    seen: AtomicI64,
    /// Copies the thread has made.
    copies: AtomicI64,
    threshold: i64,
    stop: AtomicBool,
    /// Held by whoever copies: SQLite refuses a second checkpoint while one runs.
    copying: Mutex<()>,
    wake: Mutex<()>,
    cv: Condvar,
}

/// The checkpoint thread of one database; stops when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
}

impl Checkpointer {
    /// Starts the thread on `conn` (its own connection to the writer's database) and hooks
    /// the writer's commits to it. The writer must keep the returned checkpointer (the
    /// hook's argument lives in it) for as long as its connection lives.
    pub(crate) fn start(
        conn: rusqlite::Connection,
        writer: &rusqlite::Connection,
        threshold: i64,
    ) -> Result<Checkpointer> {
        let shared = Arc::new(Shared {
            due: AtomicI64::new(threshold),
            pages: AtomicI64::new(0),
            seen: AtomicI64::new(0),
            copies: AtomicI64::new(0),
            threshold,
            stop: AtomicBool::new(false),
            copying: Mutex::new(()),
            wake: Mutex::new(()),
            cv: Condvar::new(),
        });
        // SAFETY: the hook's argument is this checkpointer's `Shared`, which the writer keeps
        // alive beside its connection (dropped after it); the hook touches only that and, past the writer's
        // threshold, checkpoints the connection it is called on, as SQLite's own hook does.
        unsafe {
            rusqlite::ffi::sqlite3_wal_hook(
                writer.handle(),
                Some(on_commit),
                Arc::as_ptr(&shared).cast_mut().cast::<c_void>(),
            );
        }
        let s = shared.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &s))
            .map_err(std::io::Error::other)?;
        Ok(Checkpointer { shared })
    }

    /// Copies the thread has made so far.
    #[cfg(test)]
    pub(crate) fn copies(&self) -> i64 {
        self.shared.copies.load(Ordering::Acquire)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _g = self.shared.wake.lock();
        self.shared.cv.notify_one();
    }
}

/// SQLite's call after each commit of the writer, with the pages now in the WAL.
extern "C" fn on_commit(arg: *mut c_void, db: *mut rusqlite::ffi::sqlite3, name: *const c_char, pages: c_int) -> c_int {
    // SAFETY: `arg` is the `Shared` installed with this hook, alive while the connection is.
    let shared = unsafe { &*arg.cast::<Shared>() };
    let pages = i64::from(pages);
    shared.pages.store(pages, Ordering::Release);
    if pages < shared.seen.swap(pages, Ordering::AcqRel) {
        // The WAL restarted: the thread's next copy is a threshold away.
        shared.due.store(shared.threshold, Ordering::Release);
    }
    if pages >= shared.threshold * WRITER_CHECKPOINT_FACTOR {
        // Waits for the thread's copy, if one runs: it would make this one return busy, and
        // a writer that kept meeting the thread's copies would never let the WAL restart.
        let _copying = shared.copying.lock();
        // SAFETY: what SQLite's own automatic checkpoint does from this hook, on this
        // connection.
        unsafe {
            rusqlite::ffi::sqlite3_wal_checkpoint_v2(
                db,
                name,
                rusqlite::ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    } else if pages >= shared.due.load(Ordering::Acquire) {
        let _g = shared.wake.lock();
        shared.cv.notify_one();
    }
    rusqlite::ffi::SQLITE_OK
}

/// When the thread's next copy is due after one that copied all of a WAL of `log` pages that
/// did not restart: a threshold later, but the last one close before the writer's own copy,
/// which holds the writer while it runs, so that little is left for it.
fn next_due(threshold: i64, log: i64) -> i64 {
    let last = threshold * WRITER_CHECKPOINT_FACTOR - threshold / 8;
    let next = log + threshold;
    if next < last { next } else { (log + threshold / 8).max(last) }
}

/// Checkpoints whenever one is due, until stopped.
fn run(conn: &rusqlite::Connection, s: &Shared) {
    loop {
        {
            let Ok(mut g) = s.wake.lock() else { return };
            while !s.stop.load(Ordering::Acquire) && s.pages.load(Ordering::Acquire) < s.due.load(Ordering::Acquire) {
                g = match s.cv.wait(g) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            }
        }
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        // Due again only once a commit says so: a finished checkpoint leaves the WAL's page
        // count as it was until the writer's next transaction restarts it.
        s.pages.store(0, Ordering::Release);
        let started = std::time::Instant::now();
        let Ok(_copying) = s.copying.lock() else { return };
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))) {
            // All copied. The WAL restarts only at a write transaction begun with nothing left
            // to copy, which a busy writer's seldom is (it began while the copy ran): then the
            // next copy is due a threshold further on, not at the next commit.
            // (Should the writer have restarted it meanwhile, the next is a threshold away.)
            Ok((log, done)) if done >= log => {
                let restarted = s.seen.load(Ordering::Acquire) < log;
                s.due.store(if restarted { s.threshold } else { next_due(s.threshold, log) }, Ordering::Release)
            }
            // Readers still use the rest: try again once a quarter of the threshold more is in.
            Ok((log, _)) => s.due.store(log + s.threshold / 4, Ordering::Release),
            Err(e) => {
                tracing::warn!(error = %e, "SQLite checkpoint failed; the next commit tries again.");
                s.due.store(s.pages.load(Ordering::Acquire) + s.threshold / 4, Ordering::Release);
            }
        }
        s.copies.fetch_add(1, Ordering::AcqRel);
        tracing::trace!(ms = started.elapsed().as_secs_f64() * 1e3, "SQLite checkpoint");
    }
}

#[cfg(test)]
mod tests {
    use super::super::direct::Owned;

    /// A copy that ends while a write transaction is open leaves a WAL that does not restart
    /// at that transaction's commit; the thread's next copy is then a threshold of new pages
    /// away, not due at every commit (which copied each commit's pages one by one).
    #[test]
    fn a_wal_that_did_not_restart_is_copied_a_threshold_later() {
        use super::Ordering::Acquire;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.db");
        let writer = super::super::direct::open_one(&path, "NORMAL").expect("writer");
        writer.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)").expect("table");
        let threshold = 40;
        let other = super::super::direct::open_one(&path, "NORMAL").expect("checkpoint connection");
        let ck = super::Checkpointer::start(other, &writer, threshold).expect("start");
        let mut n = 0;
        let mut insert = |c: &rusqlite::Connection| {
            n += 1;
            c.execute("INSERT INTO t (n, pad) VALUES (?, zeroblob(6000))", [n]).expect("insert");
        };
        // Hold the thread's copy back until a write transaction is open.
        let copying = ck.shared.copying.lock().expect("copy lock");
        while ck.shared.seen.load(Acquire) < threshold {
            insert(&writer);
        }
        writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
        insert(&writer);
        drop(copying);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while ck.copies() == 0 {
            assert!(std::time::Instant::now() < deadline, "the thread never copied");
            std::thread::yield_now();
        }
        writer.execute_batch("COMMIT").expect("commit");
        let pages = ck.shared.seen.load(Acquire);
        assert!(pages > threshold, "the WAL did not restart: {pages} pages");
        let due = ck.shared.due.load(Acquire);
        assert!(due >= pages + threshold / 2, "next copy due at {due} pages, the WAL has {pages}");
        // Commits short of that wake no copy (each adds at most three pages).
        while ck.shared.seen.load(Acquire) + 3 < due {
            insert(&writer);
        }
        assert_eq!(ck.copies(), 1, "no copy before {due} pages");
        // The hook's argument lives in the checkpointer: the connection goes first.
        drop(writer);
        drop(ck);
    }

    /// The last copy before the writer's own is close before it; each is due past the last.
    #[test]
    fn copies_stay_apart_and_end_close_before_the_writer() {
        let t = super::CHECKPOINT_PAGES;
        let writer = t * super::WRITER_CHECKPOINT_FACTOR;
        let mut log = t;
        let mut dues = vec![];
        while log < writer {
            let due = super::next_due(t, log);
            assert!(due >= log + t / 8, "due at {due} after a copy at {log}");
            dues.push(due);
            log = due;
        }
        assert!(dues.len() <= super::WRITER_CHECKPOINT_FACTOR as usize + 1, "copies: {dues:?}");
        assert!(dues.iter().rev().nth(1).is_some_and(|&d| d >= writer - t / 4), "copies: {dues:?}");
    }

    /// The WAL is copied into the database by the checkpoint thread, not by the writer's
    /// commits, and the WAL restarts once it is: the file stays bounded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoints_run_beside_the_writer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("g.db");
        let c = super::super::direct::open_one(&path, "NORMAL").expect("create");
        c.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)").expect("table");
        drop(c);
        let o = Owned::open_with(&path, super::super::direct::Sync::Service, false, 50).expect("open");
        let auto: i64 =
            o.write(|c| Ok(c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?)).await.expect("pragma");
        assert_eq!(auto, 0, "the writer's commits do not checkpoint themselves");
        let db_len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let wal_len = || std::fs::metadata(dir.path().join("g.db-wal")).map(|m| m.len()).unwrap_or(0);
        let frame = 4096 + 24;
        let before = db_len();
        let mut n = 0i64;
        let mut write = || {
            n += 1;
            let k = n;
            let o = &o;
            async move {
                o.write(move |c| Ok(c.execute("INSERT INTO t (n, pad) VALUES (?, zeroblob(12000))", [k])?))
                    .await
                    .expect("write")
            }
        };
        // Each write adds about four pages to the WAL: 20 make the thread's copy due (every
        // 50 pages), not the writer's own (past 200). With no write after them, only the
        // thread can copy.
        for _ in 0..20 {
            write().await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while db_len() <= before {
            assert!(std::time::Instant::now() < deadline, "no checkpoint copied the WAL into the database");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for _ in 0..400 {
            write().await;
        }
        assert!(wal_len() < 400 * frame, "the WAL restarts once copied: {} bytes", wal_len());
        let count: i64 = o.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?)).await.expect("count");
        assert_eq!(count, n, "every write is readable");
    }
}
