//! A lane's writes in as few calls as Salesforce allows: consecutive requests go out together
//! in one `POST /composite` (`allOrNone: false`, at most 25 subrequests), a create earlier in
//! the request referred to as `@{rN.id}` by the writes after it. A write that reads the case
//! first (notes, files, tags) needs the case's real id, so the requests before it go out first;
//! an upload goes alone. Each subrequest's status and body is read into its own write's result.

use std::collections::HashMap;

use casebridge_rules::model::ObjRef;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Reply, Sf, sf_error};
use super::writes::{Finish, Step, Sub, Target, reads_first};
use crate::{CrmError, Write, WriteOutcome};

/// Subrequests in one composite request at most.
const MAX_SUBS: usize = 25;

type Outcome = Result<WriteOutcome, CrmError>;

struct Pending {
    index: usize,
    sub: Sub,
    finish: Finish,
}

fn not_yet(k: &str) -> CrmError {
    CrmError::Transient { message: format!("{k} is not created yet"), retry_after: None }
}

impl Sf {
    /// Performs one write on its own.
    pub async fn execute_one(&self, key: &str, op: &casebridge_rules::ops::CrmOp) -> Outcome {
        let target = |r: &ObjRef| match r {
            ObjRef::Crm(id) => Ok(Target::crm(id)),
            ObjRef::Key(k) => Err(not_yet(k)),
        };
        match self.plan(key, op, &target).await? {
            Step::Done(o) => Ok(o),
            Step::Send(sub, finish) => {
                let answer = self.call(sub.method.clone(), &sub.path, &[], sub.body.as_ref(), &sub.what).await;
                self.finish(finish, answer)
            }
            Step::Upload(u) => self.upload(&u).await,
        }
    }

    /// Performs a lane's writes in order, batching them into composite requests.
    pub async fn execute_many(&self, writes: &[Write]) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = (0..writes.len()).map(|_| None).collect();
        // casebridge keys → (id, object) of creates that landed.
        let mut created: HashMap<String, Target> = HashMap::new();
        let mut pending: Vec<Pending> = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let refers_to_pending = |pending: &[Pending]| {
                let mut op = w.op.clone();
                op.refs_mut().iter().any(|r| match r {
                    ObjRef::Key(k) => {
                        pending.iter().any(|p| matches!(&p.finish, Finish::Created { key, .. } if key == k))
                    }
                    ObjRef::Crm(_) => false,
                })
            };
            if reads_first(&w.op) && refers_to_pending(&pending) {
                self.flush(&mut pending, &mut out, &mut created).await;
            }
            let in_flight: HashMap<String, Target> = pending
                .iter()
                .filter_map(|p| match &p.finish {
                    Finish::Created { key, obj } => {
                        Some((key.clone(), Target { id: format!("@{{r{}.id}}", p.index), obj: Some(*obj) }))
                    }
                    _ => None,
                })
                .collect();
            let target = |r: &ObjRef| match r {
                ObjRef::Crm(id) => Ok(Target::crm(id)),
                ObjRef::Key(k) => created.get(k).or_else(|| in_flight.get(k)).cloned().ok_or_else(|| not_yet(k)),
            };
            match self.plan(&w.key, &w.op, &target).await {
                Ok(Step::Done(o)) => out[i] = Some(Ok(o)),
                Ok(Step::Send(sub, finish)) => {
                    pending.push(Pending { index: i, sub, finish });
                    if pending.len() >= MAX_SUBS {
                        self.flush(&mut pending, &mut out, &mut created).await;
                    }
                }
                Ok(Step::Upload(u)) => {
                    self.flush(&mut pending, &mut out, &mut created).await;
                    out[i] = Some(self.upload(&u).await);
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        self.flush(&mut pending, &mut out, &mut created).await;
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Err(CrmError::Transient { message: "not attempted".into(), retry_after: None }))
            })
            .collect()
    }

    async fn flush(
        &self,
        pending: &mut Vec<Pending>,
        out: &mut [Option<Outcome>],
        created: &mut HashMap<String, Target>,
    ) {
        let batch = std::mem::take(pending);
        let answers: Vec<Result<Reply, CrmError>> = match batch.as_slice() {
            [] => return,
            [one] => {
                vec![self.call(one.sub.method.clone(), &one.sub.path, &[], one.sub.body.as_ref(), &one.sub.what).await]
            }
            many => self.composite(many).await,
        };
        for (p, answer) in batch.into_iter().zip(answers) {
            let key = match &p.finish {
                Finish::Created { key, obj } => Some((key.clone(), *obj)),
                _ => None,
            };
            let result = self.finish(p.finish, answer);
            if let (Some((k, obj)), Ok(WriteOutcome { created: Some((_, id)), .. })) = (key, &result) {
                created.insert(k, Target { id: id.clone(), obj: Some(obj) });
            }
            out[p.index] = Some(result);
        }
    }

    async fn composite(&self, batch: &[Pending]) -> Vec<Result<Reply, CrmError>> {
        let subs: Vec<Value> = batch
            .iter()
            .map(|p| {
                let mut s = json!({"method": p.sub.method.as_str(), "url": self.data_path(&p.sub.path),
                                   "referenceId": format!("r{}", p.index)});
                if let Some(b) = &p.sub.body {
                    s["body"] = b.clone();
                }
                s
            })
            .collect();
        let body = json!({"allOrNone": false, "compositeRequest": subs});
        let what = format!("sending {} writes in one composite request", batch.len());
        let reply = match self.call(Method::POST, "/composite", &[], Some(&body), &what).await {
            Ok(r) => r,
            Err(e) => return batch.iter().map(|_| Err(e.clone())).collect(),
        };
        let answers = reply.body["compositeResponse"].as_array().cloned().unwrap_or_default();
        batch
            .iter()
            .map(|p| {
                let reference = format!("r{}", p.index);
                let Some(a) = answers.iter().find(|a| a["referenceId"] == reference.as_str()) else {
                    return Err(CrmError::Transient {
                        message: format!("{}: the composite answer has no result for it", p.sub.what),
                        retry_after: None,
                    });
                };
                let status = a["httpStatusCode"].as_u64().unwrap_or(500) as u16;
                if (200..300).contains(&status) {
                    Ok(Reply { status, body: a["body"].clone() })
                } else {
                    Err(sf_error(status, None, &a["body"].to_string(), &p.sub.what, self.cfg.limit_backoff))
                }
            })
            .collect()
    }
}
