//! The REST resources under `/services/data/vNN.N/`, answered from one place so that a
//! `/composite` subrequest is served exactly like the same request sent alone: sObject create,
//! read, update, delete and upsert by External ID, describe, SOQL with `nextRecordsUrl` paging,
//! SOSL, composite with `@{ref.path}` references, Tooling `CustomField` creation, limits.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::org::{Org, Record, SfError};
use super::schema::PHONE_FIELDS;
use super::soql::{self, Query, Scope};

/// One request to the data API.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path, `/services/data/v66.0/…`, percent-encoded as sent.
    pub path: &'a str,
    /// Raw query string.
    pub query: Option<&'a str>,
    /// Content-Type of the body.
    pub content_type: &'a str,
    /// Body.
    pub body: &'a [u8],
}

/// An answer: status and JSON body (none for 204).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Option<Value>,
}

impl Answer {
    fn ok(status: u16, body: Value) -> Answer {
        Answer { status, body: Some(body) }
    }
    fn empty() -> Answer {
        Answer { status: 204, body: None }
    }
}

impl From<SfError> for Answer {
    fn from(e: SfError) -> Answer {
        Answer { status: e.status, body: Some(e.body()) }
    }
}

/// The org plus the open query cursors.
#[derive(Debug, Clone, Default)]
pub struct Api {
    /// The data.
    pub org: Org,
    cursors: BTreeMap<String, Vec<Value>>,
    cursor_seq: u64,
}

/// Decodes `%XX` escapes (and `+` as a space when `form`).
pub fn percent_decode(s: &str, form: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' if form => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parameter of a query string.
pub fn param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k, true) == name).then(|| percent_decode(v, true))
    })
}

fn malformed(msg: impl Into<String>) -> SfError {
    SfError::new(400, "MALFORMED_QUERY", msg)
}

fn json_body(call: &Call) -> Result<Map<String, Value>, SfError> {
    if call.body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(call.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SfError::new(400, "JSON_PARSER_ERROR", "the body must be a JSON object")),
        Err(e) => Err(SfError::new(400, "JSON_PARSER_ERROR", format!("Unexpected character: {e}"))),
    }
}

fn attributes(obj: &str, id: &str, version: &str) -> Value {
    json!({"type": obj, "url": format!("/services/data/{version}/sobjects/{obj}/{id}")})
}

impl Api {
    /// Answers one request to `/services/data/…`.
    pub fn handle(&mut self, call: &Call) -> Answer {
        match self.route(call) {
            Ok(a) => a,
            Err(e) => e.into(),
        }
    }

