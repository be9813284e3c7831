//! The rules worker's batches take the store's one writer in turn: a batch's commit may
//! queue for the writer while the batch before it holds it, instead of waiting until that
//! commit is done (and behind whatever intake queued meanwhile). The batch checks, holding
//! the writer, that the one before it was committed: its steps were made on top of it.

use tokio::sync::watch;

/// How far a batch's commit got.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Stage {
    /// Not holding the writer yet.
    Queued,
    /// Holding the writer: a batch queued now takes it next.
    Holding,
    Committed,
    Failed,
}

/// A batch's place behind the batch committed before it.
pub(super) struct Turn {
    before: Option<watch::Receiver<Stage>>,
    mine: watch::Sender<Stage>,
}

impl Turn {
    /// The turn of a batch committed after the one `before` tells of (none: the first).
    pub(super) fn after(before: Option<watch::Receiver<Stage>>) -> (Turn, watch::Receiver<Stage>) {
        let (mine, rx) = watch::channel(Stage::Queued);
        (Turn { before, mine }, rx)
    }

    /// Waits until the batch before holds the writer or is done: queued after that, this
    /// batch takes the writer next. A batch that never says it holds it (its commit went
    /// another way) is waited for until done.
    pub(super) async fn queue(&mut self) {
        if let Some(b) = &mut self.before {
            let _ = b.wait_for(|s| *s != Stage::Queued).await;
        }
    }

    /// Holding the writer: lets the next batch queue, then waits for the batch before to be
    /// done. Fails when it was not committed.
    pub(super) async fn held(&mut self) -> anyhow::Result<()> {
        self.mine.send_replace(Stage::Holding);
        self.before_committed().await
    }

    /// Waits for the batch before to be done; fails when it was not committed.
    pub(super) async fn before_committed(&mut self) -> anyhow::Result<()> {
        let Some(b) = &mut self.before else { return Ok(()) };
        let ok =
            b.wait_for(|s| matches!(s, Stage::Committed | Stage::Failed)).await.is_ok_and(|s| *s == Stage::Committed);
        if ok {
            Ok(())
        } else {
            anyhow::bail!("the rules batch before this one was not committed; both are made again")
        }
    }

    /// Tells the next batch how this one's commit ended.
    pub(super) fn done(&self, committed: bool) {
        self.mine.send_replace(if committed { Stage::Committed } else { Stage::Failed });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_follows_the_one_before_and_fails_with_it() {
        let (mut first, rx1) = Turn::after(None);
        let (mut second, rx2) = Turn::after(Some(rx1));
        let (mut third, _rx3) = Turn::after(Some(rx2));
        first.queue().await;
        first.held().await.expect("the first batch has none before it");
        second.queue().await;
        let waiting = tokio::spawn(async move { (second.held().await.is_ok(), second) });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second batch waits for the first to be done");
        first.done(false);
        let (ok, second) = waiting.await.expect("task");
        assert!(!ok, "a batch made on top of a failed one must not commit");
        second.done(false);
        third.queue().await;
        assert!(third.before_committed().await.is_err());
    }

    #[tokio::test]
    async fn a_batch_whose_before_is_dropped_fails() {
        let (first, rx1) = Turn::after(None);
        let (mut second, _) = Turn::after(Some(rx1));
        drop(first);
        second.queue().await;
        assert!(second.held().await.is_err());
    }
}
