//! The `ingest` member: which native event formats are accepted, their secrets and how their
//! fields map onto casebridge's (api.md "Native event formats").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::FieldError;

/// What `GET /v1/settings` shows in place of a write-only ingest secret.
pub const SECRET_SET: &str = "set";

/// Native event formats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// Amazon Connect contact events, chat messages (SNS) and contact records (Firehose).
    pub amazon_connect: AmazonConnectIngest,
    /// Twilio TaskRouter callbacks and Event Streams.
    pub twilio: TwilioIngest,
    /// Genesys Cloud conversation events through EventBridge.
    pub genesys: GenesysIngest,
    /// The generic CTI format many phone systems speak.
    pub cti: CtiIngest,
}

/// Amazon Connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AmazonConnectIngest {
    /// Accept this source.
    pub enabled: bool,
    /// Shared secret (`X-Api-Key`, Basic password, or the Firehose access key); write-only.
    pub api_key: Option<String>,
    /// SNS topics whose chat messages are accepted (empty: any topic whose messages carry a
    /// valid SNS signature).
    pub sns_topic_arns: Vec<String>,
    /// Field mappings.
    pub mapping: Mapping,
}

/// Twilio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TwilioIngest {
    /// Accept this source.
    pub enabled: bool,
    /// The account's auth token, the key of `X-Twilio-Signature`; write-only.
    pub auth_token: Option<String>,
    /// casebridge's address as Twilio calls it (`https://cb.example.com`), when a proxy
    /// changes what casebridge sees; the request URL is used when null.
    pub public_base_url: Option<String>,
    /// Field mappings.
    pub mapping: Mapping,
}

/// Genesys Cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct GenesysIngest {
    /// Accept this source.
    pub enabled: bool,
    /// Shared secret sent as `X-Api-Key` by the EventBridge API destination; write-only.
    pub api_key: Option<String>,
    /// Field mappings.
    pub mapping: Mapping,
}

/// Generic CTI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CtiIngest {
    /// Accept this source.
    pub enabled: bool,
    /// The secret token in the path (`/v1/ingest/cti/{token}`); write-only.
    pub token: Option<String>,
    /// Callers whose `newCall` is answered with `{"action": "reject", "reason": "busy"}`.
    pub blocked_numbers: Vec<String>,
    /// Field mappings.
    pub mapping: Mapping,
}

/// How a platform's fields map onto casebridge's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    /// Platform queue (id, ARN or name) → queue path, nodes joined with ` > `
    /// (`"Support > Billing"`). Unmapped queues keep the platform's name, else its id.
    pub queues: BTreeMap<String, String>,
    /// Platform agent (id, ARN, user name) → casebridge agent id. Unmapped agents keep the
    /// platform's id.
    pub agents: BTreeMap<String, String>,
    /// casebridge customer field (`phone`, `email`, `user_id`, `name`) or `language` → the
    /// platform attribute that holds it (contact attributes or tags, task attributes).
    pub attributes: BTreeMap<String, String>,
    /// Platform attributes copied into the session's custom data (`custom_data.updated`).
    pub custom_data: Vec<String>,
}

/// Keys of [`Mapping::attributes`].
pub const ATTRIBUTE_FIELDS: &[&str] = &["phone", "email", "user_id", "name", "language"];

