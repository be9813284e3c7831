//! Finding people and their cases: SOSL on the phone's national digits across Contacts,
//! unconverted Leads and person Accounts (person accounts probed once: orgs without them refuse
//! `IsPersonAccount`); email and app user id by SOQL, several objects in one composite call;
//! a person's cases by SOQL on `ContactId` or `AccountId`.

use casebridge_rules::event::Channel;
use casebridge_rules::model::{AccountHit, AccountKind, Answer, ObjRef, RecordInfo};
use casebridge_rules::phone::Phone;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Sf, quote, seg, sf_error};
use crate::{CrmError, CrmLookup};

/// Cases read per person at most.
const MAX_CASES: usize = 500;

/// Reads a Salesforce datetime (`2026-11-20T10:00:00.000+0000`) or an RFC 3339 one.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The object a Salesforce id belongs to, by its key prefix.
pub fn object_of(id: &str) -> Option<&'static str> {
    match id.get(..3)? {
        "003" => Some("Contact"),
        "00Q" => Some("Lead"),
        "001" => Some("Account"),
        "500" => Some("Case"),
        "00T" => Some("Task"),
        _ => None,
    }
}

/// `Case.Origin` for a channel.
pub fn origin(channel: Channel) -> &'static str {
    match channel {
        Channel::Voice | Channel::Voicemail => "Phone",
        Channel::Chat => "Chat",
    }
}

fn channel_of(origin: &str) -> Option<Channel> {
    match origin {
        "Phone" => Some(Channel::Voice),
        "Chat" | "Web" => Some(Channel::Chat),
        _ => None,
    }
}

fn hit(r: &Value) -> Option<AccountHit> {
    let kind = match r["attributes"]["type"].as_str()? {
        "Contact" => AccountKind::Contact,
        "Lead" => AccountKind::Lead,
        "Account" => AccountKind::PersonAccount,
        _ => return None,
    };
    Some(AccountHit {
        id: r["Id"].as_str()?.to_string(),
        kind,
        name: r["Name"].as_str().map(str::to_string),
        updated_at: parse_time(&r["LastModifiedDate"]).unwrap_or_default(),
    })
}

fn mentions_person_accounts(e: &CrmError) -> bool {
    matches!(e, CrmError::Permanent(m) if m.contains("IsPersonAccount") || m.contains("PersonEmail"))
}

impl Sf {
    fn person_accounts_maybe(&self) -> bool {
        self.person_accounts.lock().map(|g| g.unwrap_or(true)).unwrap_or(true)
    }

    fn set_person_accounts(&self, on: bool) {
        if let Ok(mut g) = self.person_accounts.lock() {
            *g = Some(on);
        }
    }

    /// Answers a lookup.
    pub async fn lookup(&self, lookup: &CrmLookup) -> Result<Answer, CrmError> {
        match lookup {
            CrmLookup::AccountsByPhone(p) => self.by_phone(p).await.map(Answer::Accounts),
            CrmLookup::AccountsByEmail(e) => {
                let e = quote(&e.to_lowercase());
                self.by_fields(
                    &[
                        ("Contact", format!("Email = {e}")),
                        ("Lead", format!("Email = {e} AND IsConverted = false")),
                        ("Account", format!("PersonEmail = {e} AND IsPersonAccount = true")),
                    ],
                    "looking up people by email",
                )
                .await
                .map(Answer::Accounts)
            }
            CrmLookup::AccountsByUserId(u) => match &self.cfg.user_id_field {
                // Without a field to hold app user ids, nobody can be found by one.
                None => Ok(Answer::Accounts(vec![])),
                Some(f) => {
                    let u = quote(u);
                    self.by_fields(
                        &[("Contact", format!("{f} = {u}")), ("Lead", format!("{f} = {u} AND IsConverted = false"))],
                        "looking up people by app user id",
                    )
                    .await
                    .map(Answer::Accounts)
                }
            },
            CrmLookup::RecordsOfAccount(id) => self.cases_of(id).await.map(Answer::Records),
        }
    }

