//! Conversations: created with casebridge's key as `externalId` and an id derived from it
//! (a replay is refused as a duplicate and the conversation is then found by that key), the
//! leaf queue and channel kept in custom attributes, owners mapped to Kustomer users, tags by
//! name, statuses open/snoozed/done, and the records of a customer for the append rules.

use casebridge_rules::event::Channel;
use casebridge_rules::model::{Answer, ObjRef, RecordInfo};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::KustomerConnector;
use super::api::{attr, enc, id_of, object_id};
use crate::{CrmError, WriteOutcome};

/// Conversation custom attribute holding the session's channel.
pub const CHANNEL_ATTRIBUTE: &str = "casebridgeChannelStr";
/// Conversation custom attribute holding the id of the session that created it.
pub const SESSION_ATTRIBUTE: &str = "casebridgeSessionStr";
/// Conversation custom attribute set on conversations of abandoned sessions.
pub const ABANDONED_ATTRIBUTE: &str = "casebridgeAbandonedBool";
/// Conversation custom attribute holding why the session was missed.
pub const MISSED_ATTRIBUTE: &str = "casebridgeMissedReasonStr";

/// Pages of a customer's conversations read for the append rules (100 each).
const RECORD_PAGES: usize = 5;

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// What a new conversation carries besides its key.
pub struct NewConversation<'a> {
    /// The customer (None: a stand-in customer is made for the session).
    pub customer: Option<&'a str>,
    /// `name`.
    pub title: &'a str,
    /// Leaf queue.
    pub leaf_queue: Option<&'a str>,
    /// Channel.
    pub channel: Channel,
    /// Owner agent id.
    pub owner: Option<&'a str>,
    /// Tag names.
    pub tags: &'a [String],
    /// The session.
    pub session_id: &'a str,
    /// Abandoned marker and reason.
    pub missed: Option<&'a str>,
    /// Abandoned.
    pub abandoned: bool,
    /// Phone note.
    pub note: Option<&'a str>,
    /// Rule time.
    pub at: DateTime<Utc>,
    /// Further custom attributes (standard fields folded into the create).
    pub custom: Map<String, Value>,
}

