//! The step function: a session's state, one event, the settings and the lookup answers
//! gathered so far in; either the lookups still needed, or the new state, the decisions and
//! the CRM commands out. Deterministic: the same inputs always give the same outputs.
//!
//! One file per rule family: `lifecycle` (session events), `updates` (what is written as
//! the session goes on), `accounts`, `records`, `missed` and `session_data`.

mod accounts;
mod lifecycle;
mod missed;
mod records;
mod session_data;
mod updates;

pub use self::records::title_of;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::event::{Channel, Direction, Event, EventKind, SessionType};
use crate::model::{
    AccountHit, AccountKind, Answer, Answers, CrmProfile, DataTarget, Entry, EntryKind, Lookup, MissedReason, ObjRef,
    PlatformActivity, RecordInfo, SessionData,
};
use crate::ops::{Command, CrmOp};
use crate::phone::Phone;
use crate::session::{AccountOutcome, PendingUpdate, RecordOutcome, Session};
use crate::settings::{AbandonedChatMode, MultipleMatch, SessionDataTarget, Settings, UnrecordedLink};

/// The result of one step.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived; boxing would only add noise
pub enum Step {
    /// Answer these and call again with the answers added.
    Need(Vec<Lookup>),
    /// The event is applied.
    Done(Outcome),
}

/// What applying an event produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The session's new state.
    pub session: Session,
    /// Timeline lines (events and decisions).
    pub timeline: Vec<Entry>,
    /// CRM writes, in order.
    pub commands: Vec<Command>,
    /// Lines of casebridge's own activity log (missed, abandoned, voicemail).
    pub activities: Vec<PlatformActivity>,
}

struct NeedLookup(Lookup);

struct Ctx<'a> {
    settings: &'a Settings,
    profile: &'a CrmProfile,
    answers: &'a Answers,
    s: Session,
    timeline: Vec<Entry>,
    commands: Vec<Command>,
    activities: Vec<PlatformActivity>,
    at: DateTime<Utc>,
}

type R<T> = Result<T, NeedLookup>;

/// Applies one event to a session (None for a session not seen before).
pub fn apply(
    session: Option<&Session>,
    event: &Event,
    settings: &Settings,
    profile: &CrmProfile,
    answers: &Answers,
) -> Step {
    let s = session.cloned().unwrap_or_else(|| Session {
        id: event.session_id.clone(),
        recording_enabled: true,
        ..Session::default()
    });
    let mut cx =
        Ctx { settings, profile, answers, s, timeline: vec![], commands: vec![], activities: vec![], at: event.at };
    match cx.event(event) {
        Ok(()) => Step::Done(Outcome {
            session: cx.s,
            timeline: cx.timeline,
            commands: cx.commands,
            activities: cx.activities,
        }),
        Err(NeedLookup(l)) => Step::Need(vec![l]),
    }
}

fn summarize(e: &Event) -> String {
    match &e.kind {
        EventKind::Created(c) => format!(
            "session.created: {} {} ({})",
            c.session_type.as_str(),
            match c.direction {
                Direction::Inbound => "inbound",
                Direction::Outbound => "outbound",
            },
            if c.queue_path.is_empty() { "no queue".to_string() } else { c.queue_path.join(" > ") }
        ),
        EventKind::Queued(q) => format!("session.queued: {}", q.queue_path.join(" > ")),
        EventKind::Assigned(a) => format!("session.assigned: agent {}", a.agent.id),
        EventKind::Message(m) => format!("message.created by {:?}", m.sender).to_lowercase(),
        EventKind::Transferred(t) => format!(
            "session.transferred{}{}",
            t.agent.as_ref().map(|a| format!(" to agent {}", a.id)).unwrap_or_default(),
            t.queue_path.as_ref().map(|q| format!(" to queue {}", q.join(" > "))).unwrap_or_default()
        ),
        EventKind::VoicemailUpdated(v) => format!("voicemail.updated: {:?} by {}", v.action, v.agent.id),
        EventKind::Csat(c) => format!("csat.submitted: {}", c.score),
        other => other.type_name().to_string(),
    }
}

impl Ctx<'_> {
    fn need(&self, l: Lookup) -> R<&Answer> {
        match self.answers.get(&l) {
            Some(a) => Ok(a),
            None => Err(NeedLookup(l)),
        }
    }

    fn note(&mut self, kind: EntryKind, summary: impl Into<String>, rule: Option<&str>) {
        self.timeline.push(Entry {
            at: self.at,
            kind,
            summary: summary.into(),
            rule: rule.map(str::to_string),
            native: None,
        });
    }

    fn decide(&mut self, summary: impl Into<String>, rule: &str) {
        self.note(EntryKind::Decision, summary, Some(rule));
    }

    fn command(&mut self, op: CrmOp) {
        self.s.commands_issued += 1;
        let key = crate::keys::session_write_key(&self.s.id, self.s.commands_issued);
        self.commands.push(Command { key, op });
    }

    /// The timeline line of an event, with the platform event it was made from.
    fn note_event(&mut self, e: &Event, summary: String) {
        self.note(EntryKind::Event, summary, None);
        if let Some(line) = self.timeline.last_mut() {
            line.native.clone_from(&e.native);
        }
    }

    fn event(&mut self, e: &Event) -> R<()> {
        self.at = e.at;
        self.note_event(e, summarize(e));
        if !self.s.is_created() && !matches!(e.kind, EventKind::Created(_)) {
            self.s.buffered.push(e.clone());
            self.decide("Kept until session.created arrives", "events.order");
            return Ok(());
        }
        self.apply_event(e)?;
        if matches!(e.kind, EventKind::Created(_)) && !self.s.buffered.is_empty() {
            let buffered = std::mem::take(&mut self.s.buffered);
            for b in &buffered {
                self.at = b.at;
                self.note_event(b, format!("{} (arrived before session.created)", summarize(b)));
                self.apply_event(b)?;
            }
        }
        Ok(())
    }

    fn apply_event(&mut self, e: &Event) -> R<()> {
        self.apply_kind(e)?;
        self.standard_fields();
        Ok(())
    }

    fn apply_kind(&mut self, e: &Event) -> R<()> {
        match &e.kind {
            EventKind::Created(c) => self.on_created(e, c),
            EventKind::Queued(q) => self.on_queued(e, q),
            EventKind::Assigned(a) => self.on_assigned(e, a),
            EventKind::Connected => self.on_connected(e),
            EventKind::Message(m) => self.on_message(e, m),
            EventKind::Abandoned => self.on_abandoned(e),
            EventKind::Ended(d) => self.on_ended(e, d),
            EventKind::Transferred(t) => self.on_transferred(e, t),
            EventKind::VoicemailUpdated(v) => self.on_voicemail_updated(e, v),
            EventKind::Recording(r) => self.on_recording(e, r),
            EventKind::Csat(c) => self.on_csat(e, c),
            EventKind::SmartActionCompleted(a) => self.on_smart_action_completed(e, a),
            EventKind::SmartActionFailed(a) => self.on_smart_action_failed(e, a),
            EventKind::WrappedUp(w) => self.on_wrapped_up(e, w),
            EventKind::CustomData(d) => self.on_custom_data(e, d),
        }
    }
}

/// RFC 3339 to the second in the settings' time zone: `Z` for UTC, the offset elsewhere.
pub fn format_timestamp(t: DateTime<Utc>, tz: &str) -> String {
    match tz.parse::<chrono_tz::Tz>() {
        Ok(chrono_tz::Tz::UTC) | Err(_) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        Ok(z) => t.with_timezone(&z).to_rfc3339_opts(SecondsFormat::Secs, false),
    }
}
