//! Native sources: which contact-center platforms post their own events here, their write-only
//! secrets, and the address to give each platform. Saves through `PATCH /v1/settings`.

use axum::Extension;
use axum::extract::{Form, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::admin::{notice_of, patch_settings};
use crate::console::render;
use crate::console::state::{Console, Viewer};

type Pairs = Vec<(String, String)>;

/// Each source: settings key, label, its secret's name, and the endpoints to configure.
const SOURCES: &[(&str, &str, &str, &[&str])] = &[
    (
        "amazon_connect",
        "Amazon Connect",
        "api_key",
        &["/v1/ingest/amazon-connect", "/v1/ingest/amazon-connect/sns", "/v1/ingest/amazon-connect/firehose"],
    ),
    ("twilio", "Twilio", "auth_token", &["/v1/ingest/twilio/taskrouter", "/v1/ingest/twilio/event-streams"]),
    ("genesys", "Genesys Cloud", "api_key", &["/v1/ingest/genesys"]),
    ("cti", "Generic CTI (PBX)", "token", &["/v1/ingest/cti/{token}"]),
];

fn view(ingest: &Value, errors: &Value) -> Value {
    let sources: Vec<Value> = SOURCES
        .iter()
        .map(|(key, label, secret, endpoints)| {
            let s = &ingest[*key];
            json!({
                "key": key, "label": label, "secret": secret, "endpoints": endpoints,
                "enabled": s["enabled"].as_bool().unwrap_or(false),
                "secret_set": s[*secret].as_str().is_some_and(|v| !v.is_empty()),
                "public_base_url": s["public_base_url"].as_str().unwrap_or(""),
                "doc": format!("docs/ingest/{}.md", key.replace('_', "-")),
            })
        })
        .collect();
    json!({"title": "Native sources", "sources": sources, "errors": errors})
}

/// `GET /sources`.
pub async fn page(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let ingest = serde_json::to_value(c.app.pipeline.settings().await.redacted().ingest).unwrap_or(Value::Null);
    render::page(&v, "sources.html", "sources", view(&ingest, &json!({})))
}

/// The `ingest` merge patch a submitted form means: enabled flags always, a secret only when
/// typed (an empty box keeps the saved one), Twilio's public address as given.
fn patch(form: &Pairs) -> Value {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string());
    let mut ingest = Map::new();
    for (key, _, secret, _) in SOURCES {
        let mut s = Map::new();
        s.insert("enabled".into(), json!(get(&format!("{key}.enabled")).is_some()));
        if let Some(v) = get(&format!("{key}.{secret}")).filter(|v| !v.is_empty()) {
            s.insert((*secret).into(), json!(v));
        }
        if *key == "twilio" {
            let url = get("twilio.public_base_url").unwrap_or_default();
            s.insert("public_base_url".into(), if url.is_empty() { Value::Null } else { json!(url) });
        }
        ingest.insert((*key).into(), Value::Object(s));
    }
    Value::Object(ingest)
}

/// `POST /sources`.
pub async fn save(State(c): State<Console>, Extension(v): Extension<Viewer>, Form(form): Form<Pairs>) -> Response {
    let a = patch_settings(&c, json!({"ingest": patch(&form)})).await;
    let ingest = serde_json::to_value(c.app.pipeline.settings().await.redacted().ingest).unwrap_or(Value::Null);
    let mut ctx = view(&ingest, &a.field_errors());
    ctx["notice"] = notice_of(&a);
    render::page(&v, "sources.html", "sources", ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_secret_box_keeps_the_saved_secret() {
        let form: Pairs = vec![
            ("cti.enabled".into(), "on".into()),
            ("cti.token".into(), "".into()),
            ("genesys.api_key".into(), "a-new-key-of-some-length".into()),
        ];
        let p = patch(&form);
        assert_eq!(p["cti"], json!({"enabled": true}));
        assert_eq!(p["genesys"], json!({"enabled": false, "api_key": "a-new-key-of-some-length"}));
        assert_eq!(p["twilio"]["public_base_url"], Value::Null);
    }
}
