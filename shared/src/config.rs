//! Typed configuration, read once at start-up from the environment and, on Lambda, from AWS
//! Secrets Manager.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | `mysql://user:pass@host:3306/db` or `sqlite://path` | `sqlite://kv.db` (created) |
//! | `DATABASE_MAX_CONNECTIONS` | pool size | 16 locally, 1 on Lambda (an instance serves one request at a time) |
//! | `DATABASE_MAX_IDLE_CONNECTIONS` | connections kept open between requests; 0 closes each when its request ends (for many instances on one database without RDS Proxy: see the README) | `DATABASE_MAX_CONNECTIONS` |
//! | `DATABASE_ACQUIRE_TIMEOUT_SECONDS` | wait for a connection before answering 503 | 3 |
//! | `JWT_SECRET` | HMAC keys of access tokens: one, or several separated by commas (each trimmed, each at least 32 bytes); the first signs, all verify | a local-development default, on a loopback `HOST` only |
//! | `TOKEN_LIFETIME_SECONDS` | lifetime of access tokens | 3600 |
//! | `REFRESH_TOKEN_LIFETIME_SECONDS` | lifetime of refresh tokens (and of an idle session) | 2592000 (30 days) |
//! | `REFRESH_REUSE_GRACE_SECONDS` | a used refresh token presented again within this is refused without ending its session | 10 |
//! | `QUOTA_MAX_KEYS` | most entries one user may hold | 10000 |
//! | `QUOTA_MAX_BYTES` | most bytes (keys and values) one user may hold | 104857600 |
//! | `SWEEP_INTERVAL_SECONDS` | local adapter: how often expired entries are removed | 30 |
//! | `JWT_SECRET_ARN` | Lambda: Secrets Manager secret holding the JWT keys, as `JWT_SECRET` | |
//! | `LOGIN_MAX_FAILURES` | failed logins of one username within the window that throttle it (429) | 5 |
//! | `LOGIN_MAX_FAILURES_PER_ADDRESS` | failed logins from one client address within the window that throttle it | 100 |
//! | `LOGIN_WINDOW_SECONDS` | how long a failed login counts | 900 |
//! | `PASSWORD_QUEUE_MAX` | most hashes (logins, registrations, password changes) that may wait for a hashing worker; past it they answer 503 | 32 per worker (one worker per core) |
//! | `DATABASE_SECRET_ARN` | Lambda: secret with `username` and `password` (RDS's format); read again when MySQL refuses them (a rotation) | |
//! | `DATABASE_HOST`, `DATABASE_PORT`, `DATABASE_NAME` | Lambda: where the database is, with that secret | port 3306, database `kv` |
//! | `DATABASE_SSL_CA` | MySQL: PEM file of the CAs that may sign the server's certificate, besides the public roots | |
//! | `DATABASE_SSL_MODE` | MySQL: `disabled`, `preferred`, `required`, `verify_ca` or `verify_identity` | `verify_identity` with the secret or `DATABASE_SSL_CA`, else the URL's `ssl-mode` |
//! | `HTTP_HEADER_READ_TIMEOUT_SECONDS` | local adapter: longest wait for a request's whole head, from when it starts waiting (so also for a kept-alive connection's next request) | 10 |
//! | `HTTP_REQUEST_TIMEOUT_SECONDS` | local adapter: longest a request may take, reading its body included, before a 503 | 30 |
//! | `HTTP_IDLE_TIMEOUT_SECONDS` | local adapter: a connection on which no byte moves, while none of its requests is handled, is closed after this | 60 |
//! | `HTTP_MAX_CONNECTIONS` | local adapter: most connections open at once; beyond, it stops accepting until one closes (keep it under `ulimit -n`) | 1024 |
//! | `HTTP_MAX_CONCURRENT_REQUESTS` | local adapter: most requests handled at once; beyond, 503 with `Retry-After` | 512 |
//! | `HTTP_SHUTDOWN_GRACE_SECONDS` | local adapter: on shutdown, how long requests in flight may take before the connections left are dropped | 5 |
//!
//! On Lambda (`AWS_LAMBDA_FUNCTION_NAME` set) the local-development JWT key is refused, wherever
//! it stands in the list: the function does not start without real keys. The local adapter
//! accepts it only on a loopback address ([`Config::check_listen_address`]).

use std::collections::HashMap;
use std::env;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

use crate::auth::LoginThrottle;
use crate::server::ServerLimits;
use crate::store::{ConnectOptions, CredentialSource, PoolSettings, Quota};

/// The JWT key used when none is configured. Local development only: anyone can read it here.
pub const LOCAL_DEVELOPMENT_JWT_SECRET: &str =
    "local-development-only-jwt-secret-do-not-use-in-production";

/// The database used when none is configured: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://kv.db";

/// Shortest JWT key accepted, in bytes (each key, when several are configured).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Where the service runs, which decides its defaults and how strict it is about secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The local adapter, tests, docker-compose.
    Local,
    /// An AWS Lambda function.
    Lambda,
}

