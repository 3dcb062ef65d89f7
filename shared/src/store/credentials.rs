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
    pub(super) async fn after_refusal<'p>(
        &self,
        pool: &'p Pool<MySqlConnection>,
        seen: u64,
        refused: sqlx::Error,
    ) -> Result<PooledConnection<'p, MySqlConnection>, sqlx::Error> {
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

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::atomic::AtomicUsize;

    use sqlx::mysql::MySqlConnectOptions;

    use super::*;
    use crate::store::{PoolSettings, Store, StoreError};

    /// Gives `options`, counting the reads.
    #[derive(Debug)]
    struct Counted {
        options: MySqlConnectOptions,
        reads: AtomicUsize,
    }

    impl CredentialSource for Counted {
        fn connect_options(
            &self,
        ) -> Pin<Box<dyn Future<Output = Result<ConnectOptions, String>> + Send + '_>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                // Slow enough that the other requests of a storm wait for this read.
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(ConnectOptions::MySql(self.options.clone()))
            })
        }
    }

    /// A store of `connections` connecting to the test server with a wrong password, whose
    /// credentials are read again from a source giving `then` (`None`: the right ones).
    fn refused_store(
        server: &str,
        connections: u32,
        then: Option<&str>,
        min_interval: Duration,
    ) -> (Store, Arc<Counted>) {
        let right = MySqlConnectOptions::from_str(server).unwrap();
        let source = Arc::new(Counted {
            options: match then {
                Some(password) => right.clone().password(password),
                None => right.clone(),
            },
            reads: AtomicUsize::new(0),
        });
        let store = Store::connect_lazy(
            ConnectOptions::MySql(right.password("not-the-password")),
            &PoolSettings {
                max_connections: connections,
                max_idle_connections: connections,
                acquire_timeout: Duration::from_secs(10),
            },
        )
        .refreshing_credentials(source.clone(), min_interval);
        (store, source)
    }

    /// Concurrent refusals read the credentials once, and every request then gets through.
    /// The test server of `scripts/test.sh`; required under CI.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storm_of_refusals_reads_the_credentials_once() {
        let Some(server) = test_support::mysql_server_url("store::credentials::a_storm") else {
            return;
        };
        let (store, source) = refused_store(&server, 4, None, MIN_REREAD_INTERVAL);
        let pings = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.ping().await })
        });
        for ping in pings {
            ping.await
                .unwrap()
                .expect("the credentials read again work");
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
        store.close().await;
    }

    /// Credentials that are still refused answer "unavailable" (503), and are not read again
    /// within the interval; after it, they are.
    #[tokio::test]
    async fn still_refused_credentials_are_unavailable_and_read_at_most_once_an_interval() {
        let Some(server) = test_support::mysql_server_url("store::credentials::still_refused")
        else {
            return;
        };
        let (store, source) =
            refused_store(&server, 1, Some("still-wrong"), Duration::from_secs(60));
        for _ in 0..3 {
            let refused = store.ping().await;
            assert!(
                matches!(&refused, Err(StoreError::Unavailable(error)) if super::super::is_access_denied(error)),
                "{refused:?}"
            );
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);

        let (store, source) = refused_store(&server, 1, Some("still-wrong"), Duration::ZERO);
        for _ in 0..2 {
            assert!(store.ping().await.is_err());
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }
}
