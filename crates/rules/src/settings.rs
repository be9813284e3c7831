//! The settings document (api.md "Settings"): defaults, validation, warnings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::FieldError;
use crate::title::Template;

mod change;
mod credentials;
pub mod ingest;
mod read;

pub use self::change::{changed_paths, merge_patch};
pub use self::ingest::IngestSettings;
use self::read::{AGENT_STATUS_MODES, AGENT_STATUS_PRIORITIES};
pub use self::read::{parse_settings, read_settings};

/// The whole settings document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Region for numbers written without a country code (ISO 3166-1 alpha-2).
    pub region: String,
    /// IANA time zone for TIMESTAMP in titles.
    pub time_zone: String,
    /// Which CRM and how to reach it.
    pub crm: CrmSettings,
    /// The contact center's own numbers: never matched or created as accounts.
    pub own_numbers: Vec<String>,
    /// Account lookup and creation.
    pub accounts: AccountSettings,
    /// Record creation, append and reopen.
    pub records: RecordSettings,
    /// What each session writes.
    pub session_data: SessionDataSettings,
    /// Agent wrap-up.
    pub call_logging: CallLoggingSettings,
    /// Agent status sync.
    pub agent_status: AgentStatusSettings,
    /// SDK custom data key → CRM field.
    pub custom_data_mapping: BTreeMap<String, String>,
    /// Click-to-call hand-off to the contact center.
    pub click_to_call: ClickToCallSettings,
    /// Native event formats of contact-center platforms.
    pub ingest: IngestSettings,
}

/// Where dial requests are sent (behaviour.md §12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ClickToCallSettings {
    /// The contact center's endpoint for dial requests (http or https).
    pub webhook_url: Option<String>,
    /// Shared secret for the HMAC-SHA256 signature; shown as `********` once saved.
    pub signing_secret: Option<String>,
}

/// What `GET /v1/settings` shows in place of a secret.
pub const REDACTED: &str = "********";

/// How a stored CRM credential shows in `GET /v1/settings`; sent back, it keeps the stored value.
pub const CREDENTIAL_SET: &str = "set";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            region: "US".into(),
            time_zone: "UTC".into(),
            crm: CrmSettings::default(),
            own_numbers: vec![],
            accounts: AccountSettings::default(),
            records: RecordSettings::default(),
            session_data: SessionDataSettings::default(),
            call_logging: CallLoggingSettings::default(),
            agent_status: AgentStatusSettings::default(),
            custom_data_mapping: BTreeMap::new(),
            click_to_call: ClickToCallSettings::default(),
            ingest: IngestSettings::default(),
        }
    }
}

/// The CRM connection as written in the settings. The rules do not read it: the connector
/// registry (`casebridge-crm`) parses it into its kind's typed configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrmSettings {
    /// Connector kind (`builtin`, …).
    pub kind: String,
    /// The kind's own options (base URL, credentials…), as given.
    #[serde(flatten)]
    pub options: BTreeMap<String, serde_json::Value>,
}

impl Default for CrmSettings {
    fn default() -> Self {
        CrmSettings { kind: "builtin".into(), options: BTreeMap::new() }
    }
}

/// How several hits on one lookup key are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MultipleMatch {
    /// The most recently updated account.
    #[default]
    MostRecent,
    /// Contact > person account > lead, then most recent.
    Priority,
}

/// Account settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    /// Never look the customer up.
    pub skip_lookup: bool,
    /// Never create an account for an unknown customer.
    pub skip_creation: bool,
    /// How several hits are resolved.
    pub multiple_match: MultipleMatch,
    /// Numbers or prefixes (ending in `*`, or a shorter digit string) never created as accounts.
    pub never_create_for: Vec<String>,
}

/// Abandoned chat modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AbandonedChatMode {
    /// No record for abandoned chats.
    #[default]
    Off,
    /// A record for every abandoned chat.
    All,
    /// A record when the customer sent at least N messages.
    MinCustomerMessages,
}

/// Abandoned chat settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AbandonedChats {
    /// off, all or min_customer_messages.
    pub mode: AbandonedChatMode,
    /// N for min_customer_messages.
    pub min_customer_messages: Option<u32>,
}

