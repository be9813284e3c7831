//! What the API and the workers share: storage, the CRM connector, the live settings and
//! CRM profile, and the wake-ups between intake, rules and delivery. The workers themselves
//! are in `workers/`; this module depends on none of them.

use std::sync::Arc;
use std::time::Duration;

use casebridge_crm::Connector;
use casebridge_crm::http::HttpClient;
use casebridge_rules::model::{CrmProfile, EnabledField};
use casebridge_rules::settings::Settings;
use casebridge_store::Store;
use tokio::sync::{Notify, RwLock};

/// Shared by the API and the workers.
pub struct Pipeline {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The CRM (replaced when the settings' `crm` member changes).
    crm: std::sync::RwLock<Arc<dyn Connector>>,
    /// What the rules know of the CRM, with the standard fields enabled in it (behaviour.md §11).
    profile: RwLock<Arc<CrmProfile>>,
    /// Sends webhooks (dial requests) to the contact center.
    pub http: HttpClient,
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
    /// This node among the others sharing the database.
    pub node: crate::node::Node,
    /// Sessions whose last rules step failed: when to try again, and how many failures.
    step_retries: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u32)>>,
    /// CRM writes not done yet → when the event that caused them was stored (ms since the
    /// epoch), for the accepted-to-written latency histogram.
    write_clock: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// Bucket bounds (seconds) of `casebridge_event_to_crm_write_seconds`, fine enough to read
/// a p99 against a 50 ms bar.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0,
    10.0, 30.0, 60.0, 300.0,
];

/// Writes whose cause time is kept at most (beyond, new writes go unmeasured).
const WRITE_CLOCK_MAX: usize = 200_000;

/// Whether an error is a fence: the work was taken over by another node.
pub fn is_fenced(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<casebridge_store::StoreError>(), Some(casebridge_store::StoreError::Fenced(_)))
}

/// The longest wait before a failed rules step is tried again.
const MAX_STEP_BACKOFF: Duration = Duration::from_secs(60);

impl Pipeline {
    /// A pipeline over a store and a connector.
    pub fn new(store: Arc<dyn Store>, crm: Arc<dyn Connector>, http: HttpClient, settings: Settings) -> Arc<Self> {
        let profile = crm.profile();
        let shared = store.shared();
        Arc::new(Pipeline {
            node: crate::node::Node::new(shared, http.cluster().map(|c| c.alone.clone())),
            store,
            crm: std::sync::RwLock::new(crm),
            profile: RwLock::new(Arc::new(profile)),
            http,
            settings: RwLock::new(Arc::new(settings)),
            events_in: Notify::new(),
            outbox_in: Notify::new(),
            progress: Notify::new(),
            retry_base: Duration::from_millis(500),
            step_retries: std::sync::Mutex::new(std::collections::HashMap::new()),
            write_clock: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Whether a session's failed step must wait longer before it is tried again.
    pub fn retry_later(&self, session_id: &str, now: std::time::Instant) -> bool {
        let m = self.step_retries.lock().unwrap_or_else(|e| e.into_inner());
        m.get(session_id).is_some_and(|(at, _)| *at > now)
    }

    /// Records a failed step; returns how long the session now waits (doubling from the
    /// retry base, capped at a minute).
    pub fn attempt_failed(&self, session_id: &str) -> Duration {
        let mut m = self.step_retries.lock().unwrap_or_else(|e| e.into_inner());
        let failures = m.get(session_id).map_or(0, |(_, n)| *n);
        let wait = self.retry_base.saturating_mul(2u32.saturating_pow(failures.min(16))).min(MAX_STEP_BACKOFF);
        m.insert(session_id.to_string(), (std::time::Instant::now() + wait, failures + 1));
        wait
    }

    /// Forgets a session's failures once a step went through.
    pub fn attempt_succeeded(&self, session_id: &str) {
        let mut m = self.step_retries.lock().unwrap_or_else(|e| e.into_inner());
        if !m.is_empty() {
            m.remove(session_id);
        }
    }

    /// Remembers when the event behind these CRM writes was stored.
    pub fn writes_caused(&self, keys: impl Iterator<Item = String>, received_ms: i64) {
        let mut m = self.write_clock.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if m.len() >= WRITE_CLOCK_MAX {
                break;
            }
            m.insert(k, received_ms);
        }
    }

    /// A CRM write is settled: records the time since its event was stored when it is done.
    pub fn write_settled(&self, key: &str, done: bool) {
        let caused = self.write_clock.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        if let Some(at) = caused.filter(|_| done) {
            let ms = (chrono::Utc::now().timestamp_millis() - at).max(0);
            metrics::histogram!("casebridge_event_to_crm_write_seconds").record(ms as f64 / 1000.0);
        }
    }

    /// Current settings.
    pub async fn settings(&self) -> Arc<Settings> {
        self.settings.read().await.clone()
    }

    /// The CRM connector in use.
    pub fn crm(&self) -> Arc<dyn Connector> {
        self.crm.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Builds the connector a configuration names, over this pipeline's storage and client
    /// (the settings' connector, or one under test).
    pub fn connect(&self, config: &casebridge_crm::ConnectorConfig) -> Arc<dyn Connector> {
        let deps = casebridge_crm::Deps { builtin: self.store.clone(), http: self.http.clone() };
        casebridge_crm::registry::connect(config, &deps)
    }

    /// Switches to another connector (the settings' `crm` member changed); writes already
    /// handed to the old one finish there.
    pub async fn set_crm(&self, crm: Arc<dyn Connector>) -> anyhow::Result<()> {
        *self.crm.write().unwrap_or_else(|e| e.into_inner()) = crm;
        self.load_fields().await
    }

    /// Switches the connector when the settings' `crm` member changes from `before` to
    /// `after` (valid settings: a parse failure here is a bug, not the caller's).
    pub async fn follow_crm(
        &self,
        before: &casebridge_rules::settings::CrmSettings,
        after: &casebridge_rules::settings::CrmSettings,
    ) -> anyhow::Result<()> {
        if before == after {
            return Ok(());
        }
        let (config, _) = casebridge_crm::ConnectorConfig::parse(after)
            .map_err(|e| anyhow::anyhow!("the crm settings are invalid: {}", crate::config::describe(&e)))?;
        self.set_crm(self.connect(&config)).await?;
        tracing::info!(crm = config.kind(), "CRM connector switched to {}.", config.kind());
        Ok(())
    }

    /// Reloads the standard fields enabled in the CRM.
    pub async fn load_fields(&self) -> anyhow::Result<()> {
        let rows = self.store.enabled_fields().await?;
        let mut p = self.crm().profile();
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
}
