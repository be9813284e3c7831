//! The events the rules have not applied yet, kept in memory (see docs/decisions.md "Speed",
//! the events file).
//!
//! Events are stored in a file of their own and never updated; what the rules applied is
//! recorded in the main file: above `applied_mark`, the events listed in `applied_events`;
//! at or below it, every event but those listed in `held_events`. The mark follows the
//! cursor below, so both lists stay short whatever an event held back for long does. Each
//! event is read from the events file once, by a cursor over sequence numbers, and kept here
//! until a commit that records it applied is committed (the writer's sink,
//! [`Unapplied::committed`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::OptionalExtension;

use super::direct::Owned;
use crate::{PendingEvent, Result};

/// The mark moves up once it can move this far: the mark's row and the deletion then touch
/// a few pages now and then.
const MARK_STEP: i64 = 512;

/// Steps behind the cursor at which the mark passes an event held back (naming it, and the
/// other unapplied events it passes, in `held_events`).
const PINNED_STEPS: i64 = 8;

/// Unapplied events the mark passes at most in one move (else it waits for them).
const MAX_HELD: usize = 256;

/// The unapplied events of one database, its cursor and the stored mark.
pub(crate) struct Unapplied {
    inner: Mutex<Inner>,
    /// One reader of the events file at a time.
    reading: tokio::sync::Mutex<()>,
    /// Every event at or below this sequence number is on disk in the events file: the rules
    /// read no further, so the main file never records applied a number that a power loss
    /// could take from one event and hand to another.
    synced: AtomicI64,
}

#[derive(Default)]
struct Inner {
    loaded: bool,
    /// Every event at or below it is in `events` or applied.
    cursor: i64,
    events: BTreeMap<i64, PendingEvent>,
    /// Applied by a commit before the cursor reached them (their reads skip them).
    early: HashSet<i64>,
}

