//! Pacing of the requests to one CRM: a configured per-minute limit that is never exceeded
//! (a sliding window over the last minute), and a hold that every request respects once the
//! CRM has said to wait (`Retry-After`, a rate-limit reset, a vendor's limit header).
//! Several nodes share both through a [`PaceLedger`] in their database.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::Mutex;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

/// The count of requests sent to a CRM and its hold, kept where every node sees them.
#[async_trait]
pub trait PaceLedger: Send + Sync {
    /// Counts one request to `crm` and returns `None` when fewer than `per_minute` were
    /// counted in the last minute and no hold runs; otherwise how long to wait first.
    async fn take(&self, crm: &str, per_minute: Option<u32>) -> Option<Duration>;
    /// Holds every node's requests to `crm` for `wait`.
    async fn hold(&self, crm: &str, wait: Duration);
}

/// What connectors share with the other nodes on one database: the pace ledger, and whether
/// this node is alone (then it may cache lookups: no other node writes to the CRM).
#[derive(Clone)]
pub struct Cluster {
    /// Counts and holds every node's CRM requests.
    pub ledger: Arc<dyn PaceLedger>,
    /// Set by the heartbeat: no other node is live.
    pub alone: Arc<std::sync::atomic::AtomicBool>,
}

/// Paces the requests to one CRM; shared by every caller of that CRM.
pub struct Pacer {
    per_minute: Option<u32>,
    state: Mutex<State>,
    /// The ledger shared with other nodes, and the CRM's name in it.
    shared: OnceLock<(Arc<dyn PaceLedger>, &'static str)>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("per_minute", &self.per_minute)
            .field("shared", &self.shared.get().is_some())
            .finish()
    }
}

#[derive(Debug, Default)]
struct State {
    sent: VecDeque<Instant>,
    hold_until: Option<Instant>,
}

impl Pacer {
    /// A pacer that keeps to `per_minute` requests in any minute (none: no limit of its own).
    pub fn new(per_minute: Option<u32>) -> Pacer {
        Pacer { per_minute, state: Mutex::new(State::default()), shared: OnceLock::new() }
    }

    /// Counts and holds through `ledger` from now on (several nodes share the limit).
    pub fn share(&self, ledger: Arc<dyn PaceLedger>, crm: &'static str) {
        let _ = self.shared.set((ledger, crm));
    }

    /// The configured limit.
    pub fn per_minute(&self) -> Option<u32> {
        self.per_minute
    }

    /// Waits until a request may be sent, and counts it as sent. Returns how long it waited.
    pub async fn admit(&self) -> Duration {
        let started = Instant::now();
        if let Some((ledger, crm)) = self.shared.get() {
            loop {
                if let Some(until) = self.held().await {
                    metrics::counter!("casebridge_crm_paced_total").increment(1);
                    tokio::time::sleep(until).await;
                    continue;
                }
                match ledger.take(crm, self.per_minute).await {
                    None => return started.elapsed(),
                    Some(wait) => {
                        metrics::counter!("casebridge_crm_paced_total").increment(1);
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                let held = s.hold_until.filter(|t| *t > now);
                while s.sent.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    s.sent.pop_front();
                }
                let full = match self.per_minute {
                    Some(n) if s.sent.len() >= n as usize => s.sent.front().map(|t| *t + WINDOW),
                    _ => None,
                };
                match held.into_iter().chain(full).max() {
                    Some(until) => until - now,
                    None => {
                        s.sent.push_back(now);
                        return now - started;
                    }
                }
            };
            metrics::counter!("casebridge_crm_paced_total").increment(1);
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every request until `wait` has passed (the CRM asked to wait).
    pub async fn hold_for(&self, wait: Duration) {
        if let Some((ledger, crm)) = self.shared.get() {
            ledger.hold(crm, wait).await;
        }
        let until = Instant::now() + wait;
        let mut s = self.state.lock().await;
        if s.hold_until.is_none_or(|t| t < until) {
            s.hold_until = Some(until);
        }
    }

    /// How long requests are still held, if they are.
    pub async fn held(&self) -> Option<Duration> {
        let s = self.state.lock().await;
        s.hold_until.and_then(|t| t.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_minute() {
        let p = Pacer::new(Some(3));
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..7 {
            p.admit().await;
            at.push(Instant::now() - t0);
        }
        // Three at once, three a minute later, one two minutes later.
        let secs: Vec<u64> = at.iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [0, 0, 0, 60, 60, 60, 120]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_every_request() {
        let p = Pacer::new(None);
        p.hold_for(Duration::from_secs(5)).await;
        p.hold_for(Duration::from_secs(2)).await; // a shorter hold does not shorten it
        let t0 = Instant::now();
        p.admit().await;
        assert_eq!((Instant::now() - t0).as_secs(), 5);
        assert!(p.held().await.is_none());
    }
}
