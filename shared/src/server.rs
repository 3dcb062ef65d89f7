//! The local adapter's HTTP server: the whole API on one listener, with request tracing, the
//! periodic sweep of expired entries, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::routes::app;
use crate::sweep::PeriodicSweep;

/// Serves the API on `listener`, sweeping expired entries every `sweep_interval`, until
/// `shutdown` completes; then stops the sweep, lets requests in flight finish and closes the
/// database pool.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    sweep_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = state.store.clone();
    let sweep = PeriodicSweep::start(store.clone(), sweep_interval, state.throttle.window);
    let router = app(state).layer(TraceLayer::new_for_http());
    // Each request carries its peer's address, which login throttling counts by.
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    sweep.stop().await;
    store.close().await;
    served
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, only SIGTERM stops the server.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
