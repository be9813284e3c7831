//! Tests of the SQLite store's own parts: URLs, migrations of earlier databases, the events
//! file.

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
    before.migrations = MIGRATOR.migrations.iter().filter(|m| m.version < version).cloned().collect::<Vec<_>>().into();
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
    assert_eq!(store.native_known("cti", &["n1".into(), "n2".into()]).await.expect("known"), vec!["n1".to_string()]);
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

    // Event 1000 stays held while 5,000 more are applied: the mark passes it and names it.
    let more: Vec<NewEvent> = (1200..6200).map(|i| event(&format!("e{i}"), &format!("s{}", i % 50))).collect();
    let groups: Vec<&[NewEvent]> = more.chunks(100).collect();
    store.ingest_groups(&groups).await.expect("ingest more");
    store.pending_events(None, 10).await.expect("read them");
    for chunk in (1201..=6200).collect::<Vec<i64>>().chunks(100) {
        store.commit_steps(vec![step(chunk.to_vec(), "s1")]).await.expect("apply");
    }
    let mark: i64 = sqlx::query_scalar("SELECT seq FROM applied_mark").fetch_one(&store.read).await.expect("mark");
    assert!(mark > 1000, "the mark passed the held event: {mark}");
    let held: Vec<i64> = sqlx::query_scalar("SELECT seq FROM held_events").fetch_all(&store.read).await.expect("held");
    assert_eq!(held, vec![1000]);
    let listed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM applied_events").fetch_one(&store.read).await.expect("listed");
    assert!(listed < 4096, "applied events above the mark only: {listed}");
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
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM held_events").fetch_one(&store.read).await.expect("held");
    assert_eq!(held, 0, "applying the held event releases it");
}

/// An event applied in the stored state but still in the unapplied set (as a commit whose
/// outcome was lost would leave it) leaves the set when a commit inside a hold, the rules'
/// way on SQLite, is refused for it; the next commits go on.
#[tokio::test]
async fn a_refused_commit_in_a_hold_heals_the_set() {
    use crate::{EventStore, OutboxStore, SessionStore, StepCommit};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("casebridge.db")).await.expect("open");
    store.migrate().await.expect("migrate");
    let events: Vec<NewEvent> = (1..=3).map(|i| event(&format!("e{i}"), "s1")).collect();
    store.ingest_groups(&[&events[..]]).await.expect("ingest");
    assert_eq!(store.pending_events(None, 10).await.expect("pending").len(), 3);
    // Event 1 applied behind the set's back.
    store
        .owned
        .write(|c| Ok(c.execute("INSERT INTO applied_events (seq) VALUES (1)", [])?))
        .await
        .expect("applied elsewhere");
    let step = |seqs: Vec<i64>| StepCommit { event_seqs: seqs, ..StepCommit::bare("s1", "{}".into()) };
    let refused = std::sync::Mutex::new(None);
    store
        .in_one_commit(Box::pin(async {
            let out = store.commit_steps(vec![step(vec![1, 2])]).await;
            *refused.lock().expect("lock") = Some(out);
        }))
        .await
        .expect("hold");
    let out = refused.lock().expect("lock").take().expect("ran");
    assert!(matches!(out, Err(crate::StoreError::Fenced(_))), "{out:?}");
    let pending: Vec<i64> = store.pending_events(None, 10).await.expect("pending").iter().map(|e| e.seq).collect();
    assert_eq!(pending, vec![2, 3], "event 1 left the set; event 2 of the refused commit stays");
    store.commit_steps(vec![step(vec![2, 3])]).await.expect("the rest applies");
    assert!(store.pending_events(None, 10).await.expect("pending").is_empty());
}

