//! What platform events tell about a session, gathered per session in a [`Snapshot`], and the
//! casebridge events made from it.
//!
//! Platforms deliver out of order and more than once. A snapshot keeps every fact its events
//! told (the earliest time of each step, the customer, queue, agent, messages), and makes a
//! casebridge event for each step once, with an id derived from the session and the step, in
//! the order of the steps' times:
//! - nothing is made until the session's creation is known, and, while the customer is not
//!   known yet, until the session leaves the IVR (a later event may still name the customer);
//! - an end that says an agent answered waits for the step that says when;
//! - a step never comes before the one it follows (`created ≤ queued ≤ assigned ≤ connected ≤
//!   end`), whatever the platform's clocks or the receipt times say.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{
    Agent, Channel, CustomDataUpdated, Customer, Direction, Event, EventKind, MessageCreated, NativeOrigin, Sender,
    SessionAssigned, SessionCreated, SessionEnded, SessionQueued, SessionTransferred, SessionType,
};

/// The platforms casebridge reads natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Amazon Connect.
    AmazonConnect,
    /// Twilio (TaskRouter, Event Streams).
    Twilio,
    /// Genesys Cloud.
    Genesys,
    /// The generic CTI format.
    Cti,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 4] = [Source::AmazonConnect, Source::Twilio, Source::Genesys, Source::Cti];

    /// The wire name, also the session id prefix (`amazon-connect:<contactId>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AmazonConnect => "amazon-connect",
            Source::Twilio => "twilio",
            Source::Genesys => "genesys",
            Source::Cti => "cti",
        }
    }

    /// The member of the settings' `ingest`.
    pub fn settings_key(self) -> &'static str {
        match self {
            Source::AmazonConnect => "amazon_connect",
            Source::Twilio => "twilio",
            Source::Genesys => "genesys",
            Source::Cti => "cti",
        }
    }

    /// The session id of a platform id.
    pub fn session_id(self, platform_id: &str) -> String {
        format!("{}:{platform_id}", self.as_str())
    }

    /// Reads a wire name.
    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A chat message a platform reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeMessage {
    /// The platform's message id.
    pub id: String,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// Who sent it.
    pub sender: Sender,
    /// What it says.
    pub text: String,
    /// The conversation participant who sent it, when the platform names one: its role, once
    /// known, decides the sender.
    #[serde(default)]
    pub participant: Option<String>,
}

/// A move to another queue or agent (a new leg of the same session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeTransfer {
    /// The leg's own id.
    pub leg: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The queue it moved to.
    pub queue_path: Option<Vec<String>>,
    /// The agent it moved to.
    pub agent: Option<Agent>,
}

/// What one or several platform events tell about a session. Every member is optional: an
/// event tells what it knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// Channel.
    pub channel: Option<Channel>,
    /// Session type, when the platform says more than the channel.
    pub session_type: Option<SessionType>,
    /// Direction.
    pub direction: Option<Direction>,
    /// The customer.
    pub customer: Customer,
    /// Queue path.
    pub queue_path: Option<Vec<String>>,
    /// Language.
    pub language: Option<String>,
    /// The number dialed (the contact center's for inbound sessions).
    pub dialed_number: Option<String>,
    /// When the session started (its creation is known).
    pub created_at: Option<DateTime<Utc>>,
    /// When it reached a queue.
    pub queued_at: Option<DateTime<Utc>>,
    /// The agent it was offered to or connected with.
    pub agent: Option<Agent>,
    /// When it was offered to the agent.
    pub assigned_at: Option<DateTime<Utc>>,
    /// When the agent connected.
    pub connected_at: Option<DateTime<Utc>>,
    /// An agent answered (said by an end that does not say when).
    pub answered: bool,
    /// The customer left before an agent connected, at this time.
    pub abandoned_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Durations the platform reported.
    pub ended: SessionEnded,
    /// Chat messages.
    pub messages: Vec<NativeMessage>,
    /// Attribute values for the session's custom data.
    pub custom_data: BTreeMap<String, serde_json::Value>,
    /// Legs after the first (transfers).
    pub transfers: Vec<NativeTransfer>,
    /// Legs known to be over (the session ends when its last known leg does).
    pub legs_over: BTreeSet<String>,
    /// Legs known.
    pub legs: BTreeSet<String>,
    /// Conversation participants and who they are (customer, agent…).
    pub participants: BTreeMap<String, Sender>,
}

fn earliest(a: &mut Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) {
    if let Some(b) = b
        && a.is_none_or(|a| b < a)
    {
        *a = Some(b);
    }
}

fn fill<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
    if a.is_none() {
        a.clone_from(b);
    }
}

