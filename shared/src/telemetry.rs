//! Logging through `tracing-subscriber`, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::Runtime;

/// Installs the global subscriber: coloured lines locally; on Lambda plain lines without
/// timestamps, which CloudWatch adds itself. Does nothing when one is already installed.
pub fn init(runtime: Runtime) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match runtime {
        Runtime::Local => builder.try_init(),
        Runtime::Lambda => builder.with_ansi(false).without_time().try_init(),
    };
    drop(installed);
}
