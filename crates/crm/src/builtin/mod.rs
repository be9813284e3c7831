//! The built-in CRM: kept in casebridge's own database, reached through the same trait as
//! the external CRMs. Its storage is injected ([`storage::BuiltinCrmStore`]).

mod config;
pub mod memory;
pub mod storage;

pub use config::BuiltinConfig;

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_rules::keys;
use casebridge_rules::model::{AccountHit, AccountKind, Answer, CrmProfile, DataTarget, ObjRef, RecordInfo};
use casebridge_rules::ops::CrmOp;
use chrono::Utc;

use self::storage::{BuiltinCrmStore, BuiltinStoreError, CrmAccount, CrmRecord, NewAccount, NewRecord, RecordFilter};
use crate::{Connector, CrmError, CrmLookup, FieldSpec, WriteOutcome};

/// Connector for the built-in CRM.
pub struct BuiltinConnector {
    store: Arc<dyn BuiltinCrmStore>,
}

impl BuiltinConnector {
    /// A connector over the given storage.
    pub fn new(store: Arc<dyn BuiltinCrmStore>) -> Self {
        BuiltinConnector { store }
    }
}

fn err(e: BuiltinStoreError) -> CrmError {
    match e {
        BuiltinStoreError::NotFound(m) => CrmError::Gone(m),
        BuiltinStoreError::Conflict(m) => CrmError::Permanent(m),
        BuiltinStoreError::Failed(message) => CrmError::Transient { message, retry_after: None },
    }
}

fn kind_of(s: &str) -> AccountKind {
    match s {
        "lead" => AccountKind::Lead,
        "person_account" => AccountKind::PersonAccount,
        _ => AccountKind::Contact,
    }
}

/// The wire name of an account kind.
pub fn kind_name(k: AccountKind) -> &'static str {
    match k {
        AccountKind::Contact => "contact",
        AccountKind::Lead => "lead",
        AccountKind::PersonAccount => "person_account",
    }
}

fn crm_id(r: &ObjRef) -> Result<&str, CrmError> {
    match r {
        ObjRef::Crm(id) => Ok(id),
        ObjRef::Key(k) => Err(CrmError::Transient { message: format!("{k} is not created yet"), retry_after: None }),
    }
}

fn record_info(r: &CrmRecord) -> RecordInfo {
    RecordInfo {
        id: ObjRef::Crm(r.id.clone()),
        leaf_queue: r.leaf_queue.clone(),
        channel: r.channel.as_deref().and_then(|c| serde_json::from_value(serde_json::Value::String(c.into())).ok()),
        status: r.status.clone(),
        is_closed: r.is_closed,
        closed_at: r.closed_at,
        created_at: r.created_at,
    }
}

