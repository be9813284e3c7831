//! Account lookups cached in front of a CRM reached over the network: a repeat caller costs
//! no lookup call. Entries are dropped when casebridge writes anything that changes the
//! answer (it created or updated an account with that phone, email or user id), when the
//! CRM says an account in them no longer exists, and after a time to live (short for "no
//! account", so a person the agent creates in the CRM is found soon).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use casebridge_rules::model::{AccountHit, Answer, CrmProfile, ObjRef};
use casebridge_rules::ops::CrmOp;

use crate::{Check, Connector, CrmError, CrmLookup, FieldSpec, Write, WriteOutcome};

/// How long an answer that found accounts is kept.
pub const FOUND_TTL: Duration = Duration::from_secs(300);
/// How long an answer that found no account is kept.
pub const NONE_TTL: Duration = Duration::from_secs(30);
/// How long trailing writes wait for a session's next ones.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 100_000;

/// A connector with cached account lookups and coalesced trailing writes.
pub struct Cached {
    inner: std::sync::Arc<dyn Connector>,
    entries: Mutex<HashMap<CrmLookup, (Instant, Answer)>>,
    /// Set while no other node writes to the CRM (none: always).
    alone: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Cached {
    /// Caches `inner`'s account lookups.
    pub fn new(inner: std::sync::Arc<dyn Connector>) -> Cached {
        Cached { inner, entries: Mutex::new(HashMap::new()), alone: None }
    }

    /// Caches only while `alone` is set; what it knew is forgotten once it is not.
    pub fn while_alone(
        inner: std::sync::Arc<dyn Connector>,
        alone: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Cached {
        Cached { alone: Some(alone), ..Cached::new(inner) }
    }

    fn caching(&self) -> bool {
        self.alone.as_ref().is_none_or(|a| a.load(std::sync::atomic::Ordering::Acquire))
    }

    fn get(&self, l: &CrmLookup) -> Option<Answer> {
        if !self.caching() {
            let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if !m.is_empty() {
                m.clear();
            }
            return None;
        }
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(l) {
            Some((until, a)) if *until > Instant::now() => Some(a.clone()),
            Some(_) => {
                m.remove(l);
                None
            }
            None => None,
        }
    }

    fn put(&self, l: CrmLookup, a: &Answer) {
        if !self.caching() {
            return;
        }
        let ttl = match a {
            Answer::Accounts(hits) if !hits.is_empty() => FOUND_TTL,
            _ => NONE_TTL,
        };
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_ENTRIES {
            let now = Instant::now();
            m.retain(|_, (until, _)| *until > now);
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
        }
        m.insert(l, (Instant::now() + ttl, a.clone()));
    }

    /// Drops what a write may have made wrong.
    fn invalidate(&self, op: &CrmOp) {
        let mut keys = Vec::new();
        let mut accounts = Vec::new();
        match op {
            // Settled once the create's outcome is known (`created`).
            CrmOp::CreateAccount { .. } => return,
            CrmOp::UpdateAccount { account, email, user_id, .. } => {
                keys.extend(email.clone().map(CrmLookup::AccountsByEmail));
                keys.extend(user_id.clone().map(CrmLookup::AccountsByUserId));
                accounts.push(account.as_str().to_string());
            }
            _ => return,
        }
        self.drop_entries(&keys, &accounts);
    }

    fn drop_entries(&self, keys: &[CrmLookup], accounts: &[String]) {
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            m.remove(k);
        }
        if !accounts.is_empty() {
            m.retain(|_, (_, a)| match a {
                Answer::Accounts(hits) => !hits.iter().any(|h| accounts.contains(&h.id)),
                _ => true,
            });
        }
    }

    /// After a create of a person: where the cache knew that nobody had these details, it now
    /// knows the person created (the next call of a new caller costs no lookup); any other
    /// answer it had is dropped.
    fn created(&self, op: &CrmOp, result: &Result<WriteOutcome, CrmError>) {
        let CrmOp::CreateAccount { kind, name, phone, email, user_id, .. } = op else { return };
        let keys: Vec<CrmLookup> = phone
            .clone()
            .map(CrmLookup::AccountsByPhone)
            .into_iter()
            .chain(email.clone().map(CrmLookup::AccountsByEmail))
            .chain(user_id.clone().map(CrmLookup::AccountsByUserId))
            .collect();
        let hit = match result {
            Ok(WriteOutcome { created: Some((_, id)), .. }) => {
                Some(AccountHit { id: id.clone(), kind: *kind, name: name.clone(), updated_at: chrono::Utc::now() })
            }
            _ => None,
        };
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            let knew_nobody =
                matches!(m.get(&k), Some((until, Answer::Accounts(h))) if h.is_empty() && *until > Instant::now());
            match &hit {
                Some(hit) if knew_nobody => {
                    m.insert(k, (Instant::now() + FOUND_TTL, Answer::Accounts(vec![hit.clone()])));
                }
                _ => {
                    m.remove(&k);
                }
            }
        }
    }

