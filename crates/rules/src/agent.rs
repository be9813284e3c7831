//! Agent status sync (behaviour.md §10, §13.6): one agent's status between the CRM and the
//! contact center. Pure: the caller stores the state, supplies the time and whether the agent
//! is on a session, and carries out the CRM push the step asks for.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::settings::AgentStatusSettings;

/// Where an agent's current status came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    /// The agent chose it in the contact center.
    Agent,
    /// The contact center set it on its own (after wrap-up, on a call…).
    System,
    /// A CRM status report, mapped.
    Crm,
}

/// One CRM tab or machine the agent has open (its widget lives there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Instance {
    /// The record the widget shows, if any.
    pub viewing_record_id: Option<String>,
    /// The last CRM status this instance reported.
    pub crm_status: Option<String>,
    /// Last heard from.
    pub seen_at: Option<DateTime<Utc>>,
}

/// A line of the agent's status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusLine {
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub summary: String,
    /// The setting or rule behind it.
    pub rule: String,
}

/// An agent's sync state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AgentState {
    /// Current platform status (None until the first change: nothing is applied at login).
    pub status: Option<String>,
    /// Where it came from.
    pub status_source: Option<StatusSource>,
    /// When it changed.
    pub status_at: Option<DateTime<Utc>>,
    /// A CRM status that replaces the platform's next own change (`crm_overrides`).
    pub crm_claim: Option<String>,
    /// A CRM status held while the agent is on a session (`hold_while_busy`).
    pub held: Option<String>,
    /// Open CRM instances by id.
    pub instances: BTreeMap<String, Instance>,
    /// The agent's CRM team, as last reported.
    pub team: Option<String>,
    /// CRM statuses reported that map to nothing, with counts.
    pub unmapped: BTreeMap<String, u64>,
    /// Newest last, at most [`HISTORY`] lines.
    pub history: Vec<StatusLine>,
    /// The agent has no email yet, so the CRM cannot be told (set by the caller, not stored).
    #[serde(skip)]
    pub no_email: bool,
}

/// History lines kept per agent.
pub const HISTORY: usize = 50;

/// What changes an agent's status.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The contact center changed the status.
    Platform {
        /// New platform status.
        status: String,
        /// Who changed it.
        source: StatusSource,
    },
    /// The CRM reported a status.
    Crm {
        /// CRM status.
        crm_status: String,
        /// The CRM instance it came from.
        instance_id: String,
        /// The agent's CRM team.
        team: Option<String>,
        /// The status the CRM shows at login (recorded, never applied).
        login: bool,
    },
    /// A widget reports what it shows (registers the instance).
    Context {
        /// The instance.
        instance_id: String,
        /// The record it shows.
        viewing_record_id: Option<String>,
    },
    /// A widget or CRM tab closed.
    Closed {
        /// The instance.
        instance_id: String,
    },
    /// The agent's sessions are all over: held statuses may apply.
    SessionsOver,
}

/// How the sync of an agent stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sync {
    /// `active`, `off` or `suspended`.
    pub state: &'static str,
    /// Why, when not active.
    pub reason: Option<String>,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// `applied`, `ignored`, `held`, `overridden` or `recorded`.
    pub result: &'static str,
    /// Why, in words.
    pub reason: String,
    /// A CRM status to push to the CRM (two-way sync).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_crm_status: Option<String>,
}

/// Whether the sync of this agent is active, off or suspended.
pub fn sync_of(state: &AgentState, settings: &AgentStatusSettings) -> Sync {
    if settings.mode == "off" {
        return Sync { state: "off", reason: Some("agent_status.mode is off".into()) };
    }
    if state.instances.len() > 1 {
        let ids: Vec<&str> = state.instances.keys().map(String::as_str).collect();
        return Sync {
            state: "suspended",
            reason: Some(format!(
                "the agent has {} CRM instances open ({}); casebridge cannot know which to follow. Close all but one",
                ids.len(),
                ids.join(", ")
            )),
        };
    }
    Sync { state: "active", reason: None }
}

