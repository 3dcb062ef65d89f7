//! The local adapter: the whole API and `GET /health` from one process, on `HOST:PORT`
//! (default `127.0.0.1:3000`), with the database of `DATABASE_URL` (default: the SQLite file
//! `kv.db` in the working directory). Migrations are applied at start-up; expired entries are
//! swept every `SWEEP_INTERVAL_SECONDS`. Without `JWT_SECRET` it signs tokens with a public
//! development key, and so refuses to start unless `HOST` is a loopback address.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use kv_shared::config::{Config, Runtime};
use kv_shared::{AppState, server, telemetry};

/// Faster than glibc's malloc for the many small, short-lived allocations of a request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(Runtime::Local);
    let config = Config::load(Runtime::Local).await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    // An IPv6 HOST (such as ::1) is written without brackets, like an IPv4 one.
    let address = match (host.parse::<IpAddr>(), port.parse::<u16>()) {
        (Ok(host), Ok(port)) => SocketAddr::new(host, port),
        _ => anyhow::bail!(
            "HOST and PORT must be an IP address and a port, such as 127.0.0.1 and 3000 (got {host:?} and {port:?})"
        ),
    };
    // The public development key only where nobody else can reach the server.
    config.check_listen_address(address)?;

    let state = AppState::new(&config);
    state
        .store
        .migrate()
        .await
        .context("could not apply the database migrations")?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("could not listen on {address}"))?;
    tracing::info!(address = %listener.local_addr()?, backend = ?state.store.backend(), "serving the key-value API");
    server::serve(
        listener,
        state,
        config.sweep_interval,
        config.server,
        server::shutdown_signal(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}
