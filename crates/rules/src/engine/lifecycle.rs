//! Session events: created, queued, assigned, connected, messages, abandoned, ended, transferred.

use super::{Ctx, R};
use crate::event::{
    Channel, Direction, Event, MessageCreated, Sender, SessionAssigned, SessionCreated, SessionEnded, SessionQueued,
    SessionTransferred, SessionType,
};
use crate::keys::Lane;
use crate::model::Leg;
use crate::ops::CrmOp;
use crate::phone::Phone;
use crate::session::{PendingUpdate, Phase, RecordOutcome};
use chrono::SecondsFormat;

impl Ctx<'_> {
    /// `Created`.
    pub(super) fn on_created(&mut self, e: &Event, c: &SessionCreated) -> R<()> {
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
        s.lane = Some(Lane::of_session(&s.id, &s.customer, s.phone.as_ref()));
        self.account_phase()?;
        let st = c.session_type;
        if st == SessionType::Voicemail {
            self.activity("voicemail", None);
            self.trigger("records.trigger.voicemail_created", None)?;
        } else if c.direction == Direction::Outbound {
            self.trigger("records.trigger.outbound_created", None)?;
        }
        Ok(())
    }

    /// `Queued`.
    pub(super) fn on_queued(&mut self, _e: &Event, q: &SessionQueued) -> R<()> {
        self.merge_customer(q.customer.as_ref());
        self.s.queued = true;
        if self.s.phase == Phase::Created {
            self.s.phase = Phase::Queued;
        }
        if self.s.record.is_none() && !q.queue_path.is_empty() {
            self.s.queue_path = q.queue_path.clone();
        }
        Ok(())
    }

    /// `Assigned`.
    pub(super) fn on_assigned(&mut self, e: &Event, a: &SessionAssigned) -> R<()> {
        self.merge_customer(a.customer.as_ref());
        self.update_created_account();
        let first = self.s.assigned_at.is_none();
        if first {
            self.s.assigned_at = Some(e.at);
        }
        self.s.legs.push(Leg { at: e.at, kind: "assigned".into(), agent_id: Some(a.agent.id.clone()), queue: None });
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
        Ok(())
    }

    /// `Connected`.
    pub(super) fn on_connected(&mut self, e: &Event) -> R<()> {
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
        Ok(())
    }

    /// `Message`.
    pub(super) fn on_message(&mut self, e: &Event, m: &MessageCreated) -> R<()> {
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
        Ok(())
    }

    /// `Abandoned`.
    pub(super) fn on_abandoned(&mut self, e: &Event) -> R<()> {
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
        Ok(())
    }

    /// `Ended`.
    pub(super) fn on_ended(&mut self, e: &Event, d: &SessionEnded) -> R<()> {
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
        if self.s.channel == Some(Channel::Chat) && !self.s.transcript.is_empty() && !self.s.transcript_attached {
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
        Ok(())
    }

    /// `Transferred`.
    pub(super) fn on_transferred(&mut self, e: &Event, t: &SessionTransferred) -> R<()> {
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
        Ok(())
    }
}
