//! What the built-in CRM's API answers: its objects (`casebridge_crm::builtin::storage`) and
//! the envelopes around them.

use casebridge_crm::builtin::storage::{CrmAccount, CrmActivity, CrmAttachment, CrmNote, CrmRecord, CrmSessionObject};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// An account with its activities.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDetailOut {
    /// The account.
    #[serde(flatten)]
    pub account: CrmAccount,
    /// Its activities.
    pub activities: Vec<CrmActivity>,
}

/// Accounts found.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountsOut {
    /// Matching accounts.
    pub accounts: Vec<CrmAccount>,
}

/// A record with everything hung on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordOut {
    /// The record.
    #[serde(flatten)]
    pub record: CrmRecord,
    /// Activities.
    pub activities: Vec<CrmActivity>,
    /// Notes.
    pub notes: Vec<CrmNote>,
    /// Files.
    pub attachments: Vec<CrmAttachment>,
    /// Session objects.
    pub session_objects: Vec<CrmSessionObject>,
}

/// Records found.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordsOut {
    /// Matching records.
    pub records: Vec<CrmRecord>,
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
