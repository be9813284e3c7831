//! The optional TOML configuration file: the settings document plus a `[server]` table.

use std::path::{Path, PathBuf};

use casebridge_rules::event::FieldError;
use casebridge_rules::settings::{Settings, Warning, read_settings};
use serde::Deserialize;

/// Server options of the file's `[server]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// Address to bind.
    pub bind: Option<String>,
    /// Data folder for SQLite.
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL.
    pub database_url: Option<String>,
    /// Bearer token (prefer the CASEBRIDGE_API_TOKEN environment variable).
    pub api_token: Option<String>,
    /// Largest request body.
    pub max_body_bytes: Option<usize>,
}

/// A loaded configuration file.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    /// `[server]`.
    pub server: ServerOptions,
    /// The settings, when the file holds any.
    pub settings: Option<Settings>,
    /// Warnings of those settings.
    pub warnings: Vec<Warning>,
}

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    /// Not TOML or JSON.
    #[error("{0} is not valid {1}: {2}")]
    Syntax(String, &'static str, String),
    /// Invalid contents.
    #[error("{0} is invalid:\n{1}")]
    Invalid(String, String),
}

/// Every error of a settings document at once, the rules' and the CRM connection's, and the
/// warnings of a valid one.
pub fn validate(s: &Settings) -> Result<Vec<Warning>, Vec<FieldError>> {
    let rules = s.validate();
    let crm = casebridge_crm::ConnectorConfig::parse(&s.crm);
    match (rules, crm) {
        (Ok(mut w), Ok((_, crm_w))) => {
            w.extend(crm_w);
            Ok(w)
        }
        (rules, crm) => {
            let mut errors = rules.err().unwrap_or_default();
            errors.extend(crm.err().unwrap_or_default());
            Err(errors)
        }
    }
}

/// Reads and checks a settings document: its shape, its values and the CRM connection, every
/// error at once (a member with the wrong shape is not checked further). `saved` keeps the
/// saved secrets where the document sends back the redacted placeholder.
pub fn check_document(
    v: serde_json::Value,
    saved: Option<&Settings>,
) -> Result<(Settings, Vec<Warning>), Vec<FieldError>> {
    let (mut s, mut errors) = read_settings(v);
    if let Some(saved) = saved {
        s.keep_secrets_from(saved);
    }
    match validate(&s) {
        Ok(w) if errors.is_empty() => return Ok((s, w)),
        Ok(_) => {}
        Err(more) => {
            let shaped: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
            errors.extend(
                more.into_iter()
                    .filter(|e| !shaped.iter().any(|f| e.field == *f || e.field.starts_with(&format!("{f}.")))),
            );
        }
    }
    Err(errors)
}

/// The message for a `bind` that is not a socket address; `what` names where it was given.
pub fn bad_bind(what: &str, bind: &str) -> String {
    format!("{what} {bind:?} is not an address such as 127.0.0.1:8080")
}

/// Every error of a `[server]` table at once.
fn check_server(o: &ServerOptions) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let e = |f: &str, m: String| FieldError { field: f.into(), message: m };
    if let Some(b) = &o.bind
        && b.parse::<std::net::SocketAddr>().is_err()
    {
        errors.push(e("server.bind", bad_bind("server.bind", b)));
    }
    if o.max_body_bytes == Some(0) {
        errors.push(e("server.max_body_bytes", "must be a whole number of bytes, 1 or more".into()));
    }
    if let Some(u) = &o.database_url
        && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
    {
        errors.push(e(
            "server.database_url",
            format!("{u:?} must start with postgres:// or postgresql:// (for SQLite, set data_dir instead)"),
        ));
    }
    if o.data_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        errors.push(e("server.data_dir", "must not be empty".into()));
    }
    errors
}

/// Field errors as one line each, for a terminal.
pub fn describe(errors: &[FieldError]) -> String {
    list(errors)
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {}: {}", if e.field.is_empty() { "(document)" } else { &e.field }, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a settings or config file: JSON when it ends in `.json` (or starts with `{`), TOML otherwise.
pub fn read_document(path: &Path) -> Result<serde_json::Value, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io(name.clone(), e))?;
    let is_json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    if is_json {
        serde_json::from_str(&text).map_err(|e| ConfigError::Syntax(name, "JSON", e.to_string()))
    } else {
        let v: toml::Value =
            toml::from_str(&text).map_err(|e| ConfigError::Syntax(name.clone(), "TOML", e.to_string()))?;
        serde_json::to_value(v).map_err(|e| ConfigError::Syntax(name, "TOML", e.to_string()))
    }
}

/// Loads and validates a configuration file (server options and settings).
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let name = path.display().to_string();
    let mut doc = read_document(path)?;
    let mut out = ConfigFile::default();
    let mut errors = Vec::new();
    if let Some(obj) = doc.as_object_mut() {
        if let Some(server) = obj.remove("server") {
            match serde_json::from_value::<ServerOptions>(server) {
                Ok(o) => {
                    errors.extend(check_server(&o));
                    out.server = o;
                }
                Err(e) => errors.push(FieldError {
                    field: "server".into(),
                    message: format!(
                        "{}; the server options are bind, data_dir, database_url, api_token, max_body_bytes",
                        e.to_string().split(", expected").next().unwrap_or_default()
                    ),
                }),
            }
        }
        if !obj.is_empty() {
            match check_document(doc, None) {
                Ok((s, w)) => {
                    out.warnings = w;
                    out.settings = Some(s);
                }
                Err(e) => errors.extend(e),
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(ConfigError::Invalid(name, list(&errors))) }
}

/// Loads a settings document alone (for `simulate`); a `[server]` table is ignored.
pub fn load_settings(path: &Path) -> Result<(Settings, Vec<Warning>), ConfigError> {
    let c = load(path)?;
    Ok((c.settings.unwrap_or_default(), c.warnings))
}
