//! Storage of users and their key-value entries, on MySQL or SQLite through sqlx.
//!
//! Each query is written once, in the SQL both backends share, and run on whichever pool the
//! configuration chose; the schema of each backend lives under `migrations/`. Conflicts are
//! decided by the schema's constraints, conditional statements and row locks, never by a read
//! before the write.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode};

use pool::Pool as ConnectionPool;

static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/mysql");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Runs `$body` with `$connection` bound to a connection of the store's pool, whichever backend
/// it is: the body is compiled once per backend, so one text serves both. Evaluates to the
/// body's `Result`, or to the error of getting a connection.
macro_rules! on_connection {
    ($store:expr, $connection:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::MySql(pool) => match $store.acquire_mysql(pool).await {
                Ok(pooled) => pooled.run(async |$connection| $body).await,
                Err(error) => Err(error),
            },
            $crate::store::Pool::Sqlite(pool) => match pool.acquire().await {
                Ok(pooled) => pooled.run(async |$connection| $body).await,
                Err(error) => Err(error),
            },
        }
    };
}

#[macro_use]
mod write;
mod app_user;
mod credentials;
mod entries;
mod migrate;
mod pool;
mod sessions;
mod statement;
mod throttle;

use statement::statement;

pub use app_user::{APP_USER_PRIVILEGES, AppUser};
pub use credentials::{CredentialSource, MIN_REREAD_INTERVAL};
pub use entries::{ExpiryChange, ListedEntry, Quota, millis_after, now_millis};
pub use sessions::{RefreshOutcome, Session};
pub use throttle::{
    LOGIN_IN_FLIGHT_GRACE, LoginAttempt, LoginLimits, PendingLogin, login_username_key,
    retry_after_secs,
};

/// Which database a [`Store`] talks to, as told by the scheme of its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    MySql,
    Sqlite,
}

impl Backend {
    /// The backend a `mysql://…` or `sqlite:…` URL names, if any.
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Some(Backend::MySql)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// How the pool is sized and how long a request may wait for a connection.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How many connections stay open between requests (at most `max_connections`); 0 closes
    /// each one when its request ends.
    pub max_idle_connections: u32,
    pub acquire_timeout: Duration,
}

/// A storage failure, as the handlers need to tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username taken")]
    UsernameTaken,
    #[error("email taken")]
    EmailTaken,
    #[error("key exists")]
    KeyExists,
    #[error("key not found")]
    KeyNotFound,
    /// `If-Match` was given and the entry's tag is not among its tags.
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The session of the access token has ended (logout, password change, refresh-token
    /// reuse), or its user is no longer in the database.
    #[error("session ended")]
    SessionEnded,
    /// The password changed between its check and the change.
    #[error("password changed meanwhile")]
    PasswordChanged,
    /// The database cannot be reached (refused, timed out, or the connection broke), or it
    /// (or RDS Proxy) has no connection to spare.
    #[error("database unreachable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error),
            sqlx::Error::Database(ref database) if is_out_of_connections(database.as_ref()) => {
                StoreError::Unavailable(error)
            }
            // The credentials were refused, and reading them again did not help (yet): a
            // rotation under way, or a secret that no longer matches its user.
            ref refused if is_access_denied(refused) => {
                tracing::error!(error = %refused, "the database refused the credentials");
                StoreError::Unavailable(error)
            }
            other => StoreError::Database(other),
        }
    }
}

/// Whether MySQL refused a connection for want of one: too many connections (1040), too many
/// of this user's (1203), or RDS Proxy's timeout waiting to borrow one from its pool (9501,
/// "Timed-out waiting to acquire database connection"). The request may succeed in a moment.
fn is_out_of_connections(error: &dyn sqlx::error::DatabaseError) -> bool {
    error
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|error| matches!(error.number(), 1040 | 1203 | 9501))
        || error
            .message()
            .contains("Timed-out waiting to acquire database connection")
}

/// Whether MySQL refused the connection's credentials: error 1045, "Access denied for user"
/// (RDS Proxy answers a client whose password its secret does not hold the same way).
fn is_access_denied(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|error| error.number() == 1045)
}

/// A new account, validated and normalised, with its password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub full_name: String,
    pub age: Option<i64>,
    pub gender: String,
}

/// Where the database is and how to reach it.
#[derive(Debug, Clone)]
pub enum ConnectOptions {
    MySql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl ConnectOptions {
    /// The options a `mysql://…` or `sqlite:…` URL describes. An SQLite file is created when
    /// missing.
    pub fn from_url(url: &str) -> Result<ConnectOptions, sqlx::Error> {
        match Backend::from_url(url) {
            Some(Backend::MySql) => Ok(ConnectOptions::MySql(MySqlConnectOptions::from_str(url)?)),
            Some(Backend::Sqlite) => Ok(ConnectOptions::Sqlite(
                SqliteConnectOptions::from_str(url)?.create_if_missing(true),
            )),
            None => Err(sqlx::Error::Configuration(
                "DATABASE_URL must start with mysql:// or sqlite:".into(),
            )),
        }
    }

    /// The backend these options connect to.
    pub fn backend(&self) -> Backend {
        match self {
            ConnectOptions::MySql(_) => Backend::MySql,
            ConnectOptions::Sqlite(_) => Backend::Sqlite,
        }
    }
}

#[derive(Debug, Clone)]
enum Pool {
    MySql(ConnectionPool<MySqlConnection>),
    Sqlite(ConnectionPool<SqliteConnection>),
}

/// The pool of connections to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// Where MySQL credentials are read again when the server refuses them.
    credentials: Option<Arc<credentials::CredentialRefresh>>,
}

