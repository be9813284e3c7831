//! The Rules page: every record-creation setting of the settings document, grouped as in
//! behaviour.md. The form becomes a JSON merge patch saved through `PATCH /v1/settings`'s own
//! handler, so a refused save shows the API's message for each field next to that field, and
//! the live check runs the same validation without saving.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use casebridge_rules::event::{Channel, Direction, SessionType};
use casebridge_rules::session::Session;
use casebridge_rules::settings::{REDACTED, Settings, merge_patch};
use casebridge_rules::title::{Template, VARIABLES};
use chrono::TimeZone;
use serde_json::{Map, Value, json};

use super::call::answer;
use super::render;
use super::state::{Console, Viewer};

/// How a setting is edited.
#[derive(Clone, Copy)]
enum Kind {
    /// A checkbox.
    Bool,
    /// A text box.
    Text,
    /// A text box; empty means null.
    OptText,
    /// A whole number.
    Num,
    /// A checkbox that turns a whole number on (null when off).
    OptNum,
    /// One value a line.
    Lines,
    /// One of these: value, label, hidden while this checkbox is on.
    Select(&'static [(&'static str, &'static str, Option<&'static str>)]),
    /// Write-only: empty keeps the stored value.
    Secret,
    /// The abandoned-chats switch, its two modes and N.
    AbandonedChats,
    /// The title template, with its variable chips and preview.
    Title,
}

/// One setting on the page.
struct Field {
    path: &'static str,
    label: &'static str,
    help: &'static str,
    kind: Kind,
    /// Shown only while this condition holds (`name` checked, or `name=value`).
    show_if: Option<&'static str>,
    /// Hidden while this checkbox is on.
    hide_if: Option<&'static str>,
}

const fn f(path: &'static str, label: &'static str, help: &'static str, kind: Kind) -> Field {
    Field { path, label, help, kind, show_if: None, hide_if: None }
}

const LOOKUP_OFF: &str = "accounts.skip_lookup";
const APPEND: &str = "records.append_to_open_in_leaf_queue";

