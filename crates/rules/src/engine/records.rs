//! Record rules (behaviour.md §3–§5): triggers, append, reopen, create, titles, tags, queued updates.

use super::*;
use crate::keys::record_key;
use crate::title::Template;

impl Ctx<'_> {
    pub(super) fn is_call_with_assign_trigger(&self) -> bool {
        self.s.channel == Some(Channel::Voice) && self.s.direction == Some(Direction::Inbound)
    }

    pub(super) fn reown(&mut self, agent: &str) {
        if self.s.record_is_own
            && self.s.record_owner.as_deref() != Some(agent)
            && let Some(r) = self.s.record.clone()
        {
            self.s.record_owner = Some(agent.to_string());
            self.decide(format!("Record owner set to agent {agent}"), "records.owner");
            self.command(CrmOp::SetOwner { record: r, agent_id: agent.to_string() });
        }
    }

    pub(super) fn chat_trigger(&mut self) -> R<()> {
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

    pub(super) fn no_record(&mut self, rule: &str, summary: &str) {
        self.s.record_outcome = RecordOutcome::None;
        self.s.record_rule = Some(rule.to_string());
        self.decide(summary, rule);
    }

    pub(super) fn records_of(&self, account: &ObjRef) -> R<Vec<RecordInfo>> {
        match self.need(Lookup::RecordsOfAccount(account.clone()))? {
            Answer::Records(r) => Ok(r.clone()),
            _ => Ok(vec![]),
        }
    }

    /// The trigger fired: append, reopen, create, or nothing (§3–6, §5.1–5.4).
    pub(super) fn trigger(&mut self, rule: &str, abandoned: Option<MissedReason>) -> R<()> {
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

    pub(super) fn tags(&self) -> Vec<String> {
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

    pub(super) fn title(&self) -> String {
        title_of(&self.s, self.settings)
    }

    pub(super) fn create_or_skip(&mut self, rule: &str, abandoned: Option<MissedReason>, summary: &str) -> R<()> {
        if self.settings.records.skip_creation {
            self.no_record("records.skip_creation", "No record: record creation is skipped");
            return Ok(());
        }
        let key = record_key(&self.s.id);
        let title = self.title();
        let owner = self.s.agent.as_ref().map(|a| a.id.clone()).or_else(|| self.settings.records.default_owner.clone());
        let note = if self.profile.phone_note {
            self.s.phone.as_ref().filter(|p| p.parsed).map(|p| format!("Customer phone: {}", p.display()))
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

    pub(super) fn append(&mut self, record: ObjRef, reopen_to: Option<String>, rule: &str, summary: &str) -> R<()> {
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

    pub(super) fn flush_pending(&mut self) {
        let Some(r) = self.s.record.clone() else { return };
        for p in std::mem::take(&mut self.s.pending) {
            self.command(to_op(p, r.clone()));
        }
    }

    /// A record update: written now when the record exists, kept until it does otherwise.
    pub(super) fn record_update(&mut self, u: PendingUpdate, rule: &str) {
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
}

fn to_op(u: PendingUpdate, record: ObjRef) -> CrmOp {
    match u {
        PendingUpdate::Note { body, at } => CrmOp::AddNote { record, body, at },
        PendingUpdate::Attachment { name, url, content, at } => CrmOp::AddAttachment { record, name, url, content, at },
        PendingUpdate::Fields { fields } => CrmOp::SetFields { record, fields },
    }
}

/// A session's record title under `settings` (behaviour.md §8): the template's variables
/// filled from the session; a template that does not parse gives the CALL_TYPE label.
pub fn title_of(s: &Session, settings: &Settings) -> String {
    let Ok(t) = Template::parse(&settings.records.title_template) else {
        return s.session_type.map(|t| t.call_type_label().to_string()).unwrap_or_default();
    };
    let mut v = BTreeMap::new();
    if let Some(tp) = s.session_type {
        v.insert("CALL_TYPE", tp.call_type_label().to_string());
    }
    v.insert("CALL_ID", s.id.clone());
    if let Some(m) = s.leaf_queue() {
        v.insert("MENU_PATH", m);
    }
    let number = match s.direction {
        Some(Direction::Outbound) => s.phone.as_ref().map(|p| p.number.clone()).or_else(|| s.customer.phone.clone()),
        _ => s.dialed_number.clone(),
    };
    if let Some(n) = number {
        v.insert("PHONE_NUMBER", n);
    }
    if let Some(l) = &s.language {
        v.insert("LANGUAGE", l.clone());
    }
    if let Some(c) = s.created_at {
        v.insert("TIMESTAMP", format_timestamp(c, &settings.time_zone));
    }
    t.render(&v)
}