impl Facts {
    /// Adds what another event told: the earliest time of each step, the first value of each
    /// field (a later event only fills what is still missing), every message once.
    pub fn absorb(&mut self, o: &Facts) {
        fill(&mut self.channel, &o.channel);
        fill(&mut self.session_type, &o.session_type);
        fill(&mut self.direction, &o.direction);
        fill(&mut self.customer.phone, &o.customer.phone);
        fill(&mut self.customer.email, &o.customer.email);
        fill(&mut self.customer.user_id, &o.customer.user_id);
        fill(&mut self.customer.name, &o.customer.name);
        fill(&mut self.queue_path, &o.queue_path);
        fill(&mut self.language, &o.language);
        fill(&mut self.dialed_number, &o.dialed_number);
        fill(&mut self.agent, &o.agent);
        earliest(&mut self.created_at, o.created_at);
        earliest(&mut self.queued_at, o.queued_at);
        earliest(&mut self.assigned_at, o.assigned_at);
        earliest(&mut self.connected_at, o.connected_at);
        earliest(&mut self.abandoned_at, o.abandoned_at);
        earliest(&mut self.ended_at, o.ended_at);
        self.answered |= o.answered;
        fill(&mut self.ended.duration_s, &o.ended.duration_s);
        fill(&mut self.ended.hold_s, &o.ended.hold_s);
        fill(&mut self.ended.wait_s, &o.ended.wait_s);
        for m in &o.messages {
            if !self.messages.iter().any(|x| x.id == m.id) {
                self.messages.push(m.clone());
            }
        }
        for (k, v) in &o.custom_data {
            self.custom_data.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for t in &o.transfers {
            if !self.transfers.iter().any(|x| x.leg == t.leg) {
                self.transfers.push(t.clone());
            }
        }
        for (k, v) in &o.participants {
            self.participants.entry(k.clone()).or_insert(*v);
        }
        self.legs.extend(o.legs.iter().cloned());
        self.legs_over.extend(o.legs_over.iter().cloned());
    }

    fn knows_customer(&self) -> bool {
        let c = &self.customer;
        c.phone.is_some() || c.email.is_some() || c.user_id.is_some()
    }

    fn left_ivr(&self) -> bool {
        self.queued_at.is_some()
            || self.assigned_at.is_some()
            || self.connected_at.is_some()
            || self.answered
            || self.abandoned_at.is_some()
            || self.ended_at.is_some()
    }

    /// Every known leg is over (a session without legs ends with its end).
    fn all_legs_over(&self) -> bool {
        self.legs.iter().all(|l| self.legs_over.contains(l))
    }
}

/// One platform event, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Native {
    /// The platform.
    pub source: Source,
    /// The platform's id of the event: what duplicates are recognized by.
    pub id: String,
    /// The platform's event type.
    pub kind: String,
    /// The casebridge session (`<source>:<platform id>`).
    pub session_id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What it tells.
    pub facts: Facts,
    /// The payload as received.
    pub payload: serde_json::Value,
}

impl Native {
    fn origin(&self) -> NativeOrigin {
        NativeOrigin {
            source: self.source.as_str().into(),
            id: self.id.clone(),
            kind: self.kind.clone(),
            payload: self.payload.clone(),
        }
    }
}

/// What a platform event is to casebridge.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// An event about a session.
    Session(Box<Native>),
    /// An event type that means nothing to casebridge (answered 2xx and counted).
    Irrelevant {
        /// The platform's event type.
        kind: String,
    },
}

/// What a session's platform events have told so far, and what was made from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// Every fact, gathered.
    pub facts: Facts,
    /// Steps already made into casebridge events.
    pub made: BTreeSet<String>,
    /// The customer as `session.created` carried it.
    pub customer_sent: Option<Customer>,
    /// The platform event that first told each step.
    pub origins: BTreeMap<String, NativeOrigin>,
}

/// A step ready to become an event.
struct Step {
    at: DateTime<Utc>,
    rank: u8,
    name: String,
    kind: EventKind,
}

impl Snapshot {
    /// Adds a platform event and returns the casebridge events it makes possible, in the
    /// order of their times. Each step is made once; its id is `<session>#<step>`.
    pub fn absorb(&mut self, session_id: &str, n: &Native) -> Vec<Event> {
        let before = self.facts.clone();
        self.facts.absorb(&n.facts);
        self.remember_origins(&before, n);
        self.release(session_id)
    }

