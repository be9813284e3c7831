//! Each write as Salesforce requests: people and cases created by upsert on the key field
//! (`PATCH /sobjects/{Obj}/{key_field}/{key}`), Tasks upserted by their keys, notes as
//! `CaseComment`s that carry a marker (recognised on a replay), fields and statuses by PATCH.
//! A write becomes a [`Step`]: nothing to send, one REST request (sent alone or inside a
//! composite request), or a file upload.

use std::collections::BTreeMap;

use base64::Engine;
use casebridge_rules::keys;
use casebridge_rules::model::{AccountKind, ObjRef};
use casebridge_rules::ops::CrmOp;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::activity::{call_log_task, cut, hang, session_task, user_id};
use super::client::{Reply, Sf, quote, seg};
use super::ledger::note_marker;
use super::lookups::{object_of, origin};
use crate::{CrmError, WriteOutcome};

/// What the profile names as the reopen status when the settings give none: the connector
/// reads the org's default open status (`CaseStatus.IsDefault`) instead.
pub const DEFAULT_OPEN: &str = "(default open status)";

/// An object as a write refers to it: a Salesforce id, or `@{rN.id}` for one created earlier
/// in the same composite request; with its object when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Id or reference.
    pub id: String,
    /// Contact, Lead, Account, Case…
    pub obj: Option<&'static str>,
}

impl Target {
    /// A Salesforce id.
    pub fn crm(id: &str) -> Target {
        Target { id: id.to_string(), obj: object_of(id) }
    }
}

/// One REST request (path after `/services/data/vNN.N`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sub {
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// JSON body.
    pub body: Option<Value>,
    /// What it does, for error messages.
    pub what: String,
}

/// How to read a request's answer into the write's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// An upsert that creates casebridge's object `key` (a case created new is known empty).
    Created {
        /// casebridge's key.
        key: String,
        /// The object.
        obj: &'static str,
    },
    /// Done; this is the summary.
    Summary(String),
    /// A note or file with its marker on a case.
    Marked {
        /// The case.
        case: String,
        /// The marker.
        marker: String,
        /// Summary.
        summary: String,
    },
    /// A withdrawal: nothing to delete is fine.
    Withdraw,
}

/// A recording to upload as a file on a case.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// The case.
    pub case: String,
    /// File title.
    pub name: String,
    /// Where the recording is.
    pub url: String,
    /// Marker kept in `ReasonForChange`.
    pub marker: String,
}

/// A write, planned.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to send.
    Done(WriteOutcome),
    /// One request.
    Send(Sub, Finish),
    /// A streamed upload.
    Upload(Upload),
}

fn done(summary: impl Into<String>) -> Result<Step, CrmError> {
    Ok(Step::Done(WriteOutcome { created: None, summary: summary.into() }))
}

fn patch(path: String, body: Map<String, Value>, what: impl Into<String>) -> Sub {
    Sub { method: Method::PATCH, path, body: Some(Value::Object(body)), what: what.into() }
}

fn names(name: Option<&str>, fallback: String) -> (Option<String>, String) {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    match name.and_then(|n| n.rsplit_once(' ')) {
        Some((first, last)) => (Some(first.trim().to_string()), cut(last, 80)),
        None => (None, cut(name.map(str::to_string).as_deref().unwrap_or(&fallback), 80)),
    }
}

/// Whether a write reads the record before writing (so it needs the record's real id).
pub fn reads_first(op: &CrmOp) -> bool {
    match op {
        CrmOp::AddNote { .. } | CrmOp::MarkAbandoned { .. } | CrmOp::AddAttachment { .. } => true,
        CrmOp::AppendSession { tags, .. } => !tags.is_empty(),
        _ => false,
    }
}

impl Sf {
    fn person_path(&self, t: &Target, what: &str) -> Result<String, CrmError> {
        match t.obj {
            Some(o @ ("Contact" | "Lead" | "Account")) => Ok(format!("/sobjects/{o}/{}", t.id)),
            _ => Err(CrmError::Permanent(format!("{what}: {} is not a Contact, Lead or person Account id", t.id))),
        }
    }

