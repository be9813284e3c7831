//! The catalog of standard custom fields (behaviour.md §11) and their values for a session.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::event::SessionType;
use crate::session::Session;

/// Where a standard field lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FieldLevel {
    /// On the person.
    Account,
    /// On the record.
    Record,
}

/// One standard field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CatalogField {
    /// casebridge's key for it.
    pub key: &'static str,
    /// Account or record.
    pub level: FieldLevel,
    /// Label shown in the CRM.
    pub label: &'static str,
    /// `text` or `number`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

const fn f(key: &'static str, level: FieldLevel, label: &'static str, kind: &'static str) -> CatalogField {
    CatalogField { key, level, label, kind }
}

/// Every standard field, account level first.
pub const CATALOG: &[CatalogField] = &[
    f("custom_user_id", FieldLevel::Account, "Custom user ID", "text"),
    f("queue_name", FieldLevel::Record, "Queue name", "text"),
    f("session_type", FieldLevel::Record, "Session type", "text"),
    f("session_id", FieldLevel::Record, "Session ID", "text"),
    f("sender_phone_number", FieldLevel::Record, "Sender phone number", "text"),
    f("call_duration", FieldLevel::Record, "Call duration (s)", "number"),
    f("hold_time", FieldLevel::Record, "Hold time (s)", "number"),
    f("wait_time", FieldLevel::Record, "Wait time (s)", "number"),
    f("csat_score", FieldLevel::Record, "CSAT score", "number"),
    f("csat_comment", FieldLevel::Record, "CSAT comment", "text"),
    f("customer_menu_selection", FieldLevel::Record, "Customer menu selection", "text"),
    f("web_sdk_email", FieldLevel::Record, "Email sent from the web SDK", "text"),
];

/// Other names administrators use for some fields.
const ALIASES: &[(&str, &str)] = &[
    ("sender_phone", "sender_phone_number"),
    ("menu_selection", "customer_menu_selection"),
    ("email_sent_from_web_sdk", "web_sdk_email"),
    ("user_id", "custom_user_id"),
];

/// The catalog entry of a key (or of one of its other names).
pub fn catalog_field(key: &str) -> Option<&'static CatalogField> {
    let key = ALIASES.iter().find(|(a, _)| *a == key).map(|(_, k)| *k).unwrap_or(key);
    CATALOG.iter().find(|c| c.key == key)
}

fn web(t: Option<SessionType>) -> bool {
    t.is_some_and(|t| t.as_str().ends_with("_web"))
}

/// Values of the record-level standard fields known for a session so far.
pub fn record_values(s: &Session) -> BTreeMap<&'static str, Value> {
    let mut v = BTreeMap::new();
    if let Some(q) = s.queue_path.last() {
        v.insert("queue_name", json!(q));
    }
    if let Some(t) = s.session_type {
        v.insert("session_type", json!(t.as_str()));
    }
    v.insert("session_id", json!(s.id));
    if let Some(p) = s.phone.as_ref().map(|p| p.number.clone()).or_else(|| s.customer.phone.clone()) {
        v.insert("sender_phone_number", json!(p));
    }
    if let Some(d) = s.duration_s {
        v.insert("call_duration", json!(d));
    }
    if let Some(h) = s.hold_s {
        v.insert("hold_time", json!(h));
    }
    if let Some(w) = s.wait_s {
        v.insert("wait_time", json!(w));
    }
    if let Some(c) = s.csat_score {
        v.insert("csat_score", json!(c));
    }
    if let Some(c) = &s.csat_comment {
        v.insert("csat_comment", json!(c));
    }
    if let Some(m) = s.leaf_queue() {
        v.insert("customer_menu_selection", json!(m));
    }
    if web(s.session_type)
        && let Some(e) = &s.customer.email
    {
        v.insert("web_sdk_email", json!(e));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_keys_are_unique_and_complete() {
        let mut keys: Vec<_> = CATALOG.iter().map(|c| c.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 12);
        assert_eq!(CATALOG.iter().filter(|c| c.level == FieldLevel::Account).count(), 1);
    }
}
