//! The step function: a session's state, one event, the settings and the lookup answers
//! gathered so far in; either the lookups still needed, or the new state, the decisions and
//! the CRM commands out. Deterministic: the same inputs always give the same outputs.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::event::{Channel, Direction, Event, EventKind, Sender, SessionType, VoicemailAction};
use crate::model::{
    AccountHit, AccountKind, Answer, Answers, Command, CrmOp, CrmProfile, DataTarget, Entry, EntryKind, Leg, Lookup,
    MissedReason, ObjRef, PlatformActivity, RecordInfo, SessionData,
};
use crate::phone::Phone;
use crate::session::{AccountOutcome, PendingUpdate, Phase, RecordOutcome, Session};
use crate::settings::{AbandonedChatMode, MultipleMatch, SessionDataTarget, Settings, UnrecordedLink};
use crate::title::Template;

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

/// The key casebridge gives the account a session creates.
pub fn account_key(session_id: &str) -> String {
    format!("cb-acct-{session_id}")
}

/// The key casebridge gives the record a session creates.
pub fn record_key(session_id: &str) -> String {
    format!("cb-rec-{session_id}")
}

/// The serialization lane of a new session: its customer key.
pub fn lane_of(session_id: &str, customer: &crate::event::Customer, phone: Option<&Phone>) -> String {
    // The first customer key (app user id, else phone, else email), or the session itself.
    customer_keys(customer, phone, None).into_iter().next().unwrap_or_else(|| format!("session:{session_id}"))
}

