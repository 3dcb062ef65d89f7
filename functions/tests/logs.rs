//! A function's log lines on Lambda are JSON, each line logged while serving an invocation names
//! its Lambda request id and API Gateway's request id, and no line holds a secret.
//!
//! The real function binaries run as Lambda runs them, at `RUST_LOG=trace`, each under a
//! Runtime API emulator of its own (the part lambda_runtime uses: `invocation/next`, and the
//! response or error of an invocation), over one database: SQLite, and MySQL when
//! `KV_TEST_MYSQL_URL` is set. A user registers, logs in, trades its refresh token, stores a
//! value and reads it back through a REST API (payload v1) event; every line the five processes
//! print is checked.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection};

mod support;

use support::Function;

const JWT_SECRET: &str = "the-log-test-s-jwt-key-of-32-bytes-at-least";
/// A password the contract accepts, found nowhere else.
const PASSWORD: &str = "Log-Test-P4ssw0rd!";
/// The stored value, found nowhere else.
const VALUE: &str = "a-stored-value-no-log-line-may-hold";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_functions_log_json_with_request_ids_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kv.db").display());
    functions_log_json_with_request_ids_and_no_secret(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_functions_log_json_with_request_ids_and_no_secret() {
    let test = "mysql_functions_log_json_with_request_ids_and_no_secret";
    let Some(server) = test_support::mysql_server_url(test) else {
        return;
    };
    let database = MySqlDatabase::create(&server).await;
    functions_log_json_with_request_ids_and_no_secret(&database.url).await;
}

async fn functions_log_json_with_request_ids_and_no_secret(database_url: &str) {
    let mut secrets = vec![PASSWORD.to_owned(), JWT_SECRET.to_owned()];
    secrets.extend(value_encodings(VALUE));
    let mut logs = Vec::new();

    let mut register = fixture("http-api-v2/register.json", "");
    set_body_field(&mut register, "password", PASSWORD);
    let answer = serve("auth-register", database_url, &mut logs, register).await;
    assert_eq!(answer["status"], "success", "{answer}");

    let mut token = fixture("http-api-v2/token.json", "");
    set_body_field(&mut token, "password", PASSWORD);
    let answer = serve("auth-token", database_url, &mut logs, token).await;
    let login_refresh = answer["data"]["refresh_token"].as_str().unwrap().to_owned();
    secrets.extend(token_secrets(&answer["data"]["access_token"]));
    secrets.push(login_refresh.clone());

    let refresh = fixture("http-api-v2/refresh.json", &login_refresh);
    let answer = serve("auth-refresh", database_url, &mut logs, refresh).await;
    let access = answer["data"]["access_token"].as_str().unwrap().to_owned();
    secrets.extend(token_secrets(&answer["data"]["access_token"]));
    secrets.push(answer["data"]["refresh_token"].as_str().unwrap().to_owned());

    let mut store = fixture("http-api-v2/store.json", &access);
    set_body_field(&mut store, "valueN", VALUE);
    let answer = serve("data-store", database_url, &mut logs, store).await;
    assert_eq!(answer["status"], "success", "{answer}");

    let retrieve = fixture("rest-api-v1/retrieve.json", &access);
    let answer = serve("data-retrieve", database_url, &mut logs, retrieve).await;
    assert_eq!(answer["data"]["valueN"], VALUE, "{answer}");

    for log in &logs {
        log.check(&secrets);
    }
}

/// What one function printed while serving one event.
struct FunctionLog {
    function: &'static str,
    lambda_request_id: String,
    api_request_id: String,
    text: String,
}

impl FunctionLog {
    /// Every line is a JSON object with a timestamp and a level; every line logged in the
    /// function's span of the request names both ids, and there are such lines; no line holds
    /// any of `secrets`.
    fn check(&self, secrets: &[String]) {
        let function = self.function;
        let text = &self.text;
        let mut serving_lines = 0;
        for line in text.lines() {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("{function}: not JSON ({error}): {line}"));
            assert!(
                parsed["timestamp"]
                    .as_str()
                    .is_some_and(|t| t.ends_with('Z')),
                "{function}: no timestamp: {line}"
            );
            let level = parsed["level"].as_str().unwrap_or_default();
            assert!(
                ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
                "{function}: no level: {line}"
            );
            let spans = parsed["spans"].as_array().cloned().unwrap_or_default();
            if spans.iter().any(|span| span["name"] == "api_gateway") {
                serving_lines += 1;
                assert_eq!(
                    span_fields(&spans, "requestId"),
                    [self.lambda_request_id.as_str()],
                    "{function}: {line}"
                );
                assert_eq!(
                    span_fields(&spans, "api_request_id"),
                    [self.api_request_id.as_str()],
                    "{function}: {line}"
                );
            }
            for secret in secrets {
                assert!(
                    !line.contains(secret.as_str()),
                    "{function} logged a secret ({secret}): {line}"
                );
            }
        }
        // At least tower_http's "started processing request" and "finished processing request".
        assert!(serving_lines >= 2, "{function}: too few lines:\n{text}");
    }
}

