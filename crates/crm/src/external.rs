//! What the configuration of every external (HTTP) CRM shares: the vendor's base address,
//! write-only credentials, the rate limit casebridge keeps to, statuses, and the fields that
//! hold casebridge's key and tags. Each kind adds its own checks on top.

use std::collections::BTreeMap;
use std::net::IpAddr;

use casebridge_rules::event::FieldError;
use casebridge_rules::settings::{CrmSettings, Warning};
use reqwest::Url;

/// Options every external kind reads; anything else in `crm` draws a warning.
pub const COMMON_OPTIONS: &[&str] = &[
    "base_url",
    "credentials",
    "rate_limit_per_minute",
    "open_statuses",
    "default_open_status",
    "key_field",
    "tags_field",
    "api_version",
    "upload_recordings_from",
];

/// The `crm` member of an external kind, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalConfig {
    /// The vendor's base address (scheme and host, no API path), without a trailing slash.
    pub base_url: Url,
    /// Credentials by name (client_id, api_key, …).
    pub credentials: BTreeMap<String, String>,
    /// Requests per minute casebridge never exceeds towards this CRM.
    pub rate_limit_per_minute: Option<u32>,
    /// Statuses that count as open, when the admin overrides the CRM's own.
    pub open_statuses: Option<Vec<String>>,
    /// Status given to created and reopened records, when the admin overrides the CRM's default.
    pub default_open_status: Option<String>,
    /// Field that holds casebridge's key (the vendor's external id).
    pub key_field: Option<String>,
    /// Field that holds tags in CRMs without native tags.
    pub tags_field: Option<String>,
    /// The vendor API version to call.
    pub api_version: Option<String>,
    /// Hosts whose recordings are uploaded into the CRM as files (others are linked).
    pub upload_recordings_from: Vec<String>,
}

impl ExternalConfig {
    /// The value of a credential.
    pub fn credential(&self, name: &str) -> Option<&str> {
        self.credentials.get(name).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// The base address joined with a path (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url.as_str().trim_end_matches('/'), path)
    }

    /// Whether a recording at this address is uploaded as a file rather than linked.
    pub fn uploads_from(&self, url: &str) -> bool {
        let Ok(u) = Url::parse(url) else { return false };
        let allowed =
            u.host_str().is_some_and(|h| self.upload_recordings_from.iter().any(|a| a.eq_ignore_ascii_case(h)));
        allowed && (u.scheme() == "https" || is_loopback(&u))
    }

