//! Realistic contact-center traffic: a mix of sessions of repeat customers, each a sequence
//! of casebridge events, with what the rules must make of it (for `--verify`).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// What a generated session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Inbound call through the IVR, queued, recorded, with a survey.
    IvrCall,
    /// Inbound call from the mobile app (the customer's app user id is known).
    AppCall,
    /// Inbound call from the web (the customer's email is known).
    WebCall,
    /// Web chat with a few messages.
    Chat,
    /// Voicemail, read by an agent.
    Voicemail,
    /// Call abandoned in the queue.
    Abandon,
    /// Agent's call back of an earlier call of the same customer.
    Callback,
    /// Call transferred to another agent.
    Transfer,
    /// One `session.connected` event of a session never created (the intake path alone).
    Intake,
}

/// Which record a session must end on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expect {
    /// None (abandoned call, with records for abandoned calls off; intake-only traffic).
    NoRecord,
    /// The one record of a customer in a leaf queue (appended while open).
    Group(u64, String),
    /// A record of its own (voicemail).
    Own,
    /// The record of an earlier session.
    SameAs(String),
}

/// One generated session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// Kind.
    pub kind: Kind,
    /// Customer number.
    pub customer: u64,
    /// Events, in the order they are sent.
    pub events: Vec<Value>,
    /// The record the rules must give it.
    pub expect: Expect,
}

/// The customer's phone number (E.164, a fictional range).
pub fn phone(customer: u64) -> String {
    format!("+1415{:07}", 2_000_000 + customer % 8_000_000)
}

/// Makes sessions; remembers finished calls so that callbacks have something to call back.
pub struct Traffic {
    tag: String,
    customers: u64,
    intake_only: bool,
    start: DateTime<Utc>,
    /// Finished calls with a record, by customer.
    calls: Mutex<HashMap<u64, String>>,
}