/// Record settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RecordSettings {
    /// Never create new records.
    pub skip_creation: bool,
    /// Append to the latest open record of the account in the same leaf queue.
    pub append_to_open_in_leaf_queue: bool,
    /// Appending also needs the same channel.
    pub append_requires_same_channel: bool,
    /// Append to (and reopen) a record closed within D days.
    pub append_to_closed_within_days: Option<u32>,
    /// Voice records wait for the agent to connect.
    pub delay_call_until_connected: bool,
    /// Chat records wait for N customer messages.
    pub delay_chat_until_customer_messages: Option<u32>,
    /// Records for calls abandoned before their trigger.
    pub abandoned_calls: bool,
    /// Records for abandoned chats.
    pub abandoned_chats: AbandonedChats,
    /// A chat abandoned within this many seconds of creation is short abandoned.
    pub chat_short_abandon_seconds: u32,
    /// Title template.
    pub title_template: String,
    /// Tag records with the session type's display name.
    pub tag_session_type: bool,
    /// Tag records with the platform tag.
    pub tag_platform: bool,
    /// The platform tag.
    pub platform_tag: String,
    /// Status a reopened record gets (the CRM's default open status when null).
    pub default_open_status: Option<String>,
    /// Owner of records created before any agent is assigned.
    pub default_owner: Option<String>,
}

impl Default for RecordSettings {
    fn default() -> Self {
        RecordSettings {
            skip_creation: false,
            append_to_open_in_leaf_queue: false,
            append_requires_same_channel: false,
            append_to_closed_within_days: None,
            delay_call_until_connected: false,
            delay_chat_until_customer_messages: None,
            abandoned_calls: false,
            abandoned_chats: AbandonedChats::default(),
            chat_short_abandon_seconds: 20,
            title_template: "{CALL_TYPE} {PHONE_NUMBER}".into(),
            tag_session_type: false,
            tag_platform: false,
            platform_tag: "casebridge".into(),
            default_open_status: None,
            default_owner: None,
        }
    }
}

/// Where session data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionDataTarget {
    /// An activity on the record.
    #[default]
    Activity,
    /// A session object linked to the record and account.
    SessionObject,
}

/// Where a session without a record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnrecordedLink {
    /// On the account.
    #[default]
    Account,
    /// On the account's most recent record.
    LatestRecord,
    /// Standalone.
    None,
}

/// Session data settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SessionDataSettings {
    /// activity or session_object.
    pub target: SessionDataTarget,
    /// Where sessions without a record go.
    pub unrecorded_session_link: UnrecordedLink,
    /// Attach call recordings to records.
    pub attach_recordings: bool,
}

impl Default for SessionDataSettings {
    fn default() -> Self {
        SessionDataSettings {
            target: SessionDataTarget::Activity,
            unrecorded_session_link: UnrecordedLink::Account,
            attach_recordings: true,
        }
    }
}

/// What happens to callers that match no CRM person at wrap-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedCaller {
    /// Create a contact.
    #[default]
    Contact,
    /// Create a lead.
    Lead,
    /// Create nothing.
    None,
}

/// Call logging settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CallLoggingSettings {
    /// Dispositions (and relate-to-case) are on.
    pub dispositions_enabled: bool,
    /// contact, lead or none.
    pub unmatched_caller: UnmatchedCaller,
}

impl Default for CallLoggingSettings {
    fn default() -> Self {
        CallLoggingSettings { dispositions_enabled: true, unmatched_caller: UnmatchedCaller::Contact }
    }
}

/// Agent status sync settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AgentStatusSettings {
    /// off, one_way or two_way.
    pub mode: String,
    /// latest_wins or crm_overrides.
    pub priority: String,
    /// Statuses of the platform.
    pub platform_statuses: Vec<String>,
    /// CRM status → platform status.
    pub crm_to_platform: BTreeMap<String, String>,
    /// Platform status → CRM status.
    pub platform_to_crm: BTreeMap<String, String>,
    /// CRM teams linked to a platform queue.
    pub synced_teams: Vec<String>,
    /// Hold CRM changes while the agent is on a session.
    pub hold_while_busy: bool,
    /// A CRM instance or widget not heard from for this many minutes counts as closed (a tab
    /// that crashed never says goodbye); null keeps instances until they are closed.
    pub instance_ttl_minutes: Option<u32>,
}

impl Default for AgentStatusSettings {
    fn default() -> Self {
        AgentStatusSettings {
            mode: "off".into(),
            priority: "latest_wins".into(),
            platform_statuses: vec![],
            crm_to_platform: BTreeMap::new(),
            platform_to_crm: BTreeMap::new(),
            synced_teams: vec![],
            hold_while_busy: false,
            instance_ttl_minutes: Some(720),
        }
    }
}

/// A valid but partly ineffective combination.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Warning {
    /// The setting that has no effect.
    pub field: String,
    /// Why, and what to change.
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// Top-level keys of the settings document.
pub const SECTIONS: &[&str] = &[
    "region",
    "time_zone",
    "crm",
    "own_numbers",
    "accounts",
    "records",
    "session_data",
    "call_logging",
    "agent_status",
    "custom_data_mapping",
    "click_to_call",
    "ingest",
];

impl Settings {
    /// The document as `GET /v1/settings` shows it: secrets replaced by [`REDACTED`].
    pub fn redacted(&self) -> Settings {
        let mut s = self.clone();
        if s.click_to_call.signing_secret.is_some() {
            s.click_to_call.signing_secret = Some(REDACTED.into());
        }
        s.crm.redact_credentials();
        s.ingest.redact();
        s
    }

