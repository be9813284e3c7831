//! One pending event → its step in the pass's batch: the pure rules core asked in turn,
//! its lookups answered (from storage or the CRM) once no write of the customer is pending.

use std::collections::HashSet;
use std::sync::Arc;

use casebridge_crm::CrmLookup;
use casebridge_rules::engine::{self, Step};
use casebridge_rules::event::Event;
use casebridge_rules::keys::CustomerKey;
use casebridge_rules::model::{Answer, Answers, Entry, EntryKind, Lookup, ObjRef};
use casebridge_rules::ops::OutboxOp;
use casebridge_rules::session::Session;
use casebridge_store::StepCommit;

use super::Pass;
use crate::pipeline::Pipeline;
use crate::workers::step_rows::{base_keys, lookup_name, new_activity, outcome_name, ref_pair};

/// What [`make_step`] did with a pending event.
#[derive(PartialEq, Eq)]
pub(super) enum Made {
    /// Its step is in the batch.
    Step,
    /// It is unreadable: the batch marks it applied, leaving its session as it was.
    Unreadable,
    /// Nothing: it waits (its customer's writes, a failed lookup).
    Nothing,
}

/// Makes the step of one pending event into the pass's batch.
pub(super) async fn make_step(
    p: &Arc<Pipeline>,
    ev: &casebridge_store::PendingEvent,
    pass: &mut Pass,
) -> anyhow::Result<Made> {
    let event: Event = match serde_json::from_str(&ev.body) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(seq = ev.seq, error = %e, "Stored event unreadable; skipped.");
            let body = match pass.sessions.get(&ev.session_id) {
                Some(s) => serde_json::to_string(s)?,
                None => p.store.load_session(&ev.session_id).await?.map(|s| s.body).unwrap_or_else(|| "{}".into()),
            };
            pass.commits.push(StepCommit { event_seqs: vec![ev.seq], ..StepCommit::bare(ev.session_id.clone(), body) });
            return Ok(Made::Unreadable);
        }
    };
    Ok(match apply_one(p, ev, &event, pass).await {
        Ok(Made::Nothing) => {
            pass.blocked.insert(ev.session_id.clone());
            Made::Nothing
        }
        Ok(made) => made,
        Err(e) => {
            super::step_failed(p, pass, ev, &e, "Event not applied yet; will retry.");
            Made::Nothing
        }
    })
}

