//! What the rules tell the CRM (and the contact center) to do: the writes an outbox row
//! carries, as stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Channel;
use crate::model::{AccountKind, DataTarget, MissedReason, ObjRef, SessionData};

/// One write to the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // serialized into the outbox, rarely held in bulk
pub enum CrmOp {
    /// Create a person, idempotent on `key`.
    CreateAccount {
        /// casebridge's key (external id).
        key: String,
        /// Kind to create.
        kind: AccountKind,
        /// Name.
        name: Option<String>,
        /// Phone (E.164).
        phone: Option<String>,
        /// The phone's extension, kept apart from `phone` (vendors have a field for it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone_extension: Option<String>,
        /// Email.
        email: Option<String>,
        /// App user id.
        user_id: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Update a person created by this session with later details.
    UpdateAccount {
        /// Which account.
        account: ObjRef,
        /// Name.
        name: Option<String>,
        /// Email.
        email: Option<String>,
        /// App user id.
        user_id: Option<String>,
    },
    /// Create a record, idempotent on `key`.
    CreateRecord {
        /// casebridge's key (external id).
        key: String,
        /// Requester.
        account: Option<ObjRef>,
        /// Title.
        title: String,
        /// Originating leaf queue.
        leaf_queue: Option<String>,
        /// Originating channel.
        channel: Channel,
        /// Owner agent id.
        owner: Option<String>,
        /// Tags.
        tags: Vec<String>,
        /// The session.
        session_id: String,
        /// Abandoned marker.
        abandoned: bool,
        /// Missed-session reason.
        missed_reason: Option<MissedReason>,
        /// Note written with the record (the caller's phone).
        note: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Add a session to an existing record, re-tag it and optionally reopen it.
    AppendSession {
        /// The record.
        record: ObjRef,
        /// The session.
        session_id: String,
        /// Tags to add.
        tags: Vec<String>,
        /// Reopen to this status.
        reopen_to: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Reassign a record.
    SetOwner {
        /// The record.
        record: ObjRef,
        /// The agent.
        agent_id: String,
    },
    /// Mark a record as belonging to an abandoned session.
    MarkAbandoned {
        /// The record.
        record: ObjRef,
        /// Why.
        missed_reason: MissedReason,
    },
    /// Add an internal note.
    AddNote {
        /// The record.
        record: ObjRef,
        /// Text.
        body: String,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Attach a file (by link, or inline text such as a transcript).
    AddAttachment {
        /// The record.
        record: ObjRef,
        /// File name.
        name: String,
        /// Link, when the file lives elsewhere.
        url: Option<String>,
        /// Inline text content.
        content: Option<String>,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Set record fields.
    SetFields {
        /// The record.
        record: ObjRef,
        /// Field → value.
        fields: BTreeMap<String, serde_json::Value>,
    },
    /// Change a record's status.
    SetStatus {
        /// The record.
        record: ObjRef,
        /// New status.
        status: String,
        /// Rule time.
        at: DateTime<Utc>,
    },
    /// Set custom fields on a person.
    SetAccountFields {
        /// The person.
        account: ObjRef,
        /// Field → value.
        fields: BTreeMap<String, serde_json::Value>,
    },
    /// Write (or rewrite) the call log of a wrap-up on a person and/or a record; with neither,
    /// remove the session's call log (a later wrap-up chose "Do not log").
    LogCall {
        /// The session.
        session_id: String,
        /// The person it is logged on.
        person: Option<ObjRef>,
        /// The record it is related to.
        record: Option<ObjRef>,
        /// Disposition code.
        disposition: String,
        /// Disposition label.
        label: String,
        /// Agent's notes.
        notes: String,
        /// The agent.
        agent_id: Option<String>,
        /// When the call started.
        at: DateTime<Utc>,
    },
    /// Set an agent's status in the CRM (two-way status sync).
    SetAgentStatus {
        /// The agent's email (the identity both sides share).
        email: String,
        /// CRM status.
        crm_status: String,
        /// When the platform status changed.
        at: DateTime<Utc>,
    },
    /// Write (or rewrite) the session's activity or session object.
    WriteSessionData {
        /// activity or session_object.
        target: DataTarget,
        /// Record it hangs on.
        record: Option<ObjRef>,
        /// Account it hangs on.
        account: Option<ObjRef>,
        /// The data.
        data: SessionData,
    },
}

impl CrmOp {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            CrmOp::CreateAccount { .. } => "create_account",
            CrmOp::UpdateAccount { .. } => "update_account",
            CrmOp::CreateRecord { .. } => "create_record",
            CrmOp::AppendSession { .. } => "append_session",
            CrmOp::SetOwner { .. } => "set_owner",
            CrmOp::MarkAbandoned { .. } => "mark_abandoned",
            CrmOp::AddNote { .. } => "add_note",
            CrmOp::AddAttachment { .. } => "add_attachment",
            CrmOp::SetFields { .. } => "set_fields",
            CrmOp::SetStatus { .. } => "set_status",
            CrmOp::WriteSessionData { .. } => "write_session_data",
            CrmOp::SetAccountFields { .. } => "set_account_fields",
            CrmOp::LogCall { .. } => "log_call",
            CrmOp::SetAgentStatus { .. } => "set_agent_status",
        }
    }

    /// Whether the write only adds to what exists (session data, files, notes, fields) and
    /// may wait a moment to go with the session's next writes in one batch.
    pub fn is_trailing(&self) -> bool {
        matches!(
            self,
            CrmOp::WriteSessionData { .. }
                | CrmOp::AddAttachment { .. }
                | CrmOp::AddNote { .. }
                | CrmOp::SetFields { .. }
                | CrmOp::SetAccountFields { .. }
        )
    }

    /// The object references the write carries, to replace casebridge's keys by CRM ids
    /// before delivery.
    pub fn refs_mut(&mut self) -> Vec<&mut ObjRef> {
        match self {
            CrmOp::CreateAccount { .. } | CrmOp::SetAgentStatus { .. } => vec![],
            CrmOp::UpdateAccount { account, .. } | CrmOp::SetAccountFields { account, .. } => vec![account],
            CrmOp::CreateRecord { account, .. } => account.iter_mut().collect(),
            CrmOp::AppendSession { record, .. }
            | CrmOp::SetOwner { record, .. }
            | CrmOp::MarkAbandoned { record, .. }
            | CrmOp::AddNote { record, .. }
            | CrmOp::AddAttachment { record, .. }
            | CrmOp::SetFields { record, .. }
            | CrmOp::SetStatus { record, .. } => vec![record],
            CrmOp::LogCall { person, record, .. } => person.iter_mut().chain(record.iter_mut()).collect(),
            CrmOp::WriteSessionData { record, account, .. } => record.iter_mut().chain(account.iter_mut()).collect(),
        }
    }
}

/// A click-to-call dial request handed to the contact center: casebridge's own webhook, not
/// a CRM write, delivered from the same outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DialHandoff {
    /// Dial request id.
    pub dial_request_id: String,
    /// The agent.
    pub agent_id: String,
    /// The agent's email.
    pub agent_email: Option<String>,
    /// Number to dial (E.164).
    pub phone: String,
    /// Record it was dialed from.
    pub origin_record_id: Option<String>,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
}

/// Writes to the contact center.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ContactCenterOp {
    /// Hand a dial request over (signed outbound webhook).
    DialWebhook(DialHandoff),
}

/// What one outbox row delivers, as stored: a CRM write or a write to the contact center.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // serialized into the outbox, rarely held in bulk
pub enum OutboxOp {
    /// To the CRM, through the connector.
    Crm(CrmOp),
    /// To the contact center.
    ContactCenter(ContactCenterOp),
}

impl OutboxOp {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            OutboxOp::Crm(op) => op.name(),
            OutboxOp::ContactCenter(ContactCenterOp::DialWebhook(_)) => "dial_webhook",
        }
    }
}