impl Unapplied {
    /// Nothing loaded yet; `synced` is the last event on disk.
    pub(crate) fn new(synced: i64) -> Unapplied {
        Unapplied {
            inner: Mutex::new(Inner::default()),
            reading: tokio::sync::Mutex::new(()),
            synced: AtomicI64::new(synced),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events up to `seq` are on disk.
    pub(crate) fn synced_upto(&self, seq: i64) {
        self.synced.fetch_max(seq, Ordering::AcqRel);
    }

    /// The events file ends at `seq`, all of it on disk (after a move of events into it).
    pub(crate) fn synced_exactly(&self, seq: i64) {
        self.synced.store(seq, Ordering::Release);
    }

    /// The writer's sink: these events' applied records are committed.
    pub(crate) fn committed(&self, seqs: &[i64]) {
        let mut g = self.lock();
        for &s in seqs {
            if g.events.remove(&s).is_none() && s > g.cursor {
                g.early.insert(s);
            }
        }
    }

    /// Brings the set up to date: the first time, every event above the stored mark that the
    /// main file does not record applied; after that, the events past the cursor.
    pub(crate) async fn refresh(&self, main: &Owned, events: &Owned) -> Result<()> {
        let _one = self.reading.lock().await;
        let (loaded, cursor) = {
            let g = self.lock();
            (g.loaded, g.cursor)
        };
        let upto = self.synced.load(Ordering::Acquire);
        if loaded {
            if upto <= cursor {
                return Ok(());
            }
            let read = read_events_skipping(events, cursor, upto, &HashSet::new()).await?;
            self.add(read, upto, false);
            return Ok(());
        }
        let (mark, held, applied) = main
            .read(|c| {
                let mark: i64 = c.prepare_cached("SELECT seq FROM applied_mark")?.query_row([], |r| r.get(0))?;
                let mut st = c.prepare_cached("SELECT seq FROM held_events")?;
                let held = st.query_map([], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<Vec<i64>>>()?;
                let mut st = c.prepare_cached("SELECT seq FROM applied_events WHERE seq > ?")?;
                let applied =
                    st.query_map([mark], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<HashSet<i64>>>()?;
                Ok((mark, held, applied))
            })
            .await?;
        let mut read = read_held(events, &held).await?;
        read.extend(read_events_skipping(events, mark, upto, &applied).await?);
        self.add(read, upto.max(mark), true);
        Ok(())
    }

    fn add(&self, read: Vec<PendingEvent>, upto: i64, load: bool) {
        let mut g = self.lock();
        for e in read {
            if !g.early.remove(&e.seq) {
                g.events.insert(e.seq, e);
            }
        }
        g.cursor = g.cursor.max(upto);
        let cursor = g.cursor;
        g.early.retain(|&s| s > cursor);
        if load {
            g.loaded = true;
        }
    }

    /// The oldest `limit` unapplied events, leaving out `besides`.
    pub(crate) fn oldest(&self, limit: usize, besides: &HashSet<i64>) -> Vec<PendingEvent> {
        let g = self.lock();
        g.events.values().filter(|e| !besides.contains(&e.seq)).take(limit).cloned().collect()
    }

    /// Unapplied events read so far, and the cursor (later events are unapplied too).
    pub(crate) fn count_and_cursor(&self) -> (i64, i64) {
        let g = self.lock();
        (i64::try_from(g.events.len()).unwrap_or(i64::MAX), g.cursor)
    }

    /// Whether event `seq` is unapplied (as far as it has been read: see `cursor`).
    pub(crate) fn is_unapplied(&self, seq: i64) -> bool {
        let g = self.lock();
        g.events.contains_key(&seq) || (seq > g.cursor && !g.early.contains(&seq))
    }

    /// Sessions with an unapplied event received before `before` (stored time text).
    pub(crate) fn sessions_received_before(&self, before: &str) -> i64 {
        let g = self.lock();
        let s: HashSet<&str> =
            g.events.values().filter(|e| e.received_at.as_str() < before).map(|e| e.session_id.as_str()).collect();
        i64::try_from(s.len()).unwrap_or(i64::MAX)
    }

    /// Whether session `id` has an unapplied event read so far, and the cursor (both of one
    /// moment: later events are unapplied too).
    pub(crate) fn has_session(&self, id: &str) -> (bool, i64) {
        let g = self.lock();
        (g.events.values().any(|e| e.session_id == id), g.cursor)
    }

    /// When the stored mark (`stored`) is due to move: the new mark and the unapplied events
    /// at or below it that the held list must name. The mark follows the oldest unapplied
    /// event (nothing to name); when that one is held back far behind the cursor, it moves
    /// to the cursor (every event at or below it has been read) and names the unapplied ones
    /// it passes. Some of those may be applied by the transaction asking, or by one
    /// committed whose sink has not run: the caller leaves out those `applied_events` lists.
    pub(crate) fn mark_due(&self, stored: i64) -> Option<(i64, Vec<i64>)> {
        let g = self.lock();
        if !g.loaded {
            return None;
        }
        // Those at or below the stored mark are listed already.
        let above: Vec<i64> = g.events.range(stored + 1..=g.cursor).map(|(s, _)| *s).take(MAX_HELD + 1).collect();
        let low = above.first().map_or(g.cursor, |s| s - 1);
        if low >= stored + MARK_STEP {
            return Some((low, Vec::new()));
        }
        // Held back far behind the cursor: past at most MAX_HELD unapplied events, up to the
        // cursor or to just below the next one (a backlog is not listed: it is applied soon).
        let (to, passed) = match above.get(MAX_HELD) {
            Some(next) => (next - 1, above[..MAX_HELD].to_vec()),
            None => (g.cursor, above),
        };
        (to >= stored + MARK_STEP * PINNED_STEPS).then_some((to, passed))
    }
}

/// The held events (at or below the mark), by number.
async fn read_held(events: &Owned, held: &[i64]) -> Result<Vec<PendingEvent>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    events
        .read(|c| {
            let mut st = c.prepare_cached("SELECT seq, session_id, body, received_at FROM events WHERE seq = ?")?;
            let mut out = Vec::with_capacity(held.len());
            for &seq in held {
                if let Some(e) = st.query_row([seq], pending_row).optional()? {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
}

fn pending_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingEvent> {
    Ok(PendingEvent { seq: r.get(0)?, session_id: r.get(1)?, body: r.get(2)?, received_at: r.get(3)? })
}

/// Events of the events file with `after < seq <= upto`, in order, leaving out `skip` (their
/// bodies are never copied).
async fn read_events_skipping(events: &Owned, after: i64, upto: i64, skip: &HashSet<i64>) -> Result<Vec<PendingEvent>> {
    events
        .read(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, session_id, body, received_at FROM events WHERE seq > ? AND seq <= ? ORDER BY seq",
            )?;
            let mut rows = st.query([after, upto])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                if !skip.contains(&r.get(0)?) {
                    out.push(pending_row(r)?);
                }
            }
            Ok(out)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(cursor: i64, seqs: impl IntoIterator<Item = i64>) -> Unapplied {
        let u = Unapplied::new(cursor);
        {
            let mut g = u.lock();
            g.loaded = true;
            g.cursor = cursor;
            for seq in seqs {
                let e = PendingEvent { seq, session_id: "s".into(), body: "{}".into(), received_at: String::new() };
                g.events.insert(seq, e);
            }
        }
        u
    }

    #[test]
    fn the_mark_follows_the_oldest_unapplied_event_above_it() {
        // Event 5 is held below the stored mark 100: the mark still follows the others.
        let u = with(2_000, [5, 900, 901]);
        assert_eq!(u.mark_due(100), Some((899, vec![])));
        assert_eq!(u.mark_due(899), None, "not far enough yet");
    }

    #[test]
    fn the_mark_passes_a_held_event_but_not_a_backlog() {
        // Event 1,000 held back; 5,000 later events applied; a backlog of 300 at the cursor.
        let backlog = 9_701..=10_000;
        let u = with(10_000, std::iter::once(1_000).chain(backlog.clone()));
        let (to, passed) = u.mark_due(900).expect("due");
        assert_eq!(passed, [1_000].into_iter().chain(9_701..=9_955).collect::<Vec<_>>());
        assert_eq!(to, 9_955, "just below the first unapplied event it does not list");
        // With no backlog, it goes to the cursor.
        let u = with(10_000, [1_000]);
        assert_eq!(u.mark_due(900), Some((10_000, vec![1_000])));
        // Not held back far enough: nothing.
        let u = with(4_000, [1_000]);
        assert_eq!(u.mark_due(900), None);
    }
}
