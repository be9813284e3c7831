//! Customers: create, read (by id, `phone=`, `email=`, `externalId=`), update, list, and a
//! customer's conversations and notes. Identifiers (phones, emails, external ids) are unique
//! across the org: a write that would give a second customer one is refused with 409.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::db::{Db, Page, check_custom, invalid, list, newest_first, not_found, now, single};
use super::{KustomerFake, error};

type S = State<Arc<KustomerFake>>;
type Q = Query<BTreeMap<String, String>>;

/// The customer routes.
pub fn routes() -> Router<Arc<KustomerFake>> {
    Router::new()
        .route("/v1/customers", get(list_customers).post(create))
        .route("/v1/customers/{id}", get(read).put(update).patch(update))
        .route("/v1/customers/{id}/conversations", get(conversations).post(create_conversation))
        .route("/v1/customers/{id}/notes", get(notes))
}

fn digits(p: &str) -> String {
    p.chars().filter(char::is_ascii_digit).collect()
}

/// A customer's identifiers: (kind, value as matched).
fn identifiers(c: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let list = |field: &str, key: &str| -> Vec<String> {
        c[field].as_array().into_iter().flatten().filter_map(|e| e[key].as_str().map(str::to_string)).collect()
    };
    for p in list("phones", "phone") {
        out.push(("phone", digits(&p)));
    }
    for e in list("emails", "email") {
        out.push(("email", e.to_lowercase()));
    }
    for x in list("externalIds", "externalId") {
        out.push(("externalId", x));
    }
    if let Some(x) = c["externalId"].as_str() {
        out.push(("externalId", x.to_string()));
    }
    out
}

/// Finds the customer holding an identifier.
pub fn find_by(db: &Db, kind: &str, value: &str) -> Option<Value> {
    let want = match kind {
        "phone" => digits(value),
        "email" => value.to_lowercase(),
        _ => value.to_string(),
    };
    if want.is_empty() {
        return None;
    }
    db.all("customer").find(|c| identifiers(c).iter().any(|(k, v)| *k == kind && *v == want)).cloned()
}

/// Checks the identifier lists' shapes and their uniqueness against other customers.
fn check_identifiers(db: &Db, c: &Value, own_id: &str) -> Result<(), Response> {
    for (field, key) in [("phones", "phone"), ("emails", "email"), ("externalIds", "externalId")] {
        match &c[field] {
            Value::Null => {}
            Value::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    if e[key].as_str().is_none_or(|s| s.trim().is_empty()) {
                        return Err(invalid(&format!("/{field}/{i}/{key}"), format!("{field}[{i}].{key} is required")));
                    }
                }
            }
            _ => return Err(invalid(&format!("/{field}"), format!("{field} must be a list of objects"))),
        }
    }
    for (kind, value) in identifiers(c) {
        if let Some(other) = find_by(db, kind, &value)
            && other["id"].as_str() != Some(own_id)
        {
            return Err(error(
                StatusCode::CONFLICT,
                "duplicate",
                "Conflict",
                format!("another customer already has this {kind}; identifiers must be unique in the org"),
                Some(&format!("/{kind}")),
            ));
        }
    }
    Ok(())
}

const WRITABLE: &[&str] = &[
    "name",
    "company",
    "externalId",
    "externalIds",
    "username",
    "phones",
    "emails",
    "socials",
    "urls",
    "locale",
    "timeZone",
    "tags",
    "custom",
    "signedUpAt",
    "avatarUrl",
];

fn apply(target: &mut serde_json::Map<String, Value>, body: &serde_json::Map<String, Value>) -> Result<(), Response> {
    for (k, v) in body {
        if k == "custom" {
            check_custom(v)?;
            let custom = target.entry("custom").or_insert_with(|| json!({}));
            if let (Some(c), Some(new)) = (custom.as_object_mut(), v.as_object()) {
                for (ck, cv) in new {
                    c.insert(ck.clone(), cv.clone());
                }
            }
        } else if WRITABLE.contains(&k.as_str()) {
            target.insert(k.clone(), v.clone());
        }
    }
    if let Some(n) = target.get("name")
        && !(n.is_null() || n.is_string())
    {
        return Err(invalid("/name", "name must be a string".into()));
    }
    Ok(())
}

