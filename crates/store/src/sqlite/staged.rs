//! Events a write recorded applied, noted on the writer's thread while the write runs and
//! handed to the store once its transaction is committed (see `direct::Owned`).

/// Receives the sequence numbers of events a commit recorded applied.
pub(crate) type AppliedSink = Box<dyn Fn(&[i64]) + Send + std::marker::Sync>;

thread_local! {
    /// Events the write running on this thread recorded applied ([`stage_applied`]).
    static STAGED: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Notes, from inside a write, that it recorded event `seq` applied: the writer passes it to
/// its sink once the transaction holding the write is committed, and forgets it if the write
/// or its transaction is rolled back.
pub(crate) fn stage_applied(seq: i64) {
    STAGED.with(|s| s.borrow_mut().push(seq));
}

/// What [`stage_applied`] noted on this thread since the last call.
pub(crate) fn take() -> Vec<i64> {
    STAGED.with(|s| std::mem::take(&mut *s.borrow_mut()))
}
