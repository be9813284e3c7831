//! Session data: the activity or session object, recordings, and standard custom fields.

use super::*;

impl Ctx<'_> {
    /// Writes the standard custom fields (§11) whose values changed, for sessions that
    /// started after the fields were enabled in the CRM.
    pub(super) fn standard_fields(&mut self) {
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

    pub(super) fn try_attach_recording(&mut self) {
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

    pub(super) fn rewrite_data_if_written(&mut self) -> R<()> {
        if self.s.data_written { self.write_data() } else { Ok(()) }
    }

    pub(super) fn session_data(&self) -> SessionData {
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

    pub(super) fn write_data(&mut self) -> R<()> {
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
