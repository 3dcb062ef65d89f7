//! Logging through `tracing-subscriber`, filtered by `RUST_LOG` (default `info`).
//!
//! `RUST_LOG` takes a level and `target=level` pairs, such as `info,tower_http=debug` (which
//! logs every request: its method, path and query, status and latency, never its headers or
//! body). An invalid value logs at `info`, with a warning saying so.
//!
//! # Never logged
//!
//! No access token, refresh token, password, JWT key or stored value is logged, at any level:
//! the service's own lines name none, and the targets of [`NEVER_LOGGED`] that would are capped
//! whatever `RUST_LOG` says:
//!
//! - `lambda_runtime::layers::api_response` logs each invocation's raw event at `trace`: the
//!   whole API Gateway event, with its `Authorization` header and body (passwords, tokens,
//!   values). Only its warnings and errors (an event that does not deserialize, naming no part
//!   of it) pass.
//! - `sqlx::query` logs each statement at `debug`, and slow ones at `warn`, with their text: on
//!   MySQL a statement carries its parameters as literals (`store/statement.rs`), stored values
//!   among them. None of its lines pass.
//!
//! Keys (in request paths) are not secrets and may be logged.

use std::io;

use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Runtime;

/// Targets capped at a level whatever `RUST_LOG` says, because their other lines carry
/// secrets (see the [module documentation](self)).
pub const NEVER_LOGGED: [(&str, LevelFilter); 2] = [
    // lambda_runtime 1.x: "raw JSON event received from Lambda", at TRACE.
    ("lambda_runtime::layers::api_response", LevelFilter::WARN),
    // sqlx 0.9: every statement (DEBUG) and slow statement (WARN), with its text.
    ("sqlx::query", LevelFilter::OFF),
];

/// Installs the global subscriber: coloured lines locally; on Lambda plain lines without
/// timestamps, which CloudWatch adds itself. Does nothing when one is already installed.
pub fn init(runtime: Runtime) {
    let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
    let (filter, invalid) = rust_log_filter(&rust_log);
    let installed = subscriber(runtime, filter, io::stdout).try_init();
    if let (Ok(()), Some(error)) = (installed, invalid) {
        tracing::warn!(%error, rust_log, "RUST_LOG is not valid; logging at info");
    }
}

/// The filter `RUST_LOG` describes (`info` when empty), and why it was refused if it was.
fn rust_log_filter(rust_log: &str) -> (Targets, Option<tracing_subscriber::filter::ParseError>) {
    match rust_log.trim() {
        "" => (default_filter(), None),
        text => match text.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(error) => (default_filter(), Some(error)),
        },
    }
}

fn default_filter() -> Targets {
    Targets::new().with_default(tracing::Level::INFO)
}

/// The subscriber of `runtime`: lines filtered by `filter`, then by [`NEVER_LOGGED`], written
/// to `writer`.
fn subscriber<W>(runtime: Runtime, filter: Targets, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let never_logged = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(NEVER_LOGGED);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(never_logged);
    let format = tracing_subscriber::fmt::layer().with_writer(writer);
    match runtime {
        Runtime::Local => Box::new(registry.with(format)),
        Runtime::Lambda => Box::new(registry.with(format.with_ansi(false).without_time())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything written through it, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'writer> MakeWriter<'writer> for Captured {
        type Writer = Captured;

        fn make_writer(&'writer self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// What `runtime`'s subscriber, filtered by `rust_log`, writes of the lines `log` logs.
    fn logged(runtime: Runtime, rust_log: &str, log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let (filter, invalid) = rust_log_filter(rust_log);
        assert!(invalid.is_none(), "{rust_log}: {invalid:?}");
        tracing::subscriber::with_default(subscriber(runtime, filter, captured.clone()), log);
        captured.text()
    }

    /// An invocation as lambda_runtime and the function service log it: the raw event, a line
    /// of the service, a statement and an error.
    fn an_invocation() {
        tracing::trace!(
            target: "lambda_runtime::layers::api_response",
            body = r#"{"headers":{"authorization":"Bearer SECRET-TOKEN"}}"#,
            "raw JSON event received from Lambda"
        );
        tracing::debug!(target: "tower_http::trace::on_request", "started processing request");
        tracing::debug!(
            target: "sqlx::query",
            summary = "INSERT INTO entries …",
            db.statement = "INSERT INTO entries VALUES (X'5345435245542d56414c5545')",
        );
        tracing::error!(target: "kv_shared::error", error = "boom", "internal error");
    }

    #[test]
    fn raw_events_and_statements_are_never_logged() {
        for runtime in [Runtime::Lambda, Runtime::Local] {
            for rust_log in [
                "trace",
                "info,lambda_runtime=trace,sqlx=trace",
                "info,sqlx::query=trace",
            ] {
                let text = logged(runtime, rust_log, an_invocation);
                assert!(
                    text.contains("internal error"),
                    "{runtime:?} {rust_log}: {text}"
                );
                for secret in ["SECRET-TOKEN", "5345435245542d56414c5545", "raw JSON event"] {
                    assert!(!text.contains(secret), "{runtime:?} {rust_log}: {text}");
                }
            }
        }
    }

    #[test]
    fn the_runtime_s_warnings_pass() {
        let text = logged(Runtime::Lambda, "info", || {
            tracing::error!(
                target: "lambda_runtime::layers::api_response",
                "Request payload deserialization into LambdaEvent<T> failed"
            );
        });
        assert!(text.contains("deserialization"), "{text}");
    }
}
