//! The built-in CRM's records and what hangs on them: notes, attachments, activities and
//! session objects.

use chrono::{DateTime, Utc};
use sqlx::Row;

use rusqlite::{OptionalExtension, params};

use super::{activity_row, record_r, record_sessions_r};
use crate::sqlite::SqliteStore;
use crate::sqlite::rows::next_id_r;
use crate::{Result, StoreError, parse_ts, ts};
use casebridge_crm::builtin::storage::{
    CrmActivity, CrmAttachment, CrmNote, CrmRecord, CrmSessionObject, NewRecord, RecordFilter, is_closed_status,
};

fn touch(c: &rusqlite::Connection, id: &str, at: DateTime<Utc>) -> Result<()> {
    c.prepare_cached("UPDATE crm_records SET updated_at = ? WHERE id = ?")?.execute(params![ts(at), id])?;
    Ok(())
}

/// A record read on the handle, with its sessions.
fn record_by_r(c: &rusqlite::Connection, col: &str, v: &str) -> Result<Option<CrmRecord>> {
    let sql = format!("SELECT * FROM crm_records WHERE {col} = ?");
    let Some(r) = c.prepare_cached(&sql)?.query_row([v], record_r).optional()? else { return Ok(None) };
    let mut one = [r];
    record_sessions_r(c, &mut one)?;
    let [r] = one;
    Ok(Some(r))
}

/// Fails with NotFound unless the record exists (one indexed lookup).
fn record_must_exist_r(c: &rusqlite::Connection, id: &str) -> Result<()> {
    match c.prepare_cached("SELECT 1 FROM crm_records WHERE id = ?")?.exists([id])? {
        true => Ok(()),
        false => Err(StoreError::NotFound(format!("record {id} does not exist"))),
    }
}

fn require_record_r(c: &rusqlite::Connection, id: &str) -> Result<CrmRecord> {
    record_by_r(c, "id", id)?.ok_or_else(|| StoreError::NotFound(format!("record {id} does not exist")))
}

impl SqliteStore {
    async fn record_by(&self, col: &str, v: &str) -> Result<Option<CrmRecord>> {
        self.owned.read(|c| record_by_r(c, col, v)).await
    }

    pub(super) async fn create_record(&self, r: NewRecord) -> Result<(CrmRecord, bool)> {
        self.owned.write(|c| {
            if let Some(k) = &r.ext_key
                && let Some(rec) = record_by_r(c, "ext_key", k)?
            {
                return Ok((rec, false));
            }
            let id = match &r.id {
                Some(id) => id.clone(),
                None => next_id_r(c, "crm_records", "rec_")?,
            };
            let status = r.status.clone().unwrap_or_else(|| "new".into());
            let at = ts(r.at);
            let closed_at =
                if is_closed_status(&status) { Some(r.closed_at.map(ts).unwrap_or_else(|| at.clone())) } else { None };
            c.prepare_cached(
                "INSERT INTO crm_records (id, ext_key, account_id, title, status, closed_at, leaf_queue, channel, owner_agent_id, tags, abandoned, missed_reason, created_at, updated_at)
                 VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            )?
            .execute(params![
                id,
                r.ext_key,
                r.account_id,
                r.title,
                status,
                closed_at,
                r.leaf_queue,
                r.channel,
                r.owner_agent_id,
                serde_json::to_string(&r.tags)?,
                r.abandoned as i64,
                r.missed_reason,
                at,
                at
            ])?;
            if let Some(s) = &r.session_id {
                c.prepare_cached(
                    "INSERT OR IGNORE INTO crm_record_sessions (record_id, session_id, added_at) VALUES (?,?,?)",
                )?
                .execute(params![id, s, at])?;
            }
            Ok((require_record_r(c, &id)?, true))
        })
        .await
    }

