//! What an admin sees: `POST /v1/crm/test` (token, objects, the key, tags, queue and user id
//! fields, person accounts, case statuses, API usage, each failure with its fix) and the
//! standard custom fields created through the Tooling API.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Sf, sf_error};
use crate::{Check, CrmError, FieldSpec};

/// The API name casebridge gives a standard field: `Casebridge_Csat_Score__c`.
pub fn field_name(key: &str) -> String {
    let words: Vec<String> = key
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect();
    format!("Casebridge_{}__c", words.join("_"))
}

fn field_names(describe: &Value) -> Vec<(String, bool)> {
    describe["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["name"].as_str()?.to_string(), f["externalId"].as_bool().unwrap_or(false))))
        .collect()
}

impl Sf {
    /// The checks of `POST /v1/crm/test`.
    pub async fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        match self.session().await {
            Ok(s) => {
                let how = if self.cfg.ext.credential("client_id").is_some() {
                    "token obtained with the client credentials flow"
                } else {
                    "access token given"
                };
                out.push(Check::pass("credentials", format!("{how}; instance {}", s.instance)));
            }
            Err(CrmError::Transient { message, .. }) => {
                out.push(Check::fail(
                    "reachable",
                    format!("{message}: check crm.base_url (the org's My Domain address) and the network"),
                ));
                return out;
            }
            Err(e) => {
                out.push(Check::fail("credentials", e.to_string()));
                return out;
            }
        }
        let objects = ["Contact", "Lead", "Case", "Task", "Account"];
        let mut subs: Vec<Value> = objects
            .iter()
            .map(|o| json!({"method": "GET", "url": self.data_path(&format!("/sobjects/{o}/describe")), "referenceId": o}))
            .collect();
        subs.push(
            json!({"method": "GET", "referenceId": "statuses", "url": format!("{}?q={}", self.data_path("/query"),
            super::client::seg("SELECT ApiName, IsClosed, IsDefault FROM CaseStatus"))}),
        );
        let body = json!({"allOrNone": false, "compositeRequest": subs});
        let reply = match self.call(Method::POST, "/composite", &[], Some(&body), "describing the objects").await {
            Ok(r) => r,
            Err(e) => {
                out.push(Check::fail("reachable", e.to_string()));
                return out;
            }
        };
        out.insert(0, Check::pass("reachable", format!("{} answers", self.cfg.ext.base_url)));
        let answers = reply.body["compositeResponse"].as_array().cloned().unwrap_or_default();
        let answer = |r: &str| answers.iter().find(|a| a["referenceId"] == r).cloned().unwrap_or_default();
        let ok = |a: &Value| a["httpStatusCode"].as_u64().is_some_and(|s| (200..300).contains(&s));
        let kf = &self.cfg.key_field;
        let mut described = std::collections::BTreeMap::new();
        for o in ["Contact", "Lead", "Case", "Task"] {
            let a = answer(o);
            if !ok(&a) {
                let e = sf_error(
                    a["httpStatusCode"].as_u64().unwrap_or(500) as u16,
                    None,
                    &a["body"].to_string(),
                    &format!("describing {o}"),
                    self.cfg.limit_backoff,
                );
                out.push(Check::fail(
                    format!("object {o}"),
                    format!("{e}. The run-as user needs read, create and edit on {o}"),
                ));
                continue;
            }
            let fields = field_names(&a["body"]);
            match fields.iter().find(|(n, _)| n == kf) {
                Some((_, true)) => out.push(Check::pass(format!("object {o}"), format!("{kf} is an External ID"))),
                Some((_, false)) => out.push(Check::fail(
                    format!("object {o}"),
                    format!("{kf} exists on {o} but is not an External ID: edit the field in Setup, tick External ID and Unique"),
                )),
                None => out.push(Check::fail(
                    format!("object {o}"),
                    format!("{o} has no field {kf} the integration user can see: create a Text(255) field {kf} on {o}, \
                             External ID and Unique, and give the run-as user edit access to it"),
                )),
            }
            described.insert(o, fields);
        }
        let has = |o: &str, f: &str| described.get(o).is_some_and(|fs| fs.iter().any(|(n, _)| n == f));
        if described.contains_key("Task") && !has("Task", "CallObject") {
            out.push(Check::fail(
                "call fields",
                "Task has no CallObject/CallDisposition for the run-as user: these come with Salesforce CRM Call Center; \
                 give the user a call center or the fields' access",
            ));
        }
        let mut optional = |name: &str, field: &Option<String>, objects: &[&str], purpose: &str, unset: &str| {
            match field {
                None => out.push(Check::pass(name, unset.to_string())),
                Some(f) => {
                    let missing: Vec<&str> = objects.iter().copied().filter(|o| !has(o, f)).collect();
                    if missing.is_empty() {
                        out.push(Check::pass(name, format!("{f} holds {purpose}")));
                    } else {
                        out.push(Check::fail(
                        name,
                        format!("{f} is missing on {}: create it (Text, or a multi-select picklist for tags) and give the run-as user edit access", missing.join(", ")),
                    ));
                    }
                }
            }
        };
        optional(
            "tags field",
            &self.cfg.tags_field,
            &["Case"],
            "the case's tags (semicolon-separated)",
            "not set: Salesforce cases have no tags, so none are written (set crm.tags_field, e.g. Casebridge_Tags__c)",
        );
        optional(
            "queue field",
            &self.cfg.queue_field,
            &["Case"],
            "the case's originating leaf queue",
            "not set: \"append to the latest open record in the same leaf queue\" cannot match any case; set crm.queue_field (e.g. Casebridge_Queue__c, Text 255 on Case)",
        );
        optional(
            "user id field",
            &self.cfg.user_id_field,
            &["Contact", "Lead"],
            "the app user id",
            "not set: people are not looked up by app user id (set crm.user_id_field to a Text field on Contact and Lead)",
        );
        let account = answer("Account");
        let person = ok(&account) && field_names(&account["body"]).iter().any(|(n, _)| n == "IsPersonAccount");
        if let Ok(mut g) = self.person_accounts.lock() {
            *g = Some(person);
        }
        out.push(Check::pass(
            "person accounts",
            if person {
                "enabled: searched by phone and email with Contacts and Leads"
            } else {
                "not enabled in this org: Contacts and Leads only"
            },
        ));
        let st = answer("statuses");
        if ok(&st) {
            let rows = st["body"]["records"].as_array().cloned().unwrap_or_default();
            let names = |closed: bool| -> Vec<String> {
                rows.iter()
                    .filter(|r| r["IsClosed"].as_bool() == Some(closed))
                    .filter_map(|r| r["ApiName"].as_str().map(str::to_string))
                    .collect()
            };
            let default =
                rows.iter().find(|r| r["IsDefault"] == true).and_then(|r| r["ApiName"].as_str()).unwrap_or("(none)");
            let (open, closed) = (names(false), names(true));
            out.push(Check::pass(
                "statuses",
                format!(
                    "closed: {}; open: {}; new and reopened cases get {}",
                    closed.join(", "),
                    open.join(", "),
                    self.cfg.ext.default_open_status.as_deref().unwrap_or(default)
                ),
            ));
            let mut wanted: Vec<&String> = self.cfg.ext.open_statuses.iter().flatten().collect();
            wanted.extend(self.cfg.ext.default_open_status.iter());
            for w in wanted {
                if !open.iter().any(|o| o.eq_ignore_ascii_case(w)) {
                    out.push(Check::fail(
                        "statuses",
                        format!("{w:?} (crm.open_statuses / crm.default_open_status) is not an open Case status of this org: use one of {}", open.join(", ")),
                    ));
                }
            }
        } else {
            out.push(Check::fail("statuses", "CaseStatus cannot be read: give the run-as user read access to cases"));
        }
        match self.call(Method::GET, "/limits", &[], None, "reading the API limits").await {
            Ok(r) => {
                let max = r.body["DailyApiRequests"]["Max"].as_u64().unwrap_or(0);
                let left = r.body["DailyApiRequests"]["Remaining"].as_u64().unwrap_or(0);
                let detail = format!("{} of {max} API requests used in the last 24 hours", max.saturating_sub(left));
                out.push(if max > 0 && left * 10 < max {
                    Check::fail(
                        "api usage",
                        format!("{detail}: casebridge slows down near the limit; raise the org's allocation"),
                    )
                } else {
                    Check::pass("api usage", detail)
                });
            }
            Err(e) => out.push(Check::fail("api usage", e.to_string())),
        }
        out.push(Check::pass(
            "agent status",
            "statuses reported from Salesforce reach casebridge; Salesforce offers no API to set Omni-Channel presence, so casebridge's statuses are not pushed into it",
        ));
        out
    }

    /// Creates a standard custom field (on Case, or on Contact and Lead) through the Tooling
    /// API; true when any was created.
    pub async fn ensure_field(&self, f: &FieldSpec) -> Result<bool, CrmError> {
        let objects: &[&str] = if f.object == "account" { &["Contact", "Lead"] } else { &["Case"] };
        let metadata = if f.kind == "number" {
            json!({"label": f.label, "type": "Number", "precision": 18, "scale": 2})
        } else {
            json!({"label": f.label, "type": "Text", "length": 255})
        };
        let mut created = false;
        for o in objects {
            let full = format!("{o}.{}", f.name);
            let body = json!({"FullName": full, "Metadata": metadata});
            match self
                .call(
                    Method::POST,
                    "/tooling/sobjects/CustomField",
                    &[],
                    Some(&body),
                    &format!("creating field {full}"),
                )
                .await
            {
                Ok(_) => created = true,
                Err(CrmError::Permanent(m)) if m.contains("DUPLICATE_DEVELOPER_NAME") => {}
                Err(CrmError::Permanent(m)) if m.contains("INSUFFICIENT_ACCESS") || m.contains(" 403 ") => {
                    return Err(CrmError::Permanent(format!(
                        "{m}. The run-as user cannot create fields: grant it Customize Application, or create {full} ({}) in Setup yourself",
                        if f.kind == "number" { "Number(16, 2)" } else { "Text(255)" }
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_fields_get_salesforce_names() {
        assert_eq!(field_name("csat_score"), "Casebridge_Csat_Score__c");
        assert_eq!(field_name("customer_menu_selection"), "Casebridge_Customer_Menu_Selection__c");
        assert!(super::super::config::is_custom_field_name(&field_name("web_sdk_email")));
    }
}