/// The groups of behaviour.md, each with its settings.
const GROUPS: &[(&str, &str, &[Field])] = &[
    (
        "Accounts",
        "Who the customer is (behaviour §2 and §6).",
        &[
            f(
                LOOKUP_OFF,
                "Skip CRM account lookup",
                "No lookup and no account: appending and the account-based links below are not available.",
                Kind::Bool,
            ),
            f(
                "accounts.skip_creation",
                "Skip CRM account creation",
                "Unknown customers get no account; with append on and nothing to append to, a new record is still created.",
                Kind::Bool,
            ),
            Field {
                hide_if: Some(LOOKUP_OFF),
                ..f(
                    "accounts.multiple_match",
                    "When several accounts match",
                    "",
                    Kind::Select(&[
                        ("most_recent", "The most recently updated", None),
                        ("priority", "By kind (contact, person account, lead), then most recent", None),
                    ]),
                )
            },
            f(
                "accounts.never_create_for",
                "Never create accounts for these numbers",
                "One number or prefix a line, such as +1800 or 1*.",
                Kind::Lines,
            ),
            f(
                "own_numbers",
                "The contact center's own numbers",
                "One a line, with the country code; never matched or created as accounts.",
                Kind::Lines,
            ),
            f("region", "Region of numbers written without a country code", "Such as US or FR.", Kind::Text),
            f(
                "time_zone",
                "Time zone",
                "For TIMESTAMP in titles and for reports, such as UTC or Europe/Paris.",
                Kind::Text,
            ),
        ],
    ),
    (
        "When a record is created",
        "Triggers, delays and abandoned sessions (behaviour §3 and §6).",
        &[
            f(
                "records.skip_creation",
                "Skip CRM record creation",
                "No new records ever; sessions are still appended where append allows.",
                Kind::Bool,
            ),
            f(
                "records.delay_call_until_connected",
                "Delay call record until the call is connected",
                "Records are created when the agent connects instead of when the call is assigned.",
                Kind::Bool,
            ),
            f(
                "records.delay_chat_until_customer_messages",
                "Delay chat record until the customer sent at least this many messages",
                "Avoids empty records for chats where the customer says nothing.",
                Kind::OptNum,
            ),
            f(
                "records.abandoned_calls",
                "Create records for abandoned calls",
                "So reports can say who abandoned.",
                Kind::Bool,
            ),
            f("records.abandoned_chats", "Create records for abandoned chats", "", Kind::AbandonedChats),
            f(
                "records.chat_short_abandon_seconds",
                "Short abandon for chats, in seconds",
                "A chat abandoned this soon after it started is short abandoned.",
                Kind::Num,
            ),
            f(
                "records.default_owner",
                "Default owner",
                "Owner of records created before an agent is assigned (empty: none).",
                Kind::OptText,
            ),
        ],
    ),
    (
        "Append instead of create",
        "Sessions of the same customer in the same leaf queue share a record (behaviour §4).",
        &[
            Field {
                hide_if: Some(LOOKUP_OFF),
                ..f(
                    APPEND,
                    "Append call or chat session to the latest open record in the same leaf queue",
                    "Needs the customer's account.",
                    Kind::Bool,
                )
            },
            Field {
                show_if: Some(APPEND),
                ..f("records.append_requires_same_channel", "Only when the record has the same channel", "", Kind::Bool)
            },
            Field {
                show_if: Some(APPEND),
                ..f(
                    "records.append_to_closed_within_days",
                    "Also append to a record closed within this many days",
                    "The record is reopened to the default open status.",
                    Kind::OptNum,
                )
            },
            Field {
                show_if: Some(APPEND),
                ..f(
                    "records.default_open_status",
                    "Status of a reopened record",
                    "Empty: the CRM's default open status.",
                    Kind::OptText,
                )
            },
        ],
    ),
    (
        "Session data",
        "What each session writes, and where a session without a record goes (behaviour §6 and §7).",
        &[
            f(
                "session_data.target",
                "Map session data to",
                "",
                Kind::Select(&[
                    ("activity", "An activity on the record", None),
                    ("session_object", "A session object", None),
                ]),
            ),
            f(
                "session_data.unrecorded_session_link",
                "A session without a record is linked to",
                "",
                Kind::Select(&[
                    ("account", "The customer's account", Some(LOOKUP_OFF)),
                    ("latest_record", "The account's most recent record", Some(LOOKUP_OFF)),
                    ("none", "Nothing (standalone)", None),
                ]),
            ),
            f("session_data.attach_recordings", "Attach call recordings to records", "", Kind::Bool),
        ],
    ),
    (
        "Titles and tags",
        "What records are called and tagged (behaviour §8).",
        &[
            f(
                "records.title_template",
                "Record title",
                "Text with variables in braces; {{ and }} for literal braces.",
                Kind::Title,
            ),
            f("records.tag_session_type", "Tag records with the session type", "", Kind::Bool),
            f("records.tag_platform", "Tag records with the platform tag", "", Kind::Bool),
            Field {
                show_if: Some("records.tag_platform"),
                ..f("records.platform_tag", "Platform tag", "", Kind::Text)
            },
        ],
    ),
    (
        "Call logging",
        "Wrap-up by agents (behaviour §9).",
        &[
            f("call_logging.dispositions_enabled", "Disposition codes and relate-to-case", "", Kind::Bool),
            f(
                "call_logging.unmatched_caller",
                "A caller who matches nobody at wrap-up becomes",
                "",
                Kind::Select(&[
                    ("contact", "A contact", None),
                    ("lead", "A lead", None),
                    ("none", "Nobody (not logged)", None),
                ]),
            ),
        ],
    ),
    (
        "Click-to-call",
        "Where dial requests go (behaviour §12).",
        &[
            f("click_to_call.webhook_url", "Contact center webhook URL", "Empty: click-to-call is off.", Kind::OptText),
            f(
                "click_to_call.signing_secret",
                "Signing secret",
                "Write-only; leave empty to keep the saved one. At least 16 characters.",
                Kind::Secret,
            ),
        ],
    ),
];

fn fields() -> impl Iterator<Item = &'static Field> {
    GROUPS.iter().flat_map(|(_, _, fs)| fs.iter())
}

