//! Notes on conversations: activities, session data, call logs and files. Each note's id is
//! derived from its casebridge key, so a replay meets the note it already wrote (Kustomer
//! refuses the duplicate id) and a rewrite updates that note in place. Files are linked in
//! the note, or uploaded as attachments (the two-step upload, streamed) for allowed hosts.

use casebridge_rules::keys;
use casebridge_rules::model::SessionData;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::KustomerConnector;
use super::api::{id_of, object_id};
use crate::{CrmError, WriteOutcome};

/// A file uploaded to Kustomer, as a note references it.
pub type Attached = Value;

fn transient(message: String) -> CrmError {
    CrmError::Transient { message, retry_after: None }
}

fn secs(v: Option<f64>) -> Option<String> {
    v.map(|s| format!("{s:.0} s"))
}

/// The text of a session's note: one line per known fact.
pub fn session_text(d: &SessionData) -> String {
    let mut lines = vec![format!(
        "Session {} ({})",
        d.session_id,
        if d.session_type.is_empty() { "session" } else { &d.session_type }
    )];
    let mut add = |label: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            lines.push(format!("{label}: {v}"));
        }
    };
    let t = |x: Option<DateTime<Utc>>| x.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    add("Queue", d.queue.clone());
    add("Customer phone", d.customer_phone.clone());
    add("Agent", d.agent_id.clone());
    add("Started", t(d.started_at));
    add("Connected", t(d.connected_at));
    add("Ended", t(d.ended_at));
    add("Call duration", secs(d.duration_s));
    add("Hold time", secs(d.hold_s));
    add("Wait time", secs(d.wait_s));
    add("Customer messages", (d.customer_messages > 0).then(|| d.customer_messages.to_string()));
    add("CSAT score", d.csat_score.map(|s| s.to_string()));
    add("CSAT comment", d.csat_comment.clone());
    add("Disposition", d.disposition.clone());
    add("Notes", d.notes.clone());
    add("Recording", d.recording_url.clone());
    add("Transcript", d.transcript.clone());
    if d.abandoned {
        add("Abandoned", Some(d.missed_reason.map(|m| m.as_str().to_string()).unwrap_or_else(|| "yes".into())));
    }
    for l in &d.legs {
        add("Leg", Some(format!("{} {} at {}", l.kind, l.agent_id.as_deref().unwrap_or("-"), l.at.to_rfc3339())));
    }
    for u in &d.updates {
        add("Update", Some(u.clone()));
    }
    for (k, v) in &d.custom_data {
        add(&format!("Custom data {k}"), Some(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())));
    }
    lines.join("\n")
}

/// The part of a multipart form before the file's bytes, and the part after.
fn multipart(
    boundary: &str,
    fields: &serde_json::Map<String, Value>,
    name: &str,
    content_type: &str,
) -> (Vec<u8>, Vec<u8>) {
    let mut head = String::new();
    for (k, v) in fields {
        let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        head.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"));
    }
    let file_name: String = name.chars().filter(|c| *c != '"' && *c != '\r' && *c != '\n').collect();
    head.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    ));
    (head.into_bytes(), format!("\r\n--{boundary}--\r\n").into_bytes())
}

impl KustomerConnector {
    /// Writes a note keyed `key` on a conversation: created once; with `rewrite`, an existing
    /// one takes the new text (and conversation). True when it was created now.
    pub(super) async fn put_note(
        &self,
        conversation: &str,
        key: &str,
        text: &str,
        at: DateTime<Utc>,
        extra: Option<(bool, Vec<Attached>)>,
    ) -> Result<bool, CrmError> {
        let id = object_id(key, at.timestamp());
        let (rewrite, attachments) = extra.unwrap_or((false, Vec::new()));
        let mut patch = json!({"body": text, "conversation": conversation, "deleted": false});
        if !attachments.is_empty() {
            patch["attachments"] = json!(attachments);
        }
        let path = format!("/notes/{id}");
        if rewrite && self.notes.lock().await.contains(&id) {
            // Written before by this process: update it in one call.
            let reply = self.api.patch(&path, &patch, "rewriting a note").await?;
            if reply.ok() {
                return Ok(false);
            }
            if reply.status != 404 {
                return Err(reply.error("rewriting a note"));
            }
        }
        let mut body = json!({"id": id, "externalId": key, "body": text});
        if !attachments.is_empty() {
            body["attachments"] = json!(attachments);
        }
        let reply = self.api.post(&format!("/conversations/{conversation}/notes"), &body, "writing a note").await?;
        if reply.ok() {
            self.notes.lock().await.insert(id);
            return Ok(true);
        }
        if !reply.is_duplicate() {
            return Err(reply.error("writing a note"));
        }
        if rewrite {
            self.api.patch(&path, &patch, "rewriting a note").await?.data("rewriting a note")?;
        }
        self.notes.lock().await.insert(id);
        Ok(false)
    }

