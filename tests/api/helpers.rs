//! `spawn_app`: the real local adapter on a random port, over a fresh database of its own.

use std::collections::HashMap;
use std::time::Duration;

use kv_shared::AppState;
use kv_shared::config::{Config, Runtime};
use kv_shared::server::ServerLimits;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection, MySqlPool, Row, SqlitePool};
use tokio::sync::oneshot;

/// The JWT key of every test app, unless its settings say otherwise.
pub const TEST_JWT_SECRET: &str = "integration-test-jwt-secret-of-at-least-32-bytes";
/// A password that meets the contract's rules.
pub const PASSWORD: &str = "Str0ng!Passw0rd";

/// Which database a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// Declares each listed test twice, `sqlite::NAME` and `mysql::NAME`: each calls
/// `NAME(app)` with a fresh app on that backend (with `settings = EXPR =>` first, an app with
/// those settings). The MySQL variant needs
/// `KV_TEST_MYSQL_URL` (which `scripts/test.sh` sets); without it the test is skipped
/// locally and fails under CI.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        $crate::helpers::on_both_backends!(
            settings = $crate::helpers::TestSettings::default() => $($test),+
        );
    };
    (settings = $settings:expr => $($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let app = $crate::helpers::spawn_app_with(
                        $crate::helpers::Backend::Sqlite,
                        $settings,
                    )
                    .await;
                    super::$test(app.expect("SQLite is always available")).await;
                }
            )+
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let app = $crate::helpers::spawn_app_with(
                        $crate::helpers::Backend::MySql,
                        $settings,
                    )
                    .await;
                    if let Some(app) = app {
                        super::$test(app).await;
                    }
                }
            )+
        }
    };
}
pub(crate) use on_both_backends;

/// A running app and a direct line to its database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _sqlite_dir: Option<tempfile::TempDir>,
    /// The MySQL server URL and the name of the database this app was given, dropped with it.
    mysql_database: Option<(String, String)>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `ETag` header, which must be a strong tag of at most 64 characters.
    #[track_caller]
    pub fn etag(&self) -> String {
        let tag = self
            .headers
            .get("etag")
            .unwrap_or_else(|| panic!("an ETag header: {self:?}"))
            .to_str()
            .expect("an ASCII ETag")
            .to_owned();
        assert!(
            tag.len() <= 64 && tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
            "a strong entity tag: {tag}"
        );
        tag
    }

    /// Asserts the contract's error envelope: status, code and message, and nothing else.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, message: &str) {
        assert_eq!(self.status.as_u16(), status, "{:?}", self.body);
        assert_eq!(
            self.body,
            json!({"status": "error", "code": code, "message": message})
        );
    }

    /// Asserts the contract's error envelope with the code's usual message.
    #[track_caller]
    pub fn assert_code(&self, status: u16, code: &str) {
        self.assert_error(status, code, message_of(code));
    }

    /// Asserts a 200 with exactly this body.
    #[track_caller]
    pub fn assert_success(&self, body: Value) {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        assert_eq!(self.body, body);
    }
}

