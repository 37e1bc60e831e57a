//! The runner's HTTP/1.1 server: its own accept loop over hyper instead of `axum::serve`, which has no
//! bound on connections, no header timeout and no body timeout (issue 21).
//!
//! How a slow or idle client is kept from freezing the rest:
//! - **Connections** are capped ([`ConnectionLimits::max_connections`], also clamped below the process's
//!   file-descriptor limit): at the cap the loop stops accepting, so new clients wait in the kernel's
//!   listen backlog instead of exhausting descriptors and memory; one warning a minute says so.
//! - **Headers** must arrive within [`ConnectionLimits::header_timeout`], counted from the moment the
//!   connection is ready for a request: a socket that sends nothing, half a header, or stays idle between
//!   keep-alive requests for that long is closed by hyper.
//! - **Bodies** are read by [`read_body_first`] *before* the request takes one of the
//!   `max_concurrent_requests` permits (the permit is what protects the store), within
//!   [`ConnectionLimits::body_timeout`] of the headers' arrival, else 408 and the connection is closed.
//!   So a slow upload holds only its connection, never a permit: GETs, webhooks and API calls whose bodies
//!   have arrived keep the whole request capacity. The bytes held in buffered bodies are bounded by a
//!   shared budget ([`body_budget_bytes`]); a request over the body limit is buffered only up to the limit
//!   plus one byte and handed on, so the app answers 401 or 413 exactly as before.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use omnichat_http::error::ApiError;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bounds on connections and on the time a client may take to send its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this (`OMNICHAT_HEADER_TIMEOUT_SECONDS`, default 10 s); it
    /// also closes a keep-alive connection idle that long.
    pub header_timeout: Duration,
    /// A request's body must arrive within this after its headers (`OMNICHAT_BODY_TIMEOUT_SECONDS`,
    /// default 30 s), else 408 and the connection is closed.
    pub body_timeout: Duration,
    /// Open connections at most (`OMNICHAT_MAX_CONNECTIONS`, default 4096, lowered to fit the
    /// file-descriptor limit); past it, new connections wait in the listen backlog.
    pub max_connections: usize,
}

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_CONNECTIONS: usize = 4096;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { header_timeout: HEADER_TIMEOUT, body_timeout: BODY_TIMEOUT, max_connections: MAX_CONNECTIONS }
    }
}

/// Bytes all buffered request bodies may hold at once: 64 MiB, or two bodies at the limit if more.
pub fn body_budget_bytes(max_body_bytes: usize) -> usize {
    (64 * 1024 * 1024).max(max_body_bytes.saturating_add(1).saturating_mul(2))
}

/// What [`read_body_first`] needs: the timeout, the body limit and the shared budget of buffered bytes.
#[derive(Clone)]
pub struct BodyFirst {
    timeout: Duration,
    max_body_bytes: usize,
    budget: Arc<Semaphore>,
}

impl BodyFirst {
    pub fn new(timeout: Duration, max_body_bytes: usize) -> Self {
        let budget = body_budget_bytes(max_body_bytes).min(Semaphore::MAX_PERMITS);
        Self { timeout, max_body_bytes, budget: Arc::new(Semaphore::new(budget)) }
    }
}

