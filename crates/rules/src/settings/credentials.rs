//! CRM credentials are write-only (api.md, "External CRMs"): shown as "set", and "set" sent
//! back keeps the saved value.

use super::{CREDENTIAL_SET, CrmSettings, REDACTED};

impl CrmSettings {
    /// Replaces every credential value by [`CREDENTIAL_SET`].
    pub(crate) fn redact_credentials(&mut self) {
        if let Some(serde_json::Value::Object(creds)) = self.options.get_mut("credentials") {
            for v in creds.values_mut() {
                if v.as_str().is_some_and(|x| !x.is_empty()) {
                    *v = serde_json::Value::String(CREDENTIAL_SET.into());
                }
            }
        }
    }

    /// Keeps the saved value of every credential sent back as [`CREDENTIAL_SET`].
    pub(crate) fn keep_credentials_from(&mut self, saved: &CrmSettings) {
        let saved_creds = saved.options.get("credentials").and_then(|v| v.as_object());
        if let Some(serde_json::Value::Object(creds)) = self.options.get_mut("credentials") {
            for (name, v) in creds.iter_mut() {
                if matches!(v.as_str(), Some(CREDENTIAL_SET | REDACTED))
                    && let Some(old) = saved_creds.and_then(|c| c.get(name))
                {
                    *v = old.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;

    #[test]
    fn credentials_show_as_set_and_set_keeps_the_saved_value() {
        let mut saved = Settings::default();
        saved.crm.kind = "kustomer".into();
        saved.crm.options.insert("credentials".into(), serde_json::json!({"api_key": "k-1"}));
        let shown = saved.redacted();
        assert_eq!(shown.crm.options["credentials"], serde_json::json!({"api_key": "set"}));
        let mut back = shown.clone();
        back.keep_secrets_from(&saved);
        assert_eq!(back.crm.options["credentials"], serde_json::json!({"api_key": "k-1"}));
        let mut changed = shown;
        changed.crm.options.insert("credentials".into(), serde_json::json!({"api_key": "k-2"}));
        changed.keep_secrets_from(&saved);
        assert_eq!(changed.crm.options["credentials"], serde_json::json!({"api_key": "k-2"}));
    }
}
