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
//!
//! # Locally
//!
//! Human-readable lines with timestamps, coloured unless `NO_COLOR` is set.
//!
//! # On Lambda
//!
//! One JSON object per line on stdout, as CloudWatch Logs and Lambda's `LogFormat: JSON` read
//! them: `timestamp` (RFC 3339, UTC; Lambda adds none to the lines a function writes), `level`
//! (`ERROR` to `TRACE`), the event's fields (`message` among them) at the top level, `target`,
//! and `spans`, the fields of the spans the line was logged in, outermost first. A line logged
//! while serving an invocation is in two spans: lambda_runtime's `Lambda runtime invoke`, with
//! the Lambda request id (`requestId`, and `xrayTraceId` when Lambda sends one), and
//! `api_gateway`, with API Gateway's request id (`api_request_id`, the `requestId` of its
//! access log):
//!
//! ```text
//! {"timestamp":"2026-11-01T12:00:00.123456Z","level":"ERROR","message":"internal error",
//!  "error":"…","target":"kv_shared::error","spans":[{"requestId":"8f5c…",
//!  "name":"Lambda runtime invoke"},{"api_request_id":"Zq1Xk1LIAMEb1w=","name":"api_gateway"}]}
//! ```
//!
//! (one line in the log). In CloudWatch Logs Insights these are `spans.0.requestId` and
//! `spans.1.api_request_id`. Both spans are always on, whatever level `RUST_LOG` sets, so that
//! the warnings and errors of a function logging at `warn` name their request too. With
//! `tower_http=debug`, a third span follows them: tower_http's `request` (method, URI,
//! version).

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

/// Spans that carry only an invocation's ids, on at every `RUST_LOG` level: each is the target
/// of one span and of no event, so they add no line of their own.
const ALWAYS_ON_SPANS: [&str; 2] = [
    // lambda_runtime's `Lambda runtime invoke` span, with the Lambda request id.
    "lambda_runtime::layers::trace",
    crate::lambda::API_GATEWAY_SPAN_TARGET,
];

/// Installs the global subscriber for `runtime`, writing to stdout. Does nothing when one is
/// already installed.
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

/// The subscriber of `runtime`: lines filtered by `filter` (with [`ALWAYS_ON_SPANS`] added),
/// then by [`NEVER_LOGGED`], written to `writer`.
fn subscriber<W>(runtime: Runtime, filter: Targets, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = ALWAYS_ON_SPANS.into_iter().fold(filter, |filter, target| {
        filter.with_target(target, LevelFilter::INFO)
    });
    let never_logged = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(NEVER_LOGGED);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(never_logged);
    let format = tracing_subscriber::fmt::layer().with_writer(writer);
    match runtime {
        Runtime::Local => Box::new(registry.with(format)),
        Runtime::Lambda => Box::new(
            registry.with(
                format
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};

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
    /// of the service, a statement and an error, in the two spans of an invocation.
    fn an_invocation() {
        let invoke = tracing::info_span!(
            target: "lambda_runtime::layers::trace",
            "Lambda runtime invoke",
            requestId = "lambda-request-1"
        );
        let _invoke = invoke.enter();
        tracing::trace!(
            target: "lambda_runtime::layers::api_response",
            body = r#"{"headers":{"authorization":"Bearer SECRET-TOKEN"}}"#,
            "raw JSON event received from Lambda"
        );
        let gateway = crate::lambda::api_gateway_span(Some("api-request-1"));
        let _gateway = gateway.enter();
        tracing::debug!(target: "tower_http::trace::on_request", "started processing request");
        tracing::debug!(
            target: "sqlx::query",
            summary = "INSERT INTO entries …",
            db.statement = "INSERT INTO entries VALUES (X'5345435245542d56414c5545')",
        );
        tracing::error!(target: "kv_shared::error", error = "boom", "internal error");
    }

    fn json_lines(text: &str) -> Vec<Value> {
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn lambda_lines_are_json_with_both_request_ids() {
        let text = logged(Runtime::Lambda, "trace", an_invocation);
        let lines = json_lines(&text);
        assert_eq!(lines.len(), 2, "{text}");
        let spans = json!([
            {"name": "Lambda runtime invoke", "requestId": "lambda-request-1"},
            {"name": "api_gateway", "api_request_id": "api-request-1"},
        ]);
        for line in &lines {
            assert!(
                line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
                "{line}"
            );
            assert_eq!(line["spans"], spans, "{line}");
        }
        assert_eq!(lines[0]["level"], "DEBUG");
        assert_eq!(lines[0]["message"], "started processing request");
        assert_eq!(lines[1]["level"], "ERROR");
        assert_eq!(lines[1]["message"], "internal error");
        assert_eq!(lines[1]["error"], "boom");
        assert_eq!(lines[1]["target"], "kv_shared::error");
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

    /// At `warn`, an error still names its invocation.
    #[test]
    fn the_request_ids_spans_are_on_at_every_level() {
        let text = logged(Runtime::Lambda, "warn", an_invocation);
        let lines = json_lines(&text);
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["message"], "internal error");
        assert_eq!(lines[0]["spans"][0]["requestId"], "lambda-request-1");
        assert_eq!(lines[0]["spans"][1]["api_request_id"], "api-request-1");
    }

    #[test]
    fn local_lines_are_text() {
        let text = logged(Runtime::Local, "info", || {
            tracing::info!(answer = 42, "ready")
        });
        assert!(text.contains("ready") && text.contains("42"), "{text}");
        assert!(
            serde_json::from_str::<Value>(text.trim()).is_err(),
            "{text}"
        );
    }
}
