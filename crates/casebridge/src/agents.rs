//! Agent status sync as a service: loads an agent's state, runs the pure step
//! (`casebridge_rules::agent`), saves it with a compare-and-swap and queues the CRM push in
//! the same commit.

use casebridge_rules::agent::{self, AgentState, Input, Outcome};
use casebridge_rules::keys::{Lane, agent_write_key};
use casebridge_rules::ops::{CrmOp, OutboxOp};
use casebridge_store::agents::AgentRow;
use chrono::Utc;

use crate::pipeline::Pipeline;

/// Why an agent step failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No such agent.
    #[error("no agent {0:?}; register it with PUT /v1/agents/{0}")]
    Unknown(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] casebridge_store::StoreError),
    /// Stored state unreadable.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// An agent's state from its row (an unreadable state starts over).
pub fn state_of(row: &AgentRow) -> AgentState {
    serde_json::from_str(&row.state).unwrap_or_default()
}

/// Applies one input to an agent; retries when another writer saved in between.
pub async fn apply(p: &Pipeline, id: &str, input: Input) -> Result<(AgentRow, AgentState, Outcome), AgentError> {
    // The widget and the platform know agents by id alone; the CRM side needs the email.
    let registers = matches!(input, Input::Context { .. } | Input::Platform { .. });
    loop {
        let row = match p.store.agent(id).await? {
            Some(row) => row,
            None if registers => {
                p.store.agent_ensure(id).await?;
                continue;
            }
            None => return Err(AgentError::Unknown(id.to_string())),
        };
        let mut state = state_of(&row);
        let settings = p.settings().await;
        // Only a held (or holdable) status cares whether the agent is on a session.
        let busy = (settings.agent_status.hold_while_busy || state.held.is_some()) && p.store.agent_busy(id).await?;
        let now = Utc::now();
        state.no_email = row.email.is_empty();
        let out = agent::apply(&mut state, input.clone(), &settings.agent_status, busy, now);
        let mut commands = Vec::new();
        if let Some(crm_status) = &out.push_crm_status {
            let op = CrmOp::SetAgentStatus { email: row.email.clone(), crm_status: crm_status.clone(), at: now };
            let lane = Lane::agent(id);
            let key = agent_write_key(id, row.version + 1);
            commands.push(crate::outbox::command(key, &lane, lane.as_str(), &OutboxOp::Crm(op), None)?);
        }
        let doc = serde_json::to_string(&state)?;
        if p.store.agent_save(id, row.version, &doc, &commands).await? {
            if !commands.is_empty() {
                p.outbox_in.notify_one();
            }
            metrics::counter!("casebridge_agent_status_steps_total", "result" => out.result).increment(1);
            return Ok((row, state, out));
        }
    }
}

/// An agent's sessions may all be over: a held CRM status may apply now.
pub async fn sessions_over(p: &Pipeline, id: &str) -> Result<(), AgentError> {
    match p.store.agent(id).await? {
        Some(row) if state_of(&row).held.is_some() => {
            apply(p, id, Input::SessionsOver).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}
