//! The two workers: rules (pending events → decisions and outbox rows, one commit per
//! step) and delivery (outbox rows → CRM writes, in order per lane, retried, parked).
//!
//! Serialization: one rules worker applies events in arrival order, and a step that needs a
//! lookup waits until its lane (customer key) has no CRM write left to deliver, so a lookup
//! always sees what earlier sessions of the same customer wrote.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use casebridge_crm::{Connector, CrmError};
use casebridge_rules::engine::{self, Step};
use casebridge_rules::event::{Event, EventKind};
use casebridge_rules::model::{
    Answer, Answers, CrmOp, CrmProfile, EnabledField, Entry, EntryKind, Lookup, ObjRef, PlatformActivity,
};
use casebridge_rules::phone::Phone;
use casebridge_rules::session::Session;
use casebridge_rules::settings::Settings;
use casebridge_store::agents::NewActivity;
use casebridge_store::{AgentStore, NewCommand, OutboxRow, StepCommit, Store};
use chrono::Utc;
use tokio::sync::{Notify, RwLock};
use tokio_util::sync::CancellationToken;

/// Attempts before a write is parked as a dead letter.
pub const MAX_ATTEMPTS: i64 = 8;

/// Shared by the API and the workers.
pub struct Pipeline {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Agents, wrap-ups, dial requests, enabled fields.
    pub agents: Arc<dyn AgentStore>,
    /// The CRM.
    pub crm: Arc<dyn Connector>,
    /// What the rules know of the CRM, with the standard fields enabled in it (behaviour.md §11).
    profile: RwLock<Arc<CrmProfile>>,
    /// Sends dial requests to the contact center.
    pub http: reqwest::Client,
    /// Current settings.
    pub settings: RwLock<Arc<Settings>>,
    /// Wakes the rules worker (events stored, lane drained).
    pub events_in: Notify,
    /// Wakes the delivery worker (outbox rows added).
    pub outbox_in: Notify,
    /// Wakes `?wait=` callers.
    pub progress: Notify,
    /// Base delay of the retry schedule.
    pub retry_base: Duration,
}

/// State of one rules pass whose steps are not committed yet.
#[derive(Default)]
struct Pass {
    commits: Vec<StepCommit>,
    sessions: std::collections::HashMap<String, Session>,
    dirty_keys: HashSet<String>,
    blocked: HashSet<String>,
    /// Agents whose session ended in this pass (held statuses may apply).
    freed_agents: Vec<String>,
}

/// What happened to one pending event.
enum Applied {
    Done,
    Blocked,
}

impl Pipeline {
    /// A pipeline over a store and a connector.
    pub fn new(
        store: Arc<dyn Store>,
        agents: Arc<dyn AgentStore>,
        crm: Arc<dyn Connector>,
        settings: Settings,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("casebridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let profile = crm.profile();
        Arc::new(Pipeline {
            store,
            agents,
            crm,
            profile: RwLock::new(Arc::new(profile)),
            http,
            settings: RwLock::new(Arc::new(settings)),
            events_in: Notify::new(),
            outbox_in: Notify::new(),
            progress: Notify::new(),
            retry_base: Duration::from_millis(500),
        })
    }

    /// Current settings.
    pub async fn settings(&self) -> Arc<Settings> {
        self.settings.read().await.clone()
    }

    /// Reloads the standard fields enabled in the CRM.
    pub async fn load_fields(&self) -> anyhow::Result<()> {
        let rows = self.agents.enabled_fields().await?;
        let mut p = self.crm.profile();
        p.custom_fields = rows
            .into_iter()
            .map(|r| (r.key, EnabledField { crm_field: r.crm_field, enabled_at: r.enabled_at }))
            .collect();
        *self.profile.write().await = Arc::new(p);
        Ok(())
    }

    /// What the rules know of the CRM: the connector's profile and the enabled fields.
    pub async fn profile(&self) -> Arc<CrmProfile> {
        self.profile.read().await.clone()
    }

    /// Runs both workers until cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let a = tokio::spawn(self.clone().rules_loop(stop.clone()));
        let b = tokio::spawn(self.clone().delivery_loop(stop.clone()));
        let _ = tokio::join!(a, b);
    }