/// The contract's message for each code whose message never varies.
pub fn message_of(code: &str) -> &'static str {
    match code {
        "INVALID_REQUEST" => {
            "Invalid request. The request body must be a JSON object with the documented fields."
        }
        "PAYLOAD_TOO_LARGE" => "The request body is too large.",
        "NOT_FOUND" => "The requested resource does not exist.",
        "METHOD_NOT_ALLOWED" => "The method is not allowed for this resource.",
        "SERVICE_UNAVAILABLE" => "The service is temporarily unavailable. Please try again later.",
        "INVALID_USERNAME" => {
            "The provided username is not valid. Use 3 to 64 letters, digits, '_', '.' or '-'."
        }
        "INVALID_EMAIL" => "The provided email address is not valid.",
        "INVALID_PASSWORD" => {
            "The provided password does not meet the requirements. Password must be at least 8 characters long and contain a mix of uppercase and lowercase letters, numbers, and special characters."
        }
        "INVALID_AGE" => "Invalid age value. Age must be a positive integer.",
        "GENDER_REQUIRED" => {
            "Gender field is required. Please specify the gender (e.g., male, female, non-binary)."
        }
        "USERNAME_EXISTS" => {
            "The provided username is already taken. Please choose a different username."
        }
        "EMAIL_EXISTS" => {
            "The provided email is already registered. Please use a different email address."
        }
        "MISSING_FIELDS" => "Missing fields. Please provide both username and password.",
        "INVALID_CREDENTIALS" => {
            "Invalid credentials. The provided username or password is incorrect."
        }
        "INVALID_TOKEN" => "Invalid access token provided.",
        "INVALID_KEY" => "The provided key is not valid or missing.",
        "INVALID_VALUE" => "The provided value is not valid or missing.",
        "KEY_EXISTS" => {
            "The provided key already exists in the database. To update an existing key, use the update API."
        }
        "KEY_NOT_FOUND" => "The provided key does not exist in the database.",
        "INVALID_TTL" => {
            "The provided ttl_seconds is not valid. Use an integer from 1 to 31536000."
        }
        "PRECONDITION_FAILED" => "The key has been changed since the given entity tag.",
        "QUOTA_EXCEEDED" => "The storage quota of this account is exhausted.",
        "INVALID_QUERY" => "The query parameters are not valid.",
        "TOO_MANY_ATTEMPTS" => "Too many failed login attempts. Please try again later.",
        other => panic!("no fixed message for {other}"),
    }
}

/// Settings a test may change.
#[derive(Debug, Clone)]
pub struct TestSettings {
    pub token_lifetime_seconds: u64,
    pub quota_max_keys: i64,
    pub quota_max_bytes: i64,
    pub sweep_interval_seconds: u64,
    pub refresh_lifetime_seconds: u64,
    pub refresh_reuse_grace_seconds: u64,
    /// The app's `JWT_SECRET`: one key, or several separated by commas.
    pub jwt_secret: String,
    pub login_max_failures: u32,
    pub login_max_failures_per_address: u32,
    pub login_window_seconds: u64,
    /// `PASSWORD_QUEUE_MAX`, when set.
    pub password_queue_max: Option<usize>,
    /// Data of a database that was filled before an upgrade: SQL run on the schema of an
    /// earlier migration, before the others apply.
    pub schema_seed: Option<SchemaSeed>,
    /// The server's timeouts and limits, when not those of the default configuration.
    pub server_limits: Option<ServerLimits>,
}

/// SQL run on the schema as `migration` (a version, such as [`FIRST_MIGRATION`]) left it.
#[derive(Debug, Clone)]
pub struct SchemaSeed {
    pub migration: i64,
    pub sql: String,
}

impl Default for TestSettings {
    fn default() -> Self {
        TestSettings {
            token_lifetime_seconds: 3600,
            quota_max_keys: 10_000,
            quota_max_bytes: 104_857_600,
            sweep_interval_seconds: 30,
            refresh_lifetime_seconds: 2_592_000,
            refresh_reuse_grace_seconds: 10,
            jwt_secret: TEST_JWT_SECRET.to_owned(),
            login_max_failures: 5,
            login_max_failures_per_address: 100,
            login_window_seconds: 900,
            password_queue_max: None,
            schema_seed: None,
            server_limits: None,
        }
    }
}

/// The app on a fresh database of `backend`; `None` when MySQL is not configured outside CI.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, TestSettings::default()).await
}

/// Like [`spawn_app`], with settings.
pub async fn spawn_app_with(backend: Backend, settings: TestSettings) -> Option<TestApp> {
    match backend {
        Backend::Sqlite => Some(spawn_app_on_sqlite(settings).await),
        Backend::MySql => {
            // libtest names each test's thread after the test.
            let test = std::thread::current()
                .name()
                .unwrap_or("a MySQL test")
                .to_owned();
            let server = test_support::mysql_server_url(&test)?;
            Some(spawn_app_on_mysql(&server, settings).await)
        }
    }
}

