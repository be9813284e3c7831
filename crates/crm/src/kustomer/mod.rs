//! Kustomer (`https://{org}.api.kustomerapp.com/v1`, bearer API key): an account is a
//! customer, a record a conversation (`name` = title, statuses open/snoozed/done, tags by
//! name), activities and session data are notes. casebridge's keys go to `externalId`s, and
//! the ids of the objects it creates are derived from those keys, so every create is safe to
//! repeat. See `docs/crm/kustomer.md`.

mod api;
mod batch;
mod check;
pub mod config;
mod conversations;
mod customers;
mod notes;
#[cfg(test)]
mod tests;

pub use config::KustomerConfig;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use casebridge_rules::fields::catalog_field;
use casebridge_rules::model::{Answer, CrmProfile, ObjRef, TagStyle};
use casebridge_rules::ops::CrmOp;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use self::api::Api;
use self::conversations::{ABANDONED_ATTRIBUTE, MISSED_ATTRIBUTE, NewConversation};
use crate::http::{CrmHttp, HttpClient};
use crate::pacing::Pacer;
use crate::{Check, Connector, CrmError, CrmLookup, FieldSpec, Write, WriteOutcome};

/// Custom attribute metadata by resource, with when it was read.
type Metadata = HashMap<String, (tokio::time::Instant, Map<String, Value>)>;

/// Connector for Kustomer.
pub struct KustomerConnector {
    api: Api,
    /// Kustomer user id by email (None: no such user), looked up once.
    users: Mutex<HashMap<String, Option<String>>>,
    /// Keys of creates already sent by this process: a second attempt looks first.
    attempted: Mutex<HashSet<String>>,
    /// Ids of notes known to exist: a rewrite updates them directly.
    notes: Mutex<HashSet<String>>,
    /// Custom attribute metadata by resource, read once per batch of field creations.
    metadata: Mutex<Metadata>,
}

fn crm_id(r: &ObjRef) -> Result<&str, CrmError> {
    match r {
        ObjRef::Crm(id) => Ok(id),
        ObjRef::Key(k) => Err(CrmError::Transient { message: format!("{k} is not created yet"), retry_after: None }),
    }
}

fn opt_id(r: &Option<ObjRef>) -> Result<Option<&str>, CrmError> {
    r.as_ref().map(crm_id).transpose()
}

impl KustomerConnector {
    /// A connector for the configured org, over the shared HTTP client.
    pub fn new(config: KustomerConfig, http: HttpClient) -> KustomerConnector {
        let pacer = Arc::new(Pacer::new(config.ext.rate_limit_per_minute));
        let http = CrmHttp::new(http, "kustomer", pacer);
        KustomerConnector {
            api: Api::new(http, Arc::new(config)),
            users: Mutex::new(HashMap::new()),
            attempted: Mutex::new(HashSet::new()),
            notes: Mutex::new(HashSet::new()),
            metadata: Mutex::new(HashMap::new()),
        }
    }

    /// Performs one write; `custom` and `owner` are standard fields and an owner folded into
    /// a conversation's create by the batch.
    async fn run(
        &self,
        key: &str,
        op: &CrmOp,
        custom: Map<String, Value>,
        owner: Option<&str>,
    ) -> Result<WriteOutcome, CrmError> {
        let done = |summary: String| Ok(WriteOutcome { created: None, summary });
        match op {
            CrmOp::CreateAccount { key: k, kind: _, name, phone, phone_extension, email, user_id, at } => {
                self.create_customer(
                    k,
                    name.as_deref(),
                    phone.as_deref(),
                    phone_extension.as_deref(),
                    email.as_deref(),
                    user_id.as_deref(),
                    *at,
                )
                .await
            }
            CrmOp::UpdateAccount { account, name, email, user_id } => {
                self.update_customer(crm_id(account)?, name.as_deref(), email.as_deref(), user_id.as_deref()).await
            }
            CrmOp::SetAccountFields { account, fields } => {
                self.set_customer_fields(crm_id(account)?, &fields.clone().into_iter().collect()).await
            }
            CrmOp::CreateRecord {
                key: k,
                account,
                title,
                leaf_queue,
                channel,
                owner: o,
                tags,
                session_id,
                abandoned,
                missed_reason,
                note,
                at,
            } => {
                let n = NewConversation {
                    customer: opt_id(account)?,
                    title,
                    leaf_queue: leaf_queue.as_deref(),
                    channel: *channel,
                    owner: owner.or(o.as_deref()),
                    tags,
                    session_id,
                    missed: missed_reason.map(|m| m.as_str()),
                    abandoned: *abandoned,
                    note: note.as_deref(),
                    at: *at,
                    custom,
                };
                self.create_conversation(k, n).await
            }
            CrmOp::AppendSession { record, session_id, tags, reopen_to, at: _ } => {
                self.append_session(crm_id(record)?, session_id, tags, reopen_to.as_deref()).await
            }
            CrmOp::SetOwner { .. }
            | CrmOp::MarkAbandoned { .. }
            | CrmOp::SetFields { .. }
            | CrmOp::SetStatus { .. } => self.patch_ops(std::slice::from_ref(op)).await.map(|mut v| v.remove(0)),
            CrmOp::AddNote { record, body, at } => self.add_note(key, crm_id(record)?, body, *at).await,
            CrmOp::AddAttachment { record, name, url, content, at } => {
                self.add_file(key, crm_id(record)?, name, url.as_deref(), content.as_deref(), *at).await
            }
            CrmOp::WriteSessionData { target: _, record, account, data } => {
                self.write_session_note(opt_id(record)?, opt_id(account)?, data).await
            }
            CrmOp::LogCall { session_id, person, record, disposition, label, notes, agent_id, at } => {
                self.log_call(
                    session_id,
                    opt_id(person)?,
                    opt_id(record)?,
                    disposition,
                    label,
                    notes,
                    agent_id.as_deref(),
                    *at,
                )
                .await
            }
            CrmOp::SetAgentStatus { email, crm_status, .. } => done(format!(
                "Kustomer's API cannot set a user's status: {crm_status} for {email} stays in casebridge (see docs/crm/kustomer.md)"
            )),
        }
    }