    fn route(&mut self, call: &Call) -> Result<Answer, SfError> {
        let rest = call.path.strip_prefix("/services/data/").ok_or_else(SfError::not_found)?;
        let segs: Vec<String> = rest.split('/').filter(|s| !s.is_empty()).map(|s| percent_decode(s, false)).collect();
        let Some((version, segs)) = segs.split_first() else { return Err(SfError::not_found()) };
        let good_version = version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok_and(|n| (20..=70).contains(&n)) && b == "0");
        if !good_version {
            return Err(SfError::not_found());
        }
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let m = call.method;
        match (m, segs.as_slice()) {
            ("GET", ["query"]) => {
                let q = param(call.query, "q").ok_or_else(|| malformed("the q parameter is required"))?;
                self.query(&q, version)
            }
            ("GET", ["query", cursor]) => self.next_page(cursor, version),
            ("GET", ["search"]) => {
                let q = param(call.query, "q").ok_or_else(|| malformed("the q parameter is required"))?;
                self.search(&q, version)
            }
            ("GET", ["limits"]) => {
                let c = &self.org.config;
                Ok(Answer::ok(
                    200,
                    json!({"DailyApiRequests": {"Max": c.daily_limit, "Remaining": c.daily_limit.saturating_sub(c.api_usage)}}),
                ))
            }
            ("POST", ["composite"]) => self.composite(call, version),
            ("POST", ["tooling", "sobjects", "CustomField"]) => self.custom_field(call),
            ("POST", ["sobjects", obj]) => {
                let (fields, data) = if call.content_type.starts_with("multipart/") {
                    super::multipart::entity(call.content_type, call.body)?
                } else {
                    (json_body(call)?, None)
                };
                let id = self.org.create(obj, &fields)?;
                if let Some(data) = data {
                    let text = String::from_utf8(data.clone()).unwrap_or_else(|_| format!("<{} bytes>", data.len()));
                    self.org.set_raw(obj, &id, "VersionData", json!(text));
                    self.org.set_raw(obj, &id, "ContentSize", json!(data.len()));
                } else if let Some(b64) = fields.get("VersionData").and_then(Value::as_str) {
                    self.org.set_raw(obj, &id, "ContentSize", json!(b64.len() / 4 * 3));
                }
                Ok(Answer::ok(201, json!({"id": id, "success": true, "errors": []})))
            }
            ("GET", ["sobjects", obj, "describe"]) => {
                self.org.describe(obj).map(|d| Answer::ok(200, d)).ok_or_else(SfError::not_found)
            }
            ("GET", ["sobjects", obj, id]) => match self.org.get(id) {
                Some((t, r)) if t == *obj => {
                    let mut r = r.clone();
                    r.insert("attributes".into(), attributes(obj, id, version));
                    Ok(Answer::ok(200, Value::Object(r)))
                }
                _ => Err(SfError::not_found()),
            },
            ("PATCH", ["sobjects", obj, id]) => {
                self.org.update(obj, id, &json_body(call)?)?;
                Ok(Answer::empty())
            }
            ("DELETE", ["sobjects", obj, id]) => {
                self.org.delete(obj, id)?;
                Ok(Answer::empty())
            }
            ("GET" | "DELETE", ["sobjects", obj, field, value]) => {
                let name = self.org.field(obj, field).ok_or_else(SfError::not_found)?;
                let ids = self.org.by_field(obj, &name, value);
                match (ids.as_slice(), m) {
                    ([], _) => Err(SfError::not_found()),
                    ([id], "DELETE") => {
                        let id = id.clone();
                        self.org.delete(obj, &id)?;
                        Ok(Answer::empty())
                    }
                    ([id], _) => {
                        let r = self.org.get(id).map(|(_, r)| r.clone()).unwrap_or_default();
                        let mut r = r;
                        r.insert("attributes".into(), attributes(obj, id, version));
                        Ok(Answer::ok(200, Value::Object(r)))
                    }
                    (many, _) => Ok(Answer::ok(300, several(obj, many, version))),
                }
            }
            ("PATCH", ["sobjects", obj, field, value]) => {
                match self.org.upsert(obj, field, value, &json_body(call)?)? {
                    Ok((id, true)) => {
                        Ok(Answer::ok(201, json!({"id": id, "success": true, "errors": [], "created": true})))
                    }
                    Ok((id, false)) => {
                        Ok(Answer::ok(200, json!({"id": id, "success": true, "errors": [], "created": false})))
                    }
                    Err(ids) => Ok(Answer::ok(300, several(obj, &ids, version))),
                }
            }
            (_, ["sobjects", ..] | ["query", ..] | ["search"] | ["composite"]) => {
                Err(SfError::new(405, "METHOD_NOT_ALLOWED", format!("HTTP Method '{m}' not allowed for this resource")))
            }
            _ => Err(SfError::not_found()),
        }
    }

    /// Checks that every field a query names exists on its object.
    fn check_query(&self, q: &mut Query) -> Result<(), SfError> {
        if !self.org.knows(&q.object) {
            return Err(SfError::new(400, "INVALID_TYPE", format!("sObject type '{}' is not supported.", q.object)));
        }
        for f in q.named_fields() {
            if self.org.field(&q.object, &f).is_none() {
                return Err(SfError::new(
                    400,
                    "INVALID_FIELD",
                    format!(
                        "No such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.",
                        q.object
                    ),
                ));
            }
        }
        let norm = |f: &mut String| {
            if let Some(n) = self.org.field(&q.object, f) {
                *f = n;
            }
        };
        q.fields.iter_mut().for_each(norm);
        q.conds.iter_mut().for_each(|c| norm(&mut c.field));
        if let Some((f, _)) = q.order.as_mut() {
            norm(f);
        }
        Ok(())
    }

    fn project(q: &Query, r: &Record, version: &str) -> Value {
        let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
        let mut m = Map::new();
        m.insert("attributes".into(), attributes(&q.object, id, version));
        for f in &q.fields {
            m.insert(f.clone(), r.get(f).cloned().unwrap_or(Value::Null));
        }
        Value::Object(m)
    }

    fn query(&mut self, text: &str, version: &str) -> Result<Answer, SfError> {
        let mut q = soql::parse_soql(text).map_err(malformed)?;
        self.check_query(&mut q)?;
        let rows: Vec<Value> =
            q.run(self.org.all(&q.object).iter()).into_iter().map(|r| Self::project(&q, r, version)).collect();
        Ok(Answer::ok(200, self.page(rows, version)))
    }

    fn page(&mut self, mut rows: Vec<Value>, version: &str) -> Value {
        let total = rows.len();
        let size = self.org.config.page_size.max(1);
        if rows.len() <= size {
            return json!({"totalSize": total, "done": true, "records": rows});
        }
        let rest = rows.split_off(size);
        self.cursor_seq += 1;
        let cursor = format!("01gFK{:010}-{size}", self.cursor_seq);
        self.cursors.insert(cursor.clone(), rest);
        json!({"totalSize": total, "done": false, "nextRecordsUrl": format!("/services/data/{version}/query/{cursor}"),
               "records": rows})
    }

    fn next_page(&mut self, cursor: &str, version: &str) -> Result<Answer, SfError> {
        let rows = self
            .cursors
            .remove(cursor)
            .ok_or_else(|| SfError::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator"))?;
        let total = rows.len();
        let mut page = self.page(rows, version);
        // totalSize counts the whole result, as the first page said.
        page["totalSize"] = json!(total);
        Ok(Answer::ok(200, page))
    }

    fn search(&mut self, text: &str, version: &str) -> Result<Answer, SfError> {
        let s = soql::parse_sosl(text).map_err(|m| SfError::new(400, "MALFORMED_SEARCH", m))?;
        let mut out = Vec::new();
        for mut q in s.returning {
            self.check_query(&mut q)?;
            let hit = |r: &&Record| match s.scope {
                Scope::Phone => PHONE_FIELDS
                    .iter()
                    .any(|f| r.get(*f).and_then(Value::as_str).is_some_and(|p| soql::phone_matches(p, &s.term))),
                Scope::Email => ["Email", "PersonEmail"]
                    .iter()
                    .any(|f| r.get(*f).and_then(Value::as_str).is_some_and(|e| e.eq_ignore_ascii_case(&s.term))),
                Scope::Name => r
                    .get("Name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.to_lowercase().contains(&s.term.to_lowercase())),
                Scope::All => r.values().any(|v| {
                    v.as_str().is_some_and(|t| {
                        t.to_lowercase().contains(&s.term.to_lowercase()) || soql::phone_matches(t, &s.term)
                    })
                }),
            };
            let found: Vec<&Record> = self.org.all(&q.object).iter().filter(hit).collect();
            out.extend(q.run(found.into_iter()).into_iter().map(|r| Self::project(&q, r, version)));
        }
        Ok(Answer::ok(200, json!({"searchRecords": out})))
    }

    fn custom_field(&mut self, call: &Call) -> Result<Answer, SfError> {
        if !self.org.config.tooling_allowed {
            return Err(SfError::new(
                403,
                "INSUFFICIENT_ACCESS",
                "You do not have sufficient privileges to create custom fields: the user needs the Customize Application permission.",
            ));
        }
        let body = json_body(call)?;
        let full = body.get("FullName").and_then(Value::as_str).unwrap_or_default();
        let Some((obj, name)) = full.split_once('.') else {
            return Err(SfError::on(400, "INVALID_FIELD", "FullName must be Object.Field__c", "FullName"));
        };
        if !self.org.knows(obj) {
            return Err(SfError::on(
                400,
                "INVALID_TYPE",
                format!("sObject type '{obj}' is not supported."),
                "FullName",
            ));
        }
        let valid = name.strip_suffix("__c").is_some_and(|n| {
            n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !n.contains("__")
                && !n.ends_with('_')
                && n.len() <= 40
        });
        if !valid {
            return Err(SfError::on(
                400,
                "INVALID_FIELD",
                format!("The API name {name} is not valid: letters, digits and single underscores, ending in __c"),
                "FullName",
            ));
        }
        let meta = body.get("Metadata").and_then(Value::as_object).cloned().unwrap_or_default();
        let label = meta.get("label").and_then(Value::as_str).unwrap_or(name).to_string();
        let kind = meta.get("type").and_then(Value::as_str).unwrap_or("Text").to_string();
        let external = meta.get("externalId").and_then(Value::as_bool).unwrap_or(false);
        if !["Text", "Number", "LongTextArea", "Checkbox", "DateTime", "MultiselectPicklist"].contains(&kind.as_str()) {
            return Err(SfError::on(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                format!("unsupported field type {kind}"),
                "Metadata",
            ));
        }
        if !self.org.add_custom(obj, name, &label, &kind, external) {
            return Err(SfError::new(
                400,
                "DUPLICATE_DEVELOPER_NAME",
                format!("There is already a field named {name} on {obj}."),
            ));
        }
        let id = self.org.insert_raw(
            "CustomField",
            json!({"FullName": full, "DeveloperName": name.trim_end_matches("__c"),
            "TableEnumOrId": obj, "Metadata": meta}),
        );
        Ok(Answer::ok(201, json!({"id": id, "success": true, "errors": []})))
    }

    fn composite(&mut self, call: &Call, version: &str) -> Result<Answer, SfError> {
        let body = json_body(call)?;
        let all_or_none = body.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
        let subs = body
            .get("compositeRequest")
            .and_then(Value::as_array)
            .ok_or_else(|| SfError::new(400, "JSON_PARSER_ERROR", "compositeRequest is required"))?;
        if subs.len() > 25 {
            return Err(SfError::new(400, "LIMIT_EXCEEDED", "A composite request can have at most 25 subrequests."));
        }
        let queries = subs
            .iter()
            .filter(|s| s["url"].as_str().is_some_and(|u| u.contains("/query") || u.contains("/search")))
            .count();
        if queries > 5 {
            return Err(SfError::new(
                400,
                "LIMIT_EXCEEDED",
                "A composite request can have at most 5 query or collection subrequests.",
            ));
        }
        let snapshot = all_or_none.then(|| self.clone());
        let mut refs: BTreeMap<String, Value> = BTreeMap::new();
        let mut out: Vec<Value> = Vec::new();
        let mut failed = false;
        for sub in subs {
            let reference = sub["referenceId"].as_str().unwrap_or_default().to_string();
            let answer = match self.subrequest(sub, &refs, version) {
                Ok(a) => a,
                Err(e) => e.into(),
            };
            if (200..300).contains(&answer.status) {
                if let Some(b) = &answer.body {
                    refs.insert(reference.clone(), b.clone());
                }
            } else {
                failed = true;
            }
            out.push(json!({"body": answer.body, "httpHeaders": {}, "httpStatusCode": answer.status,
                            "referenceId": reference}));
            if failed && all_or_none {
                break;
            }
        }
        if let (true, Some(before)) = (failed, snapshot) {
            *self = before;
            let halted = SfError::new(
                400,
                "PROCESSING_HALTED",
                "The transaction was rolled back since another operation in the same transaction failed.",
            );
            for (i, sub) in subs.iter().enumerate() {
                let keep_error = out.get(i).is_some_and(|o| o["httpStatusCode"].as_u64().is_some_and(|s| s >= 300));
                if !keep_error {
                    let entry = json!({"body": halted.body(), "httpHeaders": {}, "httpStatusCode": 400,
                                       "referenceId": sub["referenceId"]});
                    if i < out.len() { out[i] = entry } else { out.push(entry) }
                }
            }
        }
        Ok(Answer::ok(200, json!({"compositeResponse": out})))
    }

    fn subrequest(&mut self, sub: &Value, refs: &BTreeMap<String, Value>, version: &str) -> Result<Answer, SfError> {
        let method = sub["method"].as_str().unwrap_or("GET").to_ascii_uppercase();
        let url = resolve_refs(sub["url"].as_str().unwrap_or_default(), refs, false)?;
        if !url.starts_with(&format!("/services/data/{version}/")) && !url.starts_with("/services/data/v") {
            return Err(SfError::new(400, "INVALID_URL", format!("The subrequest URL {url} is not a REST API URL")));
        }
        if url.contains("/composite") {
            return Err(SfError::new(400, "INVALID_URL", "Composite subrequests cannot be composite requests"));
        }
        let body = match sub.get("body") {
            None | Some(Value::Null) => Vec::new(),
            Some(b) => {
                let text = resolve_refs(&b.to_string(), refs, true)?;
                text.into_bytes()
            }
        };
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (url, None),
        };
        let call = Call {
            method: &method,
            path: &path,
            query: query.as_deref(),
            content_type: "application/json",
            body: &body,
        };
        Ok(self.handle(&call))
    }
}

fn several(obj: &str, ids: &[String], version: &str) -> Value {
    json!(ids.iter().map(|id| format!("/services/data/{version}/sobjects/{obj}/{id}")).collect::<Vec<_>>())
}

/// Replaces `@{ref.path}` with the value at `path` in `ref`'s answer.
fn resolve_refs(text: &str, refs: &BTreeMap<String, Value>, in_json: bool) -> Result<String, SfError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| SfError::new(400, "INVALID_REFERENCE", "unterminated @{ reference"))?;
        let expr = &after[..end];
        let (name, path) = expr.split_once('.').unwrap_or((expr, ""));
        let halted = || {
            SfError::new(
                400,
                "PROCESSING_HALTED",
                format!("Invalid reference specified. No value for {expr} found in {name}."),
            )
        };
        let mut v = refs.get(name).ok_or_else(halted)?;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (key, index) = match part.split_once('[') {
                Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            v = v.get(key).ok_or_else(halted)?;
            if let Some(i) = index {
                v = v.get(i).ok_or_else(halted)?;
            }
        }
        let s = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if in_json {
            // Inside a JSON string: keep the text valid JSON.
            let quoted = Value::String(s).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        } else {
            out.push_str(&s);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
