//! `docs/events.md`, the event reference, rendered from the same schemas as `/openapi.json`
//! (the event types of `casebridge_rules::event`). The test fails when the file drifts;
//! `CASEBRIDGE_WRITE_DOCS=1 cargo test -p casebridge events_doc` rewrites it.
//! `tests/it/events_ref.rs` posts every example of the file.

use casebridge_rules::event::{EVENT_TYPES, MAX_ID_LEN};
use serde_json::{Value, json};

use super::openapi::document;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events.md");

const HEAD: &str = "# Event reference

<!-- Generated from the event types (crates/rules/src/event) by the test api::events_doc.
     Do not edit: change the types, then run CASEBRIDGE_WRITE_DOCS=1 cargo test -p casebridge events_doc -->

`POST /v1/events` takes one event object, a JSON array of events (`Content-Type:
application/json`), or NDJSON, one event per line (`Content-Type: application/x-ndjson`).
Any other content type is refused with 415. A batch is atomic: if any event is invalid,
422 lists every invalid event by `index` and `field`, and nothing is stored. The same
types are in `GET /openapi.json` (`Event`, `EventKind`).

## Rules every event follows

- **One id, one event.** `id` names one event, across all sessions and types. Sending the
  same event again (same id, same content) is a duplicate: 202, counted in `duplicates`,
  nothing changes. Sending an id already used with other content (another session, type,
  time or data) is refused with 409 `event-id-conflict`, naming the id and the earlier event
  (its session and type); nothing of that batch is stored. A platform that numbers events
  per session must prefix the number with the session id (`call-42-1`). Content is compared
  after parsing: member order, spacing and the time zone of `at` do not count.
- **Ids** (`id`, `session_id`, agent ids) are 1 to MAX_ID characters, not only spaces, and
  hold no control characters (`\\u0000`, tabs, line breaks); the other ids an event names
  (`user_id`, `related_session_id`, …) hold no control characters.
- **Order.** Events of one session are applied in arrival order, not by `at`. Events may
  arrive out of order: events that arrive before the session's `session.created` are kept
  (timeline rule `events.order`) and applied, in arrival order, once it arrives. A late event
  is kept on the timeline and applied only where it still has an effect (rule `events.late`:
  a `session.assigned` after `session.connected` sets the agent but never triggers a second
  record; a second `session.created` or `session.connected` is ignored).
- **Times.** `at` is an RFC 3339 time; every rule time (days since close, short abandons)
  comes from `at`, never from the wall clock, so a replay gives the same result.
- Members not listed are ignored. `data` may be left out for types without data.

";

/// One valid example of each event type, as sent on the wire.
fn example(ty: &str) -> Value {
    let data = match ty {
        "session.created" => json!({"channel": "voice", "session_type": "voice_inbound_ivr", "direction": "inbound",
            "customer": {"phone": "+14155550100", "name": "Ada Lovelace"}, "queue_path": ["Support", "Billing"],
            "language": "en", "dialed_number": "+18005550000"}),
        "session.queued" => json!({"queue_path": ["Support", "Billing"]}),
        "session.assigned" => json!({"agent": {"id": "ag-7", "email": "grace@example.com", "name": "Grace"}}),
        "session.connected" | "session.abandoned" => json!({}),
        "message.created" => json!({"sender": "customer", "text": "Hello, my invoice is wrong."}),
        "session.ended" => json!({"duration_s": 184.0, "hold_s": 12.0, "wait_s": 30.0}),
        "session.transferred" => json!({"agent": {"id": "ag-9"}, "queue_path": ["Support", "Escalations"]}),
        "voicemail.updated" => json!({"action": "called_back", "agent": {"id": "ag-7"}}),
        "recording.available" => json!({"url": "https://recordings.example.com/call-42.mp3"}),
        "csat.submitted" => json!({"score": 9, "comment": "Quick and friendly"}),
        "smart_action.completed" => json!({"action": "identity_check", "result": {"verified": true},
            "files": [{"name": "id.jpg", "url": "https://files.example.com/id.jpg"}]}),
        "smart_action.failed" => json!({"action": "payment", "error": "card declined", "user_error": true}),
        "custom_data.updated" => json!({"data": {"plan": "gold", "order_id": 1234}}),
        other => panic!("docs/events.md needs an example of {other}: add it to api/events_doc.rs"),
    };
    let n = EVENT_TYPES.iter().position(|t| *t == ty).unwrap_or_default() + 1;
    json!({"id": format!("call-42-{n}"), "session_id": "call-42", "type": ty,
           "at": format!("2026-11-20T10:{:02}:00Z", n), "data": data})
}

/// An optional member's schema without its `null` alternative.
fn unnull(s: &Value) -> &Value {
    match s.get("oneOf").and_then(Value::as_array) {
        Some(alts) => alts.iter().find(|a| a["type"] != "null").unwrap_or(s),
        None => s,
    }
}

fn resolve<'a>(schemas: &'a Value, s: &'a Value) -> &'a Value {
    let s = unnull(s);
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(schemas, &schemas[r.trim_start_matches("#/components/schemas/")]),
        None => s,
    }
}

