//! Logging through `tracing-subscriber`, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Runtime;

/// Installs the global subscriber: coloured lines locally; on Lambda plain lines without
/// timestamps, which CloudWatch adds itself. Does nothing when one is already installed.
///
/// `RUST_LOG` takes a level and `target=level` pairs, such as `info,tower_http=debug`.
pub fn init(runtime: Runtime) {
    let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
    let (filter, invalid) = match rust_log.trim() {
        "" => (default_filter(), None),
        text => match text.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(error) => (default_filter(), Some(error)),
        },
    };
    let format = tracing_subscriber::fmt::layer();
    let installed = match runtime {
        Runtime::Local => tracing_subscriber::registry()
            .with(format)
            .with(filter)
            .try_init(),
        Runtime::Lambda => tracing_subscriber::registry()
            .with(format.with_ansi(false).without_time())
            .with(filter)
            .try_init(),
    };
    if let (Ok(()), Some(error)) = (installed, invalid) {
        tracing::warn!(%error, rust_log, "RUST_LOG is not valid; logging at info");
    }
}

fn default_filter() -> Targets {
    Targets::new().with_default(tracing::Level::INFO)
}
