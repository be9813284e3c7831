//! The built-in CRM's configuration: it lives in casebridge's own database, so it takes no
//! options.

use casebridge_rules::settings::{CrmSettings, Warning};

/// Configuration of the built-in CRM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltinConfig;

impl BuiltinConfig {
    /// Reads the `crm` member; options meant for another kind are kept but have no effect.
    pub fn parse(crm: &CrmSettings) -> (BuiltinConfig, Vec<Warning>) {
        let warnings = crm
            .options
            .keys()
            .map(|k| Warning {
                field: format!("crm.{k}"),
                message: "the built-in CRM takes no options; this one has no effect".into(),
            })
            .collect();
        (BuiltinConfig, warnings)
    }
}
