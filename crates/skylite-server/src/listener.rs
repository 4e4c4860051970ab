//! Accepting connections and serving HTTP/1.1 on them, plain or TLS: the one accept loop of the
//! server, and the rules that keep one client from holding connections it does not use.
//!
//! - **Connection cap** (`max_connections`, also bounded by the process's open-file limit): each
//!   connection holds a permit from accept until its socket closes, WebSocket included (the
//!   permit lives in the socket wrapper, which an upgrade hands over to the WebSocket). Beyond
//!   the cap a connection is accepted and closed at once (plain HTTP first gets a short 503), and
//!   refusals are logged at most every [`REFUSAL_LOG_PERIOD`].
//! - **Header timeout** (`header_timeout`): a request head must arrive within this time of its
//!   first byte, and a new connection must send its first request head within this time.
//! - **Keep-alive idle timeout** (`idle_timeout`): after a response, a connection that does not
//!   start its next request within this time is closed.
//! - **Body timeout** (`body_timeout`, `body_min_rate`): while the server waits for request
//!   body bytes, no wait may last longer than `body_timeout`, and the time spent waiting for the
//!   client may not exceed `body_timeout` plus one second per `body_min_rate` bytes received (so
//!   a trickled body is cut, a large upload at any sane speed is not). The request then gets a
//!   408 and the connection closes. The same `body_timeout` bounds how long a write to a peer
//!   that does not read may stall (responses and WebSocket frames alike).
//! - **TLS**: the handshake runs in the connection's own task under its time limit
//!   ([`crate::tls`]), holding a permit like any connection.
//!
//! Graceful shutdown: stop accepting, drop handshakes in progress, let each connection finish
//! the request it is running, and return once all are closed.
//!
//! hyper's HTTP/1.1 connection times only one thing, the wait for a request head (from the
//! moment the connection is ready for the next request). [`HeadTimer`] is the timer it is given:
//! it tells a keep-alive wait (no byte of the next request yet: `idle_timeout`) from a head in
//! progress (`header_timeout` from its first byte) by asking the socket wrapper ([`Tracked`]).

use skylite_engine::ErrorCode;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::error::ApiError;
use crate::tls::TlsConfig;
use crate::ServerConfig;

/// Refused connections are logged at most this often (with the count since the last line).
pub const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(10);

/// What a plain-HTTP connection beyond the cap reads before the server closes it.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
connection: close\r\n\
retry-after: 1\r\n\
content-length: 95\r\n\r\n\
{\"message\":\"the server has too many open connections; try again\",\"code\":\"TOO_MANY_CONNECTIONS\"}";

/// Timeouts are capped here, so deadlines computed from them never overflow.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// `at + wait`, saturating at (an absurdly far) `at + LONGEST_TIMEOUT`.
fn after(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait.min(LONGEST_TIMEOUT)).unwrap_or(at)
}

/// The connection rules, taken from the [`ServerConfig`] once at start.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    header_timeout: Duration,
    idle_timeout: Duration,
    body_timeout: Duration,
    body_min_rate: u64,
    max_connections: usize,
    shutdown_timeout: Duration,
}

impl Limits {
    /// The rules of `config`, with the connection cap lowered to what the process's open-file
    /// limit allows.
    pub(crate) fn new(config: &ServerConfig) -> Limits {
        let mut max_connections = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        if let Some(fds) = open_file_limit() {
            // Half the descriptors stay for SQLite (each open database file, WAL and shm of
            // every pooled connection) and the data folder.
            let allowed = usize::try_from(fds / 2).unwrap_or(usize::MAX).max(1);
            if allowed < max_connections {
                tracing::warn!(
                    "the open-file limit is {fds}: serving at most {allowed} connections instead \
                     of --max-connections {max_connections} (raise the limit with ulimit -n)"
                );
                max_connections = allowed;
            }
        }
        let timeout = |d: Duration| d.clamp(Duration::from_millis(1), LONGEST_TIMEOUT);
        Limits {
            header_timeout: timeout(config.header_timeout),
            idle_timeout: timeout(config.idle_timeout),
            body_timeout: timeout(config.body_timeout),
            body_min_rate: config.body_min_rate,
            max_connections,
            shutdown_timeout: timeout(config.shutdown_timeout),
        }
    }
}

/// Raises the soft open-file limit to the hard one (as servers commonly do) and returns it;
/// `None` when there is no limit or it cannot be read.
#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one `rlimit` through a valid pointer. It fails (and changes
        // nothing) where the hard limit is above what the system allows: keep the soft one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    // `rlim_t` is not `u64` on every platform.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Serves `router` on `listener` (over TLS when `tls` is set) until `shutdown` resolves; then