    async fn rules_loop(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let progressed = match self.rules_pass().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "Rules pass failed; retrying.");
                    0
                }
            };
            if progressed == 0 {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.events_in.notified() => {},
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {},
                }
            }
        }
    }

    /// Applies what can be applied now; returns how many events were applied.
    ///
    /// Steps are committed in batches; until a batch is committed, the pass reads the sessions
    /// it changed from memory and treats lanes it gave new writes to as busy.
    pub async fn rules_pass(&self) -> anyhow::Result<usize> {
        let pending = self.store.pending_events(512).await?;
        let mut pass = Pass::default();
        let mut applied = 0;
        for p in pending {
            if pass.blocked.contains(&p.session_id) {
                continue;
            }
            let event: Event = match serde_json::from_str(&p.body) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(seq = p.seq, error = %e, "Stored event unreadable; skipped.");
                    let body = match pass.sessions.get(&p.session_id) {
                        Some(s) => serde_json::to_string(s)?,
                        None => {
                            self.store.load_session(&p.session_id).await?.map(|s| s.body).unwrap_or_else(|| "{}".into())
                        }
                    };
                    pass.commits.push(StepCommit {
                        event_seqs: vec![p.seq],
                        session_id: p.session_id.clone(),
                        session: body,
                        lane: None,
                        account: None,
                        record: None,
                        created_at: None,
                        timeline: vec![],
                        commands: vec![],
                        activities: vec![],
                        agent_id: None,
                        over: false,
                    });
                    continue;
                }
            };
            match self.apply_one(p.seq, &event, &mut pass).await {
                Ok(Applied::Done) => {
                    applied += 1;
                    metrics::counter!("casebridge_events_applied_total").increment(1);
                }
                Ok(Applied::Blocked) => {
                    pass.blocked.insert(p.session_id.clone());
                }
                Err(e) => {
                    tracing::warn!(session = %p.session_id, error = %e, "Event not applied yet; will retry.");
                    pass.blocked.insert(p.session_id.clone());
                }
            }
            if pass.commits.len() >= 128 {
                self.flush(&mut pass).await?;
            }
        }
        self.flush(&mut pass).await?;
        if applied > 0 {
            self.progress.notify_waiters();
        }
        for agent in std::mem::take(&mut pass.freed_agents) {
            if let Err(e) = crate::agents::sessions_over(self, &agent).await {
                tracing::warn!(agent = %agent, error = %e, "Held agent status not applied.");
            }
        }
        Ok(applied)
    }

    async fn flush(&self, pass: &mut Pass) -> anyhow::Result<()> {
        if pass.commits.is_empty() {
            return Ok(());
        }
        let commits = std::mem::take(&mut pass.commits);
        let with_writes = commits.iter().any(|c| !c.commands.is_empty());
        self.store.commit_steps(commits).await?;
        // Committed: the store is the truth again.
        pass.sessions.clear();
        pass.dirty_keys.clear();
        if with_writes {
            self.outbox_in.notify_one();
        }
        Ok(())
    }

    async fn apply_one(&self, seq: i64, event: &Event, pass: &mut Pass) -> anyhow::Result<Applied> {
        let started = std::time::Instant::now();
        let session: Option<Session> = match pass.sessions.get(&event.session_id) {
            Some(s) => Some(s.clone()),
            None => match self.store.load_session(&event.session_id).await? {
                Some(row) => Some(serde_json::from_str(&row.body)?),
                None => None,
            },
        };
        let settings = self.settings().await;
        let profile = self.profile().await;
        let mut answers = Answers::new();
        let mut checked: HashSet<String> = HashSet::new();
        loop {
            match engine::apply(session.as_ref(), event, &settings, &profile, &answers) {
                Step::Need(lookups) => {
                    // A lookup must see every write that concerns the same customer: wait
                    // until none is left to deliver for any of its keys.
                    let mut keys = base_keys(session.as_ref(), event, &settings);
                    for l in &lookups {
                        if let Lookup::RecordsOfAccount(a) = l {
                            keys.extend(self.account_keys(a).await?);
                        }
                    }
                    keys.retain(|k| !checked.contains(k));
                    if !keys.is_empty() {
                        if keys.iter().any(|k| pass.dirty_keys.contains(k)) || self.store.keys_busy(&keys).await? {
                            return Ok(Applied::Blocked);
                        }
                        checked.extend(keys);
                    }
                    for l in lookups {
                        let a = self.answer(&l, pass).await?;
                        answers.insert(l, a);
                    }
                }
                Step::Done(out) => {
                    let s = out.session;
                    let lane = s.lane.clone().unwrap_or_else(|| format!("session:{}", s.id));
                    let mut keys = engine::customer_keys(&s.customer, s.phone.as_ref(), None);
                    if let Some(a) = &s.account {
                        keys.extend(self.account_keys(a).await?);
                    }
                    keys.push(lane.clone());
                    let commands = out
                        .commands
                        .iter()
                        .map(|c| {
                            Ok(NewCommand {
                                key: c.key.clone(),
                                lane: lane.clone(),
                                session_id: s.id.clone(),
                                op: serde_json::to_string(&c.op)?,
                                keys: keys.clone(),
                            })
                        })
                        .collect::<Result<Vec<_>, serde_json::Error>>()?;
                    for e in out.timeline.iter().filter(|e| e.kind == EntryKind::Decision) {
                        if let Some(rule) = &e.rule {
                            metrics::counter!("casebridge_decisions_total", "rule" => rule.clone()).increment(1);
                        }
                    }
                    let was = session.as_ref().map(|x| (x.account_outcome, x.record_outcome));
                    if was.map(|w| w.0) != Some(s.account_outcome) {
                        metrics::counter!("casebridge_account_outcomes_total", "outcome" => outcome_name(&s.account_outcome)).increment(1);
                    }
                    if was.map(|w| w.1) != Some(s.record_outcome) {
                        metrics::counter!("casebridge_record_outcomes_total", "outcome" => outcome_name(&s.record_outcome)).increment(1);
                    }
                    if !commands.is_empty() {
                        pass.dirty_keys.extend(keys);
                    }
                    if s.is_over()
                        && !session.as_ref().is_some_and(|x| x.is_over())
                        && let Some(a) = &s.agent
                    {
                        pass.freed_agents.push(a.id.clone());
                    }
                    let activities = out.activities.iter().map(new_activity).collect();
                    pass.commits.push(StepCommit {
                        event_seqs: vec![seq],
                        session_id: s.id.clone(),
                        session: serde_json::to_string(&s)?,
                        lane: s.lane.clone(),
                        account: s.account.as_ref().map(ref_pair),
                        record: s.record.as_ref().map(ref_pair),
                        created_at: s.created_at,
                        timeline: out.timeline,
                        commands,
                        activities,
                        agent_id: s.agent.as_ref().map(|a| a.id.clone()),
                        over: s.is_over(),
                    });
                    pass.sessions.insert(s.id.clone(), s);
                    metrics::histogram!("casebridge_rules_step_seconds").record(started.elapsed().as_secs_f64());
                    return Ok(Applied::Done);
                }
            }
        }
    }

    /// An account's keys: casebridge's key and, once created, the CRM id.
    async fn account_keys(&self, a: &ObjRef) -> anyhow::Result<Vec<String>> {
        let mut keys = vec![format!("account:{}", a.as_str())];
        if let ObjRef::Crm(id) = self.resolve(a).await?
            && id != a.as_str()
        {
            keys.push(format!("account:{id}"));
        }
        Ok(keys)
    }

    async fn resolve(&self, r: &ObjRef) -> anyhow::Result<ObjRef> {
        Ok(match r {
            ObjRef::Key(k) => match self.store.ref_get(k).await? {
                Some(id) => ObjRef::Crm(id),
                None => r.clone(),
            },
            other => other.clone(),
        })
    }

    async fn answer(&self, l: &Lookup, pass: &Pass) -> anyhow::Result<Answer> {
        let started = std::time::Instant::now();
        let out = match l {
            Lookup::RecordOfSession(id) => {
                let related = match pass.sessions.get(id) {
                    Some(s) => Some(s.clone()),
                    None => match self.store.load_session(id).await? {
                        Some(row) => Some(serde_json::from_str::<Session>(&row.body)?),
                        None => None,
                    },
                };
                let rec = match related.and_then(|s| s.record) {
                    Some(r) => Some(self.resolve(&r).await?),
                    None => None,
                };
                Answer::Record(rec)
            }
            Lookup::DialRequestOrigin(id) => {
                Answer::Origin(self.agents.dial(id).await?.and_then(|d| d.origin_record_id))
            }
            Lookup::RecordsOfAccount(a) => match self.resolve(a).await? {
                ObjRef::Crm(id) => self.crm.lookup(&Lookup::RecordsOfAccount(ObjRef::Crm(id))).await?,
                // The account's creation never landed (parked): it has no records.
                ObjRef::Key(_) => Answer::Records(vec![]),
            },
            other => self.crm.lookup(other).await?,
        };
        metrics::histogram!("casebridge_crm_lookup_seconds").record(started.elapsed().as_secs_f64());
        Ok(out)
    }

    async fn delivery_loop(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let n = match self.delivery_pass().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "Delivery pass failed; retrying.");
                    0
                }
            };
            if n == 0 {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.outbox_in.notified() => {},
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {},
                }
            }
        }
    }

    /// Delivers due writes; returns how many were attempted.
    pub async fn delivery_pass(&self) -> anyhow::Result<usize> {
        let rows = self.store.claim_commands(Utc::now(), 256).await?;
        let n = rows.len();
        for row in rows {
            self.deliver(row).await?;
        }
        if n > 0 {
            self.progress.notify_waiters();
            self.events_in.notify_one();
        }
        Ok(n)
    }

    async fn deliver(&self, row: OutboxRow) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let op: CrmOp = match serde_json::from_str(&row.op) {
            Ok(op) => op,
            Err(e) => {
                self.store
                    .park_command(&row, &format!("unreadable write: {e}"), crm_line("Write unreadable: parked", None))
                    .await?;
                return Ok(());
            }
        };
        let name = op.name();
        let result = match self.resolve_op(op).await? {
            Ok(op @ CrmOp::DialWebhook { .. }) => crate::dial::deliver(self, &row.key, op).await,
            Ok(op) => self.crm.execute(&row.key, &op).await,
            // Another lane's create has not landed yet (or was parked): wait for it.
            Err(missing) => Err(CrmError::Transient {
                message: format!("{missing} is not created in the CRM yet"),
                retry_after: None,
            }),
        };
        match result {
            Ok(out) => {
                let created = out.created.as_ref().map(|(k, id)| (k.as_str(), id.as_str()));
                self.store.complete_command(&row, crm_line(&out.summary, None), created).await?;
                metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "done").increment(1);
            }
            Err(CrmError::Transient { message, retry_after }) if row.attempts + 1 < MAX_ATTEMPTS => {
                let backoff = self.retry_base * 2u32.saturating_pow(row.attempts as u32);
                let wait = retry_after.unwrap_or(backoff).min(Duration::from_secs(600));
                let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                let line = (row.attempts == 0)
                    .then(|| crm_line(&format!("{name} failed ({message}); will retry"), Some("outbox.retry")));
                self.store.retry_command(&row, &message, next, line).await?;
                metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "retry").increment(1);
            }
            Err(e) => {
                let msg = e.to_string();
                self.store
                    .park_command(
                        &row,
                        &msg,
                        crm_line(&format!("{name} parked as a dead letter: {msg}"), Some("outbox.dead_letter")),
                    )
                    .await?;
                metrics::counter!("casebridge_crm_writes_total", "op" => name, "outcome" => "dead").increment(1);
            }
        }
        metrics::histogram!("casebridge_crm_write_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Replaces casebridge keys by CRM ids; Err names a key that has no CRM id.
    async fn resolve_op(&self, op: CrmOp) -> anyhow::Result<Result<CrmOp, String>> {
        let mut v = serde_json::to_value(&op)?;
        let mut missing = None;
        for field in ["account", "record", "person"] {
            if let Some(serde_json::Value::Object(m)) = v.get(field)
                && let Some(serde_json::Value::String(k)) = m.get("key")
            {
                match self.store.ref_get(k).await? {
                    Some(id) => {
                        v[field] = serde_json::json!({"crm": id});
                    }
                    None => missing = Some(k.clone()),
                }
            }
        }
        if let Some(k) = missing {
            return Ok(Err(k));
        }
        Ok(Ok(serde_json::from_value(v)?))
    }
}

