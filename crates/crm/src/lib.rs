//! CRM connectors behind one trait. Connectors are written for CRMs reached over HTTP:
//! lookups can fail or be slow, every create carries casebridge's idempotency key (the
//! CRM's external id), and writes are retried from the outbox, so every write must be safe
//! to repeat.

pub mod builtin;
pub mod http;
pub mod registry;

use std::time::Duration;

use async_trait::async_trait;
use casebridge_rules::model::{Answer, CrmProfile};
use casebridge_rules::ops::CrmOp;

pub use builtin::BuiltinConnector;
pub use registry::{ConnectorConfig, Deps};

/// What casebridge asks a CRM to find. References are CRM ids: casebridge resolves its own
/// keys, and answers what only it knows (a session's record, a dial request's origin), itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CrmLookup {
    /// People with this app user id.
    AccountsByUserId(String),
    /// People with this E.164 phone number.
    AccountsByPhone(String),
    /// People with this email address.
    AccountsByEmail(String),
    /// Records of the account with this CRM id.
    RecordsOfAccount(String),
}

/// Why a CRM call failed, in the terms the outbox needs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrmError {
    /// Worth retrying (5xx, timeout, throttled).
    #[error("temporary CRM failure: {message}")]
    Transient {
        /// What happened.
        message: String,
        /// The CRM's Retry-After, when it gave one.
        retry_after: Option<Duration>,
    },
    /// Will fail the same way again (4xx other than throttling).
    #[error("CRM refused the write: {0}")]
    Permanent(String),
    /// The object no longer exists (merged or deleted).
    #[error("CRM object no longer exists: {0}")]
    Gone(String),
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// For creates: casebridge's key and the CRM id it now maps to.
    pub created: Option<(String, String)>,
    /// One line for the session's timeline.
    pub summary: String,
}

/// A CRM, as casebridge uses it.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Connector kind (`builtin`, `salesforce`, …).
    fn kind(&self) -> &'static str;
    /// What the rules must know about this CRM.
    fn profile(&self) -> CrmProfile;
    /// Answers a lookup: [`Answer::Accounts`] or [`Answer::Records`].
    async fn lookup(&self, lookup: &CrmLookup) -> Result<Answer, CrmError>;
    /// Performs one write; references in `op` are CRM ids. `key` is the write's idempotency key.
    async fn execute(&self, key: &str, op: &CrmOp) -> Result<WriteOutcome, CrmError>;
    /// Whether a record with this CRM id exists.
    async fn record_exists(&self, id: &str) -> Result<bool, CrmError>;
    /// The name a standard field (catalog key) gets in this CRM.
    fn custom_field_name(&self, key: &str) -> String {
        format!("casebridge_{key}")
    }
    /// Creates a custom field unless one with the name exists (true when created).
    async fn ensure_custom_field(&self, field: &FieldSpec) -> Result<bool, CrmError>;
}

/// A custom field to create in the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// The CRM's field name.
    pub name: String,
    /// `account` or `record`.
    pub object: &'static str,
    /// Label.
    pub label: String,
    /// `text` or `number`.
    pub kind: &'static str,
}
