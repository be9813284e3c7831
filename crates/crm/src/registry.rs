//! The one place that knows every connector: reads the settings' `crm` member into a typed
//! configuration (with field-level errors) and builds the connector it names.
//! `serve`, `simulate` and `check-config` all go through here.

use std::sync::Arc;

use casebridge_rules::event::FieldError;
use casebridge_rules::settings::{CrmSettings, Warning};

use crate::Connector;
use crate::builtin::storage::BuiltinCrmStore;
use crate::builtin::{BuiltinConfig, BuiltinConnector};
use crate::cache::Cached;
use crate::http::HttpClient;

/// The CRM kinds this build connects to.
pub const KINDS: &[&str] = &["builtin", "kustomer", "salesforce"];

/// A connector's typed configuration, read from the settings' `crm` member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorConfig {
    /// The built-in CRM.
    Builtin(BuiltinConfig),
    /// Kustomer.
    Kustomer(Box<crate::kustomer::KustomerConfig>),
    /// A Salesforce org.
    Salesforce(Box<crate::salesforce::SalesforceConfig>),
}

impl ConnectorConfig {
    /// Reads and checks the `crm` member: every error at once (fields named `crm.…`), and the
    /// warnings of a valid one.
    pub fn parse(crm: &CrmSettings) -> Result<(ConnectorConfig, Vec<Warning>), Vec<FieldError>> {
        match crm.kind.as_str() {
            "builtin" => {
                let (c, warnings) = BuiltinConfig::parse(crm);
                Ok((ConnectorConfig::Builtin(c), warnings))
            }
            "kustomer" => {
                crate::kustomer::KustomerConfig::parse(crm).map(|(c, w)| (ConnectorConfig::Kustomer(Box::new(c)), w))
            }
            "salesforce" => crate::salesforce::SalesforceConfig::parse(crm)
                .map(|(c, w)| (ConnectorConfig::Salesforce(Box::new(c)), w)),
            other => Err(vec![FieldError {
                field: "crm.kind".into(),
                message: format!("unknown CRM kind {other:?}; this build supports: {}", KINDS.join(", ")),
            }]),
        }
    }

    /// The connector kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorConfig::Builtin(_) => "builtin",
            ConnectorConfig::Kustomer(_) => "kustomer",
            ConnectorConfig::Salesforce(_) => "salesforce",
        }
    }
}

/// What connectors are built with.
#[derive(Clone)]
pub struct Deps {
    /// Storage of the built-in CRM.
    pub builtin: Arc<dyn BuiltinCrmStore>,
    /// The shared HTTP client.
    pub http: HttpClient,
}

/// Builds the connector a configuration names.
pub fn connect(config: &ConnectorConfig, deps: &Deps) -> Arc<dyn Connector> {
    match config {
        // Kinds across a network are wrapped with `remote(…)`.
        ConnectorConfig::Builtin(_) => Arc::new(BuiltinConnector::new(deps.builtin.clone())),
        ConnectorConfig::Kustomer(c) => remote(
            Arc::new(crate::kustomer::KustomerConnector::new((**c).clone(), deps.http.clone())),
            deps.http.cluster().map(|c| c.alone.clone()),
        ),
        ConnectorConfig::Salesforce(c) => remote(
            Arc::new(crate::salesforce::SalesforceConnector::new((**c).clone(), deps.http.clone())),
            deps.http.cluster().map(|c| c.alone.clone()),
        ),
    }
}

/// A connector to a CRM across the network, with cached account lookups and coalesced
/// trailing writes ([`Cached`]); the built-in CRM needs neither. On a database several
/// nodes may share, lookups are cached only while this node is `alone`: another node's
/// create or update would not reach this node's cache.
pub fn remote(inner: Arc<dyn Connector>, alone: Option<Arc<std::sync::atomic::AtomicBool>>) -> Arc<dyn Connector> {
    Arc::new(match alone {
        Some(alone) => Cached::while_alone(inner, alone),
        None => Cached::new(inner),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_are_refused_on_the_field() {
        let crm = CrmSettings { kind: "nope".into(), ..CrmSettings::default() };
        let errors = ConnectorConfig::parse(&crm).err().unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "crm.kind");
        let ok = ConnectorConfig::parse(&CrmSettings::default()).map(|(c, w)| (c.kind(), w.len()));
        assert_eq!(ok.ok(), Some(("builtin", 0)));
    }
}