    /// Reads the common options. `credential_sets` lists the accepted sets of credential
    /// names (one must be complete), e.g. `[["client_id", "client_secret"], ["access_token"]]`;
    /// `own_options` are further options the kind reads itself (not warned about).
    pub fn parse(
        crm: &CrmSettings,
        credential_sets: &[&[&str]],
        own_options: &[&str],
    ) -> Result<(ExternalConfig, Vec<Warning>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let err = |errors: &mut Vec<FieldError>, field: &str, message: String| {
            errors.push(FieldError { field: format!("crm.{field}"), message })
        };
        let opts = &crm.options;
        let base_url = match opts.get("base_url") {
            None | Some(serde_json::Value::Null) => {
                err(&mut errors, "base_url", format!("required for {}: the vendor's base address", crm.kind));
                None
            }
            Some(serde_json::Value::String(s)) => match check_base_url(s) {
                Ok(u) => Some(u),
                Err(m) => {
                    err(&mut errors, "base_url", m);
                    None
                }
            },
            Some(_) => {
                err(&mut errors, "base_url", "must be a string such as \"https://acme.example.com\"".into());
                None
            }
        };
        let mut credentials = BTreeMap::new();
        match opts.get("credentials") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    match v {
                        serde_json::Value::String(s) if s == casebridge_rules::settings::CREDENTIAL_SET => err(
                            &mut errors,
                            &format!("credentials.{k}"),
                            "\"set\" keeps a saved credential, but none is saved under this name: send its value"
                                .into(),
                        ),
                        serde_json::Value::String(s) => {
                            credentials.insert(k.clone(), s.clone());
                        }
                        _ => err(&mut errors, &format!("credentials.{k}"), "must be a string".into()),
                    }
                }
            }
            Some(_) => err(&mut errors, "credentials", "must be an object of named strings".into()),
        }
        let complete = |set: &&[&str]| set.iter().all(|n| credentials.get(*n).is_some_and(|v| !v.is_empty()));
        if !credential_sets.is_empty() && !credential_sets.iter().any(complete) {
            let sets: Vec<String> = credential_sets.iter().map(|s| s.join(" + ")).collect();
            err(&mut errors, "credentials", format!("{} needs {}", crm.kind, sets.join(", or ")));
        }
        let known: Vec<&str> = credential_sets.iter().flat_map(|s| s.iter().copied()).collect();
        for k in credentials.keys() {
            if !known.contains(&k.as_str()) {
                warnings.push(Warning {
                    field: format!("crm.credentials.{k}"),
                    message: format!("{} does not use this credential; it has no effect", crm.kind),
                });
            }
        }
        let string = |errors: &mut Vec<FieldError>, field: &str| match opts.get(field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => {
                err(errors, field, "must be a non-empty string or null".into());
                None
            }
        };
        let strings = |errors: &mut Vec<FieldError>, field: &str| match opts.get(field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Array(a)) if a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())) => {
                Some(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>())
            }
            Some(_) => {
                err(errors, field, "must be a list of non-empty strings or null".into());
                None
            }
        };
        let rate_limit_per_minute = match opts.get("rate_limit_per_minute") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=1_000_000).contains(&n) => Some(n as u32),
                _ => {
                    err(
                        &mut errors,
                        "rate_limit_per_minute",
                        "must be a whole number from 1 to 1000000, or null".into(),
                    );
                    None
                }
            },
        };
        let open_statuses = strings(&mut errors, "open_statuses");
        let upload_recordings_from = strings(&mut errors, "upload_recordings_from").unwrap_or_default();
        let default_open_status = string(&mut errors, "default_open_status");
        let key_field = string(&mut errors, "key_field");
        let tags_field = string(&mut errors, "tags_field");
        let api_version = string(&mut errors, "api_version");
        for k in opts.keys() {
            if !COMMON_OPTIONS.contains(&k.as_str()) && !own_options.contains(&k.as_str()) {
                warnings.push(Warning {
                    field: format!("crm.{k}"),
                    message: format!("{} does not read this option; it has no effect", crm.kind),
                });
            }
        }
        match (errors.is_empty(), base_url) {
            (true, Some(base_url)) => Ok((
                ExternalConfig {
                    base_url,
                    credentials,
                    rate_limit_per_minute,
                    open_statuses,
                    default_open_status,
                    key_field,
                    tags_field,
                    api_version,
                    upload_recordings_from,
                },
                warnings,
            )),
            _ => Err(errors),
        }
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host_str() {
        Some("localhost") => true,
        Some(h) => h.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Checks a CRM base address: https, or http to a loopback address (fakes, tests); no path,
/// query or credentials in it.
pub fn check_base_url(s: &str) -> Result<Url, String> {
    let u = Url::parse(s.trim()).map_err(|e| format!("not an address ({e}); write it as \"https://host\""))?;
    match u.scheme() {
        "https" => {}
        "http" if is_loopback(&u) => {}
        "http" => return Err("must use https (plain http is allowed only to loopback addresses)".into()),
        other => return Err(format!("scheme {other:?} is not allowed; use https")),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials; put them in crm.credentials".into());
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err("must be the base address only (no path or query): casebridge adds the API path".into());
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crm(v: serde_json::Value) -> CrmSettings {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn base_urls_must_be_https_except_loopback() {
        assert!(check_base_url("https://acme.my.salesforce.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:9000").is_ok());
        assert!(check_base_url("http://localhost:9000/").is_ok());
        assert!(check_base_url("http://[::1]:9000").is_ok());
        assert!(check_base_url("http://acme.example.com").is_err());
        assert!(check_base_url("https://acme.example.com/services/data").is_err());
        assert!(check_base_url("https://u:p@acme.example.com").is_err());
        assert!(check_base_url("ftp://acme.example.com").is_err());
    }

    #[test]
    fn every_error_at_once_with_its_field() {
        let c = crm(serde_json::json!({"kind": "salesforce", "base_url": "http://x.example.com",
            "credentials": {"client_id": 5}, "rate_limit_per_minute": 0, "open_statuses": "New"}));
        let errors = ExternalConfig::parse(&c, &[&["client_id", "client_secret"], &["access_token"]], &[])
            .err()
            .unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "crm.base_url",
                "crm.credentials.client_id",
                "crm.credentials",
                "crm.rate_limit_per_minute",
                "crm.open_statuses"
            ]
        );
    }

    #[test]
    fn a_complete_set_of_credentials_is_enough_and_strays_warn() {
        let c = crm(serde_json::json!({"kind": "salesforce", "base_url": "https://acme.my.salesforce.com",
            "credentials": {"access_token": "t", "api_key": "k"}, "colour": "blue"}));
        let (cfg, warnings) = ExternalConfig::parse(&c, &[&["client_id", "client_secret"], &["access_token"]], &[])
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(cfg.credential("access_token"), Some("t"));
        assert_eq!(cfg.url("/services/oauth2/token"), "https://acme.my.salesforce.com/services/oauth2/token");
        let fields: Vec<&str> = warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, ["crm.credentials.api_key", "crm.colour"]);
    }
}
