//! Wrap-up decisions (behaviour.md §9): which person a call is logged on, which record it is
//! related to, or why the request is refused. Pure: the caller gathers the facts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Channel, FieldError};
use crate::keys::{CustomerKey, Lane, wrapup_person_key};
use crate::model::{AccountHit, AccountKind, Entry, EntryKind, MissedReason, ObjRef};
use crate::ops::CrmOp;
use crate::session::Session;
use crate::settings::{CallLoggingSettings, UnmatchedCaller};

/// Log or Do not log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Log the call on the CRM person.
    Log,
    /// Only casebridge's own activity log, with empty disposition and notes.
    DoNotLog,
}

/// A disposition code as administered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disposition {
    /// Code.
    pub code: String,
    /// Label.
    pub label: String,
    /// Can be chosen.
    pub active: bool,
}

/// What the agent submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Disposition code.
    pub disposition: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Log or not.
    pub action: Action,
    /// The agent's choice among candidates.
    pub person_id: Option<String>,
}

/// What the caller found out.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts<'a> {
    /// The submitted code's entry, if the code exists.
    pub disposition: Option<&'a Disposition>,
    /// CRM people matching the caller.
    pub candidates: &'a [AccountHit],
    /// Whether the caller can be identified at all (phone or email).
    pub caller_known: bool,
    /// The record an outbound call was dialed from.
    pub origin_record_id: Option<String>,
    /// Active widget instances of the agent, with the record each shows.
    pub instances: Vec<Option<String>>,
}

/// Where the call is logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "person")]
pub enum Person {
    /// An existing person.
    Existing {
        /// CRM id.
        id: String,
    },
    /// A new person of this kind (`unmatched_caller`).
    Create {
        /// contact or lead.
        kind: AccountKind,
    },
    /// No person.
    None {
        /// Why.
        reason: String,
    },
}

/// What the wrap-up does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Log or not.
    pub action: Action,
    /// The person.
    pub person: Person,
    /// The related record and how it was chosen (`origin_record`, `viewing_record`), or why
    /// relate-to-case was not applied.
    pub relate: Result<(String, &'static str), String>,
    /// Disposition code written (empty for Do not log).
    pub disposition: String,
    /// Its label.
    pub label: String,
    /// Notes written (empty for Do not log).
    pub notes: String,
}

/// Why the request cannot be carried out as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A field is wrong.
    Field(FieldError),
    /// Several people match: the agent must choose.
    Choose(Vec<AccountHit>),
}

fn field(f: &str, m: impl Into<String>) -> Refusal {
    Refusal::Field(FieldError { field: f.into(), message: m.into() })
}

/// Decides a wrap-up.
pub fn decide(req: &Request, facts: &Facts<'_>, settings: &CallLoggingSettings) -> Result<Plan, Refusal> {
    if req.action == Action::DoNotLog {
        return Ok(Plan {
            action: Action::DoNotLog,
            person: Person::None { reason: "Do not log: nothing is written to a CRM person".into() },
            relate: Err("Do not log: nothing is related".into()),
            disposition: String::new(),
            label: String::new(),
            notes: String::new(),
        });
    }
    let (disposition, label) = if settings.dispositions_enabled {
        let Some(code) = req.disposition.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Err(field("disposition", "is required: choose a code from GET /v1/dispositions"));
        };
        match facts.disposition {
            None => {
                return Err(field(
                    "disposition",
                    format!("unknown disposition {code:?}; GET /v1/dispositions lists the codes"),
                ));
            }
            Some(d) if !d.active => {
                return Err(field("disposition", format!("disposition {code:?} is inactive; choose an active code")));
            }
            Some(d) => (d.code.clone(), d.label.clone()),
        }
    } else {
        (String::new(), String::new())
    };
    let ids: Vec<&str> = facts.candidates.iter().map(|c| c.id.as_str()).collect();
    let person = match (facts.candidates.len(), req.person_id.as_deref()) {
        (_, Some(p)) if !ids.contains(&p) => {
            let msg = if ids.is_empty() {
                format!("{p:?} is not a candidate: no CRM person matches the caller; leave person_id out")
            } else {
                format!("{p:?} is not one of the candidates: {}", ids.join(", "))
            };
            return Err(field("person_id", msg));
        }
        (_, Some(p)) => Person::Existing { id: p.to_string() },
        (1, None) => Person::Existing { id: ids[0].to_string() },
        (0, None) if !facts.caller_known => {
            Person::None { reason: "the caller has no phone number or email to match or create a person".into() }
        }
        (0, None) => match settings.unmatched_caller {
            UnmatchedCaller::Contact => Person::Create { kind: AccountKind::Contact },
            UnmatchedCaller::Lead => Person::Create { kind: AccountKind::Lead },
            UnmatchedCaller::None => Person::None {
                reason: "no CRM person matches the caller and call_logging.unmatched_caller is none".into(),
            },
        },
        (_, None) => return Err(Refusal::Choose(facts.candidates.to_vec())),
    };
    let relate = if !settings.dispositions_enabled {
        Err("relate-to-case needs disposition codes: call_logging.dispositions_enabled is off".to_string())
    } else if let Some(o) = &facts.origin_record_id {
        Ok((o.clone(), "origin_record"))
    } else {
        match facts.instances.as_slice() {
            [] => Err("the agent's widget has not reported what it shows (PUT /v1/agents/{id}/context)".into()),
            [Some(r)] => Ok((r.clone(), "viewing_record")),
            [None] => Err("the agent was not viewing a record at wrap-up".into()),
            many => {
                Err(format!("the agent has {} active widget instances; relate-to-case needs exactly one", many.len()))
            }
        }
    };
    Ok(Plan { action: Action::Log, person, relate, disposition, label, notes: req.notes.clone().unwrap_or_default() })
}