/// Everything the service needs to start.
#[derive(Clone)]
pub struct Config {
    pub database: ConnectOptions,
    pub pool: PoolSettings,
    /// Where `database`'s credentials came from, to be read again when MySQL refuses them.
    pub database_secret: Option<DatabaseSecret>,
    /// The HMAC keys of access tokens, never empty, none empty: the first signs, every one
    /// verifies the tokens that name it (see [`crate::auth::Tokens`]).
    pub jwt_keys: Vec<Vec<u8>>,
    pub token_lifetime: Duration,
    /// How long a refresh token stays valid.
    pub refresh_lifetime: Duration,
    /// How soon after its use a refresh token may be presented again without ending its
    /// session (a client that refreshed twice at once).
    pub refresh_reuse_grace: Duration,
    pub quota: Quota,
    /// How often the local adapter sweeps expired entries (on AWS a schedule does).
    pub sweep_interval: Duration,
    pub login_throttle: LoginThrottle,
    /// Most password hashes that may wait for a hashing worker (`PASSWORD_QUEUE_MAX`); `None`:
    /// [`crate::auth::DEFAULT_QUEUE_PER_WORKER`] per worker.
    pub password_queue_max: Option<usize>,
    /// The local adapter's timeouts and limits of connections and requests.
    pub server: ServerLimits,
}

/// Where the database is and how to pool connections to it: all that a process which signs
/// no tokens (the migration function) needs.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub database: ConnectOptions,
    pub pool: PoolSettings,
    /// Where `database`'s credentials came from, to be read again when MySQL refuses them.
    pub database_secret: Option<DatabaseSecret>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("backend", &self.database.backend())
            .field("pool", &self.pool)
            .field(
                "jwt_keys",
                &format_args!("<{} redacted>", self.jwt_keys.len()),
            )
            .field("token_lifetime", &self.token_lifetime)
            .field("quota", &self.quota)
            .field("sweep_interval", &self.sweep_interval)
            .field("login_throttle", &self.login_throttle)
            .field("server", &self.server)
            .finish()
    }
}

/// Why the service refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(
        "no JWT secret: set JWT_SECRET_ARN (or JWT_SECRET) to a secret of at least {MIN_JWT_SECRET_BYTES} bytes"
    )]
    MissingJwtSecret,
    /// On Lambda: the public local-development key is one of the configured keys.
    #[error(
        "no JWT secret: JWT key {position} of {count} is the public local-development key; set JWT_SECRET_ARN (or JWT_SECRET) to keys of your own"
    )]
    LocalDevelopmentJwtKey { position: usize, count: usize },
    /// The local adapter would serve beyond loopback with the public local-development key.
    #[error(
        "refusing to listen on {address} with the public local-development JWT key (JWT_SECRET is unset or contains it): anyone who can reach the server could sign tokens for any user; set JWT_SECRET to a key of your own (at least {MIN_JWT_SECRET_BYTES} bytes), or listen on a loopback address (HOST=127.0.0.1)"
    )]
    PublicDevelopmentJwtKey { address: std::net::SocketAddr },
    /// Key `position` (counting from 1) of `count` is too short; the key itself is never shown.
    #[error(
        "JWT key {position} of {count} is {length} bytes long; at least {MIN_JWT_SECRET_BYTES} are required"
    )]
    ShortJwtSecret {
        position: usize,
        count: usize,
        length: usize,
    },
    /// Key `position` (counting from 1) of `count` is empty: a doubled or trailing comma.
    #[error(
        "JWT key {position} of {count} is empty: separate keys with single commas, with none at either end"
    )]
    EmptyJwtKey { position: usize, count: usize },
    #[error("could not read secret {arn} from Secrets Manager: {reason}")]
    Secret { arn: String, reason: String },
}

impl Config {
    /// The configuration of the current environment: plain variables, and on Lambda the
    /// secrets their `*_ARN` variables name.
    pub async fn load(runtime: Runtime) -> Result<Config, ConfigError> {
        let secrets = secrets_client_if_needed(&["JWT_SECRET_ARN", "DATABASE_SECRET_ARN"]).await;
        Config::from_sources(runtime, &|name| env::var(name).ok(), secrets.as_ref()).await
    }

    /// The configuration `lookup` describes, fetching `*_ARN` secrets through `secrets`.
    pub async fn from_sources(
        runtime: Runtime,
        lookup: &dyn Fn(&str) -> Option<String>,
        secrets: Option<&SecretsClient>,
    ) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let jwt_keys = match (get("JWT_SECRET_ARN"), get("JWT_SECRET")) {
            (Some(arn), _) => jwt_keys(&fetch(secrets, &arn).await?)?,
            (None, Some(secret)) => jwt_keys(&secret)?,
            (None, None) if runtime == Runtime::Local => {
                tracing::warn!(
                    "JWT_SECRET is not set: signing tokens with the public local-development key"
                );
                vec![LOCAL_DEVELOPMENT_JWT_SECRET.as_bytes().to_vec()]
            }
            (None, None) => return Err(ConfigError::MissingJwtSecret),
        };
        if runtime == Runtime::Lambda
            && let Some(index) = jwt_keys
                .iter()
                .position(|key| key == LOCAL_DEVELOPMENT_JWT_SECRET.as_bytes())
        {
            return Err(ConfigError::LocalDevelopmentJwtKey {
                position: index + 1,
                count: jwt_keys.len(),
            });
        }