/// The app on a fresh SQLite file in a temporary directory.
async fn spawn_app_on_sqlite(settings: TestSettings) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("kv.db").display());
    let options = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .expect("a valid SQLite URL")
        .create_if_missing(true);
    let db = TestDatabase::Sqlite(SqlitePool::connect_lazy_with(options));
    start(url, db, Some(dir), settings).await
}

/// The app on a fresh database of the MySQL server at `server` (a URL without a database).
pub async fn spawn_app_on_mysql(server: &str, settings: TestSettings) -> TestApp {
    let name = test_support::create_mysql_database(server, "kv_test").await;
    let url = format!("{server}/{name}");
    let db = TestDatabase::MySql(MySqlPool::connect_lazy(&url).expect("a valid MySQL URL"));
    let mut app = start(url, db, None, settings).await;
    app.mysql_database = Some((server.to_owned(), name));
    app
}

async fn start(
    database_url: String,
    db: TestDatabase,
    sqlite_dir: Option<tempfile::TempDir>,
    settings: TestSettings,
) -> TestApp {
    let mut vars = HashMap::from([
        ("DATABASE_URL".to_owned(), database_url),
        ("JWT_SECRET".to_owned(), settings.jwt_secret.clone()),
        (
            "TOKEN_LIFETIME_SECONDS".to_owned(),
            settings.token_lifetime_seconds.to_string(),
        ),
        (
            "QUOTA_MAX_KEYS".to_owned(),
            settings.quota_max_keys.to_string(),
        ),
        (
            "QUOTA_MAX_BYTES".to_owned(),
            settings.quota_max_bytes.to_string(),
        ),
        (
            "SWEEP_INTERVAL_SECONDS".to_owned(),
            settings.sweep_interval_seconds.to_string(),
        ),
        (
            "REFRESH_TOKEN_LIFETIME_SECONDS".to_owned(),
            settings.refresh_lifetime_seconds.to_string(),
        ),
        (
            "REFRESH_REUSE_GRACE_SECONDS".to_owned(),
            settings.refresh_reuse_grace_seconds.to_string(),
        ),
        (
            "LOGIN_MAX_FAILURES".to_owned(),
            settings.login_max_failures.to_string(),
        ),
        (
            "LOGIN_MAX_FAILURES_PER_ADDRESS".to_owned(),
            settings.login_max_failures_per_address.to_string(),
        ),
        (
            "LOGIN_WINDOW_SECONDS".to_owned(),
            settings.login_window_seconds.to_string(),
        ),
    ]);
    if let Some(queue_max) = settings.password_queue_max {
        vars.insert("PASSWORD_QUEUE_MAX".to_owned(), queue_max.to_string());
    }
    let config = Config::from_sources(Runtime::Local, &|name| vars.get(name).cloned(), None)
        .await
        .expect("a valid test configuration");
    let state = AppState::new(&config);
    if let Some(seed) = &settings.schema_seed {
        db.seed_schema(seed).await;
    }
    state.store.migrate().await.expect("migrations apply");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    let server = tokio::spawn(kv_shared::server::serve(
        listener,
        state.clone(),
        config.sweep_interval,
        settings.server_limits.unwrap_or(config.server),
        async {
            let _ = shutdown_signal.await;
        },
    ));

    TestApp {
        address,
        // Bounded, so that a hang fails the test instead of stalling the run.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client"),
        db,
        state,
        shutdown: Some(shutdown),
        server: Some(server),
        _sqlite_dir: sqlite_dir,
        mysql_database: None,
    }
}

