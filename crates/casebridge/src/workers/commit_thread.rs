//! A thread of its own for the rules worker's commits with CRM writes on a store of one
//! writer (SQLite).
//!
//! Such a commit holds the one writer for a few milliseconds, and intake's commits queue behind
//! it. On the runtime's workers, a commit woken when the writer is free waited in the run
//! queue behind the requests being served, with the writer idle meanwhile, and while it held
//! the writer one of the two workers served no request. On a thread of its own it runs as
//! soon as it is woken, and the operating system shares the cores between it and the
//! runtime's workers.

/// A runtime of one thread, stopped when dropped (tasks still on it are dropped with it).
pub(super) struct CommitThread {
    handle: tokio::runtime::Handle,
    /// Dropped with the thread's owner: the thread's runtime then returns.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl CommitThread {
    /// Starts the thread, named `name`.
    pub(super) fn start(name: &str) -> std::io::Result<CommitThread> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name(name.to_string()).spawn(move || {
            // Runs the tasks spawned on `handle` until the sender is dropped.
            let _ = rt.block_on(stopped);
        })?;
        Ok(CommitThread { handle, _stop: stop })
    }

    /// The rules worker's thread, or `None` (logged) when it cannot start: the commits then
    /// run on the runtime's workers.
    pub(super) fn for_rules() -> Option<CommitThread> {
        CommitThread::start("casebridge-commit")
            .inspect_err(|e| tracing::warn!(error = %e, "No thread of its own for the rules' commits; they run on the runtime's workers."))
            .ok()
    }

    /// Where to spawn the commits.
    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_the_thread_until_it_is_dropped() {
        let t = CommitThread::start("commit-test").expect("thread");
        let name = t.handle().spawn(async { std::thread::current().name().map(str::to_string) });
        assert_eq!(name.await.expect("task").as_deref(), Some("commit-test"));
        let (_hold, never) = tokio::sync::oneshot::channel::<()>();
        let waiting = t.handle().spawn(async move {
            let _ = never.await;
        });
        drop(t);
        let out = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await.expect("stopped in time");
        assert!(out.is_err_and(|e| e.is_cancelled()), "a task left on a stopped thread is dropped");
    }
}
