//! A pool of sqlx connections that hands a connection back without a round trip.
//!
//! sqlx's own pool pings every connection it gets back, in case the query on it was cancelled
//! half-way: a second round trip for every query. Here a connection carries a flag instead,
//! set while a query runs and cleared when it finishes: a connection that comes back with the
//! flag still set (its query was cancelled, or failed below SQL) is closed, never reused. A
//! connection idle for [`PING_WHEN_IDLE_FOR`] is pinged before it is handed out again.

use std::cell::Cell;
use std::sync::RwLock;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use sqlx::{ConnectOptions, Connection};

/// A connection idle for this long is pinged before use: the server or RDS Proxy may have
/// closed it meanwhile, or a Lambda function may have been frozen since.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// Whether the work running on a pooled connection asked for it to be closed afterwards.
    static RETIRE_AFTER_USE: Cell<bool>;
}

/// Asks that the connection the current work runs on be closed when the work ends, instead of
/// going back to the pool: for a statement that leaves its session in a state no later request
/// should inherit. Outside a pooled connection's work (migrations) it does nothing.
pub(super) fn retire_connection_after_use() {
    let _ = RETIRE_AFTER_USE.try_with(|retire| retire.set(true));
}

/// Connections of type `C`, opened on first use, at most `max_connections` at a time, of which
/// at most `max_idle` stay open between uses.
pub struct Pool<C: Connection> {
    pool: managed::Pool<Manager<C>>,
    max_idle: usize,
    acquire_timeout: Duration,
}

impl<C: Connection> Pool<C> {
    /// A pool that opens no connection until one is asked for. A connection that comes back
    /// when `max_idle` others are idle is closed. `acquire_timeout` bounds the whole of getting
    /// one: waiting for a free slot, connecting, pinging an idle connection.
    pub fn new(
        options: <C as Connection>::Options,
        max_connections: u32,
        max_idle: u32,
        acquire_timeout: Duration,
    ) -> Pool<C> {
        let pool = managed::Pool::builder(Manager {
            options: RwLock::new(options),
        })
        .max_size(max_connections.max(1) as usize)
        .build()
        .expect("a pool without timeouts of deadpool's own always builds");
        Pool {
            pool,
            max_idle: max_idle as usize,
            acquire_timeout,
        }
    }

    /// A connection of the pool's, or why none could be had in time. Giving up mid-way is
    /// safe: deadpool returns the slot, and a connection still being opened is dropped.
    pub async fn acquire(&self) -> Result<PooledConnection<'_, C>, sqlx::Error> {
        let Ok(got) = tokio::time::timeout(self.acquire_timeout, self.pool.get()).await else {
            return Err(sqlx::Error::PoolTimedOut);
        };
        match got {
            Ok(connection) => Ok(PooledConnection {
                connection,
                pool: self,
            }),
            Err(PoolError::Backend(error)) => Err(error),
            Err(PoolError::Timeout(_)) => Err(sqlx::Error::PoolTimedOut),
            Err(PoolError::Closed) => Err(sqlx::Error::PoolClosed),
            Err(other @ (PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_))) => {
                Err(sqlx::Error::Configuration(other.to_string().into()))
            }
        }
    }

    /// A new connection outside the pool, for work that changes the session (migrations).
    pub async fn connect_unpooled(&self) -> Result<C, sqlx::Error> {
        self.pool.manager().options().connect().await
    }

    /// Opens every later connection with `options` (new credentials, say). The connections
    /// already open are kept: a changed password ends no session.
    pub fn set_connect_options(&self, options: <C as Connection>::Options) {
        *self
            .pool
            .manager()
            .options
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = options;
    }

    /// Closes the idle connections, and every other one as it comes back; acquiring fails
    /// from now on.
    pub async fn close(&self) {
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        for connection in idle {
            let _ = connection.connection.close().await;
        }
    }
}

impl<C: Connection> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool {
            pool: self.pool.clone(),
            max_idle: self.max_idle,
            acquire_timeout: self.acquire_timeout,
        }
    }
}

impl<C: Connection> std::fmt::Debug for Pool<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Pool")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// A connection lent by a [`Pool`], for one [`PooledConnection::run`].
pub struct PooledConnection<'a, C: Connection> {
    connection: Object<Manager<C>>,
    pool: &'a Pool<C>,
}

