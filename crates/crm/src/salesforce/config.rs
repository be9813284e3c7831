//! The `crm` member for `kind = "salesforce"`: the common options plus Salesforce's own
//! (`queue_field`, `user_id_field`, `limit_backoff_seconds`), with defaults and checks.

use std::time::Duration;

use casebridge_rules::event::FieldError;
use casebridge_rules::settings::{CrmSettings, Warning};

use crate::external::ExternalConfig;

/// The API version used when the settings name none (Spring '26).
pub const DEFAULT_API_VERSION: &str = "v66.0";
/// The External ID field that holds casebridge's keys when the settings name none.
pub const DEFAULT_KEY_FIELD: &str = "Casebridge_Key__c";
/// How long to hold every request after a 403 `REQUEST_LIMIT_EXCEEDED` without `Retry-After`.
pub const DEFAULT_LIMIT_BACKOFF: Duration = Duration::from_secs(60);

/// Options Salesforce reads beyond the common ones.
pub const OWN_OPTIONS: &[&str] = &["queue_field", "user_id_field", "limit_backoff_seconds"];

/// The checked configuration of the Salesforce connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceConfig {
    /// The common options.
    pub ext: ExternalConfig,
    /// `vNN.N`.
    pub api_version: String,
    /// External ID field (Contact, Lead, Account, Case, Task) holding casebridge's keys.
    pub key_field: String,
    /// Case field holding tags (semicolon-joined), if any.
    pub tags_field: Option<String>,
    /// Case field holding the originating leaf queue (needed to append in the same queue).
    pub queue_field: Option<String>,
    /// Contact/Lead field holding the app user id, if any.
    pub user_id_field: Option<String>,
    /// Hold after a limit answer that gives no wait.
    pub limit_backoff: Duration,
}

/// Whether `name` is a custom field's API name (`Letters_And_Digits__c`).
pub fn is_custom_field_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix("__c") else { return false };
    stem.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !stem.contains("__")
        && !stem.ends_with('_')
        && stem.len() <= 40
}

impl SalesforceConfig {
    /// Reads and checks the `crm` member: every error at once, each on its field.
    pub fn parse(crm: &CrmSettings) -> Result<(SalesforceConfig, Vec<Warning>), Vec<FieldError>> {
        let parsed = ExternalConfig::parse(crm, &[&["client_id", "client_secret"], &["access_token"]], OWN_OPTIONS);
        let mut errors = Vec::new();
        let err = |errors: &mut Vec<FieldError>, field: &str, message: String| {
            errors.push(FieldError { field: format!("crm.{field}"), message })
        };
        let text = |errors: &mut Vec<FieldError>, field: &str| match crm.options.get(field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => {
                err(errors, field, "must be a non-empty string or null".into());
                None
            }
        };
        let queue_field = text(&mut errors, "queue_field");
        let user_id_field = text(&mut errors, "user_id_field");
        let limit_backoff = match crm.options.get("limit_backoff_seconds") {
            None | Some(serde_json::Value::Null) => DEFAULT_LIMIT_BACKOFF,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=86_400).contains(&n) => Duration::from_secs(n),
                _ => {
                    err(
                        &mut errors,
                        "limit_backoff_seconds",
                        "must be a whole number of seconds from 1 to 86400".into(),
                    );
                    DEFAULT_LIMIT_BACKOFF
                }
            },
        };
        let (ext, warnings) = match parsed {
            Ok(ok) => ok,
            Err(mut e) => {
                e.extend(errors);
                return Err(e);
            }
        };
        let api_version = match ext.api_version.as_deref() {
            None => DEFAULT_API_VERSION.to_string(),
            Some(v) => {
                let v = if v.starts_with('v') { v.to_string() } else { format!("v{v}") };
                let ok = v[1..].split_once('.').is_some_and(|(a, b)| {
                    a.parse::<u32>().is_ok_and(|n| n >= 31) && b.chars().all(|c| c.is_ascii_digit()) && !b.is_empty()
                });
                if !ok {
                    err(
                        &mut errors,
                        "api_version",
                        format!("{v:?} is not a REST API version such as \"v66.0\" (31.0 or later)"),
                    );
                }
                v
            }
        };
        let key_field = ext.key_field.clone().unwrap_or_else(|| DEFAULT_KEY_FIELD.to_string());
        for (field, value) in [
            ("key_field", Some(&key_field)),
            ("tags_field", ext.tags_field.as_ref()),
            ("queue_field", queue_field.as_ref()),
            ("user_id_field", user_id_field.as_ref()),
        ] {
            if let Some(v) = value
                && !is_custom_field_name(v)
            {
                err(
                    &mut errors,
                    field,
                    format!("{v:?} is not a custom field's API name: write it as in Setup, e.g. \"Casebridge_Key__c\""),
                );
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let tags_field = ext.tags_field.clone();
        Ok((
            SalesforceConfig { ext, api_version, key_field, tags_field, queue_field, user_id_field, limit_backoff },
            warnings,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crm(v: serde_json::Value) -> CrmSettings {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn defaults_and_field_names() {
        let c = crm(serde_json::json!({"kind": "salesforce", "base_url": "https://acme.my.salesforce.com",
            "credentials": {"client_id": "i", "client_secret": "s"}, "queue_field": "Casebridge_Queue__c"}));
        let (cfg, warnings) = SalesforceConfig::parse(&c).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(cfg.api_version, "v66.0");
        assert_eq!(cfg.key_field, "Casebridge_Key__c");
        assert_eq!(cfg.queue_field.as_deref(), Some("Casebridge_Queue__c"));
        assert_eq!(cfg.limit_backoff, DEFAULT_LIMIT_BACKOFF);
    }

    #[test]
    fn every_error_on_its_field() {
        let c = crm(serde_json::json!({"kind": "salesforce", "base_url": "https://acme.my.salesforce.com",
            "credentials": {"access_token": "t"}, "api_version": "latest", "key_field": "Key",
            "tags_field": "Tags__c", "queue_field": 3, "limit_backoff_seconds": 0}));
        let errors = SalesforceConfig::parse(&c).err().unwrap_or_default();
        let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["crm.api_version", "crm.key_field", "crm.limit_backoff_seconds", "crm.queue_field"]);
        let ok = crm(serde_json::json!({"kind": "salesforce", "base_url": "https://a.my.salesforce.com",
            "credentials": {"access_token": "t"}, "api_version": "62.0"}));
        assert_eq!(SalesforceConfig::parse(&ok).map(|(c, _)| c.api_version).ok().as_deref(), Some("v62.0"));
    }
}
