//! The local adapter's hardening: it refuses to serve the public development JWT key beyond
//! loopback (the real `kv-server` binary).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kv_shared::config::LOCAL_DEVELOPMENT_JWT_SECRET;

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