fn new_activity(a: &PlatformActivity) -> NewActivity {
    let (person_ref, person_is_key) = match &a.person {
        Some(ObjRef::Key(k)) => (Some(k.clone()), true),
        Some(ObjRef::Crm(id)) => (Some(id.clone()), false),
        None => (None, false),
    };
    NewActivity {
        ext_key: format!("{}:{}", a.session_id, a.kind),
        session_id: a.session_id.clone(),
        kind: a.kind.clone(),
        action: None,
        person_ref,
        person_is_key,
        record_id: None,
        related_by: None,
        disposition: None,
        label: None,
        notes: None,
        agent_id: a.agent_id.clone(),
        queue: a.queue.clone(),
        channel: a.channel.map(|c| c.as_str().to_string()),
        missed_reason: a.missed_reason.map(|m| m.as_str().to_string()),
        session_at: a.session_at,
    }
}

fn outcome_name<T: serde::Serialize>(o: &T) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn crm_line(summary: &str, rule: Option<&str>) -> Entry {
    Entry { at: Utc::now(), kind: EntryKind::Crm, summary: summary.to_string(), rule: rule.map(str::to_string) }
}

fn ref_pair(r: &ObjRef) -> (String, bool) {
    match r {
        ObjRef::Key(k) => (k.clone(), true),
        ObjRef::Crm(id) => (id.clone(), false),
    }
}

/// The customer keys of a session (or of the session an event creates), with its lane.
fn base_keys(session: Option<&Session>, event: &Event, settings: &Settings) -> Vec<String> {
    if let Some(s) = session.filter(|s| s.is_created()) {
        let mut keys = engine::customer_keys(&s.customer, s.phone.as_ref(), None);
        keys.extend(s.lane.clone());
        return keys;
    }
    if let EventKind::Created(c) = &event.kind {
        let phone =
            c.customer.phone.as_deref().filter(|p| !Phone::is_anonymous(p)).map(|p| Phone::parse(p, &settings.region));
        let mut keys = engine::customer_keys(&c.customer, phone.as_ref(), None);
        keys.push(engine::lane_of(&event.session_id, &c.customer, phone.as_ref()));
        return keys;
    }
    vec![format!("session:{}", event.session_id)]
}
