//! A function binary run as Lambda runs it, under a Runtime API emulator of its own: the part
//! lambda_runtime uses (`invocation/next`, and the response or error of an invocation), served
//! by axum on a free port of loopback.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// A function binary, started with nothing of this environment but the Lambda variables and
/// the test's `env`; what it prints is kept, stdout and stderr apart (so that no line of one
/// splits a line of the other).
pub struct Function {
    name: String,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    invocations: mpsc::UnboundedSender<Invocation>,
    server: tokio::task::JoinHandle<()>,
}

/// An event for the function, the request id it goes by, and where its answer goes.
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

impl Function {
    /// Starts the emulator, then the binary of `name` as Lambda starts it, with `env` besides
    /// the Lambda variables: the function waits for its first event.
    pub async fn start(name: &str, env: &[(&str, &str)]) -> Function {
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
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let binary = match name {
            "auth-register" => env!("CARGO_BIN_EXE_auth-register"),
            "auth-token" => env!("CARGO_BIN_EXE_auth-token"),
            "auth-refresh" => env!("CARGO_BIN_EXE_auth-refresh"),
            "data-store" => env!("CARGO_BIN_EXE_data-store"),
            "data-retrieve" => env!("CARGO_BIN_EXE_data-retrieve"),
            "db-migrate" => env!("CARGO_BIN_EXE_db-migrate"),
            other => panic!("no binary for {other}"),
        };
        let mut child = Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the function binary runs");
        // Read as it comes, so that a full pipe never blocks the function.
        let drain = |mut pipe: Box<dyn Read + Send>| {
            let printed = Arc::new(Mutex::new(Vec::new()));
            let kept = printed.clone();
            std::thread::spawn(move || {
                let mut buffer = [0; 4096];
                while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                    kept.lock().unwrap().extend_from_slice(&buffer[..read]);
                }
            });
            printed
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        Function {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            invocations,
            server,
        }
    }

    /// The function's answer to `event`, invoked as `request_id`; panics, with what the
    /// function printed, when none comes within 60 s.
    pub async fn invoke(&self, request_id: &str, event: Value) -> Value {
        let (answer, answered) = oneshot::channel();
        self.invocations
            .send(Invocation {
                request_id: request_id.to_owned(),
                event,
                answer,
            })
            .unwrap();
        let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(60), answered).await else {
            panic!(
                "{} did not answer; it printed:\n{}",
                self.name,
                self.output()
            );
        };
        answer
    }

    /// All it printed so far: stdout, then stderr.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout.lock().unwrap()),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }

    /// Kills the function: all it printed.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
        self.output()
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
