//! Back-pressure: a bound on events stored but not yet applied by the rules. Beyond it,
//! intake answers 429 with a `Retry-After` computed from the rate the rules are applying
//! events at, instead of accepting work that would wait minutes for its record.
//!
//! The bound is `CASEBRIDGE_MAX_BACKLOG` events when set, otherwise five seconds of work at
//! the measured rate (at least 2,000 events). The count of unapplied events comes from the
//! database (every node's, with several nodes) every quarter second, plus what this node
//! accepted since.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use casebridge_store::Store;

/// Seconds of work the default bound allows.
const SECONDS_OF_WORK: f64 = 5.0;
/// The default bound never goes below this many events.
const FLOOR: i64 = 10_000;
/// How often the count is read from the database.
const REFRESH: Duration = Duration::from_millis(250);

/// The unapplied events and the rate they are applied at.
pub struct Backlog {
    bound: Option<i64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Unapplied events at the last refresh.
    pending: i64,
    /// Accepted by this node since.
    accepted: i64,
    /// Events applied per second while there was work (moving average), once measured.
    rate: Option<f64>,
}

/// Why intake refuses: how many events wait, the bound, and when to come back.
pub struct Full {
    /// Unapplied events (with this request's).
    pub pending: i64,
    /// The bound.
    pub bound: i64,
    /// Seconds until the backlog is expected to be under the bound again.
    pub retry_after: u64,
}

impl Backlog {
    /// A backlog with a fixed bound, or the default one.
    pub fn new(bound: Option<i64>) -> Arc<Backlog> {
        Arc::new(Backlog { bound, state: Mutex::new(State::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bound in force now.
    pub fn bound(&self) -> i64 {
        self.bound.unwrap_or_else(|| match self.lock().rate {
            Some(r) => ((r * SECONDS_OF_WORK) as i64).max(FLOOR),
            None => FLOOR,
        })
    }

    /// Takes `n` more events, or says why not.
    pub fn admit(&self, n: usize) -> Result<(), Full> {
        let bound = self.bound();
        let mut s = self.lock();
        let pending = s.pending + s.accepted + n as i64;
        // A request alone larger than the bound still goes in on an empty backlog.
        if pending > bound && s.pending + s.accepted > 0 {
            let rate = s.rate.unwrap_or(FLOOR as f64 / SECONDS_OF_WORK).max(1.0);
            let retry_after = (((pending - bound) as f64 / rate).ceil() as u64).clamp(1, 60);
            return Err(Full { pending, bound, retry_after });
        }
        s.accepted += n as i64;
        Ok(())
    }

    /// Reads the count again and updates the rate (applied = before + accepted − now).
    async fn refresh(&self, store: &dyn Store, elapsed: Duration) -> casebridge_store::Result<()> {
        let now = store.pending_event_count().await?;
        let mut s = self.lock();
        let applied = (s.pending + s.accepted - now).max(0) as f64;
        // Only while there was work: an idle worker's rate says nothing of its capacity.
        if s.pending > 0 && elapsed > Duration::ZERO {
            let r = applied / elapsed.as_secs_f64();
            s.rate = Some(match s.rate {
                Some(old) => 0.8 * old + 0.2 * r,
                None => r,
            });
        }
        s.pending = now;
        s.accepted = 0;
        Ok(())
    }

    /// Keeps the count fresh until the process ends.
    pub fn watch(self: &Arc<Self>, store: Arc<dyn Store>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(REFRESH).await;
                let elapsed = last.elapsed();
                last = Instant::now();
                if let Err(e) = me.refresh(store.as_ref(), elapsed).await {
                    tracing::warn!(error = %e, "Backlog not measured.");
                }
                metrics::gauge!("casebridge_backlog_bound").set(me.bound() as f64);
            }
        });
    }
}
