//! Notes: internal notes on a conversation (`POST /v1/notes` or the conversation's notes),
//! read, list, update (`deleted: true` hides one), delete. 120 notes or messages a minute per
//! customer. Attachments on a note must be uploaded first.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::KustomerFake;
use super::db::{Db, Page, invalid, list, newest_first, not_found, now, single};

type S = State<Arc<KustomerFake>>;

/// The note routes.
pub fn routes() -> Router<Arc<KustomerFake>> {
    Router::new()
        .route("/v1/notes", post(create))
        .route("/v1/notes/{id}", get(read).patch(update).put(update).delete(delete))
        .route("/v1/conversations/{id}/notes", get(of_conversation).post(create_in_conversation))
}

/// Checks a note's attachments: each an uploaded attachment.
fn check_attachments(db: &Db, v: &Value) -> Result<(), Response> {
    let Some(a) = v.as_array() else { return Err(invalid("/attachments", "attachments must be a list".into())) };
    for (i, att) in a.iter().enumerate() {
        let id = att["_id"].as_str().unwrap_or_default();
        match db.get("attachment", id) {
            Some(x) if x["uploaded"] == json!(true) => {}
            Some(_) => {
                return Err(invalid(&format!("/attachments/{i}/_id"), format!("attachment {id} was never uploaded")));
            }
            None => return Err(invalid(&format!("/attachments/{i}/_id"), format!("attachment {id} does not exist"))),
        }
    }
    Ok(())
}

fn create_note(f: &KustomerFake, body: Value) -> Response {
    let Some(b) = body.as_object() else { return invalid("/", "the body must be an object".into()) };
    let conv = b.get("conversation").and_then(Value::as_str).unwrap_or_default().to_string();
    let text = b.get("body").and_then(Value::as_str).unwrap_or_default().to_string();
    if text.trim().is_empty() {
        return invalid("/body", "body is required".into());
    }
    let customer = match f.db().get("conversation", &conv) {
        Some(c) => c["customer"].as_str().unwrap_or_default().to_string(),
        None => return invalid("/conversation", format!("conversation {conv:?} does not exist")),
    };
    if b.get("importedAt").is_none()
        && let Err(r) = f.per_customer(&customer)
    {
        return r;
    }
    let mut db = f.db();
    let attachments = b.get("attachments").cloned().unwrap_or(json!([]));
    if let Err(r) = check_attachments(&db, &attachments) {
        return r;
    }
    let id = match db.new_id(b.get("id")) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let t = now();
    let n = json!({"id": id, "conversation": conv, "customer": customer, "body": text,
        "externalId": b.get("externalId").cloned().unwrap_or(Value::Null), "attachments": attachments,
        "deleted": false, "createdAt": t, "updatedAt": t, "modifiedAt": t});
    db.put("note", n.clone());
    if let Some(c) = db.get_mut("conversation", &conv).and_then(Value::as_object_mut) {
        let count = c.get("noteCount").and_then(Value::as_u64).unwrap_or(0) + 1;
        c.insert("noteCount".into(), json!(count));
    }
    (StatusCode::CREATED, Json(single("note", &n))).into_response()
}

async fn create(State(f): S, Json(body): Json<Value>) -> Response {
    create_note(&f, body)
}

async fn create_in_conversation(State(f): S, Path(id): Path<String>, Json(mut body): Json<Value>) -> Response {
    if f.db().get("conversation", &id).is_none() {
        return not_found("conversation", &id);
    }
    if let Some(b) = body.as_object_mut() {
        b.insert("conversation".into(), json!(id));
    }
    create_note(&f, body)
}

async fn read(State(f): S, Path(id): Path<String>) -> Response {
    match f.db().get("note", &id) {
        Some(n) => Json(single("note", n)).into_response(),
        None => not_found("note", &id),
    }
}

async fn update(State(f): S, Path(id): Path<String>, Json(body): Json<Value>) -> Response {
    let Some(b) = body.as_object() else { return invalid("/", "the body must be an object".into()) };
    let mut db = f.db();
    let Some(mut n) = db.get("note", &id).and_then(|n| n.as_object().cloned()) else {
        return not_found("note", &id);
    };
    if let Some(a) = b.get("attachments")
        && let Err(r) = check_attachments(&db, a)
    {
        return r;
    }
    if let Some(body) = b.get("body")
        && body.as_str().is_none_or(|s| s.trim().is_empty())
    {
        return invalid("/body", "body must be non-empty text".into());
    }
    let t = now();
    for k in ["body", "externalId", "attachments"] {
        if let Some(v) = b.get(k) {
            n.insert(k.into(), v.clone());
        }
    }
    if let Some(d) = b.get("deleted").and_then(Value::as_bool) {
        n.insert("deleted".into(), json!(d));
        n.insert("deletedAt".into(), if d { json!(t) } else { Value::Null });
    }
    n.insert("updatedAt".into(), json!(t));
    n.insert("modifiedAt".into(), json!(t));
    let n = Value::Object(n);
    db.put("note", n.clone());
    Json(single("note", &n)).into_response()
}

async fn delete(State(f): S, Path(id): Path<String>) -> Response {
    let mut db = f.db();
    match db.remove("note", &id) {
        Some(n) => {
            let conv = n["conversation"].as_str().unwrap_or_default().to_string();
            if let Some(c) = db.get_mut("conversation", &conv).and_then(Value::as_object_mut) {
                let count = c.get("noteCount").and_then(Value::as_u64).unwrap_or(1).saturating_sub(1);
                c.insert("noteCount".into(), json!(count));
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found("note", &id),
    }
}

async fn of_conversation(State(f): S, Path(id): Path<String>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let p = match Page::of(&q, 100) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let db = f.db();
    if db.get("conversation", &id).is_none() {
        return not_found("conversation", &id);
    }
    let items: Vec<Value> = db.all("note").filter(|n| n["conversation"] == json!(id)).cloned().collect();
    Json(list("note", newest_first(items), p, &format!("/v1/conversations/{id}/notes"))).into_response()
}
