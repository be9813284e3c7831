//! What is written as the session goes on: voicemail actions, recordings, CSAT, smart actions, wrap-up, custom data.

use std::collections::BTreeMap;

use super::{Ctx, R};
use crate::event::{
    CsatSubmitted, CustomDataUpdated, Event, RecordingAvailable, SmartActionCompleted, SmartActionFailed,
    VoicemailAction, VoicemailUpdated, WrappedUp,
};
use crate::ops::CrmOp;
use crate::session::PendingUpdate;

impl Ctx<'_> {
    /// `VoicemailUpdated`.
    pub(super) fn on_voicemail_updated(&mut self, e: &Event, v: &VoicemailUpdated) -> R<()> {
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
        Ok(())
    }

    /// `Recording`.
    pub(super) fn on_recording(&mut self, _e: &Event, r: &RecordingAvailable) -> R<()> {
        self.s.recording_url = Some(r.url.clone());
        self.try_attach_recording();
        self.rewrite_data_if_written()?;
        Ok(())
    }

    /// `Csat`.
    pub(super) fn on_csat(&mut self, e: &Event, c: &CsatSubmitted) -> R<()> {
        self.s.csat_score = Some(c.score);
        self.s.csat_comment = c.comment.clone();
        let body = match &c.comment {
            Some(cm) => format!("CSAT score: {} ({cm})", c.score),
            None => format!("CSAT score: {}", c.score),
        };
        self.record_update(PendingUpdate::Note { body, at: e.at }, "conversation.csat");
        self.rewrite_data_if_written()?;
        Ok(())
    }

    /// `SmartActionCompleted`.
    pub(super) fn on_smart_action_completed(&mut self, e: &Event, a: &SmartActionCompleted) -> R<()> {
        let body = format!("Smart action {} completed: {}", a.action, serde_json::Value::Object(a.result.clone()));
        self.s.updates.push(body.clone());
        self.record_update(PendingUpdate::Note { body, at: e.at }, "conversation.smart_action");
        for f in &a.files {
            self.record_update(
                PendingUpdate::Attachment { name: f.name.clone(), url: Some(f.url.clone()), content: None, at: e.at },
                "conversation.smart_action",
            );
        }
        self.rewrite_data_if_written()?;
        Ok(())
    }

    /// `SmartActionFailed`.
    pub(super) fn on_smart_action_failed(&mut self, e: &Event, a: &SmartActionFailed) -> R<()> {
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
        Ok(())
    }

    /// `WrappedUp`.
    pub(super) fn on_wrapped_up(&mut self, _e: &Event, w: &WrappedUp) -> R<()> {
        self.s.disposition = Some(w.disposition.clone()).filter(|d| !d.is_empty());
        self.s.notes = Some(w.notes.clone()).filter(|n| !n.is_empty());
        self.decide("Wrap-up kept with the session data", "call_logging.wrapup");
        self.rewrite_data_if_written()?;
        Ok(())
    }

    /// `CustomData`.
    pub(super) fn on_custom_data(&mut self, _e: &Event, d: &CustomDataUpdated) -> R<()> {
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
        Ok(())
    }
}
