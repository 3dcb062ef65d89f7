//! The local adapter's hardening: it refuses to serve the public development JWT key beyond
//! loopback (the real `kv-server` binary), and its server keeps slow or numerous clients from
//! using it up (timeouts, the connection cap, the concurrency limit, bounded shutdown).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use kv_shared::config::LOCAL_DEVELOPMENT_JWT_SECRET;
use kv_shared::server::ServerLimits;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, TestSettings, message_of, registration, spawn_app_with};

/// How long the binary may take to start, or to refuse to.
const START_BOUND: Duration = Duration::from_secs(60);

/// `kv-server` on an empty SQLite database in `dir`, with only `vars` (and no inherited
/// `JWT_SECRET` or AWS settings) in its environment.
fn kv_server(dir: &tempfile::TempDir, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv-server"));
    command
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("kv.db").display()),
        )
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Kills the child when dropped, so that a failed assertion leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` to its end (killing it after [`START_BOUND`]): its exit status and stderr.
fn run_to_end(mut command: Command) -> (std::process::ExitStatus, String) {
    let mut child = Running(command.spawn().expect("kv-server starts"));
    let deadline = Instant::now() + START_BOUND;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("the child can be waited for") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "kv-server kept running: it should have refused to start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(
        child.0.stderr.as_mut().expect("stderr is piped"),
        &mut stderr,
    )
    .expect("stderr is readable");
    (status, stderr)
}

/// Starts `command` and waits for the line saying it serves: the running child and the
/// address it listens on.
fn start(mut command: Command) -> (Running, String, Vec<String>) {
    let mut child = Running(command.spawn().expect("kv-server starts"));
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(without_colours(&line)).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_BOUND;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match received.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let status = child.0.try_wait().ok().flatten();
                panic!("kv-server did not start (exit: {status:?}); its output: {seen:#?}");
            }
        };
        seen.push(line.clone());
        if line.contains("serving the key-value API") {
            let address = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("address="))
                .expect("the line names the address")
                .to_owned();
            return (child, address, seen);
        }
    }
}

/// `line` without its ANSI escape sequences (the log's colours, when it has them).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn beyond_loopback_the_development_key_is_refused() {
    let among_others = format!("{},{LOCAL_DEVELOPMENT_JWT_SECRET}", "k".repeat(32));
    for vars in [
        // JWT_SECRET unset: the development key would sign.
        vec![("HOST", "0.0.0.0"), ("PORT", "0")],
        // The development key set explicitly, or among others.
        vec![
            ("HOST", "0.0.0.0"),
            ("PORT", "0"),
            ("JWT_SECRET", LOCAL_DEVELOPMENT_JWT_SECRET),
        ],
        vec![
            ("HOST", "::"),
            ("PORT", "0"),
            ("JWT_SECRET", among_others.as_str()),
        ],
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (status, stderr) = run_to_end(kv_server(&dir, &vars));
        assert!(!status.success(), "{vars:?}: {status:?}, {stderr}");
        assert!(
            stderr.contains("refusing to listen on")
                && stderr.contains("public local-development JWT key")
                && stderr.contains("set JWT_SECRET"),
            "{vars:?}: not the clear message: {stderr}"
        );
        assert!(
            !stderr.contains(LOCAL_DEVELOPMENT_JWT_SECRET),
            "the key itself is shown: {stderr}"
        );
        assert!(
            !dir.path().join("kv.db").exists(),
            "{vars:?}: the database was touched before refusing"
        );
    }
}

#[tokio::test]
async fn on_loopback_or_with_a_key_of_its_own_it_starts() {
    let own_key = "a-key-of-our-own-at-least-32-bytes-long";
    for (vars, warns) in [
        (vec![("HOST", "127.0.0.1"), ("PORT", "0")], true),
        (
            vec![
                ("HOST", "127.0.0.1"),
                ("PORT", "0"),
                ("JWT_SECRET", LOCAL_DEVELOPMENT_JWT_SECRET),
            ],
            false,
        ),
        // As in the container image (HOST=0.0.0.0) given a key.
        (
            vec![("HOST", "0.0.0.0"), ("PORT", "0"), ("JWT_SECRET", own_key)],
            false,
        ),
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let command = kv_server(&dir, &vars);
        let (child, address, lines) = tokio::task::spawn_blocking(move || start(command))
            .await
            .expect("the start completes");
        assert_eq!(
            lines
                .iter()
                .any(|line| line.contains("public local-development key")),
            warns,
            "{vars:?}: {lines:#?}"
        );
        let port = address.rsplit(':').next().expect("a port");
        let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .expect("the server answers");
        assert_eq!(health.status(), 200, "{vars:?}");
        drop(child);
    }
}

// --- the server's limits -----------------------------------------------------------------

/// Limits small enough for quick tests; each test changes what it is about.
fn quick_limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1000,
        max_concurrent_requests: 64,
        shutdown_grace: Duration::from_secs(3),
    }
}

async fn app_with(limits: ServerLimits) -> TestApp {
    let settings = TestSettings {
        server_limits: Some(limits),
        ..TestSettings::default()
    };
    spawn_app_with(Backend::Sqlite, settings)
        .await
        .expect("SQLite is always available")
}

/// `host:port` of the app.
fn socket_address(app: &TestApp) -> String {
    app.address
        .strip_prefix("http://")
        .expect("an http:// address")
        .to_owned()
}

/// This process's limit of open files (the soft one), if it can be read.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Waits up to `bound` for the peer to close `stream` (end of stream or an error), reading and
/// discarding whatever it sends first: true if it closed.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A connection to `address` that has had one `/health` answered (status line read; the
/// rest of the small answer is left unread) and is kept alive.
async fn kept_alive_connection(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("a connection");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    stream
}

/// Sends the start of a request's head to `address` one byte every `interval`, never ending
/// it, until the server closes the connection: when that happened, or `None` if the
/// connection could not be made. `connected` counts connections made.
async fn trickle(
    address: String,
    interval: Duration,
    connected: Arc<AtomicUsize>,
) -> Option<Instant> {
    let mut stream = TcpStream::connect(&address).await.ok()?;
    connected.fetch_add(1, Ordering::SeqCst);
    let head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Trickle: ";
    for index in 0.. {
        let byte = head.get(index).copied().unwrap_or(b'a');
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        if closed_within(&mut stream, interval).await {
            break;
        }
    }
    Some(Instant::now())
}

/// A request's status, headers (names lowercased) and JSON body, read from a raw socket
/// until the server closes it or `bound` passes.
async fn raw_answer(
    stream: &mut TcpStream,
    bound: Duration,
) -> (u16, Vec<(String, String)>, serde_json::Value) {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(bound, stream.read_to_end(&mut bytes)).await;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("a whole answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("a JSON body: {text:?}"));
    (status, headers, body)
}

/// Opens a connection that sends the head of a registration of `username` and the first
/// byte of its body, and returns it with the rest of the body: until that is sent, the handler
/// waits for it, holding a place among the requests being handled.
async fn stalled_body(address: &str, username: &str) -> (TcpStream, Vec<u8>) {
    let body = serde_json::to_vec(&registration(username)).expect("JSON");
    let mut stream = TcpStream::connect(address).await.expect("a connection");
    let head = format!(
        "POST /auth/register HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("the head is sent");
    stream.write_all(&body[..1]).await.expect("a byte is sent");
    (stream, body[1..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_get_no_hold_on_answers_or_on_shutdown() {
    let limits = quick_limits();
    let app = app_with(limits).await;
    let address = socket_address(&app);

    // Each trickler takes two descriptors in this process (its socket and the server's);
    // leave room for the rest of the test, and for tests sharing the process (cargo test).
    let open_now = std::fs::read_dir("/proc/self/fd").map_or(0, |fds| fds.count());
    let tricklers = match open_files_limit() {
        Some(limit) => 300.min(limit.saturating_sub(open_now + 200) / 2),
        None => 300,
    };
    assert!(
        tricklers >= 100,
        "ulimit -n is too low for this test: {:?}",
        open_files_limit()
    );
    let connected = Arc::new(AtomicUsize::new(0));
    let mut trickling = tokio::task::JoinSet::new();
    for _ in 0..tricklers {
        trickling.spawn(trickle(
            address.clone(),
            Duration::from_millis(200),
            connected.clone(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected.load(Ordering::SeqCst) < tricklers {
        assert!(
            Instant::now() < deadline,
            "only {} of {tricklers} tricklers connected",
            connected.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ordinary requests are answered meanwhile, on fresh connections and kept-alive ones.
    for round in 0..3 {
        let health = app.request(Method::GET, "/health", None, None).await;
        assert_eq!(health.status, 200, "{:?}", health.body);
        let username = format!("patient_{round}");
        let (_, token) = app.user_with_token(&username).await;
        let stored = app
            .request(
                Method::POST,
                "/data/store",
                Some(&token),
                Some(json!({"keyN": "k", "valueN": "v"})),
            )
            .await;
        assert_eq!(stored.status, 200, "{:?}", stored.body);
        let retrieved = app
            .request(Method::GET, "/data/retrieve/k", Some(&token), None)
            .await;
        retrieved
            .assert_success(json!({"status": "success", "data": {"keyN": "k", "valueN": "v"}}));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        trickling.len() == tricklers && trickling.try_join_next().is_none(),
        "the tricklers are all still connected"
    );

    // Two requests in flight when the shutdown starts: one whose client then sends the rest of
    // its body, which is answered; one whose client never does, which is dropped after the
    // grace period.
    let (mut finishing, rest) = stalled_body(&address, "finishing").await;
    let (mut abandoned, _) = stalled_body(&address, "abandoned").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Shutdown with every trickler still connected ends within twice the grace period.
    let started = Instant::now();
    let bound = limits.shutdown_grace * 2;
    let stopped = tokio::spawn(tokio::time::timeout(bound, app.stop()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    finishing.write_all(&rest).await.expect("the body is sent");
    let (status, _, body) = raw_answer(&mut finishing, bound).await;
    assert_eq!(status, 200, "the request in flight is answered: {body}");
    stopped
        .await
        .expect("the stop task ends")
        .unwrap_or_else(|_| panic!("the server did not stop within {bound:?}"));
    let took = started.elapsed();
    assert!(
        took >= limits.shutdown_grace,
        "the abandoned request was given no grace ({took:?})"
    );
    assert!(closed_within(&mut abandoned, Duration::from_secs(10)).await);

    // And it closed every trickler's connection.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut closed = 0;
        while let Some(ended) = trickling.join_next().await {
            assert!(ended.expect("a trickler ends").is_some());
            closed += 1;
        }
        closed
    })
    .await
    .expect("every trickler's connection is closed after the shutdown");
    assert_eq!(closed, tricklers);
    eprintln!("{tricklers} tricklers; the shutdown took {took:?}");
}

#[tokio::test]
async fn the_header_read_timeout_closes_tricklers_and_idle_connections() {
    let limits = ServerLimits {
        header_read_timeout: Duration::from_secs(1),
        ..quick_limits()
    };
    let app = app_with(limits).await;
    let address = socket_address(&app);

    // A byte every 100 ms does not keep the connection: the whole head is due within 1 s.
    let started = Instant::now();
    let closed_at = trickle(
        address.clone(),
        Duration::from_millis(100),
        Arc::new(AtomicUsize::new(0)),
    );
    let closed_at = tokio::time::timeout(Duration::from_secs(20), closed_at)
        .await
        .expect("the trickler's connection is closed")
        .expect("the trickler connected");
    assert!(closed_at.duration_since(started) >= Duration::from_millis(900));

    // A connection that sends nothing is closed too.
    let mut silent = TcpStream::connect(&address).await.expect("a connection");
    assert!(closed_within(&mut silent, Duration::from_secs(20)).await);

    // So is a kept-alive connection that does not send its next request.
    let mut kept_alive = kept_alive_connection(&address).await;
    assert!(closed_within(&mut kept_alive, Duration::from_secs(20)).await);

    // Meanwhile, ordinary requests are answered.
    let health = app.request(Method::GET, "/health", None, None).await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn the_idle_timeout_closes_silent_connections_but_not_requests_in_flight() {
    let limits = ServerLimits {
        idle_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        ..quick_limits()
    };
    let app = app_with(limits).await;
    let address = socket_address(&app);

    let mut silent = TcpStream::connect(&address).await.expect("a connection");
    assert!(closed_within(&mut silent, Duration::from_secs(20)).await);

    // A request waiting for its body (longer than the idle timeout) is answered by the
    // request timeout, not cut off.
    let (mut stalled, _) = stalled_body(&address, "stalled").await;
    let (status, headers, body) = raw_answer(&mut stalled, Duration::from_secs(20)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"status": "error", "code": "SERVICE_UNAVAILABLE",
               "message": message_of("SERVICE_UNAVAILABLE")})
    );
    assert!(headers.iter().any(|(name, _)| name == "retry-after"));
}

#[tokio::test]
async fn a_request_over_the_timeout_is_answered_503_with_retry_after() {
    let limits = ServerLimits {
        request_timeout: Duration::from_secs(1),
        ..quick_limits()
    };
    let app = app_with(limits).await;
    let (mut stalled, _) = stalled_body(&socket_address(&app), "stalled").await;
    let (status, headers, body) = raw_answer(&mut stalled, Duration::from_secs(20)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"status": "error", "code": "SERVICE_UNAVAILABLE",
               "message": message_of("SERVICE_UNAVAILABLE")})
    );
    let retry_after = headers
        .iter()
        .find(|(name, _)| name == "retry-after")
        .map(|(_, value)| value.as_str());
    assert_eq!(retry_after, Some("1"));
}

#[tokio::test]
async fn beyond_the_concurrency_limit_requests_are_shed_with_503_and_retry_after() {
    let limits = ServerLimits {
        max_concurrent_requests: 2,
        ..quick_limits()
    };
    let app = app_with(limits).await;
    let address = socket_address(&app);

    // Two requests waiting for their bodies take both places.
    let stalled = [
        stalled_body(&address, "first").await,
        stalled_body(&address, "second").await,
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let shed = loop {
        let answer = app.request(Method::GET, "/health", None, None).await;
        if answer.status == 503 {
            break answer;
        }
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert!(Instant::now() < deadline, "no request was shed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shed.assert_code(503, "SERVICE_UNAVAILABLE");
    assert_eq!(
        shed.headers
            .get("retry-after")
            .map(|value| value.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(
        shed.headers
            .get("content-type")
            .map(|value| value.as_bytes()),
        Some(&b"application/json"[..])
    );

    // Once they are gone, requests are handled again.
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = app.request(Method::GET, "/health", None, None).await;
        if answer.status == 200 {
            break;
        }
        answer.assert_code(503, "SERVICE_UNAVAILABLE");
        assert!(Instant::now() < deadline, "requests are still shed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_wait_for_a_free_place() {
    let limits = ServerLimits {
        max_connections: 3,
        ..quick_limits()
    };
    let app = app_with(limits).await;
    let address = socket_address(&app);

    // Three kept-alive connections, each answered once, so certainly accepted.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(kept_alive_connection(&address).await);
    }

    // A fourth is not served while they stay...
    let client = reqwest::Client::new();
    let waiting = tokio::spawn({
        let url = format!("{}/health", app.address);
        async move { client.get(url).send().await.map(|answer| answer.status()) }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "a fourth connection was served");

    // ... and is as soon as one closes.
    drop(held.pop());
    let status = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the fourth connection is served once a place is free")
        .expect("the request task ends")
        .expect("the request is answered");
    assert_eq!(status, 200);
}