    fn remember_origins(&mut self, before: &Facts, n: &Native) {
        let f = &self.facts;
        let mut told: Vec<String> = Vec::new();
        let changed = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| a != b;
        if changed(before.created_at, f.created_at) {
            told.push("created".into());
        }
        if changed(before.queued_at, f.queued_at) {
            told.push("queued".into());
        }
        if changed(before.assigned_at, f.assigned_at) {
            told.push("assigned".into());
        }
        if changed(before.connected_at, f.connected_at) {
            told.push("connected".into());
        }
        if changed(before.abandoned_at, f.abandoned_at) {
            told.push("abandoned".into());
        }
        if changed(before.ended_at, f.ended_at) || before.legs_over != f.legs_over {
            told.push("ended".into());
        }
        for m in &n.facts.messages {
            told.push(format!("message:{}", m.id));
        }
        for t in &n.facts.transfers {
            told.push(format!("transfer:{}", t.leg));
        }
        if before.customer != f.customer {
            told.push("customer".into());
        }
        if before.custom_data != f.custom_data {
            told.push(format!("custom_data:{}", f.custom_data.len()));
        }
        for step in told {
            self.origins.entry(step).or_insert_with(|| n.origin());
        }
    }

    fn steps(&self) -> Vec<Step> {
        let f = &self.facts;
        let mut out = Vec::new();
        let Some(created) = f.created_at else { return out };
        let direction = f.direction.unwrap_or(Direction::Inbound);
        let channel = f.channel.unwrap_or(Channel::Voice);
        let session_type = f.session_type.unwrap_or(match (channel, direction) {
            (Channel::Voice, Direction::Outbound) => SessionType::VoiceOutbound,
            (Channel::Voice, Direction::Inbound) => SessionType::VoiceInboundIvr,
            (Channel::Chat, _) => SessionType::MessagingInboundWeb,
            (Channel::Voicemail, _) => SessionType::Voicemail,
        });
        out.push(Step {
            at: created,
            rank: 0,
            name: "created".into(),
            kind: EventKind::Created(SessionCreated {
                channel: session_type.channel(),
                session_type,
                direction: if session_type == SessionType::VoiceOutbound {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                },
                customer: f.customer.clone(),
                queue_path: if f.queued_at.is_none() { f.queue_path.clone().unwrap_or_default() } else { vec![] },
                language: f.language.clone(),
                dialed_number: f.dialed_number.clone(),
                origin_record_id: None,
                related_session_id: None,
                dial_request_id: None,
                recording_enabled: None,
            }),
        });
        // Customer details learnt after session.created travel with the next step that can
        // carry them (queued, assigned).
        let newer_customer = self.customer_sent.as_ref().filter(|c| **c != f.customer).map(|_| f.customer.clone());
        let mut customer_carried = false;
        let mut at = created;
        if let Some(q) = f.queued_at {
            at = at.max(q);
            let carry = !self.made.contains("queued") && newer_customer.is_some();
            customer_carried |= carry;
            out.push(Step {
                at,
                rank: 1,
                name: "queued".into(),
                kind: EventKind::Queued(SessionQueued {
                    queue_path: f.queue_path.clone().unwrap_or_default(),
                    customer: if carry { newer_customer.clone() } else { None },
                }),
            });
        }
        if let (Some(a), Some(agent)) = (f.assigned_at.or(f.connected_at), &f.agent) {
            at = at.max(a);
            let carry = !self.made.contains("assigned") && newer_customer.is_some() && !customer_carried;
            out.push(Step {
                at,
                rank: 2,
                name: "assigned".into(),
                kind: EventKind::Assigned(SessionAssigned {
                    agent: agent.clone(),
                    customer: if carry { newer_customer.clone() } else { None },
                }),
            });
        }
        if let Some(c) = f.connected_at {
            at = at.max(c);
            out.push(Step { at, rank: 3, name: "connected".into(), kind: EventKind::Connected });
        }
        for m in &f.messages {
            out.push(Step {
                at: m.at.max(created),
                rank: 4,
                name: format!("message:{}", m.id),
                kind: EventKind::Message(MessageCreated {
                    sender: m.participant.as_ref().and_then(|p| f.participants.get(p)).copied().unwrap_or(m.sender),
                    text: m.text.clone(),
                }),
            });
        }
        for t in &f.transfers {
            out.push(Step {
                at: t.at.max(created),
                rank: 5,
                name: format!("transfer:{}", t.leg),
                kind: EventKind::Transferred(SessionTransferred {
                    agent: t.agent.clone(),
                    queue_path: t.queue_path.clone(),
                }),
            });
        }
        if !f.custom_data.is_empty() {
            out.push(Step {
                at: created,
                rank: 6,
                name: format!("custom_data:{}", f.custom_data.len()),
                kind: EventKind::CustomData(CustomDataUpdated { data: f.custom_data.clone() }),
            });
        }
        let waits_for_answer = f.answered && f.connected_at.is_none();
        if let Some(ab) = f.abandoned_at
            && f.connected_at.is_none()
            && !f.answered
        {
            at = at.max(ab);
            out.push(Step { at, rank: 7, name: "abandoned".into(), kind: EventKind::Abandoned });
        }
        if let Some(e) = f.ended_at
            && !waits_for_answer
            && f.all_legs_over()
        {
            let last_message = f.messages.iter().map(|m| m.at).max();
            let last_transfer = f.transfers.iter().map(|t| t.at).max();
            let at = [Some(at), Some(e), last_message, last_transfer].into_iter().flatten().max().unwrap_or(e);
            out.push(Step { at, rank: 8, name: "ended".into(), kind: EventKind::Ended(f.ended.clone()) });
        }
        out
    }