    pub(super) async fn list_records(&self, f: RecordFilter) -> Result<Vec<CrmRecord>> {
        // Only the filters given go in the statement: `(? IS NULL OR account_id = ?)` made
        // SQLite scan every record, and an account's records are a lookup at each trigger.
        let mut sql = "SELECT * FROM crm_records r WHERE 1 = 1".to_string();
        let mut args: Vec<&str> = Vec::new();
        if let Some(a) = &f.account_id {
            sql.push_str(" AND account_id = ?");
            args.push(a);
        }
        if let Some(st) = &f.status {
            sql.push_str(" AND status = ?");
            args.push(st);
        }
        if let Some(sid) = &f.session_id {
            sql.push_str(" AND id IN (SELECT record_id FROM crm_record_sessions WHERE session_id = ?)");
            args.push(sid);
        }
        sql.push_str(" ORDER BY created_at, id");
        self.owned
            .read(|c| {
                let mut recs: Vec<CrmRecord> = c
                    .prepare_cached(&sql)?
                    .query_map(rusqlite::params_from_iter(args.iter()), record_r)?
                    .collect::<rusqlite::Result<_>>()?;
                record_sessions_r(c, &mut recs)?;
                Ok(recs)
            })
            .await
    }

    pub(super) async fn get_record(&self, id: &str) -> Result<Option<CrmRecord>> {
        self.record_by("id", id).await
    }