/// Whether two-way pushes apply to this agent.
fn two_way_for(state: &AgentState, settings: &AgentStatusSettings) -> Result<(), String> {
    if settings.mode != "two_way" {
        return Err(format!("agent_status.mode is {}", settings.mode));
    }
    if state.no_email {
        return Err("the agent has no email yet (PUT /v1/agents/{id})".into());
    }
    match &state.team {
        Some(t) if settings.synced_teams.iter().any(|s| s.eq_ignore_ascii_case(t)) => Ok(()),
        Some(t) => Err(format!("team {t:?} is not in agent_status.synced_teams")),
        None => Err("the agent's CRM team is not known yet (reported with the CRM status)".into()),
    }
}

fn line(state: &mut AgentState, at: DateTime<Utc>, summary: String, rule: &str) {
    state.history.push(StatusLine { at, summary, rule: rule.into() });
    if state.history.len() > HISTORY {
        let extra = state.history.len() - HISTORY;
        state.history.drain(..extra);
    }
}

fn set(state: &mut AgentState, status: &str, source: StatusSource, at: DateTime<Utc>) {
    state.status = Some(status.to_string());
    state.status_source = Some(source);
    state.status_at = Some(at);
}

fn out(result: &'static str, reason: impl Into<String>) -> Outcome {
    Outcome { result, reason: reason.into(), push_crm_status: None }
}

/// Forgets instances not heard from within `agent_status.instance_ttl_minutes`.
pub fn prune(state: &mut AgentState, settings: &AgentStatusSettings, now: DateTime<Utc>) {
    let Some(ttl) = settings.instance_ttl_minutes else { return };
    let cutoff = now - chrono::Duration::minutes(i64::from(ttl));
    let stale: Vec<String> =
        state.instances.iter().filter(|(_, i)| i.seen_at.is_some_and(|t| t < cutoff)).map(|(k, _)| k.clone()).collect();
    for k in stale {
        state.instances.remove(&k);
        line(
            state,
            now,
            format!("Instance {k} not heard from for {ttl} minutes: forgotten"),
            "agent_status.instance_ttl_minutes",
        );
    }
}

