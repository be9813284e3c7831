//! SQLite work run on the connection's own handle, in the calling thread.
//!
//! sqlx's SQLite driver runs each statement on a worker thread: two thread hand-offs per
//! statement, about 75 µs on a 2-core machine, against well under a microsecond for the
//! statement itself. The hot paths (intake, rules commits, outbox progress, built-in CRM
//! writes) lock the handle away from that thread once and run their whole batch here.

use sqlx::SqliteConnection;

use crate::Result;

/// Runs `f` on `conn`'s handle. An open sqlx transaction stays open around it; `f` must
/// leave the handle as it found it (no dangling statements, its own transactions finished).
pub(crate) async fn direct<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: the handle is locked away from sqlx's worker thread until `handle` drops, after
    // the wrapper; `from_handle` never closes the database it is given.
    let c = unsafe { rusqlite::Connection::from_handle(raw.cast()) }?;
    let out = f(&c);
    drop(c);
    drop(handle);
    out
}

/// Runs `f` in a transaction of its own (immediate: it takes the write lock at once).
pub(crate) async fn direct_tx<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    direct(conn, |c| {
        c.execute_batch("BEGIN IMMEDIATE")?;
        match f(c) {
            Ok(v) => {
                c.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = c.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    })
    .await
}