/// The element id of a field's message slot.
fn slot(path: &str) -> String {
    format!("msg-{}", path.replace(['.', '_'], "-"))
}

/// The field a message belongs to: the longest field path the message's field starts with;
/// `general` for the others.
fn owner(field: &str) -> &'static str {
    fields()
        .map(|f| f.path)
        .filter(|p| field == *p || field.starts_with(&format!("{p}.")) || field.starts_with(&format!("{p}[")))
        .max_by_key(|p| p.len())
        .unwrap_or("general")
}

fn at<'a>(doc: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(doc, |v, k| &v[k])
}

fn put(patch: &mut Value, path: &str, v: Value) {
    let mut cur = patch;
    let parts: Vec<&str> = path.split('.').collect();
    for k in &parts[..parts.len() - 1] {
        if !cur[*k].is_object() {
            cur[*k] = json!({});
        }
        cur = &mut cur[*k];
    }
    cur[parts[parts.len() - 1]] = v;
}

/// A number as typed: a number when it is one, else the text itself, which the settings
/// reader refuses with its own message.
fn number(s: &str) -> Value {
    s.trim().parse::<u64>().map_or_else(|_| json!(s.trim()), |n| json!(n))
}

/// The merge patch a submitted form means. Hidden settings are disabled in the browser and
/// not sent: a hidden checkbox is off, a hidden number is null, a hidden text keeps its value.
fn patch_of(form: &[(String, String)], saved: &Settings) -> Value {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut p = json!({});
    for fl in fields() {
        let path = fl.path;
        match fl.kind {
            Kind::Bool => put(&mut p, path, json!(get(path).is_some())),
            Kind::Text | Kind::Title | Kind::Select(_) => {
                if let Some(v) = get(path) {
                    put(&mut p, path, json!(v.trim()));
                }
            }
            Kind::OptText => {
                if let Some(v) = get(path) {
                    put(&mut p, path, if v.trim().is_empty() { Value::Null } else { json!(v.trim()) });
                }
            }
            Kind::Num => {
                if let Some(v) = get(path) {
                    put(&mut p, path, number(v));
                }
            }
            Kind::OptNum => {
                let on = get(&format!("{path}.on")).is_some();
                put(&mut p, path, if on { number(get(path).unwrap_or("")) } else { Value::Null });
            }
            Kind::Lines => {
                if let Some(v) = get(path) {
                    let lines: Vec<&str> = v.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                    put(&mut p, path, json!(lines));
                }
            }
            Kind::Secret => {
                let v = get(path).unwrap_or("").trim();
                let stored = saved.click_to_call.signing_secret.is_some();
                let val = if !v.is_empty() {
                    json!(v)
                } else if stored && get("click_to_call.webhook_url").is_some_and(|u| !u.trim().is_empty()) {
                    json!(REDACTED)
                } else {
                    Value::Null
                };
                put(&mut p, path, val);
            }
            Kind::AbandonedChats => {
                let on = get(&format!("{path}.on")).is_some();
                let mode = if on { get(&format!("{path}.mode")).unwrap_or("all") } else { "off" };
                let min = if mode == "min_customer_messages" {
                    number(get(&format!("{path}.min_customer_messages")).unwrap_or(""))
                } else {
                    Value::Null
                };
                put(&mut p, path, json!({"mode": mode, "min_customer_messages": min}));
            }
        }
    }
    p
}

/// Messages by owning field: `{field: {errors: [..], warnings: [..]}}`.
fn messages(errors: &Value, warnings: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (kind, list) in [("errors", errors), ("warnings", warnings)] {
        for e in list.as_array().into_iter().flatten() {
            let field = e["field"].as_str().unwrap_or("");
            let text = if owner(field) == field || owner(field) == "general" {
                e["message"].as_str().unwrap_or("").to_string()
            } else {
                format!("{field}: {}", e["message"].as_str().unwrap_or(""))
            };
            let entry = out.entry(owner(field).to_string()).or_insert_with(|| json!({"errors": [], "warnings": []}));
            if let Some(l) = entry[kind].as_array_mut() {
                l.push(json!(text));
            }
        }
    }
    out
}

