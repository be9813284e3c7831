//! Customers: found by phone, email and external id (the app user id); created with
//! casebridge's key among their external ids, so that a replayed create is refused by
//! Kustomer's identifier uniqueness and the customer is then found by that key.

use casebridge_rules::model::{AccountHit, AccountKind, Answer};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::KustomerConnector;
use super::api::{attr, enc, id_of, object_id};
use crate::{CrmError, WriteOutcome};

/// The custom attribute (on customers) that keeps a phone's extension.
pub const EXTENSION_ATTRIBUTE: &str = "casebridgePhoneExtensionStr";

fn hit(c: &Value) -> Option<AccountHit> {
    let updated = attr(c, "updatedAt").as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    Some(AccountHit {
        id: id_of(c)?,
        kind: AccountKind::Contact,
        name: attr(c, "name").as_str().map(str::to_string),
        updated_at: updated.map(|t| t.with_timezone(&Utc)).unwrap_or_default(),
    })
}

/// Fields of one identifier list (`emails`, …) of a customer, as sent back on an update.
fn list_of(c: &Value, field: &str) -> Vec<Value> {
    attr(c, field).as_array().cloned().unwrap_or_default()
}

impl KustomerConnector {
    /// Customers holding an identifier: `by` is `phone`, `email` or `externalId`.
    pub(super) async fn customers_by(&self, by: &str, value: &str) -> Result<Vec<Value>, CrmError> {
        let reply =
            self.api.get(&format!("/customers/{by}={}", enc(value)), &format!("finding a customer by {by}")).await?;
        match reply.status {
            404 => Ok(Vec::new()),
            _ => Ok(match reply.data(&format!("finding a customer by {by}"))? {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                one => vec![one],
            }),
        }
    }

    /// Answers a customer lookup.
    pub(super) async fn find_customers(&self, by: &str, value: &str) -> Result<Answer, CrmError> {
        Ok(Answer::Accounts(self.customers_by(by, value).await?.iter().filter_map(hit).collect()))
    }

    /// `CreateAccount`: one POST; on a duplicate refusal, the customer casebridge already made
    /// (found by its key) or the one that already holds the identifier.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_customer(
        &self,
        key: &str,
        name: Option<&str>,
        phone: Option<&str>,
        extension: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<WriteOutcome, CrmError> {
        let mut external_ids = vec![json!({"externalId": key, "verified": false})];
        if let Some(u) = user_id {
            external_ids.push(json!({"externalId": u, "verified": true}));
        }
        let mut body = json!({
            "id": object_id(key, at.timestamp()),
            "name": name.unwrap_or(phone.or(email).unwrap_or("Unknown caller")),
            "externalIds": external_ids,
        });
        if let Some(u) = user_id {
            body["externalId"] = json!(u);
        }
        if let Some(p) = phone {
            body["phones"] = json!([{"type": "mobile", "phone": p}]);
        }
        if let Some(e) = email {
            body["emails"] = json!([{"type": "home", "email": e}]);
        }
        if let Some(x) = extension {
            body["custom"] = json!({EXTENSION_ATTRIBUTE: x});
        }
        let reply = self.api.post("/customers", &body, "creating a customer").await?;
        if reply.ok() {
            let id = reply.data("creating a customer").ok().as_ref().and_then(id_of).unwrap_or_default();
            return Ok(WriteOutcome {
                created: Some((key.to_string(), id.clone())),
                summary: format!("Customer {id} created"),
            });
        }
        if !reply.is_duplicate() {
            return Err(reply.error("creating a customer"));
        }
        // A replay meets the customer it made; a race meets the customer who has the identifier.
        if let Some(c) = self.customers_by("externalId", key).await?.first().and_then(id_of) {
            return Ok(WriteOutcome {
                created: Some((key.to_string(), c.clone())),
                summary: format!("Customer {c} already created (replay)"),
            });
        }
        for (by, v) in [("externalId", user_id), ("phone", phone), ("email", email)] {
            if let Some(v) = v
                && let Some(c) = self.customers_by(by, v).await?.first().and_then(id_of)
            {
                return Ok(WriteOutcome {
                    created: Some((key.to_string(), c.clone())),
                    summary: format!("Customer {c} already had this {by} in Kustomer: used instead of a second one"),
                });
            }
        }
        Err(reply.error("creating a customer"))
    }

    /// `UpdateAccount`: the name, and the email and app user id added to the customer's lists.
    pub(super) async fn update_customer(
        &self,
        id: &str,
        name: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<WriteOutcome, CrmError> {
        let mut body = json!({});
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        if email.is_some() || user_id.is_some() {
            let c =
                self.api.get(&format!("/customers/{id}"), "reading a customer").await?.data("reading a customer")?;
            if let Some(e) = email {
                let mut emails = list_of(&c, "emails");
                if !emails.iter().any(|x| x["email"].as_str().is_some_and(|y| y.eq_ignore_ascii_case(e))) {
                    emails.push(json!({"type": "home", "email": e}));
                    body["emails"] = Value::Array(emails);
                }
            }
            if let Some(u) = user_id {
                let mut ids = list_of(&c, "externalIds");
                if !ids.iter().any(|x| x["externalId"] == json!(u)) {
                    ids.push(json!({"externalId": u, "verified": true}));
                    body["externalIds"] = Value::Array(ids);
                }
            }
        }
        if body.as_object().is_some_and(|b| b.is_empty()) {
            return Ok(WriteOutcome { created: None, summary: format!("Customer {id} already up to date") });
        }
        let path = format!("/customers/{id}");
        let reply = self.api.patch(&path, &body, "updating a customer").await?;
        if reply.is_duplicate() {
            // Another customer holds the email or user id: keep the name change only.
            let name_only = json!({"name": body["name"]});
            if name.is_some() {
                self.api.patch(&path, &name_only, "updating a customer").await?.data("updating a customer")?;
            }
            return Ok(WriteOutcome {
                created: None,
                summary: format!(
                    "Customer {id} updated; its email or user id belongs to another Kustomer customer and was not added"
                ),
            });
        }
        reply.data("updating a customer")?;
        Ok(WriteOutcome { created: None, summary: format!("Customer {id} updated") })
    }

    /// `SetAccountFields`: custom attributes on the customer.
    pub(super) async fn set_customer_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, Value>,
    ) -> Result<WriteOutcome, CrmError> {
        let body = json!({"custom": fields});
        self.api
            .patch(&format!("/customers/{id}"), &body, "setting customer attributes")
            .await?
            .data("setting customer attributes")?;
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        Ok(WriteOutcome { created: None, summary: format!("Attributes {} set on customer {id}", names.join(", ")) })
    }
}
