//! The Salesforce connector: people are Contacts, Leads or person Accounts, records are Cases,
//! session activities and call logs are Tasks, notes are CaseComments, uploaded recordings are
//! Files. Every create is an upsert on the key field, so a replay never makes a second object.
//! See `docs/crm/salesforce.md`.

mod activity;
mod admin;
mod batch;
mod client;
mod config;
mod files;
mod ledger;
mod lookups;
#[cfg(test)]
mod tests;
mod writes;

use std::sync::Arc;

use async_trait::async_trait;
use casebridge_rules::model::{Answer, CrmProfile, TagStyle};
use casebridge_rules::ops::CrmOp;
use reqwest::Method;

pub use config::SalesforceConfig;

use crate::http::{CrmHttp, HttpClient};
use crate::pacing::Pacer;
use crate::{Check, Connector, CrmError, CrmLookup, FieldSpec, Write, WriteOutcome};

/// Connector for a Salesforce org.
pub struct SalesforceConnector {
    sf: client::Sf,
}

impl SalesforceConnector {
    /// A connector for the configured org.
    pub fn new(cfg: SalesforceConfig, http: HttpClient) -> SalesforceConnector {
        let pacer = Arc::new(Pacer::new(cfg.ext.rate_limit_per_minute));
        let crm = CrmHttp::new(http.clone(), "salesforce", pacer);
        SalesforceConnector { sf: client::Sf::new(crm, http, cfg) }
    }
}

#[async_trait]
impl Connector for SalesforceConnector {
    fn kind(&self) -> &'static str {
        "salesforce"
    }

    fn profile(&self) -> CrmProfile {
        let cfg = &self.sf.cfg;
        CrmProfile {
            tags: if cfg.tags_field.is_some() { TagStyle::AsIs } else { TagStyle::None },
            default_open_status: cfg.ext.default_open_status.clone().unwrap_or_else(|| writes::DEFAULT_OPEN.into()),
            phone_note: false,
            custom_fields: Default::default(),
        }
    }

    async fn lookup(&self, lookup: &CrmLookup) -> Result<Answer, CrmError> {
        self.sf.lookup(lookup).await
    }

    async fn execute(&self, key: &str, op: &CrmOp) -> Result<WriteOutcome, CrmError> {
        self.sf.execute_one(key, op).await
    }

    async fn execute_batch(&self, writes: &[Write]) -> Vec<Result<WriteOutcome, CrmError>> {
        self.sf.execute_many(writes).await
    }

    async fn check(&self) -> Vec<Check> {
        self.sf.checks().await
    }

    async fn record_exists(&self, id: &str) -> Result<bool, CrmError> {
        let path = format!("/sobjects/Case/{}", client::seg(id));
        match self.sf.call(Method::GET, &path, &[("fields", "Id")], None, "reading a case").await {
            Ok(_) => Ok(true),
            Err(CrmError::Gone(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn custom_field_name(&self, key: &str) -> String {
        admin::field_name(key)
    }

    async fn ensure_custom_field(&self, field: &FieldSpec) -> Result<bool, CrmError> {
        self.sf.ensure_field(field).await
    }
}