impl<C: Connection> PooledConnection<'_, C> {
    /// Runs one query's worth of work on the connection, then gives it back to the pool. If
    /// `work` is cancelled or fails anywhere but in the database's own SQL handling, the
    /// connection is dropped instead; if `work` asks for it ([`retire_connection_after_use`]),
    /// or the pool already holds as many idle connections as it keeps, it is closed.
    pub async fn run<T>(
        mut self,
        work: impl AsyncFnOnce(&mut C) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        self.connection.in_flight = true;
        let connection = &mut self.connection.connection;
        let (result, retire) = RETIRE_AFTER_USE
            .scope(Cell::new(false), async {
                let result = work(connection).await;
                (result, RETIRE_AFTER_USE.with(Cell::get))
            })
            .await;
        if matches!(result, Ok(_) | Err(sqlx::Error::Database(_))) {
            if retire || self.pool.pool.status().available >= self.pool.max_idle {
                let _ = Object::take(self.connection).connection.close().await;
            } else {
                self.connection.in_flight = false;
            }
        }
        result
    }
}

/// A connection and whether a query on it was left unfinished.
struct Tracked<C> {
    connection: C,
    in_flight: bool,
}

/// Opens and checks the pool's connections for deadpool.
struct Manager<C: Connection> {
    /// Replaced by [`Pool::set_connect_options`]; each connection is opened with a copy.
    options: RwLock<<C as Connection>::Options>,
}