    /// The case status a wanted status names: the org's own (any case), `closed` as the first
    /// closed status, the default open status for [`DEFAULT_OPEN`] and `open`.
    pub async fn resolve_status(&self, wanted: &str) -> Result<String, CrmError> {
        if wanted == DEFAULT_OPEN
            && let Some(s) = &self.cfg.ext.default_open_status
        {
            return Ok(s.clone());
        }
        let statuses = self.case_statuses().await?;
        if let Some(s) = statuses.iter().find(|s| s.name.eq_ignore_ascii_case(wanted)) {
            return Ok(s.name.clone());
        }
        let pick = match wanted.to_ascii_lowercase().as_str() {
            "closed" | "solved" => {
                statuses.iter().find(|s| s.closed && s.name == "Closed").or_else(|| statuses.iter().find(|s| s.closed))
            }
            _ if wanted == DEFAULT_OPEN || wanted.eq_ignore_ascii_case("open") => {
                statuses.iter().find(|s| s.default && !s.closed).or_else(|| statuses.iter().find(|s| !s.closed))
            }
            _ => None,
        };
        pick.map(|s| s.name.clone()).ok_or_else(|| {
            let all: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
            CrmError::Permanent(format!(
                "status {wanted:?} is not a Case status of this org ({}): use one of them in the settings",
                all.join(", ")
            ))
        })
    }