/// Asks the rules core for the event's step, answering its lookups: [`Made::Step`] once it is
/// in the batch, [`Made::Nothing`] when the customer's writes or locks must be waited for.
async fn apply_one(
    p: &Pipeline,
    ev: &casebridge_store::PendingEvent,
    event: &Event,
    pass: &mut Pass,
) -> anyhow::Result<Made> {
    let seq = ev.seq;
    let started = std::time::Instant::now();
    let session: Option<Session> = match (pass.sessions.get(&event.session_id), pass.loaded.get(&event.session_id)) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(Some(body))) => Some(serde_json::from_str(body)?),
        (None, Some(None)) => None,
        (None, None) => match p.store.load_session(&event.session_id).await? {
            Some(row) => Some(serde_json::from_str(&row.body)?),
            None => None,
        },
    };
    let settings = p.settings().await;
    let profile = p.profile().await;
    let mut answers = Answers::new();
    let mut checked: HashSet<String> = HashSet::new();
    // The CRM requests lookups made, for the timeline.
    let mut lookup_lines: Vec<Entry> = Vec::new();
    loop {
        match engine::apply(session.as_ref(), event, &settings, &profile, &answers) {
            Step::Need(lookups) => {
                // A lookup must see every write that concerns the same customer: wait until
                // none is left to deliver for any of its keys.
                let mut keys = base_keys(session.as_ref(), event, &settings);
                for l in &lookups {
                    if let Lookup::RecordsOfAccount(a) = l {
                        keys.extend(account_keys(p, pass, a).await?.iter().map(ToString::to_string));
                    }
                }
                keys.retain(|k| !checked.contains(k));
                if !keys.is_empty() {
                    if keys
                        .iter()
                        .any(|k| pass.dirty_keys.contains(k) || pass.in_flight.iter().any(|f| f.keys.contains(k)))
                    {
                        return Ok(Made::Nothing);
                    }
                    if p.node.shared {
                        if pass.locks.is_none() {
                            pass.locks = Some(p.store.key_locks().await?);
                        }
                        if let Some(locks) = pass.locks.as_mut()
                            && !locks.try_lock(&keys).await?
                        {
                            // Another node is deciding for the same customer (or this
                            // node's batch being committed holds its keys).
                            metrics::counter!("casebridge_rules_customer_waits_total").increment(1);
                            return Ok(Made::Nothing);
                        }
                    }
                    if p.store.keys_busy(&keys).await? {
                        return Ok(Made::Nothing);
                    }
                    checked.extend(keys);
                }
                for l in lookups {
                    let (a, requests) = casebridge_crm::http::logged(answer(p, &l, pass)).await;
                    if !requests.is_empty() {
                        lookup_lines.push(Entry {
                            at: chrono::Utc::now(),
                            kind: EntryKind::Crm,
                            summary: format!("Lookup of {}: {}", lookup_name(&l), requests.join("; ")),
                            rule: None,
                            native: None,
                        });
                    }
                    answers.insert(l, a?);
                }
            }
            Step::Done(out) => {
                let s = out.session;
                let lane = s.lane();
                let mut keys = CustomerKey::of_customer(&s.customer, s.phone.as_ref());
                if let Some(a) = &s.account {
                    keys.extend(account_keys(p, pass, a).await?);
                }
                // Trailing writes wait a moment so that the session's next ones go with them.
                let window = p.crm().coalesce_window();
                let hold = (!window.is_zero()).then(|| chrono::Utc::now() + window);
                let mut commands = Vec::with_capacity(out.commands.len());
                let mut ops = Vec::with_capacity(out.commands.len());
                for c in out.commands {
                    let trailing = c.op.is_trailing();
                    let op = OutboxOp::Crm(c.op);
                    let mut row = crate::outbox::command(c.key, &lane, &s.id, &op, Some(&keys))?;
                    row.not_before = hold.filter(|_| trailing);
                    // What the commit may send at once, kept so it need not parse the row back.
                    ops.push(crate::workers::in_commit::sendable_now(&row, op));
                    commands.push(row);
                }
                for e in out.timeline.iter().filter(|e| e.kind == EntryKind::Decision) {
                    if let Some(rule) = &e.rule {
                        metrics::counter!("casebridge_decisions_total", "rule" => rule.clone()).increment(1);
                    }
                }
                let was = session.as_ref().map(|x| (x.account_outcome, x.record_outcome));
                if was.map(|w| w.0) != Some(s.account_outcome) {
                    metrics::counter!("casebridge_account_outcomes_total", "outcome" => outcome_name(&s.account_outcome)).increment(1);
                }
                if was.map(|w| w.1) != Some(s.record_outcome) {
                    metrics::counter!("casebridge_record_outcomes_total", "outcome" => outcome_name(&s.record_outcome))
                        .increment(1);
                }
                if let Some(c) = commands.first() {
                    pass.dirty_keys.extend(c.keys.iter().cloned());
                    let received = casebridge_store::parse_ts(&ev.received_at).timestamp_millis();
                    p.writes_caused(commands.iter().map(|c| c.key.clone()), received);
                }
                if s.is_over()
                    && !session.as_ref().is_some_and(|x| x.is_over())
                    && let Some(a) = &s.agent
                {
                    pass.freed_agents.push(a.id.clone());
                }
                let activities = out.activities.iter().map(new_activity).collect();
                pass.with_writes |= !commands.is_empty();
                pass.commits.push(StepCommit {
                    event_seqs: vec![seq],
                    session_id: s.id.clone(),
                    session: serde_json::to_string(&s)?,
                    lane: s.lane.as_ref().map(ToString::to_string),
                    account: s.account.as_ref().map(ref_pair),
                    record: s.record.as_ref().map(ref_pair),
                    created_at: s.created_at,
                    first_at: Some(event.at),
                    timeline: lookup_lines.into_iter().chain(out.timeline).collect(),
                    commands,
                    activities,
                    agent_id: s.agent.as_ref().map(|a| a.id.clone()),
                    over: s.is_over(),
                });
                pass.ops.extend(ops);
                pass.sessions.insert(s.id.clone(), s);
                metrics::histogram!("casebridge_rules_step_seconds").record(started.elapsed().as_secs_f64());
                return Ok(Made::Step);
            }
        }
    }
}

