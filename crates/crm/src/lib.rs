//! CRM connectors behind one trait. Connectors are written for CRMs reached over HTTP:
//! lookups can fail or be slow, every create carries casebridge's idempotency key (the
//! CRM's external id), and writes are retried from the outbox, so every write must be safe
//! to repeat.

pub mod builtin;
pub mod cache;
pub mod external;
pub mod http;
pub mod kustomer;
pub mod pacing;
pub mod registry;
pub mod salesforce;

use std::time::Duration;

use async_trait::async_trait;
use std::collections::HashMap;

use casebridge_rules::model::{Answer, CrmProfile, ObjRef};
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

/// One write with its idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The write's idempotency key (unique across all writes).
    pub key: String,
    /// The write. References are CRM ids, or keys of creates earlier in the same batch.
    pub op: CrmOp,
}

/// One check of `POST /v1/crm/test`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    /// What was checked (`reachable`, `credentials`, `object Case`, …).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, and for a failed check what to do about it.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), ok: true, detail: detail.into() }
    }

    /// A failed check; `detail` says what to do.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), ok: false, detail: detail.into() }
    }
}

/// Replaces keys of creates made earlier in the batch by their CRM ids; `Err` names a key
/// that has none (its create failed or is not in the batch).
pub fn resolve_in_batch(op: &CrmOp, created: &HashMap<String, String>) -> Result<CrmOp, String> {
    let mut op = op.clone();
    for r in op.refs_mut() {
        if let ObjRef::Key(k) = r {
            match created.get(k.as_str()) {
                Some(id) => *r = ObjRef::Crm(id.clone()),
                None => return Err(k.clone()),
            }
        }
    }
    Ok(op)
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
    /// Whether the writes go to casebridge's own database (the built-in CRM): delivery then
    /// records their outcomes in the same transaction.
    fn in_store(&self) -> bool {
        false
    }
    /// Performs one write; references in `op` are CRM ids. `key` is the write's idempotency key.
    async fn execute(&self, key: &str, op: &CrmOp) -> Result<WriteOutcome, CrmError>;
    /// Performs the writes of one lane in order, in as few calls as the CRM allows; one
    /// result per write, in order, up to and including the first failure (delivery retries
    /// the failed write and sends the ones after it again, so results after a failure are
    /// ignored). A write may refer (by key) to a create earlier in the batch. The default
    /// performs them one by one and stops at the first failure.
    async fn execute_batch(&self, writes: &[Write]) -> Vec<Result<WriteOutcome, CrmError>> {
        let mut created = HashMap::new();
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            let result = match resolve_in_batch(&w.op, &created) {
                Ok(op) => self.execute(&w.key, &op).await,
                Err(k) => Err(CrmError::Transient { message: format!("{k} is not created yet"), retry_after: None }),
            };
            if let Ok(WriteOutcome { created: Some((k, id)), .. }) = &result {
                created.insert(k.clone(), id.clone());
            }
            let failed = result.is_err();
            out.push(result);
            if failed {
                // Later writes of a lane may depend on this one: they wait for it.
                break;
            }
        }
        out
    }
    /// How long trailing writes wait to be sent together with a session's next writes.
    fn coalesce_window(&self) -> Duration {
        Duration::ZERO
    }
    /// Checks the connection (`POST /v1/crm/test`): reachability, credentials, the objects
    /// and fields casebridge needs, which statuses count as closed.
    async fn check(&self) -> Vec<Check> {
        vec![Check::pass("reachable", format!("{} needs no connection", self.kind()))]
    }
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
