//! Row helpers shared by the SQLite modules: writes that several concerns make inside their
//! own transactions, and row mappers. They run on the connection's handle (see `direct`);
//! the async forms are for callers inside a sqlx transaction.

use std::borrow::Cow;

use casebridge_rules::model::Entry;
use chrono::Utc;
use rusqlite::{OptionalExtension, params};
use sqlx::Row;

use crate::agents::NewActivity;
use crate::{NewCommand, NewEvent, OutboxRow, Result, StepCommit, entry_kind_str, ts};

/// Reads an outbox row.
pub(crate) fn outbox_row(r: &sqlx::sqlite::SqliteRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get("id"),
        key: r.get("key"),
        lane: r.get("lane"),
        session_id: r.get("session_id"),
        op: r.get("op"),
        attempts: r.get("attempts"),
        state: r.get::<String, _>("state").parse()?,
        last_error: r.get("last_error"),
        next_attempt_at: r.get("next_attempt_at"),
        fence: r.get("fence"),
        taken_over: false,
    })
}

/// The outbox columns [`outbox_row_r`] reads, in its order.
pub(crate) const OUTBOX_COLUMNS: &str =
    "id, key, lane, session_id, op, attempts, state, last_error, next_attempt_at, fence";

/// Reads an outbox row selected with [`OUTBOX_COLUMNS`].
pub(crate) fn outbox_row_r(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let state: String = r.get(6)?;
    Ok(OutboxRow {
        id: r.get(0)?,
        key: r.get(1)?,
        lane: r.get(2)?,
        session_id: r.get(3)?,
        op: r.get(4)?,
        attempts: r.get(5)?,
        state: state
            .parse()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e)))?,
        last_error: r.get(7)?,
        next_attempt_at: r.get(8)?,
        fence: r.get(9)?,
        taken_over: false,
    })
}

/// Appends a line to a session's timeline.
pub(crate) fn insert_timeline_r(c: &rusqlite::Connection, session_id: &str, e: &Entry) -> Result<()> {
    let native = e.native.as_ref().map(serde_json::to_string).transpose()?;
    c.prepare_cached("INSERT INTO timeline (session_id, at, kind, summary, rule, native) VALUES (?, ?, ?, ?, ?, ?)")?
        .execute(params![session_id, ts(e.at), entry_kind_str(e.kind), e.summary, e.rule, native])?;
    Ok(())
}

/// Stores one event; false when its id is known.
pub(crate) fn insert_event_r(c: &rusqlite::Connection, e: &NewEvent, now: &str) -> Result<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO events (id, session_id, type, at, body, received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        )?
        .execute(params![e.id, e.session_id, e.event_type, ts(e.at), e.body, now])?;
    Ok(n == 1)
}

/// Applies rules steps in one transaction (see [`commit_one_r`]). Inside a hold, a failure
/// undoes the hold's other writes too (see [`super::direct::Owned::write_whole`]).
pub(crate) async fn commit_steps_on(
    owned: &super::direct::Owned,
    unapplied: &super::unapplied::Unapplied,
    steps: &[StepCommit],
) -> Result<()> {
    owned
        .write_whole(|c| {
            let now = ts(Utc::now());
            // The mark moves only below, after the steps: one read for them all.
            let stored: i64 = c.prepare_cached("SELECT seq FROM applied_mark")?.query_row([], |r| r.get(0))?;
            for s in steps {
                commit_one_r(c, s, &now, stored)?;
            }
            if let Some((mark, unread)) = unapplied.mark_due(stored) {
                // Every event up to the new mark is applied but those still held back.
                let mut listed = c.prepare_cached("SELECT 1 FROM applied_events WHERE seq = ?")?;
                let mut hold = c.prepare_cached("INSERT INTO held_events (seq) VALUES (?) ON CONFLICT DO NOTHING")?;
                for seq in unread {
                    if listed.query_row([seq], |_| Ok(())).optional()?.is_none() {
                        hold.execute([seq])?;
                    }
                }
                c.prepare_cached("DELETE FROM applied_events WHERE seq <= ?")?.execute([mark])?;
                c.prepare_cached("UPDATE applied_mark SET seq = ?")?.execute([mark])?;
            }
            Ok(())
        })
        .await
}

