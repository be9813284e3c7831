//! Attachments (the two-step upload: `POST /v1/attachments` answers an upload address and
//! form fields; a multipart POST there, `file` last, stores the file), custom attribute
//! metadata (`GET`/`PUT /v1/metadata/{resource}`; updating needs `metadata.update`) and users
//! (list by `email`, read, `current` for the key's own user, create).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::db::{Page, SUFFIXES, invalid, list, not_found, now, single};
use super::{KustomerFake, UPLOAD_PATH, error};

type S = State<Arc<KustomerFake>>;

/// Largest upload the fake takes.
const MAX_UPLOAD: usize = 64 * 1024 * 1024;

/// Resources whose custom attributes have metadata.
const RESOURCES: &[&str] = &["customer", "conversation", "company", "message"];

/// The attachment, upload, metadata and user routes.
pub fn routes() -> Router<Arc<KustomerFake>> {
    Router::new()
        .route("/v1/attachments", post(create_attachment))
        .route("/v1/attachments/{id}", get(read_attachment))
        .route(UPLOAD_PATH, post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
        .route("/v1/metadata/{resource}", get(read_metadata).put(update_metadata))
        .route("/v1/users", get(users).post(create_user))
        .route("/v1/users/{id}", get(read_user))
}

async fn create_attachment(State(f): S, headers: HeaderMap, Json(b): Json<Value>) -> Response {
    let name = b["name"].as_str().unwrap_or_default().to_string();
    let content_type = b["contentType"].as_str().unwrap_or_default().to_string();
    let Some(length) = b["contentLength"].as_u64() else {
        return invalid("/contentLength", "contentLength is required (bytes)".into());
    };
    if name.is_empty() || content_type.is_empty() {
        return invalid("/name", "name and contentType are required".into());
    }
    let mut db = f.db();
    let id = match db.new_id(None) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let policy = format!("policy-{id}");
    let a = json!({"id": id, "name": name, "contentType": content_type, "contentLength": length,
        "uploaded": false, "redacted": false, "policy": policy, "createdAt": now()});
    db.put("attachment", a.clone());
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let mut data = single("attachment", &a);
    if let Some(attrs) = data["data"]["attributes"].as_object_mut() {
        attrs.remove("policy");
    }
    data["meta"] = json!({"upload": {"url": format!("http://{host}{UPLOAD_PATH}"), "fields": {
        "key": format!("attachments/{id}"), "acl": "private", "Content-Type": content_type,
        "X-Amz-Meta-Attachment-Id": id, "bucket": "kustomer-attachments", "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "FAKE/kustomer", "X-Amz-Date": "20260101T000000Z", "Policy": policy,
        "X-Amz-Signature": "fake"}}});
    (StatusCode::CREATED, Json(data)).into_response()
}

async fn read_attachment(State(f): S, Path(id): Path<String>) -> Response {
    match f.db().get("attachment", &id) {
        Some(a) => {
            let mut a = a.clone();
            if let Some(o) = a.as_object_mut() {
                o.remove("policy");
            }
            Json(single("attachment", &a)).into_response()
        }
        None => not_found("attachment", &id),
    }
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [("content-type", "application/xml")], body).into_response()
}

/// One part of a multipart body: its name and content.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<(String, &'a [u8])>> {
    let delim = format!("--{boundary}").into_bytes();
    let mut out = Vec::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(rest, &delim)?;
    rest = &rest[start + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(out);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        rest = &rest[head_end + 4..];
        let mut end_delim = b"\r\n".to_vec();
        end_delim.extend_from_slice(&delim);
        let end = find(rest, &end_delim)?;
        let name = head
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("name=").map(|n| n.trim_matches('"').to_string()))?;
        out.push((name, &rest[..end]));
        rest = &rest[end + end_delim.len()..];
    }
}

/// The storage side of an upload: a multipart form with the fields handed out, `file` last.
async fn upload(State(f): S, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers.get("content-type").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let Some(boundary) = ct.split(';').map(str::trim).find_map(|p| p.strip_prefix("boundary=")) else {
        return s3_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed", "multipart/form-data expected");
    };
    let Some(parts) = parts(&body, boundary.trim_matches('"')) else {
        return s3_error(StatusCode::BAD_REQUEST, "MalformedPOSTRequest", "the body is not well-formed multipart");
    };
    if parts.last().map(|(n, _)| n.as_str()) != Some("file") {
        return s3_error(StatusCode::BAD_REQUEST, "InvalidArgument", "the file must be the last field");
    }
    let field = |n: &str| parts.iter().find(|(k, _)| k == n).map(|(_, v)| String::from_utf8_lossy(v).to_string());
    let id = field("X-Amz-Meta-Attachment-Id").unwrap_or_default();
    let mut db = f.db();
    let Some(a) = db.get("attachment", &id).cloned() else {
        return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "unknown attachment");
    };
    if field("Policy") != a["policy"].as_str().map(str::to_string) || field("key") != Some(format!("attachments/{id}"))
    {
        return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "policy or key does not match");
    }
    let file = parts.last().map(|(_, v)| *v).unwrap_or_default();
    if Some(file.len() as u64) != a["contentLength"].as_u64() {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            "the file's size is not the declared contentLength",
        );
    }
    let sum = file.iter().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
    db.uploads.insert(id.clone(), (file.len(), sum));
    if let Some(o) = db.get_mut("attachment", &id).and_then(Value::as_object_mut) {
        o.insert("uploaded".into(), json!(true));
        o.insert("checksum".into(), json!(sum));
    }
    StatusCode::NO_CONTENT.into_response()
}

