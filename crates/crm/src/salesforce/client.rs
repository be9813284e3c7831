//! The way to one org: the OAuth 2.0 client-credentials token (or a given access token),
//! renewed once on 401 `INVALID_SESSION_ID`; every request through [`CrmHttp`]; the
//! `Sforce-Limit-Info` header read on every answer to pace before the org's allocation runs
//! out; 403 `REQUEST_LIMIT_EXCEEDED` as throttling; Salesforce's error arrays as [`CrmError`]s.

use std::sync::Mutex as SyncMutex;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::Mutex;

use super::config::SalesforceConfig;
use super::ledger::Ledger;
use crate::CrmError;
use crate::external::check_base_url;
use crate::http::{CrmHttp, HttpClient, bearer, wait_hint};

/// A token and the instance it is good for.
#[derive(Debug, Clone)]
pub struct Session {
    /// The access token.
    pub token: String,
    /// The instance's base address (no trailing slash).
    pub instance: String,
}

/// A CaseStatus row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseStatus {
    /// `ApiName`.
    pub name: String,
    /// Whether it closes a case.
    pub closed: bool,
    /// Whether new cases get it.
    pub default: bool,
}

/// A success answer: status and JSON body (`Null` for 204).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

/// The connector's shared state.
pub struct Sf {
    /// Paced, logged requests.
    pub http: CrmHttp,
    /// Plain client for recording downloads (not the CRM's requests).
    pub raw: HttpClient,
    /// Configuration.
    pub cfg: SalesforceConfig,
    session: Mutex<Option<Session>>,
    /// Whether the org has person accounts (probed once).
    pub person_accounts: SyncMutex<Option<bool>>,
    /// Case statuses (read once).
    pub statuses: Mutex<Option<Vec<CaseStatus>>>,
    /// What casebridge knows each case already holds (notes, files).
    pub ledger: SyncMutex<Ledger>,
}

/// One Salesforce error of an error array.
#[derive(Debug, Clone, Default)]
pub struct SfFault {
    /// `errorCode`.
    pub code: String,
    /// `message`.
    pub message: String,
    /// `fields`.
    pub fields: Vec<String>,
}

/// Reads Salesforce's error body: an array of `{message, errorCode, fields}`, or OAuth's
/// `{error, error_description}`.
pub fn faults(body: &str) -> Vec<SfFault> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(a)) => a
            .iter()
            .map(|e| SfFault {
                code: e["errorCode"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
                fields: e["fields"]
                    .as_array()
                    .map(|f| f.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            })
            .collect(),
        Ok(Value::Object(o)) if o.contains_key("error") => vec![SfFault {
            code: o["error"].as_str().unwrap_or_default().to_string(),
            message: o.get("error_description").and_then(Value::as_str).unwrap_or_default().to_string(),
            fields: vec![],
        }],
        _ => vec![],
    }
}

fn advice(code: &str) -> &'static str {
    match code {
        "INVALID_FIELD" | "INVALID_FIELD_FOR_INSERT_UPDATE" | "NO_SUCH_COLUMN" => {
            " Create the field in Setup (or fix the crm option that names it) and give the integration user read/edit access to it."
        }
        "INSUFFICIENT_ACCESS" | "INSUFFICIENT_ACCESS_OR_READONLY" | "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY" => {
            " Give the connected app's run-as user the permission (profile or permission set)."
        }
        "INVALID_TYPE" | "NOT_FOUND" => " Check that the object exists and the integration user can see it.",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" => " Use a value of the picklist, or add it in Setup.",
        "REQUIRED_FIELD_MISSING" => " Make the field optional, or give it a default value in Setup.",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION" => {
            " A validation rule refused the write: relax it for the integration user."
        }
        "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED" => " Give the run-as user the API Enabled permission.",
        _ => "",
    }
}