/// Applies one rules step: the session row, its timeline, outbox and activity lines, and
/// marks its events applied.
pub(crate) fn commit_one_r(c: &rusqlite::Connection, s: &StepCommit, now: &str, mark: i64) -> Result<()> {
    let (account_key, mut account_id) = split_ref(&s.account);
    let (record_key, mut record_id) = split_ref(&s.record);
    let crm_id = |k: &str| -> Result<Option<String>> {
        Ok(c.prepare_cached("SELECT crm_id FROM crm_refs WHERE key = ?")?.query_row([k], |r| r.get(0)).optional()?)
    };
    if let Some(k) = &account_key {
        account_id = crm_id(k)?;
    }
    if let Some(k) = &record_key {
        record_id = crm_id(k)?;
    }
    let cols = FilterColumns::of(&s.session);
    let new = SessionColumns {
        lane: s.lane.clone(),
        account_key,
        account_id,
        record_key,
        record_id,
        created_at: s.created_at.map(ts),
        agent_id: s.agent_id.clone(),
        over: i64::from(s.over),
        phase: cols.phase.map(Cow::into_owned),
        record_outcome: cols.record_outcome.map(Cow::into_owned),
        phone: cols.phone.map(|p| p.number.into_owned()),
        first_at: s.first_at.map(ts),
    };
    let old = c.prepare_cached(&SELECT_SESSION_COLUMNS)?.query_row([&s.session_id], SessionColumns::read).optional()?;
    match old {
        Some(old) => update_session_r(c, &s.session_id, &s.session, now, &old, &new.after(&old))?,
        None => {
            c.prepare_cached(
                "INSERT INTO sessions (id, body, updated_at, lane, account_key, account_id, record_key, record_id,
                   created_at, agent_id, over, phase, record_outcome, phone, first_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                s.session_id,
                s.session,
                now,
                new.lane,
                new.account_key,
                new.account_id,
                new.record_key,
                new.record_id,
                new.created_at,
                new.agent_id,
                new.over,
                new.phase,
                new.record_outcome,
                new.phone,
                new.first_at
            ])?;
        }
    }
    for e in &s.timeline {
        insert_timeline_r(c, &s.session_id, e)?;
    }
    for cmd in &s.commands {
        insert_command_r(c, cmd, now)?;
    }
    for a in &s.activities {
        upsert_activity_r(c, a, false)?;
    }
    // Above the mark an applied event is listed; at or below it, a held one is.
    let mut applied = c.prepare_cached("INSERT INTO applied_events (seq) VALUES (?) ON CONFLICT DO NOTHING")?;
    let mut released = c.prepare_cached("DELETE FROM held_events WHERE seq = ?")?;
    for &seq in &s.event_seqs {
        let changed = if seq > mark { applied.execute([seq])? } else { released.execute([seq])? };
        if changed != 1 {
            return Err(crate::StoreError::Fenced(format!(
                "event {seq} of session {} is already applied",
                s.session_id
            )));
        }
        super::staged::stage_applied(seq);
    }
    Ok(())
}

/// Reads a stored session's [`SessionColumns`] by id (the text built once, not at every step).
static SELECT_SESSION_COLUMNS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {} FROM sessions WHERE id = ?", SessionColumns::NAMES.join(", ")));

/// A session row's indexed columns, as stored.
struct SessionColumns {
    lane: Option<String>,
    account_key: Option<String>,
    account_id: Option<String>,
    record_key: Option<String>,
    record_id: Option<String>,
    created_at: Option<String>,
    agent_id: Option<String>,
    over: i64,
    phase: Option<String>,
    record_outcome: Option<String>,
    phone: Option<String>,
    first_at: Option<String>,
}

