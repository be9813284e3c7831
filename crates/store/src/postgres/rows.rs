//! Row helpers shared by the PostgreSQL modules: writes that several concerns make inside their
//! own transactions, and row mappers.

use casebridge_rules::model::Entry;
use chrono::{DateTime, Utc};
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
    let lines: Vec<(&str, &Entry)> = es.iter().map(|e| (session_id, e)).collect();
    insert_timeline_lines(tx, &lines).await
}

/// Appends timeline lines of any sessions, in order, in one statement.
pub(crate) async fn insert_timeline_lines(tx: &mut sqlx::PgConnection, lines: &[(&str, &Entry)]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let native = lines
        .iter()
        .map(|(_, e)| e.native.as_ref().map(serde_json::to_string).transpose())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    sqlx::query(
        "INSERT INTO timeline (session_id, at, kind, summary, rule, native)
         SELECT t.session_id, t.at, t.kind, t.summary, t.rule, t.native
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
              AS t(session_id, at, kind, summary, rule, native, ord)
         ORDER BY t.ord",
    )
    .bind(lines.iter().map(|(s, _)| *s).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, e)| ts(e.at)).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, e)| entry_kind_str(e.kind)).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, e)| e.summary.clone()).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, e)| e.rule.clone()).collect::<Vec<_>>())
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