impl Action {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::DoNotLog => "do_not_log",
        }
    }
}

/// What the caller knows besides the plan when it writes a wrap-up down.
#[derive(Debug, Clone, PartialEq)]
pub struct Context<'a> {
    /// The session wrapped up, as its path named it.
    pub session_id: &'a str,
    /// Its state.
    pub session: &'a Session,
    /// The caller's parsed phone number, if any.
    pub phone: Option<String>,
    /// The agent wrapping up.
    pub agent_id: Option<String>,
    /// 1 for the first wrap-up of the session, then one more each time.
    pub revision: i64,
    /// Whether an earlier wrap-up logged the call on the CRM (a later one must undo it).
    pub logged_before: bool,
    /// The time of the request.
    pub now: DateTime<Utc>,
}

/// The call-log line of casebridge's own activity log.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLog {
    /// Log or not.
    pub action: Action,
    /// The person: the CRM's id, or casebridge's key while it is being created.
    pub person: Option<ObjRef>,
    /// The related record.
    pub record_id: Option<String>,
    /// How the record was chosen.
    pub related_by: Option<&'static str>,
    /// Disposition code.
    pub disposition: String,
    /// Its label.
    pub label: String,
    /// Notes.
    pub notes: String,
    /// The agent.
    pub agent_id: Option<String>,
    /// Menu path.
    pub queue: Option<String>,
    /// Channel.
    pub channel: Option<Channel>,
    /// Why the session was missed.
    pub missed_reason: Option<MissedReason>,
    /// When the session started (reports count by it).
    pub session_at: DateTime<Utc>,
}

/// What a decided wrap-up writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Writes {
    /// CRM writes, in order.
    pub ops: Vec<CrmOp>,
    /// The lane the writes are delivered in.
    pub lane: Lane,
    /// Customer keys the writes concern (no other write on them may overtake).
    pub keys: Vec<CustomerKey>,
    /// Timeline lines.
    pub lines: Vec<Entry>,
    /// The activity log line.
    pub call_log: CallLog,
}

fn kind_name(k: AccountKind) -> &'static str {
    match k {
        AccountKind::Contact => "contact",
        AccountKind::Lead => "lead",
        AccountKind::PersonAccount => "person_account",
    }
}

