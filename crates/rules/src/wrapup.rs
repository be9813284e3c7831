//! Wrap-up decisions (behaviour.md §9): which person a call is logged on, which record it is
//! related to, or why the request is refused. Pure: the caller gathers the facts.

use serde::Serialize;

use crate::event::FieldError;
use crate::model::{AccountHit, AccountKind};
use crate::settings::{CallLoggingSettings, UnmatchedCaller};

/// Log or Do not log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}
