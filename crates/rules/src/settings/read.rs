//! Reads a settings document member by member against its shape, so that every mistake is
//! reported at once, in plain words, with the allowed values; the members in error are taken
//! out, so that what is left deserializes (each at its default) and can be checked further.

use serde_json::{Map, Value};

use super::Settings;
use crate::event::FieldError;

/// What one member may hold.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// true or false.
    Bool,
    /// A string.
    Text,
    /// A string, or null (meaning given).
    OptText(&'static str),
    /// A whole number of `unit` between `min` and `max`, or null when `null` says what it means.
    Count { unit: &'static str, min: u32, max: u32, null: Option<&'static str> },
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A list of strings.
    Texts,
    /// An object of names to strings.
    TextMap,
    /// An object with these members.
    Section(&'static [(&'static str, Kind)]),
    /// An object with a string `kind` and the kind's own options (checked by the connector).
    Crm,
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

fn join(parent: &str, k: &str) -> String {
    if parent.is_empty() { k.to_string() } else { format!("{parent}.{k}") }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The message for a value `kind` refuses.
fn expected(kind: Kind) -> String {
    match kind {
        Kind::Bool => "must be true or false".into(),
        Kind::Text => "must be a string".into(),
        Kind::OptText(null) => format!("must be a string, or null {null}"),
        Kind::Count { unit, min, max, null } => {
            let range = if max == u32::MAX {
                format!("must be a whole number of {unit}, {min} or more")
            } else {
                format!("must be a whole number of {unit} between {min} and {max}")
            };
            match null {
                Some(n) => format!("{range}, or null {n}"),
                None => range,
            }
        }
        Kind::Choice(values) => format!("must be one of: {}", values.join(", ")),
        Kind::Texts => "must be a list of strings".into(),
        Kind::TextMap => "must be an object of names to strings".into(),
        Kind::Section(members) => format!(
            "must be an object with the members {}",
            members.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
        ),
        Kind::Crm => "must be an object with a kind (such as \"builtin\") and the kind's options".into(),
    }
}

/// Checks `v` at `path` against `kind`, recording errors. Returns false when the value must be
/// taken out (it is refused, or null where null is not allowed: the member takes its default).
pub fn check(path: &str, kind: Kind, v: &mut Value, errors: &mut Vec<FieldError>) -> bool {
    let got = describe(v);
    let refuse = |errors: &mut Vec<FieldError>| {
        errors.push(err(path, format!("{} (got {got})", expected(kind))));
        false
    };
    match (kind, &mut *v) {
        (Kind::OptText(_), Value::Null) => true,
        (Kind::Count { null: Some(_), .. }, Value::Null) => true,
        (_, Value::Null) => false,
        (Kind::Bool, Value::Bool(_)) | (Kind::Text | Kind::OptText(_), Value::String(_)) => true,
        (Kind::Count { min, max, .. }, Value::Number(n)) => match n.as_u64() {
            Some(x) if x >= u64::from(min) && x <= u64::from(max) => true,
            _ => refuse(errors),
        },
        (Kind::Choice(values), Value::String(s)) if values.contains(&s.as_str()) => true,
        (Kind::Texts, Value::Array(items)) => {
            let before = errors.len();
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    errors.push(err(&format!("{path}[{i}]"), format!("must be a string (got {})", describe(item))));
                }
            }
            errors.len() == before
        }
        (Kind::TextMap, Value::Object(m)) => {
            let before = errors.len();
            for (k, item) in m.iter() {
                if !item.is_string() {
                    errors.push(err(&join(path, k), format!("must be a string (got {})", describe(item))));
                }
            }
            errors.len() == before
        }
        (Kind::Section(members), Value::Object(m)) => {
            section(path, members, m, errors);
            true
        }
        (Kind::Crm, Value::Object(m)) => match m.get("kind") {
            None | Some(Value::String(_)) => true,
            Some(other) => {
                errors.push(err(
                    &join(path, "kind"),
                    format!("must be a string such as \"builtin\" (got {})", describe(other)),
                ));
                m.remove("kind");
                true
            }
        },
        _ => refuse(errors),
    }
}

/// Checks the members of an object against a section's members, taking out the refused ones.
pub fn section(path: &str, members: &[(&str, Kind)], m: &mut Map<String, Value>, errors: &mut Vec<FieldError>) {
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        let field = join(path, &k);
        let Some((_, kind)) = members.iter().find(|(name, _)| *name == k) else {
            let known = members.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
            let here = if path.is_empty() { String::new() } else { format!(" in {path}") };
            errors.push(err(&field, format!("unknown setting; known settings{here}: {known}")));
            m.remove(&k);
            continue;
        };
        let keep = m.get_mut(&k).is_some_and(|v| check(&field, *kind, v, errors));
        if !keep {
            m.remove(&k);
        }
    }
}