/// Applies rules steps: their session rows, timeline, outbox and activity lines, and marks
/// their events applied, in a few statements for the whole batch (a statement per step was
/// a round trip each, and the rules worker waited on them one after the other). A CRM id the
/// session row already has for the same key is kept: the delivery of the create may have
/// resolved it after this step read `crm_refs`.
pub(crate) async fn commit_steps_in(tx: &mut sqlx::PgConnection, steps: &[StepCommit]) -> Result<()> {
    let now = ts(Utc::now());
    // Lock order, the same in every transaction that takes both: outbox rows (and their tally
    // slot) first, then session rows by id. Delivery's outcomes take them in that order too;
    // the other order let a rules commit and an outcome wait on each other until PostgreSQL's
    // deadlock check (a second) aborted one of them.
    let commands: Vec<&NewCommand> = steps.iter().flat_map(|c| &c.commands).collect();
    insert_commands(tx, &commands, &now).await?;
    // One row a session, in one statement: the session as its last step of the batch left it
    // (the earlier steps' rows would only be overwritten), first seen at the earliest of them.
    let mut rows: std::collections::BTreeMap<&str, (&StepCommit, Option<DateTime<Utc>>)> =
        std::collections::BTreeMap::new();
    for c in steps {
        let first = rows.get(c.session_id.as_str()).map_or(c.first_at, |(_, f)| match (*f, c.first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
        rows.insert(c.session_id.as_str(), (c, first));
    }
    let rows: Vec<(&StepCommit, Option<DateTime<Utc>>)> = rows.into_values().collect();
    upsert_sessions(tx, &rows, &now).await?;
    let lines: Vec<(&str, &Entry)> =
        steps.iter().flat_map(|c| c.timeline.iter().map(move |e| (c.session_id.as_str(), e))).collect();
    insert_timeline_lines(tx, &lines).await?;
    let activities: Vec<&NewActivity> = steps.iter().flat_map(|c| &c.activities).collect();
    insert_activities(tx, &activities).await?;
    // Fenced: events another node applied meanwhile make the whole commit fail.
    // `IS NOT TRUE`, not `NOT applied`: the latter matches the partial index of pending events,
    // which the planner (its statistics taken while few events waited) walked whole for every
    // commit under load instead of reading the few rows by key.
    let seqs: Vec<i64> = steps.iter().flat_map(|c| c.event_seqs.iter().copied()).collect();
    let applied: Vec<i64> = sqlx::query_scalar(
        "UPDATE events SET applied = TRUE WHERE seq = ANY($1) AND applied IS NOT TRUE RETURNING seq",
    )
    .bind(&seqs)
    .fetch_all(&mut *tx)
    .await?;
    if applied.len() != seqs.len() {
        let applied: std::collections::HashSet<i64> = applied.into_iter().collect();
        let mut sessions: Vec<&str> = steps
            .iter()
            .filter(|c| c.event_seqs.iter().any(|q| !applied.contains(q)))
            .map(|c| c.session_id.as_str())
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        return Err(crate::StoreError::Fenced(format!(
            "events of session {} were applied by another node",
            sessions.join(", ")
        )));
    }
    Ok(())
}

/// Writes session rows (each session once), resolving casebridge's keys to CRM ids in the
/// same statement.
async fn upsert_sessions(
    tx: &mut sqlx::PgConnection,
    rows: &[(&StepCommit, Option<DateTime<Utc>>)],
    now: &str,
) -> Result<()> {
    let steps: Vec<&StepCommit> = rows.iter().map(|(c, _)| *c).collect();
    let refs: Vec<_> = steps.iter().map(|c| (split_ref(&c.account), split_ref(&c.record))).collect();
    sqlx::query(
        "INSERT INTO sessions (id, body, lane, account_key, account_id, record_key, record_id, created_at, updated_at, agent_id, over, first_at)
         SELECT t.id, t.body, t.lane, t.account_key,
           CASE WHEN t.account_key IS NULL THEN t.account_id ELSE (SELECT crm_id FROM crm_refs WHERE key = t.account_key) END,
           t.record_key, CASE WHEN t.record_key IS NULL THEN t.record_id ELSE (SELECT crm_id FROM crm_refs WHERE key = t.record_key) END,
           t.created_at, $10, t.agent_id, t.over, t.first_at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $11::bool[], $12::text[])
           AS t(id, body, lane, account_key, account_id, record_key, record_id, created_at, agent_id, over, first_at)
         ON CONFLICT(id) DO UPDATE SET body = excluded.body, lane = excluded.lane, account_key = excluded.account_key,
           account_id = CASE WHEN excluded.account_id IS NULL AND excluded.account_key = sessions.account_key THEN sessions.account_id ELSE excluded.account_id END,
           record_key = excluded.record_key,
           record_id = CASE WHEN excluded.record_id IS NULL AND excluded.record_key = sessions.record_key THEN sessions.record_id ELSE excluded.record_id END,
           created_at = excluded.created_at, updated_at = excluded.updated_at, agent_id = excluded.agent_id,
           over = excluded.over, first_at = LEAST(sessions.first_at, excluded.first_at)",
    )
    .bind(steps.iter().map(|c| c.session_id.as_str()).collect::<Vec<_>>())
    .bind(steps.iter().map(|c| c.session.as_str()).collect::<Vec<_>>())
    .bind(steps.iter().map(|c| c.lane.as_deref()).collect::<Vec<_>>())
    .bind(refs.iter().map(|((key, _), _)| key.as_deref()).collect::<Vec<_>>())
    .bind(refs.iter().map(|((_, id), _)| id.as_deref()).collect::<Vec<_>>())
    .bind(refs.iter().map(|(_, (key, _))| key.as_deref()).collect::<Vec<_>>())
    .bind(refs.iter().map(|(_, (_, id))| id.as_deref()).collect::<Vec<_>>())
    .bind(steps.iter().map(|c| c.created_at.map(ts)).collect::<Vec<_>>())
    .bind(steps.iter().map(|c| c.agent_id.as_deref()).collect::<Vec<_>>())
    .bind(now)
    .bind(steps.iter().map(|c| c.over).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, first)| first.map(ts)).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds outbox rows and their customer keys in one statement, in order (a replayed row is
/// already there: nothing to do for it).
async fn insert_commands(tx: &mut sqlx::PgConnection, cmds: &[&NewCommand], now: &str) -> Result<()> {
    if cmds.is_empty() {
        return Ok(());
    }
    let (key_of, customer_key): (Vec<&str>, Vec<&str>) =
        cmds.iter().flat_map(|c| c.keys.iter().map(move |k| (c.key.as_str(), k.as_str()))).unzip();
    sqlx::query(
        "WITH o AS (
           INSERT INTO outbox (key, lane, session_id, op, next_attempt_at, created_at)
           SELECT c.key, c.lane, c.session_id, c.op, c.next_attempt_at, $6
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
             AS c(key, lane, session_id, op, next_attempt_at, ord)
           ORDER BY c.ord
           ON CONFLICT(key) DO NOTHING RETURNING id, key)
         INSERT INTO outbox_keys (key, outbox_id)
         SELECT DISTINCT k.customer_key, o.id FROM o JOIN unnest($7::text[], $8::text[]) AS k(command_key, customer_key)
           ON k.command_key = o.key
         ON CONFLICT DO NOTHING",
    )
    .bind(cmds.iter().map(|c| c.key.as_str()).collect::<Vec<_>>())
    .bind(cmds.iter().map(|c| c.lane.as_str()).collect::<Vec<_>>())
    .bind(cmds.iter().map(|c| c.session_id.as_str()).collect::<Vec<_>>())
    .bind(cmds.iter().map(|c| c.op.as_str()).collect::<Vec<_>>())
    .bind(cmds.iter().map(|c| c.not_before.map(crate::ts).unwrap_or_else(|| now.to_string())).collect::<Vec<_>>())
    .bind(now)
    .bind(key_of)
    .bind(customer_key)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds an outbox row and its customer keys (a replayed row is already there: nothing to do).
pub(crate) async fn insert_command(tx: &mut sqlx::PgConnection, cmd: &NewCommand, now: &str) -> Result<()> {
    insert_commands(tx, &[cmd], now).await
}

/// Remembers the CRM ids of casebridge's keys and resolves the sessions waiting for them, in
/// two statements whatever the number of keys. The session rows are locked in id order, as
/// the rules' commits lock them, so that the two never wait on each other in a cycle.
pub(crate) async fn set_refs(tx: &mut sqlx::PgConnection, refs: &[(&str, &str)]) -> Result<()> {
    // A key given twice keeps its last id (a statement may change a row only once).
    let mut last: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for (k, id) in refs {
        last.insert(k, id);
    }
    if last.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = last.keys().copied().collect();
    let ids: Vec<&str> = last.values().copied().collect();
    sqlx::query(
        "INSERT INTO crm_refs (key, crm_id) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT(key) DO UPDATE SET crm_id = excluded.crm_id",
    )
    .bind(&keys)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[]) AS r(key, crm_id)),
         l AS MATERIALIZED (SELECT id FROM sessions WHERE account_key = ANY($1) OR record_key = ANY($1)
                            ORDER BY id FOR UPDATE)
         UPDATE sessions s SET
           account_id = COALESCE((SELECT r.crm_id FROM r WHERE r.key = s.account_key), s.account_id),
           record_id = COALESCE((SELECT r.crm_id FROM r WHERE r.key = s.record_key), s.record_id)
         FROM l WHERE s.id = l.id",
    )
    .bind(&keys)
    .bind(&ids)
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