    async fn by_phone(&self, phone: &str) -> Result<Vec<AccountHit>, CrmError> {
        let p = Phone::parse(phone, "US");
        let digits = p.national_digits.unwrap_or_else(|| phone.chars().filter(char::is_ascii_digit).collect());
        if digits.len() < 2 {
            return Ok(vec![]);
        }
        let base = format!(
            "FIND {{{digits}}} IN PHONE FIELDS RETURNING Contact(Id, Name, LastModifiedDate), \
             Lead(Id, Name, LastModifiedDate WHERE IsConverted = false)"
        );
        let with_accounts = self.person_accounts_maybe();
        let q = if with_accounts {
            format!("{base}, Account(Id, Name, LastModifiedDate WHERE IsPersonAccount = true)")
        } else {
            base.clone()
        };
        let reply = match self.call(Method::GET, "/search", &[("q", &q)], None, "looking up people by phone").await {
            Ok(r) => {
                if with_accounts {
                    self.set_person_accounts(true);
                }
                r
            }
            Err(e) if with_accounts && mentions_person_accounts(&e) => {
                self.set_person_accounts(false);
                self.call(Method::GET, "/search", &[("q", &base)], None, "looking up people by phone").await?
            }
            Err(e) => return Err(e),
        };
        Ok(reply.body["searchRecords"].as_array().map(|a| a.iter().filter_map(hit).collect()).unwrap_or_default())
    }

    /// Runs one query per object (`Id, Name, LastModifiedDate` where `cond`) in one composite
    /// call; the Account query is left out, or dropped, when the org has no person accounts.
    async fn by_fields(&self, per_object: &[(&str, String)], what: &str) -> Result<Vec<AccountHit>, CrmError> {
        let with_accounts = self.person_accounts_maybe();
        let subs: Vec<(&str, Value)> = per_object
            .iter()
            .filter(|(o, _)| *o != "Account" || with_accounts)
            .map(|(o, cond)| {
                let soql = format!("SELECT Id, Name, LastModifiedDate FROM {o} WHERE {cond}");
                let url = format!("{}?q={}", self.data_path("/query"), seg(&soql));
                (*o, json!({"method": "GET", "url": url, "referenceId": format!("q{o}")}))
            })
            .collect();
        let body =
            json!({"allOrNone": false, "compositeRequest": subs.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>()});
        let reply = self.call(Method::POST, "/composite", &[], Some(&body), what).await?;
        let mut hits = Vec::new();
        let answers = reply.body["compositeResponse"].as_array().cloned().unwrap_or_default();
        for ((obj, _), a) in subs.iter().zip(answers.iter()) {
            let status = a["httpStatusCode"].as_u64().unwrap_or(500) as u16;
            if (200..300).contains(&status) {
                if *obj == "Account" {
                    self.set_person_accounts(true);
                }
                hits.extend(a["body"]["records"].as_array().into_iter().flatten().filter_map(hit));
                continue;
            }
            let e = sf_error(status, None, &a["body"].to_string(), what, self.cfg.limit_backoff);
            if *obj == "Account" && mentions_person_accounts(&e) {
                self.set_person_accounts(false);
                continue;
            }
            return Err(e);
        }
        Ok(hits)
    }

    async fn cases_of(&self, person: &str) -> Result<Vec<RecordInfo>, CrmError> {
        let field = match object_of(person) {
            Some("Contact") => "ContactId",
            Some("Account") => "AccountId",
            // Cases have no Lead lookup: a Lead has no cases to append to.
            _ => return Ok(vec![]),
        };
        let queue = self.cfg.queue_field.as_ref().map(|q| format!(", {q}")).unwrap_or_default();
        let soql = format!(
            "SELECT Id, Status, IsClosed, ClosedDate, CreatedDate, Origin{queue} FROM Case WHERE {field} = {} \
             ORDER BY CreatedDate DESC LIMIT {MAX_CASES}",
            quote(person)
        );
        let rows = self.query(&soql, MAX_CASES, "reading the person's cases").await?;
        let open = self.cfg.ext.open_statuses.as_ref();
        Ok(rows
            .iter()
            .filter_map(|r| {
                let status = r["Status"].as_str().unwrap_or_default().to_string();
                let is_closed = match open {
                    Some(list) => !list.iter().any(|s| s.eq_ignore_ascii_case(&status)),
                    None => r["IsClosed"].as_bool().unwrap_or(false),
                };
                Some(RecordInfo {
                    id: ObjRef::Crm(r["Id"].as_str()?.to_string()),
                    leaf_queue: self.cfg.queue_field.as_ref().and_then(|q| r[q.as_str()].as_str()).map(str::to_string),
                    channel: r["Origin"].as_str().and_then(channel_of),
                    status,
                    is_closed,
                    closed_at: parse_time(&r["ClosedDate"]),
                    created_at: parse_time(&r["CreatedDate"]).unwrap_or_default(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_ids_and_origins() {
        let t = parse_time(&json!("2026-11-20T10:00:00.000+0000")).map(|t| t.to_rfc3339());
        assert_eq!(t.as_deref(), Some("2026-11-20T10:00:00+00:00"));
        assert_eq!(object_of("003FK0000000001AAA"), Some("Contact"));
        assert_eq!(object_of("00QFK0000000001AAA"), Some("Lead"));
        assert_eq!(channel_of(origin(Channel::Chat)), Some(Channel::Chat));
    }
}
