//! A function's log lines on Lambda are JSON, each line logged while serving an invocation names
//! its Lambda request id and API Gateway's request id, and no line holds a secret.
//!
//! The real function binaries run as Lambda runs them, at `RUST_LOG=trace`, each under a
//! Runtime API emulator of its own (the part lambda_runtime uses: `invocation/next`, and the
//! response or error of an invocation), over one database: SQLite, and MySQL when
//! `KV_TEST_MYSQL_URL` is set. A user registers, logs in, trades its refresh token, stores a
//! value and reads it back through a REST API (payload v1) event; every line the five processes
//! print is checked.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection};
use tokio::sync::{mpsc, oneshot};

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
    let running = Running::start(function, database_url).await;
    let answer = running.invoke(&lambda_request_id, event).await;
    let text = running.stop();
    let Some(answer) = answer else {
        panic!("{function} did not answer in time; it printed:\n{text}");
    };
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

/// A function binary under a Runtime API emulator of its own.
struct Running {
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
    invocations: mpsc::UnboundedSender<Invocation>,
    server: tokio::task::JoinHandle<()>,
}

/// An event for the function, and where its answer goes.
struct Invocation {
    request_id: String,
    event: Value,
    answer: oneshot::Sender<Value>,
}

/// The emulator's state: the events not yet fetched, and the answers awaited.
#[derive(Clone)]
struct RuntimeApi {
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>>,
    awaited: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
}

impl Running {
    /// Starts the emulator, then `function` as Lambda starts it, with nothing of this
    /// environment: the function waits for its first event.
    async fn start(function: &str, database_url: &str) -> Running {
        let (invocations, queue) = mpsc::unbounded_channel();
        let api = RuntimeApi {
            queue: Arc::new(tokio::sync::Mutex::new(queue)),
            awaited: Arc::default(),
        };
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_event))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route(
                "/2018-06-01/runtime/init/error",
                post(|| async { StatusCode::ACCEPTED }),
            )
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });

        let binary = match function {
            "auth-register" => env!("CARGO_BIN_EXE_auth-register"),
            "auth-token" => env!("CARGO_BIN_EXE_auth-token"),
            "auth-refresh" => env!("CARGO_BIN_EXE_auth-refresh"),
            "data-store" => env!("CARGO_BIN_EXE_data-store"),
            "data-retrieve" => env!("CARGO_BIN_EXE_data-retrieve"),
            other => panic!("no binary for {other}"),
        };
        let mut child = Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the function binary runs");
        // Read as it comes, so that a full pipe never blocks the function.
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        Running {
            child,
            stdout,
            stderr,
            invocations,
            server,
        }
    }

    /// The function's answer to `event`, invoked as `request_id`; `None` after 30 s.
    async fn invoke(&self, request_id: &str, event: Value) -> Option<Value> {
        let (answer, answered) = oneshot::channel();
        self.invocations
            .send(Invocation {
                request_id: request_id.to_owned(),
                event,
                answer,
            })
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), answered)
            .await
            .ok()?
            .ok()
    }

    /// Kills the function: all it printed, stdout then stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
        let stdout = self.stdout.join().unwrap();
        let stderr = self.stderr.join().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )
    }
}

/// `GET invocation/next`: the next event, with the headers the Runtime API sends.
async fn next_event(State(api): State<RuntimeApi>) -> (StatusCode, HeaderMap, String) {
    let Some(invocation) = api.queue.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (
            "lambda-runtime-aws-request-id",
            invocation.request_id.clone(),
        ),
        (
            "lambda-runtime-deadline-ms",
            deadline.as_millis().to_string(),
        ),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:eu-west-1:123456789012:function:kv".to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-69b30e1e-013f4c2b8e1d6a7f9c0b5e4d;Parent=53995c3f42cd8ad8;Sampled=0".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    api.awaited
        .lock()
        .unwrap()
        .insert(invocation.request_id, invocation.answer);
    (StatusCode::OK, headers, invocation.event.to_string())
}

/// `POST invocation/{id}/response`: the function's answer.
async fn invocation_response(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let answer = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"unreadable": String::from_utf8_lossy(&body)}));
    answered(&api, &id, answer)
}

/// `POST invocation/{id}/error`: the function failed; the test sees the error as the answer.
async fn invocation_error(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let error = String::from_utf8_lossy(&body).into_owned();
    answered(&api, &id, json!({"invocation_error": error}))
}

fn answered(api: &RuntimeApi, id: &str, answer: Value) -> StatusCode {
    match api.awaited.lock().unwrap().remove(id) {
        Some(awaited) => {
            let _ = awaited.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// A migrated MySQL database of this test's own, dropped after it.
struct MySqlDatabase {
    server: String,
    name: String,
    url: String,
}

impl MySqlDatabase {
    async fn create(server: &str) -> MySqlDatabase {
        let name = test_support::unique_name("kv_logs");
        let mut admin = MySqlConnection::connect(server)
            .await
            .expect("the MySQL test server answers");
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
            .await
            .unwrap();
        admin.close().await.unwrap();
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