/// A small deterministic generator (the run is reproducible from its tag and numbers).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Traffic {
    /// Traffic for one run: `tag` keeps its ids apart from other runs'.
    pub fn new(tag: &str, customers: u64, intake_only: bool) -> Traffic {
        Traffic {
            tag: tag.to_string(),
            customers: customers.max(1),
            intake_only,
            start: Utc::now() - Duration::hours(2),
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// The `n`th session.
    pub fn session(&self, n: u64) -> Session {
        let id = format!("lg-{}-{n}", self.tag);
        if self.intake_only {
            let events = vec![json!({"id": format!("{id}-1"), "session_id": id, "type": "session.connected",
                "at": self.at(n, 0)})];
            return Session { id, kind: Kind::Intake, customer: 0, events, expect: Expect::NoRecord };
        }
        let r = mix(n ^ mix(self.tag.len() as u64));
        let customer = mix(r) % self.customers;
        let roll = r % 100;
        let mut kind = match roll {
            0..40 => Kind::IvrCall,
            40..50 => Kind::AppCall,
            50..60 => Kind::WebCall,
            60..80 => Kind::Chat,
            80..85 => Kind::Voicemail,
            85..92 => Kind::Abandon,
            92..97 => Kind::Callback,
            _ => Kind::Transfer,
        };
        let earlier = self.calls.lock().unwrap_or_else(|e| e.into_inner()).get(&customer).cloned();
        if kind == Kind::Callback && earlier.is_none() {
            kind = Kind::IvrCall;
        }
        let leaf = if (r >> 8).is_multiple_of(2) { "Billing" } else { "Technical" };
        let mut ev = Events::new(&id, self, n);
        let ph = phone(customer);
        let expect = match kind {
            Kind::IvrCall | Kind::AppCall | Kind::WebCall | Kind::Transfer => {
                let (stype, customer_doc) = match kind {
                    Kind::AppCall => ("voice_inbound_app", json!({"phone": ph, "user_id": format!("u{customer}")})),
                    Kind::WebCall => {
                        ("voice_inbound_web", json!({"phone": ph, "email": format!("c{customer}@example.com")}))
                    }
                    _ => ("voice_inbound_ivr", json!({"phone": ph})),
                };
                ev.push(
                    0,
                    "session.created",
                    json!({"channel": "voice", "session_type": stype, "direction": "inbound",
                    "customer": customer_doc, "queue_path": ["Support", leaf]}),
                );
                if matches!(kind, Kind::AppCall | Kind::WebCall) {
                    ev.push(
                        1,
                        "custom_data.updated",
                        json!({"data": {"order_id": format!("ord-{n}"), "plan": "gold"}}),
                    );
                }
                ev.push(3, "session.queued", json!({"queue_path": ["Support", leaf]}));
                ev.push(20, "session.assigned", json!({"agent": {"id": "agent-1", "email": "agent1@example.com"}}));
                ev.push(22, "session.connected", Value::Null);
                if kind == Kind::Transfer {
                    ev.push(90, "session.transferred", json!({"agent": {"id": "agent-2"}}));
                }
                ev.push(180, "session.ended", json!({}));
                ev.push(182, "recording.available", json!({"url": format!("https://recordings.example.com/{id}.mp3")}));
                ev.push(240, "csat.submitted", json!({"score": 4 + (r >> 16) % 2}));
                Expect::Group(customer, leaf.to_string())
            }
            Kind::Chat => {
                ev.push(
                    0,
                    "session.created",
                    json!({"channel": "chat", "session_type": "messaging_inbound_web",
                    "direction": "inbound", "customer": {"phone": ph}, "queue_path": ["Chat", "General"]}),
                );
                ev.push(10, "session.assigned", json!({"agent": {"id": "agent-3"}}));
                ev.push(12, "session.connected", Value::Null);
                ev.push(20, "message.created", json!({"sender": "customer", "text": "Hello, my order is late"}));
                ev.push(40, "message.created", json!({"sender": "agent", "text": "Let me check that for you"}));
                ev.push(60, "message.created", json!({"sender": "agent", "text": "It ships today"}));
                ev.push(75, "message.created", json!({"sender": "customer", "text": "Thank you"}));
                ev.push(90, "session.ended", json!({}));
                Expect::Group(customer, "General".into())
            }
            Kind::Voicemail => {
                ev.push(
                    0,
                    "session.created",
                    json!({"channel": "voicemail", "session_type": "voicemail",
                    "direction": "inbound", "customer": {"phone": ph}, "queue_path": ["Voicemail"]}),
                );
                ev.push(2, "recording.available", json!({"url": format!("https://recordings.example.com/{id}.mp3")}));
                ev.push(600, "voicemail.updated", json!({"action": "read", "agent": {"id": "agent-4"}}));
                Expect::Own
            }
            Kind::Abandon => {
                ev.push(
                    0,
                    "session.created",
                    json!({"channel": "voice", "session_type": "voice_inbound_ivr",
                    "direction": "inbound", "customer": {"phone": ph}, "queue_path": ["Support", leaf]}),
                );
                ev.push(5, "session.queued", json!({"queue_path": ["Support", leaf]}));
                ev.push(45, "session.abandoned", Value::Null);
                ev.push(46, "session.ended", json!({}));
                Expect::NoRecord
            }
            Kind::Callback => {
                let related = earlier.unwrap_or_default();
                ev.push(
                    0,
                    "session.created",
                    json!({"channel": "voice", "session_type": "voice_outbound",
                    "direction": "outbound", "customer": {"phone": ph}, "queue_path": ["Support", leaf],
                    "related_session_id": related}),
                );
                ev.push(1, "session.assigned", json!({"agent": {"id": "agent-1"}}));
                ev.push(8, "session.connected", Value::Null);
                ev.push(120, "session.ended", json!({}));
                Expect::SameAs(related)
            }
            Kind::Intake => Expect::NoRecord,
        };
        let events = ev.done();
        Session { id, kind, customer, events, expect }
    }

    /// A session's events were all accepted: a later callback may call it back.
    pub fn finished(&self, s: &Session) {
        if matches!(s.expect, Expect::Group(..)) && s.kind != Kind::Chat {
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(s.customer, s.id.clone());
        }
    }

    fn at(&self, n: u64, secs: i64) -> String {
        (self.start + Duration::milliseconds(n as i64 % 3_600_000) + Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

struct Events<'a> {
    id: &'a str,
    traffic: &'a Traffic,
    n: u64,
    out: Vec<Value>,
}

impl<'a> Events<'a> {
    fn new(id: &'a str, traffic: &'a Traffic, n: u64) -> Self {
        Events { id, traffic, n, out: Vec::new() }
    }

    fn push(&mut self, secs: i64, kind: &str, data: Value) {
        let mut e = json!({"id": format!("{}-{}", self.id, self.out.len() + 1), "session_id": self.id,
            "type": kind, "at": self.traffic.at(self.n, secs)});
        if !data.is_null() {
            e["data"] = data;
        }
        self.out.push(e);
    }

    fn done(self) -> Vec<Value> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_kind_and_about_seven_events_a_session() {
        let t = Traffic::new("t", 50, false);
        let mut kinds = std::collections::HashSet::new();
        let mut events = 0;
        for n in 0..2000 {
            let s = t.session(n);
            events += s.events.len();
            for e in &s.events {
                casebridge_rules::event::parse_event(e).expect("valid event");
            }
            t.finished(&s);
            kinds.insert(format!("{:?}", s.kind));
        }
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        let per = events as f64 / 2000.0;
        assert!((6.5..8.5).contains(&per), "{per} events a session");
    }
}
