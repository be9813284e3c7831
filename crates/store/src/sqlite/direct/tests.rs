//! Tests of the owned connections: group commits, holds and durable writes.

use super::*;

fn owned(dir: &tempfile::TempDir) -> std::sync::Arc<Owned> {
    let path = dir.path().join("g.db");
    let c = open_one(&path, "NORMAL").expect("create");
    c.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)").expect("table");
    std::sync::Arc::new(Owned::open(&path, Sync::Service, false).expect("open"))
}

async fn rows(o: &Owned) -> Vec<i64> {
    o.read(|c| {
        Ok(c.prepare("SELECT n FROM t ORDER BY n")?.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
    })
    .await
    .expect("read")
}

/// Writes queued together share commits; one that fails undoes only itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_in_a_group_undoes_only_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = owned(&dir);
    let held = o.write.lock().await;
    let tasks = queue_inserts(&o, 0..20, 7).await;
    drop(held);
    for (n, t) in tasks.into_iter().enumerate() {
        let r = t.await.expect("task");
        assert_eq!(r.is_err(), n == 7, "write {n}: {r:?}");
    }
    let want: Vec<i64> = (0..20).filter(|n| *n != 7).collect();
    assert_eq!(rows(&o).await, want, "every write but the failed one is committed and visible");
    assert!(o.commits.load(Ordering::Acquire) < 19, "queued writes share commits");
}

/// A write left waiting for a group whose next member was dropped is still committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_left_by_a_dropped_write_is_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = owned(&dir);
    let held = o.write.lock().await;
    let a = spawn_insert(&o, 1);
    let b = spawn_insert(&o, 2);
    until_queued(&o, 2, "writes").await;
    b.abort();
    drop(held);
    assert_eq!(a.await.expect("task").expect("write"), 1);
    assert_eq!(rows(&o).await.first(), Some(&1));
}

/// Writes made while the writer is held share one commit, see each other before it, and
/// fail alone; readers elsewhere see none of them until the hold ends, and a durable
/// write in it is synced with that commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_a_hold_share_one_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = owned(&dir);
    let before = o.commits.load(Ordering::Acquire);
    let outside = o.clone();
    let seen = o
        .hold(async {
            for n in 1..=3i64 {
                o.write(move |c| Ok(c.execute("INSERT INTO t (n) VALUES (?)", [n])?)).await.expect("write");
            }
            let refused = o
                .write(|c| {
                    c.execute("INSERT INTO t (n) VALUES (4)", [])?;
                    Err::<(), _>(crate::StoreError::Conflict("refused".into()))
                })
                .await;
            assert!(refused.is_err(), "the failing write fails");
            o.durable(|c| Ok(c.execute("INSERT INTO t (n) VALUES (5)", [])?)).await.expect("durable write");
            // Another task is not in the hold: it reads what is committed.
            let elsewhere = tokio::spawn(async move { rows(&outside).await }).await.expect("task");
            assert!(elsewhere.is_empty(), "nothing is visible outside the hold before it ends: {elsewhere:?}");
            rows(&o).await
        })
        .await
        .expect("hold");
    assert_eq!(seen, vec![1, 2, 3, 5], "the hold's reads see its own writes, not the failed one");
    assert_eq!(rows(&o).await, vec![1, 2, 3, 5]);
    let commits = o.commits.load(Ordering::Acquire);
    assert_eq!(commits - before, 1, "one commit for the whole hold");
    assert_eq!(*o.synced.lock().await, commits, "a durable write in the hold has its commit synced");
}

/// A group's first write runs with no savepoint: when it fails, the transaction is rolled
/// back and the writes after it still commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_first_write_undoes_only_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = owned(&dir);
    let refused = o
        .write(|c| {
            c.execute("INSERT INTO t (n) VALUES (1)", [])?;
            Err::<(), _>(crate::StoreError::Conflict("refused".into()))
        })
        .await;
    assert!(refused.is_err(), "the failing write fails");
    o.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (2)", [])?)).await.expect("next write");
    let held = o.write.lock().await;
    let tasks = queue_inserts(&o, 3..6, 3).await;
    drop(held);
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task").is_ok());
    }
    assert_eq!(outcomes.iter().filter(|ok| !**ok).count(), 1, "only the write of 3 fails: {outcomes:?}");
    assert_eq!(rows(&o).await, vec![2, 4, 5], "neither failed write left a row; the others are committed");
    assert!(o.write.lock().await.conn.is_autocommit(), "no transaction is left open");
}