impl SessionColumns {
    /// Column names, in the order of the fields.
    const NAMES: [&'static str; 12] = [
        "lane",
        "account_key",
        "account_id",
        "record_key",
        "record_id",
        "created_at",
        "agent_id",
        "over",
        "phase",
        "record_outcome",
        "phone",
        "first_at",
    ];

    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionColumns> {
        Ok(SessionColumns {
            lane: r.get(0)?,
            account_key: r.get(1)?,
            account_id: r.get(2)?,
            record_key: r.get(3)?,
            record_id: r.get(4)?,
            created_at: r.get(5)?,
            agent_id: r.get(6)?,
            over: r.get(7)?,
            phase: r.get(8)?,
            record_outcome: r.get(9)?,
            phone: r.get(10)?,
            first_at: r.get(11)?,
        })
    }

    /// The columns' values, borrowed, in the order of [`SessionColumns::NAMES`].
    fn values(&self) -> [rusqlite::types::ValueRef<'_>; 12] {
        use rusqlite::types::ValueRef;
        fn text(v: &Option<String>) -> ValueRef<'_> {
            v.as_deref().map_or(ValueRef::Null, |t| ValueRef::Text(t.as_bytes()))
        }
        [
            text(&self.lane),
            text(&self.account_key),
            text(&self.account_id),
            text(&self.record_key),
            text(&self.record_id),
            text(&self.created_at),
            text(&self.agent_id),
            ValueRef::Integer(self.over),
            text(&self.phase),
            text(&self.record_outcome),
            text(&self.phone),
            text(&self.first_at),
        ]
    }

    /// These columns as a step leaves a row that held `old`: a resolved id stays while its
    /// key does not change, and the first event's time only moves earlier.
    fn after(mut self, old: &SessionColumns) -> SessionColumns {
        if self.account_id.is_none() && self.account_key.is_some() && self.account_key == old.account_key {
            self.account_id = old.account_id.clone();
        }
        if self.record_id.is_none() && self.record_key.is_some() && self.record_key == old.record_key {
            self.record_id = old.record_id.clone();
        }
        self.first_at = match (self.first_at, &old.first_at) {
            (Some(f), Some(o)) if f >= *o => Some(o.clone()),
            (Some(f), _) => Some(f),
            (None, o) => o.clone(),
        };
        self
    }
}

/// Rewrites a stored session, naming only the indexed columns whose values change: SQLite
/// rewrites the entry of every index over a column an UPDATE sets, even to the same value,
/// and most steps change none of them. Each set of changed columns is its own cached statement.
fn update_session_r(
    c: &rusqlite::Connection,
    id: &str,
    body: &str,
    now: &str,
    old: &SessionColumns,
    new: &SessionColumns,
) -> Result<()> {
    use rusqlite::types::ToSqlOutput;
    let mut set = String::from("body = ?, updated_at = ?");
    let mut values = vec![ToSqlOutput::from(body), ToSqlOutput::from(now)];
    for ((name, was), value) in SessionColumns::NAMES.iter().zip(old.values()).zip(new.values()) {
        if was != value {
            set.push_str(", ");
            set.push_str(name);
            set.push_str(" = ?");
            values.push(ToSqlOutput::Borrowed(value));
        }
    }
    values.push(ToSqlOutput::from(id));
    c.prepare_cached(&format!("UPDATE sessions SET {set} WHERE id = ?"))?
        .execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// The session list's filter columns, read from a session's JSON (absent when it is not a
/// session document: an unreadable event keeps whatever body was stored).
#[derive(serde::Deserialize, Default)]
struct FilterColumns<'a> {
    #[serde(borrow, default)]
    phase: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    record_outcome: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    phone: Option<PhoneColumn<'a>>,
}

#[derive(serde::Deserialize)]
struct PhoneColumn<'a> {
    #[serde(borrow)]
    number: Cow<'a, str>,
}

