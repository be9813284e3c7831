//! Administration pages besides the rules: the CRM connection, dispositions, the agent
//! status mapping and custom fields. Each saves through the API's own handler.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value, json};

use crate::console::call::{Answer, answer, body, via_router};
use crate::console::render;
use crate::console::state::{Console, Viewer};

type Pairs = Vec<(String, String)>;

fn get<'a>(form: &'a Pairs, k: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Saves a settings merge patch through `PATCH /v1/settings`'s handler.
pub(crate) async fn patch_settings(c: &Console, patch: Value) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/merge-patch+json"));
    let raw = Ok(Bytes::from(patch.to_string()));
    answer(crate::api::settings::patch_settings(State(c.app.clone()), headers, raw).await).await
}

/// A notice for a save: what changed, or why it was refused.
pub(crate) fn notice_of(a: &Answer) -> Value {
    if a.ok() {
        let changed: Vec<&str> = a.body["changed"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let text = if changed.is_empty() {
            "Nothing changed.".into()
        } else {
            format!("Saved. Changed: {}.", changed.join(", "))
        };
        json!({"ok": true, "text": text})
    } else {
        json!({"ok": false, "text": format!("Not saved: {}", a.detail())})
    }
}

/// The credentials each connector kind takes (api.md "External CRMs"); write-only.
fn credential_names(kind: &str) -> &'static [&'static str] {
    match kind {
        "salesforce" => &["client_id", "client_secret", "access_token"],
        "zendesk" => &["email", "api_token"],
        "kustomer" | "freshdesk" => &["api_key"],
        "servicenow" => &["username", "password"],
        "webhook" => &["secret"],
        _ => &[],
    }
}

/// Options of an external connector besides its base URL and credentials.
const CRM_OPTIONS: &[(&str, &str)] = &[
    ("rate_limit_per_minute", "Requests a minute at most (empty: the vendor's default)"),
    ("open_statuses", "Statuses that count as open, comma-separated (empty: the vendor's)"),
    ("default_open_status", "Status a reopened record gets (empty: the vendor's default)"),
    ("key_field", "Field holding casebridge's key (external id)"),
    ("tags_field", "Field holding tags, where the CRM has no tags"),
    ("api_version", "API version (empty: the connector's)"),
];

fn crm_view(crm: &Value, errors: &Value) -> Value {
    let kinds: Vec<Value> = casebridge_crm::registry::KINDS
        .iter()
        .map(|k| {
            let creds: Vec<Value> = credential_names(k)
                .iter()
                .map(|n| json!({"name": n, "set": crm["credentials"][*n].as_str().is_some_and(|s| !s.is_empty())}))
                .collect();
            json!({"kind": k, "credentials": creds})
        })
        .collect();
    let options: Vec<Value> = CRM_OPTIONS
        .iter()
        .map(|(k, label)| {
            let v = &crm[*k];
            let text = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                other => other.to_string(),
            };
            json!({"name": k, "label": label, "value": text})
        })
        .collect();
    json!({"kinds": kinds, "kind": crm["kind"], "base_url": crm["base_url"], "options": options, "errors": errors})
}

/// `GET /crm`.
pub async fn crm_page(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let s = c.app.pipeline.settings().await.redacted();
    let crm = serde_json::to_value(&s.crm).unwrap_or(Value::Null);
    let mut ctx = crm_view(&crm, &json!({}));
    ctx["title"] = json!("CRM connection");
    ctx["running"] = json!(c.app.pipeline.crm().kind());
    render::page(&v, "crm.html", "crm", ctx)
}

