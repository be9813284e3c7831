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
}

impl Pipeline {
    /// A pipeline over a store and a connector.
    pub fn new(store: Arc<dyn Store>, crm: Arc<dyn Connector>, http: HttpClient, settings: Settings) -> Arc<Self> {
        let profile = crm.profile();
        Arc::new(Pipeline {
            store,
            crm: std::sync::RwLock::new(crm),
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

    /// The CRM connector in use.
    pub fn crm(&self) -> Arc<dyn Connector> {
        self.crm.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Switches to another connector (the settings' `crm` member changed); writes already
    /// handed to the old one finish there.
    pub async fn set_crm(&self, crm: Arc<dyn Connector>) -> anyhow::Result<()> {
        *self.crm.write().unwrap_or_else(|e| e.into_inner()) = crm;
        self.load_fields().await
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
