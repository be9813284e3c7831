//! What the built-in CRM's API answers, mapped from its stored rows.

use casebridge_crm::builtin::storage::{CrmAccount, CrmActivity, CrmAttachment, CrmNote, CrmRecord, CrmSessionObject};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A built-in CRM account (a person).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOut {
    /// Id.
    pub id: String,
    /// contact, lead or person_account.
    pub kind: String,
    /// Name.
    pub name: Option<String>,
    /// Phone as given (E.164 when casebridge created it).
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// App user id.
    pub user_id: Option<String>,
    /// casebridge's key when casebridge created it.
    pub external_key: Option<String>,
    /// Custom fields by CRM field name.
    #[schema(value_type = Object)]
    pub custom_fields: Map<String, Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

impl From<CrmAccount> for AccountOut {
    fn from(a: CrmAccount) -> Self {
        AccountOut {
            id: a.id,
            kind: a.kind,
            name: a.name,
            phone: a.phone,
            email: a.email,
            user_id: a.user_id,
            external_key: a.external_key,
            custom_fields: a.custom_fields,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// An activity in the built-in CRM (session data, call logs).
#[derive(Debug, Serialize, ToSchema)]
pub struct CrmActivityOut {
    /// Id.
    pub id: String,
    /// Record it hangs on.
    pub record_id: Option<String>,
    /// Account it hangs on.
    pub account_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Subject line.
    pub subject: String,
    /// The session data or call log, as written.
    pub body: Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

impl From<CrmActivity> for CrmActivityOut {
    fn from(a: CrmActivity) -> Self {
        CrmActivityOut {
            id: a.id,
            record_id: a.record_id,
            account_id: a.account_id,
            session_id: a.session_id,
            subject: a.subject,
            body: a.body,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// An account with its activities.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDetailOut {
    /// The account.
    #[serde(flatten)]
    pub account: AccountOut,
    /// Its activities.
    pub activities: Vec<CrmActivityOut>,
}

/// Accounts found.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountsOut {
    /// Matching accounts.
    pub accounts: Vec<AccountOut>,
}

/// A built-in CRM record (a case).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordSummaryOut {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: String,
    /// Whether the status is closed.
    pub is_closed: bool,
    /// When closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Requester.
    pub account_id: Option<String>,
    /// Originating leaf queue.
    pub leaf_queue: Option<String>,
    /// Originating channel.
    pub channel: Option<String>,
    /// Owner.
    pub owner_agent_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Sessions on this record.
    pub session_ids: Vec<String>,
    /// Abandoned marker.
    pub abandoned: bool,
    /// Missed-session reason.
    pub missed_reason: Option<String>,
    /// Custom fields by CRM field name.
    #[schema(value_type = Object)]
    pub custom_fields: Map<String, Value>,
    /// casebridge's key when casebridge created it.
    pub external_key: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

impl From<CrmRecord> for RecordSummaryOut {
    fn from(r: CrmRecord) -> Self {
        RecordSummaryOut {
            id: r.id,
            title: r.title,
            status: r.status,
            is_closed: r.is_closed,
            closed_at: r.closed_at,
            account_id: r.account_id,
            leaf_queue: r.leaf_queue,
            channel: r.channel,
            owner_agent_id: r.owner_agent_id,
            tags: r.tags,
            session_ids: r.session_ids,
            abandoned: r.abandoned,
            missed_reason: r.missed_reason,
            custom_fields: r.custom_fields,
            external_key: r.external_key,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A note on a record.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteOut {
    /// Id.
    pub id: String,
    /// Text.
    pub body: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<CrmNote> for NoteOut {
    fn from(n: CrmNote) -> Self {
        NoteOut { id: n.id, body: n.body, created_at: n.created_at }
    }
}

/// A file on a record.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentOut {
    /// Id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Link (for inline files, the API's download path).
    pub url: Option<String>,
    /// Whether the content is kept inline.
    pub inline: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<CrmAttachment> for AttachmentOut {
    fn from(a: CrmAttachment) -> Self {
        AttachmentOut { id: a.id, name: a.name, url: a.url, inline: a.inline, created_at: a.created_at }
    }
}

/// A session object (session data kept as its own object).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionObjectOut {
    /// Id.
    pub id: String,
    /// Session.
    pub session_id: String,
    /// Record.
    pub record_id: Option<String>,
    /// Account.
    pub account_id: Option<String>,
    /// The session data, as written.
    pub data: Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

impl From<CrmSessionObject> for SessionObjectOut {
    fn from(o: CrmSessionObject) -> Self {
        SessionObjectOut {
            id: o.id,
            session_id: o.session_id,
            record_id: o.record_id,
            account_id: o.account_id,
            data: o.data,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// A record with everything hung on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordOut {
    /// The record.
    #[serde(flatten)]
    pub record: RecordSummaryOut,
    /// Activities.
    pub activities: Vec<CrmActivityOut>,
    /// Notes.
    pub notes: Vec<NoteOut>,
    /// Files.
    pub attachments: Vec<AttachmentOut>,
    /// Session objects.
    pub session_objects: Vec<SessionObjectOut>,
}

/// Records found.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordsOut {
    /// Matching records.
    pub records: Vec<RecordSummaryOut>,
}

/// An agent status the built-in CRM shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct CrmAgentStatusOut {
    /// The agent's email.
    pub email: String,
    /// Its CRM status.
    pub crm_status: String,
    /// When it was set.
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/crm/agent-statuses` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CrmAgentStatusesOut {
    /// By email.
    pub agents: Vec<CrmAgentStatusOut>,
}

/// Maps stored rows.
pub fn all<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}
