//! The names casebridge gives things: customer keys and lanes (what serializes work), and the
//! idempotency keys of the objects and writes it creates. Every such string is built here, so
//! the worker, the API and the store agree on them byte for byte.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::Customer;
use crate::model::ObjRef;
use crate::phone::Phone;

/// A key that identifies a customer. Two sessions that share one are serialized against
/// each other, so they never race into two accounts or two records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CustomerKey {
    /// The app user id.
    User(String),
    /// The E.164 phone number.
    Phone(String),
    /// The email, lower-cased.
    Email(String),
    /// The account: casebridge's key before it is created, the CRM id after.
    Account(String),
}

impl CustomerKey {
    /// The keys a customer is known by, most specific first: app user id, phone, email.
    pub fn of_customer(customer: &Customer, phone: Option<&Phone>) -> Vec<CustomerKey> {
        let mut keys = Vec::new();
        if let Some(u) = customer.user_id.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            keys.push(CustomerKey::User(u.to_string()));
        }
        if let Some(p) = phone {
            keys.push(CustomerKey::Phone(p.number.clone()));
        }
        if let Some(e) = customer.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            keys.push(CustomerKey::Email(e.to_lowercase()));
        }
        keys
    }

    /// The key of an account reference (key or CRM id, as written).
    pub fn account(r: &ObjRef) -> CustomerKey {
        CustomerKey::Account(r.as_str().to_string())
    }
}

impl fmt::Display for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomerKey::User(u) => write!(f, "user:{u}"),
            CustomerKey::Phone(p) => write!(f, "phone:{p}"),
            CustomerKey::Email(e) => write!(f, "email:{e}"),
            CustomerKey::Account(a) => write!(f, "account:{a}"),
        }
    }
}

/// A delivery lane: the CRM writes of one lane are delivered one at a time, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lane(String);

impl Lane {
    /// A new session's lane: its first customer key, or the session itself when it has none.
    pub fn of_session(session_id: &str, customer: &Customer, phone: Option<&Phone>) -> Lane {
        match CustomerKey::of_customer(customer, phone).into_iter().next() {
            Some(k) => Lane(k.to_string()),
            None => Lane::session(session_id),
        }
    }

    /// The lane of a session with no customer key.
    pub fn session(session_id: &str) -> Lane {
        Lane(format!("session:{session_id}"))
    }

    /// The lane of an agent's status pushes.
    pub fn agent(agent_id: &str) -> Lane {
        Lane(format!("agent:{agent_id}"))
    }

    /// The lane of one click-to-call hand-off.
    pub fn dial(dial_request_id: &str) -> Lane {
        Lane(format!("dial:{dial_request_id}"))
    }

    /// The lane as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Idempotency key of the account a session creates.
pub fn account_key(session_id: &str) -> String {
    format!("cb-acct-{session_id}")
}

/// Idempotency key of the record a session creates.
pub fn record_key(session_id: &str) -> String {
    format!("cb-rec-{session_id}")
}

/// Idempotency key of the person a wrap-up creates for an unmatched caller.
pub fn wrapup_person_key(session_id: &str) -> String {
    format!("cb-wrapacct-{session_id}")
}

/// Idempotency key of a session's n-th CRM write.
pub fn session_write_key(session_id: &str, n: u32) -> String {
    format!("{session_id}#{n}")
}

/// Idempotency key of the n-th write of one wrap-up request (`nonce` is the request's own,
/// so two wrap-ups racing are both delivered, in order).
pub fn wrapup_write_key(session_id: &str, nonce: &str, n: usize) -> String {
    format!("wrapup:{session_id}#{nonce}.{n}")
}

/// Idempotency key of an agent's status push made at agent state version `version`.
pub fn agent_write_key(agent_id: &str, version: i64) -> String {
    format!("agent:{agent_id}#{version}")
}

/// Idempotency key (and timeline id) of a click-to-call hand-off.
pub fn dial_write_key(dial_request_id: &str) -> String {
    format!("dial:{dial_request_id}")
}

/// Key of a line of casebridge's activity log (`kind`: missed, abandoned, voicemail,
/// call_log): one line per session and kind, rewritten in place.
pub fn activity_key(session_id: &str, kind: &str) -> String {
    format!("{session_id}:{kind}")
}

/// Event id of the internal event that carries a wrap-up to the session's data.
pub fn wrapup_event_id(session_id: &str, nonce: &str) -> String {
    format!("wrapup:{session_id}:{nonce}")
}

/// Key of a session's call log in the CRM (one per session, rewritten by later wrap-ups).
pub fn call_log_key(session_id: &str) -> String {
    format!("call:{session_id}")
}

/// Key of a session's activity in the CRM.
pub fn session_activity_key(session_id: &str) -> String {
    format!("session:{session_id}")
}

/// Key of the phone note written with a record created by write `write_key`.
pub fn record_note_key(write_key: &str) -> String {
    format!("{write_key}/note")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lanes_are_written_as_stored() {
        let c = Customer { user_id: Some(" u1 ".into()), email: Some("Ann@Example.com".into()), ..Customer::default() };
        let p = Phone::parse("+14155550100", "US");
        let keys: Vec<String> = CustomerKey::of_customer(&c, Some(&p)).iter().map(ToString::to_string).collect();
        assert_eq!(keys, ["user:u1", "phone:+14155550100", "email:ann@example.com"]);
        assert_eq!(Lane::of_session("s1", &c, Some(&p)).as_str(), "user:u1");
        assert_eq!(Lane::of_session("s1", &Customer::default(), None).as_str(), "session:s1");
        assert_eq!(CustomerKey::account(&ObjRef::Crm("acc_1".into())).to_string(), "account:acc_1");
        assert_eq!(session_write_key("s1", 3), "s1#3");
    }
}
