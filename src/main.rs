//! The local adapter: the whole API and `GET /health` from one process, on `HOST:PORT`
//! (default `127.0.0.1:3000`), with the database of `DATABASE_URL` (default: the SQLite file
//! `kv.db` in the working directory). Migrations are applied at start-up; expired entries are
//! swept every `SWEEP_INTERVAL_SECONDS`.

use std::net::SocketAddr;

use anyhow::Context;
use kv_shared::config::{Config, Runtime};
use kv_shared::{AppState, server, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(Runtime::Local);
    let config = Config::load(Runtime::Local).await?;
    let address: SocketAddr = format!(
        "{}:{}",
        std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into()),
        std::env::var("PORT").unwrap_or_else(|_| "3000".into())
    )
    .parse()
    .context("HOST and PORT must form a socket address, such as 127.0.0.1:3000")?;

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
        server::shutdown_signal(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}