/// The values of `field` in the spans that have it, outermost first.
fn span_fields<'a>(spans: &'a [Value], field: &str) -> Vec<&'a str> {
    spans
        .iter()
        .filter_map(|span| span[field].as_str())
        .collect()
}

/// Runs `function` on `database_url`, invokes it once with `event` and stops it: the body of
/// its answer. What it printed is added to `logs`.
async fn serve(
    function: &'static str,
    database_url: &str,
    logs: &mut Vec<FunctionLog>,
    event: Value,
) -> Value {
    let lambda_request_id = format!("4c0ffee0-0000-4000-8000-{:012}", logs.len() + 1);
    let api_request_id = event["requestContext"]["requestId"]
        .as_str()
        .expect("the event has API Gateway's request id")
        .to_owned();
    let env = [
        ("DATABASE_URL", database_url),
        ("JWT_SECRET", JWT_SECRET),
        ("RUST_LOG", "trace"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ];
    let running = Function::start(function, &env).await;
    let answer = running.invoke(&lambda_request_id, event).await;
    let text = running.stop();
    logs.push(FunctionLog {
        function,
        lambda_request_id,
        api_request_id,
        text,
    });
    let body = answer["body"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {answer}"))
}

/// The event in `tests/fixtures/events/<name>`, with `__TOKEN__` replaced by `token`.
fn fixture(name: &str, token: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
    serde_json::from_str(&text.replace("__TOKEN__", token)).expect("a JSON event")
}

/// Sets `field` of an HTTP API event's JSON body to `value`.
fn set_body_field(event: &mut Value, field: &str, value: &str) {
    let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    body[field] = json!(value);
    let body = body.to_string();
    event["headers"]["content-length"] = json!(body.len().to_string());
    event["body"] = json!(body);
}

/// An access token, and its signature alone (a JWT's last part).
fn token_secrets(token: &Value) -> Vec<String> {
    let token = token.as_str().expect("an access token");
    let signature = token.rsplit('.').next().unwrap();
    vec![token.to_owned(), signature.to_owned()]
}

/// `value` as MySQL statements carry it (`X'…'`, either case of hexadecimal digits).
fn value_encodings(value: &str) -> Vec<String> {
    let hex: String = value.bytes().map(|byte| format!("{byte:02x}")).collect();
    vec![value.to_owned(), hex.to_uppercase(), hex]
}

/// A migrated MySQL database of this test's own, dropped after it.
struct MySqlDatabase {
    server: String,
    name: String,
    url: String,
}

impl MySqlDatabase {
    async fn create(server: &str) -> MySqlDatabase {
        let name = test_support::create_mysql_database(server, "kv_logs").await;
        let url = format!("{server}/{name}");
        let store = kv_shared::store::Store::connect_lazy(
            kv_shared::store::ConnectOptions::from_url(&url).unwrap(),
            &kv_shared::store::PoolSettings {
                max_connections: 1,
                max_idle_connections: 1,
                acquire_timeout: Duration::from_secs(10),
            },
        );
        store.migrate().await.expect("the schema");
        store.close().await;
        MySqlDatabase {
            server: server.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for MySqlDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the database {} of the failed test", self.name);
            return;
        }
        // `Drop` cannot await: a thread and a runtime of its own.
        let server = self.server.clone();
        let statement = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = MySqlConnection::connect(&server).await?;
                admin.execute(AssertSqlSafe(statement)).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}