    /// Keeps the saved secrets where a new document sends back [`REDACTED`] (or, for CRM
    /// credentials, [`CREDENTIAL_SET`]).
    pub fn keep_secrets_from(&mut self, saved: &Settings) {
        if self.click_to_call.signing_secret.as_deref() == Some(REDACTED) {
            self.click_to_call.signing_secret = saved.click_to_call.signing_secret.clone();
        }
        self.crm.keep_credentials_from(&saved.crm);
        self.ingest.keep_secrets_from(&saved.ingest);
    }

    /// Every error of the document at once, and the warnings of a valid one.
    pub fn validate(&self) -> Result<Vec<Warning>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        if crate::phone::parse_region(&self.region).is_err() {
            errors.push(err(
                "region",
                format!("unknown region {:?}: use an ISO 3166-1 alpha-2 code such as \"US\"", self.region),
            ));
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            errors.push(err(
                "time_zone",
                format!("unknown time zone {:?}: use an IANA name such as \"UTC\" or \"Europe/Paris\"", self.time_zone),
            ));
        }
        for (i, n) in self.own_numbers.iter().enumerate() {
            if n.trim().is_empty() {
                errors.push(err(&format!("own_numbers[{i}]"), "must not be empty"));
            } else if !n.chars().any(|c| c.is_ascii_digit()) || !crate::phone::Phone::parse(n, &self.region).parsed {
                warnings.push(Warning {
                    field: format!("own_numbers[{i}]"),
                    message: format!(
                        "{n:?} is not a phone number: it will never match a caller; write it with its country code, such as \"+14155550100\""
                    ),
                });
            }
        }
        for (i, n) in self.accounts.never_create_for.iter().enumerate() {
            if n.trim().trim_end_matches('*').is_empty() {
                errors.push(err(
                    &format!("accounts.never_create_for[{i}]"),
                    "must be a number or a prefix such as \"+1800\" or \"1*\"",
                ));
            }
        }
        let r = &self.records;
        if self.accounts.skip_lookup && r.append_to_open_in_leaf_queue {
            errors.push(err("records.append_to_open_in_leaf_queue", "cannot be on while accounts.skip_lookup is on: appending needs the customer's account; turn one of them off"));
        }
        if self.accounts.skip_lookup && r.append_to_closed_within_days.is_some() {
            errors.push(err("records.append_to_closed_within_days", "cannot be set while accounts.skip_lookup is on: appending needs the customer's account; set it to null or turn lookup on"));
        }
        if self.accounts.skip_lookup && self.session_data.unrecorded_session_link != UnrecordedLink::None {
            errors.push(err("session_data.unrecorded_session_link", "account and latest_record need account lookup, which accounts.skip_lookup turns off; use \"none\" or turn lookup on"));
        }
        if r.append_to_closed_within_days.is_some() && !r.append_to_open_in_leaf_queue {
            warnings.push(Warning {
                field: "records.append_to_closed_within_days".into(),
                message: "has no effect unless records.append_to_open_in_leaf_queue is on".into(),
            });
        }
        if let Some(d) = r.append_to_closed_within_days
            && d > 365
        {
            warnings.push(Warning {
                field: "records.append_to_closed_within_days".into(),
                message: format!("is {d} days, more than a year: a record closed up to {d} days ago is reopened when the customer comes back; a few days or weeks is usual"),
            });
        }
        if r.chat_short_abandon_seconds == 0 {
            warnings.push(Warning {
                field: "records.chat_short_abandon_seconds".into(),
                message: "is 0: no abandoned chat counts as short abandoned, so every quick hang-up is reported as a missed chat; the default is 20".into(),
            });
        }
        if r.title_template.trim().is_empty() {
            warnings.push(Warning {
                field: "records.title_template".into(),
                message: "is empty: records get no title".into(),
            });
        }
        if r.append_requires_same_channel && !r.append_to_open_in_leaf_queue {
            warnings.push(Warning {
                field: "records.append_requires_same_channel".into(),
                message: "has no effect unless records.append_to_open_in_leaf_queue is on".into(),
            });
        }
        if r.delay_chat_until_customer_messages == Some(0) {
            errors.push(err("records.delay_chat_until_customer_messages", "must be at least 1, or null for no delay"));
        }
        match (r.abandoned_chats.mode, r.abandoned_chats.min_customer_messages) {
            (AbandonedChatMode::MinCustomerMessages, None | Some(0)) => errors.push(err(
                "records.abandoned_chats.min_customer_messages",
                "must be at least 1 when mode is min_customer_messages",
            )),
            (AbandonedChatMode::Off | AbandonedChatMode::All, Some(_)) => warnings.push(Warning {
                field: "records.abandoned_chats.min_customer_messages".into(),
                message: "is only used when mode is min_customer_messages".into(),
            }),
            _ => {}
        }
        if r.delay_call_until_connected && r.abandoned_calls {
            warnings.push(Warning { field: "records.abandoned_calls".into(), message: "has no effect while records.delay_call_until_connected is on: only calls that connect to an agent get records".into() });
        }
        if r.skip_creation && r.abandoned_calls {
            warnings.push(Warning {
                field: "records.abandoned_calls".into(),
                message: "has no effect while records.skip_creation is on".into(),
            });
        }
        if let Err(e) = Template::parse(&r.title_template) {
            errors.push(err("records.title_template", e.to_string()));
        }
        if (r.tag_platform) && r.platform_tag.trim().is_empty() {
            errors.push(err("records.platform_tag", "must not be empty while records.tag_platform is on"));
        }
        if let Some(s) = &r.default_open_status
            && s.trim().is_empty()
        {
            errors.push(err("records.default_open_status", "must be a status name or null for the CRM's default"));
        }
        for (k, f) in &self.custom_data_mapping {
            if f.trim().is_empty() {
                errors.push(err(&format!("custom_data_mapping.{k}"), "must name a CRM field"));
            }
        }
        let a = &self.agent_status;
        if !AGENT_STATUS_MODES.contains(&a.mode.as_str()) {
            errors.push(err("agent_status.mode", format!("must be one of: {}", AGENT_STATUS_MODES.join(", "))));
        }
        if !AGENT_STATUS_PRIORITIES.contains(&a.priority.as_str()) {
            errors
                .push(err("agent_status.priority", format!("must be one of: {}", AGENT_STATUS_PRIORITIES.join(", "))));
        }
        if a.instance_ttl_minutes == Some(0) {
            errors.push(err(
                "agent_status.instance_ttl_minutes",
                "must be at least 1, or null to keep instances until closed",
            ));
        }
        let known = |st: &str| a.platform_statuses.iter().any(|p| p == st);
        for (i, p) in a.platform_statuses.iter().enumerate() {
            if p.trim().is_empty() {
                errors.push(err(&format!("agent_status.platform_statuses[{i}]"), "must not be empty"));
            }
        }
        for (crm, plat) in &a.crm_to_platform {
            if !known(plat) {
                errors.push(err(
                    &format!("agent_status.crm_to_platform.{crm}"),
                    format!("{plat:?} is not in agent_status.platform_statuses; add it there or map to one of them"),
                ));
            }
        }
        for (plat, crm) in &a.platform_to_crm {
            if !known(plat) {
                errors.push(err(
                    &format!("agent_status.platform_to_crm.{plat}"),
                    format!("{plat:?} is not in agent_status.platform_statuses"),
                ));
            }
            if crm.trim().is_empty() {
                errors.push(err(&format!("agent_status.platform_to_crm.{plat}"), "must name a CRM status"));
            }
        }
        if a.mode != "off" && a.crm_to_platform.is_empty() {
            warnings.push(Warning {
                field: "agent_status.crm_to_platform".into(),
                message: "is empty: every CRM status will be ignored; map each CRM status to a platform status".into(),
            });
        }
        if a.mode == "two_way" {
            if a.synced_teams.is_empty() {
                warnings.push(Warning {
                    field: "agent_status.synced_teams".into(),
                    message: "is empty: two-way sync applies only to agents whose CRM team is listed here".into(),
                });
            }
            let unmapped: Vec<&str> = a
                .platform_statuses
                .iter()
                .filter(|p| !a.platform_to_crm.contains_key(*p))
                .map(String::as_str)
                .collect();
            if !unmapped.is_empty() {
                warnings.push(Warning {
                    field: "agent_status.platform_to_crm".into(),
                    message: format!("{} not pushed to the CRM: they have no entry", unmapped.join(", ")),
                });
            }
        } else if !a.platform_to_crm.is_empty() || !a.synced_teams.is_empty() {
            warnings.push(Warning {
                field: "agent_status.platform_to_crm".into(),
                message: "platform_to_crm and synced_teams are only used when mode is two_way".into(),
            });
        }
        let c = &self.click_to_call;
        if let Some(u) = &c.webhook_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            errors.push(err("click_to_call.webhook_url", "must be an http:// or https:// URL, or null"));
        }
        if c.webhook_url.is_some() && c.signing_secret.as_deref().is_none_or(|s| s.len() < 16) {
            errors.push(err(
                "click_to_call.signing_secret",
                "must be at least 16 characters when a webhook_url is set (the contact center checks the signature)",
            ));
        }
        self.ingest.validate(&mut errors, &mut warnings);
        if errors.is_empty() { Ok(warnings) } else { Err(errors) }
    }
}