impl<'a> FilterColumns<'a> {
    fn of(body: &'a str) -> FilterColumns<'a> {
        serde_json::from_str(body).unwrap_or_default()
    }
}

/// Adds an outbox row and its customer keys (a replayed row is already there: nothing to do).
pub(crate) fn insert_command_r(c: &rusqlite::Connection, cmd: &NewCommand, now: &str) -> Result<()> {
    if let Some(line) = &cmd.done {
        let n = c
            .prepare_cached(
                "INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at, state, attempts, done_at)
                 VALUES (?, ?, ?, ?, ?, ?, 'done', 1, ?) ON CONFLICT(key) DO NOTHING",
            )?
            .execute(params![cmd.key, cmd.lane, cmd.session_id, cmd.op, now, now, now])?;
        if n == 1 {
            insert_timeline_r(c, &cmd.session_id, line)?;
        }
        return Ok(());
    }
    let n = c
        .prepare_cached(
            "INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
        )?
        .execute(params![
            cmd.key,
            cmd.lane,
            cmd.session_id,
            cmd.op,
            cmd.not_before.map(crate::ts).unwrap_or_else(|| now.to_string()),
            now
        ])?;
    if n == 1 {
        let id = c.last_insert_rowid();
        let mut k = c.prepare_cached("INSERT OR IGNORE INTO outbox_keys (key, outbox_id) VALUES (?, ?)")?;
        for key in &cmd.keys {
            k.execute(params![key, id])?;
        }
    }
    Ok(())
}

/// Remembers the CRM id of a casebridge key and resolves sessions waiting for it.
pub(crate) fn set_ref_r(c: &rusqlite::Connection, key: &str, crm_id: &str) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO crm_refs (key, crm_id) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET crm_id = excluded.crm_id",
    )?
    .execute([key, crm_id])?;
    c.prepare_cached("UPDATE sessions SET account_id = ? WHERE account_key = ?")?.execute([crm_id, key])?;
    c.prepare_cached("UPDATE sessions SET record_id = ? WHERE record_key = ?")?.execute([crm_id, key])?;
    Ok(())
}

/// Splits a reference into (casebridge key, CRM id).
pub(crate) fn split_ref(r: &Option<(String, bool)>) -> (Option<String>, Option<String>) {
    match r {
        Some((k, true)) => (Some(k.clone()), None),
        Some((id, false)) => (None, Some(id.clone())),
        None => (None, None),
    }
}

/// The id the next row of a table gets, with a prefix.
pub(crate) fn next_id_r(c: &rusqlite::Connection, table: &str, prefix: &str) -> Result<String> {
    // Rows are never deleted, so the next rowid is the row count plus one, without a scan.
    let sql = format!("SELECT COALESCE(MAX(rowid), 0) FROM {table}");
    let n: i64 = c.prepare_cached(&sql)?.query_row([], |r| r.get(0))?;
    Ok(format!("{prefix}{}", n + 1))
}

/// Writes an activity line; `replace` counts a new revision (a later wrap-up), otherwise a
/// replayed line changes nothing.
pub(crate) fn upsert_activity_r(c: &rusqlite::Connection, a: &NewActivity, replace: bool) -> Result<()> {
    let now = ts(Utc::now());
    let id = next_id_r(c, "platform_activities", "pa_")?;
    let conflict = if replace {
        "ON CONFLICT(ext_key) DO UPDATE SET action = excluded.action, person_ref = excluded.person_ref,
           person_is_key = excluded.person_is_key, record_id = excluded.record_id, related_by = excluded.related_by,
           disposition = excluded.disposition, label = excluded.label, notes = excluded.notes,
           agent_id = excluded.agent_id, revision = revision + 1, updated_at = excluded.updated_at"
    } else {
        "ON CONFLICT(ext_key) DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO platform_activities (id, ext_key, session_id, kind, action, person_ref, person_is_key, record_id,
           related_by, disposition, label, notes, agent_id, queue, channel, missed_reason, session_at, created_at, updated_at)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) {conflict}"
    );
    c.prepare_cached(&sql)?.execute(params![
        id,
        a.ext_key,
        a.session_id,
        a.kind,
        a.action,
        a.person_ref,
        a.person_is_key,
        a.record_id,
        a.related_by,
        a.disposition,
        a.label,
        a.notes,
        a.agent_id,
        a.queue,
        a.channel,
        a.missed_reason,
        ts(a.session_at),
        now,
        now
    ])?;
    Ok(())
}