fn metadata_doc(resource: &str, props: &Map<String, Value>) -> Value {
    json!({"data": {"type": "metadata", "id": resource, "attributes": {"properties": props}}})
}

fn known_resource(r: &str) -> bool {
    RESOURCES.contains(&r) || r.starts_with("kobject.")
}

async fn read_metadata(State(f): S, Path(resource): Path<String>) -> Response {
    if !known_resource(&resource) {
        return not_found("metadata", &resource);
    }
    let db = f.db();
    let props = db.metadata.get(&resource).cloned().unwrap_or_default();
    Json(metadata_doc(&resource, &props)).into_response()
}

/// Sets metadata for the named custom attributes (others are kept).
async fn update_metadata(State(f): S, Path(resource): Path<String>, Json(b): Json<Value>) -> Response {
    if f.denied("metadata.update") {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "this API key lacks org.permission.metadata.update (or org.admin.metadata.write)".into(),
            None,
        );
    }
    if !known_resource(&resource) {
        return not_found("metadata", &resource);
    }
    let Some(props) = b["properties"].as_object() else {
        return invalid("/properties", "properties must be an object".into());
    };
    for (k, v) in props {
        if !SUFFIXES.iter().any(|s| k.ends_with(s) && k.len() > s.len()) {
            return invalid(&format!("/properties/{k}"), format!("{k} has no type suffix ({})", SUFFIXES.join(", ")));
        }
        if !v.is_object() {
            return invalid(&format!("/properties/{k}"), format!("{k} must be an object of options"));
        }
    }
    let mut db = f.db();
    let entry = db.metadata.entry(resource.clone()).or_default();
    let t = now();
    for (k, v) in props {
        let mut o = v.as_object().cloned().unwrap_or_default();
        let kind = SUFFIXES.iter().find(|s| k.ends_with(**s)).map(|s| s.to_lowercase()).unwrap_or_default();
        o.entry("type").or_insert(json!(kind));
        o.insert("updatedAt".into(), json!(t));
        entry.insert(k.clone(), Value::Object(o));
    }
    let props = entry.clone();
    Json(metadata_doc(&resource, &props)).into_response()
}

async fn users(State(f): S, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let p = match Page::of(&q, 500) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let db = f.db();
    let email = q.get("email").map(|e| e.to_lowercase());
    let items: Vec<Value> = db
        .all("user")
        .filter(|u| email.as_ref().is_none_or(|e| u["email"].as_str().is_some_and(|x| x.to_lowercase() == *e)))
        .cloned()
        .collect();
    Json(list("user", items, p, "/v1/users")).into_response()
}

async fn read_user(State(f): S, Path(id): Path<String>) -> Response {
    if id == "current" {
        // The API key's own machine user.
        let me = json!({"id": "000000000000000000000001", "name": "API key", "userType": "machine", "email": null});
        return Json(single("user", &me)).into_response();
    }
    match f.db().get("user", &id) {
        Some(u) => Json(single("user", u)).into_response(),
        None => not_found("user", &id),
    }
}

async fn create_user(State(f): S, Json(b): Json<Value>) -> Response {
    let Some(email) = b["email"].as_str().filter(|e| e.contains('@')).map(str::to_string) else {
        return invalid("/email", "email is required".into());
    };
    let mut db = f.db();
    if db.all("user").any(|u| u["email"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&email))) {
        return error(
            StatusCode::CONFLICT,
            "duplicate",
            "Conflict",
            "a user with this email exists".into(),
            Some("/email"),
        );
    }
    let id = match db.new_id(b.get("id")) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let u = json!({"id": id, "name": b["name"].as_str().unwrap_or(&email), "displayName": b["displayName"],
        "email": email, "userType": b["userType"].as_str().unwrap_or("user"), "createdAt": now()});
    db.put("user", u.clone());
    (StatusCode::CREATED, Json(single("user", &u))).into_response()
}