impl TestApp {
    /// The URL of the app's MySQL database, when it runs on MySQL.
    pub fn mysql_url(&self) -> Option<String> {
        let (server, name) = self.mysql_database.as_ref()?;
        Some(format!("{server}/{name}"))
    }

    /// Shuts the server down as a signal would, and waits until it has stopped: requests
    /// finished, the sweep task ended, the pool closed.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task ends without a panic")
                .expect("the server stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some((server, name)) = self.mysql_database.take() {
            if std::thread::panicking() {
                eprintln!("kept the database {name} of the failed test, for a look");
            } else if let Err(error) = drop_mysql_database(server, &name) {
                eprintln!("could not drop the test database {name}: {error}");
            }
        }
    }
}

/// Drops a test's MySQL database, within 10 s. `Drop` cannot await, so this runs on a thread
/// and a runtime of its own.
fn drop_mysql_database(server: String, name: &str) -> Result<(), String> {
    let statement = format!("DROP DATABASE IF EXISTS `{name}`");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        runtime.block_on(async {
            let drop_it = async {
                let mut admin = MySqlConnection::connect(&server).await?;
                // A lock held by a connection left in a transaction waits 5 s, not a year.
                admin.execute("SET SESSION lock_wait_timeout = 5").await?;
                admin.execute(AssertSqlSafe(statement)).await?;
                admin.close().await
            };
            match tokio::time::timeout(Duration::from_secs(10), drop_it).await {
                Ok(result) => result.map_err(|error| error.to_string()),
                Err(_) => Err("timed out".to_owned()),
            }
        })
    })
    .join()
    .map_err(|_| "the dropping thread panicked".to_owned())?
}