    pub(super) async fn record_details(
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

    pub(super) async fn set_status(&self, id: &str, status: &str, at: DateTime<Utc>) -> Result<()> {
        self.owned.write(|c| {
            record_must_exist_r(c, id)?;
            let closed_at = if is_closed_status(status) { Some(ts(at)) } else { None };
            c.prepare_cached("UPDATE crm_records SET status = ?1, closed_at = CASE WHEN ?2 IS NULL THEN NULL ELSE COALESCE(CASE WHEN status IN ('solved','closed') THEN closed_at END, ?2) END, updated_at = ?3 WHERE id = ?4")?
                .execute(params![status, closed_at, ts(at), id])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn append_session(
        &self,
        id: &str,
        session_id: &str,
        tags: &[String],
        reopen_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.owned
            .write(|c| {
                let rec = require_record_r(c, id)?;
                let mut all = rec.tags.clone();
                for t in tags {
                    if !all.contains(t) {
                        all.push(t.clone());
                    }
                }
                c.prepare_cached(
                    "INSERT OR IGNORE INTO crm_record_sessions (record_id, session_id, added_at) VALUES (?,?,?)",
                )?
                .execute(params![id, session_id, ts(at)])?;
                c.prepare_cached("UPDATE crm_records SET tags = ?, updated_at = ? WHERE id = ?")?.execute(params![
                    serde_json::to_string(&all)?,
                    ts(at),
                    id
                ])?;
                if let Some(s) = reopen_to
                    && rec.is_closed
                {
                    c.prepare_cached("UPDATE crm_records SET status = ?, closed_at = NULL WHERE id = ?")?
                        .execute(params![s, id])?;
                }
                Ok(())
            })
            .await
    }

    pub(super) async fn set_owner(&self, id: &str, agent_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.owned
            .write(|c| {
                record_must_exist_r(c, id)?;
                c.prepare_cached("UPDATE crm_records SET owner_agent_id = ?, updated_at = ? WHERE id = ?")?
                    .execute(params![agent_id, ts(at), id])?;
                Ok(())
            })
            .await
    }

    pub(super) async fn mark_abandoned(&self, id: &str, reason: &str, at: DateTime<Utc>) -> Result<()> {
        self.owned
            .write(|c| {
                record_must_exist_r(c, id)?;
                c.prepare_cached(
                    "UPDATE crm_records SET abandoned = 1, missed_reason = ?, updated_at = ? WHERE id = ?",
                )?
                .execute(params![reason, ts(at), id])?;
                Ok(())
            })
            .await
    }

    pub(super) async fn add_note(&self, key: &str, id: &str, body: &str, at: DateTime<Utc>) -> Result<()> {
        self.owned.write(|c| {
            record_must_exist_r(c, id)?;
            let nid = next_id_r(c, "crm_notes", "note_")?;
            c.prepare_cached("INSERT INTO crm_notes (id, ext_key, record_id, body, created_at) VALUES (?,?,?,?,?) ON CONFLICT(ext_key) DO NOTHING")?
                .execute(params![nid, key, id, body, ts(at)])?;
            touch(c, id, at)
        })
        .await
    }

    pub(super) async fn add_attachment(
        &self,
        key: &str,
        id: &str,
        name: &str,
        url: Option<&str>,
        content: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.owned.write(|c| {
            record_must_exist_r(c, id)?;
            let aid = next_id_r(c, "crm_attachments", "att_")?;
            c.prepare_cached("INSERT INTO crm_attachments (id, ext_key, record_id, name, url, content, created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(ext_key) DO NOTHING")?
                .execute(params![aid, key, id, name, url, content, ts(at)])?;
            touch(c, id, at)
        })
        .await
    }

    pub(super) async fn attachment_content(&self, id: &str) -> Result<Option<(String, Option<String>)>> {
        let r = sqlx::query("SELECT name, content FROM crm_attachments WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(r.map(|r| (r.get("name"), r.get("content"))))
    }

    pub(super) async fn set_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.merge_fields("crm_records", "record", id, fields, at).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn upsert_activity(
        &self,
        key: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        session_id: Option<&str>,
        subject: &str,
        body: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.owned.write(|c| {
            let body = serde_json::to_string(body)?;
            // Most rewrites keep the record and account: naming those columns would rewrite
            // their index entries too (see `update_session_r`).
            let kept = c
                .prepare_cached(
                    "UPDATE crm_activities SET subject = ?, body = ?, updated_at = ? WHERE ext_key = ? AND record_id IS ? AND account_id IS ?",
                )?
                .execute(params![subject, body, ts(at), key, record_id, account_id])?;
            if kept == 1 {
                return Ok(());
            }
            let aid = next_id_r(c, "crm_activities", "act_")?;
            c.prepare_cached(
                "INSERT INTO crm_activities (id, ext_key, record_id, account_id, session_id, subject, body, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)
                 ON CONFLICT(ext_key) DO UPDATE SET record_id = excluded.record_id, account_id = excluded.account_id, subject = excluded.subject, body = excluded.body, updated_at = excluded.updated_at",
            )?
            .execute(params![aid, key, record_id, account_id, session_id, subject, body, ts(at), ts(at)])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn upsert_session_object(
        &self,
        session_id: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.owned.write(|c| {
            let data = serde_json::to_string(data)?;
            let kept = c
                .prepare_cached(
                    "UPDATE crm_session_objects SET data = ?, updated_at = ? WHERE session_id = ? AND record_id IS ? AND account_id IS ?",
                )?
                .execute(params![data, ts(at), session_id, record_id, account_id])?;
            if kept == 1 {
                return Ok(());
            }
            let sid = next_id_r(c, "crm_session_objects", "so_")?;
            c.prepare_cached(
                "INSERT INTO crm_session_objects (id, session_id, record_id, account_id, data, created_at, updated_at) VALUES (?,?,?,?,?,?,?)
                 ON CONFLICT(session_id) DO UPDATE SET record_id = excluded.record_id, account_id = excluded.account_id, data = excluded.data, updated_at = excluded.updated_at",
            )?
            .execute(params![sid, session_id, record_id, account_id, data, ts(at), ts(at)])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn withdraw_activity(&self, key: &str, at: DateTime<Utc>) -> Result<bool> {
        self.owned.write(|c| {
            let n = c.prepare_cached(
                "UPDATE crm_activities SET record_id = NULL, account_id = NULL, updated_at = ? WHERE ext_key = ? AND (record_id IS NOT NULL OR account_id IS NOT NULL)",
            )?
            .execute(params![ts(at), key])?;
            Ok(n > 0)
        })
        .await
    }
}
