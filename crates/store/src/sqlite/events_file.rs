//! The events file (`casebridge-events.db`): where it is, its tables, and the move of an
//! earlier database's events into it (see docs/decisions.md "Speed").

use std::path::{Path, PathBuf};

use super::direct;
use crate::{Result, StoreError};

/// The events file beside the main file `casebridge.db`: `casebridge-events.db`. Intake
/// commits there with its own writer, WAL and sync, never queued behind the rules' commits;
/// its rows are written once and never updated (see docs/decisions.md "Speed").
pub fn events_path(main: &Path) -> PathBuf {
    let name = main.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let events = match name.strip_suffix(".db") {
        Some(stem) => format!("{stem}-events.db"),
        None => format!("{name}-events"),
    };
    main.with_file_name(events)
}

/// The events file's tables: events as received, and native intake's own (its duplicates'
/// check and snapshots commit with the events they become). Rows are never deleted, so a
/// plain rowid numbers new events after every earlier one.
const EVENTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS native_events (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    native_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    event_ids TEXT NOT NULL DEFAULT '[]',
    received_at TEXT NOT NULL,
    UNIQUE (source, native_id)
);
CREATE INDEX IF NOT EXISTS native_events_session ON native_events(session_id, seq);
-- A move of an earlier database's events under way (see `move_events`).
CREATE TABLE IF NOT EXISTS moving (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS native_sessions (
    session_id TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

/// Creates the events file's tables when missing and makes what it holds durable (a process
/// that died may have left commits unsynced); returns its last event's number.
pub(crate) fn prepare_events_file(path: &Path, sync: bool) -> Result<i64> {
    let c = direct::open_one(path, if sync { "FULL" } else { "OFF" })?;
    c.execute_batch(EVENTS_SCHEMA)?;
    if sync {
        let mut wal = path.to_path_buf().into_os_string();
        wal.push("-wal");
        for p in [path.to_path_buf(), PathBuf::from(wal)] {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&p) {
                f.sync_all()?;
            }
        }
    }
    Ok(c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
}

/// Moves the events (and native intake's tables) of a database from before the events
/// file into it: copied in one transaction of the events file (emptied first, so a move
/// cut short is made again whole), then dropped from the main file with what the rules
/// had applied recorded (the mark at its last event, those not applied in `held_events`).
/// An events file that already holds events is not overwritten unless the move was its own.
pub(crate) fn move_events(path: &Path) -> Result<i64> {
    let main = direct::open_one(path, "FULL")?;
    let old: i64 =
        main.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'", [], |r| {
            r.get(0)
        })?;
    let events_file = events_path(path);
    let ev = direct::open_one(&events_file, "FULL")?;
    if old == 0 {
        // A move finished after its copy: its marker must not let a later one overwrite events.
        ev.execute("DELETE FROM moving", [])?;
        return check_pair(&main, &ev, path);
    }
    let held: i64 = ev.query_row(
        "SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM native_events) + (SELECT COUNT(*) FROM native_sessions)",
        [],
        |r| r.get(0),
    )?;
    let ours: i64 = ev.query_row("SELECT COUNT(*) FROM moving", [], |r| r.get(0))?;
    if held > 0 && ours == 0 {
        return Err(StoreError::Conflict(format!(
            "{} is from before the events file but {} already holds events: restore both files of one \
             backup, or move the events file away if it belongs to no backup (docs/operations.md, Backups)",
            path.display(),
            events_file.display()
        )));
    }
    // The main file's write lock across the copy: nothing (an earlier version still running)
    // adds an event there that the copy would miss.
    main.execute_batch("BEGIN IMMEDIATE")?;
    ev.execute("ATTACH DATABASE ?1 AS old", [path.to_string_lossy().as_ref()])?;
    // Deferred: the first write locks the events file alone (IMMEDIATE would also want the
    // attached main file's lock, which the other connection holds).
    ev.execute_batch(
        "BEGIN;
         DELETE FROM main.events; DELETE FROM main.native_events; DELETE FROM main.native_sessions;
         INSERT INTO main.moving (id) VALUES (1) ON CONFLICT DO NOTHING;
         INSERT INTO main.events (seq, id, session_id, type, at, body, received_at)
             SELECT seq, id, session_id, type, at, body, received_at FROM old.events ORDER BY seq;
         INSERT INTO main.native_events (seq, source, native_id, session_id, type, at, body, event_ids, received_at)
             SELECT seq, source, native_id, session_id, type, at, body, event_ids, received_at
             FROM old.native_events ORDER BY seq;
         INSERT INTO main.native_sessions SELECT session_id, snapshot, updated_at FROM old.native_sessions;
         COMMIT;
         DETACH DATABASE old;",
    )?;
    let moved: i64 = ev.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    main.execute_batch(
        "UPDATE applied_mark SET seq = COALESCE((SELECT MAX(seq) FROM events), 0);
         INSERT INTO held_events (seq) SELECT seq FROM events WHERE applied = 0;
         DROP TABLE events; DROP TABLE native_events; DROP TABLE native_sessions;
         COMMIT;",
    )?;
    ev.execute("DELETE FROM moving", [])?;
    tracing::info!(events = moved, file = %events_file.display(), "Events moved into the events file.");
    check_pair(&main, &ev, path)
}

/// Refuses a main file that records applied an event its events file does not have (the two
/// restored from different backups): new events would take those numbers and count as
/// applied. Returns the events file's last event number.
fn check_pair(main: &rusqlite::Connection, ev: &rusqlite::Connection, path: &Path) -> Result<i64> {
    let events_file = events_path(path);
    // The main file first: events only come after what it records.
    let recorded: i64 = main.query_row(
        "SELECT MAX((SELECT seq FROM applied_mark), COALESCE((SELECT MAX(seq) FROM applied_events), 0))",
        [],
        |r| r.get(0),
    )?;
    let last: i64 = ev.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    if recorded > last {
        return Err(StoreError::Conflict(format!(
            "{} records event {recorded} as applied but {} ends at event {last}: the two files are not \
             from the same moment; restore both from one backup (docs/operations.md, Backups)",
            path.display(),
            events_file.display()
        )));
    }
    Ok(last)
}