/// A schema's type in words, with its allowed values and limits.
fn type_of(schemas: &Value, s: &Value) -> String {
    let s = resolve(schemas, s);
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let v: Vec<String> = values.iter().filter_map(Value::as_str).map(|v| format!("`{v}`")).collect();
        return format!("one of {}", v.join(", "));
    }
    let ty = match &s["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("any").to_string(),
        _ => "any".to_string(),
    };
    let mut out = match ty.as_str() {
        "array" => format!("array of {}", type_of(schemas, &s["items"])),
        "object" if s.get("properties").is_none() => "object (any members)".to_string(),
        "string" if s["format"] == "date-time" => "RFC 3339 time".to_string(),
        "number" => "number".to_string(),
        t => t.to_string(),
    };
    match (s.get("minLength"), s.get("maxLength")) {
        (Some(a), Some(b)) => out.push_str(&format!(", {a} to {b} characters")),
        (None, Some(b)) => out.push_str(&format!(", at most {b} characters")),
        _ => {}
    }
    let num = |v: &Value| v.as_f64().map(|f| f.to_string());
    if let (Some(a), Some(b)) = (s.get("minimum").and_then(num), s.get("maximum").and_then(num)) {
        out.push_str(&format!(", from {a} to {b}"));
    }
    out
}

/// Table rows of an object's members, nested objects flattened as `a.b`, arrays of objects as `a[].b`.
fn rows(schemas: &Value, obj: &Value, prefix: &str, out: &mut Vec<String>) {
    let obj = resolve(schemas, obj);
    let required: Vec<&str> =
        obj["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(props) = obj["properties"].as_object() else { return };
    let mut names: Vec<&String> = props.keys().collect();
    names.sort_by_key(|n| (!required.contains(&n.as_str()), n.as_str()));
    for name in names {
        let p = unnull(&props[name]);
        let target = resolve(schemas, p);
        let description = p["description"].as_str().or(target["description"].as_str()).unwrap_or_default();
        let need = if required.contains(&name.as_str()) { "required" } else { "optional" };
        let path = format!("{prefix}{name}");
        let is_object = target.get("properties").is_some();
        let items = resolve(schemas, &target["items"]);
        let ty = if is_object {
            "object".to_string()
        } else if items.get("properties").is_some() {
            "array of objects".to_string()
        } else {
            type_of(schemas, p)
        };
        out.push(format!("| `{path}` | {ty} | {need} | {} |", description.replace('|', "\\|").replace('\n', " ")));
        if is_object {
            rows(schemas, target, &format!("{path}."), out);
        } else if items.get("properties").is_some() {
            rows(schemas, items, &format!("{path}[]."), out);
        }
    }
}

fn table(lines: Vec<String>) -> String {
    let mut t = String::from("| field | type | required | description |\n| --- | --- | --- | --- |\n");
    for l in lines {
        t.push_str(&l);
        t.push('\n');
    }
    t
}

/// An event as indented JSON, envelope members in the order of the envelope table.
fn pretty(e: &Value) -> String {
    let member = |k: &str| serde_json::to_string(&e[k]).unwrap_or_default();
    let data = serde_json::to_string_pretty(&e["data"]).unwrap_or_default().replace('\n', "\n  ");
    format!(
        "{{\n  \"id\": {},\n  \"session_id\": {},\n  \"type\": {},\n  \"at\": {},\n  \"data\": {data}\n}}",
        member("id"),
        member("session_id"),
        member("type"),
        member("at")
    )
}

/// The whole reference.
pub fn render() -> String {
    let doc = serde_json::to_value(document()).unwrap_or_default();
    let schemas = &doc["components"]["schemas"];
    let mut md = HEAD.replace("MAX_ID", &MAX_ID_LEN.to_string());
    md.push_str("## Envelope\n\n");
    let mut env = Vec::new();
    for part in schemas["Event"]["allOf"].as_array().into_iter().flatten() {
        if part.get("$ref").is_none() {
            rows(schemas, part, "", &mut env);
        }
    }
    env.push(format!(
        "| `type` | one of {} | required | The event type: one of the sections below. |",
        EVENT_TYPES.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
    ));
    env.push("| `data` | object | required for types with data | The type's data, described below. |".into());
    md.push_str(&table(env));
    let variants = schemas["EventKind"]["oneOf"].as_array().cloned().unwrap_or_default();
    for ty in EVENT_TYPES {
        let v = variants
            .iter()
            .find(|v| v["properties"]["type"]["enum"][0] == *ty)
            .unwrap_or_else(|| panic!("EventKind has no schema for {ty}"));
        md.push_str(&format!("\n## `{ty}`\n\n{}\n\n", v["description"].as_str().unwrap_or_default()));
        match v["properties"].get("data") {
            Some(data) => {
                let mut lines = Vec::new();
                rows(schemas, data, "data.", &mut lines);
                md.push_str(&table(lines));
            }
            None => md.push_str("No data: `data` may be left out or be `{}`.\n"),
        }
        let ex = pretty(&example(ty));
        md.push_str(&format!("\nExample:\n\n```json\n{ex}\n```\n"));
    }
    md
}

#[test]
fn docs_events_md_is_current() {
    let want = render();
    if std::env::var_os("CASEBRIDGE_WRITE_DOCS").is_some() {
        std::fs::write(PATH, &want).unwrap_or_else(|e| panic!("cannot write {PATH}: {e}"));
        return;
    }
    let have = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        have == want,
        "docs/events.md is not what the event types give; regenerate it with \
         `CASEBRIDGE_WRITE_DOCS=1 cargo test -p casebridge events_doc` and commit it"
    );
}
