//! The local adapter's HTTP server: the whole API on one listener, with request tracing, the
//! periodic sweep of expired entries, limits that keep slow or numerous clients from using it
//! up, and graceful shutdown in bounded time.
//!
//! [`ServerLimits`] are the limits: a request's head must arrive within the header-read timeout
//! (counted from when the server starts waiting for it, so an idle kept-alive connection is
//! closed then too); a request is answered within the request timeout (else 503); a connection
//! on which nothing moves while none of its requests is being handled is closed after the idle
//! timeout; at most `max_connections` connections are open (beyond, the server stops accepting
//! and new ones wait in the kernel's backlog); at most `max_concurrent_requests` requests are
//! handled at once (beyond, 503 `SERVICE_UNAVAILABLE` with `Retry-After: 1`, at once); and on
//! shutdown, requests in flight get `shutdown_grace` to finish before every connection left is
//! dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::ApiError;
use crate::routes::app;
use crate::sweep::PeriodicSweep;

/// Seconds a client turned away for lack of capacity is asked to wait (`Retry-After`).
const OVERLOADED_RETRY_AFTER_SECONDS: u64 = 1;

/// How long the server waits before accepting again after an error other than a failed
/// connection (such as running out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The limits of the local adapter's server (`HTTP_*` variables, see [`crate::config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a request's whole head, from when the server starts waiting for it:
    /// on a new connection, and on a kept-alive one after the previous answer.
    pub header_read_timeout: Duration,
    /// Longest a request may take, reading its body included, before it is answered 503.
    pub request_timeout: Duration,
    /// A connection on which no byte is read or written for this long, while none of its
    /// requests is being handled, is closed (such as a client that stopped reading answers).
    pub idle_timeout: Duration,
    /// Most connections open at once; beyond, the server stops accepting until one closes.
    pub max_connections: usize,
    /// Most requests handled at once; beyond, 503 at once.
    pub max_concurrent_requests: usize,
    /// On shutdown, how long requests in flight may take to finish before the connections
    /// left are dropped.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_concurrent_requests: 512,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves the API on `listener` within `limits`, sweeping expired entries every
/// `sweep_interval`, until `shutdown` completes; then stops accepting, lets requests in flight
/// finish for up to `limits.shutdown_grace`, drops the connections left, stops the sweep and
/// closes the database pool.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    sweep_interval: Duration,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let store = state.store.clone();
    let sweep = PeriodicSweep::start(store.clone(), sweep_interval, state.throttle.window);
    let requests = RequestLimits {
        permits: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        timeout: limits.request_timeout,
    };
    let router = app(state)
        .layer(middleware::from_fn_with_state(requests, limit_request))
        .layer(TraceLayer::new_for_http());

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);

    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(());
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the cap, stop accepting: new connections wait in the kernel's backlog, holding no
        // file descriptor of this process, until one of ours closes.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::error!(%error, "could not accept a connection; retrying in a second");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        tasks.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            http.clone(),
            limits.idle_timeout,
            stopping.clone(),
            permit,
        ));
    }

    drop(listener);
    tracing::info!(
        connections = tasks.len(),
        grace = ?limits.shutdown_grace,
        "shutting down: no longer accepting, finishing requests in flight"
    );
    // Every connection finishes the request it is handling, if any, and closes.
    let _ = stop.send(());
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            "the shutdown grace period is over: dropping the connections left"
        );
        tasks.shutdown().await;
    }
    sweep.stop().await;
    store.close().await;
    Ok(())
}

/// Errors of one connection that leave the listener fine.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves the requests of one connection until it ends, the idle timeout closes it, or
/// `stopping` changes: then at once if no request of it is being handled, else once that one
/// is answered. `_permit` is its place under the connection cap.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    http: http1::Builder,
    idle_timeout: Duration,
    mut stopping: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // Each request carries its peer's address, which login throttling counts by.
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = activity.busy();
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                drop(busy);
                response
            }
        })
    };
    let connection = http.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut stop_requested = false;
    loop {
        let idle_check = activity.idle_deadline(idle_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection closed on an error");
                }
                return;
            }
            _ = stopping.changed(), if !stop_requested => {
                // Between requests (idle, or still receiving a head), there is nothing to
                // finish: close at once. Otherwise answer the request in flight, then close.
                if activity.in_flight.load(Ordering::Relaxed) == 0 {
                    return;
                }
                stop_requested = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_check) => {
                if activity.is_idle(idle_timeout) {
                    tracing::debug!(%peer, "closing an idle connection");
                    return;
                }
            }
        }
    }
}

/// When bytes last moved on a connection, and how many of its requests are being handled.
struct Activity {
    started: Instant,
    /// Milliseconds from `started` to the last byte read or written, or the last request's end.
    last: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(elapsed, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Marks a request as being handled until the guard is dropped.
    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// When the connection would next be idle for `timeout`, if nothing happens meanwhile.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            Instant::now() + timeout
        } else {
            self.last() + timeout
        }
    }

    fn is_idle(&self, timeout: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.last().elapsed() >= timeout
    }
}

/// A request being handled; its end counts as activity.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's stream, recording in [`Activity`] every read or write that moves bytes.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The request limits every request passes through.
#[derive(Clone)]
struct RequestLimits {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

/// Sheds a request when `max_concurrent_requests` are being handled, and answers one that takes
/// longer than the request timeout: both 503 `SERVICE_UNAVAILABLE` with `Retry-After`.
async fn limit_request(
    State(limits): State<RequestLimits>,
    request: Request,
    next: Next,
) -> Response {
    let overloaded = ApiError::Overloaded {
        retry_after: OVERLOADED_RETRY_AFTER_SECONDS,
    };
    let Ok(_permit) = limits.permits.try_acquire_owned() else {
        return overloaded.into_response();
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?limits.timeout, "request timed out");
            overloaded.into_response()
        }
    }
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
