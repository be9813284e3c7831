//! SQLite implementation. All writes go through one connection (SQLite has one writer
//! anyway; this avoids busy retries), reads through a small pool.
//!
//! Durability: WAL mode. Event intake and settings commit with `synchronous=FULL` (fsync
//! before the answer), everything else with `NORMAL`. Work derived from events (rules
//! steps, outbox progress, built-in CRM writes) survives a process crash either way; a power
//! loss can only drop a suffix of that derived work, which is then redone from the stored
//! events, idempotently. The WAL keeps commits in order, so a FULL commit also makes every
//! earlier commit durable.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::builtin::{BuiltinCrmStore, NewAccount, NewRecord, RecordFilter, is_closed_status};
use crate::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite-backed store (and built-in CRM).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file; migrations are applied by [`Self::migrate`].
    pub async fn open(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let write = SqlitePoolOptions::new().max_connections(1).min_connections(1).connect_with(opts.clone()).await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(opts.read_only(false)).await?;
        Ok(SqliteStore { write, read })
    }

    /// A private in-memory database (for `simulate`): nothing touches the disk.
    pub async fn in_memory() -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        Ok(SqliteStore { write: pool.clone(), read: pool })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.write).await?;
        Ok(())
    }

    /// Whether every migration is applied.
    pub async fn migrated(&self) -> Result<bool> {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(&self.read)
            .await
            .unwrap_or(0);
        Ok(applied as usize >= MIGRATOR.iter().count())
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

fn outbox_row(r: &sqlx::sqlite::SqliteRow) -> OutboxRow {
    OutboxRow {
        id: r.get("id"),
        key: r.get("key"),
        lane: r.get("lane"),
        session_id: r.get("session_id"),
        op: r.get("op"),
        attempts: r.get("attempts"),
        state: r.get("state"),
        last_error: r.get("last_error"),
        next_attempt_at: r.get("next_attempt_at"),
    }
}

pub(crate) async fn insert_timeline(tx: &mut sqlx::SqliteConnection, session_id: &str, e: &Entry) -> Result<()> {
    sqlx::query("INSERT INTO timeline (session_id, at, kind, summary, rule) VALUES (?, ?, ?, ?, ?)")
        .bind(session_id)
        .bind(ts(e.at))
        .bind(entry_kind_str(e.kind))
        .bind(&e.summary)
        .bind(&e.rule)
        .execute(&mut *tx)
        .await?;
    Ok(())
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

    async fn ingest(&self, events: &[NewEvent]) -> Result<IngestOutcome> {
        let mut out = self.ingest_groups(&[events]).await?;
        Ok(out.pop().unwrap_or_default())
    }

    async fn ingest_groups(&self, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>> {
        let mut conn = self.write.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        let out = ingest_on(&mut conn, groups).await;
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        out
    }

    async fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>> {
        let rows = sqlx::query("SELECT seq, session_id, body FROM events WHERE applied = 0 ORDER BY seq LIMIT ?")
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingEvent { seq: r.get("seq"), session_id: r.get("session_id"), body: r.get("body") })
            .collect())
    }

    async fn pending_event_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE applied = 0").fetch_one(&self.read).await?)
    }

    async fn load_session(&self, id: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query("SELECT body, account_id, record_id FROM sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| SessionRow {
            body: r.get("body"),
            account_id: r.get("account_id"),
            record_id: r.get("record_id"),
        }))
    }

    async fn commit_steps(&self, steps: Vec<StepCommit>) -> Result<()> {
        let mut tx = self.write.begin().await?;
        for c in &steps {
            commit_one(&mut tx, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn keys_busy(&self, keys: &[String]) -> Result<bool> {
        let mut conn = self.read.acquire().await?;
        for k in keys {
            let busy: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM outbox_keys k JOIN outbox o ON o.id = k.outbox_id WHERE k.key = ? AND o.state = 'pending' LIMIT 1",
            )
            .bind(k)
            .fetch_optional(&mut *conn)
            .await?;
            if busy.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn claim_commands(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT o.* FROM outbox o
             WHERE o.state = 'pending' AND o.next_attempt_at <= ?
               AND o.id = (SELECT MIN(id) FROM outbox p WHERE p.lane = o.lane AND p.state = 'pending')
             ORDER BY o.id LIMIT ?",
        )
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(outbox_row).collect())
    }

    async fn complete_command(&self, row: &OutboxRow, line: Entry, created: Option<(&str, &str)>) -> Result<()> {
        let mut tx = self.write.begin().await?;
        if let Some((key, crm_id)) = created {
            set_ref(&mut tx, key, crm_id).await?;
        }
        sqlx::query(
            "UPDATE outbox SET state = 'done', attempts = attempts + 1, done_at = ?, last_error = NULL WHERE id = ?",
        )
        .bind(ts(Utc::now()))
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
        insert_timeline(&mut tx, &row.session_id, &line).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retry_command(
        &self,
        row: &OutboxRow,
        error: &str,
        next: DateTime<Utc>,
        line: Option<Entry>,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?")
            .bind(error)
            .bind(ts(next))
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        if let Some(line) = line {
            insert_timeline(&mut tx, &row.session_id, &line).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn park_command(&self, row: &OutboxRow, error: &str, line: Entry) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ? WHERE id = ?")
            .bind(error)
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        insert_timeline(&mut tx, &row.session_id, &line).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_commands(&self, state: &str, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query("SELECT * FROM outbox WHERE state = ? ORDER BY id LIMIT ?")
            .bind(state)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(outbox_row).collect())
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state").fetch_all(&self.read).await?;
        Ok(rows.iter().map(|r| (r.get("state"), r.get("n"))).collect())
    }

    async fn redrive_command(&self, id: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at = ? WHERE id = ? AND state = 'dead'")
            .bind(ts(Utc::now()))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn ref_get(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT crm_id FROM crm_refs WHERE key = ?").bind(key).fetch_optional(&self.read).await?)
    }

    async fn settings_get(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT doc FROM settings WHERE id = 1").fetch_optional(&self.read).await?)
    }

    async fn settings_put(&self, doc: &str) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        let r = sqlx::query("INSERT INTO settings (id, doc, updated_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at")
            .bind(doc)
            .bind(ts(Utc::now()))
            .execute(&mut *conn)
            .await;
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        r?;
        Ok(())
    }

    async fn timeline(&self, session_id: &str) -> Result<Vec<Entry>> {
        let rows = sqlx::query("SELECT at, kind, summary, rule FROM timeline WHERE session_id = ? ORDER BY n")
            .bind(session_id)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Entry {
                at: parse_ts(r.get::<String, _>("at").as_str()),
                kind: entry_kind(r.get::<String, _>("kind").as_str()),
                summary: r.get("summary"),
                rule: r.get("rule"),
            })
            .collect())
    }

    async fn sessions_by_account(
        &self,
        account_id: &str,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<Vec<(String, SessionRow)>> {
        let (c_at, c_id) = match cursor.and_then(|c| c.split_once('|')) {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => ("\u{10FFFF}".to_string(), String::new()),
        };
        let rows = sqlx::query(
            "SELECT id, body, account_id, record_id, COALESCE(created_at, '') AS c FROM sessions
             WHERE account_id = ? AND (COALESCE(created_at, '') < ? OR (COALESCE(created_at, '') = ? AND id < ?) OR ? = '')
             ORDER BY c DESC, id DESC LIMIT ?",
        )
        .bind(account_id)
        .bind(&c_at)
        .bind(&c_at)
        .bind(&c_id)
        .bind(if cursor.is_some() { "x" } else { "" })
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let cur = format!("{}|{}", r.get::<String, _>("c"), r.get::<String, _>("id"));
                (
                    cur,
                    SessionRow { body: r.get("body"), account_id: r.get("account_id"), record_id: r.get("record_id") },
                )
            })
            .collect())
    }

    async fn settled(&self, event_ids: &[String]) -> Result<bool> {
        let mut conn = self.read.acquire().await?;
        for id in event_ids {
            let row = sqlx::query("SELECT applied, session_id FROM events WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { return Ok(false) };
            if row.get::<i64, _>("applied") == 0 {
                return Ok(false);
            }
            let sid: String = row.get("session_id");
            let unsettled: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM outbox WHERE session_id = ? AND state = 'pending' AND attempts = 0",
            )
            .bind(&sid)
            .fetch_one(&mut *conn)
            .await?;
            if unsettled > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn session_settled(&self, session_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM events WHERE session_id = ? AND applied = 0) + (SELECT COUNT(*) FROM outbox WHERE session_id = ? AND state = 'pending' AND attempts = 0)",
        )
        .bind(session_id)
        .bind(session_id)
        .fetch_one(&self.read)
        .await?;
        Ok(n == 0)
    }
}