/// stops accepting, lets every connection finish the request it is running, and returns once
/// all have closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    // The certificate is picked per connection, so a reload applies to the next handshake.
    let tls = tls.map(|tls| {
        let timeout = tls.handshake_timeout;
        (tls, timeout)
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut refusals = RefusalLog::default();
    // `true` once shutdown has begun; every connection task watches it.
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; `closed()` resolves when the last one is gone.
    let (alive_tx, alive_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if tls.is_none() {
                // Best effort and never blocking: a fresh socket's send buffer is empty.
                let _ = tcp.try_write(REFUSAL);
            }
            drop(tcp);
            refusals.note(peer, limits.max_connections);
            continue;
        };
        let conn = Conn {
            router: router.clone(),
            limits: limits.clone(),
            tls: tls.clone(),
            stop: stop_rx.clone(),
            permit,
        };
        let alive = alive_rx.clone();
        tokio::spawn(async move {
            conn.run(tcp, peer).await;
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_rx);
    // Requests in flight finish, but not for ever (`--shutdown-timeout`); the caller rolls back
    // what is left open either way.
    if tokio::time::timeout(limits.shutdown_timeout, alive_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_s = limits.shutdown_timeout.as_secs_f64(),
            "shutdown: connections still busy after --shutdown-timeout; closing anyway"
        );
    }
    Ok(())
}

/// Errors of one incoming connection, not of the listener: the loop just goes on.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Logs refused connections without letting a flood of them flood the log.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn note(&mut self, peer: SocketAddr, cap: usize) {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_PERIOD)
        {
            return;
        }
        tracing::warn!(
            %peer,
            refused = self.unlogged,
            "refusing connections: {cap} are open (--max-connections)"
        );
        self.last = Some(now);
        self.unlogged = 0;
    }
}

/// What one connection task needs.
struct Conn {
    router: Router,
    limits: Arc<Limits>,
    tls: Option<(TlsConfig, Duration)>,
    stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
}

impl Conn {
    async fn run(mut self, tcp: TcpStream, peer: SocketAddr) {
        // Replies are small and often written back to back (WebSocket responses, pipelined
        // requests): without TCP_NODELAY, Nagle's algorithm holds the second one ~40 ms.
        let _ = tcp.set_nodelay(true);
        match self.tls.take() {
            None => self.serve(tcp, peer).await,
            Some((tls, timeout)) => {
                let acceptor = TlsAcceptor::from(tls.rustls_config());
                let handshake = crate::tls::handshake(&acceptor, tcp, timeout, peer);
                let stream = tokio::select! {
                    stream = handshake => stream,
                    () = stopped(&mut self.stop) => return,
                };
                if let Some(stream) = stream {
                    self.serve(stream, peer).await;
                }
            }
        }
    }

    /// Serves HTTP/1.1 (with upgrades, so WebSocket works) on `io` until it closes.
    async fn serve<S>(mut self, io: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.limits;
        let clock = Arc::new(HeadClock::default());
        let io = Tracked {
            inner: io,
            clock: clock.clone(),
            stall_timeout: limits.body_timeout,
            stall: None,
            _permit: self.permit,
        };
        let router = self.router;
        let service_limits = limits.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            handle(router.clone(), service_limits.clone(), req)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(HeadTimer {
                clock,
                header_timeout: limits.header_timeout,
                idle_timeout: limits.idle_timeout,
            })
            // What hyper is told only bounds [`HeadTimer`] from above; see there.
            .header_read_timeout(limits.header_timeout.saturating_add(limits.idle_timeout));
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut connection = pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stopped(&mut self.stop) => {
                // Finish the request in progress (if any), then close.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "connection ended with an error: {e}");
        }
    }
}

