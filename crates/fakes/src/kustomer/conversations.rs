//! Conversations: create (for a customer), read (by id or `externalId=`), update, list, tags
//! (append creates missing tags by name; `tags` in an update replaces the set), messages.
//! Statuses are only `open`, `snoozed` and `done`; `done` ends the conversation (`ended`,
//! `endedAt`); an inbound message reopens a done (or wakes a snoozed) conversation.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::db::{Db, Page, check_custom, invalid, list, newest_first, not_found, now, single};
use super::{KustomerFake, error};

type S = State<Arc<KustomerFake>>;

/// Statuses Kustomer knows.
pub const STATUSES: &[&str] = &["open", "snoozed", "done"];

/// The conversation routes.
pub fn routes() -> Router<Arc<KustomerFake>> {
    Router::new()
        .route("/v1/conversations", get(list_all).post(create))
        .route("/v1/conversations/{id}", get(read).put(update).patch(update))
        .route("/v1/conversations/{id}/tags", post(append_tags).delete(remove_tags))
        .route("/v1/conversations/{id}/messages", post(create_message))
}

/// Tag ids for names (or ids), creating missing tags.
fn tag_ids(db: &mut Db, v: &Value) -> Result<Vec<String>, Response> {
    let names: Vec<String> = match v {
        Value::Array(a) => a.iter().map(|t| t.as_str().map(str::to_string)).collect::<Option<Vec<_>>>(),
        Value::Object(o) => o
            .get("tags")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|t| t.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()),
        _ => None,
    }
    .ok_or_else(|| invalid("/tags", "tags must be a list of tag names".into()))?;
    let mut ids = Vec::new();
    for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let existing = db
            .all("tag")
            .find(|t| t["id"] == json!(n) || t["name"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(n)))
            .and_then(|t| t["id"].as_str().map(str::to_string));
        let id = match existing {
            Some(id) => id,
            None => {
                let id = db.new_id(None)?;
                db.put("tag", json!({"id": id, "name": n, "createdAt": now()}));
                id
            }
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

const WRITABLE: &[&str] = &[
    "externalId",
    "name",
    "status",
    "direction",
    "priority",
    "assignedUsers",
    "assignedTeams",
    "subStatus",
    "defaultLang",
];

/// Applies the writable attributes of `body` to `c` (checked): status changes end or reopen it.
fn apply(db: &mut Db, c: &mut Map<String, Value>, body: &Map<String, Value>) -> Result<(), Response> {
    for (k, v) in body {
        match k.as_str() {
            "custom" => {
                check_custom(v)?;
                let custom = c.entry("custom").or_insert_with(|| json!({}));
                if let (Some(cm), Some(new)) = (custom.as_object_mut(), v.as_object()) {
                    for (ck, cv) in new {
                        cm.insert(ck.clone(), cv.clone());
                    }
                }
            }
            "tags" => {
                let ids = tag_ids(db, v)?;
                c.insert("tags".into(), json!(ids));
            }
            "status" => {
                let s = v.as_str().unwrap_or_default();
                if !STATUSES.contains(&s) {
                    return Err(invalid("/status", format!("status must be one of {}", STATUSES.join(", "))));
                }
                set_status(c, s);
            }
            "direction" if !matches!(v.as_str(), Some("in" | "out")) => {
                return Err(invalid("/direction", "direction must be in or out".into()));
            }
            "priority" if !v.as_u64().is_some_and(|p| (1..=5).contains(&p)) => {
                return Err(invalid("/priority", "priority must be a whole number from 1 to 5".into()));
            }
            "assignedUsers" => {
                let ids: Option<Vec<&str>> = v.as_array().and_then(|a| a.iter().map(Value::as_str).collect());
                let Some(ids) = ids else {
                    return Err(invalid("/assignedUsers", "assignedUsers must be a list of user ids".into()));
                };
                if let Some(bad) = ids.iter().find(|u| db.get("user", u).is_none()) {
                    return Err(invalid("/assignedUsers", format!("user {bad} does not exist")));
                }
                c.insert(k.clone(), v.clone());
            }
            "name" if !(v.is_string() || v.is_null()) => return Err(invalid("/name", "name must be a string".into())),
            _ if WRITABLE.contains(&k.as_str()) => {
                c.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    Ok(())
}

fn set_status(c: &mut Map<String, Value>, s: &str) {
    let was = c.get("status").and_then(Value::as_str).unwrap_or_default().to_string();
    c.insert("status".into(), json!(s));
    if s == "done" && was != "done" {
        c.insert("ended".into(), json!(true));
        c.insert("endedAt".into(), json!(now()));
    } else if s != "done" {
        c.insert("ended".into(), json!(false));
        c.insert("endedAt".into(), Value::Null);
    }
}

fn external_id_taken(db: &Db, ext: &Value, own: &str) -> bool {
    ext.as_str().is_some_and(|x| db.all("conversation").any(|c| c["externalId"] == json!(x) && c["id"] != json!(own)))
}

/// Creates a conversation from a body that names its customer.
pub fn create_in(f: &KustomerFake, body: Value) -> Response {
    let Some(b) = body.as_object() else { return invalid("/", "the body must be an object".into()) };
    let mut db = f.db();
    let customer = b.get("customer").and_then(Value::as_str).unwrap_or_default().to_string();
    if customer.is_empty() {
        return invalid("/customer", "customer is required".into());
    }
    if db.get("customer", &customer).is_none() {
        return invalid("/customer", format!("customer {customer} does not exist"));
    }
    if let Some(x) = b.get("externalId")
        && external_id_taken(&db, x, "")
    {
        return error(
            StatusCode::CONFLICT,
            "duplicate",
            "Conflict",
            "a conversation with this externalId already exists".into(),
            Some("/externalId"),
        );
    }
    let t = now();
    let mut c: Map<String, Value> = json!({
        "customer": customer, "name": null, "status": "open", "direction": "in", "priority": 3,
        "tags": [], "assignedUsers": [], "assignedTeams": [], "custom": {}, "channels": [],
        "messageCount": 0, "noteCount": 0, "ended": false, "endedAt": null,
        "createdAt": t, "updatedAt": t, "modifiedAt": t,
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    if let Err(r) = apply(&mut db, &mut c, b) {
        return r;
    }
    let id = match db.new_id(b.get("id")) {
        Ok(id) => id,
        Err(r) => return r,
    };
    c.insert("id".into(), json!(id));
    let c = Value::Object(c);
    db.put("conversation", c.clone());
    (StatusCode::CREATED, Json(single("conversation", &c))).into_response()
}

async fn create(State(f): S, Json(body): Json<Value>) -> Response {
    create_in(&f, body)
}

fn find(db: &Db, id: &str) -> Option<Value> {
    match id.strip_prefix("externalId=") {
        Some(x) => db.all("conversation").find(|c| c["externalId"] == json!(x)).cloned(),
        None => db.get("conversation", id).cloned(),
    }
}

async fn read(State(f): S, Path(id): Path<String>) -> Response {
    match find(&f.db(), &id) {
        Some(c) => Json(single("conversation", &c)).into_response(),
        None => not_found("conversation", &id),
    }
}

async fn update(State(f): S, Path(id): Path<String>, Json(body): Json<Value>) -> Response {
    let Some(b) = body.as_object() else { return invalid("/", "the body must be an object".into()) };
    let mut db = f.db();
    let Some(mut c) = db.get("conversation", &id).and_then(|c| c.as_object().cloned()) else {
        return not_found("conversation", &id);
    };
    if let Some(x) = b.get("externalId")
        && external_id_taken(&db, x, &id)
    {
        return error(
            StatusCode::CONFLICT,
            "duplicate",
            "Conflict",
            "a conversation with this externalId already exists".into(),
            Some("/externalId"),
        );
    }
    if let Err(r) = apply(&mut db, &mut c, b) {
        return r;
    }
    let t = now();
    c.insert("updatedAt".into(), json!(t));
    c.insert("modifiedAt".into(), json!(t));
    let c = Value::Object(c);
    db.put("conversation", c.clone());
    Json(single("conversation", &c)).into_response()
}

async fn list_all(State(f): S, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let p = match Page::of(&q, 100) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = newest_first(f.db().all("conversation").cloned().collect());
    Json(list("conversation", items, p, "/v1/conversations")).into_response()
}

fn change_tags(f: &KustomerFake, id: &str, body: &Value, add: bool) -> Response {
    let mut db = f.db();
    let Some(mut c) = db.get("conversation", id).cloned() else { return not_found("conversation", id) };
    let ids = match tag_ids(&mut db, body) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let mut tags: Vec<String> =
        c["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)).collect();
    if add {
        for t in ids {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
    } else {
        tags.retain(|t| !ids.contains(t));
    }
    c["tags"] = json!(tags);
    c["updatedAt"] = json!(now());
    db.put("conversation", c.clone());
    Json(single("conversation", &c)).into_response()
}

async fn append_tags(State(f): S, Path(id): Path<String>, Json(body): Json<Value>) -> Response {
    change_tags(&f, &id, &body, true)
}

async fn remove_tags(State(f): S, Path(id): Path<String>, Json(body): Json<Value>) -> Response {
    change_tags(&f, &id, &body, false)
}

/// Records a message (it is not sent). An inbound one reopens a done conversation.
async fn create_message(State(f): S, Path(id): Path<String>, Json(body): Json<Value>) -> Response {
    let customer = match f.db().get("conversation", &id) {
        Some(c) => c["customer"].as_str().unwrap_or_default().to_string(),
        None => return not_found("conversation", &id),
    };
    let direction = body["direction"].as_str().unwrap_or_default().to_string();
    if !matches!(direction.as_str(), "in" | "out") {
        return invalid("/direction", "direction must be in or out".into());
    }
    let Some(channel) = body["channel"].as_str().map(str::to_string) else {
        return invalid("/channel", "channel is required".into());
    };
    if body.get("importedAt").is_none()
        && let Err(r) = f.per_customer(&customer)
    {
        return r;
    }
    let mut db = f.db();
    let mid = match db.new_id(body.get("id")) {
        Ok(mid) => mid,
        Err(r) => return r,
    };
    let t = now();
    let m = json!({"id": mid, "conversation": id, "customer": customer, "direction": direction,
        "channel": channel, "preview": body["preview"], "createdAt": t});
    db.put("message", m.clone());
    if let Some(c) = db.get_mut("conversation", &id).and_then(Value::as_object_mut) {
        let n = c.get("messageCount").and_then(Value::as_u64).unwrap_or(0) + 1;
        c.insert("messageCount".into(), json!(n));
        let mut channels: Vec<Value> = c.get("channels").and_then(Value::as_array).cloned().unwrap_or_default();
        if !channels.contains(&json!(channel)) {
            channels.push(json!(channel));
        }
        c.insert("channels".into(), Value::Array(channels));
        if direction == "in" && c.get("status").and_then(Value::as_str) != Some("open") {
            set_status(c, "open");
        }
        c.insert("updatedAt".into(), json!(t));
    }
    (StatusCode::CREATED, Json(single("message", &m))).into_response()
}