/// The CRM writes, timeline lines and activity line of a decided wrap-up.
pub fn writes(plan: &Plan, cx: &Context<'_>) -> Writes {
    let id = cx.session_id;
    let s = cx.session;
    let at = s.created_at.unwrap_or(cx.now);
    let lane = s.lane.clone().unwrap_or_else(|| Lane::session(id));
    let keys = CustomerKey::of_customer(&s.customer, s.phone.as_ref());
    let mut ops = Vec::new();
    let person: Option<ObjRef> = match &plan.person {
        Person::Existing { id } => Some(ObjRef::Crm(id.clone())),
        Person::Create { kind } => {
            let key = wrapup_person_key(id);
            ops.push(CrmOp::CreateAccount {
                key: key.clone(),
                kind: *kind,
                name: s.customer.name.clone(),
                phone: cx.phone.clone(),
                phone_extension: s.phone.as_ref().and_then(|p| p.extension.clone()),
                email: s.customer.email.clone(),
                user_id: s.customer.user_id.clone(),
                at,
            });
            Some(ObjRef::Key(key))
        }
        Person::None { .. } => None,
    };
    let record = plan.relate.as_ref().ok().map(|(r, _)| r.clone());
    if plan.action == Action::Log && (person.is_some() || record.is_some()) {
        ops.push(CrmOp::LogCall {
            session_id: id.to_string(),
            person: person.clone(),
            record: record.clone().map(ObjRef::Crm),
            disposition: plan.disposition.clone(),
            label: plan.label.clone(),
            notes: plan.notes.clone(),
            agent_id: cx.agent_id.clone(),
            at,
        });
    } else if cx.logged_before {
        // An empty log call withdraws what the earlier wrap-up wrote.
        ops.push(CrmOp::LogCall {
            session_id: id.to_string(),
            person: None,
            record: None,
            disposition: String::new(),
            label: String::new(),
            notes: String::new(),
            agent_id: cx.agent_id.clone(),
            at,
        });
    }

    let what = match (&plan.action, &plan.person) {
        (Action::DoNotLog, _) => "Wrap-up: Do not log (platform activity only)".to_string(),
        (_, Person::Existing { id: pid }) => format!("Wrap-up {}: logged on person {pid}", plan.disposition),
        (_, Person::Create { kind }) => {
            format!("Wrap-up {}: no CRM person matches the caller, a {} is created", plan.disposition, kind_name(*kind))
        }
        (_, Person::None { reason }) => format!("Wrap-up {}: not logged on a person ({reason})", plan.disposition),
    };
    let rule = if cx.revision > 1 { "call_logging.wrapup.replaced" } else { "call_logging.wrapup" };
    let mut lines =
        vec![Entry { at: cx.now, kind: EntryKind::Decision, summary: what, rule: Some(rule.into()), native: None }];
    if plan.action == Action::Log {
        let summary = match &plan.relate {
            Ok((r, by)) => format!("Related to record {r} ({by})"),
            Err(why) => format!("Relate-to-case not applied: {why}"),
        };
        lines.push(Entry {
            at: cx.now,
            kind: EntryKind::Decision,
            summary,
            rule: Some("call_logging.relate_to_case".into()),
            native: None,
        });
    }
    let call_log = CallLog {
        action: plan.action,
        person,
        record_id: record,
        related_by: plan.relate.as_ref().ok().map(|(_, by)| *by),
        disposition: plan.disposition.clone(),
        label: plan.label.clone(),
        notes: plan.notes.clone(),
        agent_id: cx.agent_id.clone(),
        queue: s.leaf_queue(),
        channel: s.channel,
        missed_reason: s.missed_reason,
        session_at: at,
    };
    Writes { ops, lane, keys, lines, call_log }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str) -> AccountHit {
        AccountHit { id: id.into(), kind: AccountKind::Contact, name: None, updated_at: chrono::DateTime::default() }
    }

    fn req(person: Option<&str>) -> Request {
        Request {
            disposition: Some("sale".into()),
            notes: Some("n".into()),
            action: Action::Log,
            person_id: person.map(str::to_string),
        }
    }

    #[test]
    fn candidates_choice_and_refusals() {
        let d = Disposition { code: "sale".into(), label: "Sale".into(), active: true };
        let two = [hit("a"), hit("b")];
        let f = Facts {
            disposition: Some(&d),
            candidates: &two,
            caller_known: true,
            origin_record_id: None,
            instances: vec![Some("r1".into())],
        };
        let s = CallLoggingSettings::default();
        assert!(matches!(decide(&req(None), &f, &s), Err(Refusal::Choose(c)) if c.len() == 2));
        assert!(matches!(decide(&req(Some("z")), &f, &s), Err(Refusal::Field(e)) if e.field == "person_id"));
        let p = decide(&req(Some("b")), &f, &s).ok().map(|p| (p.person, p.relate));
        assert_eq!(p, Some((Person::Existing { id: "b".into() }, Ok(("r1".into(), "viewing_record")))));
        let inactive = Disposition { active: false, ..d.clone() };
        let f2 = Facts { disposition: Some(&inactive), ..f.clone() };
        assert!(matches!(decide(&req(Some("a")), &f2, &s), Err(Refusal::Field(e)) if e.field == "disposition"));
        let f3 = Facts { instances: vec![Some("r1".into()), None], ..f };
        assert!(decide(&req(Some("a")), &f3, &s).is_ok_and(|p| p.relate.is_err()));
    }

    fn plan(action: Action, person: Person, relate: Result<(String, &'static str), String>) -> Plan {
        let log = action == Action::Log;
        Plan {
            action,
            person,
            relate,
            disposition: if log { "sale".into() } else { String::new() },
            label: if log { "Sale".into() } else { String::new() },
            notes: if log { "n".into() } else { String::new() },
        }
    }

    fn context<'a>(s: &'a Session, revision: i64, logged_before: bool) -> Context<'a> {
        Context {
            session_id: "s1",
            session: s,
            phone: Some("+14155550100".into()),
            agent_id: Some("ag".into()),
            revision,
            logged_before,
            now: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        }
    }

    fn rules(w: &Writes) -> Vec<&str> {
        w.lines.iter().filter_map(|l| l.rule.as_deref()).collect()
    }

    #[test]
    fn a_new_person_is_created_then_logged_on() {
        let s = Session { lane: Some(Lane::session("lane-1")), ..Session::default() };
        let p = plan(Action::Log, Person::Create { kind: AccountKind::Lead }, Ok(("r9".into(), "viewing_record")));
        let w = writes(&p, &context(&s, 1, false));
        assert!(
            matches!(&w.ops[..], [CrmOp::CreateAccount { key, kind: AccountKind::Lead, .. }, CrmOp::LogCall { person: Some(ObjRef::Key(k)), record: Some(ObjRef::Crm(r)), .. }]
            if key == "cb-wrapacct-s1" && k == key && r == "r9")
        );
        assert_eq!(w.lane.as_str(), "session:lane-1");
        assert_eq!(rules(&w), ["call_logging.wrapup", "call_logging.relate_to_case"]);
        assert_eq!(w.lines[0].summary, "Wrap-up sale: no CRM person matches the caller, a lead is created");
        assert_eq!(w.lines[1].summary, "Related to record r9 (viewing_record)");
        assert_eq!(w.call_log.person, Some(ObjRef::Key("cb-wrapacct-s1".into())));
        assert_eq!(w.call_log.related_by, Some("viewing_record"));
        assert_eq!(w.call_log.session_at, context(&s, 1, false).now, "no start time: the request's");
    }

    #[test]
    fn nothing_to_log_on_writes_nothing_to_the_crm() {
        let s = Session::default();
        let p = plan(Action::Log, Person::None { reason: "why".into() }, Err("no widget".into()));
        let w = writes(&p, &context(&s, 1, false));
        assert!(w.ops.is_empty());
        assert_eq!(w.lane.as_str(), "session:s1");
        assert_eq!(w.lines[0].summary, "Wrap-up sale: not logged on a person (why)");
        assert_eq!(w.lines[1].summary, "Relate-to-case not applied: no widget");
        assert_eq!(w.call_log.record_id, None);
    }

    #[test]
    fn do_not_log_after_a_log_withdraws_it() {
        let s = Session::default();
        let p = plan(Action::DoNotLog, Person::None { reason: "x".into() }, Err("x".into()));
        let first = writes(&p, &context(&s, 1, false));
        assert!(first.ops.is_empty());
        assert_eq!(rules(&first), ["call_logging.wrapup"]);
        let again = writes(&p, &context(&s, 2, true));
        assert!(
            matches!(&again.ops[..], [CrmOp::LogCall { person: None, record: None, disposition, agent_id: Some(a), .. }]
            if disposition.is_empty() && a == "ag")
        );
        assert_eq!(rules(&again), ["call_logging.wrapup.replaced"]);
        assert_eq!(again.lines[0].summary, "Wrap-up: Do not log (platform activity only)");
        assert_eq!(again.call_log.action, Action::DoNotLog);
    }

    #[test]
    fn an_existing_person_is_logged_on() {
        let s = Session::default();
        let p = plan(Action::Log, Person::Existing { id: "c1".into() }, Ok(("r1".into(), "origin_record")));
        let w = writes(&p, &context(&s, 3, true));
        assert!(matches!(&w.ops[..], [CrmOp::LogCall { person: Some(ObjRef::Crm(c)), .. }] if c == "c1"));
        assert_eq!(w.lines[0].summary, "Wrap-up sale: logged on person c1");
        assert_eq!(rules(&w), ["call_logging.wrapup.replaced", "call_logging.relate_to_case"]);
    }
}