        let DatabaseConfig {
            database,
            pool,
            database_secret,
        } = DatabaseConfig::from_sources(runtime, lookup, secrets).await?;
        Ok(Config {
            database,
            pool,
            database_secret,
            jwt_keys,
            token_lifetime: Duration::from_secs(parse(&get, "TOKEN_LIFETIME_SECONDS", 3600)?),
            refresh_lifetime: Duration::from_secs(parse(
                &get,
                "REFRESH_TOKEN_LIFETIME_SECONDS",
                2_592_000,
            )?),
            refresh_reuse_grace: Duration::from_secs(parse(
                &get,
                "REFRESH_REUSE_GRACE_SECONDS",
                10,
            )?),
            quota: Quota {
                max_keys: parse(&get, "QUOTA_MAX_KEYS", 10_000)?,
                max_bytes: parse(&get, "QUOTA_MAX_BYTES", 104_857_600)?,
            },
            sweep_interval: Duration::from_secs(parse(&get, "SWEEP_INTERVAL_SECONDS", 30)?),
            login_throttle: LoginThrottle {
                max_failures: parse(&get, "LOGIN_MAX_FAILURES", 5)?,
                max_failures_per_address: parse(&get, "LOGIN_MAX_FAILURES_PER_ADDRESS", 100)?,
                window: login_window(&get)?,
            },
            password_queue_max: match get("PASSWORD_QUEUE_MAX") {
                Some(_) => Some(parse(&get, "PASSWORD_QUEUE_MAX", 1)?),
                None => None,
            },
            server: server_limits(&get)?,
        })
    }
}

impl Config {
    /// Refuses the public local-development JWT key (configured, or the default when
    /// `JWT_SECRET` is unset) unless the adapter listens on a loopback address: reachable from
    /// elsewhere, anyone could sign a token for any user with it.
    pub fn check_listen_address(&self, address: std::net::SocketAddr) -> Result<(), ConfigError> {
        let development_key = self
            .jwt_keys
            .iter()
            .any(|key| key == LOCAL_DEVELOPMENT_JWT_SECRET.as_bytes());
        if development_key && !address.ip().is_loopback() {
            return Err(ConfigError::PublicDevelopmentJwtKey { address });
        }
        Ok(())
    }
}

impl DatabaseConfig {
    /// The database configuration `lookup` describes, fetching `DATABASE_SECRET_ARN` through
    /// `secrets`.
    pub async fn from_sources(
        runtime: Runtime,
        lookup: &dyn Fn(&str) -> Option<String>,
        secrets: Option<&SecretsClient>,
    ) -> Result<DatabaseConfig, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let tls = DatabaseTls::from_sources(&get)?;
        let (database, database_secret) = match get("DATABASE_SECRET_ARN") {
            Some(arn) => {
                let Some(client) = secrets else {
                    return Err(fetch(None, &arn).await.unwrap_err());
                };
                let source = DatabaseSecret {
                    arn,
                    client: client.clone(),
                    settings: DATABASE_SECRET_SETTINGS
                        .iter()
                        .filter_map(|&name| Some((name, get(name)?)))
                        .collect(),
                    tls,
                };
                (source.read().await?, Some(source))
            }
            None => {
                let url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
                let options =
                    ConnectOptions::from_url(&url).map_err(|error| ConfigError::Invalid {
                        name: "DATABASE_URL",
                        reason: error.to_string(),
                    })?;
                let options = match options {
                    ConnectOptions::MySql(mysql) => ConnectOptions::MySql(tls.apply(mysql, None)),
                    sqlite => sqlite,
                };
                (options, None)
            }
        };
        let default_connections = match runtime {
            Runtime::Local => 16,
            Runtime::Lambda => 1,
        };
        let max_connections = parse(&get, "DATABASE_MAX_CONNECTIONS", default_connections)?;
        let max_idle_connections = match get("DATABASE_MAX_IDLE_CONNECTIONS") {
            None => max_connections,
            Some(text) => text
                .trim()
                .parse::<u32>()
                .map_err(|error| ConfigError::Invalid {
                    name: "DATABASE_MAX_IDLE_CONNECTIONS",
                    reason: error.to_string(),
                })?
                .min(max_connections),
        };
        Ok(DatabaseConfig {
            database,
            database_secret,
            pool: PoolSettings {
                max_connections,
                max_idle_connections,
                acquire_timeout: Duration::from_secs(parse(
                    &get,
                    "DATABASE_ACQUIRE_TIMEOUT_SECONDS",
                    3,
                )?),
            },
        })
    }
}

/// The keys of a `JWT_SECRET` value (or of the secret `JWT_SECRET_ARN` names): one, or several
/// separated by commas, each trimmed of surrounding whitespace and at least
/// [`MIN_JWT_SECRET_BYTES`] long. Errors name a key by its position, never by its content.
fn jwt_keys(text: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
    let count = text.split(',').count();
    text.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(index, key)| {
            let position = index + 1;
            if key.is_empty() {
                Err(ConfigError::EmptyJwtKey { position, count })
            } else if key.len() < MIN_JWT_SECRET_BYTES {
                Err(ConfigError::ShortJwtSecret {
                    position,
                    count,
                    length: key.len(),
                })
            } else {
                Ok(key.as_bytes().to_vec())
            }
        })
        .collect()
}

/// A Secrets Manager client when any of `arn_variables` is set, so that a process configured
/// from plain variables never loads the AWS configuration.
async fn secrets_client_if_needed(arn_variables: &[&str]) -> Option<SecretsClient> {
    if arn_variables.iter().any(|name| env::var_os(name).is_some()) {
        Some(SecretsClient::from_env().await)
    } else {
        None
    }
}

