//! A lane's writes in as few Kustomer calls as exactly-once allows. Kustomer's `/bulk`
//! endpoints are asynchronous jobs to poll (and their `_clientRef` does not make them
//! idempotent), so writes are folded instead:
//! - standard fields and an owner that follow a conversation's create go into the create;
//! - consecutive attribute writes on one conversation (owner, abandoned marker, fields,
//!   status) are one PATCH;
//! - a session-data write superseded by a later one in the batch is skipped (each carries
//!   the whole data);
//! - a recording link, a CSAT note or an update note (voicemail action, smart action) is
//!   carried by the session note that follows it, which lists it.
//!
//! Each folded write keeps its own outcome: that of the call that carried it.

use std::collections::HashMap;

use casebridge_rules::model::ObjRef;
use casebridge_rules::ops::CrmOp;
use serde_json::Map;

use super::KustomerConnector;
use crate::{CrmError, Write, WriteOutcome, resolve_in_batch};

type Out = Result<WriteOutcome, CrmError>;

fn conversation_write(op: &CrmOp) -> Option<&str> {
    match op {
        CrmOp::SetOwner { record: ObjRef::Crm(id), .. }
        | CrmOp::MarkAbandoned { record: ObjRef::Crm(id), .. }
        | CrmOp::SetFields { record: ObjRef::Crm(id), .. }
        | CrmOp::SetStatus { record: ObjRef::Crm(id), .. } => Some(id),
        _ => None,
    }
}

/// Whether a session's data holds a note's content (the data is cumulative, so every later
/// rewrite of the session note keeps it).
fn lists(data: &casebridge_rules::model::SessionData, note: &str) -> bool {
    data.updates.iter().any(|u| u == note) || (note.starts_with("CSAT score: ") && data.csat_score.is_some())
}

fn shared(r: &Out, summary: String) -> Out {
    match r {
        Ok(_) => Ok(WriteOutcome { created: None, summary }),
        Err(e) => Err(e.clone()),
    }
}

/// Performs the writes of one lane, in order; one result per write.
pub(super) async fn run(c: &KustomerConnector, writes: &[Write]) -> Vec<Out> {
    let n = writes.len();
    let mut out: Vec<Option<Out>> = vec![None; n];
    let mut created: HashMap<String, String> = HashMap::new();
    // Writes whose outcome is that of a later write (index of the carrier → carried writes).
    let mut carried: HashMap<usize, Vec<usize>> = HashMap::new();
    let resolve = |i: usize, created: &HashMap<String, String>| resolve_in_batch(&writes[i].op, created);
    let mut i = 0;
    while i < n {
        if out[i].is_some() {
            i += 1;
            continue;
        }
        let op = match resolve(i, &created) {
            Ok(op) => op,
            Err(k) => {
                out[i] =
                    Some(Err(CrmError::Transient { message: format!("{k} is not created yet"), retry_after: None }));
                i += 1;
                continue;
            }
        };
        match &op {
            CrmOp::CreateRecord { key, .. } => {
                let (mut custom, mut owner, mut folded) = (Map::new(), None, Vec::new());
                let mut j = i + 1;
                while j < n {
                    match &writes[j].op {
                        CrmOp::SetFields { record: ObjRef::Key(k), fields } if k == key => {
                            custom.extend(fields.clone())
                        }
                        CrmOp::SetOwner { record: ObjRef::Key(k), agent_id } if k == key => {
                            owner = Some(agent_id.clone())
                        }
                        _ => break,
                    }
                    folded.push(j);
                    j += 1;
                }
                let r = c.run(&writes[i].key, &op, custom, owner.as_deref()).await;
                if let Ok(WriteOutcome { created: Some((k, id)), .. }) = &r {
                    created.insert(k.clone(), id.clone());
                }
                let id = created.get(key).cloned().unwrap_or_default();
                for j in folded {
                    out[j] = Some(shared(
                        &r,
                        format!("{} written with the create of conversation {id}", writes[j].op.name()),
                    ));
                }
                out[i] = Some(r);
                i = j;
            }
            _ if conversation_write(&op).is_some() => {
                let id = conversation_write(&op).unwrap_or_default().to_string();
                let mut ops = vec![op.clone()];
                let mut j = i + 1;
                while j < n {
                    match resolve(j, &created) {
                        Ok(next) if conversation_write(&next) == Some(id.as_str()) => ops.push(next),
                        _ => break,
                    }
                    j += 1;
                }
                match c.patch_ops(&ops).await {
                    Ok(outcomes) => {
                        for (k, o) in outcomes.into_iter().enumerate() {
                            out[i + k] = Some(Ok(o));
                        }
                    }
                    Err(e) => {
                        for slot in out.iter_mut().take(j).skip(i) {
                            *slot = Some(Err(e.clone()));
                        }
                    }
                }
                i = j;
            }
            CrmOp::WriteSessionData { data, .. }
                if writes[i + 1..].iter().any(
                    |w| matches!(&w.op, CrmOp::WriteSessionData { data: d, .. } if d.session_id == data.session_id),
                ) =>
            {
                out[i] = Some(Ok(WriteOutcome {
                    created: None,
                    summary: format!(
                        "Session data of {} superseded by a later write in the same delivery",
                        data.session_id
                    ),
                }));
                i += 1;
            }
            CrmOp::AddAttachment { record: ObjRef::Crm(conv), url: Some(u), content: None, .. }
                if !c.api.config().ext.uploads_from(u) =>
            {
                // The last session note of the batch on the same conversation lists the recording: it carries it.
                let carrier = (i + 1..n).rev().find(|&j| match resolve(j, &created) {
                    Ok(CrmOp::WriteSessionData { record: Some(ObjRef::Crm(r)), data, .. }) => {
                        r == *conv && data.recording_url.as_deref() == Some(u.as_str())
                    }
                    _ => false,
                });
                match carrier {
                    Some(j) => carried.entry(j).or_default().push(i),
                    None => out[i] = Some(c.run(&writes[i].key, &op, Map::new(), None).await),
                }
                i += 1;
            }
            CrmOp::AddNote { record: ObjRef::Crm(conv), body, .. } => {
                // A CSAT or update note the last session note of the batch lists is carried by it.
                let carrier = (i + 1..n).rev().find(|&j| match resolve(j, &created) {
                    Ok(CrmOp::WriteSessionData { record: Some(ObjRef::Crm(r)), data, .. }) => {
                        r == *conv && lists(&data, body)
                    }
                    _ => false,
                });
                match carrier {
                    Some(j) => carried.entry(j).or_default().push(i),
                    None => out[i] = Some(c.run(&writes[i].key, &op, Map::new(), None).await),
                }
                i += 1;
            }
            _ => {
                let r = c.run(&writes[i].key, &op, Map::new(), None).await;
                if let Ok(WriteOutcome { created: Some((k, id)), .. }) = &r {
                    created.insert(k.clone(), id.clone());
                }
                for k in carried.remove(&i).unwrap_or_default() {
                    let what = if matches!(writes[k].op, CrmOp::AddNote { .. }) { "Note" } else { "Recording link" };
                    out[k] = Some(shared(&r, format!("{what} written in the session's note")));
                }
                out[i] = Some(r);
                i += 1;
            }
        }
    }
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Err(CrmError::Transient { message: "not attempted".into(), retry_after: None })))
        .collect()
}