/// A write of the whole that fails inside a hold undoes the hold's other writes too, and the
/// hold's later writes fail; one that succeeds commits with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_of_the_whole_undoes_its_hold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = owned(&dir);
    o.hold(async {
        o.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (1)", [])?)).await.expect("first write");
        o.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (2)", [])?)).await.expect("second write");
        let refused = o
            .write_whole(|c| {
                c.execute("INSERT INTO t (n) VALUES (3)", [])?;
                Err::<(), _>(crate::StoreError::Conflict("refused".into()))
            })
            .await;
        assert!(refused.is_err(), "the failing write fails");
        let later = o.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (4)", [])?)).await;
        assert!(later.is_err(), "a write after the transaction was undone fails: {later:?}");
    })
    .await
    .expect("hold");
    assert!(rows(&o).await.is_empty(), "nothing of the hold is committed");
    assert!(o.write.lock().await.conn.is_autocommit(), "no transaction is left open");
    o.hold(async {
        o.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (5)", [])?)).await.expect("write");
        o.write_whole(|c| Ok(c.execute("INSERT INTO t (n) VALUES (6)", [])?)).await.expect("write of the whole");
    })
    .await
    .expect("hold");
    assert_eq!(rows(&o).await, vec![5, 6]);
}

/// A hold that joins a group other writes left open for it keeps their writes: its failing
/// write of the whole undoes only itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_the_whole_spares_writes_it_did_not_make() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = owned(&dir);
    let held = o.write.lock().await;
    let other = spawn_insert(&o, 1);
    until_queued(&o, 1, "the write").await;
    let hold = {
        let o = o.clone();
        tokio::spawn(async move {
            let inner = o.clone();
            o.hold(async move {
                inner
                    .write_whole(|c| {
                        c.execute("INSERT INTO t (n) VALUES (2)", [])?;
                        Err::<(), _>(crate::StoreError::Conflict("refused".into()))
                    })
                    .await
                    .is_err()
            })
            .await
        })
    };
    until_queued(&o, 2, "the hold").await;
    drop(held);
    assert!(hold.await.expect("task").expect("hold"), "the failing write fails");
    assert_eq!(other.await.expect("task").expect("write"), 1);
    assert_eq!(rows(&o).await, vec![1], "the other task's write is committed, the failed one is not");
}

/// Inserts `n` with a write of its own, in a task (it returns the rows it changed).
fn spawn_insert(o: &std::sync::Arc<Owned>, n: i64) -> tokio::task::JoinHandle<Result<usize>> {
    let o = o.clone();
    tokio::spawn(async move { o.write(move |c| Ok(c.execute("INSERT INTO t (n) VALUES (?)", [n])?)).await })
}

/// Spawns writes inserting each of `ns` (the one of `failing` fails after its insert) and
/// returns once all of them wait for the writer, which the caller holds.
async fn queue_inserts(
    o: &std::sync::Arc<Owned>,
    ns: std::ops::Range<i64>,
    failing: i64,
) -> Vec<tokio::task::JoinHandle<Result<i64>>> {
    let want = usize::try_from(ns.end - ns.start).expect("a range of writes");
    let tasks: Vec<_> = ns
        .map(|n| {
            let o = o.clone();
            tokio::spawn(async move {
                o.write(move |c| {
                    c.execute("INSERT INTO t (n) VALUES (?)", [n])?;
                    if n == failing {
                        return Err(crate::StoreError::Conflict("refused".into()));
                    }
                    Ok(n)
                })
                .await
            })
        })
        .collect();
    until_queued(o, want, "writes").await;
    tasks
}

/// Returns once `n` writes wait for the writer.
async fn until_queued(o: &Owned, n: usize, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while o.queued.load(Ordering::Acquire) < n {
        assert!(std::time::Instant::now() < deadline, "{what} never queued");
        tokio::task::yield_now().await;
    }
}

/// SQLite is built without memory management (`.cargo/config.toml`): with it, every
/// connection's page reads go through one page cache behind one global mutex.
#[test]
fn sqlite_gives_each_connection_its_own_page_cache() {
    // SAFETY: a static NUL-terminated option name; the function only reads it.
    let used = unsafe { rusqlite::ffi::sqlite3_compileoption_used(c"ENABLE_MEMORY_MANAGEMENT".as_ptr()) };
    assert_eq!(
        used, 0,
        "SQLite was built with SQLITE_ENABLE_MEMORY_MANAGEMENT: build from the workspace root, whose .cargo/config.toml sets LIBSQLITE3_FLAGS"
    );
}