/// What the template needs to draw each group and field from a settings document.
fn view(doc: &Value, msgs: &Map<String, Value>) -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(title, help, fs)| {
            let fields: Vec<Value> = fs
                .iter()
                .map(|fl| {
                    let v = at(doc, fl.path);
                    let (kind, extra) = match fl.kind {
                        Kind::Bool => ("bool", json!({"checked": v.as_bool().unwrap_or(false)})),
                        Kind::Text | Kind::OptText => ("text", json!({"value": text_of(v)})),
                        Kind::Num => ("num", json!({"value": text_of(v)})),
                        Kind::OptNum => ("optnum", json!({"on": !v.is_null(), "value": text_of(v)})),
                        Kind::Lines => {
                            let lines: Vec<String> = v.as_array().into_iter().flatten().map(text_of).collect();
                            ("lines", json!({"value": lines.join("\n")}))
                        }
                        Kind::Select(opts) => {
                            let options: Vec<Value> = opts
                                .iter()
                                .map(|(val, label, hide)| {
                                    json!({"value": val, "label": label, "hide_if": hide, "selected": v.as_str() == Some(*val)})
                                })
                                .collect();
                            ("select", json!({"options": options}))
                        }
                        Kind::Secret => ("secret", json!({"set": v.as_str().is_some_and(|s| !s.is_empty())})),
                        Kind::AbandonedChats => {
                            let mode = v["mode"].as_str().unwrap_or("off");
                            ("abandoned_chats", json!({"on": mode != "off", "mode": mode, "min": text_of(&v["min_customer_messages"])}))
                        }
                        Kind::Title => ("title", json!({"value": text_of(v), "variables": VARIABLES})),
                    };
                    let mut o = json!({
                        "path": fl.path, "id": fl.path.replace('.', "-"), "slot": slot(fl.path), "label": fl.label,
                        "help": fl.help, "kind": kind, "show_if": fl.show_if, "hide_if": fl.hide_if,
                        "msgs": msgs.get(fl.path).cloned().unwrap_or(json!({"errors": [], "warnings": []})),
                    });
                    if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
                        o.extend(e.clone());
                    }
                    o
                })
                .collect();
            json!({"title": title, "help": help, "fields": fields})
        })
        .collect();
    json!({"groups": groups, "general": msgs.get("general").cloned().unwrap_or(json!({"errors": [], "warnings": []}))})
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `GET /rules`.
pub async fn page(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let saved = c.app.pipeline.settings().await;
    let doc = serde_json::to_value(saved.redacted()).unwrap_or(Value::Null);
    let warnings = crate::config::validate(&saved).unwrap_or_default();
    let msgs = messages(&json!([]), &serde_json::to_value(warnings).unwrap_or(Value::Null));
    let mut ctx = view(&doc, &msgs);
    ctx["title"] = json!("Rules");
    render::page(&v, "rules.html", "rules", ctx)
}

async fn patched(c: &Console, form: &[(String, String)]) -> (Value, Value, std::sync::Arc<Settings>) {
    let saved = c.app.pipeline.settings().await;
    let patch = patch_of(form, &saved);
    let mut doc = serde_json::to_value(saved.redacted()).unwrap_or(Value::Null);
    merge_patch(&mut doc, &patch);
    (patch, doc, saved)
}

/// `POST /rules`: saves through `PATCH /v1/settings`; the page again with the saved document
/// and its warnings, or with what was typed and every refusal next to its field (422).
pub async fn save(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (patch, doc, _) = patched(&c, &form).await;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/merge-patch+json"));
    let raw = Ok(Bytes::from(patch.to_string()));
    let a = answer(crate::api::settings::patch_settings(State(c.app.clone()), headers, raw).await).await;
    let (doc, msgs, notice) = if a.ok() {
        let changed: Vec<String> =
            a.body["changed"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(String::from)).collect();
        let notice = if changed.is_empty() {
            "Nothing changed.".to_string()
        } else {
            format!("Saved. Changed: {}.", changed.join(", "))
        };
        (a.body.clone(), messages(&json!([]), &a.body["warnings"]), json!({"ok": true, "text": notice}))
    } else {
        let text = format!("Not saved: {}. Each problem is shown next to its setting.", a.detail());
        (doc, messages(&a.body["errors"], &json!([])), json!({"ok": false, "text": text}))
    };
    let mut ctx = view(&doc, &msgs);
    ctx["title"] = json!("Rules");
    ctx["notice"] = notice;
    render::page(&v, "rules.html", "rules", ctx)
}