/// Reads a failed answer as a [`CrmError`]: throttling and server trouble are transient,
/// deleted or unknown ids are gone, everything else is a refusal with Salesforce's own words and
/// what to do.
pub fn sf_error(status: u16, headers: Option<&HeaderMap>, body: &str, what: &str, backoff: Duration) -> CrmError {
    let fs = faults(body);
    let first = fs.first().cloned().unwrap_or_default();
    let said = if fs.is_empty() {
        let b = body.trim();
        if b.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {}", b.chars().take(300).collect::<String>())
        }
    } else {
        fs.iter()
            .map(|f| {
                let on =
                    if f.fields.is_empty() { String::new() } else { format!(" (fields: {})", f.fields.join(", ")) };
                format!("{}: {}{on}", f.code, f.message)
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let message = format!("{what}: Salesforce answered {status} {said}");
    let wait = headers.and_then(wait_hint);
    match (status, first.code.as_str()) {
        (403, "REQUEST_LIMIT_EXCEEDED") => CrmError::Transient {
            message: format!("{message} (the org's API allocation or concurrency limit; waiting)"),
            retry_after: Some(wait.unwrap_or(backoff)),
        },
        // PROCESSING_HALTED: a composite subrequest that depended on one that failed.
        (
            _,
            "UNABLE_TO_LOCK_ROW"
            | "SERVER_UNAVAILABLE"
            | "REQUEST_RUNNING_TOO_LONG"
            | "QUERY_TIMEOUT"
            | "PROCESSING_HALTED",
        ) => CrmError::Transient { message, retry_after: wait },
        (408 | 429 | 500..=599, _) => CrmError::Transient { message, retry_after: wait },
        (_, "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY") | (404, _) => CrmError::Gone(message),
        (300, _) => CrmError::Permanent(format!(
            "{message}: several records carry this key; mark the key field Unique in Setup and merge the duplicates"
        )),
        (_, code) => CrmError::Permanent(format!("{}.{}", message.trim_end_matches('.'), advice(code))),
    }
}

/// Percent-encodes a path segment (an External ID value may hold `#`, `/`, `?`, spaces).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Quotes a SOQL string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `api-usage=N/M` of a `Sforce-Limit-Info` header.
pub fn api_usage(headers: &HeaderMap) -> Option<(u64, u64)> {
    let v = headers.get("sforce-limit-info")?.to_str().ok()?;
    let usage = v.split(',').find_map(|p| p.trim().strip_prefix("api-usage="))?;
    let (n, m) = usage.split_once('/')?;
    Some((n.trim().parse().ok()?, m.trim().parse().ok()?))
}

/// How long to hold requests at this usage of the allocation: nothing below 90 %, then longer
/// and longer pauses so the rest of the day's allocation is spread out rather than spent at once.
pub fn pace_for(used: u64, limit: u64) -> Option<Duration> {
    if limit == 0 {
        return None;
    }
    let pct = used.saturating_mul(100) / limit;
    match pct {
        0..=89 => None,
        90..=94 => Some(Duration::from_millis(250)),
        95..=98 => Some(Duration::from_secs(2)),
        _ => Some(Duration::from_secs(10)),
    }
}

impl Sf {
    /// The connector state for a configuration.
    pub fn new(http: CrmHttp, raw: HttpClient, cfg: SalesforceConfig) -> Sf {
        Sf {
            http,
            raw,
            cfg,
            session: Mutex::new(None),
            person_accounts: SyncMutex::new(None),
            statuses: Mutex::new(None),
            ledger: SyncMutex::new(Ledger::default()),
        }
    }

    /// `/services/data/vNN.N` + `rest`.
    pub fn data_path(&self, rest: &str) -> String {
        format!("/services/data/{}{rest}", self.cfg.api_version)
    }

    /// The current session, getting a token when there is none.
    pub async fn session(&self) -> Result<Session, CrmError> {
        let mut g = self.session.lock().await;
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        let s = self.fetch_session().await?;
        *g = Some(s.clone());
        Ok(s)
    }

    /// Forgets a token Salesforce refused (unless another caller renewed it already); false
    /// when there is no way to get another.
    pub async fn renew(&self, refused: &str) -> bool {
        if self.cfg.ext.credential("client_id").is_none() {
            return false;
        }
        let mut g = self.session.lock().await;
        if g.as_ref().is_some_and(|s| s.token == refused) {
            *g = None;
        }
        true
    }

    async fn fetch_session(&self) -> Result<Session, CrmError> {
        let base = self.cfg.ext.base_url.as_str().trim_end_matches('/').to_string();
        let (Some(id), Some(secret)) = (self.cfg.ext.credential("client_id"), self.cfg.ext.credential("client_secret"))
        else {
            return match self.cfg.ext.credential("access_token") {
                Some(t) => Ok(Session { token: t.to_string(), instance: base }),
                None => Err(CrmError::Permanent(
                    "crm.credentials: give client_id + client_secret, or an access_token".into(),
                )),
            };
        };
        let req = self.http.client().post(self.cfg.ext.url("/services/oauth2/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ]);
        let resp = self.http.send(req).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| CrmError::Transient {
            message: format!("Salesforce token answer cut short: {e}"),
            retry_after: None,
        })?;
        if !(200..300).contains(&status) {
            // OAuth refusals (400/401) are about the credentials; anything else (an outage, a
            // limit) is read like any other answer.
            if !matches!(status, 400 | 401) {
                let e = sf_error(status, Some(&headers), &body, "getting a Salesforce token", self.cfg.limit_backoff);
                if let CrmError::Transient { retry_after: Some(wait), .. } = &e {
                    self.http.pacer().hold_for(*wait).await;
                }
                return Err(e);
            }
            let f = faults(&body).into_iter().next().unwrap_or_default();
            return Err(CrmError::Permanent(format!(
                "Salesforce refused the client credentials ({status} {}: {}): check crm.credentials.client_id and \
                 client_secret (the connected app's consumer key and secret), and that the connected app enables the \
                 OAuth 2.0 client credentials flow with a run-as user",
                f.code, f.message
            )));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| CrmError::Transient {
            message: format!("Salesforce token answer unreadable: {e}"),
            retry_after: None,
        })?;
        let token = v["access_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| CrmError::Transient {
            message: "Salesforce token answer has no access_token".into(),
            retry_after: None,
        })?;
        // The instance address the token is for; one that is not https (or loopback) is not
        // trusted with the token, and the configured address is used instead.
        let instance = v["instance_url"]
            .as_str()
            .and_then(|u| check_base_url(u).ok())
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .unwrap_or(base);
        Ok(Session { token: token.to_string(), instance })
    }

    fn observe_limits(&self, headers: &HeaderMap) -> Option<Duration> {
        let (used, limit) = api_usage(headers)?;
        pace_for(used, limit)
    }

    /// Sends one request to the data API (`rest` after `/services/data/vNN.N`); renews the
    /// token once on 401. `Ok` is a 2xx answer; anything else is a [`CrmError`] for `what`.
    pub async fn call(
        &self,
        method: Method,
        rest: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Reply, CrmError> {
        let mut renewed = false;
        loop {
            let s = self.session().await?;
            let mut req = self
                .http
                .client()
                .request(method.clone(), format!("{}{}", s.instance, self.data_path(rest)))
                .header(reqwest::header::AUTHORIZATION, bearer(&s.token));
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = self.http.send(req).await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            if let Some(wait) = self.observe_limits(&headers) {
                self.http.pacer().hold_for(wait).await;
            }
            let text = resp.text().await.map_err(|e| CrmError::Transient {
                message: format!("{what}: answer cut short: {e}"),
                retry_after: None,
            })?;
            if (200..300).contains(&status) {
                let body = if text.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).map_err(|e| CrmError::Transient {
                        message: format!("{what}: unreadable answer: {e}"),
                        retry_after: None,
                    })?
                };
                return Ok(Reply { status, body });
            }
            if status == 401 && faults(&text).iter().any(|f| f.code == "INVALID_SESSION_ID") {
                if !renewed && self.renew(&s.token).await {
                    renewed = true;
                    continue;
                }
                return Err(CrmError::Permanent(format!(
                    "{what}: Salesforce refused the access token (401 INVALID_SESSION_ID). {}",
                    if self.cfg.ext.credential("client_id").is_some() {
                        "A fresh token was refused too: check the connected app's run-as user and its API Enabled permission"
                    } else {
                        "Give crm.credentials client_id + client_secret so casebridge can renew tokens, or a fresh access_token"
                    }
                )));
            }
            let e = sf_error(status, Some(&headers), &text, what, self.cfg.limit_backoff);
            if let CrmError::Transient { retry_after: Some(wait), .. } = &e
                && status == 403
            {
                metrics::counter!("casebridge_crm_throttled_total", "crm" => "salesforce").increment(1);
                self.http.pacer().hold_for(*wait).await;
            }
            return Err(e);
        }
    }

    /// Runs a SOQL query and follows `nextRecordsUrl` up to `max` records.
    pub async fn query(&self, soql: &str, max: usize, what: &str) -> Result<Vec<Value>, CrmError> {
        let first = self.call(Method::GET, "/query", &[("q", soql)], None, what).await?;
        let mut records = Vec::new();
        let mut page = first.body;
        loop {
            records.extend(page["records"].as_array().cloned().unwrap_or_default());
            let next = page["nextRecordsUrl"].as_str().map(str::to_string);
            match next {
                Some(url) if page["done"] == false && records.len() < max => {
                    let prefix = self.data_path("");
                    let rest = url.strip_prefix(&prefix).unwrap_or(&url).to_string();
                    page = self.call(Method::GET, &rest, &[], None, what).await?.body;
                }
                _ => break,
            }
        }
        records.truncate(max);
        Ok(records)
    }

    /// The org's case statuses (read once, then kept).
    pub async fn case_statuses(&self) -> Result<Vec<CaseStatus>, CrmError> {
        let mut g = self.statuses.lock().await;
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        let rows =
            self.query("SELECT ApiName, IsClosed, IsDefault FROM CaseStatus", 500, "reading the case statuses").await?;
        let list: Vec<CaseStatus> = rows
            .iter()
            .filter_map(|r| {
                Some(CaseStatus {
                    name: r["ApiName"].as_str()?.to_string(),
                    closed: r["IsClosed"].as_bool().unwrap_or(false),
                    default: r["IsDefault"].as_bool().unwrap_or(false),
                })
            })
            .collect();
        *g = Some(list.clone());
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_from_salesforce_arrays() {
        let limit = r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        let e = sf_error(403, None, limit, "x", Duration::from_secs(7));
        assert!(matches!(e, CrmError::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(7)));
        let field = r#"[{"message":"No such column 'A__c'","errorCode":"INVALID_FIELD","fields":["A__c"]}]"#;
        let e = sf_error(400, None, field, "creating the case", Duration::from_secs(1));
        assert!(matches!(&e, CrmError::Permanent(m) if m.contains("INVALID_FIELD") && m.contains("Create the field")));
        let gone = r#"[{"message":"entity is deleted","errorCode":"ENTITY_IS_DELETED"}]"#;
        assert!(matches!(sf_error(400, None, gone, "x", Duration::ZERO), CrmError::Gone(_)));
        assert!(matches!(sf_error(503, None, "", "x", Duration::ZERO), CrmError::Transient { .. }));
        assert!(
            matches!(sf_error(300, None, "[]", "x", Duration::ZERO), CrmError::Permanent(m) if m.contains("Unique"))
        );
    }

    #[test]
    fn limits_pace_near_the_allocation() {
        let mut h = HeaderMap::new();
        h.insert("sforce-limit-info", reqwest::header::HeaderValue::from_static("api-usage=95/100"));
        assert_eq!(api_usage(&h), Some((95, 100)));
        assert_eq!(pace_for(10, 100), None);
        assert!(pace_for(95, 100).is_some());
        assert!(pace_for(100, 100) > pace_for(91, 100));
    }

    #[test]
    fn encodings() {
        assert_eq!(seg("s1#3 a/b"), "s1%233%20a%2Fb");
        assert_eq!(quote("O'Neil\\"), "'O\\'Neil\\\\'");
    }
}