/// The shape of the document, member by member, for [`read_settings`].
const SHAPE: &[(&str, Kind)] = &[
    ("region", Kind::Text),
    ("time_zone", Kind::Text),
    ("crm", Kind::Crm),
    ("own_numbers", Kind::Texts),
    (
        "accounts",
        Kind::Section(&[
            ("skip_lookup", Kind::Bool),
            ("skip_creation", Kind::Bool),
            ("multiple_match", Kind::Choice(&["most_recent", "priority"])),
            ("never_create_for", Kind::Texts),
        ]),
    ),
    (
        "records",
        Kind::Section(&[
            ("skip_creation", Kind::Bool),
            ("append_to_open_in_leaf_queue", Kind::Bool),
            ("append_requires_same_channel", Kind::Bool),
            (
                "append_to_closed_within_days",
                Kind::Count { unit: "days", min: 0, max: u32::MAX, null: Some("to never reopen closed records") },
            ),
            ("delay_call_until_connected", Kind::Bool),
            (
                "delay_chat_until_customer_messages",
                Kind::Count { unit: "messages", min: 0, max: u32::MAX, null: Some("for no delay") },
            ),
            ("abandoned_calls", Kind::Bool),
            (
                "abandoned_chats",
                Kind::Section(&[
                    ("mode", Kind::Choice(&["off", "all", "min_customer_messages"])),
                    (
                        "min_customer_messages",
                        Kind::Count {
                            unit: "messages",
                            min: 0,
                            max: u32::MAX,
                            null: Some("when mode is not min_customer_messages"),
                        },
                    ),
                ]),
            ),
            ("chat_short_abandon_seconds", Kind::Count { unit: "seconds", min: 0, max: 86400, null: None }),
            ("title_template", Kind::Text),
            ("tag_session_type", Kind::Bool),
            ("tag_platform", Kind::Bool),
            ("platform_tag", Kind::Text),
            ("default_open_status", Kind::OptText("for the CRM's default open status")),
            ("default_owner", Kind::OptText("for no default owner")),
        ]),
    ),
    (
        "session_data",
        Kind::Section(&[
            ("target", Kind::Choice(&["activity", "session_object"])),
            ("unrecorded_session_link", Kind::Choice(&["account", "latest_record", "none"])),
            ("attach_recordings", Kind::Bool),
        ]),
    ),
    (
        "call_logging",
        Kind::Section(&[
            ("dispositions_enabled", Kind::Bool),
            ("unmatched_caller", Kind::Choice(&["contact", "lead", "none"])),
        ]),
    ),
    (
        "agent_status",
        Kind::Section(&[
            ("mode", Kind::Choice(AGENT_STATUS_MODES)),
            ("priority", Kind::Choice(AGENT_STATUS_PRIORITIES)),
            ("platform_statuses", Kind::Texts),
            ("crm_to_platform", Kind::TextMap),
            ("platform_to_crm", Kind::TextMap),
            ("synced_teams", Kind::Texts),
            ("hold_while_busy", Kind::Bool),
            (
                "instance_ttl_minutes",
                Kind::Count { unit: "minutes", min: 0, max: u32::MAX, null: Some("to keep instances until closed") },
            ),
        ]),
    ),
    ("custom_data_mapping", Kind::TextMap),
    (
        "click_to_call",
        Kind::Section(&[
            ("webhook_url", Kind::OptText("for no click-to-call")),
            ("signing_secret", Kind::OptText("for none")),
        ]),
    ),
    ("ingest", INGEST),
];

const MAPPING: Kind = Kind::Section(&[
    ("queues", Kind::TextMap),
    ("agents", Kind::TextMap),
    ("attributes", Kind::TextMap),
    ("custom_data", Kind::Texts),
]);

/// The shape of the `ingest` member (settings/ingest.rs).
const INGEST: Kind = Kind::Section(&[
    (
        "amazon_connect",
        Kind::Section(&[
            ("enabled", Kind::Bool),
            ("api_key", Kind::OptText("for no key (only the API bearer token is accepted)")),
            ("sns_topic_arns", Kind::Texts),
            ("mapping", MAPPING),
        ]),
    ),
    (
        "twilio",
        Kind::Section(&[
            ("enabled", Kind::Bool),
            ("auth_token", Kind::OptText("for no signature check (only the API bearer token is accepted)")),
            ("public_base_url", Kind::OptText("to check signatures over the request URL")),
            ("mapping", MAPPING),
        ]),
    ),
    (
        "genesys",
        Kind::Section(&[
            ("enabled", Kind::Bool),
            ("api_key", Kind::OptText("for no key (only the API bearer token is accepted)")),
            ("mapping", MAPPING),
        ]),
    ),
    (
        "cti",
        Kind::Section(&[
            ("enabled", Kind::Bool),
            ("token", Kind::OptText("for no token (only the API bearer token is accepted)")),
            ("blocked_numbers", Kind::Texts),
            ("mapping", MAPPING),
        ]),
    ),
]);

/// agent_status.mode values.
pub(super) const AGENT_STATUS_MODES: &[&str] = &["off", "one_way", "two_way"];
/// agent_status.priority values.
pub(super) const AGENT_STATUS_PRIORITIES: &[&str] = &["latest_wins", "crm_overrides"];

/// Reads a settings document (JSON value) member by member, missing members taking their
/// defaults: the settings, with every member in error at its default, and every error found
/// (all of them at once, in plain words). Null stands for a member's default.
pub fn read_settings(mut v: serde_json::Value) -> (Settings, Vec<FieldError>) {
    let serde_json::Value::Object(map) = &mut v else {
        return (Settings::default(), vec![err("", "the settings document must be a JSON object")]);
    };
    let mut errors = Vec::new();
    section("", SHAPE, map, &mut errors);
    match serde_json::from_value(v) {
        Ok(s) => (s, errors),
        Err(e) => {
            // The shape above and the types disagree: a bug, reported rather than hidden.
            errors.push(err("", format!("the settings document could not be read: {e}")));
            (Settings::default(), errors)
        }
    }
}

/// Parses a settings document (JSON value), missing keys taking defaults; every error of its
/// shape at once. [`Settings::validate`] checks the values further.
pub fn parse_settings(v: serde_json::Value) -> Result<Settings, Vec<FieldError>> {
    let (s, errors) = read_settings(v);
    if errors.is_empty() { Ok(s) } else { Err(errors) }
}