/// The `crm` member a submitted form means; every option the saved one has and the form does
/// not is removed (null), so switching kinds leaves nothing of the other kind behind.
fn crm_patch(form: &Pairs, saved: &Value) -> Value {
    let kind = get(form, "kind").unwrap_or("builtin").trim().to_string();
    let mut crm = Map::new();
    crm.insert("kind".into(), json!(kind));
    if kind != "builtin" {
        if let Some(u) = get(form, "base_url").map(str::trim).filter(|u| !u.is_empty()) {
            crm.insert("base_url".into(), json!(u));
        }
        let mut creds = Map::new();
        for n in credential_names(&kind) {
            let typed = get(form, &format!("credentials.{n}")).unwrap_or("").trim();
            let stored = saved["kind"].as_str() == Some(kind.as_str()) && saved["credentials"][*n].is_string();
            if !typed.is_empty() {
                creds.insert((*n).into(), json!(typed));
            } else if stored {
                // api.md: sending "set" keeps the stored credential.
                creds.insert((*n).into(), json!("set"));
            }
        }
        if !creds.is_empty() {
            crm.insert("credentials".into(), Value::Object(creds));
        }
        for (k, _) in CRM_OPTIONS {
            let t = get(form, k).unwrap_or("").trim();
            if t.is_empty() {
                continue;
            }
            let v = match *k {
                "rate_limit_per_minute" => t.parse::<u64>().map_or_else(|_| json!(t), |n| json!(n)),
                "open_statuses" => json!(t.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>()),
                _ => json!(t),
            };
            crm.insert((*k).into(), v);
        }
    }
    // Switching kinds leaves nothing of the other kind behind; on the same kind, a field of
    // this form left empty is removed, and options the form does not show (a kind's own,
    // such as Salesforce's queue_field or Kustomer's agent_users) are kept.
    let same_kind = saved["kind"].as_str() == Some(kind.as_str());
    let on_form = |k: &str| k == "base_url" || k == "credentials" || CRM_OPTIONS.iter().any(|(o, _)| *o == k);
    for k in saved.as_object().into_iter().flat_map(|o| o.keys()) {
        if !crm.contains_key(k) && (!same_kind || on_form(k)) {
            crm.insert(k.clone(), Value::Null);
        }
    }
    Value::Object(crm)
}

/// `POST /crm`: saves the connection through `PATCH /v1/settings`.
pub async fn crm_save(State(c): State<Console>, Extension(v): Extension<Viewer>, Form(form): Form<Pairs>) -> Response {
    let saved = serde_json::to_value(&c.app.pipeline.settings().await.redacted().crm).unwrap_or(Value::Null);
    let patch = crm_patch(&form, &saved);
    let a = patch_settings(&c, json!({"crm": patch})).await;
    let crm = if a.ok() { a.body["crm"].clone() } else { patch.clone() };
    let mut ctx = crm_view(&crm, &a.field_errors());
    ctx["title"] = json!("CRM connection");
    ctx["running"] = json!(c.app.pipeline.crm().kind());
    ctx["notice"] = notice_of(&a);
    render::page(&v, "crm.html", "crm", ctx)
}

/// `POST /crm/test`: `POST /v1/crm/test` through the API, its checks as a list.
pub async fn crm_test(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let a = via_router(&c, "POST", "/v1/crm/test", Some(json!({}))).await;
    let ctx = if a.ok() {
        json!({"ok": a.body["ok"], "checks": a.body["checks"]})
    } else if a.status.as_u16() == 404 {
        json!({"ok": false, "checks": [], "error": "This build has no connection test (POST /v1/crm/test answered 404)."})
    } else {
        json!({"ok": false, "checks": a.body["checks"], "error": a.detail()})
    };
    render::page(&v, "crm_test.html", "crm", ctx)
}

/// `GET /dispositions`.
pub async fn dispositions(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    dispositions_page(&c, &v, None, json!({})).await
}

async fn dispositions_page(c: &Console, v: &Viewer, notice: Option<Value>, errors: Value) -> Response {
    let q = axum::extract::Query(crate::api::dispositions::DispositionQuery { active: None });
    let list = answer(crate::api::dispositions::list_dispositions(State(c.app.clone()), q).await).await;
    let enabled = c.app.pipeline.settings().await.call_logging.dispositions_enabled;
    let ctx = json!({"title": "Dispositions", "dispositions": list.or(json!({}))["dispositions"],
                     "notice": notice, "errors": errors, "enabled": enabled});
    render::page(v, "dispositions.html", "dispositions", ctx)
}

