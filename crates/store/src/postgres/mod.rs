//! PostgreSQL implementation. One pool serves reads and writes, and the rules worker has four
//! connections of its own (see [`crate::as_rules_worker`]); every multi-statement write runs
//! in a transaction (SQLite's single writer serializes them, here the database does).
//!
//! Times are stored as the same fixed-width RFC 3339 text as SQLite, and every text column is
//! declared `COLLATE "C"`, so ordering, cursors and comparisons are byte-for-byte those of the
//! SQLite backend whatever the database's default collation. Durability: PostgreSQL's own
//! (`synchronous_commit = on` by default): a commit is on disk when it returns.

mod agents;
mod builtin_crm;
mod cluster;
mod events;
mod native;
mod options;
mod outbox;
mod rows;
mod sessions;
mod settings;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use self::rows::insert_event;
use crate::{IdConflict, IngestOutcome, NewEvent, Result, Store, StoreError, ts};

pub use self::options::PgOptions;

/// Connections of the rules worker's own pool: one for its statements and one holding the
/// customer-key locks of the batch it is making, and the same two for the batch being
/// committed meanwhile.
const RULES_CONNECTIONS: u32 = 4;

/// How both pools connect and hand out connections.
fn pool_options(max: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(30))
        // A connection in steady use is not pinged before each use (a round trip each, on
        // every statement of the workers); one that sat idle for a second is, so that one
        // the server dropped meanwhile (a restart, a proxy's idle cut) is replaced first.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= std::time::Duration::from_secs(1) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL-backed store (and built-in CRM).