/// Resolves once shutdown has begun (or the accept loop is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// One request: the router, with the body under the body timeout. A request whose body timed
/// out gets a 408 (whatever the handler made of the failed read) and the connection closes.
async fn handle(
    router: Router,
    limits: Arc<Limits>,
    req: Request<Incoming>,
) -> Result<Response, Infallible> {
    use tower::ServiceExt;
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        Body::new(TimedBody {
            inner: body,
            gap: limits.body_timeout,
            min_rate: limits.body_min_rate,
            bytes: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            expired: expired.clone(),
        })
    });
    let response = match router.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if !expired.load(Ordering::Relaxed) {
        return Ok(response);
    }
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::BodyTimeout,
        format!(
            "the request body arrived too slowly (no progress for {} s, or slower than {} bytes/s; \
             see --body-timeout)",
            limits.body_timeout.as_secs_f64(),
            limits.body_min_rate
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

/// A request body that fails (and flags `expired`) when the client is too slow to send it.
///
/// Only the time the server spends waiting for the client counts (a handler that pauses
/// between reads, say to write a chunk to disk, is not the client's fault): no single wait may
/// exceed `gap`, and all waits together may not exceed `gap` plus one second per `min_rate`
/// bytes received (`min_rate` 0: no rate rule).
struct TimedBody {
    inner: Incoming,
    gap: Duration,
    min_rate: u64,
    bytes: u64,
    /// Time spent in waits that ended.
    waited: Duration,
    /// When the current wait began.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

/// The error a [`TimedBody`] ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
struct BodyTimeout;

impl TimedBody {
    /// When the current wait (begun at `since`) must end.
    fn deadline(&self, since: Instant) -> Instant {
        let gap_deadline = after(since, self.gap);
        if self.min_rate == 0 {
            return gap_deadline;
        }
        let earned = Duration::from_secs(self.bytes / self.min_rate);
        let allowed = self.gap.saturating_add(earned).saturating_sub(self.waited);
        gap_deadline.min(after(since, allowed))
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited = this.waited.saturating_add(since.elapsed());
                }
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    this.bytes = this
                        .bytes
                        .saturating_add(data.map_or(0, |d| d.len() as u64));
                }
                Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)))
            }
            Poll::Pending => {
                let since = *this.waiting_since.get_or_insert_with(Instant::now);
                let deadline = this.deadline(since);
                let timer = match &mut this.timer {
                    Some(timer) => {
                        if timer.deadline() != deadline {
                            timer.as_mut().reset(deadline);
                        }
                        timer
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                ready!(timer.as_mut().poll(cx));
                this.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyTimeout.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the socket wrapper tells the head timer: when the first byte after the timer was
/// armed arrived, and how many times it was armed.
#[derive(Default)]
struct HeadClock {
    state: Mutex<HeadClockState>,
}

#[derive(Default)]
struct HeadClockState {
    first_byte: Option<Instant>,
    armed: u64,
}

impl HeadClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, HeadClockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A wait for a request head begins: returns whether it is the connection's first.
    fn arm(&self) -> bool {
        let mut state = self.lock();
        state.first_byte = None;
        state.armed += 1;
        state.armed == 1
    }

    fn saw_bytes(&self) {
        let mut state = self.lock();
        if state.first_byte.is_none() {
            state.first_byte = Some(Instant::now());
        }
    }

    fn first_byte(&self) -> Option<Instant> {
        self.lock().first_byte
    }
}

/// The timer hyper's HTTP/1.1 server connection is given. hyper (1.x) uses its timer for one
/// thing only: the header read timeout, armed each time the connection starts waiting for a
/// request head (at accept, and after each response) and dropped once the head is parsed. This
/// timer turns that single deadline into two: `idle_timeout` until the first byte of the next
/// request (`header_timeout` on a new connection, which must speak promptly), then
/// `header_timeout` from that byte. The deadline hyper asks for stays an upper bound. (Bytes of a
/// pipelined next request read before the wait began do not count as its first byte: such a
/// head gets at most `idle_timeout` + `header_timeout`, still bounded.)
#[derive(Clone)]
struct HeadTimer {
    clock: Arc<HeadClock>,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl HeadTimer {
    fn arm(&self, bound: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let first = self.clock.arm();
        let armed_at = Instant::now();
        let idle = if first {
            self.header_timeout
        } else {
            self.idle_timeout
        };
        Box::pin(HeadSleep {
            clock: self.clock.clone(),
            header_timeout: self.header_timeout,
            idle_deadline: after(armed_at, idle).min(bound),
            bound,
            sleep: Box::pin(tokio::time::sleep_until(after(armed_at, idle).min(bound))),
        })
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(PlainSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.arm(Instant::from_std(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        *sleep = self.arm(Instant::from_std(new_deadline));
    }
}

/// The wait for one request head (see [`HeadTimer`]).
struct HeadSleep {
    clock: Arc<HeadClock>,
    header_timeout: Duration,
    /// When the wait ends if no byte arrives.
    idle_deadline: Instant,
    /// The deadline hyper asked for.
    bound: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let deadline = match this.clock.first_byte() {
            Some(first) => after(first, this.header_timeout).min(this.bound),
            None => this.idle_deadline,
        };
        if this.sleep.deadline() != deadline {
            this.sleep.as_mut().reset(deadline);
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

/// An ordinary sleep, for any other use hyper might make of its timer.
struct PlainSleep(Pin<Box<Sleep>>);

impl Future for PlainSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for PlainSleep {}

/// A connection's socket (TCP, or TLS over TCP): holds the connection's permit for as long as
/// the socket lives (through a WebSocket upgrade too), tells the [`HeadClock`] when bytes
/// arrive, and fails a write that makes no progress for `stall_timeout` (a peer that stopped
/// reading).
struct Tracked<S> {
    inner: S,
    clock: Arc<HeadClock>,
    stall_timeout: Duration,
    /// Running while a write (or flush) waits for the peer to read.
    stall: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl<S> Tracked<S> {
    /// Passes `poll` through; a `Pending` that lasts `stall_timeout` becomes an error.
    fn watch_stall<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stall = None;
            return poll;
        }
        let stall_timeout = self.stall_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall_timeout)));
        ready!(stall.as_mut().poll(cx));
        self.stall = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer stopped reading",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.saw_bytes();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch_stall(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch_stall(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch_stall(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch_stall(cx, poll)
    }
}