impl<C: Connection> Manager<C> {
    /// The options the next connection opens with.
    fn options(&self) -> <C as Connection>::Options {
        self.options
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl<C: Connection> managed::Manager for Manager<C> {
    type Type = Tracked<C>;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Tracked<C>, sqlx::Error> {
        // sqlx 0.9's connect and ping futures are unboxed and kilobytes large. Inline, they
        // would sit in every acquire's future, and so in every handler's, which axum and tower
        // move (memcpy) several times per request: +10 % instructions per retrieve, measured.
        Ok(Tracked {
            connection: Box::pin(self.options().connect()).await?,
            in_flight: false,
        })
    }

    async fn recycle(
        &self,
        tracked: &mut Tracked<C>,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if tracked.in_flight {
            return Err(RecycleError::message(
                "a query on this connection was left unfinished",
            ));
        }
        if metrics.last_used() >= PING_WHEN_IDLE_FOR {
            Box::pin(tracked.connection.ping()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    use std::str::FromStr;

    /// A pool of one connection to an in-memory SQLite database. A TEMP table is private to the
    /// connection that made it (sqlx shares one in-memory database between the connections of
    /// one set of options), so it tells whether the next acquire got that connection back.
    fn one_sqlite_connection(acquire_timeout: Duration) -> Pool<SqliteConnection> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
        Pool::new(options, 1, 1, acquire_timeout)
    }

    async fn mark(pool: &Pool<SqliteConnection>) {
        let connection = pool.acquire().await.unwrap();
        connection
            .run(async |connection| {
                sqlx::query("CREATE TEMP TABLE marker (x)")
                    .execute(connection)
                    .await
            })
            .await
            .unwrap();
    }

    async fn is_marked(pool: &Pool<SqliteConnection>) -> bool {
        let connection = pool.acquire().await.unwrap();
        let tables: i64 = connection
            .run(async |connection| {
                sqlx::query_scalar("SELECT count(*) FROM sqlite_temp_master WHERE name = 'marker'")
                    .fetch_one(connection)
                    .await
            })
            .await
            .unwrap();
        tables == 1
    }

    #[tokio::test]
    async fn a_connection_whose_query_finished_is_reused() {
        let pool = one_sqlite_connection(Duration::from_secs(5));
        mark(&pool).await;
        assert!(is_marked(&pool).await);
        assert!(is_marked(&pool).await);
    }

    #[tokio::test]
    async fn a_connection_whose_query_was_cancelled_is_closed_not_reused() {
        let pool = one_sqlite_connection(Duration::from_secs(5));
        mark(&pool).await;
        let connection = pool.acquire().await.unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(50),
            connection.run(async |connection| {
                sqlx::query("SELECT 1").execute(connection).await?;
                std::future::pending::<Result<(), sqlx::Error>>().await
            }),
        )
        .await;
        assert!(cancelled.is_err());
        assert!(!is_marked(&pool).await);
    }

    #[tokio::test]
    async fn an_sql_error_keeps_the_connection_and_a_lower_failure_closes_it() {
        let pool = one_sqlite_connection(Duration::from_secs(5));
        mark(&pool).await;
        let connection = pool.acquire().await.unwrap();
        let refused = connection
            .run(async |connection| sqlx::query("SELEC 1").execute(connection).await)
            .await;
        assert!(
            matches!(refused, Err(sqlx::Error::Database(_))),
            "{refused:?}"
        );
        assert!(is_marked(&pool).await);

        let connection = pool.acquire().await.unwrap();
        let broken = connection
            .run(async |_| Err::<(), _>(sqlx::Error::Protocol("a torn packet".into())))
            .await;
        assert!(matches!(broken, Err(sqlx::Error::Protocol(_))));
        assert!(!is_marked(&pool).await);
    }

    #[tokio::test]
    async fn no_free_connection_within_the_timeout_is_pool_timed_out() {
        let pool = one_sqlite_connection(Duration::from_millis(50));
        let _held = pool.acquire().await.unwrap();
        assert!(matches!(
            pool.acquire().await,
            Err(sqlx::Error::PoolTimedOut)
        ));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_pool_timed_out() {
        // Accepts TCP connections (the kernel does, from the backlog) but never sends MySQL's
        // greeting: connecting hangs until the acquire timeout ends it.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("mysql://kv:kv@{}/kv", silent.local_addr().unwrap());
        let options = MySqlConnectOptions::from_str(&url).unwrap();
        let pool = Pool::<MySqlConnection>::new(options, 1, 1, Duration::from_millis(200));
        let acquired = tokio::time::timeout(Duration::from_secs(30), pool.acquire())
            .await
            .expect("acquire outlived its own timeout by far");
        assert!(matches!(acquired, Err(sqlx::Error::PoolTimedOut)));
    }

    #[tokio::test]
    async fn a_pool_that_keeps_no_idle_connection_closes_each_after_use() {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
        let pool = Pool::<SqliteConnection>::new(options, 1, 0, Duration::from_secs(5));
        mark(&pool).await;
        assert_eq!(pool.pool.status().size, 0, "no connection stays open");
        assert!(
            !is_marked(&pool).await,
            "the next use opens a new connection"
        );
    }

    #[tokio::test]
    async fn a_closed_pool_lends_nothing() {
        let pool = one_sqlite_connection(Duration::from_secs(5));
        mark(&pool).await;
        pool.close().await;
        assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolClosed)));
    }

    /// On MySQL a cancelled query's answer is still on its way: the next query on that
    /// connection would read it. The test server of `scripts/test.sh`; required under CI.
    #[tokio::test]
    async fn on_mysql_the_query_after_a_cancelled_one_gets_its_own_answer() {
        let Some(url) = test_support::mysql_server_url("store::pool::tests::on_mysql") else {
            return;
        };
        let options = MySqlConnectOptions::from_str(&url).unwrap();
        let pool = Pool::<MySqlConnection>::new(options, 1, 1, Duration::from_secs(5));
        let connection_id = async || -> u64 {
            let connection = pool.acquire().await.unwrap();
            connection
                .run(async |connection| {
                    sqlx::query_scalar("SELECT CONNECTION_ID()")
                        .fetch_one(connection)
                        .await
                })
                .await
                .unwrap()
        };
        let first = connection_id().await;
        assert_eq!(connection_id().await, first, "an idle connection is reused");

        let connection = pool.acquire().await.unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(100),
            connection.run(async |connection| {
                sqlx::query_scalar::<_, i64>("SELECT SLEEP(2) + 41")
                    .fetch_one(connection)
                    .await
            }),
        )
        .await;
        assert!(cancelled.is_err());

        let connection = pool.acquire().await.unwrap();
        let answer: i64 = connection
            .run(async |connection| sqlx::query_scalar("SELECT 7").fetch_one(connection).await)
            .await
            .unwrap();
        assert_eq!(answer, 7);
        assert_ne!(
            connection_id().await,
            first,
            "the cancelled connection was closed"
        );
    }
}