    /// The steps not made yet, once the session may be created.
    fn release(&mut self, session_id: &str) -> Vec<Event> {
        let f = &self.facts;
        if f.created_at.is_none() {
            return vec![];
        }
        if !self.made.contains("created") && !f.knows_customer() && !f.left_ivr() {
            return vec![];
        }
        let mut steps: Vec<Step> = self.steps().into_iter().filter(|s| !self.made.contains(&s.name)).collect();
        steps.sort_by_key(|s| (s.at, s.rank));
        let mut out = Vec::new();
        for s in steps {
            if let EventKind::Created(c) = &s.kind {
                self.customer_sent = Some(c.customer.clone());
            }
            if let EventKind::Queued(SessionQueued { customer: Some(c), .. })
            | EventKind::Assigned(SessionAssigned { customer: Some(c), .. }) = &s.kind
            {
                self.customer_sent = Some(c.clone());
            }
            let native = self.origins.get(&s.name).or_else(|| self.origins.get("created")).cloned();
            self.made.insert(s.name.clone());
            out.push(Event {
                id: format!("{session_id}#{}", s.name),
                session_id: session_id.to_string(),
                at: s.at,
                kind: s.kind,
                native,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::event::Customer;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).single().unwrap_or_default()
    }

    fn native(id: &str, facts: Facts) -> Native {
        Native {
            source: Source::Cti,
            id: id.into(),
            kind: id.into(),
            session_id: "cti:1".into(),
            at: t(0),
            facts,
            payload: json!({"id": id}),
        }
    }

    fn names(events: &[Event]) -> Vec<String> {
        events.iter().map(|e| e.kind.type_name().to_string()).collect()
    }

    fn created() -> Facts {
        Facts {
            created_at: Some(t(0)),
            customer: Customer { phone: Some("+14155550100".into()), ..Customer::default() },
            ..Facts::default()
        }
    }

    #[test]
    fn an_end_that_says_answered_waits_for_the_connect() {
        let mut s = Snapshot::default();
        let end = Facts { ended_at: Some(t(60)), answered: true, ..Facts::default() };
        assert!(s.absorb("cti:1", &native("hangup", end)).is_empty(), "nothing before creation");
        assert_eq!(names(&s.absorb("cti:1", &native("newCall", created()))), ["session.created"]);
        let answer = Facts {
            connected_at: Some(t(10)),
            agent: Some(Agent { id: "a1".into(), email: None, name: None }),
            ..Facts::default()
        };
        let out = s.absorb("cti:1", &native("answer", answer));
        assert_eq!(names(&out), ["session.assigned", "session.connected", "session.ended"]);
        assert_eq!(out[2].native.as_ref().map(|n| n.id.as_str()), Some("hangup"), "the end keeps its own event");
        assert!(s.absorb("cti:1", &native("answer", Facts::default())).is_empty(), "each step once");
    }

    #[test]
    fn steps_never_precede_the_one_they_follow() {
        let mut s = Snapshot::default();
        let mut f = created();
        f.created_at = Some(t(30));
        f.connected_at = Some(t(10));
        f.agent = Some(Agent { id: "a1".into(), email: None, name: None });
        f.ended_at = Some(t(5));
        let out = s.absorb("cti:1", &native("all", f));
        let times: Vec<_> = out.iter().map(|e| e.at).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert_eq!(names(&out), ["session.created", "session.assigned", "session.connected", "session.ended"]);
    }

    #[test]
    fn creation_waits_in_the_ivr_for_the_customer() {
        let mut s = Snapshot::default();
        let bare = Facts { created_at: Some(t(0)), ..Facts::default() };
        assert!(s.absorb("x", &native("initiated", bare)).is_empty());
        let later = Facts {
            customer: Customer { phone: Some("+14155550100".into()), ..Customer::default() },
            ..Facts::default()
        };
        let out = s.absorb("x", &native("updated", later));
        match out.first().map(|e| &e.kind) {
            Some(EventKind::Created(c)) => assert_eq!(c.customer.phone.as_deref(), Some("+14155550100")),
            other => panic!("expected session.created, got {other:?}"),
        }
    }
}