/// Stores several intake batches in one durable commit (group commit).
/// Stores one event; false when its id is known.
pub(crate) async fn insert_event(tx: &mut sqlx::SqliteConnection, e: &NewEvent, now: &str) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO events (id, session_id, type, at, body, received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
    )
    .bind(&e.id)
    .bind(&e.session_id)
    .bind(&e.event_type)
    .bind(ts(e.at))
    .bind(&e.body)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

async fn ingest_on(conn: &mut sqlx::SqliteConnection, groups: &[&[NewEvent]]) -> Result<Vec<IngestOutcome>> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let now = ts(Utc::now());
    let mut outs = Vec::with_capacity(groups.len());
    for events in groups {
        let mut out = IngestOutcome::default();
        for e in events.iter() {
            if insert_event(&mut tx, e, &now).await? { out.accepted += 1 } else { out.duplicates += 1 }
        }
        outs.push(out);
    }
    tx.commit().await?;
    Ok(outs)
}

async fn commit_one(tx: &mut sqlx::SqliteConnection, c: &StepCommit) -> Result<()> {
    let now = ts(Utc::now());
    let (account_key, mut account_id) = split_ref(&c.account);
    let (record_key, mut record_id) = split_ref(&c.record);
    if let Some(k) = &account_key {
        account_id =
            sqlx::query_scalar("SELECT crm_id FROM crm_refs WHERE key = ?").bind(k).fetch_optional(&mut *tx).await?;
    }
    if let Some(k) = &record_key {
        record_id =
            sqlx::query_scalar("SELECT crm_id FROM crm_refs WHERE key = ?").bind(k).fetch_optional(&mut *tx).await?;
    }
    sqlx::query(
            "INSERT INTO sessions (id, body, lane, account_key, account_id, record_key, record_id, created_at, updated_at, agent_id, over)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET body = excluded.body, lane = excluded.lane, account_key = excluded.account_key,
               account_id = excluded.account_id, record_key = excluded.record_key, record_id = excluded.record_id,
               created_at = excluded.created_at, updated_at = excluded.updated_at, agent_id = excluded.agent_id,
               over = excluded.over",
        )
        .bind(&c.session_id)
        .bind(&c.session)
        .bind(&c.lane)
        .bind(&account_key)
        .bind(&account_id)
        .bind(&record_key)
        .bind(&record_id)
        .bind(c.created_at.map(ts))
        .bind(&now)
        .bind(&c.agent_id)
        .bind(c.over)
        .execute(&mut *tx)
        .await?;
    for e in &c.timeline {
        insert_timeline(tx, &c.session_id, e).await?;
    }
    for cmd in &c.commands {
        insert_command(tx, cmd, &now).await?;
    }
    for a in &c.activities {
        crate::sqlite_agents::upsert_activity(tx, a, false).await?;
    }
    for seq in &c.event_seqs {
        sqlx::query("UPDATE events SET applied = 1 WHERE seq = ?").bind(seq).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Adds an outbox row and its customer keys (a replayed row is already there: nothing to do).
pub(crate) async fn insert_command(tx: &mut sqlx::SqliteConnection, cmd: &NewCommand, now: &str) -> Result<()> {
    let r = sqlx::query(
        "INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
    )
    .bind(&cmd.key)
    .bind(&cmd.lane)
    .bind(&cmd.session_id)
    .bind(&cmd.op)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() == 1 {
        let id = r.last_insert_rowid();
        for k in &cmd.keys {
            sqlx::query("INSERT OR IGNORE INTO outbox_keys (key, outbox_id) VALUES (?, ?)")
                .bind(k)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

async fn set_ref(tx: &mut sqlx::SqliteConnection, key: &str, crm_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO crm_refs (key, crm_id) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET crm_id = excluded.crm_id",
    )
    .bind(key)
    .bind(crm_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE sessions SET account_id = ? WHERE account_key = ?")
        .bind(crm_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sessions SET record_id = ? WHERE record_key = ?")
        .bind(crm_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn touch(tx: &mut sqlx::SqliteConnection, id: &str, at: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE crm_records SET updated_at = ? WHERE id = ?").bind(ts(at)).bind(id).execute(&mut *tx).await?;
    Ok(())
}

fn split_ref(r: &Option<(String, bool)>) -> (Option<String>, Option<String>) {
    match r {
        Some((k, true)) => (Some(k.clone()), None),
        Some((id, false)) => (None, Some(id.clone())),
        None => (None, None),
    }
}

// ---- built-in CRM ----

pub(crate) fn account_row(r: &sqlx::sqlite::SqliteRow) -> CrmAccount {
    CrmAccount {
        id: r.get("id"),
        kind: r.get("kind"),
        name: r.get("name"),
        phone: r.get("phone"),
        email: r.get("email"),
        user_id: r.get("user_id"),
        external_key: r.get("ext_key"),
        custom_fields: serde_json::from_str(r.get::<String, _>("custom_fields").as_str()).unwrap_or_default(),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

fn record_row(r: &sqlx::sqlite::SqliteRow, sessions: Vec<String>) -> CrmRecord {
    let status: String = r.get("status");
    CrmRecord {
        id: r.get("id"),
        title: r.get("title"),
        is_closed: is_closed_status(&status),
        status,
        closed_at: r.get::<Option<String>, _>("closed_at").map(|s| parse_ts(&s)),
        account_id: r.get("account_id"),
        leaf_queue: r.get("leaf_queue"),
        channel: r.get("channel"),
        owner_agent_id: r.get("owner_agent_id"),
        tags: serde_json::from_str(r.get::<String, _>("tags").as_str()).unwrap_or_default(),
        session_ids: sessions,
        abandoned: r.get::<i64, _>("abandoned") != 0,
        missed_reason: r.get("missed_reason"),
        custom_fields: serde_json::from_str(r.get::<String, _>("custom_fields").as_str()).unwrap_or_default(),
        external_key: r.get("ext_key"),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

fn activity_row(r: &sqlx::sqlite::SqliteRow) -> CrmActivity {
    CrmActivity {
        id: r.get("id"),
        record_id: r.get("record_id"),
        account_id: r.get("account_id"),
        session_id: r.get("session_id"),
        subject: r.get("subject"),
        body: serde_json::from_str(r.get::<String, _>("body").as_str()).unwrap_or_default(),
        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
        updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
    }
}

pub(crate) async fn next_id(conn: &mut sqlx::SqliteConnection, table: &str, prefix: &str) -> Result<String> {
    // Rows are never deleted, so the next rowid is the row count plus one, without a scan.
    let sql = format!("SELECT COALESCE(MAX(rowid), 0) FROM {table}");
    let n: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *conn).await?;
    Ok(format!("{prefix}{}", n + 1))
}

impl SqliteStore {
    async fn sessions_of(&self, record_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT session_id FROM crm_record_sessions WHERE record_id = ? ORDER BY added_at, session_id",
        )
        .bind(record_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn record_by(&self, col: &str, v: &str) -> Result<Option<CrmRecord>> {
        let sql = format!("SELECT * FROM crm_records WHERE {col} = ?");
        let row = sqlx::query(&sql).bind(v).fetch_optional(&self.read).await?;
        match row {
            Some(r) => {
                let id: String = r.get("id");
                let s = self.sessions_of(&id).await?;
                Ok(Some(record_row(&r, s)))
            }
            None => Ok(None),
        }
    }

    /// Fails with NotFound unless the record exists (one indexed lookup).
    async fn record_must_exist(&self, id: &str) -> Result<()> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM crm_records WHERE id = ?").bind(id).fetch_optional(&self.read).await?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("record {id} does not exist"))),
        }
    }

    /// Writes `existing` with `fields` merged in as the object's custom fields.
    async fn merge_fields(
        &self,
        table: &str,
        id: &str,
        mut existing: serde_json::Map<String, serde_json::Value>,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        for (k, v) in fields {
            existing.insert(k.clone(), v.clone());
        }
        let sql = format!("UPDATE {table} SET custom_fields = ?, updated_at = ? WHERE id = ?");
        sqlx::query(&sql).bind(serde_json::to_string(&existing)?).bind(ts(at)).bind(id).execute(&self.write).await?;
        Ok(())
    }

    async fn require_record(&self, id: &str) -> Result<CrmRecord> {
        self.record_by("id", id).await?.ok_or_else(|| StoreError::NotFound(format!("record {id} does not exist")))
    }
}

#[async_trait]
impl BuiltinCrmStore for SqliteStore {
    async fn crm_create_account(&self, a: NewAccount) -> Result<(CrmAccount, bool)> {
        let mut tx = self.write.begin().await?;
        if let Some(k) = &a.ext_key
            && let Some(r) =
                sqlx::query("SELECT * FROM crm_accounts WHERE ext_key = ?").bind(k).fetch_optional(&mut *tx).await?
        {
            return Ok((account_row(&r), false));
        }
        let id = match &a.id {
            Some(id) => id.clone(),
            None => next_id(&mut tx, "crm_accounts", "acct_").await?,
        };
        let at = ts(a.at);
        sqlx::query("INSERT INTO crm_accounts (id, ext_key, kind, name, phone, phone_key, email, email_key, user_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
            .bind(&id)
            .bind(&a.ext_key)
            .bind(&a.kind)
            .bind(&a.name)
            .bind(&a.phone)
            .bind(&a.phone_key)
            .bind(&a.email)
            .bind(a.email.as_ref().map(|e| e.trim().to_lowercase()))
            .bind(&a.user_id)
            .bind(&at)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("SELECT * FROM crm_accounts WHERE id = ?").bind(&id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok((account_row(&r), true))
    }

    async fn crm_find_accounts(
        &self,
        phone_key: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<CrmAccount>> {
        let rows = sqlx::query(
            "SELECT * FROM crm_accounts WHERE (? IS NOT NULL AND phone_key = ?) OR (? IS NOT NULL AND email_key = ?) OR (? IS NOT NULL AND user_id = ?) ORDER BY created_at, id",
        )
        .bind(phone_key)
        .bind(phone_key)
        .bind(email)
        .bind(email.map(|e| e.trim().to_lowercase()))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(account_row).collect())
    }

    async fn crm_get_account(&self, id: &str) -> Result<Option<CrmAccount>> {
        let r = sqlx::query("SELECT * FROM crm_accounts WHERE id = ?").bind(id).fetch_optional(&self.read).await?;
        Ok(r.as_ref().map(account_row))
    }

    async fn crm_update_account(
        &self,
        id: &str,
        name: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE crm_accounts SET name = COALESCE(?, name), email = COALESCE(?, email), email_key = COALESCE(?, email_key), user_id = COALESCE(?, user_id), updated_at = ? WHERE id = ?",
        )
        .bind(name)
        .bind(email)
        .bind(email.map(|e| e.trim().to_lowercase()))
        .bind(user_id)
        .bind(ts(at))
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn crm_account_activities(&self, id: &str) -> Result<Vec<CrmActivity>> {
        let rows = sqlx::query("SELECT * FROM crm_activities WHERE account_id = ? ORDER BY created_at, id")
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(activity_row).collect())
    }

    async fn crm_create_record(&self, r: NewRecord) -> Result<(CrmRecord, bool)> {
        if let Some(k) = &r.ext_key
            && let Some(rec) = self.record_by("ext_key", k).await?
        {
            return Ok((rec, false));
        }
        let mut tx = self.write.begin().await?;
        let id = match &r.id {
            Some(id) => id.clone(),
            None => next_id(&mut tx, "crm_records", "rec_").await?,
        };
        let status = r.status.clone().unwrap_or_else(|| "new".into());
        let at = ts(r.at);
        let closed_at =
            if is_closed_status(&status) { Some(r.closed_at.map(ts).unwrap_or_else(|| at.clone())) } else { None };
        sqlx::query(
            "INSERT INTO crm_records (id, ext_key, account_id, title, status, closed_at, leaf_queue, channel, owner_agent_id, tags, abandoned, missed_reason, created_at, updated_at)
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        )
        .bind(&id)
        .bind(&r.ext_key)
        .bind(&r.account_id)
        .bind(&r.title)
        .bind(&status)
        .bind(&closed_at)
        .bind(&r.leaf_queue)
        .bind(&r.channel)
        .bind(&r.owner_agent_id)
        .bind(serde_json::to_string(&r.tags)?)
        .bind(r.abandoned as i64)
        .bind(&r.missed_reason)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        if let Some(s) = &r.session_id {
            sqlx::query("INSERT OR IGNORE INTO crm_record_sessions (record_id, session_id, added_at) VALUES (?,?,?)")
                .bind(&id)
                .bind(s)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((self.require_record(&id).await?, true))
    }

    async fn crm_list_records(&self, f: RecordFilter) -> Result<Vec<CrmRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM crm_records r WHERE (? IS NULL OR account_id = ?) AND (? IS NULL OR status = ?)
               AND (? IS NULL OR EXISTS (SELECT 1 FROM crm_record_sessions s WHERE s.record_id = r.id AND s.session_id = ?))
             ORDER BY created_at, id",
        )
        .bind(&f.account_id)
        .bind(&f.account_id)
        .bind(&f.status)
        .bind(&f.status)
        .bind(&f.session_id)
        .bind(&f.session_id)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.get("id");
            let s = self.sessions_of(&id).await?;
            out.push(record_row(r, s));
        }
        Ok(out)
    }

    async fn crm_get_record(&self, id: &str) -> Result<Option<CrmRecord>> {
        self.record_by("id", id).await
    }

    async fn crm_record_details(
        &self,
        id: &str,
    ) -> Result<(Vec<CrmActivity>, Vec<CrmNote>, Vec<CrmAttachment>, Vec<CrmSessionObject>)> {
        let acts = sqlx::query("SELECT * FROM crm_activities WHERE record_id = ? ORDER BY created_at, id")
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        let notes = sqlx::query("SELECT * FROM crm_notes WHERE record_id = ? ORDER BY created_at, id")
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        let atts = sqlx::query("SELECT id, name, url, content IS NOT NULL AS inline, created_at FROM crm_attachments WHERE record_id = ? ORDER BY created_at, id").bind(id).fetch_all(&self.read).await?;
        let sos = sqlx::query("SELECT * FROM crm_session_objects WHERE record_id = ? ORDER BY created_at, id")
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        Ok((
            acts.iter().map(activity_row).collect(),
            notes
                .iter()
                .map(|r| CrmNote {
                    id: r.get("id"),
                    body: r.get("body"),
                    created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
                })
                .collect(),
            atts.iter()
                .map(|r| {
                    let id: String = r.get("id");
                    let inline = r.get::<i64, _>("inline") != 0;
                    let url: Option<String> = r.get("url");
                    CrmAttachment {
                        url: if inline { Some(format!("/v1/crm/attachments/{id}")) } else { url },
                        id,
                        name: r.get("name"),
                        inline,
                        created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
                    }
                })
                .collect(),
            sos.iter()
                .map(|r| CrmSessionObject {
                    id: r.get("id"),
                    session_id: r.get("session_id"),
                    record_id: r.get("record_id"),
                    account_id: r.get("account_id"),
                    data: serde_json::from_str(r.get::<String, _>("data").as_str()).unwrap_or_default(),
                    created_at: parse_ts(r.get::<String, _>("created_at").as_str()),
                    updated_at: parse_ts(r.get::<String, _>("updated_at").as_str()),
                })
                .collect(),
        ))
    }

    async fn crm_set_status(&self, id: &str, status: &str, at: DateTime<Utc>) -> Result<()> {
        self.record_must_exist(id).await?;
        let closed_at = if is_closed_status(status) { Some(ts(at)) } else { None };
        sqlx::query("UPDATE crm_records SET status = ?, closed_at = CASE WHEN ? IS NULL THEN NULL ELSE COALESCE(CASE WHEN status IN ('solved','closed') THEN closed_at END, ?) END, updated_at = ? WHERE id = ?")
            .bind(status)
            .bind(&closed_at)
            .bind(&closed_at)
            .bind(ts(at))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn crm_append_session(
        &self,
        id: &str,
        session_id: &str,
        tags: &[String],
        reopen_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let rec = self.require_record(id).await?;
        let mut all = rec.tags.clone();
        for t in tags {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        let mut tx = self.write.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO crm_record_sessions (record_id, session_id, added_at) VALUES (?,?,?)")
            .bind(id)
            .bind(session_id)
            .bind(ts(at))
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE crm_records SET tags = ?, updated_at = ? WHERE id = ?")
            .bind(serde_json::to_string(&all)?)
            .bind(ts(at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(s) = reopen_to
            && rec.is_closed
        {
            sqlx::query("UPDATE crm_records SET status = ?, closed_at = NULL WHERE id = ?")
                .bind(s)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn crm_set_owner(&self, id: &str, agent_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.record_must_exist(id).await?;
        sqlx::query("UPDATE crm_records SET owner_agent_id = ?, updated_at = ? WHERE id = ?")
            .bind(agent_id)
            .bind(ts(at))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn crm_mark_abandoned(&self, id: &str, reason: &str, at: DateTime<Utc>) -> Result<()> {
        self.record_must_exist(id).await?;
        sqlx::query("UPDATE crm_records SET abandoned = 1, missed_reason = ?, updated_at = ? WHERE id = ?")
            .bind(reason)
            .bind(ts(at))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn crm_add_note(&self, key: &str, id: &str, body: &str, at: DateTime<Utc>) -> Result<()> {
        self.record_must_exist(id).await?;
        let mut tx = self.write.begin().await?;
        let nid = next_id(&mut tx, "crm_notes", "note_").await?;
        sqlx::query("INSERT INTO crm_notes (id, ext_key, record_id, body, created_at) VALUES (?,?,?,?,?) ON CONFLICT(ext_key) DO NOTHING")
            .bind(nid)
            .bind(key)
            .bind(id)
            .bind(body)
            .bind(ts(at))
            .execute(&mut *tx)
            .await?;
        touch(&mut tx, id, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn crm_add_attachment(
        &self,
        key: &str,
        id: &str,
        name: &str,
        url: Option<&str>,
        content: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.record_must_exist(id).await?;
        let mut tx = self.write.begin().await?;
        let aid = next_id(&mut tx, "crm_attachments", "att_").await?;
        sqlx::query("INSERT INTO crm_attachments (id, ext_key, record_id, name, url, content, created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(ext_key) DO NOTHING")
            .bind(aid)
            .bind(key)
            .bind(id)
            .bind(name)
            .bind(url)
            .bind(content)
            .bind(ts(at))
            .execute(&mut *tx)
            .await?;
        touch(&mut tx, id, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn crm_attachment_content(&self, id: &str) -> Result<Option<(String, Option<String>)>> {
        let r = sqlx::query("SELECT name, content FROM crm_attachments WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(r.map(|r| (r.get("name"), r.get("content"))))
    }

    async fn crm_set_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let rec = self.require_record(id).await?;
        self.merge_fields("crm_records", id, rec.custom_fields, fields, at).await
    }

    async fn crm_upsert_activity(
        &self,
        key: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        session_id: Option<&str>,
        subject: &str,
        body: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let aid = next_id(&mut tx, "crm_activities", "act_").await?;
        sqlx::query(
            "INSERT INTO crm_activities (id, ext_key, record_id, account_id, session_id, subject, body, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)
             ON CONFLICT(ext_key) DO UPDATE SET record_id = excluded.record_id, account_id = excluded.account_id, subject = excluded.subject, body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(aid)
        .bind(key)
        .bind(record_id)
        .bind(account_id)
        .bind(session_id)
        .bind(subject)
        .bind(serde_json::to_string(body)?)
        .bind(ts(at))
        .bind(ts(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn crm_upsert_session_object(
        &self,
        session_id: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let sid = next_id(&mut tx, "crm_session_objects", "so_").await?;
        sqlx::query(
            "INSERT INTO crm_session_objects (id, session_id, record_id, account_id, data, created_at, updated_at) VALUES (?,?,?,?,?,?,?)
             ON CONFLICT(session_id) DO UPDATE SET record_id = excluded.record_id, account_id = excluded.account_id, data = excluded.data, updated_at = excluded.updated_at",
        )
        .bind(sid)
        .bind(session_id)
        .bind(record_id)
        .bind(account_id)
        .bind(serde_json::to_string(data)?)
        .bind(ts(at))
        .bind(ts(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn crm_withdraw_activity(&self, key: &str, at: DateTime<Utc>) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE crm_activities SET record_id = NULL, account_id = NULL, updated_at = ? WHERE ext_key = ? AND (record_id IS NOT NULL OR account_id IS NOT NULL)",
        )
        .bind(ts(at))
        .bind(key)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn crm_set_account_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let a = self
            .crm_get_account(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("account {id} does not exist")))?;
        self.merge_fields("crm_accounts", id, a.custom_fields, fields, at).await
    }

    async fn crm_set_agent_status(&self, email: &str, status: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO crm_agent_statuses (email_key, email, crm_status, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT(email_key) DO UPDATE SET email = excluded.email, crm_status = excluded.crm_status, updated_at = excluded.updated_at",
        )
        .bind(email.trim().to_lowercase())
        .bind(email.trim())
        .bind(status)
        .bind(ts(at))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn crm_agent_statuses(&self) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        let rows = sqlx::query("SELECT email, crm_status, updated_at FROM crm_agent_statuses ORDER BY email_key")
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("email"), r.get("crm_status"), parse_ts(r.get::<String, _>("updated_at").as_str())))
            .collect())
    }

    async fn crm_ensure_custom_field(&self, name: &str, object: &str, label: &str, kind: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO crm_custom_fields (name, object, label, type, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(name)
        .bind(object)
        .bind(label)
        .bind(kind)
        .bind(ts(Utc::now()))
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn crm_custom_fields(&self) -> Result<Vec<(String, String, String, String)>> {
        let rows = sqlx::query("SELECT name, object, label, type FROM crm_custom_fields ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(|r| (r.get("name"), r.get("object"), r.get("label"), r.get("type"))).collect())
    }
}