    /// After a failure that says an object is gone, forgets answers naming any account the
    /// write referred to.
    fn forget_gone(&self, op: &CrmOp, result: &Result<WriteOutcome, CrmError>) {
        if let Err(CrmError::Gone(_)) = result {
            let mut op = op.clone();
            let ids: Vec<String> = op
                .refs_mut()
                .into_iter()
                .filter_map(|r| match r {
                    ObjRef::Crm(id) => Some(id.clone()),
                    ObjRef::Key(_) => None,
                })
                .collect();
            self.drop_entries(&[], &ids);
        }
    }
}

fn cacheable(l: &CrmLookup) -> bool {
    matches!(l, CrmLookup::AccountsByPhone(_) | CrmLookup::AccountsByEmail(_) | CrmLookup::AccountsByUserId(_))
}

#[async_trait]
impl Connector for Cached {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn profile(&self) -> CrmProfile {
        self.inner.profile()
    }
    fn in_store(&self) -> bool {
        self.inner.in_store()
    }
    async fn lookup(&self, lookup: &CrmLookup) -> Result<Answer, CrmError> {
        if !cacheable(lookup) {
            return self.inner.lookup(lookup).await;
        }
        if let Some(a) = self.get(lookup) {
            metrics::counter!("casebridge_crm_lookup_cache_total", "outcome" => "hit").increment(1);
            return Ok(a);
        }
        metrics::counter!("casebridge_crm_lookup_cache_total", "outcome" => "miss").increment(1);
        let a = self.inner.lookup(lookup).await?;
        self.put(lookup.clone(), &a);
        Ok(a)
    }
    async fn execute(&self, key: &str, op: &CrmOp) -> Result<WriteOutcome, CrmError> {
        self.invalidate(op);
        let r = self.inner.execute(key, op).await;
        self.created(op, &r);
        self.forget_gone(op, &r);
        r
    }
    async fn execute_batch(&self, writes: &[Write]) -> Vec<Result<WriteOutcome, CrmError>> {
        for w in writes {
            self.invalidate(&w.op);
        }
        let results = self.inner.execute_batch(writes).await;
        for (i, w) in writes.iter().enumerate() {
            // A write without a result (after a failure) is unknown: treat it as failed.
            let unknown = Err(CrmError::Transient { message: String::new(), retry_after: None });
            let r = results.get(i).unwrap_or(&unknown);
            self.created(&w.op, r);
            self.forget_gone(&w.op, r);
        }
        results
    }
    fn coalesce_window(&self) -> Duration {
        COALESCE_WINDOW
    }
    async fn check(&self) -> Vec<Check> {
        self.inner.check().await
    }
    async fn record_exists(&self, id: &str) -> Result<bool, CrmError> {
        self.inner.record_exists(id).await
    }
    fn custom_field_name(&self, key: &str) -> String {
        self.inner.custom_field_name(key)
    }
    async fn ensure_custom_field(&self, field: &FieldSpec) -> Result<bool, CrmError> {
        self.inner.ensure_custom_field(field).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use casebridge_rules::model::AccountKind;

    use super::*;

    /// A CRM that knows nobody and counts its lookups.
    #[derive(Default)]
    struct Counting {
        lookups: AtomicUsize,
    }

    #[async_trait]
    impl Connector for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }
        fn profile(&self) -> CrmProfile {
            CrmProfile::builtin()
        }
        async fn lookup(&self, _: &CrmLookup) -> Result<Answer, CrmError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            Ok(Answer::Accounts(vec![]))
        }
        async fn execute(&self, key: &str, _: &CrmOp) -> Result<WriteOutcome, CrmError> {
            Ok(WriteOutcome { created: Some((key.into(), "acc_1".into())), summary: String::new() })
        }
        async fn record_exists(&self, _: &str) -> Result<bool, CrmError> {
            Ok(true)
        }
        async fn ensure_custom_field(&self, _: &FieldSpec) -> Result<bool, CrmError> {
            Ok(false)
        }
    }

    #[tokio::test]
    async fn a_repeat_lookup_is_answered_from_the_cache_and_a_create_fills_it() {
        let inner = Arc::new(Counting::default());
        let c = Cached::new(inner.clone());
        let by_phone = CrmLookup::AccountsByPhone("+14155550100".into());
        assert_eq!(c.lookup(&by_phone).await.ok(), Some(Answer::Accounts(vec![])));
        assert_eq!(c.lookup(&by_phone).await.ok(), Some(Answer::Accounts(vec![])));
        assert_eq!(inner.lookups.load(Ordering::SeqCst), 1, "the second lookup came from the cache");
        let create = CrmOp::CreateAccount {
            key: "cb-acct-1".into(),
            kind: AccountKind::Contact,
            name: None,
            phone: Some("+14155550100".into()),
            phone_extension: None,
            email: None,
            user_id: None,
            at: chrono::Utc::now(),
        };
        assert!(c.execute("cb-acct-1", &create).await.is_ok());
        let after = c.lookup(&by_phone).await.ok();
        assert!(matches!(&after, Some(Answer::Accounts(h)) if h.len() == 1 && h[0].id == "acc_1"), "{after:?}");
        assert_eq!(inner.lookups.load(Ordering::SeqCst), 1, "the created person is known without asking");
        // Records are never cached.
        let records = CrmLookup::RecordsOfAccount("acc_1".into());
        let _ = c.lookup(&records).await;
        let _ = c.lookup(&records).await;
        assert_eq!(inner.lookups.load(Ordering::SeqCst), 3);
    }
}