/// How long a failed login counts (`LOGIN_WINDOW_SECONDS`, 900 by default): the login
/// functions throttle with it, and the scheduled clean-up removes failures older than it.
pub fn login_window(get: &dyn Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(parse(
        get,
        "LOGIN_WINDOW_SECONDS",
        900,
    )?))
}

/// The local adapter's limits (`HTTP_*`), each defaulting to [`ServerLimits::default`].
fn server_limits(get: &dyn Fn(&str) -> Option<String>) -> Result<ServerLimits, ConfigError> {
    let default = ServerLimits::default();
    let seconds = |name, default: Duration| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(parse(get, name, default.as_secs())?))
    };
    Ok(ServerLimits {
        header_read_timeout: seconds(
            "HTTP_HEADER_READ_TIMEOUT_SECONDS",
            default.header_read_timeout,
        )?,
        request_timeout: seconds("HTTP_REQUEST_TIMEOUT_SECONDS", default.request_timeout)?,
        idle_timeout: seconds("HTTP_IDLE_TIMEOUT_SECONDS", default.idle_timeout)?,
        max_connections: parse(get, "HTTP_MAX_CONNECTIONS", default.max_connections)?,
        max_concurrent_requests: parse(
            get,
            "HTTP_MAX_CONCURRENT_REQUESTS",
            default.max_concurrent_requests,
        )?,
        shutdown_grace: seconds("HTTP_SHUTDOWN_GRACE_SECONDS", default.shutdown_grace)?,
    })
}

fn parse<T: std::str::FromStr<Err: std::fmt::Display> + PartialOrd + Default>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    let Some(text) = get(name) else {
        return Ok(default);
    };
    match text.trim().parse::<T>() {
        Ok(value) if value > T::default() => Ok(value),
        Ok(_) => Err(ConfigError::Invalid {
            name,
            reason: "must be greater than zero".into(),
        }),
        Err(error) => Err(ConfigError::Invalid {
            name,
            reason: error.to_string(),
        }),
    }
}

/// The variables that complete a database secret ([`mysql_from_secret`]), kept to read it again.
const DATABASE_SECRET_SETTINGS: [&str; 3] = ["DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME"];

/// How connections to MySQL use TLS: `DATABASE_SSL_MODE` and `DATABASE_SSL_CA`.
#[derive(Debug, Clone, Default)]
struct DatabaseTls {
    mode: Option<MySqlSslMode>,
    ca: Option<String>,
}

impl DatabaseTls {
    fn from_sources(get: &dyn Fn(&str) -> Option<String>) -> Result<DatabaseTls, ConfigError> {
        let mode = match get("DATABASE_SSL_MODE") {
            None => None,
            Some(text) => Some(
                text.trim()
                    .replace('-', "_")
                    .parse::<MySqlSslMode>()
                    .map_err(|_| ConfigError::Invalid {
                        name: "DATABASE_SSL_MODE",
                        reason: format!(
                            "{text:?} is none of disabled, preferred, required, verify_ca, \
                         verify_identity"
                        ),
                    })?,
            ),
        };
        let ca = get("DATABASE_SSL_CA").map(|path| path.trim().to_owned());
        if let Some(path) = &ca {
            // Read at every connection: a missing file would fail them all, so refuse it now.
            let pem = std::fs::read(path).map_err(|error| ConfigError::Invalid {
                name: "DATABASE_SSL_CA",
                reason: format!("cannot read {path}: {error}"),
            })?;
            if !pem
                .windows(b"-----BEGIN CERTIFICATE-----".len())
                .any(|window| window == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(ConfigError::Invalid {
                    name: "DATABASE_SSL_CA",
                    reason: format!("{path} holds no PEM certificate"),
                });
            }
        }
        if ca.is_some() && matches!(mode, Some(MySqlSslMode::Disabled)) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_SSL_MODE",
                reason: "disabled, yet DATABASE_SSL_CA is set".into(),
            });
        }
        Ok(DatabaseTls { mode, ca })
    }

    /// `options` with this TLS configuration: `DATABASE_SSL_MODE` if set, else
    /// `verify_identity` when a CA is given or `default` says so, else the options' own mode
    /// (a URL's `ssl-mode`).
    fn apply(
        &self,
        mut options: MySqlConnectOptions,
        default: Option<MySqlSslMode>,
    ) -> MySqlConnectOptions {
        let verify_by_default = self.ca.is_some().then_some(MySqlSslMode::VerifyIdentity);
        if let Some(mode) = self.mode.or(verify_by_default).or(default) {
            options = options.ssl_mode(mode);
        }
        if let Some(ca) = &self.ca {
            options = options.ssl_ca(ca);
        }
        options
    }
}

/// The secret `DATABASE_SECRET_ARN` names, and what completes it: read at start-up, and again
/// whenever MySQL refuses the credentials it gave (a rotation; see
/// [`crate::store::Store::refreshing_credentials`]).
#[derive(Debug, Clone)]
pub struct DatabaseSecret {
    arn: String,
    client: SecretsClient,
    /// `DATABASE_HOST`, `DATABASE_PORT`, `DATABASE_NAME` as they were at start-up.
    settings: HashMap<&'static str, String>,
    tls: DatabaseTls,
}