/// Applies one input. `busy`: the agent is on a session now.
pub fn apply(
    state: &mut AgentState,
    input: Input,
    settings: &AgentStatusSettings,
    busy: bool,
    at: DateTime<Utc>,
) -> Outcome {
    prune(state, settings, at);
    match input {
        Input::Platform { status, source } => {
            let sync = sync_of(state, settings);
            if source == StatusSource::System
                && settings.priority == "crm_overrides"
                && sync.state == "active"
                && let Some(claim) = state.crm_claim.take()
            {
                let why = format!("platform set {status}; the CRM status {claim} stands (crm_overrides)");
                set(state, &claim, StatusSource::Crm, at);
                line(state, at, why.clone(), "agent_status.priority.crm_overrides");
                return out("overridden", why);
            }
            if source == StatusSource::Agent {
                // The agent's own choice ends any CRM claim.
                state.crm_claim = None;
            }
            set(state, &status, source, at);
            let who = if source == StatusSource::Agent { "agent" } else { "platform" };
            let mut o = out("applied", format!("{who} set {status}"));
            if sync.state == "active" {
                match two_way_for(state, settings) {
                    Ok(()) => match settings.platform_to_crm.get(&status) {
                        Some(c) => {
                            o.push_crm_status = Some(c.clone());
                            o.reason.push_str(&format!("; pushed to the CRM as {c}"));
                        }
                        None => o
                            .reason
                            .push_str(&format!("; not pushed: {status} has no agent_status.platform_to_crm entry")),
                    },
                    Err(why) if settings.mode == "two_way" => o.reason.push_str(&format!("; not pushed: {why}")),
                    Err(_) => {}
                }
            } else if let Some(r) = &sync.reason
                && settings.mode == "two_way"
            {
                o.reason.push_str(&format!("; not pushed: {r}"));
            }
            line(state, at, o.reason.clone(), "agent_status");
            o
        }
        Input::Crm { crm_status, instance_id, team, login } => {
            let inst = state.instances.entry(instance_id.clone()).or_default();
            inst.crm_status = Some(crm_status.clone());
            inst.seen_at = Some(at);
            if team.is_some() {
                state.team = team;
            }
            let sync = sync_of(state, settings);
            if sync.state != "active" {
                let why = format!("CRM status {crm_status} ignored: {}", sync.reason.unwrap_or_default());
                let rule = if sync.state == "off" { "agent_status.mode" } else { "agent_status.instances" };
                line(state, at, why.clone(), rule);
                return out("ignored", why);
            }
            if login {
                let why =
                    format!("CRM status {crm_status} at login recorded, not applied (sync starts at the first change)");
                line(state, at, why.clone(), "agent_status.login");
                return out("recorded", why);
            }
            let Some(mapped) = settings.crm_to_platform.get(&crm_status).cloned() else {
                *state.unmapped.entry(crm_status.clone()).or_default() += 1;
                let why = format!("CRM status {crm_status} ignored: it has no agent_status.crm_to_platform entry");
                line(state, at, why.clone(), "agent_status.crm_to_platform");
                return out("ignored", why);
            };
            if settings.hold_while_busy && busy {
                state.held = Some(mapped.clone());
                let why = format!("CRM status {crm_status} ({mapped}) held until the agent's session ends");
                line(state, at, why.clone(), "agent_status.hold_while_busy");
                return out("held", why);
            }
            state.held = None;
            state.crm_claim = Some(mapped.clone());
            set(state, &mapped, StatusSource::Crm, at);
            let why = format!("CRM status {crm_status} applied as {mapped}");
            line(state, at, why.clone(), "agent_status.crm_to_platform");
            out("applied", why)
        }
        Input::Context { instance_id, viewing_record_id } => {
            let before = sync_of(state, settings).state;
            let inst = state.instances.entry(instance_id).or_default();
            inst.viewing_record_id = viewing_record_id;
            inst.seen_at = Some(at);
            let after = sync_of(state, settings);
            if before != after.state && after.state == "suspended" {
                line(
                    state,
                    at,
                    format!("Sync suspended: {}", after.reason.unwrap_or_default()),
                    "agent_status.instances",
                );
            }
            out("recorded", "widget context recorded")
        }
        Input::Closed { instance_id } => {
            let before = sync_of(state, settings).state;
            let known = state.instances.remove(&instance_id).is_some();
            let after = sync_of(state, settings).state;
            if before == "suspended" && after == "active" {
                line(state, at, format!("Instance {instance_id} closed: sync resumed"), "agent_status.instances");
                return out("recorded", "sync resumed: one instance remains");
            }
            out("recorded", if known { "instance closed" } else { "instance was not open" })
        }
        Input::SessionsOver => {
            if busy {
                return out("recorded", "the agent is still on a session");
            }
            let Some(held) = state.held.take() else { return out("recorded", "nothing held") };
            if sync_of(state, settings).state != "active" {
                return out("ignored", "held status dropped: sync is not active");
            }
            state.crm_claim = Some(held.clone());
            set(state, &held, StatusSource::Crm, at);
            let why = format!("session over: held CRM status applied as {held}");
            line(state, at, why.clone(), "agent_status.hold_while_busy");
            out("applied", why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(priority: &str) -> AgentStatusSettings {
        AgentStatusSettings {
            mode: "two_way".into(),
            priority: priority.into(),
            platform_statuses: vec!["Available".into(), "Unavailable".into(), "Wrap-up".into()],
            crm_to_platform: [("Online", "Available"), ("Busy", "Unavailable"), ("Email", "Unavailable")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            platform_to_crm: [("Available", "Online"), ("Unavailable", "Busy")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            synced_teams: vec!["Support".into()],
            hold_while_busy: false,
            instance_ttl_minutes: Some(60),
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap_or_default()
    }

    fn crm(s: &str, inst: &str) -> Input {
        Input::Crm { crm_status: s.into(), instance_id: inst.into(), team: Some("Support".into()), login: false }
    }

    fn system(s: &str) -> Input {
        Input::Platform { status: s.into(), source: StatusSource::System }
    }

    #[test]
    fn priorities_differ_on_the_platform_s_own_change() {
        for (p, expect) in [("latest_wins", "Available"), ("crm_overrides", "Unavailable")] {
            let st = settings(p);
            let mut a = AgentState::default();
            apply(&mut a, crm("Email", "tab1"), &st, false, t(0));
            apply(&mut a, system("Available"), &st, false, t(1));
            assert_eq!(a.status.as_deref(), Some(expect), "{p}");
            // The claim is spent: the platform's next change applies.
            apply(&mut a, system("Wrap-up"), &st, false, t(2));
            assert_eq!(a.status.as_deref(), Some("Wrap-up"), "{p}");
        }
    }

    #[test]
    fn two_instances_suspend_until_one_closes() {
        let st = settings("latest_wins");
        let mut a = AgentState::default();
        assert_eq!(apply(&mut a, crm("Online", "tab1"), &st, false, t(0)).result, "applied");
        assert_eq!(apply(&mut a, crm("Busy", "tab2"), &st, false, t(1)).result, "ignored");
        assert_eq!(sync_of(&a, &st).state, "suspended");
        assert_eq!(a.status.as_deref(), Some("Available"));
        apply(&mut a, Input::Closed { instance_id: "tab1".into() }, &st, false, t(2));
        assert_eq!(sync_of(&a, &st).state, "active");
        assert_eq!(apply(&mut a, crm("Busy", "tab2"), &st, false, t(3)).result, "applied");
        assert_eq!(a.status.as_deref(), Some("Unavailable"));
    }

    #[test]
    fn pushes_only_for_synced_teams_and_never_echoes_crm_changes() {
        let st = settings("latest_wins");
        let mut a = AgentState::default();
        let o = apply(&mut a, crm("Online", "tab1"), &st, false, t(0));
        assert_eq!(o.push_crm_status, None);
        let o = apply(
            &mut a,
            Input::Platform { status: "Unavailable".into(), source: StatusSource::Agent },
            &st,
            false,
            t(1),
        );
        assert_eq!(o.push_crm_status.as_deref(), Some("Busy"));
        a.team = Some("Sales".into());
        let o = apply(&mut a, system("Available"), &st, false, t(2));
        assert_eq!(o.push_crm_status, None);
    }

    #[test]
    fn a_silent_instance_is_forgotten_after_the_ttl() {
        let st = settings("latest_wins");
        let mut a = AgentState::default();
        apply(&mut a, crm("Online", "crashed"), &st, false, t(0));
        assert_eq!(apply(&mut a, crm("Busy", "new"), &st, false, t(60)).result, "ignored");
        assert_eq!(apply(&mut a, crm("Busy", "new"), &st, false, t(3601)).result, "applied");
    }

    #[test]
    fn held_while_busy_then_applied() {
        let mut st = settings("latest_wins");
        st.hold_while_busy = true;
        let mut a = AgentState::default();
        assert_eq!(apply(&mut a, crm("Busy", "tab1"), &st, true, t(0)).result, "held");
        assert_eq!(a.status, None);
        assert_eq!(apply(&mut a, Input::SessionsOver, &st, false, t(1)).result, "applied");
        assert_eq!(a.status.as_deref(), Some("Unavailable"));
    }

    #[test]
    fn login_and_unmapped_statuses_are_not_applied() {
        let st = settings("latest_wins");
        let mut a = AgentState::default();
        let login = Input::Crm { crm_status: "Online".into(), instance_id: "t".into(), team: None, login: true };
        assert_eq!(apply(&mut a, login, &st, false, t(0)).result, "recorded");
        assert_eq!(apply(&mut a, crm("Lunch", "t"), &st, false, t(1)).result, "ignored");
        assert_eq!(a.status, None);
        assert_eq!(a.unmapped.get("Lunch"), Some(&1));
    }
}