    /// Conversation attribute writes (owner, abandoned marker, fields, status) on one
    /// conversation, folded into one PATCH; one outcome per op.
    async fn patch_ops(&self, ops: &[CrmOp]) -> Result<Vec<WriteOutcome>, CrmError> {
        let mut body = Map::new();
        let mut custom = Map::new();
        let mut lines = Vec::new();
        let mut id = String::new();
        for op in ops {
            let line = match op {
                CrmOp::SetOwner { record, agent_id } => {
                    id = crm_id(record)?.to_string();
                    match self.user_for(agent_id).await? {
                        Some(u) => {
                            body.insert("assignedUsers".into(), json!([u]));
                            format!("Conversation {id} assigned to agent {agent_id} (Kustomer user {u})")
                        }
                        None => format!("Conversation {id} not reassigned: no Kustomer user for agent {agent_id}"),
                    }
                }
                CrmOp::MarkAbandoned { record, missed_reason } => {
                    id = crm_id(record)?.to_string();
                    custom.insert(ABANDONED_ATTRIBUTE.into(), json!(true));
                    custom.insert(MISSED_ATTRIBUTE.into(), json!(missed_reason.as_str()));
                    format!("Conversation {id} marked abandoned ({})", missed_reason.as_str())
                }
                CrmOp::SetFields { record, fields } => {
                    id = crm_id(record)?.to_string();
                    custom.extend(fields.clone());
                    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
                    format!("Attributes {} set on conversation {id}", names.join(", "))
                }
                CrmOp::SetStatus { record, status, .. } => {
                    id = crm_id(record)?.to_string();
                    let st = self.status_for(status)?;
                    body.insert("status".into(), json!(st));
                    format!("Conversation {id} status set to {st}")
                }
                other => {
                    return Err(CrmError::Permanent(format!("{} is not a conversation attribute write", other.name())));
                }
            };
            lines.push(line);
        }
        if !custom.is_empty() {
            body.insert("custom".into(), Value::Object(custom));
        }
        if !body.is_empty() {
            self.patch_conversation(&id, &Value::Object(body), "updating a conversation").await?;
        }
        Ok(lines.into_iter().map(|summary| WriteOutcome { created: None, summary }).collect())
    }
}

/// The name a standard field gets in Kustomer: `casebridge` + the key in camel case + the
/// type suffix (`Num` for numbers, `Str` for text).
pub fn attribute_name(key: &str) -> String {
    let number = catalog_field(key).is_some_and(|c| c.kind == "number");
    let camel: String = key
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    format!("casebridge{camel}{}", if number { "Num" } else { "Str" })
}

#[async_trait]
impl Connector for KustomerConnector {
    fn kind(&self) -> &'static str {
        "kustomer"
    }

    fn profile(&self) -> CrmProfile {
        CrmProfile {
            tags: TagStyle::Dash,
            default_open_status: self.api.config().default_open_status.clone(),
            phone_note: true,
            custom_fields: Default::default(),
        }
    }

    async fn lookup(&self, lookup: &CrmLookup) -> Result<Answer, CrmError> {
        match lookup {
            CrmLookup::AccountsByPhone(p) => self.find_customers("phone", p).await,
            CrmLookup::AccountsByEmail(e) => self.find_customers("email", e).await,
            CrmLookup::AccountsByUserId(u) => self.find_customers("externalId", u).await,
            CrmLookup::RecordsOfAccount(id) => self.conversations_of(id).await,
        }
    }

    async fn execute(&self, key: &str, op: &CrmOp) -> Result<WriteOutcome, CrmError> {
        self.run(key, op, Map::new(), None).await
    }

    async fn execute_batch(&self, writes: &[Write]) -> Vec<Result<WriteOutcome, CrmError>> {
        batch::run(self, writes).await
    }

    async fn check(&self) -> Vec<Check> {
        check::run(self).await
    }

    async fn record_exists(&self, id: &str) -> Result<bool, CrmError> {
        self.conversation_exists(id).await
    }

    fn custom_field_name(&self, key: &str) -> String {
        attribute_name(key)
    }

    async fn ensure_custom_field(&self, field: &FieldSpec) -> Result<bool, CrmError> {
        self.ensure_attribute(field).await
    }
}
