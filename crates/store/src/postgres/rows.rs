//! Row helpers shared by the PostgreSQL modules: writes that several concerns make inside their
//! own transactions, and row mappers.

use casebridge_rules::model::Entry;
use chrono::Utc;
use sqlx::Row;

use crate::agents::NewActivity;
use crate::{NewCommand, NewEvent, OutboxRow, Result, StepCommit, entry_kind_str, ts};

/// Reads an outbox row.
pub(crate) fn outbox_row(r: &sqlx::postgres::PgRow) -> Result<OutboxRow> {
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

/// An outbox row just claimed, with whether its lease was taken from another node.
pub(crate) fn claimed_row(r: &sqlx::postgres::PgRow) -> Result<OutboxRow> {
    Ok(OutboxRow { taken_over: r.get("taken_over"), ..outbox_row(r)? })
}

/// Appends a line to a session's timeline.
pub(crate) async fn insert_timeline(tx: &mut sqlx::PgConnection, session_id: &str, e: &Entry) -> Result<()> {
    insert_timeline_all(tx, session_id, std::slice::from_ref(e)).await
}

/// Appends lines to a session's timeline, in order, in one statement (one round trip).
pub(crate) async fn insert_timeline_all(tx: &mut sqlx::PgConnection, session_id: &str, es: &[Entry]) -> Result<()> {
    if es.is_empty() {
        return Ok(());
    }
    let native = es
        .iter()
        .map(|e| e.native.as_ref().map(serde_json::to_string).transpose())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    sqlx::query(
        "INSERT INTO timeline (session_id, at, kind, summary, rule, native)
         SELECT $1, t.at, t.kind, t.summary, t.rule, t.native
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
              AS t(at, kind, summary, rule, native, ord)
         ORDER BY t.ord",
    )
    .bind(session_id)
    .bind(es.iter().map(|e| ts(e.at)).collect::<Vec<_>>())
    .bind(es.iter().map(|e| entry_kind_str(e.kind)).collect::<Vec<_>>())
    .bind(es.iter().map(|e| e.summary.clone()).collect::<Vec<_>>())
    .bind(es.iter().map(|e| e.rule.clone()).collect::<Vec<_>>())
    .bind(native)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores one event; false when its id is known.
pub(crate) async fn insert_event(tx: &mut sqlx::PgConnection, e: &NewEvent, now: &str) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO events (id, session_id, type, at, body, received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT(id) DO NOTHING",
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

/// Applies one rules step: the session row, its timeline, outbox and activity lines, and
/// marks its events applied. A CRM id the session row already has for the same key is kept:
/// the delivery of the create may have resolved it after this step read `crm_refs`.
pub(crate) async fn commit_one(tx: &mut sqlx::PgConnection, c: &StepCommit) -> Result<()> {
    let now = ts(Utc::now());
    let (account_key, account_id) = split_ref(&c.account);
    let (record_key, record_id) = split_ref(&c.record);
    // A casebridge key is resolved to its CRM id (when created) in the same statement.
    sqlx::query(
            "INSERT INTO sessions (id, body, lane, account_key, account_id, record_key, record_id, created_at, updated_at, agent_id, over, first_at)
             VALUES ($1, $2, $3, $4,
               CASE WHEN $4::text IS NULL THEN $5::text ELSE (SELECT crm_id FROM crm_refs WHERE key = $4) END,
               $6, CASE WHEN $6::text IS NULL THEN $7::text ELSE (SELECT crm_id FROM crm_refs WHERE key = $6) END,
               $8, $9, $10, $11, $12)
             ON CONFLICT(id) DO UPDATE SET body = excluded.body, lane = excluded.lane, account_key = excluded.account_key,
               account_id = CASE WHEN excluded.account_id IS NULL AND excluded.account_key = sessions.account_key THEN sessions.account_id ELSE excluded.account_id END,
               record_key = excluded.record_key,
               record_id = CASE WHEN excluded.record_id IS NULL AND excluded.record_key = sessions.record_key THEN sessions.record_id ELSE excluded.record_id END,
               created_at = excluded.created_at, updated_at = excluded.updated_at, agent_id = excluded.agent_id,
               over = excluded.over, first_at = LEAST(sessions.first_at, excluded.first_at)",
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
        .bind(c.first_at.map(ts))
        .execute(&mut *tx)
        .await?;
    insert_timeline_all(tx, &c.session_id, &c.timeline).await?;
    for cmd in &c.commands {
        insert_command(tx, cmd, &now).await?;
    }
    for a in &c.activities {
        upsert_activity(tx, a, false).await?;
    }
    // Fenced: events another node applied meanwhile make the whole commit fail.
    // `IS NOT TRUE`, not `NOT applied`: the latter matches the partial index of pending events,
    // which the planner (its statistics taken while few events waited) walked whole for every
    // commit under load instead of reading the few rows by key.
    let applied = sqlx::query("UPDATE events SET applied = TRUE WHERE seq = ANY($1) AND applied IS NOT TRUE")
        .bind(&c.event_seqs)
        .execute(&mut *tx)
        .await?;
    if applied.rows_affected() != c.event_seqs.len() as u64 {
        return Err(crate::StoreError::Fenced(format!(
            "events of session {} were applied by another node",
            c.session_id
        )));
    }
    Ok(())
}

/// Adds an outbox row and its customer keys (a replayed row is already there: nothing to do).
pub(crate) async fn insert_command(tx: &mut sqlx::PgConnection, cmd: &NewCommand, now: &str) -> Result<()> {
    // One round trip: the row, then its keys (none when the row was there already).
    sqlx::query(
        "WITH o AS (
           INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT(key) DO NOTHING RETURNING id)
         INSERT INTO outbox_keys (key, outbox_id) SELECT DISTINCT k, o.id FROM o, unnest($7::text[]) AS k
         ON CONFLICT DO NOTHING",
    )
    .bind(&cmd.key)
    .bind(&cmd.lane)
    .bind(&cmd.session_id)
    .bind(&cmd.op)
    .bind(cmd.not_before.map(crate::ts).unwrap_or_else(|| now.to_string()))
    .bind(now)
    .bind(&cmd.keys)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Remembers the CRM id of a casebridge key and resolves sessions waiting for it.
pub(crate) async fn set_ref(tx: &mut sqlx::PgConnection, key: &str, crm_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO crm_refs (key, crm_id) VALUES ($1, $2) ON CONFLICT(key) DO UPDATE SET crm_id = excluded.crm_id",
    )
    .bind(key)
    .bind(crm_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE sessions SET account_id = $1 WHERE account_key = $2")
        .bind(crm_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sessions SET record_id = $1 WHERE record_key = $2")
        .bind(crm_id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
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
pub(crate) async fn next_id(conn: &mut sqlx::PgConnection, table: &str, prefix: &str) -> Result<String> {
    // Each table has its sequence (`<table>_n`): concurrent writers never get the same id.
    let n: i64 =
        sqlx::query_scalar("SELECT nextval($1::regclass)").bind(format!("{table}_n")).fetch_one(&mut *conn).await?;
    Ok(format!("{prefix}{n}"))
}

/// Writes an activity line; `replace` counts a new revision (a later wrap-up), otherwise a
/// replayed line changes nothing.
pub(crate) async fn upsert_activity(tx: &mut sqlx::PgConnection, a: &NewActivity, replace: bool) -> Result<()> {
    let now = ts(Utc::now());
    let id = next_id(tx, "platform_activities", "pa_").await?;
    let conflict = if replace {
        "ON CONFLICT(ext_key) DO UPDATE SET action = excluded.action, person_ref = excluded.person_ref,
           person_is_key = excluded.person_is_key, record_id = excluded.record_id, related_by = excluded.related_by,
           disposition = excluded.disposition, label = excluded.label, notes = excluded.notes,
           agent_id = excluded.agent_id, revision = platform_activities.revision + 1, updated_at = excluded.updated_at"
    } else {
        "ON CONFLICT(ext_key) DO NOTHING"
    };
    let sql = format!(
        "INSERT INTO platform_activities (id, ext_key, session_id, kind, action, person_ref, person_is_key, record_id,
           related_by, disposition, label, notes, agent_id, queue, channel, missed_reason, session_at, created_at, updated_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) {conflict}"
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(&a.ext_key)
        .bind(&a.session_id)
        .bind(&a.kind)
        .bind(&a.action)
        .bind(&a.person_ref)
        .bind(a.person_is_key)
        .bind(&a.record_id)
        .bind(&a.related_by)
        .bind(&a.disposition)
        .bind(&a.label)
        .bind(&a.notes)
        .bind(&a.agent_id)
        .bind(&a.queue)
        .bind(&a.channel)
        .bind(&a.missed_reason)
        .bind(ts(a.session_at))
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