impl TestApp {
    /// Sends a request; `body` is sent as JSON when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("the app answers")).await
    }

    /// Sends `body` as it is, with a JSON content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.expect("the app answers")).await
    }

    /// Sends a request with extra headers; `body` is sent as JSON when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("the app answers")).await
    }

    /// `GET /data/list` with `query` (already encoded, without the `?`).
    pub async fn list(&self, token: &str, query: &str) -> Answer {
        self.send(
            Method::GET,
            &format!("/data/list?{query}"),
            token,
            &[],
            None,
        )
        .await
    }

    pub async fn register(&self, body: Value) -> Answer {
        self.request(Method::POST, "/auth/register", None, Some(body))
            .await
    }

    pub async fn token(&self, body: Value) -> Answer {
        self.request(Method::POST, "/auth/token", None, Some(body))
            .await
    }

    /// Registers `username` with valid details and returns its user id.
    pub async fn register_user(&self, username: &str) -> i64 {
        let answer = self.register(registration(username)).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.body["data"]["user_id"]
            .as_str()
            .expect("user_id is a string")
            .parse()
            .expect("user_id is numeric")
    }

    /// Registers `username` and returns a token for it.
    pub async fn user_with_token(&self, username: &str) -> (i64, String) {
        let user_id = self.register_user(username).await;
        (user_id, self.login(username).await)
    }

    /// A new session of `username`: its access token and its refresh token.
    pub async fn login_session(&self, username: &str) -> (String, String) {
        let answer = self
            .token(json!({"username": username, "password": PASSWORD}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let data = &answer.body["data"];
        (
            data["access_token"].as_str().expect("a token").to_owned(),
            data["refresh_token"]
                .as_str()
                .expect("a refresh token")
                .to_owned(),
        )
    }

    /// `POST /auth/refresh` with this refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.request(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// `POST /auth/logout` with this access token and body.
    pub async fn logout(&self, token: &str, body: Option<Value>) -> Answer {
        self.request(Method::POST, "/auth/logout", Some(token), body)
            .await
    }

    /// `POST /auth/password` with this access token and body.
    pub async fn change_password(&self, token: &str, body: Value) -> Answer {
        self.request(Method::POST, "/auth/password", Some(token), Some(body))
            .await
    }

    /// A fresh access token for `username`.
    pub async fn login(&self, username: &str) -> String {
        let answer = self
            .token(json!({"username": username, "password": PASSWORD}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.body["data"]["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    pub async fn store(&self, token: &str, key: &str, value: &str) -> Answer {
        self.request(
            Method::POST,
            "/data/store",
            Some(token),
            Some(json!({"keyN": key, "valueN": value})),
        )
        .await
    }

    pub async fn retrieve(&self, token: &str, key: &str) -> Answer {
        self.request(
            Method::GET,
            &format!("/data/retrieve/{}", encode(key)),
            Some(token),
            None,
        )
        .await
    }

    pub async fn update(&self, token: &str, key: &str, value: &str) -> Answer {
        self.request(
            Method::PUT,
            &format!("/data/update/{}", encode(key)),
            Some(token),
            Some(json!({"valueN": value})),
        )
        .await
    }

    pub async fn delete(&self, token: &str, key: &str) -> Answer {
        self.request(
            Method::DELETE,
            &format!("/data/delete/{}", encode(key)),
            Some(token),
            None,
        )
        .await
    }
}

/// A valid registration body for `username`.
pub fn registration(username: &str) -> Value {
    json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "password": PASSWORD,
        "full_name": "Test User",
        "age": 30,
        "gender": "female",
    })
}

/// `key` as one percent-encoded path segment.
pub fn encode(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn read(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    if status == StatusCode::NOT_MODIFIED {
        let bytes = response.bytes().await.expect("a body");
        assert!(bytes.is_empty(), "a 304 has no body: {bytes:?}");
        assert!(!headers.contains_key("content-type"), "{headers:?}");
        return Answer {
            status,
            headers,
            body: Value::Null,
        };
    }
    assert_eq!(
        headers
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("application/json"),
        "every answer is JSON (status {status})"
    );
    let bytes = response.bytes().await.expect("a body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("the body is JSON: {}", String::from_utf8_lossy(&bytes)));
    Answer {
        status,
        headers,
        body,
    }
}

/// The database of a test app, for checking what the API did to it.
pub enum TestDatabase {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
}

/// A user row as stored.
#[derive(Debug)]
pub struct StoredUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub full_name: String,
    pub age: Option<i64>,
    pub gender: String,
}

macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            TestDatabase::Sqlite($pool) => $body,
            TestDatabase::MySql($pool) => $body,
        }
    };
}

/// The version of the first migration of both backends: the schema before issue 11.
pub const FIRST_MIGRATION: i64 = 20261126000001;