impl Store {
    /// A store whose connections open on first use, so that start-up does no network work.
    pub fn connect_lazy(options: ConnectOptions, settings: &PoolSettings) -> Store {
        let PoolSettings {
            max_connections,
            max_idle_connections,
            acquire_timeout,
        } = *settings;
        let pool = match options {
            ConnectOptions::MySql(options) => Pool::MySql(ConnectionPool::new(
                options,
                max_connections,
                max_idle_connections,
                acquire_timeout,
            )),
            ConnectOptions::Sqlite(options) => Pool::Sqlite(ConnectionPool::new(
                // Readers then never wait for the writer.
                options.journal_mode(SqliteJournalMode::Wal),
                max_connections,
                max_idle_connections,
                acquire_timeout,
            )),
        };
        Store {
            pool,
            credentials: None,
        }
    }

    /// This store, reading its credentials again from `source` when MySQL refuses them (a
    /// rotated secret), at most once per `min_interval` ([`MIN_REREAD_INTERVAL`] in service).
    /// Nothing changes on SQLite.
    pub fn refreshing_credentials(
        mut self,
        source: Arc<dyn CredentialSource>,
        min_interval: Duration,
    ) -> Store {
        if let Pool::MySql(_) = self.pool {
            self.credentials = Some(Arc::new(credentials::CredentialRefresh::new(
                source,
                min_interval,
            )));
        }
        self
    }

    /// A connection of the MySQL pool `pool` (this store's), with new credentials if the
    /// server refused the old ones (see [`Self::refreshing_credentials`]).
    async fn acquire_mysql<'p>(
        &self,
        pool: &'p ConnectionPool<MySqlConnection>,
    ) -> Result<pool::PooledConnection<'p, MySqlConnection>, sqlx::Error> {
        let Some(refresh) = &self.credentials else {
            return pool.acquire().await;
        };
        let generation = refresh.generation();
        match pool.acquire().await {
            // Boxed: the rare path stays out of every handler's future.
            Err(error) if is_access_denied(&error) => {
                Box::pin(refresh.after_refusal(pool, generation, error)).await
            }
            other => other,
        }
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::MySql(_) => Backend::MySql,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Brings the schema up to date; safe to run any number of times, and from several
    /// processes at once on MySQL (under sqlx's lock, over the text protocol like every other
    /// statement: see [`migrate`]). Runs on a connection of its own, closed
    /// afterwards, so the pool never holds a session that migrated.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        match &self.pool {
            Pool::MySql(pool) => {
                let mut connection = pool.connect_unpooled().await?;
                migrate::run(&MYSQL_MIGRATIONS, &mut connection).await?;
                connection.close().await?;
            }
            Pool::Sqlite(pool) => {
                let mut connection = pool.connect_unpooled().await?;
                SQLITE_MIGRATIONS.run(&mut connection).await?;
                connection.close().await?;
            }
        }
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_connection!(self, connection =>
            statement("SELECT 1").execute(connection).await.map(drop))?;
        Ok(())
    }

    /// Closes every connection; the store answers nothing afterwards.
    pub async fn close(&self) {
        match &self.pool {
            Pool::MySql(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }

    /// Inserts a user and returns its id; a taken username or email is reported as such.
    pub async fn create_user(&self, user: &NewUser) -> Result<i64, StoreError> {
        let username_key = user.username.to_ascii_lowercase();
        const INSERT: &str = "INSERT INTO users \
             (username, username_key, email, password_hash, full_name, age, gender) \
             VALUES (?, ?, ?, ?, ?, ?, ?)";
        let inserted = on_connection!(self, connection => statement(INSERT)
            .bind(&user.username)
            .bind(&username_key)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(&user.full_name)
            .bind(user.age)
            .bind(&user.gender)
            .execute(connection)
            .await
            .map(|done| done.new_row_id()));
        match inserted {
            Ok(id) => Ok(id),
            Err(error) if is_unique_violation(&error) => {
                // The constraint decided; this read only tells which of the two it was.
                let username_taken = on_connection!(self, connection =>
                    statement("SELECT 1 FROM users WHERE username_key = ?")
                        .bind(&username_key)
                        .fetch_optional::<(i64,), _>(connection)
                        .await
                        .map(|row| row.is_some()))?;
                Err(if username_taken {
                    StoreError::UsernameTaken
                } else {
                    StoreError::EmailTaken
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The id and password hash of the user with this username, compared case-insensitively.
    pub async fn find_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(i64, String)>, StoreError> {
        const SELECT: &str = "SELECT id, password_hash FROM users WHERE username_key = ?";
        let username_key = username.to_ascii_lowercase();
        let credentials = on_connection!(self, connection => statement(SELECT)
            .bind(&username_key)
            .fetch_optional(connection)
            .await)?;
        Ok(credentials)
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The id of the row an INSERT created.
trait NewRowId {
    fn new_row_id(&self) -> i64;
}

impl NewRowId for sqlx::mysql::MySqlQueryResult {
    fn new_row_id(&self) -> i64 {
        // AUTO_INCREMENT ids of a BIGINT column fit in an i64.
        self.last_insert_id() as i64
    }
}

impl NewRowId for sqlx::sqlite::SqliteQueryResult {
    fn new_row_id(&self) -> i64 {
        self.last_insert_rowid()
    }
}