/// Middleware outside the concurrency limit: reads the whole body (at most the limit plus one byte)
/// within the body timeout, then hands the request on with the buffered body. A request without a body
/// passes straight through. The budget's bytes are held until the response is ready.
pub async fn read_body_first(State(first): State<BodyFirst>, request: Request, next: Next) -> Response {
    let (parts, mut body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let deadline = Instant::now() + first.timeout;
    let enough = first.max_body_bytes.saturating_add(1);
    let mut buffered = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while buffered.len() < enough {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return request_timeout(first.timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return unreadable_body(),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers are dropped: no route reads them.
        let Ok(data) = frame.into_data() else { continue };
        let take = data.len().min(enough - buffered.len());
        if take == 0 {
            continue;
        }
        let Ok(bytes) = u32::try_from(take) else { return unreadable_body() };
        let permit = match tokio::time::timeout_at(
            deadline,
            Arc::clone(&first.budget).acquire_many_owned(bytes),
        )
        .await
        {
            Err(_) => return request_timeout(first.timeout),
            Ok(Err(_)) => return unreadable_body(),
            Ok(Ok(permit)) => permit,
        };
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        buffered.extend_from_slice(&data[..take]);
    }
    let response = next.run(Request::from_parts(parts, Body::from(buffered))).await;
    drop(held);
    response
}

fn request_timeout(timeout: Duration) -> Response {
    let message = format!("the request body did not arrive within {} s", timeout.as_secs());
    let mut response = ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn unreadable_body() -> Response {
    let mut response =
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "the request body could not be read")
            .into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Descriptors kept free beside the connections: the database, the log, and one outgoing provider call
/// per request served at once, plus some slack.
fn reserved_descriptors(max_concurrent_requests: usize) -> usize {
    max_concurrent_requests.saturating_add(128)
}

/// Raises the soft file-descriptor limit to the hard one (as Go's runtime does) and answers the
/// connection cap that fits under it: the configured one, or lower with a warning.
pub fn fit_connection_cap(configured: usize, max_concurrent_requests: usize) -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct we own.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return configured;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = raised.rlim_cur;
            }
        }
        limit.rlim_cur
    };
    let available = usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserved_descriptors(max_concurrent_requests))
        .max(16);
    if configured > available {
        tracing::warn!(
            configured,
            used = available,
            file_descriptor_limit = soft,
            "OMNICHAT_MAX_CONNECTIONS does not fit under the file-descriptor limit (ulimit -n); using less"
        );
        return available;
    }
    configured
}

/// Connections the kernel queues for the accept loop (capped by `net.core.somaxconn`): a burst, or the
/// clients waiting while the runner is at its connection cap, wait there.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `address` (`SO_REUSEADDR`, as `TcpListener::bind` sets it) with [`LISTEN_BACKLOG`].
pub fn listen(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket =
        if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts and serves connections until `signal` resolves, then stops accepting and waits for the
/// connections' requests in flight to finish (idle ones close at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    signal: impl Future<Output = ()> + Send,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    // Graceful shutdown by hand: hyper-util's `GracefulShutdown` does not take connections that may be
    // upgraded (the live WebSocket). Each connection watches `stopping`; the permits tell when all are done.
    let (stopping, stop_seen) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let mut full = Throttled::new("connection limit reached: new connections wait until others close");
    let mut failing = Throttled::new("cannot accept connections");
    let mut signal = std::pin::pin!(signal);
    loop {
        let permit = match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                full.warn(limits.max_connections, "OMNICHAT_MAX_CONNECTIONS");
                tokio::select! {
                    permit = Arc::clone(&connections).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut signal => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and the like: wait a little instead of spinning.
                    failing.warn(limits.max_connections, &error.to_string());
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = &mut signal => break,
                    }
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let mut stop = stop_seen.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stop.changed() => {
                    // Finish the request in flight, then close; an idle connection closes at once.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every permit back: every connection has finished.
    let all = u32::try_from(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let _ = connections.acquire_many(all).await;
}

/// A warning logged at most once a minute, with how often it happened meanwhile.
struct Throttled {
    message: &'static str,
    last: Option<Instant>,
    since: u64,
}

impl Throttled {
    const EVERY: Duration = Duration::from_secs(60);

    fn new(message: &'static str) -> Self {
        Self { message, last: None, since: 0 }
    }

    fn warn(&mut self, max_connections: usize, detail: &str) {
        self.since += 1;
        if self.last.is_some_and(|last| last.elapsed() < Self::EVERY) {
            return;
        }
        tracing::warn!(max_connections, times = self.since, detail, "{}", self.message);
        self.last = Some(Instant::now());
        self.since = 0;
    }
}