async fn create(State(f): S, Json(body): Json<Value>) -> Response {
    let Some(b) = body.as_object() else { return invalid("/", "the body must be an object".into()) };
    let mut db = f.db();
    let mut c =
        json!({"phones": [], "emails": [], "externalIds": [], "custom": {}}).as_object().cloned().unwrap_or_default();
    if let Err(r) = apply(&mut c, b) {
        return r;
    }
    let c = Value::Object(c);
    if let Err(r) = check_identifiers(&db, &c, "") {
        return r;
    }
    let id = match db.new_id(b.get("id")) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut c = c;
    let t = now();
    c["id"] = json!(id);
    c["createdAt"] = json!(t);
    c["updatedAt"] = json!(t);
    c["modifiedAt"] = json!(t);
    db.put("customer", c.clone());
    (StatusCode::CREATED, Json(single("customer", &c))).into_response()
}

async fn read(State(f): S, Path(id): Path<String>) -> Response {
    let db = f.db();
    let found = if let Some(p) = id.strip_prefix("phone=") {
        find_by(&db, "phone", p)
    } else if let Some(e) = id.strip_prefix("email=") {
        find_by(&db, "email", e)
    } else if let Some(x) = id.strip_prefix("externalId=") {
        find_by(&db, "externalId", x)
    } else {
        db.get("customer", &id).cloned()
    };
    match found {
        Some(c) => Json(single("customer", &c)).into_response(),
        None => not_found("customer", &id),
    }
}

async fn update(State(f): S, Path(id): Path<String>, Json(body): Json<Value>) -> Response {
    let Some(b) = body.as_object() else { return invalid("/", "the body must be an object".into()) };
    let mut db = f.db();
    let Some(mut c) = db.get("customer", &id).and_then(|c| c.as_object().cloned()) else {
        return not_found("customer", &id);
    };
    if let Err(r) = apply(&mut c, b) {
        return r;
    }
    let mut c = Value::Object(c);
    if let Err(r) = check_identifiers(&db, &c, &id) {
        return r;
    }
    let t = now();
    c["updatedAt"] = json!(t);
    c["modifiedAt"] = json!(t);
    db.put("customer", c.clone());
    Json(single("customer", &c)).into_response()
}

async fn list_customers(State(f): S, Query(q): Q) -> Response {
    let p = match Page::of(&q, 100) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let items = newest_first(f.db().all("customer").cloned().collect());
    Json(list("customer", items, p, "/v1/customers")).into_response()
}

async fn conversations(State(f): S, Path(id): Path<String>, Query(q): Q) -> Response {
    let p = match Page::of(&q, 100) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let db = f.db();
    if db.get("customer", &id).is_none() {
        return not_found("customer", &id);
    }
    let items = newest_first(db.all("conversation").filter(|c| c["customer"] == json!(id)).cloned().collect());
    Json(list("conversation", items, p, &format!("/v1/customers/{id}/conversations"))).into_response()
}

async fn create_conversation(State(f): S, Path(id): Path<String>, Json(mut body): Json<Value>) -> Response {
    if let Some(b) = body.as_object_mut() {
        b.insert("customer".into(), json!(id));
    }
    super::conversations::create_in(&f, body)
}

async fn notes(State(f): S, Path(id): Path<String>, Query(q): Q) -> Response {
    let p = match Page::of(&q, 100) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let db = f.db();
    if db.get("customer", &id).is_none() {
        return not_found("customer", &id);
    }
    let items = newest_first(db.all("note").filter(|n| n["customer"] == json!(id)).cloned().collect());
    Json(list("note", items, p, &format!("/v1/customers/{id}/notes"))).into_response()
}