    /// Plans one write. `target` maps a reference to the id to use.
    pub async fn plan(
        &self,
        key: &str,
        op: &CrmOp,
        target: &(dyn Fn(&ObjRef) -> Result<Target, CrmError> + Sync),
    ) -> Result<Step, CrmError> {
        let kf = &self.cfg.key_field;
        match op {
            CrmOp::CreateAccount { key: k, kind, name, phone, phone_extension, email, user_id: uid, .. } => {
                let obj = match kind {
                    AccountKind::Contact => "Contact",
                    AccountKind::Lead => "Lead",
                    AccountKind::PersonAccount => "Account",
                };
                let fallback = format!("Caller {}", phone.as_deref().or(email.as_deref()).unwrap_or("(unknown)"));
                let (first, last) = names(name.as_deref(), fallback);
                let mut b = Map::new();
                if let Some(f) = first {
                    b.insert("FirstName".into(), json!(f));
                }
                b.insert("LastName".into(), json!(last));
                if let Some(p) = phone {
                    b.insert("Phone".into(), json!(p));
                }
                if let Some(e) = email {
                    b.insert(if obj == "Account" { "PersonEmail" } else { "Email" }.into(), json!(e));
                }
                if obj == "Lead" {
                    b.insert("Company".into(), json!(cut(name.as_deref().unwrap_or("Unknown"), 255)));
                }
                if let Some(x) = phone_extension {
                    b.insert("Description".into(), json!(format!("Phone extension: {x}")));
                }
                if let (Some(f), Some(u)) = (&self.cfg.user_id_field, uid) {
                    b.insert(f.clone(), json!(u));
                }
                let path = format!("/sobjects/{obj}/{kf}/{}", seg(k));
                Ok(Step::Send(patch(path, b, format!("creating {obj} {k}")), Finish::Created { key: k.clone(), obj }))
            }
            CrmOp::UpdateAccount { account, name, email, user_id: uid } => {
                let t = target(account)?;
                let path = self.person_path(&t, "updating a person")?;
                let mut b = Map::new();
                if let Some(n) = name {
                    let (first, last) = names(Some(n), n.clone());
                    b.insert("FirstName".into(), first.map(Value::String).unwrap_or(Value::Null));
                    b.insert("LastName".into(), json!(last));
                }
                if let Some(e) = email {
                    b.insert(if t.obj == Some("Account") { "PersonEmail" } else { "Email" }.into(), json!(e));
                }
                if let (Some(f), Some(u)) = (&self.cfg.user_id_field, uid) {
                    b.insert(f.clone(), json!(u));
                }
                if b.is_empty() {
                    return done(format!("Person {} has nothing to update", t.id));
                }
                let summary = format!("Person {} updated", t.id);
                Ok(Step::Send(patch(path, b, "updating a person"), Finish::Summary(summary)))
            }
            CrmOp::CreateRecord {
                key: k,
                account,
                title,
                leaf_queue,
                channel,
                owner,
                tags,
                session_id,
                abandoned,
                missed_reason,
                note,
                ..
            } => {
                let mut b = Map::new();
                b.insert("Subject".into(), json!(cut(title, 255)));
                b.insert("Origin".into(), json!(origin(*channel)));
                if let Some(s) = &self.cfg.ext.default_open_status {
                    b.insert("Status".into(), json!(s));
                }
                if let Some(a) = account {
                    let t = target(a)?;
                    match t.obj {
                        Some("Contact") => {
                            b.insert("ContactId".into(), json!(t.id));
                        }
                        Some("Account") => {
                            b.insert("AccountId".into(), json!(t.id));
                        }
                        _ => {} // a Lead: cases have no Lead lookup
                    }
                }
                if let Some(o) = owner.as_deref().and_then(user_id) {
                    b.insert("OwnerId".into(), json!(o));
                }
                if let Some(f) = &self.cfg.tags_field
                    && !tags.is_empty()
                {
                    b.insert(f.clone(), json!(tags.join(";")));
                }
                if let (Some(f), Some(q)) = (&self.cfg.queue_field, leaf_queue) {
                    b.insert(f.clone(), json!(cut(q, 255)));
                }
                let mut desc = vec![format!("casebridge session {session_id}")];
                if *abandoned {
                    desc.push(format!("Abandoned: {}", missed_reason.map(|m| m.as_str()).unwrap_or("yes")));
                }
                if let Some(n) = note {
                    desc.push(n.clone());
                }
                b.insert("Description".into(), json!(desc.join("\n")));
                let path = format!("/sobjects/Case/{kf}/{}", seg(k));
                Ok(Step::Send(
                    patch(path, b, format!("creating case {k}")),
                    Finish::Created { key: k.clone(), obj: "Case" },
                ))
            }
            CrmOp::AppendSession { record, session_id, tags, reopen_to, .. } => {
                let t = target(record)?;
                let mut b = Map::new();
                if let Some(st) = reopen_to {
                    b.insert("Status".into(), json!(self.resolve_status(st).await?));
                }
                if let Some(f) = &self.cfg.tags_field
                    && !tags.is_empty()
                {
                    let current = self
                        .call(
                            Method::GET,
                            &format!("/sobjects/Case/{}", t.id),
                            &[("fields", f)],
                            None,
                            "reading the case's tags",
                        )
                        .await?;
                    let mut all: Vec<String> = current.body[f.as_str()]
                        .as_str()
                        .unwrap_or_default()
                        .split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    for tag in tags {
                        if !all.contains(tag) {
                            all.push(tag.clone());
                        }
                    }
                    b.insert(f.clone(), json!(all.join(";")));
                }
                let summary = match b.get("Status") {
                    Some(s) => format!(
                        "Session {session_id} appended to case {}, reopened to {}",
                        t.id,
                        s.as_str().unwrap_or("")
                    ),
                    None => format!("Session {session_id} appended to case {}", t.id),
                };
                if b.is_empty() {
                    return done(summary);
                }
                Ok(Step::Send(
                    patch(format!("/sobjects/Case/{}", t.id), b, "appending to a case"),
                    Finish::Summary(summary),
                ))
            }
            CrmOp::SetOwner { record, agent_id } => {
                let t = target(record)?;
                match user_id(agent_id) {
                    Some(u) => Ok(Step::Send(
                        patch(
                            format!("/sobjects/Case/{}", t.id),
                            Map::from_iter([("OwnerId".into(), json!(u))]),
                            "reassigning a case",
                        ),
                        Finish::Summary(format!("Case {} owner set to {u}", t.id)),
                    )),
                    None => done(format!(
                        "Case {} owner unchanged: agent {agent_id} is not a Salesforce user id (005…)",
                        t.id
                    )),
                }
            }
            CrmOp::MarkAbandoned { record, missed_reason } => {
                self.plan_note(key, &target(record)?, &format!("Abandoned: {}", missed_reason.as_str())).await
            }
            CrmOp::AddNote { record, body, .. } => self.plan_note(key, &target(record)?, body).await,
            CrmOp::AddAttachment { record, name, url, content, .. } => {
                let t = target(record)?;
                let marker = note_marker(key);
                if self.case_holds(&t.id, &marker).await? {
                    return done(format!("{name} already on case {} (replay)", t.id));
                }
                match (url, content) {
                    (Some(u), _) if self.cfg.ext.uploads_from(u) => {
                        Ok(Step::Upload(Upload { case: t.id, name: name.clone(), url: u.clone(), marker }))
                    }
                    (Some(u), _) => self.plan_note(key, &t, &format!("{name}: {u}")).await,
                    (None, Some(text)) => {
                        let b = Map::from_iter([
                            ("Title".into(), json!(cut(name, 255))),
                            ("PathOnClient".into(), json!(format!("{name}.txt"))),
                            ("VersionData".into(), json!(base64::engine::general_purpose::STANDARD.encode(text))),
                            ("FirstPublishLocationId".into(), json!(t.id)),
                            ("ReasonForChange".into(), json!(marker)),
                        ]);
                        let summary = format!("{name} attached to case {} as a file", t.id);
                        Ok(Step::Send(
                            Sub {
                                method: Method::POST,
                                path: "/sobjects/ContentVersion".into(),
                                body: Some(Value::Object(b)),
                                what: "attaching a file".into(),
                            },
                            Finish::Marked { case: t.id, marker, summary },
                        ))
                    }
                    (None, None) => done(format!("{name}: nothing to attach")),
                }
            }
            CrmOp::SetFields { record, fields } => {
                let t = target(record)?;
                self.plan_fields(&format!("/sobjects/Case/{}", t.id), fields, &format!("case {}", t.id))
            }
            CrmOp::SetStatus { record, status, .. } => {
                let t = target(record)?;
                let s = self.resolve_status(status).await?;
                Ok(Step::Send(
                    patch(
                        format!("/sobjects/Case/{}", t.id),
                        Map::from_iter([("Status".into(), json!(s))]),
                        "setting a case's status",
                    ),
                    Finish::Summary(format!("Case {} status set to {s}", t.id)),
                ))
            }
            CrmOp::SetAccountFields { account, fields } => {
                let t = target(account)?;
                let path = self.person_path(&t, "setting a person's fields")?;
                self.plan_fields(&path, fields, &format!("person {}", t.id))
            }
            CrmOp::LogCall { session_id, person, record, disposition, label, notes, agent_id, at } => {
                let task_key = keys::call_log_key(session_id);
                let path = format!("/sobjects/Task/{kf}/{}", seg(&task_key));
                let p = person.as_ref().map(target).transpose()?;
                let r = record.as_ref().map(target).transpose()?;
                if p.is_none() && r.is_none() {
                    return Ok(Step::Send(
                        Sub { method: Method::DELETE, path, body: None, what: "withdrawing a call log".into() },
                        Finish::Withdraw,
                    ));
                }
                let mut b = call_log_task(session_id, disposition, label, notes, agent_id.as_deref(), *at);
                let who = p.as_ref().filter(|p| matches!(p.obj, Some("Contact" | "Lead"))).map(|p| p.id.clone());
                let person_account = p.as_ref().filter(|p| p.obj == Some("Account")).map(|p| p.id.clone());
                hang(&mut b, who, r.as_ref().map(|r| r.id.clone()).or(person_account));
                let summary = match (&p, &r) {
                    (Some(p), Some(r)) => format!("Call logged on person {}, related to case {}", p.id, r.id),
                    (Some(p), None) => format!("Call logged on person {}", p.id),
                    (None, Some(r)) => format!("Call logged on case {}", r.id),
                    (None, None) => "Call logged".into(),
                };
                Ok(Step::Send(patch(path, b, "logging a call"), Finish::Summary(summary)))
            }
            CrmOp::SetAgentStatus { email, crm_status, .. } => done(format!(
                "Agent {email}: {crm_status} not pushed: Salesforce offers no API to set an Omni-Channel presence \
                 (the agent's console sets it)"
            )),
            CrmOp::WriteSessionData { record, account, data, .. } => {
                let path = format!("/sobjects/Task/{kf}/{}", seg(&keys::session_activity_key(&data.session_id)));
                let r = record.as_ref().map(target).transpose()?;
                let a = account.as_ref().map(target).transpose()?;
                let mut b = session_task(data);
                let who = a.as_ref().filter(|a| matches!(a.obj, Some("Contact" | "Lead"))).map(|a| a.id.clone());
                let person_account = a.as_ref().filter(|a| a.obj == Some("Account")).map(|a| a.id.clone());
                hang(&mut b, who, r.as_ref().map(|r| r.id.clone()).or(person_account));
                let on = match (&r, &a) {
                    (Some(r), _) => format!("case {}", r.id),
                    (None, Some(a)) => format!("person {}", a.id),
                    _ => "no parent".into(),
                };
                Ok(Step::Send(
                    patch(path, b, "writing the session's Task"),
                    Finish::Summary(format!("Session Task written on {on}")),
                ))
            }
        }
    }

