//! Secrets in the stored settings (CRM credentials, signing secrets, ingest keys) are sealed
//! with AES-256-GCM when `CASEBRIDGE_SECRET_KEY` is set: the database and its backups then
//! hold no usable credential. The key is derived from the variable with SHA-256, so any long
//! random string works (e.g. `openssl rand -base64 32`).

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Prefix of a sealed value.
const SEALED: &str = "sealed:v1:";

/// Seals and opens the secrets of a settings document.
pub struct Sealer {
    cipher: Option<Aes256Gcm>,
}

/// Reads a stored settings document: secrets opened, then parsed.
pub fn stored_settings(sealer: &Sealer, text: &str) -> anyhow::Result<casebridge_rules::settings::Settings> {
    let mut doc: Value = serde_json::from_str(text)?;
    sealer.open(&mut doc).map_err(|e| anyhow::anyhow!("stored settings: {e}"))?;
    casebridge_rules::settings::parse_settings(doc)
        .map_err(|e| anyhow::anyhow!("stored settings are unreadable: {e:?}"))
}

impl Sealer {
    /// A sealer keyed by `secret` (none: values are stored as given).
    pub fn new(secret: Option<&str>) -> Sealer {
        let cipher = secret.filter(|s| !s.is_empty()).map(|s| {
            let key = Sha256::digest(s.as_bytes());
            Aes256Gcm::new(&key)
        });
        Sealer { cipher }
    }

    /// Whether values are sealed.
    pub fn enabled(&self) -> bool {
        self.cipher.is_some()
    }

    /// Seals every secret of `doc` in place (values already sealed stay as they are).
    pub fn seal(&self, doc: &mut Value) {
        let Some(c) = &self.cipher else { return };
        for_each_secret(doc, &mut |v| {
            if let Value::String(s) = v
                && !s.is_empty()
                && !s.starts_with(SEALED)
            {
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                if let Ok(ct) = c.encrypt(&nonce, s.as_bytes()) {
                    let mut out = nonce.to_vec();
                    out.extend(ct);
                    *s = format!("{SEALED}{}", STANDARD.encode(out));
                }
            }
            Ok(())
        })
        .unwrap_or(());
    }

    /// Opens every sealed secret of `doc` in place; fails (naming the field) when a value is
    /// sealed and the key is missing or another.
    pub fn open(&self, doc: &mut Value) -> Result<(), String> {
        for_each_secret(doc, &mut |v| {
            let Value::String(s) = v else { return Ok(()) };
            let Some(b64) = s.strip_prefix(SEALED) else { return Ok(()) };
            let Some(c) = &self.cipher else {
                return Err(
                    "is sealed, and CASEBRIDGE_SECRET_KEY is not set: start with the key it was sealed with".into()
                );
            };
            let raw =
                STANDARD.decode(b64).map_err(|_| "is a damaged sealed value: save the credential again".to_string())?;
            if raw.len() < 12 {
                return Err("is a damaged sealed value: save the credential again".into());
            }
            let (nonce, ct) = raw.split_at(12);
            let plain = c.decrypt(Nonce::from_slice(nonce), ct).map_err(|_| {
                "cannot be opened with this CASEBRIDGE_SECRET_KEY: start with the key it was sealed with".to_string()
            })?;
            *s = String::from_utf8(plain)
                .map_err(|_| "is a damaged sealed value: save the credential again".to_string())?;
            Ok(())
        })
    }
}

/// Calls `f` on every secret value of a settings document; the first error names its path.
fn for_each_secret(doc: &mut Value, f: &mut dyn FnMut(&mut Value) -> Result<(), String>) -> Result<(), String> {
    if let Some(Value::Object(creds)) = doc.pointer_mut("/crm/credentials") {
        for (k, v) in creds.iter_mut() {
            f(v).map_err(|e| format!("crm.credentials.{k} {e}"))?;
        }
    }
    if let Some(v) = doc.pointer_mut("/click_to_call/signing_secret") {
        f(v).map_err(|e| format!("click_to_call.signing_secret {e}"))?;
    }
    if let Some(Value::Object(sources)) = doc.pointer_mut("/ingest") {
        for (source, cfg) in sources.iter_mut() {
            if let Value::Object(cfg) = cfg {
                for name in ["api_key", "auth_token", "token", "secret"] {
                    if let Some(v) = cfg.get_mut(name) {
                        f(v).map_err(|e| format!("ingest.{source}.{name} {e}"))?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_sealed_and_opened_and_nothing_else_changes() {
        let plain = serde_json::json!({"crm": {"kind": "kustomer", "base_url": "https://a.example.com",
            "credentials": {"api_key": "k-123"}}, "click_to_call": {"signing_secret": "s3"}, "region": "US"});
        let s = Sealer::new(Some("a long random string"));
        let mut doc = plain.clone();
        s.seal(&mut doc);
        let key = doc["crm"]["credentials"]["api_key"].as_str().unwrap_or_default().to_string();
        assert!(key.starts_with(SEALED) && !key.contains("k-123"), "{doc}");
        assert_eq!(doc["crm"]["base_url"], plain["crm"]["base_url"]);
        let mut twice = doc.clone();
        s.seal(&mut twice);
        assert_eq!(twice, doc, "sealing is not applied twice");
        assert_eq!(s.open(&mut doc), Ok(()));
        assert_eq!(doc, plain);
    }

    #[test]
    fn a_missing_or_other_key_is_named() {
        let mut doc = serde_json::json!({"crm": {"credentials": {"api_key": "k"}}});
        Sealer::new(Some("one")).seal(&mut doc);
        let other = Sealer::new(Some("two")).open(&mut doc.clone()).err().unwrap_or_default();
        assert!(other.starts_with("crm.credentials.api_key cannot be opened"), "{other}");
        let none = Sealer::new(None).open(&mut doc).err().unwrap_or_default();
        assert!(none.contains("CASEBRIDGE_SECRET_KEY is not set"), "{none}");
    }
}