impl DatabaseSecret {
    /// The options the secret's current value gives.
    pub async fn read(&self) -> Result<ConnectOptions, ConfigError> {
        let secret = self.client.get(&self.arn).await?;
        let get = |name: &str| self.settings.get(name).cloned();
        mysql_from_secret(&secret, &self.arn, &get, &self.tls)
    }
}

impl CredentialSource for DatabaseSecret {
    fn connect_options(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ConnectOptions, String>> + Send + '_>> {
        Box::pin(async move { self.read().await.map_err(|error| error.to_string()) })
    }
}

/// MySQL options from an RDS-style secret (`username`, `password`, and optionally `host`,
/// `port`, `dbname`), completed by `DATABASE_HOST`, `DATABASE_PORT` and `DATABASE_NAME`. TLS
/// is required and verifies the server's certificate and name (`verify_identity`) against the
/// public roots and `DATABASE_SSL_CA`, unless `DATABASE_SSL_MODE` says otherwise.
fn mysql_from_secret(
    secret: &str,
    arn: &str,
    get: &dyn Fn(&str) -> Option<String>,
    tls: &DatabaseTls,
) -> Result<ConnectOptions, ConfigError> {
    #[derive(serde::Deserialize)]
    struct DatabaseSecret {
        username: String,
        password: String,
        host: Option<String>,
        port: Option<u16>,
        dbname: Option<String>,
    }
    let invalid = |reason: String| ConfigError::Secret {
        arn: arn.to_owned(),
        reason,
    };
    let secret: DatabaseSecret = serde_json::from_str(secret)
        .map_err(|_| invalid("expected JSON with username and password".into()))?;
    let host = get("DATABASE_HOST")
        .or(secret.host)
        .ok_or_else(|| invalid("no host: set DATABASE_HOST".into()))?;
    let port = match get("DATABASE_PORT") {
        Some(port) => port.parse().map_err(|_| ConfigError::Invalid {
            name: "DATABASE_PORT",
            reason: format!("{port:?} is not a port number"),
        })?,
        None => secret.port.unwrap_or(3306),
    };
    let database = get("DATABASE_NAME")
        .or(secret.dbname)
        .unwrap_or_else(|| "kv".into());
    Ok(ConnectOptions::MySql(
        tls.apply(
            MySqlConnectOptions::new()
                .host(&host)
                .port(port)
                .username(&secret.username)
                .password(&secret.password)
                .database(&database),
            Some(MySqlSslMode::VerifyIdentity),
        ),
    ))
}

/// Reads secrets from AWS Secrets Manager with the standard AWS configuration chain
/// (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL` for an emulator).
#[derive(Debug, Clone)]
pub struct SecretsClient {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsClient {
    /// A client configured from the environment.
    pub async fn from_env() -> SecretsClient {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        SecretsClient {
            client: aws_sdk_secretsmanager::Client::new(&config),
        }
    }

    /// The text of the secret `arn` (an ARN or a name).
    pub async fn get(&self, arn: &str) -> Result<String, ConfigError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|error| ConfigError::Secret {
                arn: arn.to_owned(),
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&error).to_string(),
            })?;
        output.secret_string.ok_or_else(|| ConfigError::Secret {
            arn: arn.to_owned(),
            reason: "the secret has no string value".into(),
        })
    }
}

