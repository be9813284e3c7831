//! Opening a fresh store per backend, and builders shared by the cases.

use std::sync::Arc;

use casebridge_rules::model::{Entry, EntryKind};
use casebridge_store::agents::NewActivity;
use casebridge_store::{NewCommand, NewEvent, StepCommit, Store};
use chrono::{DateTime, TimeZone, Utc};

/// A store for one test, with whatever must outlive it.
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any>,
}

/// A migrated SQLite store on a new file in a temporary folder.
pub async fn open_sqlite(_test: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = casebridge_store::open(&casebridge_store::sqlite_url(dir.path())).await.expect("open");
    store.migrate().await.expect("migrate");
    store.ready().await.expect("ready");
    Some(Fixture { store, _guard: Box::new(dir) })
}

/// A migrated PostgreSQL store on a new database (see `casebridge_store::testing`), or
/// `None` when no server can be had here.
pub async fn open_postgres(test: &str) -> Option<Fixture> {
    let db = casebridge_store::testing::fresh_database_or_skip(test).await?;
    let store = casebridge_store::open(&db.url).await.expect("open");
    store.migrate().await.expect("migrate");
    store.ready().await.expect("ready");
    Some(Fixture { store, _guard: Box::new(db) })
}

/// The built-in CRM's in-memory store, for the built-in CRM's cases.
pub struct CrmFixture {
    /// The store under test.
    pub store: Arc<dyn casebridge_crm::builtin::storage::BuiltinCrmStore>,
}

/// A fresh in-memory built-in CRM.
pub async fn open_memory(_test: &str) -> Option<CrmFixture> {
    Some(CrmFixture { store: Arc::new(casebridge_crm::builtin::memory::MemoryCrm::new()) })
}

/// A fixed time, `secs` seconds into 2025 (whole seconds survive any backend).
pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().expect("valid time") + chrono::Duration::seconds(secs)
}

/// An event of a session.
pub fn event(id: &str, session: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        session_id: session.into(),
        event_type: "session.created".into(),
        at: at(0),
        body: format!(r#"{{"id":"{id}"}}"#),
    }
}

/// An empty step of a session.
pub fn step(session: &str) -> StepCommit {
    StepCommit::bare(session, format!(r#"{{"id":"{session}"}}"#))
}

/// A CRM write in a lane.
pub fn command(key: &str, lane: &str, session: &str, keys: &[&str]) -> NewCommand {
    NewCommand {
        key: key.into(),
        lane: lane.into(),
        session_id: session.into(),
        op: format!(r#"{{"op":"{key}"}}"#),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        not_before: None,
        done: None,
    }
}

/// A timeline line.
pub fn line(secs: i64, kind: EntryKind, summary: &str) -> Entry {
    Entry { at: at(secs), kind, summary: summary.into(), rule: None, native: None }
}

/// Stores a step with these writes and nothing else.
pub async fn enqueue(store: &dyn Store, session: &str, commands: Vec<NewCommand>) {
    store.commit_steps(vec![StepCommit { commands, ..step(session) }]).await.expect("commit");
}

/// A line of casebridge's activity log, keyed `<session>:<kind>`.
pub fn activity(session: &str, kind: &str, person: Option<(&str, bool)>, session_secs: i64) -> NewActivity {
    NewActivity {
        ext_key: format!("{session}:{kind}"),
        session_id: session.into(),
        kind: kind.into(),
        person_ref: person.map(|(p, _)| p.to_string()),
        person_is_key: person.is_some_and(|(_, k)| k),
        session_at: at(session_secs),
        ..Default::default()
    }
}

/// The first due row of each lane, claimed and given back at once (the rows keep the fence
/// they were claimed with, so their outcome can be recorded).
pub async fn claim(store: &dyn Store, now: DateTime<Utc>, limit: i64) -> Vec<casebridge_store::OutboxRow> {
    let rows = store.claim_commands("node-a", now, limit, 60_000).await.expect("claim");
    store.release_commands(&rows).await.expect("release");
    rows
}
