//! The customer, language and custom data a platform keeps in its own attributes (contact
//! attributes and tags, task attributes), read through the settings' mapping.

use serde_json::Value;

use super::facts::Facts;
use super::read::{member, text};
use crate::settings::ingest::Mapping;

/// Fills the customer, language and custom data from attribute objects (searched in order).
pub fn apply(facts: &mut Facts, m: &Mapping, sources: &[&Value]) {
    let find = |name: &str| sources.iter().find_map(|s| text(s, name).or_else(|| member(s, name).and_then(plain)));
    let set = |field: &str, slot: &mut Option<String>| {
        if slot.is_none()
            && let Some(name) = m.attribute(field)
        {
            *slot = find(name);
        }
    };
    set("phone", &mut facts.customer.phone);
    set("email", &mut facts.customer.email);
    set("user_id", &mut facts.customer.user_id);
    set("name", &mut facts.customer.name);
    set("language", &mut facts.language);
    for name in &m.custom_data {
        if let Some(v) = sources.iter().find_map(|s| member(s, name)) {
            facts.custom_data.insert(name.clone(), v.clone());
        }
    }
}

/// A value held as `{"ValueString": …}` (Amazon Connect segment attributes).
fn plain(v: &Value) -> Option<String> {
    text(v, "ValueString").or_else(|| text(v, "value"))
}
