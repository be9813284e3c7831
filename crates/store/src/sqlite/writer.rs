//! The owned writer's connection and the group transaction its writes join (see
//! `direct::Owned`).

use crate::Result;

/// Runs a statement without parameters from the connection's statement cache: the BEGIN,
/// SAVEPOINT, RELEASE and COMMIT around every write are parsed once, not at every write.
pub(crate) fn run_cached(c: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The writer's connection and the transaction left open for queued writes.
pub(crate) struct Writer {
    pub(crate) conn: rusqlite::Connection,
    pub(crate) group: Option<Group>,
    /// Events the open transaction's writes recorded applied ([`super::staged::stage_applied`]).
    pub(crate) applied: Vec<i64>,
    /// Copies the WAL into the database beside the writer (none on a scratch database);
    /// dropped after the connection, whose commit hook points into it.
    pub(crate) _checkpoints: Option<super::checkpoint::Checkpointer>,
}

/// An open transaction that queued writes join.
pub(crate) struct Group {
    pub(crate) members: usize,
    /// The commit's outcome, for the members waiting for it.
    pub(crate) done: tokio::sync::watch::Sender<Option<std::result::Result<(), String>>>,
}

impl Writer {
    /// Runs `f` in the open group (a new one if none): the group's first write alone in the
    /// transaction, each later one in a savepoint of its own.
    pub(crate) fn run<T>(&mut self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        self.forget_if_rolled_back();
        let Some(group) = &mut self.group else {
            run_cached(&self.conn, "BEGIN IMMEDIATE")?;
            self.group = Some(Group { members: 0, done: tokio::sync::watch::channel(None).0 });
            return self.run_first(f);
        };
        if group.members == 0 {
            return self.run_first(f);
        }
        run_cached(&self.conn, "SAVEPOINT w")?;
        super::staged::take();
        match f(&self.conn) {
            Ok(v) => {
                // Before the release: should it fail, the write stays in the transaction.
                self.applied.extend(super::staged::take());
                run_cached(&self.conn, "RELEASE w")?;
                if let Some(g) = &mut self.group {
                    g.members += 1;
                }
                Ok(v)
            }
            Err(e) => {
                super::staged::take();
                if self.forget_if_rolled_back() {
                    return Err(e);
                }
                // Undoes this write only; the group's other writes stay.
                run_cached(&self.conn, "ROLLBACK TO w")?;
                run_cached(&self.conn, "RELEASE w")?;
                Err(e)
            }
        }
    }

    /// Runs `f` in the open transaction (a new one if none) with no savepoint: should it
    /// fail, the whole transaction is rolled back, the group's earlier writes with it.
    pub(crate) fn run_whole<T>(&mut self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        self.forget_if_rolled_back();
        if self.group.is_none() {
            run_cached(&self.conn, "BEGIN IMMEDIATE")?;
            self.group = Some(Group { members: 0, done: tokio::sync::watch::channel(None).0 });
        }
        self.run_first(f)
    }

    /// Whether SQLite rolled back the open transaction itself (it may, on a full disk or an
    /// I/O error): then the group and what its writes recorded applied are dropped, and its
    /// members are told their commit did not finish.
    pub(crate) fn forget_if_rolled_back(&mut self) -> bool {
        if self.group.is_some() && self.conn.is_autocommit() {
            self.group = None;
            self.applied.clear();
            return true;
        }
        false
    }

    /// Runs the first write of an open group with no savepoint: rolling the transaction back
    /// undoes it alone, and a savepoint would copy every page it changes to a journal.
    pub(crate) fn run_first<T>(&mut self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        super::staged::take();
        match f(&self.conn) {
            Ok(v) => {
                self.applied.extend(super::staged::take());
                if let Some(g) = &mut self.group {
                    g.members += 1;
                }
                Ok(v)
            }
            Err(e) => {
                super::staged::take();
                // The whole transaction is undone, the group's earlier writes with it.
                self.applied.clear();
                // SQLite may have rolled back already (a full disk, say).
                if !self.conn.is_autocommit() {
                    run_cached(&self.conn, "ROLLBACK")?;
                }
                self.group = None;
                Err(e)
            }
        }
    }
}