impl TestDatabase {
    /// Migrates a fresh database up to the seed's migration only, and runs the seed's SQL on it.
    async fn seed_schema(&self, seed: &SchemaSeed) {
        let directory = match self {
            TestDatabase::Sqlite(_) => "migrations/sqlite",
            TestDatabase::MySql(_) => "migrations/mysql",
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(directory);
        let migrator = sqlx::migrate::Migrator::new(path)
            .await
            .expect("the migrations can be read");
        on_db!(self, pool => {
            let mut connection = pool.acquire().await.expect("a connection");
            migrator
                .run_to(seed.migration, &mut *connection)
                .await
                .expect("the migrations up to the seed's apply");
            sqlx::raw_sql(AssertSqlSafe(seed.sql.clone()))
                .execute(&mut *connection)
                .await
                .expect("the seed applies");
        })
    }

    /// The users whose username matches case-insensitively.
    pub async fn users_named(&self, username: &str) -> Vec<StoredUser> {
        // The email column has a binary collation, which sqlx reads only as bytes on MySQL.
        const SQL: &str = "SELECT id, username, CAST(email AS CHAR) AS email, password_hash, \
             full_name, age, gender FROM users WHERE LOWER(username) = LOWER(?)";
        on_db!(self, pool => sqlx::query(SQL)
            .bind(username)
            .fetch_all(pool)
            .await
            .expect("users can be read")
            .into_iter()
            .map(|row| StoredUser {
                id: row.get("id"),
                username: row.get("username"),
                email: row.get("email"),
                password_hash: row.get("password_hash"),
                full_name: row.get("full_name"),
                age: row.get("age"),
                gender: row.get("gender"),
            })
            .collect())
    }

    /// The stored value of a user's key.
    pub async fn value_of(&self, user_id: i64, key: &str) -> Option<String> {
        on_db!(self, pool => sqlx::query("SELECT value FROM entries WHERE user_id = ? AND entry_key = ?")
            .bind(user_id)
            .bind(key)
            .fetch_optional(pool)
            .await
            .expect("entries can be read")
            .map(|row| row.get(0)))
    }

    /// How many entries a user holds.
    pub async fn entry_count(&self, user_id: i64) -> i64 {
        on_db!(self, pool => sqlx::query("SELECT COUNT(*) FROM entries WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(pool)
            .await
            .expect("entries can be counted")
            .get(0))
    }

    /// What the user's counters say they hold: entries, and bytes of keys and values.
    pub async fn usage(&self, user_id: i64) -> (i64, i64) {
        on_db!(self, pool => sqlx::query("SELECT entry_count, entry_bytes FROM users WHERE id = ?")
            .bind(user_id)
            .fetch_one(pool)
            .await
            .map(|row| (row.get(0), row.get(1)))
            .expect("the user's counters can be read"))
    }

    /// What the user's entries really hold: entries, and bytes of keys and values.
    pub async fn actual_usage(&self, user_id: i64) -> (i64, i64) {
        on_db!(self, pool => sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(OCTET_LENGTH(entry_key) + OCTET_LENGTH(value)), 0) AS SIGNED) \
             FROM entries WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(pool)
            .await
            .map(|row| (row.get(0), row.get::<i64, _>(1)))
            .expect("the user's entries can be summed"))
    }

    /// The stored expiry of a user's key (milliseconds since the epoch), if the row exists,
    /// expired or not.
    pub async fn expiry_of(&self, user_id: i64, key: &str) -> Option<Option<i64>> {
        on_db!(self, pool => sqlx::query("SELECT expires_at FROM entries WHERE user_id = ? AND entry_key = ?")
            .bind(user_id)
            .bind(key)
            .fetch_optional(pool)
            .await
            .expect("entries can be read")
            .map(|row| row.get(0)))
    }

    /// Makes a user's entry expired a minute ago, as if its time had run out.
    pub async fn expire_now(&self, user_id: i64, key: &str) {
        let past = kv_shared::store::now_millis() - 60_000;
        on_db!(self, pool => sqlx::query("UPDATE entries SET expires_at = ? WHERE user_id = ? AND entry_key = ?")
            .bind(past)
            .bind(user_id)
            .bind(key)
            .execute(pool)
            .await
            .map(drop)
            .expect("the entry can be changed"))
    }

    /// Makes every entry of a user expired a minute ago.
    pub async fn expire_all(&self, user_id: i64) {
        let past = kv_shared::store::now_millis() - 60_000;
        on_db!(self, pool => sqlx::query("UPDATE entries SET expires_at = ? WHERE user_id = ?")
            .bind(past)
            .bind(user_id)
            .execute(pool)
            .await
            .map(drop)
            .expect("the entries can be changed"))
    }