impl KustomerConnector {
    /// Kustomer's status for a status the rules name.
    pub(super) fn status_for(&self, s: &str) -> Result<&'static str, CrmError> {
        match s.to_lowercase().as_str() {
            "closed" | "done" | "solved" | "resolved" => Ok("done"),
            "open" | "new" | "reopened" => Ok("open"),
            "snoozed" | "pending" | "on hold" => Ok("snoozed"),
            other => Err(CrmError::Permanent(format!(
                "Kustomer conversations are open, snoozed or done; {other:?} is none of them (check crm.default_open_status)"
            ))),
        }
    }

    /// The Kustomer user for an agent: from `crm.agent_users`, an email looked up among
    /// Kustomer's users (remembered), or a Kustomer user id as is. None when unknown.
    pub(super) async fn user_for(&self, agent_id: &str) -> Result<Option<String>, CrmError> {
        let who = self.api.config().agent_users.get(agent_id).cloned().unwrap_or_else(|| agent_id.to_string());
        if who.len() == 24 && who.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Some(who));
        }
        if !who.contains('@') {
            return Ok(None);
        }
        let email = who.to_lowercase();
        if let Some(u) = self.users.lock().await.get(&email) {
            return Ok(u.clone());
        }
        let reply = self.api.get(&format!("/users?email={}", enc(&email)), "finding a Kustomer user").await?;
        let found = reply.data("finding a Kustomer user")?.as_array().and_then(|a| a.first().and_then(id_of));
        self.users.lock().await.insert(email, found.clone());
        Ok(found)
    }

    /// A stand-in customer for a session without one (Kustomer conversations need a customer).
    async fn stand_in_customer(&self, key: &str, at: DateTime<Utc>) -> Result<String, CrmError> {
        let k = format!("{key}-customer");
        let out = self.create_customer(&k, Some("Unknown caller"), None, None, None, None, at).await?;
        out.created
            .map(|(_, id)| id)
            .ok_or_else(|| CrmError::Transient { message: "no customer id".into(), retry_after: None })
    }

    /// `CreateRecord` (with standard fields folded in): the conversation, then the phone note.
    pub(super) async fn create_conversation(
        &self,
        key: &str,
        n: NewConversation<'_>,
    ) -> Result<WriteOutcome, CrmError> {
        let customer = match n.customer {
            Some(c) => c.to_string(),
            None => self.stand_in_customer(key, n.at).await?,
        };
        let cfg = self.api.config();
        let mut custom = n.custom;
        if let Some(q) = n.leaf_queue {
            custom.insert(cfg.queue_attribute.clone(), json!(q));
        }
        custom.insert(CHANNEL_ATTRIBUTE.into(), json!(n.channel.as_str()));
        custom.insert(SESSION_ATTRIBUTE.into(), json!(n.session_id));
        if n.abandoned {
            custom.insert(ABANDONED_ATTRIBUTE.into(), json!(true));
        }
        if let Some(m) = n.missed {
            custom.insert(MISSED_ATTRIBUTE.into(), json!(m));
        }
        let mut body = json!({
            "id": object_id(key, n.at.timestamp()), "externalId": key, "customer": customer, "name": n.title,
            "status": cfg.default_open_status, "tags": n.tags, "custom": custom,
        });
        if matches!(n.channel, Channel::Chat | Channel::Voicemail) {
            body["direction"] = json!("in");
        }
        let mut owner_note = String::new();
        if let Some(agent) = n.owner {
            match self.user_for(agent).await? {
                Some(u) => body["assignedUsers"] = json!([u]),
                None => owner_note = format!("; no Kustomer user for agent {agent}, left unassigned"),
            }
        }
        // Seen this key before in this process: the create may have landed unseen.
        let retry = !self.attempted.lock().await.insert(key.to_string());
        let existing = if retry { self.conversation_by_key(key).await? } else { None };
        let (id, summary) = match existing {
            Some(id) => (id.clone(), format!("Conversation {id} already created (replay)")),
            None => {
                let reply = self.api.post("/conversations", &body, "creating a conversation").await?;
                if reply.ok() {
                    let data = reply.data("creating a conversation")?;
                    let id = id_of(&data).unwrap_or_else(|| object_id(key, n.at.timestamp()));
                    (id.clone(), format!("Conversation {id} created: \"{}\"{owner_note}", n.title))
                } else if reply.is_duplicate() {
                    match self.conversation_by_key(key).await? {
                        Some(id) => (id.clone(), format!("Conversation {id} already created (replay)")),
                        None => return Err(reply.error("creating a conversation")),
                    }
                } else {
                    return Err(reply.error("creating a conversation"));
                }
            }
        };
        if let Some(text) = n.note {
            self.put_note(&id, &casebridge_rules::keys::record_note_key(key), text, n.at, None).await?;
        }
        Ok(WriteOutcome { created: Some((key.to_string(), id)), summary })
    }

    /// The conversation casebridge created under `key`.
    pub(super) async fn conversation_by_key(&self, key: &str) -> Result<Option<String>, CrmError> {
        let reply = self.api.get(&format!("/conversations/externalId={}", enc(key)), "finding a conversation").await?;
        if reply.status == 404 {
            return Ok(None);
        }
        Ok(id_of(&reply.data("finding a conversation")?))
    }

    /// Changes a conversation's attributes (a 404 means it is gone: merged or deleted).
    pub(super) async fn patch_conversation(&self, id: &str, body: &Value, what: &str) -> Result<(), CrmError> {
        self.api.patch(&format!("/conversations/{id}"), body, what).await?.data(what).map(|_| ())
    }

    /// `AppendSession`: tags appended by name, the status reopened when asked.
    pub(super) async fn append_session(
        &self,
        id: &str,
        session_id: &str,
        tags: &[String],
        reopen_to: Option<&str>,
    ) -> Result<WriteOutcome, CrmError> {
        if !tags.is_empty() {
            self.api
                .post(&format!("/conversations/{id}/tags"), &json!(tags), "tagging a conversation")
                .await?
                .data("tagging a conversation")?;
        }
        let summary = match reopen_to {
            Some(s) => {
                let st = self.status_for(s)?;
                self.patch_conversation(id, &json!({"status": st}), "reopening a conversation").await?;
                format!("Session {session_id} appended to conversation {id}, reopened to {st}")
            }
            None => format!("Session {session_id} appended to conversation {id}"),
        };
        Ok(WriteOutcome { created: None, summary })
    }

    /// Records of a customer for the append rules: status, creation, channel, leaf queue.
    pub(super) async fn conversations_of(&self, customer: &str) -> Result<Answer, CrmError> {
        let path = format!("/customers/{customer}/conversations");
        let items = match self.api.all_pages(&path, "listing a customer's conversations", RECORD_PAGES).await {
            Err(CrmError::Gone(_)) => Vec::new(),
            other => other?,
        };
        let cfg = self.api.config();
        let recs = items
            .iter()
            .filter_map(|c| {
                let status = attr(c, "status").as_str().unwrap_or("open").to_string();
                let custom = attr(c, "custom");
                Some(RecordInfo {
                    id: ObjRef::Crm(id_of(c)?),
                    leaf_queue: custom.get(&cfg.queue_attribute).and_then(Value::as_str).map(str::to_string),
                    channel: custom
                        .get(CHANNEL_ATTRIBUTE)
                        .and_then(|v| serde_json::from_value::<Channel>(v.clone()).ok()),
                    is_closed: !cfg.is_open(&status),
                    closed_at: time(attr(c, "endedAt")),
                    created_at: time(attr(c, "createdAt")).unwrap_or_default(),
                    status,
                })
            })
            .collect();
        Ok(Answer::Records(recs))
    }

    /// Whether a conversation exists.
    pub(super) async fn conversation_exists(&self, id: &str) -> Result<bool, CrmError> {
        let reply = self.api.get(&format!("/conversations/{}", enc(id)), "reading a conversation").await?;
        match reply.status {
            404 => Ok(false),
            _ => reply.data("reading a conversation").map(|_| true),
        }
    }

    /// The customer's newest conversation.
    pub(super) async fn latest_conversation(&self, customer: &str) -> Result<Option<String>, CrmError> {
        let path = format!("/customers/{customer}/conversations");
        let items = self.api.all_pages(&path, "listing a customer's conversations", 1).await?;
        Ok(items.iter().max_by_key(|c| (time(attr(c, "createdAt")), id_of(c))).and_then(id_of))
    }
}
