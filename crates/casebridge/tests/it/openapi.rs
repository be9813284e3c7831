//! The OpenAPI document describes every body: clients generate code from it.

use serde_json::Value;

use crate::harness::Server;

/// Every route the API serves, by method.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/nodes"),
    ("post", "/v1/events"),
    ("get", "/v1/sessions"),
    ("get", "/v1/sessions/{id}"),
    ("post", "/v1/sessions/{id}/wrapup"),
    ("get", "/v1/settings"),
    ("put", "/v1/settings"),
    ("patch", "/v1/settings"),
    ("get", "/v1/settings/history"),
    ("post", "/v1/settings/history/{id}/restore"),
    ("post", "/v1/crm/accounts"),
    ("get", "/v1/crm/accounts"),
    ("get", "/v1/crm/accounts/{id}"),
    ("post", "/v1/crm/records"),
    ("get", "/v1/crm/records"),
    ("get", "/v1/crm/records/{id}"),
    ("patch", "/v1/crm/records/{id}"),
    ("get", "/v1/crm/attachments/{id}"),
    ("get", "/v1/crm/agent-statuses"),
    ("post", "/v1/crm/agent-status"),
    ("get", "/v1/crm/custom-fields"),
    ("post", "/v1/crm/custom-fields"),
    ("get", "/v1/activities"),
    ("get", "/v1/dispositions"),
    ("post", "/v1/dispositions"),
    ("patch", "/v1/dispositions/{code}"),
    ("get", "/v1/reports/dispositions"),
    ("get", "/v1/reports/abandoned"),
    ("put", "/v1/agents/{id}"),
    ("get", "/v1/agents/{id}"),
    ("put", "/v1/agents/{id}/context"),
    ("delete", "/v1/agents/{id}/context/{instance_id}"),
    ("put", "/v1/agents/{id}/status"),
    ("post", "/v1/agents/{id}/dial"),
    ("get", "/v1/dial-requests/{id}"),
    ("get", "/v1/outbox"),
    ("post", "/v1/outbox/{id}/retry"),
    ("post", "/v1/outbox/retry"),
    ("post", "/v1/crm/test"),
    ("post", "/v1/ingest/amazon-connect"),
    ("post", "/v1/ingest/amazon-connect/sns"),
    ("post", "/v1/ingest/amazon-connect/firehose"),
    ("post", "/v1/ingest/twilio/taskrouter"),
    ("post", "/v1/ingest/twilio/event-streams"),
    ("post", "/v1/ingest/genesys"),
    ("post", "/v1/ingest/cti/{token}"),
];

/// Follows `$ref`s into the components.
fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        s = &doc["components"]["schemas"][name];
        assert!(s.is_object(), "dangling reference {r}");
    }
    s
}

/// A schema that says nothing about its members: `{}` or a bare object.
fn free_form(doc: &Value, s: &Value) -> bool {
    let s = resolve(doc, s);
    let structured = ["properties", "oneOf", "anyOf", "allOf", "items", "enum"].iter().any(|k| s.get(*k).is_some());
    let ty = s.get("type");
    !structured && (ty.is_none() || ty == Some(&Value::from("object")))
}

#[tokio::test]
async fn every_body_has_a_schema() {
    let s = Server::start().await;
    let doc = s.get("/openapi.json").await;
    let mut problems = Vec::new();
    for (method, path) in OPERATIONS {
        if !doc["paths"][path][method].is_object() {
            problems.push(format!("{} {path} is not documented", method.to_uppercase()));
        }
    }
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object().cloned().unwrap_or_default();
                if content.is_empty() {
                    problems.push(format!("{name}: request body without content"));
                }
                for (ty, c) in &content {
                    if c.get("schema").is_none_or(|sc| free_form(&doc, sc)) {
                        problems.push(format!("{name}: request body {ty} has no real schema"));
                    }
                }
            }
            for (status, resp) in op["responses"].as_object().unwrap() {
                // 204 is the only success without a body; the API has none today.
                if !status.starts_with('2') || status == "204" {
                    continue;
                }
                let content = resp["content"].as_object().cloned().unwrap_or_default();
                if content.is_empty() {
                    problems.push(format!("{name}: {status} response has no content schema"));
                }
                for (ty, c) in &content {
                    match c.get("schema") {
                        Some(sc) if resolve(&doc, sc).as_object().is_some_and(|o| !o.is_empty()) => {}
                        _ => problems.push(format!("{name}: {status} response {ty} has no schema")),
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "the OpenAPI document does not describe the API:\n{}", problems.join("\n"));

    // Plain-text answers say so.
    let text = |p: &str| doc["paths"][p]["get"]["responses"]["200"]["content"]["text/plain"]["schema"]["type"].clone();
    assert_eq!(text("/metrics"), "string");
    assert_eq!(text("/v1/crm/attachments/{id}"), "string");
    // POST /v1/events takes one event or an array, or NDJSON.
    let events = &doc["paths"]["/v1/events"]["post"]["requestBody"]["content"];
    let one_of = resolve(&doc, &events["application/json"]["schema"])["oneOf"].as_array().cloned().unwrap_or_default();
    assert_eq!(one_of.len(), 2, "{events}");
    assert!(one_of.iter().any(|s| s["type"] == "array"), "{events}");
    assert!(events["application/x-ndjson"].is_object(), "{events}");
    // Shared wire types are components.
    for c in ["Event", "EventKind", "Settings", "WrapupIn", "WrapupOut", "SessionOut", "RecordOut", "AgentOut"] {
        assert!(doc["components"]["schemas"][c].is_object(), "component {c} missing");
    }
}
