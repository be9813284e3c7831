//! The multipart body of a ContentVersion insert: an `entity_content` JSON part with the
//! fields, and a `VersionData` part with the file's bytes.

use serde_json::{Map, Value};

use super::org::SfError;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

fn bad(msg: &str) -> SfError {
    SfError::new(400, "MALFORMED_REQUEST", format!("Invalid multipart request: {msg}"))
}

/// The fields of `entity_content` and the bytes of `VersionData`.
pub type Entity = (Map<String, Value>, Option<Vec<u8>>);

/// Reads a multipart ContentVersion body.
pub fn entity(content_type: &str, body: &[u8]) -> Result<Entity, SfError> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_string())
        .ok_or_else(|| bad("no boundary in Content-Type"))?;
    let delim = format!("--{boundary}").into_bytes();
    let mut fields = None;
    let mut data = None;
    let mut at = find(body, &delim, 0).ok_or_else(|| bad("no first boundary"))? + delim.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            break;
        }
        let head_end = find(body, b"\r\n\r\n", at).ok_or_else(|| bad("part without headers"))?;
        let headers = String::from_utf8_lossy(&body[at..head_end]).to_string();
        let start = head_end + 4;
        let next = find(body, &delim, start).ok_or_else(|| bad("part without a closing boundary"))?;
        let end = next.saturating_sub(2).max(start); // the CRLF before the boundary
        let content = &body[start..end];
        let name = headers
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name="))
            .map(|n| n.split(['\r', '\n']).next().unwrap_or(n).trim_matches('"').to_string())
            .unwrap_or_default();
        match name.as_str() {
            "entity_content" => match serde_json::from_slice::<Value>(content) {
                Ok(Value::Object(m)) => fields = Some(m),
                _ => return Err(bad("entity_content must be a JSON object")),
            },
            "VersionData" => data = Some(content.to_vec()),
            other => return Err(bad(&format!("unknown part {other:?}"))),
        }
        at = next + delim.len();
    }
    let fields = fields.ok_or_else(|| bad("the entity_content part is missing"))?;
    if data.is_none() {
        return Err(bad("the VersionData part is missing"));
    }
    Ok((fields, data))
}