/// `POST /dispositions`: a new code.
pub async fn disposition_create(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Form(form): Form<Pairs>,
) -> Response {
    let input = json!({"code": get(&form, "code").unwrap_or(""), "label": get(&form, "label").unwrap_or("")});
    let a = answer(crate::api::dispositions::create_disposition(State(c.app.clone()), body(input)).await).await;
    let notice = if a.ok() {
        json!({"ok": true, "text": format!("Added {}.", a.body["code"].as_str().unwrap_or(""))})
    } else {
        json!({"ok": false, "text": format!("Not added: {}", a.detail())})
    };
    dispositions_page(&c, &v, Some(notice), a.field_errors()).await
}

/// `POST /dispositions/{code}`: a new label, or (de)activation.
pub async fn disposition_update(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Path(code): Path<String>,
    Form(form): Form<Pairs>,
) -> Response {
    let mut input = json!({});
    if let Some(l) = get(&form, "label") {
        input["label"] = json!(l);
    }
    if let Some(a) = get(&form, "active") {
        input["active"] = json!(a == "true");
    }
    let a = answer(
        crate::api::dispositions::patch_disposition(State(c.app.clone()), Path(code.clone()), body(input)).await,
    )
    .await;
    let notice = if a.ok() {
        json!({"ok": true, "text": format!("Updated {code}.")})
    } else {
        json!({"ok": false, "text": format!("Not updated: {}", a.detail())})
    };
    dispositions_page(&c, &v, Some(notice), a.field_errors()).await
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// `a = b` lines into an object.
fn pairs_of(s: &str) -> Map<String, Value> {
    lines(s)
        .into_iter()
        .filter_map(|l| l.split_once('=').map(|(a, b)| (a.trim().to_string(), json!(b.trim()))))
        .collect()
}

fn pairs_text(v: &Value) -> String {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k} = {}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn statuses_view(a: &Value) -> Value {
    json!({
        "mode": a["mode"], "priority": a["priority"], "hold_while_busy": a["hold_while_busy"],
        "platform_statuses": a["platform_statuses"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"),
        "crm_to_platform": pairs_text(&a["crm_to_platform"]),
        "platform_to_crm": pairs_text(&a["platform_to_crm"]),
        "synced_teams": a["synced_teams"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"),
        "instance_ttl_minutes": a["instance_ttl_minutes"],
    })
}

/// `GET /agent-statuses`.
pub async fn statuses(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let s = serde_json::to_value(&c.app.pipeline.settings().await.agent_status).unwrap_or(Value::Null);
    let warnings = crate::config::validate(&*c.app.pipeline.settings().await).unwrap_or_default();
    let warnings: Vec<Value> = warnings
        .iter()
        .filter(|w| w.field.starts_with("agent_status"))
        .map(|w| json!(format!("{}: {}", w.field, w.message)))
        .collect();
    let ctx = json!({"title": "Agent status mapping", "s": statuses_view(&s), "warnings": warnings, "errors": {}});
    render::page(&v, "statuses.html", "statuses", ctx)
}

/// `POST /agent-statuses`: the mapping through `PATCH /v1/settings` (lists and maps replace).
pub async fn statuses_save(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Form(form): Form<Pairs>,
) -> Response {
    let g = |k: &str| get(&form, k).unwrap_or("").to_string();
    let saved = serde_json::to_value(&c.app.pipeline.settings().await.agent_status).unwrap_or(Value::Null);
    // Maps merge member by member in a merge patch: remove the entries the form dropped.
    let replace = |typed: Map<String, Value>, old: &Value| {
        let mut m = typed.clone();
        for k in old.as_object().into_iter().flat_map(|o| o.keys()) {
            m.entry(k.clone()).or_insert(Value::Null);
        }
        Value::Object(m)
    };
    let ttl = g("instance_ttl_minutes");
    let patch = json!({"agent_status": {
        "mode": g("mode"), "priority": g("priority"), "hold_while_busy": get(&form, "hold_while_busy").is_some(),
        "platform_statuses": lines(&g("platform_statuses")),
        "crm_to_platform": replace(pairs_of(&g("crm_to_platform")), &saved["crm_to_platform"]),
        "platform_to_crm": replace(pairs_of(&g("platform_to_crm")), &saved["platform_to_crm"]),
        "synced_teams": lines(&g("synced_teams")),
        "instance_ttl_minutes": if ttl.trim().is_empty() { Value::Null } else { ttl.trim().parse::<u64>().map_or_else(|_| json!(ttl.trim()), |n| json!(n)) },
    }});
    let a = patch_settings(&c, patch.clone()).await;
    let shown = if a.ok() { statuses_view(&a.body["agent_status"]) } else { statuses_view(&patch["agent_status"]) };
    let warnings: Vec<Value> = a.body["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["field"].as_str().is_some_and(|f| f.starts_with("agent_status")))
        .map(|w| json!(format!("{}: {}", w["field"].as_str().unwrap_or(""), w["message"].as_str().unwrap_or(""))))
        .collect();
    let ctx = json!({"title": "Agent status mapping", "s": shown, "notice": notice_of(&a), "warnings": warnings,
                     "errors": a.field_errors()});
    render::page(&v, "statuses.html", "statuses", ctx)
}

async fn fields_page(c: &Console, v: &Viewer, notice: Option<Value>, outcomes: Value) -> Response {
    let catalog = answer(crate::api::custom_fields::list_fields(State(c.app.clone())).await).await;
    let mapping = serde_json::to_value(&c.app.pipeline.settings().await.custom_data_mapping).unwrap_or(Value::Null);
    let ctx = json!({"title": "Custom fields", "fields": catalog.or(json!({}))["fields"], "notice": notice,
                     "outcomes": outcomes, "mapping": pairs_text(&mapping)});
    render::page(v, "fields.html", "fields", ctx)
}

/// `GET /custom-fields`.
pub async fn fields(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    fields_page(&c, &v, None, json!([])).await
}

/// `POST /custom-fields`: creates the chosen standard fields in the CRM.
pub async fn fields_create(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Form(form): Form<Pairs>,
) -> Response {
    let keys: Vec<&str> = form.iter().filter(|(k, _)| k == "field").map(|(_, v)| v.as_str()).collect();
    let input = if keys.is_empty() { json!({}) } else { json!({"fields": keys}) };
    let a = answer(crate::api::custom_fields::create_fields(State(c.app.clone()), body(input)).await).await;
    let notice = if a.ok() {
        json!({"ok": true, "text": "Done: each field's outcome is listed below."})
    } else {
        json!({"ok": false, "text": format!("Not created: {}", a.detail())})
    };
    let outcomes = if a.ok() { a.body["fields"].clone() } else { json!([]) };
    fields_page(&c, &v, Some(notice), outcomes).await
}

/// `POST /custom-fields/mapping`: SDK custom data keys to CRM fields.
pub async fn mapping_save(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Form(form): Form<Pairs>,
) -> Response {
    let saved = serde_json::to_value(&c.app.pipeline.settings().await.custom_data_mapping).unwrap_or(Value::Null);
    let mut m = pairs_of(get(&form, "mapping").unwrap_or(""));
    for k in saved.as_object().into_iter().flat_map(|o| o.keys()) {
        m.entry(k.clone()).or_insert(Value::Null);
    }
    let a = patch_settings(&c, json!({"custom_data_mapping": m})).await;
    fields_page(&c, &v, Some(notice_of(&a)), json!([])).await
}

/// Redirects after a POST that has nothing to show.
pub fn back(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Pairs {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn saving_the_same_kind_keeps_its_own_options_and_switching_drops_them() {
        let saved = json!({"kind": "kustomer", "base_url": "https://acme.api.kustomerapp.com",
            "credentials": {"api_key": "set"}, "agent_users": {"ag-1": "ann@example.com"}, "rate_limit_per_minute": 5});
        let same = crm_patch(
            &form(&[
                ("kind", "kustomer"),
                ("base_url", "https://acme.api.kustomerapp.com"),
                ("rate_limit_per_minute", ""),
            ]),
            &saved,
        );
        assert!(same.get("agent_users").is_none(), "kept (absent from the merge patch): {same}");
        assert_eq!(same["rate_limit_per_minute"], Value::Null, "cleared on the form: {same}");
        assert_eq!(same["credentials"], json!({"api_key": "set"}));
        let other = crm_patch(&form(&[("kind", "salesforce"), ("base_url", "https://acme.my.salesforce.com")]), &saved);
        assert_eq!(other["agent_users"], Value::Null, "another kind's option is removed: {other}");
    }
}
