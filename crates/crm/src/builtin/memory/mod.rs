//! The built-in CRM's storage kept in memory, for replays that need no durability
//! (`simulate`, the console's "What if"). Same answers as the database implementations: ids
//! numbered per kind, lists ordered by creation time then id, times kept to the microsecond.

mod state;

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::storage::{
    BuiltinCrmStore, BuiltinResult, BuiltinStoreError, CrmAccount, CrmActivity, CrmAttachment, CrmNote, CrmRecord,
    CrmSessionObject, NewAccount, NewRecord, RecordFilter, is_closed_status,
};

use self::state::{
    Account, Activity, Fields, Inner, Record, SessionObject, by_creation, email_key, index, merge, missing, t, text,
    unindex,
};

/// The built-in CRM's objects in memory.
#[derive(Default)]
pub struct MemoryCrm {
    inner: Mutex<Inner>,
}

impl MemoryCrm {
    /// An empty CRM.
    pub fn new() -> Self {
        MemoryCrm::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> BuiltinResult<T>) -> BuiltinResult<T> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }
}

#[async_trait]
impl BuiltinCrmStore for MemoryCrm {
    async fn crm_create_account(&self, a: NewAccount) -> BuiltinResult<(CrmAccount, bool)> {
        self.with(|m| {
            if let Some(i) = a.ext_key.as_ref().and_then(|k| m.account_keys.get(k)) {
                return Ok((m.accounts[*i].a.clone(), false));
            }
            let id = a.id.clone().unwrap_or_else(|| format!("acct_{}", m.accounts.len() + 1));
            if m.account_ids.contains_key(&id) {
                return Err(BuiltinStoreError::Conflict(format!("account {id} already exists")));
            }
            let i = m.accounts.len();
            let at = t(a.at);
            let ek = a.email.as_deref().map(email_key);
            if let Some(k) = &a.ext_key {
                m.account_keys.insert(k.clone(), i);
            }
            if let Some(p) = &a.phone_key {
                index(&mut m.by_phone, p, i);
            }
            if let Some(e) = &ek {
                index(&mut m.by_email, e, i);
            }
            if let Some(u) = &a.user_id {
                index(&mut m.by_user, u, i);
            }
            m.account_ids.insert(id.clone(), i);
            let acc = CrmAccount {
                id,
                kind: a.kind,
                name: a.name,
                phone: a.phone,
                email: a.email,
                user_id: a.user_id,
                external_key: a.ext_key,
                custom_fields: Fields::new(),
                created_at: at,
                updated_at: at,
            };
            m.accounts.push(Account { a: acc.clone(), email_key: ek });
            Ok((acc, true))
        })
    }

