//! Write transactions on either backend: how each starts one, and the macros that run a body in
//! one, commit or roll it back, and run it again when MySQL ends it in a deadlock.

use sqlx::Connection;
use sqlx::mysql::MySqlConnection;
use sqlx::sqlite::SqliteConnection;

/// How many times a write that MySQL ended in a deadlock is run in all.
pub(super) const WRITE_ATTEMPTS: u32 = 5;

/// How each backend starts a transaction that will write.
pub(super) trait WriteDialect: Connection {
    /// Starts a transaction that will write.
    async fn begin_write(&mut self) -> Result<sqlx::Transaction<'_, Self::Database>, sqlx::Error>;
}

impl WriteDialect for MySqlConnection {
    async fn begin_write(&mut self) -> Result<sqlx::Transaction<'_, Self::Database>, sqlx::Error> {
        self.begin().await
    }
}

impl WriteDialect for SqliteConnection {
    async fn begin_write(&mut self) -> Result<sqlx::Transaction<'_, Self::Database>, sqlx::Error> {
        // Takes the write lock at once: a deferred transaction that reads and then writes can
        // fail with SQLITE_BUSY when another writer went first, whatever the busy timeout.
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

/// Whether MySQL rolled the transaction back to break a deadlock (SQLSTATE 40001), in which
/// case it may be run again.
pub(super) fn is_deadlock(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("40001"))
}

/// Runs `$attempt`, an async block giving `Result<Result<T, R>, sqlx::Error>`, again while
/// MySQL ends it in a deadlock, at most [`WRITE_ATTEMPTS`] times.
macro_rules! retry_on_deadlock {
    ($attempt:expr) => {{
        let mut attempt = 1;
        loop {
            let result: Result<Result<_, _>, sqlx::Error> = $attempt.await;
            match result {
                Err(error)
                    if $crate::store::write::is_deadlock(&error)
                        && attempt < $crate::store::write::WRITE_ATTEMPTS =>
                {
                    attempt += 1
                }
                other => break other,
            }
        }
    }};
}

/// Runs `$body` in a write transaction on `$connection`, bound to `$transaction`: `$body` is an
/// expression whose `?` gives `sqlx::Error` and whose value is `Result<T, R>`, `R` a refusal.
/// The transaction commits when the body gives `Ok(Ok(_))` and is rolled back at once
/// otherwise (dropped, it would keep its locks until the connection's next use). A deadlock
/// runs it all again.
macro_rules! write_transaction {
    ($connection:ident, $transaction:ident => $body:expr) => {
        retry_on_deadlock!(async {
            use $crate::store::write::WriteDialect as _;
            let mut $transaction = $connection.begin_write().await?;
            let outcome: Result<Result<_, _>, sqlx::Error> = async { $body }.await;
            match outcome {
                Ok(Ok(value)) => {
                    $transaction.commit().await?;
                    Ok(Ok(value))
                }
                Ok(Err(refusal)) => {
                    $transaction.rollback().await?;
                    Ok(Err(refusal))
                }
                Err(error) => {
                    // The error is what went wrong; a rollback that fails too adds nothing.
                    let _ = $transaction.rollback().await;
                    Err(error)
                }
            }
        })
    };
}