    /// How many session rows a user has, ended or not, and how many refresh tokens of theirs
    /// are stored.
    pub async fn session_rows(&self, user_id: i64) -> (i64, i64) {
        on_db!(self, pool => sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE user_id = ?), \
                    (SELECT COUNT(*) FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
                     WHERE s.user_id = ?)")
            .bind(user_id)
            .bind(user_id)
            .fetch_one(pool)
            .await
            .map(|row| (row.get(0), row.get(1)))
            .expect("sessions can be counted"))
    }

    /// The hashes of every stored refresh token.
    pub async fn refresh_token_hashes(&self) -> Vec<Vec<u8>> {
        on_db!(self, pool => sqlx::query("SELECT token_hash FROM refresh_tokens")
            .fetch_all(pool)
            .await
            .expect("refresh tokens can be read")
            .into_iter()
            .map(|row| row.get(0))
            .collect())
    }

    /// How many users there are.
    pub async fn user_count(&self) -> i64 {
        on_db!(self, pool => sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(pool)
            .await
            .expect("users can be counted")
            .get(0))
    }

    /// How many rows `username` has in `login_failures` (compared case-insensitively, as
    /// throttling counts them): failures, settled or left unsettled, and attempts in flight.
    pub async fn login_failures_of(&self, username: &str) -> i64 {
        let key = kv_shared::store::login_username_key(username);
        on_db!(self, pool => sqlx::query("SELECT COUNT(*) FROM login_failures WHERE username_key = ?")
            .bind(key)
            .fetch_one(pool)
            .await
            .expect("login failures can be counted")
            .get(0))
    }

    /// How many of the rows of `username` (compared case-insensitively) are settled failures,
    /// and how many are unsettled (attempts in flight, or left so).
    pub async fn login_rows_of(&self, username: &str) -> (i64, i64) {
        let key = kv_shared::store::login_username_key(username);
        on_db!(self, pool => sqlx::query(
            "SELECT COUNT(CASE WHEN settled <> 0 THEN 1 END), COUNT(CASE WHEN settled = 0 THEN 1 END) \
             FROM login_failures WHERE username_key = ?")
            .bind(key)
            .fetch_one(pool)
            .await
            .map(|row| (row.get(0), row.get(1)))
            .expect("login failures can be counted"))
    }

    /// Records an attempt of `username` from `address` at `failed_at` (milliseconds since the
    /// epoch), settled (a failure) or not (in flight, or left so), as the API would.
    pub async fn insert_login_row(
        &self,
        username: &str,
        address: &str,
        failed_at: i64,
        settled: bool,
    ) {
        let key = kv_shared::store::login_username_key(username);
        on_db!(self, pool => sqlx::query(
            "INSERT INTO login_failures (username_key, address, failed_at, settled) \
             VALUES (?, ?, ?, ?)")
            .bind(key)
            .bind(address)
            .bind(failed_at)
            .bind(i64::from(settled))
            .execute(pool)
            .await
            .map(drop)
            .expect("a login row can be inserted"))
    }

    /// Deletes every row of `username`, as a success of its own would.
    pub async fn delete_login_rows_of(&self, username: &str) {
        let key = kv_shared::store::login_username_key(username);
        on_db!(self, pool => sqlx::query("DELETE FROM login_failures WHERE username_key = ?")
            .bind(key)
            .execute(pool)
            .await
            .map(drop)
            .expect("login rows can be deleted"))
    }

    /// Every column of every row of `login_failures`, as text.
    pub async fn login_failure_rows(&self) -> Vec<Vec<String>> {
        // Binary-collated columns are read only as bytes on MySQL: cast them.
        const SQL: &str = "SELECT CAST(id AS CHAR), CAST(username_key AS CHAR), \
             CAST(address AS CHAR), CAST(failed_at AS CHAR), CAST(settled AS CHAR) \
             FROM login_failures ORDER BY id";
        on_db!(self, pool => sqlx::query(SQL)
            .fetch_all(pool)
            .await
            .expect("login failures can be read")
            .into_iter()
            .map(|row| (0..5).map(|column| row.get::<String, _>(column)).collect())
            .collect())
    }

    /// Removes a user (and, by the foreign key, the user's entries).
    pub async fn delete_user(&self, user_id: i64) {
        on_db!(self, pool => sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(user_id)
            .execute(pool)
            .await
            .map(drop)
            .expect("the user can be deleted"))
    }
}

/// Waits a little, for tests that need a token to expire.
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}