    async fn crm_find_accounts(
        &self,
        phone_key: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> BuiltinResult<Vec<CrmAccount>> {
        self.with(|m| {
            let mut hits: Vec<usize> = Vec::new();
            let lists = [
                phone_key.and_then(|p| m.by_phone.get(p)),
                email.and_then(|e| m.by_email.get(&email_key(e))),
                user_id.and_then(|u| m.by_user.get(u)),
            ];
            for i in lists.into_iter().flatten().flatten() {
                if !hits.contains(i) {
                    hits.push(*i);
                }
            }
            let mut out: Vec<CrmAccount> = hits.into_iter().map(|i| m.accounts[i].a.clone()).collect();
            by_creation(&mut out, |a| (a.created_at, a.id.as_str()));
            Ok(out)
        })
    }

    async fn crm_list_accounts(&self, limit: i64) -> BuiltinResult<Vec<CrmAccount>> {
        self.with(|m| {
            let mut all: Vec<CrmAccount> = m.accounts.iter().map(|a| a.a.clone()).collect();
            by_creation(&mut all, |a| (a.created_at, a.id.as_str()));
            all.reverse();
            all.truncate(limit.max(0) as usize);
            Ok(all)
        })
    }

    async fn crm_get_account(&self, id: &str) -> BuiltinResult<Option<CrmAccount>> {
        self.with(|m| Ok(m.account_ids.get(id).map(|i| m.accounts[*i].a.clone())))
    }

    async fn crm_update_account(
        &self,
        id: &str,
        name: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.with(|m| {
            // Like the databases' UPDATE: an unknown id changes nothing.
            let Some(&i) = m.account_ids.get(id) else { return Ok(()) };
            if let Some(e) = email {
                if let Some(old) = m.accounts[i].email_key.take() {
                    unindex(&mut m.by_email, &old, i);
                }
                let k = email_key(e);
                index(&mut m.by_email, &k, i);
                m.accounts[i].email_key = Some(k);
                m.accounts[i].a.email = Some(e.to_string());
            }
            if let Some(u) = user_id {
                if let Some(old) = m.accounts[i].a.user_id.take() {
                    unindex(&mut m.by_user, &old, i);
                }
                index(&mut m.by_user, u, i);
                m.accounts[i].a.user_id = Some(u.to_string());
            }
            let a = &mut m.accounts[i].a;
            if let Some(n) = name {
                a.name = Some(n.to_string());
            }
            a.updated_at = t(at);
            Ok(())
        })
    }

    async fn crm_account_activities(&self, id: &str) -> BuiltinResult<Vec<CrmActivity>> {
        self.with(|m| {
            let mut out: Vec<CrmActivity> =
                m.activities.iter().filter(|a| a.a.account_id.as_deref() == Some(id)).map(Activity::view).collect();
            by_creation(&mut out, |a| (a.created_at, a.id.as_str()));
            Ok(out)
        })
    }

    async fn crm_create_record(&self, r: NewRecord) -> BuiltinResult<(CrmRecord, bool)> {
        self.with(|m| {
            if let Some(i) = r.ext_key.as_ref().and_then(|k| m.record_keys.get(k)) {
                return Ok((m.records[*i].view(), false));
            }
            let id = r.id.clone().unwrap_or_else(|| format!("rec_{}", m.records.len() + 1));
            if m.record_ids.contains_key(&id) {
                return Err(BuiltinStoreError::Conflict(format!("record {id} already exists")));
            }
            let i = m.records.len();
            let at = t(r.at);
            let status = r.status.clone().unwrap_or_else(|| "new".into());
            let closed_at = is_closed_status(&status).then(|| r.closed_at.map(t).unwrap_or(at));
            if let Some(k) = &r.ext_key {
                m.record_keys.insert(k.clone(), i);
            }
            if let Some(a) = &r.account_id {
                index(&mut m.by_account, a, i);
            }
            let mut rec = Record {
                r: CrmRecord {
                    id: id.clone(),
                    title: r.title,
                    is_closed: is_closed_status(&status),
                    status,
                    closed_at,
                    account_id: r.account_id,
                    leaf_queue: r.leaf_queue,
                    channel: r.channel,
                    owner_agent_id: r.owner_agent_id,
                    tags: r.tags,
                    session_ids: Vec::new(),
                    abandoned: r.abandoned,
                    missed_reason: r.missed_reason,
                    custom_fields: Fields::new(),
                    external_key: r.ext_key,
                    created_at: at,
                    updated_at: at,
                },
                sessions: Vec::new(),
            };
            if let Some(s) = &r.session_id {
                rec.add_session(s, at);
                index(&mut m.by_session, s, i);
            }
            m.record_ids.insert(id, i);
            let view = rec.view();
            m.records.push(rec);
            Ok((view, true))
        })
    }

    async fn crm_list_records(&self, f: RecordFilter) -> BuiltinResult<Vec<CrmRecord>> {
        self.with(|m| {
            // A record's person never changes: its index alone filters by account.
            let candidates: Vec<usize> = match (&f.account_id, &f.session_id) {
                (Some(a), _) => m.by_account.get(a).cloned().unwrap_or_default(),
                (None, Some(s)) => m.by_session.get(s).cloned().unwrap_or_default(),
                (None, None) => (0..m.records.len()).collect(),
            };
            let mut out: Vec<CrmRecord> = candidates
                .into_iter()
                .map(|i| &m.records[i])
                .filter(|r| f.status.as_ref().is_none_or(|s| &r.r.status == s))
                .filter(|r| f.session_id.as_ref().is_none_or(|s| r.sessions.iter().any(|(_, x)| x == s)))
                .map(Record::view)
                .collect();
            by_creation(&mut out, |r| (r.created_at, r.id.as_str()));
            Ok(out)
        })
    }

    async fn crm_get_record(&self, id: &str) -> BuiltinResult<Option<CrmRecord>> {
        self.with(|m| Ok(m.record_ids.get(id).map(|i| m.records[*i].view())))
    }

    async fn crm_record_details(
        &self,
        id: &str,
    ) -> BuiltinResult<(Vec<CrmActivity>, Vec<CrmNote>, Vec<CrmAttachment>, Vec<CrmSessionObject>)> {
        self.with(|m| {
            let mut acts: Vec<CrmActivity> =
                m.activities.iter().filter(|a| a.a.record_id.as_deref() == Some(id)).map(Activity::view).collect();
            by_creation(&mut acts, |a| (a.created_at, a.id.as_str()));
            let mut notes: Vec<CrmNote> = m.notes.iter().filter(|(r, _)| r == id).map(|(_, n)| n.clone()).collect();
            by_creation(&mut notes, |n| (n.created_at, n.id.as_str()));
            let mut atts: Vec<CrmAttachment> =
                m.attachments.iter().filter(|(r, _, _)| r == id).map(|(_, a, _)| a.clone()).collect();
            by_creation(&mut atts, |a| (a.created_at, a.id.as_str()));
            let mut sos: Vec<CrmSessionObject> = m
                .session_objects
                .iter()
                .filter(|s| s.s.record_id.as_deref() == Some(id))
                .map(SessionObject::view)
                .collect();
            by_creation(&mut sos, |s| (s.created_at, s.id.as_str()));
            Ok((acts, notes, atts, sos))
        })
    }

    async fn crm_set_status(&self, id: &str, status: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.with(|m| {
            let r = &mut m.record_mut(id)?.r;
            // A record closed again keeps the time it first closed.
            r.closed_at = match is_closed_status(status) {
                true => Some(r.closed_at.filter(|_| r.is_closed).unwrap_or(t(at))),
                false => None,
            };
            r.status = status.to_string();
            r.is_closed = is_closed_status(status);
            r.updated_at = t(at);
            Ok(())
        })
    }

    async fn crm_append_session(
        &self,
        id: &str,
        session_id: &str,
        tags: &[String],
        reopen_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.with(|m| {
            let i = *m.record_ids.get(id).ok_or_else(|| missing("record", id))?;
            let rec = &mut m.records[i];
            for tag in tags {
                if !rec.r.tags.contains(tag) {
                    rec.r.tags.push(tag.clone());
                }
            }
            rec.r.updated_at = t(at);
            if let Some(s) = reopen_to
                && rec.r.is_closed
            {
                rec.r.status = s.to_string();
                rec.r.is_closed = is_closed_status(s);
                rec.r.closed_at = None;
            }
            if rec.add_session(session_id, t(at)) {
                index(&mut m.by_session, session_id, i);
            }
            Ok(())
        })
    }

    async fn crm_set_owner(&self, id: &str, agent_id: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.with(|m| {
            let r = &mut m.record_mut(id)?.r;
            r.owner_agent_id = Some(agent_id.to_string());
            r.updated_at = t(at);
            Ok(())
        })
    }

    async fn crm_mark_abandoned(&self, id: &str, reason: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.with(|m| {
            let r = &mut m.record_mut(id)?.r;
            r.abandoned = true;
            r.missed_reason = Some(reason.to_string());
            r.updated_at = t(at);
            Ok(())
        })
    }

    async fn crm_add_note(&self, key: &str, id: &str, body: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.with(|m| {
            m.record_mut(id)?;
            if m.note_keys.insert(key.to_string()) {
                let note =
                    CrmNote { id: format!("note_{}", m.notes.len() + 1), body: body.to_string(), created_at: t(at) };
                m.notes.push((id.to_string(), note));
            }
            m.touch(id, at)
        })
    }

    async fn crm_add_attachment(
        &self,
        key: &str,
        id: &str,
        name: &str,
        url: Option<&str>,
        content: Option<&str>,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.with(|m| {
            m.record_mut(id)?;
            if m.attachment_keys.insert(key.to_string()) {
                let aid = format!("att_{}", m.attachments.len() + 1);
                let inline = content.is_some();
                let att = CrmAttachment {
                    url: if inline { Some(format!("/v1/crm/attachments/{aid}")) } else { url.map(str::to_string) },
                    id: aid,
                    name: name.to_string(),
                    inline,
                    created_at: t(at),
                };
                m.attachments.push((id.to_string(), att, content.map(str::to_string)));
            }
            m.touch(id, at)
        })
    }

    async fn crm_attachment_content(&self, id: &str) -> BuiltinResult<Option<(String, Option<String>)>> {
        self.with(|m| {
            Ok(m.attachments.iter().find(|(_, a, _)| a.id == id).map(|(_, a, c)| (a.name.clone(), c.clone())))
        })
    }

    async fn crm_set_fields(&self, id: &str, fields: &Fields, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.with(|m| {
            let r = &mut m.record_mut(id)?.r;
            merge(&mut r.custom_fields, fields);
            r.updated_at = t(at);
            Ok(())
        })
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
    ) -> BuiltinResult<()> {
        self.with(|m| {
            let at = t(at);
            match m.activity_keys.get(key) {
                Some(&i) => {
                    let row = &mut m.activities[i];
                    row.body = text(body);
                    let a = &mut row.a;
                    a.record_id = record_id.map(str::to_string);
                    a.account_id = account_id.map(str::to_string);
                    a.subject = subject.to_string();
                    a.updated_at = at;
                }
                None => {
                    m.activity_keys.insert(key.to_string(), m.activities.len());
                    let a = CrmActivity {
                        id: format!("act_{}", m.activities.len() + 1),
                        record_id: record_id.map(str::to_string),
                        account_id: account_id.map(str::to_string),
                        session_id: session_id.map(str::to_string),
                        subject: subject.to_string(),
                        body: serde_json::Value::Null,
                        created_at: at,
                        updated_at: at,
                    };
                    m.activities.push(Activity { a, body: text(body) });
                }
            }
            Ok(())
        })
    }

    async fn crm_upsert_session_object(
        &self,
        session_id: &str,
        record_id: Option<&str>,
        account_id: Option<&str>,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> BuiltinResult<()> {
        self.with(|m| {
            let at = t(at);
            match m.session_object_ids.get(session_id) {
                Some(&i) => {
                    let row = &mut m.session_objects[i];
                    row.data = text(data);
                    let s = &mut row.s;
                    s.record_id = record_id.map(str::to_string);
                    s.account_id = account_id.map(str::to_string);
                    s.updated_at = at;
                }
                None => {
                    m.session_object_ids.insert(session_id.to_string(), m.session_objects.len());
                    let s = CrmSessionObject {
                        id: format!("so_{}", m.session_objects.len() + 1),
                        session_id: session_id.to_string(),
                        record_id: record_id.map(str::to_string),
                        account_id: account_id.map(str::to_string),
                        data: serde_json::Value::Null,
                        created_at: at,
                        updated_at: at,
                    };
                    m.session_objects.push(SessionObject { s, data: text(data) });
                }
            }
            Ok(())
        })
    }

    async fn crm_withdraw_activity(&self, key: &str, at: DateTime<Utc>) -> BuiltinResult<bool> {
        self.with(|m| {
            let Some(&i) = m.activity_keys.get(key) else { return Ok(false) };
            let a = &mut m.activities[i].a;
            if a.record_id.is_none() && a.account_id.is_none() {
                return Ok(false);
            }
            a.record_id = None;
            a.account_id = None;
            a.updated_at = t(at);
            Ok(true)
        })
    }

    async fn crm_set_account_fields(&self, id: &str, fields: &Fields, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.with(|m| {
            let a = &mut m.account_mut(id)?.a;
            merge(&mut a.custom_fields, fields);
            a.updated_at = t(at);
            Ok(())
        })
    }

    async fn crm_set_agent_status(&self, email: &str, status: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.with(|m| {
            m.agent_statuses.insert(email_key(email), (email.trim().to_string(), status.to_string(), t(at)));
            Ok(())
        })
    }

    async fn crm_agent_statuses(&self) -> BuiltinResult<Vec<(String, String, DateTime<Utc>)>> {
        self.with(|m| Ok(m.agent_statuses.values().cloned().collect()))
    }

    async fn crm_ensure_custom_field(&self, name: &str, object: &str, label: &str, kind: &str) -> BuiltinResult<bool> {
        self.with(|m| {
            if m.custom_fields.contains_key(name) {
                return Ok(false);
            }
            m.custom_fields.insert(name.to_string(), (object.to_string(), label.to_string(), kind.to_string()));
            Ok(true)
        })
    }

    async fn crm_custom_fields(&self) -> BuiltinResult<Vec<(String, String, String, String)>> {
        self.with(|m| {
            Ok(m.custom_fields.iter().map(|(n, (o, l, k))| (n.clone(), o.clone(), l.clone(), k.clone())).collect())
        })
    }
}
