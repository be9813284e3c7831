//! `POST /v1/crm/test` for Kustomer (reachability, the API key, customers and conversations,
//! the queue attribute, statuses, agent status) and the custom attributes casebridge creates
//! through Kustomer's metadata API.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::KustomerConnector;
use crate::{Check, CrmError, FieldSpec};

/// How long read metadata is trusted while fields are being created.
const METADATA_FRESH: Duration = Duration::from_secs(10);

const KEY_HINT: &str = "create an API key in Kustomer (Settings > Security > API Keys) with the roles \
    org.permission.customer.*, org.permission.conversation.*, org.permission.note.*, \
    org.permission.user.read and org.permission.metadata.* and put it in crm.credentials.api_key";

impl KustomerConnector {
    async fn probe(&self, name: &str, path: &str, what: &str, fix: &str) -> Check {
        match self.api.get(path, what).await {
            Ok(r) if r.ok() => Check::pass(name, format!("{what}: ok")),
            Ok(r) => Check::fail(name, format!("{}; {fix}", r.error(what))),
            Err(e) => Check::fail(name, format!("{e}; {fix}")),
        }
    }

    /// The custom attribute metadata of a resource (`customer`, `conversation`).
    async fn properties(&self, resource: &str, fresh: bool) -> Result<Map<String, Value>, CrmError> {
        if fresh
            && let Some((at, props)) = self.metadata.lock().await.get(resource)
            && at.elapsed() < METADATA_FRESH
        {
            return Ok(props.clone());
        }
        let what = format!("reading {resource} attribute metadata");
        let data = self.api.get(&format!("/metadata/{resource}"), &what).await?.data(&what)?;
        let props = data.pointer("/attributes/properties").and_then(Value::as_object).cloned().unwrap_or_default();
        self.metadata.lock().await.insert(resource.to_string(), (tokio::time::Instant::now(), props.clone()));
        Ok(props)
    }

    /// Creates a custom attribute's metadata (display name) unless it exists; true if created.
    pub(super) async fn ensure_attribute(&self, f: &FieldSpec) -> Result<bool, CrmError> {
        let resource = if f.object == "account" { "customer" } else { "conversation" };
        if self.properties(resource, true).await?.contains_key(&f.name) {
            return Ok(false);
        }
        let body = json!({"properties": {&f.name: {"displayName": f.label}}});
        let what = format!("creating the {resource} attribute {}", f.name);
        match self.api.put(&format!("/metadata/{resource}"), &body, &what).await {
            Ok(r) if r.ok() => {
                let props = r.body.pointer("/data/attributes/properties").and_then(Value::as_object).cloned();
                let mut cache = self.metadata.lock().await;
                let entry =
                    cache.entry(resource.to_string()).or_insert_with(|| (tokio::time::Instant::now(), Map::new()));
                match props {
                    Some(p) => entry.1 = p,
                    None => {
                        entry.1.insert(f.name.clone(), json!({"displayName": f.label}));
                    }
                }
                Ok(true)
            }
            Ok(r) => Err(r.error(&what)),
            Err(CrmError::Permanent(m)) if m.contains("may not do this") => Err(CrmError::Permanent(format!(
                "the Kustomer API key may not create custom attributes ({m}); give it org.permission.metadata.update \
                 (or org.admin.metadata.write), or create {} on the {resource} klass in Kustomer's settings",
                f.name
            ))),
            Err(e) => Err(e),
        }
    }
}

/// Every check, in order.
pub(super) async fn run(c: &KustomerConnector) -> Vec<Check> {
    let mut checks = Vec::new();
    match c.api.get("/users/current", "reading the API key's user").await {
        Ok(r) if r.ok() => {
            checks.push(Check::pass("reachable", c.api.config().ext.base_url.to_string()));
            let name = r.body.pointer("/data/attributes/name").and_then(Value::as_str).unwrap_or("the key's user");
            checks.push(Check::pass("credentials", format!("the API key is accepted ({name})")));
        }
        Ok(r) => {
            checks.push(Check::pass("reachable", c.api.config().ext.base_url.to_string()));
            checks.push(Check::fail("credentials", format!("{}; {KEY_HINT}", r.error("reading the API key's user"))));
            return checks;
        }
        Err(CrmError::Permanent(m)) => {
            checks.push(Check::pass("reachable", c.api.config().ext.base_url.to_string()));
            checks.push(Check::fail("credentials", format!("{m}; {KEY_HINT}")));
            return checks;
        }
        Err(e) => {
            checks.push(Check::fail(
                "reachable",
                format!("{e}; check crm.base_url (https://{{org}}.api.kustomerapp.com) and the network"),
            ));
            return checks;
        }
    }
    let role = |r: &str| format!("give the API key {r}");
    checks.push(
        c.probe("object customer", "/customers?pageSize=1", "listing customers", &role("org.permission.customer.read"))
            .await,
    );
    checks.push(
        c.probe(
            "object conversation",
            "/conversations?pageSize=1",
            "listing conversations",
            &role("org.permission.conversation.read"),
        )
        .await,
    );
    checks.push(
        c.probe(
            "users",
            "/users?pageSize=1",
            "listing users (for conversation owners)",
            &role("org.permission.user.read"),
        )
        .await,
    );
    let cfg = c.api.config();
    let attr = format!("field {}", cfg.queue_attribute);
    checks.push(match c.properties("conversation", false).await {
        Ok(p) if p.contains_key(&cfg.queue_attribute) => {
            Check::pass(attr, "the leaf-queue attribute has metadata on conversations")
        }
        Ok(_) => Check::pass(
            attr,
            format!(
                "Kustomer stores {} without metadata; give it a display name under Settings > Platform > Klasses > Conversation \
                 to show it to agents",
                cfg.queue_attribute
            ),
        ),
        Err(e) => Check::fail(attr, format!("{e}; {}", role("org.permission.metadata.read"))),
    });
    let closed: Vec<&str> = super::config::STATUSES.iter().copied().filter(|s| !cfg.is_open(s)).collect();
    checks.push(Check::pass(
        "statuses",
        format!(
            "open: {}; closed: {}; reopened to {}",
            cfg.open_statuses.join(", "),
            if closed.is_empty() { "none".to_string() } else { closed.join(", ") },
            cfg.default_open_status
        ),
    ));
    checks.push(Check::pass(
        "agent status",
        "Kustomer's API cannot set a user's status: statuses reported from Kustomer (POST /v1/crm/agent-status) are \
         followed, platform statuses are not pushed into Kustomer",
    ));
    checks
}