/// The columns an activity line is inserted with, in the order of the values (a macro, so
/// that both inserts are whole literals, built at compile time).
macro_rules! activity_columns {
    () => {
        "id, ext_key, session_id, kind, action, person_ref, person_is_key, record_id, related_by, disposition, label,
         notes, agent_id, queue, channel, missed_reason, session_at, created_at, updated_at"
    };
}

/// Adds activity lines in one statement; a line already stored (a replayed step) stays as it is.
pub(crate) async fn insert_activities(tx: &mut sqlx::PgConnection, lines: &[&NewActivity]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let now = ts(Utc::now());
    let text = |f: fn(&NewActivity) -> Option<&str>| lines.iter().map(|a| f(a)).collect::<Vec<_>>();
    sqlx::query(concat!(
        "INSERT INTO platform_activities (",
        activity_columns!(),
        ")
         SELECT 'pa_' || nextval('platform_activities_n'), t.ext_key, t.session_id, t.kind, t.action, t.person_ref,
           t.person_is_key, t.record_id, t.related_by, t.disposition, t.label, t.notes, t.agent_id, t.queue, t.channel,
           t.missed_reason, t.session_at, $17, $17
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])
           WITH ORDINALITY AS t(ext_key, session_id, kind, action, person_ref, person_is_key, record_id, related_by,
                                disposition, label, notes, agent_id, queue, channel, missed_reason, session_at, ord)
         ORDER BY t.ord
         ON CONFLICT(ext_key) DO NOTHING"
    ))
    .bind(text(|a| Some(a.ext_key.as_str())))
    .bind(text(|a| Some(a.session_id.as_str())))
    .bind(text(|a| Some(a.kind.as_str())))
    .bind(text(|a| a.action.as_deref()))
    .bind(text(|a| a.person_ref.as_deref()))
    .bind(lines.iter().map(|a| a.person_is_key).collect::<Vec<_>>())
    .bind(text(|a| a.record_id.as_deref()))
    .bind(text(|a| a.related_by.as_deref()))
    .bind(text(|a| a.disposition.as_deref()))
    .bind(text(|a| a.label.as_deref()))
    .bind(text(|a| a.notes.as_deref()))
    .bind(text(|a| a.agent_id.as_deref()))
    .bind(text(|a| a.queue.as_deref()))
    .bind(text(|a| a.channel.as_deref()))
    .bind(text(|a| a.missed_reason.as_deref()))
    .bind(lines.iter().map(|a| ts(a.session_at)).collect::<Vec<_>>())
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes an activity line, or replaces it as a new revision (a later wrap-up).
pub(crate) async fn replace_activity(tx: &mut sqlx::PgConnection, a: &NewActivity) -> Result<()> {
    let now = ts(Utc::now());
    let sql = concat!(
        "INSERT INTO platform_activities (",
        activity_columns!(),
        ")
         VALUES ('pa_' || nextval('platform_activities_n'),$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)
         ON CONFLICT(ext_key) DO UPDATE SET action = excluded.action, person_ref = excluded.person_ref,
           person_is_key = excluded.person_is_key, record_id = excluded.record_id, related_by = excluded.related_by,
           disposition = excluded.disposition, label = excluded.label, notes = excluded.notes,
           agent_id = excluded.agent_id, revision = platform_activities.revision + 1, updated_at = excluded.updated_at"
    );
    sqlx::query(sql)
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