    /// `AddNote`.
    pub(super) async fn add_note(
        &self,
        key: &str,
        conversation: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<WriteOutcome, CrmError> {
        let created = self.put_note(conversation, key, text, at, None).await?;
        let summary = if created {
            format!("Note added to conversation {conversation}")
        } else {
            format!("Note already on conversation {conversation} (replay)")
        };
        Ok(WriteOutcome { created: None, summary })
    }

    /// `WriteSessionData`: one note per session, rewritten in place by later writes. Sessions
    /// without a conversation write it on their customer's newest conversation.
    pub(super) async fn write_session_note(
        &self,
        conversation: Option<&str>,
        customer: Option<&str>,
        data: &SessionData,
    ) -> Result<WriteOutcome, CrmError> {
        let (conv, where_) = match (conversation, customer) {
            (Some(c), _) => (c.to_string(), format!("conversation {c}")),
            (None, Some(cust)) => match self.latest_conversation(cust).await? {
                Some(c) => (c.clone(), format!("customer {cust}'s newest conversation {c}")),
                None => {
                    return Ok(WriteOutcome {
                        created: None,
                        summary: format!(
                            "Session data not written: Kustomer keeps notes on conversations and customer {cust} has none"
                        ),
                    });
                }
            },
            (None, None) => {
                return Ok(WriteOutcome {
                    created: None,
                    summary: "Session data not written: no conversation or customer to hold it in Kustomer".into(),
                });
            }
        };
        let at = data.started_at.or(data.ended_at).unwrap_or_default();
        let key = keys::session_activity_key(&data.session_id);
        self.put_note(&conv, &key, &session_text(data), at, Some((true, Vec::new()))).await?;
        Ok(WriteOutcome { created: None, summary: format!("Session data written on {where_}") })
    }

    /// `LogCall`: the wrap-up note (disposition and notes) on the related conversation, else on
    /// the customer's newest one; with neither, the session's call log is deleted.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn log_call(
        &self,
        session_id: &str,
        person: Option<&str>,
        record: Option<&str>,
        disposition: &str,
        label: &str,
        notes: &str,
        agent_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<WriteOutcome, CrmError> {
        let key = keys::call_log_key(session_id);
        let id = object_id(&key, at.timestamp());
        let conv = match (record, person) {
            (Some(r), _) => r.to_string(),
            (None, Some(p)) => self.latest_conversation(p).await?.ok_or_else(|| {
                CrmError::Permanent(format!(
                    "Kustomer keeps call logs as notes on conversations and customer {p} has none: relate the call to a conversation"
                ))
            })?,
            (None, None) => {
                let reply = self.api.patch(&format!("/notes/{id}"), &json!({"deleted": true}), "withdrawing a call log").await?;
                let summary = if reply.status == 404 { "No call log to withdraw" } else { "Call log withdrawn" };
                if reply.status != 404 {
                    reply.data("withdrawing a call log")?;
                }
                return Ok(WriteOutcome { created: None, summary: summary.into() });
            }
        };
        let mut text =
            if disposition.is_empty() { "Call logged".to_string() } else { format!("Call: {label} ({disposition})") };
        text.push_str(&format!("\nSession: {session_id}"));
        if !notes.is_empty() {
            text.push_str(&format!("\nNotes: {notes}"));
        }
        if let Some(a) = agent_id {
            text.push_str(&format!("\nAgent: {a}"));
        }
        self.put_note(&conv, &key, &text, at, Some((true, Vec::new()))).await?;
        let on = match person {
            Some(p) => format!("for customer {p} on conversation {conv}"),
            None => format!("on conversation {conv}"),
        };
        Ok(WriteOutcome { created: None, summary: format!("Call logged {on}") })
    }

    /// `AddAttachment`: a note with the file, uploaded for allowed hosts and inline content,
    /// otherwise linked.
    pub(super) async fn add_file(
        &self,
        key: &str,
        conversation: &str,
        name: &str,
        url: Option<&str>,
        content: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<WriteOutcome, CrmError> {
        let uploads = url.is_some_and(|u| self.api.config().ext.uploads_from(u)) || content.is_some();
        if uploads && !self.attempted.lock().await.insert(key.to_string()) {
            // A retry: the note may already hold the file; do not upload it twice.
            let id = object_id(key, at.timestamp());
            if self.api.get(&format!("/notes/{id}"), "reading a note").await?.ok() {
                return Ok(WriteOutcome {
                    created: None,
                    summary: format!("{name} already on conversation {conversation} (replay)"),
                });
            }
        }
        let (text, attachments) = match (url, content) {
            (_, Some(c)) => {
                let a = self.upload_bytes(name, "text/plain", c.as_bytes().to_vec()).await?;
                (format!("{name} (attached)"), vec![a])
            }
            (Some(u), None) if uploads => {
                let a = self.upload_from(name, u).await?;
                (format!("{name} (attached)\n{u}"), vec![a])
            }
            (Some(u), None) => (format!("{name}: {u}"), Vec::new()),
            (None, None) => (name.to_string(), Vec::new()),
        };
        let created = self.put_note(conversation, key, &text, at, Some((false, attachments.clone()))).await?;
        let how = if attachments.is_empty() { "linked" } else { "uploaded" };
        let summary = if created {
            format!("{name} {how} on conversation {conversation}")
        } else {
            format!("{name} already on conversation {conversation} (replay)")
        };
        Ok(WriteOutcome { created: None, summary })
    }

    /// Creates an attachment and answers where to upload it.
    async fn new_attachment(
        &self,
        name: &str,
        content_type: &str,
        len: u64,
    ) -> Result<(Attached, String, serde_json::Map<String, Value>), CrmError> {
        let body = json!({"name": name, "contentType": content_type, "contentLength": len});
        let reply = self.api.post("/attachments", &body, "creating an attachment").await?;
        if !reply.ok() {
            return Err(reply.error("creating an attachment"));
        }
        let id = reply
            .body
            .get("data")
            .and_then(id_of)
            .ok_or_else(|| transient("Kustomer gave the attachment no id".into()))?;
        let url = reply.body.pointer("/meta/upload/url").and_then(Value::as_str).map(str::to_string);
        let fields = reply.body.pointer("/meta/upload/fields").and_then(Value::as_object).cloned();
        let (Some(url), Some(fields)) = (url, fields) else {
            return Err(transient("Kustomer gave the attachment no upload address".into()));
        };
        Ok((json!({"_id": id, "name": name, "contentType": content_type, "contentLength": len}), url, fields))
    }

    async fn send_upload(&self, url: &str, body: reqwest::Body, total: u64, boundary: &str) -> Result<(), CrmError> {
        let req = self
            .api
            .http()
            .client()
            .post(url)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .header("content-length", total)
            .body(body);
        let resp = req.send().await.map_err(|e| transient(format!("Kustomer upload: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
        let msg = format!("Kustomer's file storage refused the upload ({status}): {text}");
        Err(if status.is_server_error() { transient(msg) } else { CrmError::Permanent(msg) })
    }

    /// Uploads bytes held in memory (small inline content such as a transcript).
    async fn upload_bytes(&self, name: &str, content_type: &str, bytes: Vec<u8>) -> Result<Attached, CrmError> {
        let (att, url, fields) = self.new_attachment(name, content_type, bytes.len() as u64).await?;
        let boundary = format!("casebridge{}", object_id(name, 0));
        let (head, tail) = multipart(&boundary, &fields, name, content_type);
        let total = (head.len() + bytes.len() + tail.len()) as u64;
        let body: Vec<u8> = [head, bytes, tail].concat();
        self.send_upload(&url, reqwest::Body::from(body), total, &boundary).await?;
        Ok(att)
    }

    /// Uploads a file from its address, streamed from the source to Kustomer's storage.
    async fn upload_from(&self, name: &str, source: &str) -> Result<Attached, CrmError> {
        let resp = self
            .api
            .http()
            .client()
            .get(source)
            .send()
            .await
            .map_err(|e| transient(format!("recording {source}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let msg = format!("the recording at {source} answered {status}");
            return Err(if status.is_server_error() { transient(msg) } else { CrmError::Permanent(msg) });
        }
        let len = resp.content_length().ok_or_else(|| {
            CrmError::Permanent(format!(
                "the recording at {source} gives no length; Kustomer needs one to take the file"
            ))
        })?;
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let (att, url, fields) = self.new_attachment(name, &content_type, len).await?;
        let boundary = format!("casebridge{}", object_id(name, 0));
        let (head, tail) = multipart(&boundary, &fields, name, &content_type);
        let total = head.len() as u64 + len + tail.len() as u64;
        let stream = futures_util::stream::once(async move { Ok::<_, reqwest::Error>(bytes::Bytes::from(head)) })
            .chain(resp.bytes_stream())
            .chain(futures_util::stream::once(async move { Ok(bytes::Bytes::from(tail)) }));
        self.send_upload(&url, reqwest::Body::wrap_stream(stream), total, &boundary).await?;
        Ok(att)
    }
}