impl Default for Mapping {
    fn default() -> Self {
        let attributes = [
            ("phone", "customer_phone"),
            ("email", "customer_email"),
            ("user_id", "customer_id"),
            ("name", "customer_name"),
            ("language", "language"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Mapping { queues: BTreeMap::new(), agents: BTreeMap::new(), attributes, custom_data: vec![] }
    }
}

impl Mapping {
    /// The queue path of a platform queue: the mapped path, else the name, else the id.
    pub fn queue_path(&self, id: Option<&str>, name: Option<&str>) -> Option<Vec<String>> {
        let mapped = [id, name]
            .into_iter()
            .flatten()
            .find_map(|k| self.queues.get(k).or_else(|| k.rsplit('/').next().and_then(|last| self.queues.get(last))));
        let path = match (mapped, name, id) {
            (Some(p), _, _) => p.clone(),
            (None, Some(n), _) if !n.trim().is_empty() => n.to_string(),
            (None, _, Some(i)) if !i.trim().is_empty() => i.rsplit('/').next().unwrap_or(i).to_string(),
            _ => return None,
        };
        Some(path.split(" > ").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    }

    /// The casebridge agent id of a platform agent: mapped by id, ARN or name, else the last
    /// segment of the id.
    pub fn agent_id(&self, keys: &[&str]) -> Option<String> {
        for k in keys {
            if let Some(a) = self.agents.get(*k).or_else(|| k.rsplit('/').next().and_then(|l| self.agents.get(l))) {
                return Some(a.clone());
            }
        }
        keys.iter().find(|k| !k.trim().is_empty()).map(|k| k.rsplit('/').next().unwrap_or(k).to_string())
    }

    /// The attribute name holding a casebridge field.
    pub fn attribute(&self, field: &str) -> Option<&str> {
        self.attributes.get(field).map(String::as_str)
    }
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// A secret as `GET /v1/settings` shows it.
fn redact(s: &mut Option<String>) {
    if s.is_some() {
        *s = Some(SECRET_SET.into());
    }
}

/// Keeps the saved secret when `"set"` is sent back.
fn keep(s: &mut Option<String>, saved: &Option<String>) {
    if s.as_deref() == Some(SECRET_SET) {
        s.clone_from(saved);
    }
}

impl IngestSettings {
    /// Secrets replaced by `"set"`.
    pub fn redact(&mut self) {
        redact(&mut self.amazon_connect.api_key);
        redact(&mut self.twilio.auth_token);
        redact(&mut self.genesys.api_key);
        redact(&mut self.cti.token);
    }

    /// Keeps the saved secrets where `"set"` is sent back.
    pub fn keep_secrets_from(&mut self, saved: &IngestSettings) {
        keep(&mut self.amazon_connect.api_key, &saved.amazon_connect.api_key);
        keep(&mut self.twilio.auth_token, &saved.twilio.auth_token);
        keep(&mut self.genesys.api_key, &saved.genesys.api_key);
        keep(&mut self.cti.token, &saved.cti.token);
    }

    /// Errors and warnings of the member.
    pub fn validate(&self, errors: &mut Vec<FieldError>, warnings: &mut Vec<super::Warning>) {
        let mappings = [
            ("amazon_connect", &self.amazon_connect.mapping),
            ("twilio", &self.twilio.mapping),
            ("genesys", &self.genesys.mapping),
            ("cti", &self.cti.mapping),
        ];
        for (source, m) in mappings {
            for (k, v) in &m.attributes {
                if !ATTRIBUTE_FIELDS.contains(&k.as_str()) {
                    errors.push(err(
                        &format!("ingest.{source}.mapping.attributes.{k}"),
                        format!("unknown field; map one of: {}", ATTRIBUTE_FIELDS.join(", ")),
                    ));
                } else if v.trim().is_empty() {
                    errors.push(err(&format!("ingest.{source}.mapping.attributes.{k}"), "must name an attribute"));
                }
            }
            for (k, v) in &m.queues {
                if v.split(" > ").all(|n| n.trim().is_empty()) {
                    errors.push(err(
                        &format!("ingest.{source}.mapping.queues.{k}"),
                        "must be a queue path such as \"Support > Billing\"",
                    ));
                }
            }
            for (k, v) in &m.agents {
                if v.trim().is_empty() || v.chars().any(char::is_control) {
                    errors.push(err(&format!("ingest.{source}.mapping.agents.{k}"), "must be an agent id"));
                }
            }
        }
        let secrets = [
            ("amazon_connect", "api_key", self.amazon_connect.enabled, &self.amazon_connect.api_key),
            ("twilio", "auth_token", self.twilio.enabled, &self.twilio.auth_token),
            ("genesys", "api_key", self.genesys.enabled, &self.genesys.api_key),
            ("cti", "token", self.cti.enabled, &self.cti.token),
        ];
        for (source, name, enabled, secret) in secrets {
            match secret.as_deref() {
                Some(s) if s.trim().len() < 16 => errors.push(err(
                    &format!("ingest.{source}.{name}"),
                    "must be at least 16 characters (a random secret), or null",
                )),
                None if enabled => warnings.push(super::Warning {
                    field: format!("ingest.{source}.{name}"),
                    message: format!(
                        "is null while ingest.{source} is enabled: only requests with the API bearer token are accepted (or any request while casebridge runs without a token on a loopback address)"
                    ),
                }),
                _ => {}
            }
        }
        if let Some(u) = &self.twilio.public_base_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            errors.push(err(
                "ingest.twilio.public_base_url",
                "must be an https:// URL such as https://cb.example.com, or null",
            ));
        }
        for (i, a) in self.amazon_connect.sns_topic_arns.iter().enumerate() {
            if !a.starts_with("arn:") {
                errors.push(err(
                    &format!("ingest.amazon_connect.sns_topic_arns[{i}]"),
                    "must be a topic ARN such as arn:aws:sns:us-east-1:123456789012:connect-chat",
                ));
            }
        }
    }
}
