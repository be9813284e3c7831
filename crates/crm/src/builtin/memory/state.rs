//! The in-memory CRM's tables and indexes, and the helpers its operations share.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};

use crate::builtin::storage::{
    BuiltinResult, BuiltinStoreError, CrmAccount, CrmActivity, CrmAttachment, CrmNote, CrmRecord, CrmSessionObject,
};

/// Custom fields.
pub(super) type Fields = serde_json::Map<String, serde_json::Value>;

/// Every object, with the indexes the lookups use (positions in the vectors).
#[derive(Default)]
pub(super) struct Inner {
    pub(super) accounts: Vec<Account>,
    pub(super) account_ids: HashMap<String, usize>,
    pub(super) account_keys: HashMap<String, usize>,
    pub(super) by_phone: HashMap<String, Vec<usize>>,
    pub(super) by_email: HashMap<String, Vec<usize>>,
    pub(super) by_user: HashMap<String, Vec<usize>>,
    pub(super) records: Vec<Record>,
    pub(super) record_ids: HashMap<String, usize>,
    pub(super) record_keys: HashMap<String, usize>,
    pub(super) by_account: HashMap<String, Vec<usize>>,
    pub(super) by_session: HashMap<String, Vec<usize>>,
    pub(super) notes: Vec<(String, CrmNote)>,
    pub(super) note_keys: HashSet<String>,
    pub(super) attachments: Vec<(String, CrmAttachment, Option<String>)>,
    pub(super) attachment_keys: HashSet<String>,
    pub(super) activities: Vec<Activity>,
    pub(super) activity_keys: HashMap<String, usize>,
    pub(super) session_objects: Vec<SessionObject>,
    pub(super) session_object_ids: HashMap<String, usize>,
    pub(super) agent_statuses: BTreeMap<String, (String, String, DateTime<Utc>)>,
    pub(super) custom_fields: BTreeMap<String, (String, String, String)>,
}

/// A person, with the key its email is found by.
pub(super) struct Account {
    pub(super) a: CrmAccount,
    pub(super) email_key: Option<String>,
}

/// An activity with its body kept as JSON text (a parsed body takes several times the room).
pub(super) struct Activity {
    pub(super) a: CrmActivity,
    pub(super) body: Box<str>,
}

/// A session object with its data kept as JSON text.
pub(super) struct SessionObject {
    pub(super) s: CrmSessionObject,
    pub(super) data: Box<str>,
}

/// JSON text of a value; `null` for one that cannot be written (none of serde_json's values).
pub(super) fn text(v: &serde_json::Value) -> Box<str> {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into()).into()
}

/// The value of JSON text kept by [`text`].
pub(super) fn value(t: &str) -> serde_json::Value {
    serde_json::from_str(t).unwrap_or_default()
}

impl Activity {
    /// As the API shows it.
    pub(super) fn view(&self) -> CrmActivity {
        CrmActivity { body: value(&self.body), ..self.a.clone() }
    }
}

impl SessionObject {
    /// As the API shows it.
    pub(super) fn view(&self) -> CrmSessionObject {
        CrmSessionObject { data: value(&self.data), ..self.s.clone() }
    }
}

/// A record, with its sessions.
pub(super) struct Record {
    pub(super) r: CrmRecord,
    /// (added at, session id), kept sorted.
    pub(super) sessions: Vec<(DateTime<Utc>, String)>,
}

impl Record {
    /// As the API shows it, sessions filled in.
    pub(super) fn view(&self) -> CrmRecord {
        let mut r = self.r.clone();
        r.session_ids = self.sessions.iter().map(|(_, s)| s.clone()).collect();
        r
    }

    /// Links a session (once); true when new.
    pub(super) fn add_session(&mut self, session_id: &str, at: DateTime<Utc>) -> bool {
        if self.sessions.iter().any(|(_, s)| s == session_id) {
            return false;
        }
        self.sessions.push((at, session_id.to_string()));
        self.sessions.sort();
        true
    }
}

/// Times as the databases keep them.
pub(super) fn t(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The form an email is matched in.
pub(super) fn email_key(e: &str) -> String {
    e.trim().to_lowercase()
}

/// The refusal for an object that does not exist.
pub(super) fn missing(what: &str, id: &str) -> BuiltinStoreError {
    BuiltinStoreError::NotFound(format!("{what} {id} does not exist"))
}

/// Adds a position under a key.
pub(super) fn index(map: &mut HashMap<String, Vec<usize>>, key: &str, i: usize) {
    let v = map.entry(key.to_string()).or_default();
    if !v.contains(&i) {
        v.push(i);
    }
}

/// Removes a position from under a key.
pub(super) fn unindex(map: &mut HashMap<String, Vec<usize>>, key: &str, i: usize) {
    if let Some(v) = map.get_mut(key) {
        v.retain(|x| *x != i);
    }
}

impl Inner {
    /// A record to change, or NotFound.
    pub(super) fn record_mut(&mut self, id: &str) -> BuiltinResult<&mut Record> {
        let i = *self.record_ids.get(id).ok_or_else(|| missing("record", id))?;
        Ok(&mut self.records[i])
    }

    /// A person to change, or NotFound.
    pub(super) fn account_mut(&mut self, id: &str) -> BuiltinResult<&mut Account> {
        let i = *self.account_ids.get(id).ok_or_else(|| missing("account", id))?;
        Ok(&mut self.accounts[i])
    }

    /// Marks a record updated.
    pub(super) fn touch(&mut self, id: &str, at: DateTime<Utc>) -> BuiltinResult<()> {
        self.record_mut(id)?.r.updated_at = t(at);
        Ok(())
    }
}

/// Merges custom fields.
pub(super) fn merge(into: &mut Fields, fields: &Fields) {
    for (k, v) in fields {
        into.insert(k.clone(), v.clone());
    }
}

/// Sorts by creation time, then id (the databases' order).
pub(super) fn by_creation<T>(v: &mut [T], key: impl Fn(&T) -> (DateTime<Utc>, &str)) {
    v.sort_by(|a, b| key(a).cmp(&key(b)));
}