/// A CRM write with its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Idempotency key, unique across all commands.
    pub key: String,
    /// The write.
    pub op: CrmOp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_rows_written_before_the_split_still_read() {
        let dial = r#"{"op":"dial_webhook","dial_request_id":"dial_1","agent_id":"a1","agent_email":null,"phone":"+14155550100","origin_record_id":"rec_1","requested_at":"2026-11-20T10:00:00Z"}"#;
        let op: OutboxOp = serde_json::from_str(dial).expect("dial row");
        assert!(
            matches!(&op, OutboxOp::ContactCenter(ContactCenterOp::DialWebhook(h)) if h.dial_request_id == "dial_1")
        );
        assert_eq!(serde_json::to_value(&op).ok(), serde_json::from_str::<serde_json::Value>(dial).ok());
        let note = r#"{"op":"add_note","record":{"key":"cb-rec-s1"},"body":"hi","at":"2026-11-20T10:00:00Z"}"#;
        let op: OutboxOp = serde_json::from_str(note).expect("note row");
        assert_eq!(op.name(), "add_note");
    }

    #[test]
    fn refs_are_rewritten_in_place() {
        let mut op = CrmOp::LogCall {
            session_id: "s1".into(),
            person: Some(ObjRef::Key("cb-wrapacct-s1".into())),
            record: Some(ObjRef::Crm("rec_1".into())),
            disposition: String::new(),
            label: String::new(),
            notes: String::new(),
            agent_id: None,
            at: DateTime::<Utc>::default(),
        };
        for r in op.refs_mut() {
            if let ObjRef::Key(_) = r {
                *r = ObjRef::Crm("acc_9".into());
            }
        }
        assert!(matches!(op, CrmOp::LogCall { person: Some(ObjRef::Crm(ref p)), .. } if p == "acc_9"));
    }
}