    fn plan_fields(&self, path: &str, fields: &BTreeMap<String, Value>, on: &str) -> Result<Step, CrmError> {
        if fields.is_empty() {
            return done(format!("No fields to set on {on}"));
        }
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        let summary = format!("Fields {} set on {on}", names.join(", "));
        let b: Map<String, Value> = fields.clone().into_iter().collect();
        Ok(Step::Send(patch(path.to_string(), b, format!("setting {}", names.join(", "))), Finish::Summary(summary)))
    }

    async fn plan_note(&self, key: &str, case: &Target, body: &str) -> Result<Step, CrmError> {
        let marker = note_marker(key);
        if self.case_holds(&case.id, &marker).await? {
            return done(format!("Note already on case {} (replay)", case.id));
        }
        let text = format!("{}\n\n{marker}", cut(body, 4000 - marker.len() - 2));
        let b = Map::from_iter([
            ("ParentId".into(), json!(case.id)),
            ("CommentBody".into(), json!(text)),
            ("IsPublished".into(), json!(false)),
        ]);
        Ok(Step::Send(
            Sub {
                method: Method::POST,
                path: "/sobjects/CaseComment".into(),
                body: Some(Value::Object(b)),
                what: "adding a note".into(),
            },
            Finish::Marked { case: case.id.clone(), marker, summary: format!("Note added to case {}", case.id) },
        ))
    }