async fn fetch(secrets: Option<&SecretsClient>, arn: &str) -> Result<String, ConfigError> {
    match secrets {
        Some(client) => client.get(arn).await,
        None => Err(ConfigError::Secret {
            arn: arn.to_owned(),
            reason: "no Secrets Manager client".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;
    use std::collections::HashMap;

    async fn config(runtime: Runtime, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Config::from_sources(runtime, &|name| vars.get(name).cloned(), None).await
    }

    #[tokio::test]
    async fn local_defaults_need_nothing() {
        let config = config(Runtime::Local, &[]).await.unwrap();
        assert_eq!(config.database.backend(), Backend::Sqlite);
        assert_eq!(
            config.jwt_keys,
            [LOCAL_DEVELOPMENT_JWT_SECRET.as_bytes().to_vec()]
        );
        assert_eq!(config.token_lifetime, Duration::from_secs(3600));
        assert_eq!(config.pool.max_connections, 16);
        assert_eq!(
            config.quota,
            Quota {
                max_keys: 10_000,
                max_bytes: 104_857_600
            }
        );
        assert_eq!(config.sweep_interval, Duration::from_secs(30));
        assert_eq!(config.login_throttle, LoginThrottle::default());
        assert_eq!(config.login_throttle.max_failures, 5);
        assert_eq!(config.login_throttle.max_failures_per_address, 100);
        assert_eq!(config.login_throttle.window, Duration::from_secs(900));
        assert_eq!(
            config.server,
            ServerLimits {
                header_read_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
                max_connections: 1024,
                max_concurrent_requests: 512,
                shutdown_grace: Duration::from_secs(5),
            }
        );
    }

    #[tokio::test]
    async fn variables_are_read() {
        let config = config(
            Runtime::Local,
            &[
                ("DATABASE_URL", "mysql://kv:pw@127.0.0.1:3306/kv"),
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("TOKEN_LIFETIME_SECONDS", "60"),
                ("DATABASE_MAX_CONNECTIONS", "4"),
                ("QUOTA_MAX_KEYS", "3"),
                ("QUOTA_MAX_BYTES", "1000"),
                ("SWEEP_INTERVAL_SECONDS", "5"),
                ("LOGIN_MAX_FAILURES", "7"),
                ("LOGIN_MAX_FAILURES_PER_ADDRESS", "30"),
                ("LOGIN_WINDOW_SECONDS", "60"),
                ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "2"),
                ("HTTP_REQUEST_TIMEOUT_SECONDS", "3"),
                ("HTTP_IDLE_TIMEOUT_SECONDS", "4"),
                ("HTTP_MAX_CONNECTIONS", "50"),
                ("HTTP_MAX_CONCURRENT_REQUESTS", "6"),
                ("HTTP_SHUTDOWN_GRACE_SECONDS", "7"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(config.database.backend(), Backend::MySql);
        assert_eq!(
            config.jwt_keys,
            [b"0123456789abcdef0123456789abcdef".to_vec()]
        );
        assert_eq!(config.token_lifetime, Duration::from_secs(60));
        assert_eq!(config.pool.max_connections, 4);
        assert_eq!(
            config.quota,
            Quota {
                max_keys: 3,
                max_bytes: 1000
            }
        );
        assert_eq!(config.sweep_interval, Duration::from_secs(5));
        assert_eq!(
            config.login_throttle,
            LoginThrottle {
                max_failures: 7,
                max_failures_per_address: 30,
                window: Duration::from_secs(60),
            }
        );
        assert_eq!(
            config.server,
            ServerLimits {
                header_read_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(3),
                idle_timeout: Duration::from_secs(4),
                max_connections: 50,
                max_concurrent_requests: 6,
                shutdown_grace: Duration::from_secs(7),
            }
        );
    }

    #[tokio::test]
    async fn lambda_refuses_to_start_without_a_real_secret() {
        assert!(matches!(
            config(Runtime::Lambda, &[]).await,
            Err(ConfigError::MissingJwtSecret)
        ));
        let error = config(
            Runtime::Lambda,
            &[("JWT_SECRET", LOCAL_DEVELOPMENT_JWT_SECRET)],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::LocalDevelopmentJwtKey {
                    position: 1,
                    count: 1
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().starts_with("no JWT secret"), "{error}");
        // Anywhere in the list.
        let keys = format!("{},{LOCAL_DEVELOPMENT_JWT_SECRET}", "k".repeat(32));
        assert!(matches!(
            config(Runtime::Lambda, &[("JWT_SECRET", &keys)]).await,
            Err(ConfigError::LocalDevelopmentJwtKey {
                position: 2,
                count: 2
            })
        ));
        assert!(matches!(
            config(Runtime::Lambda, &[("JWT_SECRET", "too-short")]).await,
            Err(ConfigError::ShortJwtSecret {
                position: 1,
                count: 1,
                length: 9
            })
        ));
        let lambda = config(Runtime::Lambda, &[("JWT_SECRET", &"k".repeat(32))])
            .await
            .unwrap();
        assert_eq!(lambda.pool.max_connections, 1);
        assert_eq!(lambda.pool.max_idle_connections, 1);
    }

    #[tokio::test]
    async fn idle_connections_default_to_the_pool_size_and_may_be_none() {
        let idle = async |vars: &[(&str, &str)]| {
            config(Runtime::Local, vars)
                .await
                .map(|config| config.pool.max_idle_connections)
        };
        assert_eq!(idle(&[]).await.unwrap(), 16);
        assert_eq!(
            idle(&[("DATABASE_MAX_IDLE_CONNECTIONS", "0")])
                .await
                .unwrap(),
            0
        );
        let capped = [
            ("DATABASE_MAX_CONNECTIONS", "2"),
            ("DATABASE_MAX_IDLE_CONNECTIONS", "5"),
        ];
        assert_eq!(idle(&capped).await.unwrap(), 2);
        let error = idle(&[("DATABASE_MAX_IDLE_CONNECTIONS", "none")])
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("DATABASE_MAX_IDLE_CONNECTIONS"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_development_key_is_served_on_loopback_only() {
        let own_key = "k".repeat(32);
        let with_development_key = format!("{own_key},{LOCAL_DEVELOPMENT_JWT_SECRET}");
        for (vars, address, refused) in [
            (vec![], "127.0.0.1:3000", false),
            (vec![], "[::1]:3000", false),
            (vec![], "127.3.2.1:3000", false),
            (vec![], "0.0.0.0:3000", true),
            (vec![], "[::]:3000", true),
            (vec![], "192.168.1.20:3000", true),
            (
                vec![("JWT_SECRET", LOCAL_DEVELOPMENT_JWT_SECRET)],
                "0.0.0.0:3000",
                true,
            ),
            (
                vec![("JWT_SECRET", with_development_key.as_str())],
                "0.0.0.0:80",
                true,
            ),
            (
                vec![("JWT_SECRET", own_key.as_str())],
                "0.0.0.0:3000",
                false,
            ),
            (
                vec![("JWT_SECRET", own_key.as_str())],
                "127.0.0.1:3000",
                false,
            ),
        ] {
            let config = config(Runtime::Local, &vars).await.unwrap();
            let address: std::net::SocketAddr = address.parse().unwrap();
            match config.check_listen_address(address) {
                Ok(()) => assert!(!refused, "{vars:?} on {address} was accepted"),
                Err(error) => {
                    assert!(refused, "{vars:?} on {address}: {error}");
                    let message = error.to_string();
                    assert!(
                        message.contains("public local-development JWT key")
                            && message.contains("JWT_SECRET")
                            && message.contains(&address.to_string()),
                        "{message}"
                    );
                    assert!(!message.contains(LOCAL_DEVELOPMENT_JWT_SECRET), "{message}");
                }
            }
        }
    }

    #[tokio::test]
    async fn several_keys_are_read_in_order_and_trimmed() {
        let new = "n".repeat(32);
        let old = "o".repeat(40);
        for text in [format!("{new},{old}"), format!("  {new} ,\n\t{old}\n")] {
            let config = config(Runtime::Lambda, &[("JWT_SECRET", &text)])
                .await
                .unwrap();
            assert_eq!(config.jwt_keys, [new.as_bytes(), old.as_bytes()]);
        }
        // A single key is trimmed too.
        let config = config(Runtime::Local, &[("JWT_SECRET", &format!(" {new}\n"))])
            .await
            .unwrap();
        assert_eq!(config.jwt_keys, [new.as_bytes()]);
    }

    #[tokio::test]
    async fn every_key_is_checked_and_named_by_position_only() {
        let good = "g".repeat(32);
        let short = "s".repeat(31);
        for (text, expected) in [
            (format!("{good},{short}"), (2, 2, Some(31))),
            (format!("{short},{good},{good}"), (1, 3, Some(31))),
            (format!("{good},"), (2, 2, None)),
            (format!("{good},,{good}"), (2, 3, None)),
            (format!(",{good}"), (1, 2, None)),
            (format!("{good}, \t ,{good}"), (2, 3, None)),
        ] {
            let error = config(Runtime::Local, &[("JWT_SECRET", &text)])
                .await
                .unwrap_err();
            match (&error, expected) {
                (
                    ConfigError::ShortJwtSecret {
                        position,
                        count,
                        length,
                    },
                    (p, c, Some(l)),
                ) => assert_eq!((*position, *count, *length), (p, c, l), "{text}"),
                (ConfigError::EmptyJwtKey { position, count }, (p, c, None)) => {
                    assert_eq!((*position, *count), (p, c), "{text}")
                }
                _ => panic!("{text}: unexpected {error:?}"),
            }
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains(&good) && !shown.contains(&short),
                "a key leaked: {shown}"
            );
        }
    }

    #[tokio::test]
    async fn keys_are_not_shown_by_debug() {
        let keys = format!("{},{}", "a".repeat(32), "b".repeat(32));
        let config = config(Runtime::Local, &[("JWT_SECRET", &keys)])
            .await
            .unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("aaaa") && !shown.contains("bbbb"),
            "{shown}"
        );
        assert!(shown.contains("<2 redacted>"), "{shown}");
    }

    #[tokio::test]
    async fn bad_values_are_named() {
        let error = config(Runtime::Local, &[("TOKEN_LIFETIME_SECONDS", "soon")])
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("TOKEN_LIFETIME_SECONDS"),
            "{error}"
        );
        let error = config(Runtime::Local, &[("DATABASE_URL", "postgres://x")])
            .await
            .unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL"), "{error}");
        let error = config(Runtime::Local, &[("DATABASE_MAX_CONNECTIONS", "0")])
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("DATABASE_MAX_CONNECTIONS"),
            "{error}"
        );
        for (name, value) in [
            ("LOGIN_MAX_FAILURES", "0"),
            ("LOGIN_MAX_FAILURES", "-1"),
            ("LOGIN_MAX_FAILURES", "five"),
            ("LOGIN_MAX_FAILURES_PER_ADDRESS", "0"),
            ("LOGIN_MAX_FAILURES_PER_ADDRESS", "1.5"),
            ("LOGIN_WINDOW_SECONDS", "0"),
            ("LOGIN_WINDOW_SECONDS", "-900"),
            ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("HTTP_REQUEST_TIMEOUT_SECONDS", "soon"),
            ("HTTP_IDLE_TIMEOUT_SECONDS", "-1"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("HTTP_MAX_CONCURRENT_REQUESTS", "lots"),
            ("HTTP_SHUTDOWN_GRACE_SECONDS", "0"),
        ] {
            let error = config(Runtime::Local, &[(name, value)]).await.unwrap_err();
            assert!(error.to_string().contains(name), "{name}={value}: {error}");
        }
    }

    #[tokio::test]
    async fn the_password_queue_bound_is_read() {
        let default = config(Runtime::Local, &[]).await.unwrap();
        assert_eq!(default.password_queue_max, None);
        let set = config(Runtime::Local, &[("PASSWORD_QUEUE_MAX", "7")])
            .await
            .unwrap();
        assert_eq!(set.password_queue_max, Some(7));
        for value in ["0", "-1", "many"] {
            let error = config(Runtime::Local, &[("PASSWORD_QUEUE_MAX", value)])
                .await
                .unwrap_err();
            assert!(error.to_string().contains("PASSWORD_QUEUE_MAX"), "{value}");
        }
    }

    /// The SSL mode and CA of the MySQL options `vars` give (with a database secret when
    /// `secret` is set, else from `DATABASE_URL`).
    fn mysql_tls(secret: bool, vars: &[(&str, &str)]) -> Result<MySqlConnectOptions, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let get = |name: &str| vars.get(name).cloned();
        let tls = DatabaseTls::from_sources(&get)?;
        let options = if secret {
            let get = |name: &str| (name == "DATABASE_HOST").then(|| "db.example".to_owned());
            mysql_from_secret(r#"{"username":"u","password":"p"}"#, "arn:db", &get, &tls)?
        } else {
            let url = vars
                .get("DATABASE_URL")
                .cloned()
                .unwrap_or_else(|| "mysql://u:p@db.example/kv".into());
            match ConnectOptions::from_url(&url).unwrap() {
                ConnectOptions::MySql(mysql) => ConnectOptions::MySql(tls.apply(mysql, None)),
                other => other,
            }
        };
        match options {
            ConnectOptions::MySql(options) => Ok(options),
            ConnectOptions::Sqlite(_) => panic!("expected MySQL options"),
        }
    }

    fn ca_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn a_database_secret_verifies_the_server_by_default() {
        let options = mysql_tls(true, &[]).unwrap();
        assert!(matches!(
            options.get_ssl_mode(),
            MySqlSslMode::VerifyIdentity
        ));
        // verify_ca checks the chain, not the name; a test server without TLS: disabled.
        let options = mysql_tls(true, &[("DATABASE_SSL_MODE", "verify_ca")]).unwrap();
        assert!(matches!(options.get_ssl_mode(), MySqlSslMode::VerifyCa));
        let options = mysql_tls(true, &[("DATABASE_SSL_MODE", "DISABLED")]).unwrap();
        assert!(matches!(options.get_ssl_mode(), MySqlSslMode::Disabled));
        let options = mysql_tls(true, &[("DATABASE_SSL_MODE", "verify-identity")]).unwrap();
        assert!(matches!(
            options.get_ssl_mode(),
            MySqlSslMode::VerifyIdentity
        ));
    }

    #[test]
    fn a_ca_bundle_makes_any_mysql_connection_verify_the_server() {
        let ca = ca_file("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        let path = ca.path().to_str().unwrap();
        for secret in [true, false] {
            let options = mysql_tls(secret, &[("DATABASE_SSL_CA", path)]).unwrap();
            assert!(
                matches!(options.get_ssl_mode(), MySqlSslMode::VerifyIdentity),
                "secret: {secret}"
            );
            assert!(format!("{options:?}").contains(path), "{options:?}");
        }
        let options = mysql_tls(
            false,
            &[
                ("DATABASE_SSL_CA", path),
                ("DATABASE_SSL_MODE", "verify_ca"),
            ],
        )
        .unwrap();
        assert!(matches!(options.get_ssl_mode(), MySqlSslMode::VerifyCa));
        // Without either, a URL keeps its own ssl-mode (sqlx's default: preferred).
        let options = mysql_tls(false, &[]).unwrap();
        assert!(matches!(options.get_ssl_mode(), MySqlSslMode::Preferred));
        let url = "mysql://u:p@db.example/kv?ssl-mode=required";
        let options = mysql_tls(false, &[("DATABASE_URL", url)]).unwrap();
        assert!(matches!(options.get_ssl_mode(), MySqlSslMode::Required));
    }

    #[test]
    fn a_bad_ssl_setting_is_refused_at_start_up() {
        let not_pem = ca_file("not a certificate");
        let missing = format!("{}.missing", not_pem.path().display());
        let pem = ca_file("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        for (vars, name) in [
            (
                vec![("DATABASE_SSL_CA", missing.as_str())],
                "DATABASE_SSL_CA",
            ),
            (
                vec![("DATABASE_SSL_CA", not_pem.path().to_str().unwrap())],
                "DATABASE_SSL_CA",
            ),
            (vec![("DATABASE_SSL_MODE", "verify")], "DATABASE_SSL_MODE"),
            (
                vec![
                    ("DATABASE_SSL_CA", pem.path().to_str().unwrap()),
                    ("DATABASE_SSL_MODE", "disabled"),
                ],
                "DATABASE_SSL_MODE",
            ),
        ] {
            let error = mysql_tls(true, &vars).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Invalid { name: n, .. } if *n == name),
                "{vars:?}: {error}"
            );
        }
    }

    #[test]
    fn database_secrets_in_rds_format_are_read() {
        let vars: HashMap<&str, &str> = [("DATABASE_HOST", "proxy.example")].into();
        let get = |name: &str| vars.get(name).map(|value| value.to_string());
        let options = mysql_from_secret(
            r#"{"username":"admin","password":"p@ss:w/rd"}"#,
            "arn:db",
            &get,
            &DatabaseTls::default(),
        )
        .unwrap();
        let ConnectOptions::MySql(options) = options else {
            panic!("expected MySQL options");
        };
        assert_eq!(options.get_host(), "proxy.example");
        assert_eq!(options.get_port(), 3306);
        assert_eq!(options.get_username(), "admin");
        assert_eq!(options.get_database(), Some("kv"));
        assert!(matches!(
            options.get_ssl_mode(),
            MySqlSslMode::VerifyIdentity
        ));

        let error =
            mysql_from_secret("not json", "arn:db", &get, &DatabaseTls::default()).unwrap_err();
        assert!(
            !error.to_string().contains("not json"),
            "the secret must not leak"
        );
    }
}
