//! Kustomer's configuration: the common external options (`base_url`
//! `https://{org}.api.kustomerapp.com`, `credentials.api_key`), checked against what Kustomer
//! has (three fixed statuses, a native external id, native tags), plus the attribute that
//! holds a conversation's leaf queue and how agents map to Kustomer users.

use std::collections::BTreeMap;

use casebridge_rules::event::FieldError;
use casebridge_rules::settings::{CrmSettings, Warning};

use crate::external::ExternalConfig;

/// Kustomer's conversation statuses.
pub const STATUSES: &[&str] = &["open", "snoozed", "done"];

/// The custom attribute (on conversations) that holds the leaf queue unless the admin names
/// another.
pub const DEFAULT_QUEUE_ATTRIBUTE: &str = "casebridgeQueueStr";

/// Options Kustomer reads besides the common ones.
const OWN_OPTIONS: &[&str] = &["queue_attribute", "agent_users"];

/// Suffixes Kustomer reads a custom attribute's type from.
pub const SUFFIXES: &[&str] = &["Num", "At", "Str", "Txt", "Bool", "Url"];

/// Configuration of the Kustomer connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KustomerConfig {
    /// The common options.
    pub ext: ExternalConfig,
    /// The API key.
    pub api_key: String,
    /// Statuses that count as open (default: open and snoozed; done is closed).
    pub open_statuses: Vec<String>,
    /// Status of created and reopened conversations (default open).
    pub default_open_status: String,
    /// Conversation custom attribute holding the leaf queue (a `…Str` name).
    pub queue_attribute: String,
    /// casebridge agent id → Kustomer user (an email address or a Kustomer user id).
    pub agent_users: BTreeMap<String, String>,
}

fn err(errors: &mut Vec<FieldError>, field: &str, message: impl Into<String>) {
    errors.push(FieldError { field: format!("crm.{field}"), message: message.into() });
}

impl KustomerConfig {
    /// Reads and checks the `crm` member: every error at once.
    pub fn parse(crm: &CrmSettings) -> Result<(KustomerConfig, Vec<Warning>), Vec<FieldError>> {
        let parsed = ExternalConfig::parse(crm, &[&["api_key"]], OWN_OPTIONS);
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let opts = &crm.options;
        let queue_attribute = match opts.get("queue_attribute") {
            None | Some(serde_json::Value::Null) => DEFAULT_QUEUE_ATTRIBUTE.to_string(),
            Some(serde_json::Value::String(s))
                if s.ends_with("Str") && s.len() > 3 && s.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                s.clone()
            }
            Some(_) => {
                err(
                    &mut errors,
                    "queue_attribute",
                    "must be a conversation custom attribute name ending in Str (letters and digits), e.g. \"casebridgeQueueStr\"",
                );
                String::new()
            }
        };
        let mut agent_users = BTreeMap::new();
        match opts.get("agent_users") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    match v.as_str().map(str::trim).filter(|s| !s.is_empty()) {
                        Some(s) => {
                            agent_users.insert(k.clone(), s.to_string());
                        }
                        None => err(
                            &mut errors,
                            &format!("agent_users.{k}"),
                            "must be an email address or a Kustomer user id",
                        ),
                    }
                }
            }
            Some(_) => {
                err(&mut errors, "agent_users", "must be an object: casebridge agent id → email or Kustomer user id")
            }
        }
        let (ext, mut common_warnings) = match parsed {
            Ok(p) => p,
            Err(mut e) => {
                e.extend(errors);
                return Err(e);
            }
        };
        warnings.append(&mut common_warnings);
        let open_statuses = match &ext.open_statuses {
            None => vec!["open".to_string(), "snoozed".to_string()],
            Some(v) => {
                for s in v {
                    if !STATUSES.contains(&s.as_str()) {
                        err(
                            &mut errors,
                            "open_statuses",
                            format!("{s:?} is not a Kustomer status; they are open, snoozed and done"),
                        );
                    }
                }
                v.clone()
            }
        };
        let default_open_status = match &ext.default_open_status {
            None => "open".to_string(),
            Some(s) if s == "open" || s == "snoozed" => s.clone(),
            Some(s) => {
                err(
                    &mut errors,
                    "default_open_status",
                    format!("{s:?} cannot hold an open conversation; use open (or snoozed)"),
                );
                String::new()
            }
        };
        if let Some(k) = &ext.key_field
            && k != "externalId"
        {
            err(
                &mut errors,
                "key_field",
                "Kustomer keeps casebridge's key in the conversation's and customer's externalId; leave it null",
            );
        }
        if ext.tags_field.is_some() {
            warnings.push(Warning {
                field: "crm.tags_field".into(),
                message: "Kustomer has native tags; this option has no effect".into(),
            });
        }
        if let Some(v) = &ext.api_version
            && v != "v1"
        {
            err(&mut errors, "api_version", "Kustomer's API is v1; leave it null");
        }
        let api_key = ext.credential("api_key").unwrap_or_default().to_string();
        if errors.is_empty() {
            Ok((
                KustomerConfig { ext, api_key, open_statuses, default_open_status, queue_attribute, agent_users },
                warnings,
            ))
        } else {
            Err(errors)
        }
    }

    /// Whether a status counts as open.
    pub fn is_open(&self, status: &str) -> bool {
        self.open_statuses.iter().any(|s| s == status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crm(v: serde_json::Value) -> CrmSettings {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn kustomer_config_defaults_and_checks() {
        let ok = crm(serde_json::json!({"kind": "kustomer", "base_url": "https://acme.api.kustomerapp.com",
            "credentials": {"api_key": "k"}, "agent_users": {"ag-1": "ann@example.com"}, "tags_field": "x"}));
        let (c, w) = KustomerConfig::parse(&ok).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.open_statuses, ["open", "snoozed"]);
        assert_eq!(c.default_open_status, "open");
        assert_eq!(c.queue_attribute, DEFAULT_QUEUE_ATTRIBUTE);
        assert_eq!(c.agent_users.get("ag-1").map(String::as_str), Some("ann@example.com"));
        assert!(w.iter().any(|w| w.field == "crm.tags_field"));
        let bad = crm(serde_json::json!({"kind": "kustomer", "base_url": "https://acme.api.kustomerapp.com",
            "credentials": {"api_key": "k"}, "open_statuses": ["New"], "default_open_status": "done",
            "queue_attribute": "queue", "key_field": "Other__c"}));
        let fields: Vec<String> =
            KustomerConfig::parse(&bad).err().unwrap_or_default().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["crm.queue_attribute", "crm.open_statuses", "crm.default_open_status", "crm.key_field"]);
        let none = crm(serde_json::json!({"kind": "kustomer", "base_url": "https://acme.api.kustomerapp.com"}));
        let fields: Vec<String> =
            KustomerConfig::parse(&none).err().unwrap_or_default().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["crm.credentials"]);
    }
}
