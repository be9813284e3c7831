//! Pacing of the requests to one CRM: a configured per-minute limit that is never exceeded
//! (a sliding window over the last minute), and a hold that every request respects once the
//! CRM has said to wait (`Retry-After`, a rate-limit reset, a vendor's limit header).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

/// Paces the requests to one CRM; shared by every caller of that CRM.
#[derive(Debug)]
pub struct Pacer {
    per_minute: Option<u32>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sent: VecDeque<Instant>,
    hold_until: Option<Instant>,
}

impl Pacer {
    /// A pacer that keeps to `per_minute` requests in any minute (none: no limit of its own).
    pub fn new(per_minute: Option<u32>) -> Pacer {
        Pacer { per_minute, state: Mutex::new(State::default()) }
    }

    /// The configured limit.
    pub fn per_minute(&self) -> Option<u32> {
        self.per_minute
    }

    /// Waits until a request may be sent, and counts it as sent. Returns how long it waited.
    pub async fn admit(&self) -> Duration {
        let started = Instant::now();
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
