//! Missed sessions (behaviour.md §6): abandoned and unanswered sessions, and the activity log.

use super::*;

impl Ctx<'_> {
    /// A line of casebridge's own activity log, on the session's person.
    pub(super) fn activity(&mut self, kind: &str, missed_reason: Option<MissedReason>) {
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

    /// A session ends without an agent: abandoned (customer) or ended by the platform.
    pub(super) fn missed(&mut self, by_platform: bool) -> R<()> {
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
}