/// A move cut short after its copy (the events file holds the copy and its marker, the main
/// file still its events) is made again whole, with what arrived in the main file since.
#[tokio::test]
async fn a_move_cut_short_is_made_again() {
    use crate::EventStore;
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, pool) = migrated_before(&dir, 15).await;
    for (id, applied) in [("e1", 1), ("e2", 0)] {
        sqlx::query("INSERT INTO events (id, session_id, type, at, body, received_at, applied) VALUES (?, 's1', 'x', 'a', '{}', 'r', ?)")
            .bind(id).bind(applied).execute(&pool).await.expect("old event");
    }
    pool.close().await;
    // The copy of an earlier attempt, with e1 only, and its marker.
    prepare_events_file(&events_path(&path), true).expect("events file");
    let c = rusqlite::Connection::open(events_path(&path)).expect("open events file");
    c.execute_batch(
        "INSERT INTO events (seq, id, session_id, type, at, body, received_at) VALUES (1, 'e1', 's1', 'x', 'a', '{}', 'r');
         INSERT INTO moving (id) VALUES (1);",
    )
    .expect("an earlier copy");
    drop(c);
    let store = SqliteStore::open(&path).await.expect("open");
    store.migrate().await.expect("the move is made again");
    assert_eq!(event_numbers(&store).await, vec![("e1".to_string(), 1), ("e2".to_string(), 2)]);
    let pending: Vec<i64> = store.pending_events(None, 10).await.expect("pending").iter().map(|e| e.seq).collect();
    assert_eq!(pending, vec![2]);
    let marker: i64 =
        store.events.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM moving", [], |r| r.get(0))?)).await.expect("marker");
    assert_eq!(marker, 0, "the marker goes with the move's end");
}

/// A main file from before the events file beside an events file that holds events (a
/// rollback's restored main file next to a later events file) is refused, not emptied.
#[tokio::test]
async fn a_later_events_file_is_not_overwritten() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, pool) = migrated_before(&dir, 15).await;
    pool.close().await;
    prepare_events_file(&events_path(&path), true).expect("events file");
    let c = rusqlite::Connection::open(events_path(&path)).expect("open events file");
    c.execute(
        "INSERT INTO events (id, session_id, type, at, body, received_at) VALUES ('later', 's1', 'x', 'a', '{}', 'r')",
        [],
    )
    .expect("a later event");
    drop(c);
    let store = SqliteStore::open(&path).await.expect("open");
    let refused = store.migrate().await.expect_err("refused").to_string();
    assert!(refused.contains("already holds events"), "{refused}");
    assert_eq!(event_numbers(&store).await, vec![("later".to_string(), 1)], "the later event is kept");
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

/// A wrap-up holds the main writer from before its event can be read as pending until its
/// writes are committed: a rules commit in between would put the event's writes ahead of the
/// wrap-up's in their lane.
#[tokio::test]
async fn a_wrapup_holds_the_main_writer_while_its_event_is_stored() {
    use crate::AgentStore;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("casebridge.db")).await.expect("open"));
    store.migrate().await.expect("migrate");
    // The events file's writer held: the wrap-up stops at its event.
    let (held, holding) = tokio::sync::oneshot::channel::<()>();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let events = store.clone();
    let blocker = tokio::spawn(async move {
        events
            .events
            .hold(async {
                let _ = held.send(());
                let _ = released.await;
            })
            .await
    });
    holding.await.expect("the events writer is held");
    let wrap = crate::agents::NewActivity {
        ext_key: "sw:call_log".into(),
        session_id: "sw".into(),
        kind: "call_log".into(),
        action: Some("log".into()),
        session_at: chrono::Utc::now(),
        ..Default::default()
    };
    let wrapup = {
        let store = store.clone();
        tokio::spawn(async move { store.wrapup_commit(&wrap, &[], &[], &event("wu-sw", "sw")).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.events.stats().waiting == 0 {
        assert!(std::time::Instant::now() < deadline, "the wrap-up never reached the events file");
        tokio::task::yield_now().await;
    }
    let main = tokio::time::timeout(std::time::Duration::from_millis(200), store.owned.write(|_| Ok(()))).await;
    assert!(main.is_err(), "the main writer was free while the wrap-up's event waited");
    let _ = release.send(());
    blocker.await.expect("task").expect("hold");
    wrapup.await.expect("task").expect("wrap-up");
    store.owned.write(|_| Ok(())).await.expect("the main writer is free again");
}