/// `POST /rules/check`: the same validation without saving; every message slot is replaced
/// out of band, so stale messages go away.
pub async fn check(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (_, doc, saved) = patched(&c, &form).await;
    let msgs = match crate::api::settings::check(doc, Some(&saved)) {
        Ok((_, w)) => messages(&json!([]), &serde_json::to_value(w).unwrap_or(Value::Null)),
        Err(p) => messages(&Value::Array(p.errors), &json!([])),
    };
    let slots: Vec<Value> = fields()
        .map(|f| json!({"slot": slot(f.path), "msgs": msgs.get(f.path).cloned().unwrap_or(json!({"errors": [], "warnings": []}))}))
        .collect();
    let general = msgs.get("general").cloned().unwrap_or(json!({"errors": [], "warnings": []}));
    render::page(&v, "rules_feedback.html", "rules", json!({"slots": slots, "general": general}))
}

/// A session to preview titles with: an IVR call on Support > Billing.
fn sample() -> Session {
    Session {
        id: "call-42".into(),
        channel: Some(Channel::Voice),
        session_type: Some(SessionType::VoiceInboundIvr),
        direction: Some(Direction::Inbound),
        queue_path: vec!["Support".into(), "Billing".into()],
        language: Some("en".into()),
        dialed_number: Some("+18005550000".into()),
        created_at: chrono::Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).single(),
        ..Session::default()
    }
}

/// `POST /rules/title-preview`: the title an IVR call would get with the typed template.
pub async fn title_preview(State(c): State<Console>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut s = (*c.app.pipeline.settings().await).clone();
    let template = get("records.title_template").unwrap_or_default();
    if let Some(tz) = get("time_zone").filter(|t| t.trim().parse::<chrono_tz::Tz>().is_ok()) {
        s.time_zone = tz.trim().to_string();
    }
    let ctx = match Template::parse(&template) {
        Ok(_) => {
            s.records.title_template = template;
            let title = casebridge_rules::engine::title_of(&sample(), &s);
            json!({"ok": true, "title": title})
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    render::bare("rules_feedback.html", json!({"preview": ctx}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn hidden_settings_are_off_and_numbers_keep_what_was_typed() {
        let p = patch_of(
            &form(&[
                ("records.delay_chat_until_customer_messages.on", "on"),
                ("records.delay_chat_until_customer_messages", "x3"),
                ("records.abandoned_chats.on", "on"),
                ("records.abandoned_chats.mode", "min_customer_messages"),
                ("records.abandoned_chats.min_customer_messages", "2"),
                ("own_numbers", " +14155550100 \n\n"),
            ]),
            &Settings::default(),
        );
        assert_eq!(p["records"]["append_to_open_in_leaf_queue"], false);
        assert_eq!(p["records"]["append_to_closed_within_days"], Value::Null);
        assert_eq!(p["records"]["delay_chat_until_customer_messages"], "x3");
        assert_eq!(
            p["records"]["abandoned_chats"],
            json!({"mode": "min_customer_messages", "min_customer_messages": 2})
        );
        assert_eq!(p["own_numbers"], json!(["+14155550100"]));
        assert!(p["records"].get("platform_tag").is_none(), "a hidden text keeps its saved value");
    }

    #[test]
    fn messages_find_their_field() {
        assert_eq!(owner("own_numbers[2]"), "own_numbers");
        assert_eq!(owner("records.abandoned_chats.min_customer_messages"), "records.abandoned_chats");
        assert_eq!(owner("records.append_to_open_in_leaf_queue"), APPEND);
        assert_eq!(owner("crm.base_url"), "general");
    }
}