    /// Whether the case already holds the marker, reading its comments and files once when
    /// casebridge does not know them.
    async fn case_holds(&self, case: &str, marker: &str) -> Result<bool, CrmError> {
        if let Some(known) = self.ledger.lock().ok().and_then(|l| l.holds(case, marker)) {
            return Ok(known);
        }
        let q = |soql: String| format!("{}?q={}", self.data_path("/query"), seg(&soql));
        let body = json!({"allOrNone": false, "compositeRequest": [
            {"method": "GET", "referenceId": "comments",
             "url": q(format!("SELECT CommentBody FROM CaseComment WHERE ParentId = {}", quote(case)))},
            {"method": "GET", "referenceId": "files",
             "url": q(format!("SELECT ReasonForChange FROM ContentVersion WHERE FirstPublishLocationId = {}", quote(case)))},
        ]});
        let reply =
            self.call(Method::POST, "/composite", &[], Some(&body), "reading the case's notes and files").await?;
        let mut markers = Vec::new();
        for (i, a) in reply.body["compositeResponse"].as_array().into_iter().flatten().enumerate() {
            let status = a["httpStatusCode"].as_u64().unwrap_or(500) as u16;
            if !(200..300).contains(&status) {
                return Err(super::client::sf_error(
                    status,
                    None,
                    &a["body"].to_string(),
                    "reading the case's notes and files",
                    self.cfg.limit_backoff,
                ));
            }
            let field = if i == 0 { "CommentBody" } else { "ReasonForChange" };
            for r in a["body"]["records"].as_array().into_iter().flatten() {
                markers.extend(super::ledger::markers_in(r[field].as_str().unwrap_or_default()));
            }
        }
        let held = markers.iter().any(|m| m == marker);
        if let Ok(mut l) = self.ledger.lock() {
            l.loaded(case, markers);
        }
        Ok(held)
    }

    /// Reads a request's answer (or failure) into the write's outcome.
    pub fn finish(&self, f: Finish, answer: Result<Reply, CrmError>) -> Result<WriteOutcome, CrmError> {
        let answer = match (answer, &f) {
            (Err(CrmError::Gone(_)), Finish::Withdraw) => {
                return Ok(WriteOutcome { created: None, summary: "No call log to withdraw".into() });
            }
            (a, _) => a?,
        };
        Ok(match f {
            Finish::Created { key, obj } => {
                let id = answer.body["id"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| CrmError::Transient {
                    message: format!("creating {obj} {key}: the answer has no id"),
                    retry_after: None,
                })?;
                let new = answer.status == 201;
                if new
                    && obj == "Case"
                    && let Ok(mut l) = self.ledger.lock()
                {
                    l.fresh(id);
                }
                let summary =
                    if new { format!("{obj} {id} created") } else { format!("{obj} {id} already created (replay)") };
                WriteOutcome { created: Some((key, id.to_string())), summary }
            }
            Finish::Summary(s) => WriteOutcome { created: None, summary: s },
            Finish::Marked { case, marker, summary } => {
                if let Ok(mut l) = self.ledger.lock() {
                    l.add(&case, &marker);
                }
                WriteOutcome { created: None, summary }
            }
            Finish::Withdraw => WriteOutcome { created: None, summary: "Call log withdrawn".into() },
        })
    }
}