#[derive(Clone)]
pub struct PgStore {
    shared: PgPool,
    /// The rules worker's own connections: it applies events one after another, and every
    /// round trip it waited for a connection the delivery lanes held was a round trip longer.
    rules: PgPool,
    /// How to connect without the statement timeout (migrations may take longer).
    connect: PgConnectOptions,
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names (see [`PgOptions`] for the
    /// casebridge options it may carry); migrations are applied by [`Store::migrate`].
    pub async fn open(url: &str) -> Result<Self> {
        let o = PgOptions::parse(url)?;
        let connect: PgConnectOptions = o.url.parse()?;
        let mut with_timeout = connect.clone();
        if o.statement_timeout_ms > 0 {
            with_timeout = with_timeout.options([("statement_timeout", o.statement_timeout_ms.to_string())]);
        }
        let shared = pool_options(o.pool_size).connect_with(with_timeout.clone()).await?;
        let rules = pool_options(RULES_CONNECTIONS).connect_lazy_with(with_timeout);
        Ok(PgStore { shared, rules, connect })
    }

    /// The pool for the task at hand: the rules worker's own, or the shared one.
    pub(crate) fn pool(&self) -> &PgPool {
        if crate::in_rules_worker() { &self.rules } else { &self.shared }
    }

    /// Whether every migration is applied.
    async fn migrated(&self) -> Result<bool> {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(self.pool())
            .await
            .unwrap_or(0);
        Ok(applied as usize >= MIGRATOR.iter().count())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ready(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        if !self.migrated().await? {
            return Err(StoreError::Conflict("migrations are not applied: run `casebridge migrate`".into()));
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        // Its own connection, without the statement timeout; the migrator takes an advisory
        // lock, so nodes starting together apply each migration once.
        let one = PgPoolOptions::new().max_connections(1).connect_with(self.connect.clone()).await?;
        let out = MIGRATOR.run(&one).await;
        one.close().await;
        out?;
        Ok(())
    }

    async fn close(&self) {
        self.rules.close().await;
        self.shared.close().await;
    }

    fn pace_ledger(&self) -> Option<std::sync::Arc<dyn casebridge_crm::pacing::PaceLedger>> {
        Some(std::sync::Arc::new(self.clone()))
    }
}

/// Whether a transaction failed only because it ran into another one (deadlock detected or
/// serialization failure): run again, it may succeed.
pub(crate) fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Db(sqlx::Error::Database(d)) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

/// Stores several intake batches in one commit (group commit): in one statement when all
/// their events are new, otherwise each batch in its own savepoint, so that a batch with an
/// id conflict is rolled back alone and the others commit.
pub(crate) async fn ingest_on(conn: &mut sqlx::PgConnection, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>> {
    let now = ts(Utc::now());
    if let Some(outs) = ingest_all_new(conn, groups, &now).await? {
        return Ok(outs);
    }
    let mut tx = conn.begin().await?;
    let mut outs = Vec::with_capacity(groups.len());
    for events in groups {
        if events.len() == 1 {
            // One event needs no savepoint: a conflict means nothing of it was stored anyway
            // (two round trips fewer for each single-event request).
            outs.push(store_events(&mut tx, events, &now).await?);
            continue;
        }
        let mut sp = tx.begin().await?;
        let mut out = store_events(&mut sp, events, &now).await?;
        if out.conflicts.is_empty() {
            sp.commit().await?;
        } else {
            sp.rollback().await?;
            out.accepted = 0;
            out.duplicates = 0;
        }
        outs.push(out);
    }
    tx.commit().await?;
    Ok(outs)
}

/// Stores the groups' events in one statement when every one of them is new, as nearly all
/// are (a statement per event was a round trip each inside intake's commit). `None`, with
/// nothing stored, when any id is known or repeated: the per-batch path then sorts out
/// duplicates and conflicts. One event alone goes that path directly (no more round trips).
async fn ingest_all_new(
    conn: &mut sqlx::PgConnection,
    groups: &[&[NewEvent]],
    now: &str,
) -> Result<Option<Vec<IngestOutcome>>> {
    let events: Vec<&NewEvent> = groups.iter().flat_map(|g| g.iter()).collect();
    if events.len() < 2 {
        return Ok(None);
    }
    let mut tx = conn.begin().await?;
    // In the order received: `seq` orders a session's events.
    let stored = sqlx::query(
        "INSERT INTO events (id, session_id, type, at, body, received_at)
         SELECT e.id, e.session_id, e.type, e.at, e.body, $6
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                WITH ORDINALITY AS e(id, session_id, type, at, body, n)
          ORDER BY e.n
         ON CONFLICT(id) DO NOTHING",
    )
    .bind(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.session_id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| ts(e.at)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.body.as_str()).collect::<Vec<_>>())
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if stored != events.len() as u64 {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(groups.iter().map(|g| IngestOutcome { accepted: g.len() as u64, ..IngestOutcome::default() }).collect()))
}

/// Inserts one batch's events: how many were new, duplicates, and conflicting ids.
async fn store_events(conn: &mut sqlx::PgConnection, events: &[NewEvent], now: &str) -> Result<IngestOutcome> {
    let mut out = IngestOutcome::default();
    for e in events {
        if insert_event(&mut *conn, e, now).await? {
            out.accepted += 1;
        } else {
            match earlier_conflict(&mut *conn, e).await? {
                None => out.duplicates += 1,
                Some(c) => out.conflicts.push(c),
            }
        }
    }
    Ok(out)
}

/// The stored event holding `e`'s id, when its content differs (compared as JSON values, so
/// member order does not count).
async fn earlier_conflict(tx: &mut sqlx::PgConnection, e: &NewEvent) -> Result<Option<IdConflict>> {
    use sqlx::Row;
    let row =
        sqlx::query("SELECT session_id, type, body FROM events WHERE id = $1").bind(&e.id).fetch_one(&mut *tx).await?;
    let body: String = row.get("body");
    let same =
        match (serde_json::from_str::<serde_json::Value>(&body), serde_json::from_str::<serde_json::Value>(&e.body)) {
            (Ok(a), Ok(b)) => a == b,
            _ => body == e.body,
        };
    Ok((!same).then(|| IdConflict { id: e.id.clone(), session_id: row.get("session_id"), event_type: row.get("type") }))
}

#[cfg(all(test, feature = "test-server"))]
mod tests {
    use super::*;
    use crate::EventStore;

    /// A database upgraded with events waiting counts them in the tally, and the tally then
    /// follows intake and the rules.
    #[tokio::test]
    async fn the_events_tally_starts_from_the_waiting_events() {
        let Some(db) = crate::testing::fresh_database_or_skip("the_events_tally_starts").await else { return };
        let store = PgStore::open(&db.url).await.expect("open");
        let mut before = sqlx::migrate::Migrator::DEFAULT;
        before.migrations = MIGRATOR.migrations.iter().filter(|m| m.version < 5).cloned().collect::<Vec<_>>().into();
        before.run(store.pool()).await.expect("earlier migrations");
        for (id, applied) in [("e1", true), ("e2", false), ("e3", false)] {
            sqlx::query(
                "INSERT INTO events (id, session_id, type, at, body, received_at, applied)
                 VALUES ($1, 's1', 'session.created', '2026-12-01T10:00:00Z', '{}', '2026-12-01T10:00:00Z', $2)",
            )
            .bind(id)
            .bind(applied)
            .execute(store.pool())
            .await
            .expect("old event");
        }
        store.migrate().await.expect("migration 5");
        assert_eq!(store.pending_event_count().await.expect("count"), 2);
        sqlx::query("UPDATE events SET applied = TRUE WHERE id = 'e2'").execute(store.pool()).await.expect("apply");
        sqlx::query("DELETE FROM events WHERE id IN ('e1', 'e3')").execute(store.pool()).await.expect("delete");
        assert_eq!(store.pending_event_count().await.expect("count"), 0);
    }
}
