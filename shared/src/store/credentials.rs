//! Database credentials that change under a running process.
//!
//! RDS rotates a managed secret (every 7 days by default): the database user's password
//! changes, and so does the secret's value. Connections already open stay authenticated, but
//! every new one made with the password read at start-up is refused (MySQL error 1045, access
//! denied). So when the pool cannot open a connection for that reason, the store reads its
//! credentials again ([`CredentialSource`], on Lambda the secret `DATABASE_SECRET_ARN` names),
//! gives the pool the new ones, and tries once more.
//!
//! A storm of refusals reads the secret once: concurrent refusals wait for the one read and
//! then retry with its answer, and a refusal seen within [`MIN_REREAD_INTERVAL`] of the last
//! read does not read again (the request answers 503 with `Retry-After`, and the next one after
//! the interval reads again: a secret whose new value was not yet stored when the password
//! changed is picked up then).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::mysql::MySqlConnection;
use tokio::time::Instant;

use super::ConnectOptions;
use super::pool::{Pool, PooledConnection};

/// The least time between two reads of the credentials.
pub const MIN_REREAD_INTERVAL: Duration = Duration::from_secs(5);

/// How long one read of the credentials may take before the request gives up on it.
const REREAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the database's current credentials can be read again.
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// The options to connect with now, or why they cannot be had (never the secret itself).
    fn connect_options(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ConnectOptions, String>> + Send + '_>>;
}

/// Re-reads the credentials of a MySQL pool when the server refuses them.
#[derive(Debug)]
pub(super) struct CredentialRefresh {
    source: Arc<dyn CredentialSource>,
    /// Incremented each time the pool got new options.
    generation: AtomicU64,
    /// When the credentials were last read (successfully or not); held while reading, so
    /// that one read serves every request refused meanwhile.
    last_read: tokio::sync::Mutex<Option<Instant>>,
    min_interval: Duration,
}

impl CredentialRefresh {
    pub(super) fn new(source: Arc<dyn CredentialSource>, min_interval: Duration) -> Self {
        CredentialRefresh {
            source,
            generation: AtomicU64::new(0),
            last_read: tokio::sync::Mutex::new(None),
            min_interval,
        }
    }

    /// The generation of the pool's options: read before acquiring, handed to
    /// [`Self::after_refusal`] if the server refuses the connection.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// After the server refused a connection of `pool` made with the options of `seen`
    /// (`refused`): reads the credentials again, unless that was done less than the minimum
    /// interval ago, and tries once more. Else, or if that fails, the error.
    pub(super) async fn after_refusal(
        &self,
        pool: &Pool<MySqlConnection>,
        seen: u64,
        refused: sqlx::Error,
    ) -> Result<PooledConnection<MySqlConnection>, sqlx::Error> {
        if self.reread(pool, seen).await {
            pool.acquire().await
        } else {
            Err(refused)
        }
    }

    /// Gives `pool` the current credentials, unless they were read less than the minimum
    /// interval ago; `seen` is the generation the refused connection was made with. Whether
    /// the pool now has options worth another try.
    async fn reread(&self, pool: &Pool<MySqlConnection>, seen: u64) -> bool {
        let mut last_read = self.last_read.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            // Another request read them while this one waited: try its options.
            return true;
        }
        if last_read.is_some_and(|at| at.elapsed() < self.min_interval) {
            tracing::warn!(
                "the database refused the credentials read {} ms ago; they are read at most once \
                 every {} s",
                last_read.map_or(0, |at| at.elapsed().as_millis()),
                self.min_interval.as_secs()
            );
            return false;
        }
        *last_read = Some(Instant::now());
        tracing::warn!("the database refused the credentials: re-reading them");
        match tokio::time::timeout(REREAD_TIMEOUT, self.source.connect_options()).await {
            Ok(Ok(ConnectOptions::MySql(options))) => {
                pool.set_connect_options(options);
                self.generation.fetch_add(1, Ordering::AcqRel);
                true
            }
            Ok(Ok(ConnectOptions::Sqlite(_))) => {
                tracing::error!("the credentials read again are not MySQL's; keeping the old ones");
                false
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "could not read the database credentials again");
                false
            }
            Err(_) => {
                tracing::error!(
                    "reading the database credentials again took over {} s",
                    REREAD_TIMEOUT.as_secs()
                );
                false
            }
        }
    }
}