/// Every customer key of a session: app user id, phone, email, and the account once known.
/// Two sessions that share any of them are serialized against each other.
pub fn customer_keys(
    customer: &crate::event::Customer,
    phone: Option<&Phone>,
    account: Option<&ObjRef>,
) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(u) = customer.user_id.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        keys.push(format!("user:{u}"));
    }
    if let Some(p) = phone {
        keys.push(format!("phone:{}", p.number));
    }
    if let Some(e) = customer.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        keys.push(format!("email:{}", e.to_lowercase()));
    }
    if let Some(a) = account {
        keys.push(format!("account:{}", a.as_str()));
    }
    keys
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
        self.timeline.push(Entry { at: self.at, kind, summary: summary.into(), rule: rule.map(str::to_string) });
    }

    fn decide(&mut self, summary: impl Into<String>, rule: &str) {
        self.note(EntryKind::Decision, summary, Some(rule));
    }

    fn command(&mut self, op: CrmOp) {
        self.s.commands_issued += 1;
        let key = format!("{}#{}", self.s.id, self.s.commands_issued);
        self.commands.push(Command { key, op });
    }

    fn event(&mut self, e: &Event) -> R<()> {
        self.at = e.at;
        self.note(EntryKind::Event, summarize(e), None);
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
                self.note(EntryKind::Event, format!("{} (arrived before session.created)", summarize(b)), None);
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
            EventKind::Created(c) => {
                if self.s.is_created() {
                    self.decide("Duplicate session.created ignored", "events.late");
                    return Ok(());
                }
                let s = &mut self.s;
                s.phase = Phase::Created;
                s.channel = Some(c.channel);
                s.session_type = Some(c.session_type);
                s.direction = Some(c.direction);
                s.customer = c.customer.clone();
                s.phone = c
                    .customer
                    .phone
                    .as_deref()
                    .filter(|p| !Phone::is_anonymous(p))
                    .map(|p| Phone::parse(p, &self.settings.region));
                s.queue_path = c.queue_path.clone();
                s.language = c.language.clone();
                s.dialed_number = c.dialed_number.clone();
                s.origin_record_id = c.origin_record_id.clone();
                s.related_session_id = c.related_session_id.clone();
                s.dial_request_id = c.dial_request_id.clone();
                s.recording_enabled = c.recording_enabled.unwrap_or(true);
                s.created_at = Some(e.at);
                s.lane = Some(lane_of(&s.id, &s.customer, s.phone.as_ref()));
                self.account_phase()?;
                let st = c.session_type;
                if st == SessionType::Voicemail {
                    self.activity("voicemail", None);
                    self.trigger("records.trigger.voicemail_created", None)?;
                } else if c.direction == Direction::Outbound {
                    self.trigger("records.trigger.outbound_created", None)?;
                }
            }
            EventKind::Queued(q) => {
                self.merge_customer(q.customer.as_ref());
                self.s.queued = true;
                if self.s.phase == Phase::Created {
                    self.s.phase = Phase::Queued;
                }
                if self.s.record.is_none() && !q.queue_path.is_empty() {
                    self.s.queue_path = q.queue_path.clone();
                }
            }
            EventKind::Assigned(a) => {
                self.merge_customer(a.customer.as_ref());
                self.update_created_account();
                let first = self.s.assigned_at.is_none();
                if first {
                    self.s.assigned_at = Some(e.at);
                }
                self.s.legs.push(Leg {
                    at: e.at,
                    kind: "assigned".into(),
                    agent_id: Some(a.agent.id.clone()),
                    queue: None,
                });
                self.s.agent = Some(a.agent.clone());
                if matches!(self.s.phase, Phase::Created | Phase::Queued) {
                    self.s.phase = Phase::Assigned;
                }
                if self.s.is_over() || self.s.connected_at.is_some() {
                    self.decide("Late assignment: agent recorded, no trigger", "events.late");
                    self.reown(&a.agent.id);
                    self.rewrite_data_if_written()?;
                    return Ok(());
                }
                if self.s.record_outcome == RecordOutcome::Pending
                    && self.is_call_with_assign_trigger()
                    && !self.settings.records.delay_call_until_connected
                {
                    self.trigger("records.trigger.assigned", None)?;
                } else {
                    self.reown(&a.agent.id);
                }
            }
            EventKind::Connected => {
                if self.s.connected_at.is_some() {
                    self.decide("Duplicate session.connected ignored", "events.late");
                    return Ok(());
                }
                if self.s.is_over() {
                    self.decide("session.connected after the end ignored", "events.late");
                    return Ok(());
                }
                self.s.connected_at = Some(e.at);
                self.s.phase = Phase::Connected;
                match self.s.channel {
                    Some(Channel::Voice) if self.s.direction == Some(Direction::Inbound) => {
                        let rule = if self.settings.records.delay_call_until_connected {
                            "records.delay_call_until_connected"
                        } else {
                            "records.trigger.assigned"
                        };
                        self.trigger(rule, None)?;
                    }
                    Some(Channel::Chat) => self.chat_trigger()?,
                    _ => {}
                }
            }
            EventKind::Message(m) => {
                self.s.transcript.push(format!(
                    "[{}] {}: {}",
                    e.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    format!("{:?}", m.sender).to_lowercase(),
                    m.text
                ));
                if m.sender == Sender::Customer {
                    self.s.customer_messages += 1;
                    if self.s.connected_at.is_some() && !self.s.is_over() && self.s.channel == Some(Channel::Chat) {
                        self.chat_trigger()?;
                    }
                }
            }
            EventKind::Abandoned => {
                if self.s.connected_at.is_some() {
                    self.decide("session.abandoned after the agent connected ignored", "events.late");
                    return Ok(());
                }
                if self.s.abandoned {
                    self.decide("Duplicate session.abandoned ignored", "events.late");
                    return Ok(());
                }
                self.s.abandoned_at = Some(e.at);
                self.s.phase = Phase::Abandoned;
                self.missed(false)?;
            }
            EventKind::Ended(d) => {
                if self.s.ended_at.is_some() {
                    self.decide("Duplicate session.ended ignored", "events.late");
                    return Ok(());
                }
                self.s.ended_at = Some(e.at);
                self.s.duration_s =
                    d.duration_s.or_else(|| self.s.connected_at.map(|c| (e.at - c).num_milliseconds() as f64 / 1000.0));
                self.s.hold_s = d.hold_s;
                self.s.wait_s = d.wait_s.or_else(|| {
                    let start = self.s.created_at?;
                    let until = self.s.connected_at.or(self.s.abandoned_at).unwrap_or(e.at);
                    Some((until - start).num_milliseconds() as f64 / 1000.0)
                });
                let was_abandoned = self.s.abandoned;
                self.s.phase = Phase::Ended;
                if self.s.connected_at.is_none()
                    && !was_abandoned
                    && self.s.channel != Some(Channel::Voicemail)
                    && self.s.direction == Some(Direction::Inbound)
                {
                    self.missed(true)?;
                }
                if self.s.record_outcome == RecordOutcome::Pending {
                    let rule = match self.s.channel {
                        Some(Channel::Chat)
                            if self.settings.records.delay_chat_until_customer_messages.is_some()
                                && self.s.connected_at.is_some() =>
                        {
                            "records.delay_chat_until_customer_messages"
                        }
                        _ => "records.trigger_not_reached",
                    };
                    self.no_record(rule, "Session ended before its record trigger: no record");
                }
                if self.s.channel == Some(Channel::Chat) && !self.s.transcript.is_empty() && !self.s.transcript_attached
                {
                    self.s.transcript_attached = true;
                    let content = self.s.transcript.join("\n");
                    self.record_update(
                        PendingUpdate::Attachment {
                            name: format!("transcript-{}.txt", self.s.id),
                            url: None,
                            content: Some(content),
                            at: e.at,
                        },
                        "conversation.transcript",
                    );
                }
                self.try_attach_recording();
                self.write_data()?;
            }
            EventKind::Transferred(t) => {
                self.s.legs.push(Leg {
                    at: e.at,
                    kind: "transferred".into(),
                    agent_id: t.agent.as_ref().map(|a| a.id.clone()),
                    queue: t.queue_path.as_ref().map(|q| q.join(" > ")),
                });
                if let Some(q) = &t.queue_path {
                    if self.s.record.is_none() && self.s.record_outcome == RecordOutcome::Pending {
                        self.s.queue_path = q.clone();
                        self.decide(format!("Leaf queue is now {}", q.join(" > ")), "conversation.transfer");
                    } else {
                        self.decide("Leaf queue kept: the record already exists", "conversation.transfer");
                    }
                }
                if let Some(a) = &t.agent {
                    self.s.agent = Some(a.clone());
                    if let Some(r) = self.s.record.clone() {
                        self.decide(format!("Record reassigned to agent {}", a.id), "conversation.transfer");
                        self.s.record_owner = Some(a.id.clone());
                        self.command(CrmOp::SetOwner { record: r, agent_id: a.id.clone() });
                    }
                }
                self.rewrite_data_if_written()?;
            }
            EventKind::VoicemailUpdated(v) => {
                let what = match v.action {
                    VoicemailAction::Read => "read",
                    VoicemailAction::Closed => "closed",
                    VoicemailAction::CalledBack => "called back",
                };
                let text = format!("Voicemail {what} by agent {}", v.agent.id);
                self.s.updates.push(text.clone());
                self.record_update(PendingUpdate::Note { body: text, at: e.at }, "conversation.voicemail");
                if v.action == VoicemailAction::Closed
                    && let Some(r) = self.s.record.clone()
                {
                    self.command(CrmOp::SetStatus { record: r, status: "closed".into(), at: e.at });
                }
                self.rewrite_data_if_written()?;
            }
            EventKind::Recording(r) => {
                self.s.recording_url = Some(r.url.clone());
                self.try_attach_recording();
                self.rewrite_data_if_written()?;
            }
            EventKind::Csat(c) => {
                self.s.csat_score = Some(c.score);
                self.s.csat_comment = c.comment.clone();
                let body = match &c.comment {
                    Some(cm) => format!("CSAT score: {} ({cm})", c.score),
                    None => format!("CSAT score: {}", c.score),
                };
                self.record_update(PendingUpdate::Note { body, at: e.at }, "conversation.csat");
                self.rewrite_data_if_written()?;
            }
            EventKind::SmartActionCompleted(a) => {
                let body =
                    format!("Smart action {} completed: {}", a.action, serde_json::Value::Object(a.result.clone()));
                self.s.updates.push(body.clone());
                self.record_update(PendingUpdate::Note { body, at: e.at }, "conversation.smart_action");
                for f in &a.files {
                    self.record_update(
                        PendingUpdate::Attachment {
                            name: f.name.clone(),
                            url: Some(f.url.clone()),
                            content: None,
                            at: e.at,
                        },
                        "conversation.smart_action",
                    );
                }
                self.rewrite_data_if_written()?;
            }
            EventKind::SmartActionFailed(a) => {
                if a.user_error {
                    let body = format!("Smart action {} failed: {}", a.action, a.error);
                    self.s.updates.push(body.clone());
                    self.record_update(PendingUpdate::Note { body, at: e.at }, "conversation.smart_action");
                    self.rewrite_data_if_written()?;
                } else {
                    self.decide(
                        "Smart action failed without the customer's error: nothing written",
                        "conversation.smart_action",
                    );
                }
            }
            EventKind::WrappedUp(w) => {
                self.s.disposition = Some(w.disposition.clone()).filter(|d| !d.is_empty());
                self.s.notes = Some(w.notes.clone()).filter(|n| !n.is_empty());
                self.decide("Wrap-up kept with the session data", "call_logging.wrapup");
                self.rewrite_data_if_written()?;
            }
            EventKind::CustomData(d) => {
                for (k, v) in &d.data {
                    self.s.custom_data.insert(k.clone(), v.clone());
                }
                let mut fields = BTreeMap::new();
                for (k, v) in &d.data {
                    if let Some(f) = self.settings.custom_data_mapping.get(k) {
                        fields.insert(f.clone(), v.clone());
                    }
                }
                if fields.is_empty() {
                    self.decide("Custom data kept on the session (no mapped field)", "custom_data_mapping");
                } else {
                    self.record_update(PendingUpdate::Fields { fields }, "custom_data_mapping");
                }
                self.rewrite_data_if_written()?;
            }
        }
        Ok(())
    }

    /// A line of casebridge's own activity log, on the session's person.
    fn activity(&mut self, kind: &str, missed_reason: Option<MissedReason>) {
        self.activities.push(PlatformActivity {
            session_id: self.s.id.clone(),
            kind: kind.to_string(),
            missed_reason,
            person: self.s.account.clone(),
            agent_id: self.s.agent.as_ref().map(|a| a.id.clone()),
            queue: self.s.leaf_queue(),
            channel: self.s.channel,
            session_at: self.s.created_at.unwrap_or(self.at),
        });
    }

    /// Writes the standard custom fields (§11) whose values changed, for sessions that
    /// started after the fields were enabled in the CRM.
    fn standard_fields(&mut self) {
        let enabled = &self.profile.custom_fields;
        if enabled.is_empty() {
            return;
        }
        let Some(start) = self.s.created_at else { return };
        let on = |k: &str| enabled.get(k).filter(|f| f.enabled_at <= start).map(|f| f.crm_field.clone());
        if !self.s.account_fields_written
            && let (Some(acc), Some(uid), Some(field)) =
                (self.s.account.clone(), self.s.customer.user_id.clone(), on("custom_user_id"))
        {
            self.s.account_fields_written = true;
            let fields = BTreeMap::from([(field, serde_json::Value::String(uid))]);
            self.command(CrmOp::SetAccountFields { account: acc, fields });
        }
        let Some(record) = self.s.record.clone() else { return };
        let mut fields = BTreeMap::new();
        for (k, v) in crate::fields::record_values(&self.s) {
            if self.s.fields_written.get(k) == Some(&v) {
                continue;
            }
            if let Some(field) = on(k) {
                self.s.fields_written.insert(k.to_string(), v.clone());
                fields.insert(field, v);
            }
        }
        if !fields.is_empty() {
            self.command(CrmOp::SetFields { record, fields });
        }
    }

    fn merge_customer(&mut self, c: Option<&crate::event::Customer>) {
        let Some(c) = c else { return };
        let before = self.s.customer.clone();
        let cur = &mut self.s.customer;
        if c.name.is_some() {
            cur.name = c.name.clone();
        }
        if c.email.is_some() {
            cur.email = c.email.clone();
        }
        if c.user_id.is_some() {
            cur.user_id = c.user_id.clone();
        }
        if cur.phone.is_none() && c.phone.is_some() {
            cur.phone = c.phone.clone();
        }
        if self.s.customer != before {
            self.s.customer_changed = true;
        }
    }

    /// §2.4: the account this session created gets the details known at assignment.
    fn update_created_account(&mut self) {
        if self.s.account_outcome != AccountOutcome::Created || self.s.assigned_at.is_some() || !self.s.customer_changed
        {
            return;
        }
        if let Some(a) = self.s.account.clone() {
            let c = self.s.customer.clone();
            self.decide(
                "Account updated with the customer's details known at assignment",
                "accounts.update_at_assignment",
            );
            self.command(CrmOp::UpdateAccount { account: a, name: c.name, email: c.email, user_id: c.user_id });
        }
    }

    fn is_call_with_assign_trigger(&self) -> bool {
        self.s.channel == Some(Channel::Voice) && self.s.direction == Some(Direction::Inbound)
    }

    fn reown(&mut self, agent: &str) {
        if self.s.record_is_own
            && self.s.record_owner.as_deref() != Some(agent)
            && let Some(r) = self.s.record.clone()
        {
            self.s.record_owner = Some(agent.to_string());
            self.decide(format!("Record owner set to agent {agent}"), "records.owner");
            self.command(CrmOp::SetOwner { record: r, agent_id: agent.to_string() });
        }
    }

    // ---- accounts (§2) ----

    fn is_own_number(&self, p: &Phone) -> bool {
        self.settings.own_numbers.iter().any(|n| Phone::parse(n, &self.settings.region).number == p.number)
    }

    fn never_create_rule(&self, raw: &str, p: &Phone) -> Option<String> {
        let raw_digits: String = raw.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
        for entry in &self.settings.accounts.never_create_for {
            let e = entry.trim();
            if let Some(prefix) = e.strip_suffix('*') {
                let prefix = prefix.trim();
                if !prefix.is_empty() && (p.number.starts_with(prefix) || raw_digits.starts_with(prefix)) {
                    return Some(e.to_string());
                }
            } else {
                let norm = Phone::parse(e, &self.settings.region);
                if norm.number == p.number || e == raw.trim() || e == raw_digits {
                    return Some(e.to_string());
                }
            }
        }
        None
    }

    fn account_phase(&mut self) -> R<()> {
        let st = self.settings;
        if st.accounts.skip_lookup {
            self.s.account_outcome = AccountOutcome::None;
            self.decide("No account: lookup is skipped", "accounts.skip_lookup");
            return Ok(());
        }
        let c = self.s.customer.clone();
        let phone = self.s.phone.clone();
        let own = phone.as_ref().is_some_and(|p| self.is_own_number(p));
        let mut keys = Vec::new();
        if let Some(u) = c.user_id.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            keys.push(("app user id", Lookup::AccountsByUserId(u.to_string())));
        }
        if let Some(p) = &phone {
            if own {
                self.decide("Phone is one of the contact center's own numbers: not matched", "own_numbers");
            } else {
                keys.push(("phone", Lookup::AccountsByPhone(p.number.clone())));
            }
        }
        if let Some(e) = c.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            keys.push(("email", Lookup::AccountsByEmail(e.to_lowercase())));
        }
        for (label, key) in keys {
            let hits = match self.need(key)? {
                Answer::Accounts(h) => h.clone(),
                _ => vec![],
            };
            if hits.is_empty() {
                continue;
            }
            let chosen = choose_account(&hits, st.accounts.multiple_match);
            self.s.account = Some(ObjRef::Crm(chosen.id.clone()));
            self.s.account_outcome = AccountOutcome::Found;
            let others: Vec<&str> = hits.iter().filter(|h| h.id != chosen.id).map(|h| h.id.as_str()).collect();
            let mut summary = format!("Account {} found by {label}", chosen.id);
            if !others.is_empty() {
                summary.push_str(&format!("; {} other match(es) not used: {}", others.len(), others.join(", ")));
            }
            let rule = if others.is_empty() {
                "accounts.lookup".to_string()
            } else {
                format!(
                    "accounts.multiple_match.{}",
                    match st.accounts.multiple_match {
                        MultipleMatch::MostRecent => "most_recent",
                        MultipleMatch::Priority => "priority",
                    }
                )
            };
            self.decide(summary, &rule);
            return Ok(());
        }
        // Not found.
        let raw_phone = c.phone.clone().unwrap_or_default();
        let anonymous = c.phone.as_deref().is_some_and(Phone::is_anonymous);
        let has_other = c.user_id.as_deref().is_some_and(|u| !u.trim().is_empty())
            || c.email.as_deref().is_some_and(|e| !e.trim().is_empty());
        let blocked: Option<(String, String)> = if st.accounts.skip_creation {
            Some((
                "No account: customer not found and account creation is skipped".into(),
                "accounts.skip_creation".into(),
            ))
        } else if own {
            Some(("No account created: the number is one of the contact center's own".into(), "own_numbers".into()))
        } else if let Some(entry) = phone.as_ref().and_then(|p| self.never_create_rule(&raw_phone, p)) {
            Some((
                format!("No account created: the number matches never_create_for entry {entry:?}"),
                "accounts.never_create_for".into(),
            ))
        } else if phone.is_none() && !has_other {
            let why = if anonymous { "an anonymous or withheld caller" } else { "no phone, email or app user id" };
            Some((format!("No account created: {why}"), "accounts.anonymous".into()))
        } else {
            None
        };
        if let Some((summary, rule)) = blocked {
            self.s.account_outcome = AccountOutcome::None;
            self.decide(summary, &rule);
            return Ok(());
        }
        let key = account_key(&self.s.id);
        self.s.account = Some(ObjRef::Key(key.clone()));
        self.s.account_outcome = AccountOutcome::Created;
        self.decide("Customer not found: account created", "accounts.create");
        let at = self.at;
        self.command(CrmOp::CreateAccount {
            key,
            kind: AccountKind::Contact,
            name: c.name.clone(),
            phone: phone.as_ref().map(|p| p.number.clone()),
            email: c.email.clone(),
            user_id: c.user_id.clone(),
            at,
        });
        Ok(())
    }

    // ---- records (§3–6) ----

    fn chat_trigger(&mut self) -> R<()> {
        if self.s.record_outcome != RecordOutcome::Pending {
            return Ok(());
        }
        match self.settings.records.delay_chat_until_customer_messages {
            Some(n) if self.s.customer_messages < n => {
                if self.s.connected_at.is_some() && self.s.customer_messages == 0 {
                    self.decide(
                        format!("Record waits for {n} customer message(s)"),
                        "records.delay_chat_until_customer_messages",
                    );
                }
                Ok(())
            }
            Some(_) => self.trigger("records.delay_chat_until_customer_messages", None),
            None => self.trigger("records.trigger.connected", None),
        }
    }

    /// A session ends without an agent: abandoned (customer) or ended by the platform.
    fn missed(&mut self, by_platform: bool) -> R<()> {
        let st = &self.settings.records;
        let s = &self.s;
        let created = s.created_at.unwrap_or(self.at);
        let secs = (self.at - created).num_milliseconds() as f64 / 1000.0;
        let reason = if by_platform {
            MissedReason::NoAgentAvailable
        } else if s.channel == Some(Channel::Chat) && secs <= st.chat_short_abandon_seconds as f64 {
            MissedReason::ShortAbandoned
        } else if s.assigned_at.is_some() {
            MissedReason::AbandonedAfterAssignment
        } else if s.queued {
            MissedReason::AbandonedInQueue
        } else {
            MissedReason::AbandonedInIvr
        };
        self.s.abandoned = true;
        self.s.missed_reason = Some(reason);
        self.decide(format!("Missed session: {}", reason.as_str()), "records.missed_reason");
        self.activity(if by_platform { "missed" } else { "abandoned" }, Some(reason));
        if let Some(r) = self.s.record.clone() {
            if self.s.record_is_own {
                self.command(CrmOp::MarkAbandoned { record: r, missed_reason: reason });
            }
            return Ok(());
        }
        if self.s.record_outcome != RecordOutcome::Pending {
            return Ok(());
        }
        match self.s.channel {
            Some(Channel::Voice) => {
                if st.delay_call_until_connected {
                    self.no_record(
                        "records.delay_call_until_connected",
                        "Abandoned call: only calls that connect to an agent get records",
                    );
                } else if st.abandoned_calls {
                    self.trigger("records.abandoned_calls", Some(reason))?;
                } else {
                    self.no_record("records.abandoned_calls", "Abandoned call: records for abandoned calls are off");
                }
            }
            Some(Channel::Chat) => {
                let ac = &st.abandoned_chats;
                match ac.mode {
                    AbandonedChatMode::Off => self.no_record(
                        "records.abandoned_chats.off",
                        "Abandoned chat: records for abandoned chats are off",
                    ),
                    AbandonedChatMode::All => self.trigger("records.abandoned_chats.all", Some(reason))?,
                    AbandonedChatMode::MinCustomerMessages => {
                        let n = ac.min_customer_messages.unwrap_or(1);
                        if self.s.customer_messages >= n {
                            self.trigger("records.abandoned_chats.min_customer_messages", Some(reason))?;
                        } else {
                            let m = self.s.customer_messages;
                            self.no_record(
                                "records.abandoned_chats.min_customer_messages",
                                &format!("Abandoned chat with {m} customer message(s), fewer than {n}: no record"),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn no_record(&mut self, rule: &str, summary: &str) {
        self.s.record_outcome = RecordOutcome::None;
        self.s.record_rule = Some(rule.to_string());
        self.decide(summary, rule);
    }

    fn records_of(&self, account: &ObjRef) -> R<Vec<RecordInfo>> {
        match self.need(Lookup::RecordsOfAccount(account.clone()))? {
            Answer::Records(r) => Ok(r.clone()),
            _ => Ok(vec![]),
        }
    }

    /// The trigger fired: append, reopen, create, or nothing (§3–6, §5.1–5.4).
    fn trigger(&mut self, rule: &str, abandoned: Option<MissedReason>) -> R<()> {
        if self.s.record_outcome != RecordOutcome::Pending {
            return Ok(());
        }
        let st = &self.settings.records;
        let is_voicemail = self.s.session_type == Some(SessionType::Voicemail);
        if is_voicemail {
            return self.create_or_skip("conversation.voicemail", abandoned, "Voicemail: always a new record");
        }
        if let Some(rel) = self.s.related_session_id.clone() {
            match self.need(Lookup::RecordOfSession(rel.clone()))? {
                Answer::Record(Some(r)) => {
                    let r = r.clone();
                    return self.append(
                        r,
                        None,
                        "conversation.callback",
                        &format!("Callback of session {rel}: appended to its record"),
                    );
                }
                _ => self.decide(
                    format!("Related session {rel} has no record: the usual rules apply"),
                    "conversation.callback",
                ),
            }
        }
        if self.s.direction == Some(Direction::Outbound) {
            if self.s.origin_record_id.is_none()
                && let Some(d) = self.s.dial_request_id.clone()
            {
                match self.need(Lookup::DialRequestOrigin(d.clone()))?.clone() {
                    Answer::Origin(Some(o)) => {
                        self.decide(
                            format!("Dial request {d} was made from record {o}"),
                            "conversation.outbound.dial_request",
                        );
                        self.s.origin_record_id = Some(o.clone());
                    }
                    _ => self.decide(
                        format!("Dial request {d} has no origin record: the usual outbound rules apply"),
                        "conversation.outbound.dial_request",
                    ),
                }
            }
            if let Some(origin) = self.s.origin_record_id.clone() {
                return self.append(
                    ObjRef::Crm(origin),
                    None,
                    "conversation.outbound.origin_record",
                    "Outbound call dialed from a record: appended to it",
                );
            }
            if let Some(acc) = self.s.account.clone() {
                let recs = self.records_of(&acc)?;
                if let Some(latest) = recs.iter().max_by_key(|r| (r.created_at, r.id.clone()))
                    && !latest.is_closed
                {
                    let id = latest.id.clone();
                    return self.append(
                        id,
                        None,
                        "conversation.outbound.latest_open",
                        "Outbound call: the account's most recent record is open, appended to it",
                    );
                }
            }
            return self.create_or_skip("conversation.outbound.create", abandoned, "Outbound call: new record");
        }
        if st.append_to_open_in_leaf_queue {
            if let Some(acc) = self.s.account.clone() {
                let leaf = self.s.leaf_queue();
                let channel = self.s.channel;
                let recs = self.records_of(&acc)?;
                let cands: Vec<&RecordInfo> = recs
                    .iter()
                    .filter(|r| r.leaf_queue == leaf)
                    .filter(|r| !st.append_requires_same_channel || r.channel == channel)
                    .collect();
                if let Some(open) = cands.iter().filter(|r| !r.is_closed).max_by_key(|r| (r.created_at, r.id.clone())) {
                    let id = open.id.clone();
                    return self.append(
                        id,
                        None,
                        "records.append_to_open_in_leaf_queue",
                        &format!(
                            "Appended to the latest open record in leaf queue {}",
                            leaf.as_deref().unwrap_or("(none)")
                        ),
                    );
                }
                if let Some(days) = st.append_to_closed_within_days {
                    let start = self.s.created_at.unwrap_or(self.at);
                    let window = chrono::Duration::days(days as i64);
                    let closed = cands
                        .iter()
                        .filter(|r| r.is_closed)
                        .filter_map(|r| r.closed_at.map(|c| (c, *r)))
                        .filter(|(c, _)| *c <= start && start - *c <= window)
                        .max_by_key(|(c, r)| (*c, r.id.clone()));
                    if let Some((_, r)) = closed {
                        let id = r.id.clone();
                        let status =
                            st.default_open_status.clone().unwrap_or_else(|| self.profile.default_open_status.clone());
                        return self.append(
                            id,
                            Some(status),
                            "records.append_to_closed_within_days",
                            &format!("Appended to a record closed within {days} day(s) and reopened it"),
                        );
                    }
                }
                self.decide("No appendable record in this leaf queue", "records.append_to_open_in_leaf_queue");
            } else {
                self.decide(
                    "Append is on but the session has no account: nothing to append to",
                    "records.append_to_open_in_leaf_queue",
                );
            }
        }
        self.create_or_skip(rule, abandoned, "New record")
    }

    fn tags(&self) -> Vec<String> {
        let st = &self.settings.records;
        let mut tags = Vec::new();
        if st.tag_session_type
            && let Some(t) = self.s.session_type.and_then(|t| self.profile.tags.format(t.display_name()))
        {
            tags.push(t);
        }
        if st.tag_platform && self.profile.tags != crate::model::TagStyle::None {
            tags.push(st.platform_tag.clone());
        }
        tags
    }

    fn title(&self) -> String {
        let st = self.settings;
        let Ok(t) = Template::parse(&st.records.title_template) else {
            return self.s.session_type.map(|t| t.call_type_label().to_string()).unwrap_or_default();
        };
        let mut v = BTreeMap::new();
        if let Some(tp) = self.s.session_type {
            v.insert("CALL_TYPE", tp.call_type_label().to_string());
        }
        v.insert("CALL_ID", self.s.id.clone());
        if let Some(m) = self.s.leaf_queue() {
            v.insert("MENU_PATH", m);
        }
        let number = match self.s.direction {
            Some(Direction::Outbound) => {
                self.s.phone.as_ref().map(|p| p.number.clone()).or_else(|| self.s.customer.phone.clone())
            }
            _ => self.s.dialed_number.clone(),
        };
        if let Some(n) = number {
            v.insert("PHONE_NUMBER", n);
        }
        if let Some(l) = &self.s.language {
            v.insert("LANGUAGE", l.clone());
        }
        if let Some(c) = self.s.created_at {
            v.insert("TIMESTAMP", format_timestamp(c, &st.time_zone));
        }
        t.render(&v)
    }

    fn create_or_skip(&mut self, rule: &str, abandoned: Option<MissedReason>, summary: &str) -> R<()> {
        if self.settings.records.skip_creation {
            self.no_record("records.skip_creation", "No record: record creation is skipped");
            return Ok(());
        }
        let key = record_key(&self.s.id);
        let title = self.title();
        let owner = self.s.agent.as_ref().map(|a| a.id.clone()).or_else(|| self.settings.records.default_owner.clone());
        let note = if self.profile.phone_note {
            self.s.phone.as_ref().filter(|p| p.parsed).map(|p| format!("Customer phone: {}", p.number))
        } else {
            None
        };
        let r = ObjRef::Key(key.clone());
        self.s.record = Some(r);
        self.s.record_outcome = RecordOutcome::Created;
        self.s.record_is_own = true;
        self.s.record_owner = owner.clone();
        self.s.record_rule = Some(rule.to_string());
        let mut text = format!("{summary}: \"{title}\"");
        if abandoned.is_some() {
            text.push_str(" (abandoned)");
        }
        if self.s.agent.is_none()
            && let Some(o) = &owner
        {
            text.push_str(&format!(", owned by default owner {o}"));
        }
        self.decide(text, rule);
        let op = CrmOp::CreateRecord {
            key,
            account: self.s.account.clone(),
            title,
            leaf_queue: self.s.leaf_queue(),
            channel: self.s.channel.unwrap_or(Channel::Voice),
            owner,
            tags: self.tags(),
            session_id: self.s.id.clone(),
            abandoned: abandoned.is_some(),
            missed_reason: abandoned,
            note,
            at: self.at,
        };
        self.command(op);
        self.flush_pending();
        Ok(())
    }

    fn append(&mut self, record: ObjRef, reopen_to: Option<String>, rule: &str, summary: &str) -> R<()> {
        let outcome = if reopen_to.is_some() { RecordOutcome::Reopened } else { RecordOutcome::Appended };
        self.s.record = Some(record.clone());
        self.s.record_outcome = outcome;
        self.s.record_is_own = false;
        self.s.record_rule = Some(rule.to_string());
        self.decide(format!("{summary} ({})", record.as_str()), rule);
        let tags = self.tags();
        let at = self.at;
        self.command(CrmOp::AppendSession { record, session_id: self.s.id.clone(), tags, reopen_to, at });
        if let Some(reason) = self.s.missed_reason.filter(|_| self.s.abandoned) {
            self.decide(format!("Appended session was missed: {}", reason.as_str()), "records.missed_reason");
        }
        self.flush_pending();
        Ok(())
    }

    fn flush_pending(&mut self) {
        let Some(r) = self.s.record.clone() else { return };
        for p in std::mem::take(&mut self.s.pending) {
            self.command(to_op(p, r.clone()));
        }
    }

    /// A record update: written now when the record exists, kept until it does otherwise.
    fn record_update(&mut self, u: PendingUpdate, rule: &str) {
        match self.s.record.clone() {
            Some(r) => self.command(to_op(u, r)),
            None => {
                if self.s.record_outcome == RecordOutcome::Pending {
                    self.decide("Kept until the record exists", rule);
                }
                self.s.pending.push(u);
            }
        }
    }

    fn try_attach_recording(&mut self) {
        let Some(url) = self.s.recording_url.clone() else { return };
        if self.s.recording_attached || self.s.ended_at.is_none() {
            return;
        }
        if !self.settings.session_data.attach_recordings || !self.s.recording_enabled {
            if !self.s.recording_attached {
                self.s.recording_attached = true;
                self.decide("Recording not attached: recording is off", "conversation.recording");
            }
            return;
        }
        self.s.recording_attached = true;
        let at = self.at;
        self.record_update(
            PendingUpdate::Attachment { name: format!("recording-{}", self.s.id), url: Some(url), content: None, at },
            "conversation.recording",
        );
    }

    // ---- session data (§7) ----

    fn rewrite_data_if_written(&mut self) -> R<()> {
        if self.s.data_written { self.write_data() } else { Ok(()) }
    }

    fn session_data(&self) -> SessionData {
        let s = &self.s;
        SessionData {
            session_id: s.id.clone(),
            session_type: s.session_type.map(|t| t.as_str().to_string()).unwrap_or_default(),
            queue: s.leaf_queue(),
            customer_phone: s.phone.as_ref().map(|p| p.number.clone()).or_else(|| s.customer.phone.clone()),
            agent_id: s.agent.as_ref().map(|a| a.id.clone()),
            started_at: s.created_at,
            connected_at: s.connected_at,
            ended_at: s.ended_at,
            duration_s: s.duration_s,
            hold_s: s.hold_s,
            wait_s: s.wait_s,
            customer_messages: s.customer_messages,
            csat_score: s.csat_score,
            csat_comment: s.csat_comment.clone(),
            disposition: s.disposition.clone(),
            notes: s.notes.clone(),
            recording_url: s.recording_url.clone().filter(|_| s.recording_enabled),
            transcript: if s.record.is_none() && !s.transcript.is_empty() {
                Some(s.transcript.join("\n"))
            } else {
                None
            },
            abandoned: s.abandoned,
            missed_reason: s.missed_reason,
            legs: s.legs.clone(),
            updates: s.updates.clone(),
            custom_data: s.custom_data.clone(),
        }
    }

    fn write_data(&mut self) -> R<()> {
        let target = match self.settings.session_data.target {
            SessionDataTarget::Activity => DataTarget::Activity,
            SessionDataTarget::SessionObject => DataTarget::SessionObject,
        };
        let (record, account) = if let Some(r) = self.s.record.clone() {
            (Some(r), self.s.account.clone())
        } else {
            let account = self.s.account.clone();
            match (self.settings.session_data.unrecorded_session_link, account) {
                (UnrecordedLink::LatestRecord, Some(acc)) => {
                    let recs = self.records_of(&acc)?;
                    let latest = recs.iter().max_by_key(|r| (r.created_at, r.id.clone())).map(|r| r.id.clone());
                    if !self.s.data_written {
                        match &latest {
                            Some(r) => self.decide(
                                format!(
                                    "No record: session data written on the account's latest record {}",
                                    r.as_str()
                                ),
                                "session_data.unrecorded_session_link.latest_record",
                            ),
                            None => self.decide(
                                "No record and the account has none: session data written on the account",
                                "session_data.unrecorded_session_link.latest_record",
                            ),
                        }
                    }
                    (latest, Some(acc))
                }
                (UnrecordedLink::Account, Some(acc)) => {
                    if !self.s.data_written {
                        self.decide(
                            "No record: session data written on the account",
                            "session_data.unrecorded_session_link.account",
                        );
                    }
                    (None, Some(acc))
                }
                _ => {
                    if !self.s.data_written {
                        self.decide(
                            "No record: session data kept standalone",
                            "session_data.unrecorded_session_link.none",
                        );
                    }
                    (
                        None,
                        if self.settings.session_data.unrecorded_session_link == UnrecordedLink::None {
                            None
                        } else {
                            self.s.account.clone()
                        },
                    )
                }
            }
        };
        let mut data = self.session_data();
        if record.is_none() {
            // Updates that never found a record stay with the session (§5.10).
            for p in &self.s.pending {
                if let PendingUpdate::Fields { fields } = p {
                    for (k, v) in fields {
                        data.custom_data.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        self.s.data_written = true;
        self.command(CrmOp::WriteSessionData { target, record, account, data });
        Ok(())
    }
}

fn to_op(u: PendingUpdate, record: ObjRef) -> CrmOp {
    match u {
        PendingUpdate::Note { body, at } => CrmOp::AddNote { record, body, at },
        PendingUpdate::Attachment { name, url, content, at } => CrmOp::AddAttachment { record, name, url, content, at },
        PendingUpdate::Fields { fields } => CrmOp::SetFields { record, fields },
    }
}

fn choose_account(hits: &[AccountHit], mode: MultipleMatch) -> &AccountHit {
    let mut best = &hits[0];
    for h in &hits[1..] {
        let better = match mode {
            MultipleMatch::MostRecent => (h.updated_at, &h.id) > (best.updated_at, &best.id),
            MultipleMatch::Priority => {
                let (a, b) = (h.kind.priority_rank(), best.kind.priority_rank());
                a < b || (a == b && (h.updated_at, &h.id) > (best.updated_at, &best.id))
            }
        };
        if better {
            best = h;
        }
    }
    best
}

/// RFC 3339 to the second in the settings' time zone: `Z` for UTC, the offset elsewhere.
pub fn format_timestamp(t: DateTime<Utc>, tz: &str) -> String {
    match tz.parse::<chrono_tz::Tz>() {
        Ok(chrono_tz::Tz::UTC) | Err(_) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        Ok(z) => t.with_timezone(&z).to_rfc3339_opts(SecondsFormat::Secs, false),
    }
}