#[async_trait]
impl Connector for BuiltinConnector {
    fn kind(&self) -> &'static str {
        "builtin"
    }

    fn profile(&self) -> CrmProfile {
        CrmProfile::builtin()
    }

    fn in_store(&self) -> bool {
        true
    }

    async fn lookup(&self, lookup: &CrmLookup) -> Result<Answer, CrmError> {
        let hits = |v: Vec<CrmAccount>| {
            Answer::Accounts(
                v.into_iter()
                    .map(|a| AccountHit { id: a.id, kind: kind_of(&a.kind), name: a.name, updated_at: a.updated_at })
                    .collect(),
            )
        };
        match lookup {
            CrmLookup::AccountsByPhone(p) => {
                Ok(hits(self.store.crm_find_accounts(Some(p), None, None).await.map_err(err)?))
            }
            CrmLookup::AccountsByEmail(e) => {
                Ok(hits(self.store.crm_find_accounts(None, Some(e), None).await.map_err(err)?))
            }
            CrmLookup::AccountsByUserId(u) => {
                Ok(hits(self.store.crm_find_accounts(None, None, Some(u)).await.map_err(err)?))
            }
            CrmLookup::RecordsOfAccount(id) => {
                let recs = self
                    .store
                    .crm_list_records(RecordFilter { account_id: Some(id.clone()), ..Default::default() })
                    .await
                    .map_err(err)?;
                Ok(Answer::Records(recs.iter().map(record_info).collect()))
            }
        }
    }

    fn custom_field_name(&self, key: &str) -> String {
        // The built-in CRM is casebridge's own: no namespace needed.
        key.to_string()
    }

    async fn record_exists(&self, id: &str) -> Result<bool, CrmError> {
        Ok(self.store.crm_get_record(id).await.map_err(err)?.is_some())
    }

    async fn ensure_custom_field(&self, f: &FieldSpec) -> Result<bool, CrmError> {
        self.store.crm_ensure_custom_field(&f.name, f.object, &f.label, f.kind).await.map_err(err)
    }

    async fn execute(&self, key: &str, op: &CrmOp) -> Result<WriteOutcome, CrmError> {
        let s = &self.store;
        let now = Utc::now();
        let done = |summary: String| Ok(WriteOutcome { created: None, summary });
        match op {
            CrmOp::CreateAccount { key: k, kind, name, phone, phone_extension, email, user_id, at } => {
                let (a, new) = s
                    .crm_create_account(NewAccount {
                        id: None,
                        kind: kind_name(*kind).into(),
                        name: name.clone(),
                        phone: phone.clone(),
                        phone_key: phone.clone(),
                        email: email.clone(),
                        user_id: user_id.clone(),
                        ext_key: Some(k.clone()),
                        at: *at,
                    })
                    .await
                    .map_err(err)?;
                // The built-in account has no column for it: the extension is the account's
                // `phone_extension` field, set again on a replay (a merge, so idempotent).
                if let Some(ext) = phone_extension {
                    let fields = serde_json::Map::from_iter([("phone_extension".to_string(), ext.clone().into())]);
                    s.crm_set_account_fields(&a.id, &fields, *at).await.map_err(err)?;
                }
                let summary = if new {
                    format!("Account {} created", a.id)
                } else {
                    format!("Account {} already created (replay)", a.id)
                };
                Ok(WriteOutcome { created: Some((k.clone(), a.id)), summary })
            }
            CrmOp::UpdateAccount { account, name, email, user_id } => {
                let id = crm_id(account)?;
                s.crm_update_account(id, name.as_deref(), email.as_deref(), user_id.as_deref(), now)
                    .await
                    .map_err(err)?;
                done(format!("Account {id} updated"))
            }
            CrmOp::CreateRecord {
                key: k,
                account,
                title,
                leaf_queue,
                channel,
                owner,
                tags,
                session_id,
                abandoned,
                missed_reason,
                note,
                at,
            } => {
                let account_id = match account {
                    Some(a) => Some(crm_id(a)?.to_string()),
                    None => None,
                };
                let (r, new) = s
                    .crm_create_record(NewRecord {
                        id: None,
                        closed_at: None,
                        account_id,
                        title: title.clone(),
                        status: None,
                        leaf_queue: leaf_queue.clone(),
                        channel: Some(channel.as_str().into()),
                        owner_agent_id: owner.clone(),
                        tags: tags.clone(),
                        session_id: Some(session_id.clone()),
                        abandoned: *abandoned,
                        missed_reason: missed_reason.map(|m| m.as_str().to_string()),
                        ext_key: Some(k.clone()),
                        at: *at,
                    })
                    .await
                    .map_err(err)?;
                if let Some(n) = note {
                    s.crm_add_note(&keys::record_note_key(key), &r.id, n, *at).await.map_err(err)?;
                }
                let summary = if new {
                    format!("Record {} created: \"{}\"", r.id, r.title)
                } else {
                    format!("Record {} already created (replay)", r.id)
                };
                Ok(WriteOutcome { created: Some((k.clone(), r.id)), summary })
            }
            CrmOp::AppendSession { record, session_id, tags, reopen_to, at } => {
                let id = crm_id(record)?;
                s.crm_append_session(id, session_id, tags, reopen_to.as_deref(), *at).await.map_err(err)?;
                done(match reopen_to {
                    Some(st) => format!("Session appended to record {id}, reopened to {st}"),
                    None => format!("Session appended to record {id}"),
                })
            }
            CrmOp::SetOwner { record, agent_id } => {
                let id = crm_id(record)?;
                s.crm_set_owner(id, agent_id, now).await.map_err(err)?;
                done(format!("Record {id} owner set to {agent_id}"))
            }
            CrmOp::MarkAbandoned { record, missed_reason } => {
                let id = crm_id(record)?;
                s.crm_mark_abandoned(id, missed_reason.as_str(), now).await.map_err(err)?;
                done(format!("Record {id} marked abandoned ({})", missed_reason.as_str()))
            }
            CrmOp::AddNote { record, body, at } => {
                let id = crm_id(record)?;
                s.crm_add_note(key, id, body, *at).await.map_err(err)?;
                done(format!("Note added to record {id}"))
            }
            CrmOp::AddAttachment { record, name, url, content, at } => {
                let id = crm_id(record)?;
                s.crm_add_attachment(key, id, name, url.as_deref(), content.as_deref(), *at).await.map_err(err)?;
                done(format!("{name} attached to record {id}"))
            }
            CrmOp::SetFields { record, fields } => {
                let id = crm_id(record)?;
                let map: serde_json::Map<String, serde_json::Value> = fields.clone().into_iter().collect();
                s.crm_set_fields(id, &map, now).await.map_err(err)?;
                done(format!("Fields {} set on record {id}", fields.keys().cloned().collect::<Vec<_>>().join(", ")))
            }
            CrmOp::SetStatus { record, status, at } => {
                let id = crm_id(record)?;
                s.crm_set_status(id, status, *at).await.map_err(err)?;
                done(format!("Record {id} status set to {status}"))
            }
            CrmOp::SetAccountFields { account, fields } => {
                let id = crm_id(account)?;
                let map: serde_json::Map<String, serde_json::Value> = fields.clone().into_iter().collect();
                s.crm_set_account_fields(id, &map, now).await.map_err(err)?;
                done(format!("Fields {} set on account {id}", fields.keys().cloned().collect::<Vec<_>>().join(", ")))
            }
            CrmOp::LogCall { session_id, person, record, disposition, label, notes, agent_id, at } => {
                let ext = keys::call_log_key(session_id);
                let pid = match person {
                    Some(p) => Some(crm_id(p)?),
                    None => None,
                };
                let rid = match record {
                    Some(r) => Some(crm_id(r)?),
                    None => None,
                };
                if pid.is_none() && rid.is_none() {
                    let was = s.crm_withdraw_activity(&ext, now).await.map_err(err)?;
                    return done(if was { "Call log withdrawn".into() } else { "No call log to withdraw".into() });
                }
                if let Some(r) = rid {
                    // Relate-to-case needs a record that exists.
                    s.crm_get_record(r).await.map_err(err)?.ok_or_else(|| CrmError::Gone(format!("record {r}")))?;
                }
                let body = serde_json::json!({
                    "type": "call_log", "session_id": session_id, "disposition": disposition,
                    "disposition_label": label, "notes": notes, "agent_id": agent_id,
                });
                let subject = if disposition.is_empty() { "Call".to_string() } else { format!("Call: {label}") };
                s.crm_upsert_activity(&ext, rid, pid, Some(session_id), &subject, &body, *at).await.map_err(err)?;
                done(match (pid, rid) {
                    (Some(p), Some(r)) => format!("Call logged on person {p}, related to record {r}"),
                    (Some(p), None) => format!("Call logged on person {p}"),
                    (None, Some(r)) => format!("Call logged on record {r}"),
                    (None, None) => "Call log written".to_string(),
                })
            }
            CrmOp::SetAgentStatus { email, crm_status, at } => {
                s.crm_set_agent_status(email, crm_status, *at).await.map_err(err)?;
                done(format!("Agent {email} status set to {crm_status} in the CRM"))
            }
            CrmOp::WriteSessionData { target, record, account, data } => {
                let rid = match record {
                    Some(r) => Some(crm_id(r)?),
                    None => None,
                };
                let aid = match account {
                    Some(a) => Some(crm_id(a)?),
                    None => None,
                };
                let body = serde_json::to_value(data).map_err(|e| CrmError::Permanent(e.to_string()))?;
                let at = data.ended_at.or(data.started_at).unwrap_or(now);
                let parent = match (rid, aid) {
                    (Some(r), _) => format!("record {r}"),
                    (None, Some(a)) => format!("account {a}"),
                    _ => "no parent".to_string(),
                };
                match target {
                    DataTarget::Activity => {
                        let subject = format!("{} session {}", data.session_type, data.session_id);
                        s.crm_upsert_activity(
                            &keys::session_activity_key(&data.session_id),
                            rid,
                            aid,
                            Some(&data.session_id),
                            &subject,
                            &body,
                            at,
                        )
                        .await
                        .map_err(err)?;
                        done(format!("Session activity written on {parent}"))
                    }
                    DataTarget::SessionObject => {
                        s.crm_upsert_session_object(&data.session_id, rid, aid, &body, at).await.map_err(err)?;
                        done(format!("Session object written on {parent}"))
                    }
                }
            }
        }
    }
}