/// An account's keys: casebridge's key and, once created, the CRM id.
async fn account_keys(p: &Pipeline, pass: &Pass, a: &ObjRef) -> anyhow::Result<Vec<CustomerKey>> {
    let mut keys = vec![CustomerKey::account(a)];
    if let ObjRef::Crm(id) = resolve(p, pass, a).await?
        && id != a.as_str()
    {
        keys.push(CustomerKey::Account(id));
    }
    Ok(keys)
}

/// The CRM id of casebridge's key, when the object is created (read once a pass).
async fn resolve(p: &Pipeline, pass: &Pass, r: &ObjRef) -> anyhow::Result<ObjRef> {
    let ObjRef::Key(k) = r else { return Ok(r.clone()) };
    let known = pass.refs.lock().unwrap_or_else(|e| e.into_inner()).get(k).cloned();
    if let Some(id) = known {
        return Ok(ObjRef::Crm(id));
    }
    Ok(match p.store.ref_get(k).await? {
        Some(id) => {
            pass.refs.lock().unwrap_or_else(|e| e.into_inner()).insert(k.clone(), id.clone());
            ObjRef::Crm(id)
        }
        None => r.clone(),
    })
}

/// Answers a lookup: casebridge's own (a session's record, a dial request's origin) from
/// storage, the rest from the CRM.
async fn answer(p: &Pipeline, l: &Lookup, pass: &Pass) -> anyhow::Result<Answer> {
    let started = std::time::Instant::now();
    let out = match l {
        Lookup::RecordOfSession(id) => {
            let related = match pass.sessions.get(id) {
                Some(s) => Some(s.clone()),
                None => match p.store.load_session(id).await? {
                    Some(row) => Some(serde_json::from_str::<Session>(&row.body)?),
                    None => None,
                },
            };
            let rec = match related.and_then(|s| s.record) {
                Some(r) => Some(resolve(p, pass, &r).await?),
                None => None,
            };
            Answer::Record(rec)
        }
        Lookup::DialRequestOrigin(id) => Answer::Origin(p.store.dial(id).await?.and_then(|d| d.origin_record_id)),
        Lookup::RecordsOfAccount(a) => match resolve(p, pass, a).await? {
            ObjRef::Crm(id) => p.crm().lookup(&CrmLookup::RecordsOfAccount(id)).await?,
            // The account's creation never landed (parked): it has no records.
            ObjRef::Key(_) => Answer::Records(vec![]),
        },
        Lookup::AccountsByUserId(u) => p.crm().lookup(&CrmLookup::AccountsByUserId(u.clone())).await?,
        Lookup::AccountsByPhone(n) => p.crm().lookup(&CrmLookup::AccountsByPhone(n.clone())).await?,
        Lookup::AccountsByEmail(e) => p.crm().lookup(&CrmLookup::AccountsByEmail(e.clone())).await?,
    };
    metrics::histogram!("casebridge_crm_lookup_seconds").record(started.elapsed().as_secs_f64());
    Ok(out)
}
