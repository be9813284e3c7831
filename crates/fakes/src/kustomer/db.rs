//! The fake's storage: every object as Kustomer stores it (flat attributes with `id`), ids in
//! Kustomer's form (24 hex digits), identifier uniqueness, custom attribute suffixes, and the
//! JSON:API shapes answers use.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::error;

/// Suffixes Kustomer reads a custom attribute's type from.
pub const SUFFIXES: &[&str] = &["Num", "At", "Str", "Txt", "Bool", "Url"];

/// Longest text a `…Str` or `…Txt` attribute holds.
const MAX_TEXT: usize = 1024;

/// Every stored object, by type and id.
#[derive(Default)]
pub struct Db {
    seq: u64,
    /// Objects by type (`customer`, `conversation`, `note`, `attachment`, `tag`, `user`, `message`).
    pub objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// Custom attribute metadata by resource (`customer`, `conversation`, …): name → options.
    pub metadata: BTreeMap<String, Map<String, Value>>,
    /// Uploaded file contents by attachment id (only their size and a checksum are kept).
    pub uploads: BTreeMap<String, (usize, u64)>,
}

/// The current time as Kustomer writes it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Db {
    /// The objects of a type.
    pub fn all(&self, kind: &'static str) -> impl Iterator<Item = &Value> {
        self.objects.get(kind).into_iter().flat_map(|m| m.values())
    }

    /// One object.
    pub fn get(&self, kind: &'static str, id: &str) -> Option<&Value> {
        self.objects.get(kind).and_then(|m| m.get(id))
    }

    /// One object, to change.
    pub fn get_mut(&mut self, kind: &'static str, id: &str) -> Option<&mut Value> {
        self.objects.get_mut(kind).and_then(|m| m.get_mut(id))
    }

    /// Stores an object under its `id`.
    pub fn put(&mut self, kind: &'static str, obj: Value) {
        let id = obj["id"].as_str().unwrap_or_default().to_string();
        self.objects.entry(kind).or_default().insert(id, obj);
    }

    /// Removes an object.
    pub fn remove(&mut self, kind: &'static str, id: &str) -> Option<Value> {
        self.objects.get_mut(kind).and_then(|m| m.remove(id))
    }

    /// The id for a new object: the one the client chose (an unused object id), or a fresh one.
    pub fn new_id(&mut self, wanted: Option<&Value>) -> Result<String, Response> {
        match wanted {
            None | Some(Value::Null) => {
                self.seq += 1;
                let secs = chrono::Utc::now().timestamp().max(0) as u64;
                Ok(format!("{:08x}{:016x}", secs & 0xffff_ffff, self.seq))
            }
            Some(Value::String(s)) if is_object_id(s) => {
                let s = s.to_lowercase();
                if self.objects.values().any(|m| m.contains_key(&s)) {
                    return Err(error(
                        StatusCode::CONFLICT,
                        "duplicate",
                        "Duplicate key",
                        format!("an object with id {s} already exists"),
                        Some("/id"),
                    ));
                }
                Ok(s)
            }
            Some(_) => Err(error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid id",
                "id must be an object id (24 hexadecimal digits)".into(),
                Some("/id"),
            )),
        }
    }
}

/// Checks a `custom` object: every key ends with a type suffix and its value has that type.
pub fn check_custom(custom: &Value) -> Result<(), Response> {
    let Some(m) = custom.as_object() else {
        return Err(invalid("/custom", "custom must be an object".into()));
    };
    for (k, v) in m {
        let Some(suffix) = SUFFIXES.iter().find(|s| k.ends_with(**s) && k.len() > s.len()) else {
            return Err(invalid(
                &format!("/custom/{k}"),
                format!("custom attribute {k} has no type suffix ({})", SUFFIXES.join(", ")),
            ));
        };
        let ok = match (*suffix, v) {
            (_, Value::Null) => true,
            ("Num", v) => v.is_number(),
            ("Bool", v) => v.is_boolean(),
            ("Str" | "Txt", Value::String(s)) => s.chars().count() <= MAX_TEXT,
            ("At", Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            ("Url", Value::String(s)) => s.starts_with("http://") || s.starts_with("https://"),
            _ => false,
        };
        if !ok {
            return Err(invalid(
                &format!("/custom/{k}"),
                format!("custom attribute {k} does not hold a valid {suffix}"),
            ));
        }
    }
    Ok(())
}

/// A 400 answer naming the field.
pub fn invalid(pointer: &str, detail: String) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid", "Invalid request", detail, Some(pointer))
}

/// A 404 answer.
pub fn not_found(kind: &str, id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "Not Found", format!("{kind} {id} not found"), None)
}

/// Relationships of each type: attribute → related type.
fn relations(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "conversation" => &[("customer", "customer")],
        "note" => &[("customer", "customer"), ("conversation", "conversation")],
        "message" => &[("customer", "customer"), ("conversation", "conversation")],
        _ => &[],
    }
}

/// The plural used in paths.
pub fn plural(kind: &str) -> String {
    format!("{kind}s")
}

/// An object as a JSON:API resource: `{type, id, attributes, relationships, links}`.
pub fn resource(kind: &str, obj: &Value) -> Value {
    let mut attrs = obj.as_object().cloned().unwrap_or_default();
    let id = attrs.remove("id").unwrap_or(Value::Null);
    let mut rels = Map::new();
    for (field, to) in relations(kind) {
        if let Some(Value::String(other)) = attrs.remove(*field) {
            rels.insert(
                field.to_string(),
                json!({"data": {"type": to, "id": other}, "links": {"self": format!("/v1/{}/{other}", plural(to))}}),
            );
        }
    }
    let self_link = format!("/v1/{}/{}", plural(kind), id.as_str().unwrap_or_default());
    json!({"type": kind, "id": id, "attributes": attrs, "relationships": rels, "links": {"self": self_link}})
}

/// One resource answer.
pub fn single(kind: &str, obj: &Value) -> Value {
    json!({"data": resource(kind, obj)})
}

/// Page parameters: `page` from 1, `pageSize` up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Page number, from 1.
    pub page: usize,
    /// Items per page.
    pub size: usize,
}

impl Page {
    /// Reads `page` and `pageSize` from a query.
    pub fn of(q: &BTreeMap<String, String>, max: usize) -> Result<Page, Response> {
        let num = |k: &str, default: usize| match q.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "Invalid query",
                    format!("{k} must be a whole number from 1"),
                    None,
                )
            }),
        };
        Ok(Page { page: num("page", 1)?, size: num("pageSize", 100)?.min(max) })
    }
}

/// A list answer: one page of resources, `meta` and `links.next` (null on the last page).
pub fn list(kind: &str, items: Vec<Value>, p: Page, path: &str) -> Value {
    let total = items.len();
    let start = (p.page - 1).saturating_mul(p.size);
    let data: Vec<Value> = items.iter().skip(start).take(p.size).map(|o| resource(kind, o)).collect();
    let link = |n: usize| Value::String(format!("{path}?page={n}&pageSize={}", p.size));
    let next = if start + p.size < total { link(p.page + 1) } else { Value::Null };
    let prev = if p.page > 1 { link(p.page - 1) } else { Value::Null };
    json!({
        "data": data,
        "meta": {"page": p.page, "pageSize": p.size, "total": total},
        "links": {"self": link(p.page), "first": link(1), "prev": prev, "next": next},
    })
}

/// Newest first, as Kustomer lists timelines.
pub fn newest_first(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| {
        let k = |o: &Value| (o["createdAt"].as_str().unwrap_or_default().to_string(), o["id"].to_string());
        k(b).cmp(&k(a))
    });
    v
}
