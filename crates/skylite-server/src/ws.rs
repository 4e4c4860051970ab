//! Hrana over WebSocket (`GET /` with an upgrade): subprotocols `hrana1`, `hrana2`, `hrana3`
//! (JSON in text frames) and `hrana3-protobuf` (Protobuf in binary frames).
//!
//! One socket, many streams. The path of a request:
//!
//! 1. **Connection task** ([`Connection::run`]) reads a frame, decodes a `ClientMsg`, and checks
//!    it (frame type, `hello` first, request allowed by the negotiated version). Protocol
//!    violations close the socket (see [`CloseReason`]); a bad *request* only gets a
//!    `response_error`.
//! 2. Connection-wide requests are answered right there: `open_stream` (spawns the stream's
//!    task), `store_sql`/`close_sql` (one [`SqlStore`] for the whole socket), errors. Requests
//!    that name a stored SQL text get the text substituted here, so stored SQL behaves in the
//!    order the client sent its messages even though streams run in parallel.
//! 3. **Stream task** ([`stream_task`]): each stream has one task and a bounded queue, so its
//!    requests run strictly in order while different streams run in parallel. Every request
//!    that touches SQL runs on the engine's worker pool (`blocking::run`) through the stream's
//!    [`Session`], followed by `finish_pipeline` (durability) before the response is encoded.
//! 4. **Cursors**: `open_cursor` queues on its stream; when the stream reaches it, the batch runs
//!    on a blocking thread into a bounded channel, and the stream then waits until the cursor
//!    is closed. `fetch_cursor`/`close_cursor` go to the cursor's own task ([`cursor_task`]),
//!    which hands out up to `max_count` entries per fetch and `done` when the batch finished
//!    (after durability).
//! 5. Responses come back to the connection task through one bounded queue and are written to
//!    the socket in completion order.
//!
//! A connection is bound to the database its upgrade request names ([`crate::routing`]), but
//! only once a token proves it may open it: an upgrade without a token is bound when `hello`
//! brings one ([`bind_on_hello`]), so before that nothing is looked up or opened. If the
//! database is deleted, the next request closes the socket (1001).
//!
//! The governor (the same rules as over HTTP, through [`crate::exec`]):
//! - **Requests**: at most [`MAX_OUTSTANDING`] outstanding requests per socket, and the bytes of
//!   queued requests at most 2 × `--max-body-size`; at either limit the connection task stops
//!   reading the socket (TCP flow control reaches the client) until a stream finishes a job.
//!   Stored SQL a queued request refers to is pinned (shared, not copied) when it is queued.
//! - **Responses**: at most [`MAX_RUNNING`] requests of a socket run (or hold a finished
//!   response) at once, and the response queue holds at most [`RESPONSE_QUEUE_BYTES`]. Every
//!   socket write has a deadline (`send_timeout`): a client that reads nothing for that long is
//!   closed, and its streams roll back. A stream task waiting to hand over a response while its
//!   transaction holds the write lock gives the lock up as soon as a waiting writer revokes it
//!   (after `--txn-timeout`), so a client that stops reading never blocks other writers longer.
//! - **Cursors**: entries go through a pipe of [`CURSOR_BUFFER_BYTES`]; a batch blocked on a
//!   client that does not fetch gives up after `send_timeout`, or at once on revocation, and
//!   rolls back (`TRANSACTION_TIMEOUT`).
//! - **`hello`**: a socket that does not send it within `ws_hello_timeout` is closed (1008).
//!
//! When the socket ends (closed, dropped, or a violation), the stream queues close; each stream
//! task skips its remaining requests, and rolls back and frees its session on a blocking thread,
//! so an abandoned transaction releases the write lock at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use serde::Deserialize;
use skylite_engine::session::{batch_sql_ids, referenced_sql_ids};
use skylite_engine::{Database, ErrorCode, LockWatch, PinnedSql, Session, SqlStore};
use skylite_proto::pb::hrana::ws as pbws;
use skylite_proto::protobuf::{self, FromProto};
use skylite_proto::ws::{ClientMsg, Request, Response as WsResponse, ServerMsg};
use skylite_proto::{
    Batch, CursorEntry, Error as ProtoError, StreamRequest, StreamResponse, StreamResult, Value,
};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::blocking::{PipeReceiver, PipeSender, SendError, SendLimits};

use crate::app::App;
use crate::databases::{DbHandle, WebSocketGuard};
use crate::error::ApiError;
use crate::routing::{self, DbSelector, UpgradeTarget};

/// Most requests of one socket queued or running at once; beyond it the socket is not read.
pub const MAX_OUTSTANDING: usize = 128;
/// Most streams open on one socket.
pub const MAX_STREAMS: usize = 1024;
/// Most cursors (open or failed, not yet closed) on one socket.
pub const MAX_CURSORS: usize = 1024;
/// Most entries one `fetch_cursor` returns, whatever its `max_count`.
const FETCH_MAX_ENTRIES: usize = 4096;
/// A `fetch_cursor` stops adding entries once they are estimated to be this large.
const FETCH_SOFT_BYTES: usize = 4 * 1024 * 1024;
/// How often an idle stream in a transaction checks whether waiting writers revoked its lock.
const REVOCATION_CHECK: Duration = Duration::from_millis(200);
/// Requests of one socket that run at once (each on its own stream); a finished one keeps its
/// slot until its response is in the response queue, so a socket that is not read holds at
/// most this many responses besides the queue.
pub const MAX_RUNNING: usize = 16;
/// Bytes of a cursor's entries produced ahead of the client's fetches.
pub const CURSOR_BUFFER_BYTES: usize = 1024 * 1024;
/// Bytes of responses queued for the connection task (beyond them, tasks wait to hand theirs
/// over; a single larger response still goes, alone).
pub const RESPONSE_QUEUE_BYTES: usize = 8 * 1024 * 1024;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A WebSocket subprotocol of Hrana.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subprotocol {
    /// `hrana1`: version 1, JSON.
    Hrana1,
    /// `hrana2`: version 2, JSON.
    Hrana2,
    /// `hrana3`: version 3, JSON.
    Hrana3,
    /// `hrana3-protobuf`: version 3, Protobuf.
    Hrana3Protobuf,
}

impl Subprotocol {
    /// From newest to oldest; when a client offers several, the first one it offers in this
    /// order wins (for version 3, Protobuf before JSON: a client that offers it can read it).
    pub const PREFERENCE: [Subprotocol; 4] = [
        Subprotocol::Hrana3Protobuf,
        Subprotocol::Hrana3,
        Subprotocol::Hrana2,
        Subprotocol::Hrana1,
    ];

    /// The token in `Sec-WebSocket-Protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Subprotocol::Hrana1 => "hrana1",
            Subprotocol::Hrana2 => "hrana2",
            Subprotocol::Hrana3 => "hrana3",
            Subprotocol::Hrana3Protobuf => "hrana3-protobuf",
        }
    }

    /// The Hrana version.
    pub fn version(self) -> u8 {
        match self {
            Subprotocol::Hrana1 => 1,
            Subprotocol::Hrana2 => 2,
            Subprotocol::Hrana3 | Subprotocol::Hrana3Protobuf => 3,
        }
    }

    /// True for the Protobuf encoding.
    pub fn is_protobuf(self) -> bool {
        self == Subprotocol::Hrana3Protobuf
    }
}

/// Picks the subprotocol from the `Sec-WebSocket-Protocol` header values a client sent.
///
/// - no header (or only empty ones): `Ok(None)`, meaning `hrana1` without answering the header
///   (what Hrana 1 clients that predate the header expect);
/// - some Hrana subprotocol offered: the newest one;
/// - only unknown subprotocols: `Err` with the offered list, refused with 400.
pub fn negotiate<'a>(
    offered: impl IntoIterator<Item = &'a HeaderValue>,
) -> Result<Option<Subprotocol>, String> {
    let tokens: Vec<String> = offered
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Ok(None);
    }
    for proto in Subprotocol::PREFERENCE {
        if tokens.iter().any(|t| t == proto.name()) {
            return Ok(Some(proto));
        }
    }
    Err(tokens.join(", "))
}

/// Why the server closes a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The WebSocket close code.
    pub code: u16,
    /// A human-readable reason (cut to the 123 bytes a close frame allows).
    pub reason: String,
}

impl CloseReason {
    /// 1002 (RFC 6455 "protocol error"): a message that breaks the Hrana protocol: unknown or
    /// missing message type, a request before `hello`, a malformed `hello` or `request`
    /// envelope.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003 ("unsupported data"): a frame of the wrong type for the negotiated encoding
    /// (binary on JSON, text on Protobuf).
    pub const WRONG_FRAME_TYPE: u16 = 1003;
    /// 1007 ("invalid frame payload data"): a payload that is not valid JSON or Protobuf.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1009 ("message too big"): a message beyond the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Going away: the database the connection is bound to was deleted.
    pub const GOING_AWAY: u16 = 1001;
    /// 1008 ("policy violation"): the `hello` token was refused (after `hello_error`).
    pub const POLICY_VIOLATION: u16 = 1008;

    fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseReason {
            code,
            reason: reason.into(),
        }
    }

    fn frame(&self) -> CloseFrame {
        let mut reason = self.reason.clone();
        if reason.len() > 123 {
            let mut cut = 120;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push_str("...");
        }
        CloseFrame {
            code: self.code,
            reason: reason.into(),
        }
    }
}

/// A WebSocket whose every write has a deadline.
struct TimedSocket {
    inner: WebSocket,
    send_timeout: Duration,
}

impl TimedSocket {
    /// Writes a message; a client that does not take it within the send timeout (plus time
    /// for a large message at [`MIN_DRAIN_RATE`], so a slow but reading client is not cut off)
    /// is an error, and the connection then ends.
    async fn send(&mut self, msg: Message) -> Result<(), axum::Error> {
        let transfer = Duration::from_secs_f64(message_len(&msg) as f64 / MIN_DRAIN_RATE);
        let deadline = self.send_timeout.saturating_add(transfer);
        match tokio::time::timeout(deadline, self.inner.send(msg)).await {
            Ok(result) => result,
            Err(_) => Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {} s",
                    self.send_timeout.as_secs_f64()
                ),
            ))),
        }
    }

    /// Reads the next message.
    async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        self.inner.recv().await
    }
}

/// The slowest reading (bytes per second) a socket write allows for beyond the send timeout.
const MIN_DRAIN_RATE: f64 = 256.0 * 1024.0;

/// How long the server waits for the client's answering Close frame.
const CLOSE_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends a Close frame and then reads (and drops) what the client still sends until its own
/// Close arrives. Dropping the socket right after our Close would make the kernel answer the
/// client's in-flight frames with a TCP reset, and the client would lose the frames we sent
/// just before (a `hello_error`, the close reason) and see only "connection reset".
async fn close_gracefully(socket: &mut TimedSocket, frame: axum::extract::ws::CloseFrame) {
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let drain = async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, drain).await;
}

/// `GET /`: upgrades to Hrana over WebSocket. A plain `GET /` (no upgrade) gets a short text.
///
/// An upgrade without a token is not bound to a database yet ([`UpgradeTarget::Pending`]):
/// nothing is looked up or opened, so it gets 101 whether or not the database exists. The
/// database is resolved and opened by [`bind_on_hello`] once `hello` carries a token that
/// opens it.
pub async fn upgrade(
    State(app): State<App>,
    target: UpgradeTarget,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            if headers.get(header::UPGRADE).is_none() {
                return (
                    StatusCode::OK,
                    "skylite: Hrana over WebSocket is served here (subprotocols hrana1, hrana2, \
                     hrana3, hrana3-protobuf); Hrana over HTTP at /v2, /v3 and /v3-protobuf\n",
                )
                    .into_response();
            }
            return rejection.into_response();
        }
    };
    let proto = match negotiate(headers.get_all(header::SEC_WEBSOCKET_PROTOCOL)) {
        Ok(Some(proto)) => {
            ws.set_selected_protocol(HeaderValue::from_static(proto.name()));
            proto
        }
        Ok(None) => Subprotocol::Hrana1,
        Err(offered) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::Protocol,
                format!(
                    "none of the offered WebSocket subprotocols ({offered}) is supported; \
                     this server speaks hrana3-protobuf, hrana3, hrana2 and hrana1"
                ),
            )
            .into_response();
        }
    };
    let limit = app.config.max_body_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
            // Every write gets a deadline, from the first one (`hello_ok`) on: a client that
            // does not read its responses is closed after the send timeout, and its streams
            // roll back and free the write lock.
            let mut socket = TimedSocket {
                inner: socket,
                send_timeout: app.config.send_timeout,
            };
            match target {
                UpgradeTarget::Bound(bound) => {
                    Connection::new(app, bound.db, id, proto).run(socket).await;
                }
                UpgradeTarget::Pending(selector) => {
                    let Some((db, jwt)) =
                        bind_on_hello(&app, &mut socket, id, proto, &selector).await
                    else {
                        return;
                    };
                    let mut conn = Connection::new(app, db, id, proto);
                    conn.hello = true;
                    conn.jwt = jwt;
                    conn.run(socket).await;
                }
            }
        })
}

/// The first phase of a socket upgraded without a token: waits for `hello`, authenticates its
/// JWT, checks the claims on the name the upgrade asked for, and only then resolves and opens
/// the database ([`routing::open_authorized`]). Answers `hello_ok` and returns the database and
/// the token; on a refusal (bad token, a token for another database, a missing database:
/// `DATABASE_NOT_FOUND`) answers `hello_error` and closes (1008). A request before `hello`, a
/// protocol violation or no `hello` within `ws_hello_timeout` closes the socket.
async fn bind_on_hello(
    app: &App,
    socket: &mut TimedSocket,
    conn_id: u64,
    proto: Subprotocol,
    selector: &DbSelector,
) -> Option<(Arc<DbHandle>, Option<String>)> {
    // Until `hello` the socket holds no database, but it holds a connection.
    let hello_timeout = app.config.ws_hello_timeout;
    let deadline = tokio::time::Instant::now() + hello_timeout;
    let jwt = loop {
        let frame = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Ok(frame) => frame,
            Err(_) => {
                let why = CloseReason::new(
                    CloseReason::POLICY_VIOLATION,
                    format!("no hello message within {} s", hello_timeout.as_secs_f64()),
                );
                tracing::info!(conn = conn_id, "{}", why.reason);
                close_gracefully(socket, why.frame()).await;
                return None;
            }
        };
        let incoming = match frame {
            // Closed, or unreadable (a message beyond the size limit among others): nothing
            // is bound yet, so there is nothing to clean up.
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Text(text))) if !proto.is_protobuf() => decode_json(text.as_str()),
            Some(Ok(Message::Binary(bytes))) if proto.is_protobuf() => decode_protobuf(&bytes),
            Some(Ok(_)) => Incoming::Violation(CloseReason::new(
                CloseReason::WRONG_FRAME_TYPE,
                format!("wrong frame type for {}", proto.name()),
            )),
        };
        match incoming {
            Incoming::Ignore => continue,
            Incoming::Closed => return None,
            Incoming::Msg(ClientMsg::Hello { jwt }) => break jwt,
            Incoming::Violation(why) => {
                tracing::warn!(conn = conn_id, code = why.code, "{}", why.reason);
                close_gracefully(socket, why.frame()).await;
                return None;
            }
            Incoming::Msg(ClientMsg::Request { .. }) | Incoming::BadRequest { .. } => {
                let why = CloseReason::new(
                    CloseReason::PROTOCOL_ERROR,
                    "a request came before the hello message",
                );
                tracing::warn!(conn = conn_id, code = why.code, "{}", why.reason);
                close_gracefully(socket, why.frame()).await;
                return None;
            }
        }
    };
    let bound = match app.auth.authenticate(jwt.as_deref()) {
        Ok(principal) => routing::open_authorized(app, selector, &principal).await,
        Err(e) => Err(routing::auth_error(e)),
    };
    match bound {
        Ok((db, _grant)) => {
            // The grant is decided again on every request (`Connection::authorize`): the token
            // may expire or be revoked while the socket lives.
            if socket
                .send(encode_msg(proto, ServerMsg::HelloOk))
                .await
                .is_err()
            {
                return None;
            }
            Some((db, jwt))
        }
        Err(refused) => {
            tracing::info!(conn = conn_id, code = %refused.code, "hello refused: {}", refused.message);
            let error = ProtoError::new(refused.code, refused.message.clone());
            let _ = socket
                .send(encode_msg(proto, ServerMsg::HelloError { error }))
                .await;
            let why = CloseReason::new(CloseReason::POLICY_VIOLATION, refused.message);
            close_gracefully(socket, why.frame()).await;
            None
        }
    }
}

/// A message for the client, already encoded.
type Outgoing = Message;

/// A response waiting for the connection task, with its share of the response-queue bytes
/// (given back when the connection task has written it).
struct Queued {
    msg: Outgoing,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// The receiving end is gone (the socket closed).
#[derive(Debug)]
struct OutboxClosed;

/// The queue through which stream and cursor tasks hand responses to the connection task.
/// Bounded in bytes ([`RESPONSE_QUEUE_BYTES`]) as well as in messages: a task whose response
/// does not fit waits (while its transaction stays revocable, see [`deliver`]).
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
}

impl Outbox {
    fn new() -> (Outbox, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(MAX_OUTSTANDING);
        let outbox = Outbox {
            tx,
            bytes: Arc::new(Semaphore::new(RESPONSE_QUEUE_BYTES)),
        };
        (outbox, rx)
    }

    /// Queues a response, waiting while the queue is full.
    async fn send(&self, msg: Outgoing) -> Result<(), OutboxClosed> {
        // A response larger than the whole queue takes all of it (it still goes out alone).
        let size = message_len(&msg).clamp(1, RESPONSE_QUEUE_BYTES);
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        let permit = self
            .bytes
            .clone()
            .acquire_many_owned(size)
            .await
            .map_err(|_| OutboxClosed)?;
        self.tx
            .send(Queued {
                msg,
                _bytes: Some(permit),
            })
            .await
            .map_err(|_| OutboxClosed)
    }

    /// True once the connection task is gone.
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Bytes of a message's payload.
fn message_len(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

/// What the tasks of a connection share.
#[derive(Clone)]
struct Ctx {
    conn_id: u64,
    proto: Subprotocol,
    db: Database,
    workers: skylite_engine::Workers,
    max_response_bytes: usize,
    /// How long a send to a client that does not read may wait (`ServerConfig::send_timeout`).
    send_timeout: Duration,
    /// Requests of this socket running or holding a response not yet handed over
    /// ([`MAX_RUNNING`] permits).
    runners: Arc<Semaphore>,
}

impl Ctx {
    /// Encodes a server message in the connection's encoding.
    fn encode(&self, msg: ServerMsg) -> Outgoing {
        encode_msg(self.proto, msg)
    }
}

fn encode_msg(proto: Subprotocol, msg: ServerMsg) -> Outgoing {
    if proto.is_protobuf() {
        Message::Binary(protobuf::encode(msg).into())
    } else {
        match serde_json::to_string(&msg) {
            Ok(text) => Message::Text(text.into()),
            Err(e) => {
                // Only non-string map keys or failing serializers could get here; none exist in
                // these types. Answer with an error rather than dropping the response.
                let fallback = match msg {
                    ServerMsg::ResponseOk { request_id, .. }
                    | ServerMsg::ResponseError { request_id, .. } => ServerMsg::ResponseError {
                        request_id,
                        error: ProtoError::new(
                            ErrorCode::Internal,
                            format!("cannot encode the response: {e}"),
                        ),
                    },
                    other => other,
                };
                Message::Text(serde_json::to_string(&fallback).unwrap_or_default().into())
            }
        }
    }
}

fn error_msg(request_id: i32, code: ErrorCode, message: impl Into<String>) -> ServerMsg {
    ServerMsg::ResponseError {
        request_id,
        error: ProtoError::new(code, message),
    }
}

/// A request waiting in (or taken from) a stream's queue.
enum StreamJob {
    /// `execute`, `batch`, `sequence`, `describe`, `get_autocommit`.
    Run {
        request_id: i32,
        request: StreamRequest,
        /// The token allows reads only.
        read_only: bool,
        /// The stored SQL texts the request refers to, as they were when it was queued.
        pinned: PinnedSql,
    },
    /// `open_cursor`: run `batch` into `entries`, then wait for `closed`.
    OpenCursor {
        request_id: i32,
        /// The token allows reads only.
        read_only: bool,
        batch: Batch,
        pinned: PinnedSql,
        entries: PipeSender<CursorEntry>,
        closed: oneshot::Receiver<()>,
    },
    /// `close_stream`.
    Close { request_id: i32 },
}

/// A job in a stream's queue with its share of the socket's queued-request bytes, given back
/// when the job is done (for a cursor: when its batch is over).
struct Job {
    job: StreamJob,
    _charge: Option<OwnedSemaphorePermit>,
}

/// A request for a cursor's task.
enum CursorJob {
    Fetch { request_id: i32, max_count: u32 },
    Close { request_id: i32 },
}

/// A cursor as the connection task knows it.
enum CursorHandle {
    /// Its `open_cursor` failed before reaching a stream; fetches get this error.
    Failed(String),
    /// Running: its task's queue, and the stream it belongs to.
    Open {
        stream_id: i32,
        jobs: mpsc::Sender<CursorJob>,
    },
}

/// The connection task's state.
struct Connection {
    ctx: Ctx,
    app: App,
    /// The database this connection was opened for; every stream runs on it.
    target: Arc<DbHandle>,
    /// Counts this connection on its database while it lives.
    _counted: WebSocketGuard,
    hello: bool,
    /// The client's token from its last `hello`, checked again on every request (it may expire
    /// or be revoked while the socket lives).
    jwt: Option<String>,
    sqls: SqlStore,
    streams: HashMap<i32, mpsc::Sender<Job>>,
    cursors: HashMap<i32, CursorHandle>,
    out_tx: Outbox,
    out_rx: mpsc::Receiver<Queued>,
    /// Requests handed to a task whose response has not been written yet.
    outstanding: usize,
    /// Bytes of requests waiting in stream queues (2 × `--max-body-size` permits); the socket
    /// is not read while none are left.
    request_bytes: Arc<Semaphore>,
    /// The size of the frame being dispatched (charged to `request_bytes` if it is queued).
    frame_bytes: usize,
}

/// What one incoming frame turned out to be.
enum Incoming {
    Msg(ClientMsg),
    /// A `request` envelope whose request could not be decoded.
    BadRequest {
        request_id: i32,
        message: String,
    },
    Violation(CloseReason),
    Ignore,
    Closed,
}

impl Connection {
    fn new(app: App, target: Arc<DbHandle>, conn_id: u64, proto: Subprotocol) -> Self {
        let (out_tx, out_rx) = Outbox::new();
        let ctx = Ctx {
            conn_id,
            proto,
            db: target.database().clone(),
            workers: app.workers.clone(),
            max_response_bytes: app.config.engine.max_response_bytes,
            send_timeout: app.config.send_timeout,
            runners: Arc::new(Semaphore::new(MAX_RUNNING)),
        };
        let queued_cap = app
            .config
            .max_body_bytes
            .saturating_mul(2)
            .clamp(1, Semaphore::MAX_PERMITS);
        let counted = target.websocket_guard();
        Connection {
            ctx,
            app,
            target,
            _counted: counted,
            hello: false,
            jwt: None,
            sqls: SqlStore::default(),
            streams: HashMap::new(),
            cursors: HashMap::new(),
            out_tx,
            out_rx,
            outstanding: 0,
            request_bytes: Arc::new(Semaphore::new(queued_cap)),
            frame_bytes: 0,
        }
    }

    async fn run(mut self, mut socket: TimedSocket) {
        let conn_id = self.ctx.conn_id;
        tracing::info!(
            conn = conn_id,
            subprotocol = self.ctx.proto.name(),
            database = self.target.name(),
            "websocket connection opened"
        );
        // Keepalive: a ping every period; a peer that sends nothing at all (not even the pong
        // every WebSocket library answers with) for three periods is gone without a TCP close.
        let period = self.app.config.ws_keepalive.max(Duration::from_millis(10));
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = tokio::time::Instant::now();
        // A socket must say `hello` soon: an upgraded socket that never does would otherwise
        // hold a connection (and a task) for as long as it answers pings.
        let hello_timeout = self.app.config.ws_hello_timeout;
        let hello_deadline = tokio::time::sleep(hello_timeout);
        tokio::pin!(hello_deadline);
        let end = loop {
            // Reading stops while the queued requests hold their byte budget (or their count);
            // it resumes when a stream finishes a job and gives its bytes back.
            let bytes_left = self.request_bytes.available_permits() > 0;
            let incoming = tokio::select! {
                biased;
                Some(out) = self.out_rx.recv() => {
                    self.outstanding = self.outstanding.saturating_sub(1);
                    // A client that does not read its responses is closed after the send
                    // timeout: its streams then roll back and free the write lock.
                    if let Err(e) = socket.send(out.msg).await {
                        break format!("send failed: {e}");
                    }
                    continue;
                }
                frame = socket.recv(), if self.outstanding < MAX_OUTSTANDING && bytes_left => {
                    last_heard = tokio::time::Instant::now();
                    self.frame_bytes = match &frame {
                        Some(Ok(msg)) => message_len(msg),
                        _ => 0,
                    };
                    self.classify(frame)
                }
                permit = self.request_bytes.clone().acquire_owned(), if !bytes_left => {
                    // Woken because a queued request gave its bytes back: read again.
                    drop(permit);
                    continue;
                }
                () = &mut hello_deadline, if !self.hello => {
                    let why = CloseReason::new(
                        CloseReason::POLICY_VIOLATION,
                        format!("no hello message within {} s", hello_timeout.as_secs_f64()),
                    );
                    tracing::info!(conn = conn_id, "{}", why.reason);
                    close_gracefully(&mut socket, why.frame()).await;
                    break why.reason;
                }
                _ = keepalive.tick() => {
                    if last_heard.elapsed() >= period * 3 {
                        break "the peer stopped answering pings".to_owned();
                    }
                    if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                        break format!("send failed: {e}");
                    }
                    continue;
                }
            };
            let is_request = matches!(
                incoming,
                Incoming::BadRequest { .. } | Incoming::Msg(ClientMsg::Request { .. })
            );
            if is_request && !self.hello {
                let why = CloseReason::new(
                    CloseReason::PROTOCOL_ERROR,
                    "a request came before the hello message",
                );
                tracing::warn!(conn = conn_id, code = why.code, "{}", why.reason);
                close_gracefully(&mut socket, why.frame()).await;
                break why.reason;
            }
            match incoming {
                Incoming::Ignore => {}
                Incoming::Closed => break "closed by the client".to_owned(),
                Incoming::Violation(why) => {
                    tracing::warn!(
                        conn = conn_id,
                        code = why.code,
                        "protocol violation, closing the websocket: {}",
                        why.reason
                    );
                    close_gracefully(&mut socket, why.frame()).await;
                    break format!("protocol violation ({}): {}", why.code, why.reason);
                }
                Incoming::BadRequest {
                    request_id,
                    message,
                } => {
                    let msg = self
                        .ctx
                        .encode(error_msg(request_id, ErrorCode::Protocol, message));
                    if let Err(e) = socket.send(msg).await {
                        break format!("send failed: {e}");
                    }
                }
                Incoming::Msg(ClientMsg::Hello { jwt }) => {
                    if let Err(error) = self.authorize(jwt.as_deref()) {
                        // The spec: answer hello_error, ignore everything after, close.
                        tracing::info!(conn = conn_id, code = ?error.code, "hello refused: {}", error.message);
                        let reason = error.message.clone();
                        let _ = socket
                            .send(self.ctx.encode(ServerMsg::HelloError { error }))
                            .await;
                        let why = CloseReason::new(CloseReason::POLICY_VIOLATION, reason);
                        close_gracefully(&mut socket, why.frame()).await;
                        break format!("hello refused: {}", why.reason);
                    }
                    self.jwt = jwt;
                    self.hello = true;
                    if let Err(e) = socket.send(self.ctx.encode(ServerMsg::HelloOk)).await {
                        break format!("send failed: {e}");
                    }
                }
                Incoming::Msg(ClientMsg::Request {
                    request_id,
                    request,
                }) => {
                    if self.target.is_deleted() {
                        let why = CloseReason::new(
                            CloseReason::GOING_AWAY,
                            format!("the database {:?} was deleted", self.target.name()),
                        );
                        tracing::info!(conn = conn_id, "{}", why.reason);
                        close_gracefully(&mut socket, why.frame()).await;
                        break why.reason;
                    }
                    let read_only = match self.authorize(self.jwt.as_deref()) {
                        Ok(read_only) => read_only,
                        Err(error) => {
                            // The token expired or was revoked since `hello`: refuse the
                            // request; a new `hello` with a fresh token recovers.
                            let reply = ServerMsg::ResponseError { request_id, error };
                            if let Err(e) = socket.send(self.ctx.encode(reply)).await {
                                break format!("send failed: {e}");
                            }
                            continue;
                        }
                    };
                    if let Some(reply) = self.dispatch(request_id, request, read_only) {
                        if let Err(e) = socket.send(self.ctx.encode(reply)).await {
                            break format!("send failed: {e}");
                        }
                    }
                }
            }
        };
        let (streams, cursors) = (self.streams.len(), self.cursors.len());
        // Dropping the queues ends every stream and cursor task; they roll back and free their
        // sessions on blocking threads.
        self.cursors.clear();
        self.streams.clear();
        tracing::info!(
            conn = conn_id,
            open_streams = streams,
            open_cursors = cursors,
            has_jwt = self.jwt.is_some(),
            "websocket connection closed: {end}"
        );
    }

    /// Decodes one frame.
    fn classify(&self, frame: Option<Result<Message, axum::Error>>) -> Incoming {
        let frame = match frame {
            None => return Incoming::Closed,
            Some(Err(e)) => {
                let text = e.to_string();
                if text.contains("too long") || text.contains("too big") {
                    return Incoming::Violation(CloseReason::new(
                        CloseReason::TOO_BIG,
                        format!(
                            "message larger than the limit of {} bytes",
                            self.app.config.max_body_bytes
                        ),
                    ));
                }
                tracing::info!(conn = self.ctx.conn_id, "websocket read failed: {text}");
                return Incoming::Closed;
            }
            Some(Ok(frame)) => frame,
        };
        match (frame, self.ctx.proto.is_protobuf()) {
            (Message::Text(text), false) => decode_json(text.as_str()),
            (Message::Binary(bytes), true) => decode_protobuf(&bytes),
            (Message::Binary(_), false) => Incoming::Violation(CloseReason::new(
                CloseReason::WRONG_FRAME_TYPE,
                format!(
                    "binary frame on a {} connection: JSON messages go in text frames",
                    self.ctx.proto.name()
                ),
            )),
            (Message::Text(_), true) => Incoming::Violation(CloseReason::new(
                CloseReason::WRONG_FRAME_TYPE,
                "text frame on a hrana3-protobuf connection: Protobuf messages go in binary frames",
            )),
            (Message::Close(_), _) => Incoming::Closed,
            // Pings are answered by the WebSocket layer.
            (Message::Ping(_) | Message::Pong(_), _) => Incoming::Ignore,
        }
    }

    /// Handles one request. Returns the reply to send now, or `None` when a task will answer.
    /// Checks `jwt` against the database this connection is bound to; returns whether the
    /// connection may only read.
    fn authorize(&self, jwt: Option<&str>) -> Result<bool, ProtoError> {
        if self.app.auth.is_disabled() {
            return Ok(false);
        }
        let refused = |e: skylite_auth::AuthError| ProtoError::new(e.code(), e.to_string());
        let principal = self.app.auth.authenticate(jwt).map_err(refused)?;
        let grant = principal
            .authorize(self.target.name(), skylite_auth::Access::Read)
            .map_err(refused)?;
        Ok(!grant.can_write())
    }

    fn dispatch(
        &mut self,
        request_id: i32,
        request: Request,
        read_only: bool,
    ) -> Option<ServerMsg> {
        let version = self.ctx.proto.version();
        if request.min_version() > version {
            return Some(error_msg(
                request_id,
                ErrorCode::Protocol,
                format!(
                    "the `{}` request needs Hrana {} but this connection negotiated {} \
                     (offer `hrana3` or `hrana3-protobuf` when connecting)",
                    request.type_name(),
                    request.min_version(),
                    self.ctx.proto.name()
                ),
            ));
        }
        match request {
            Request::OpenStream { stream_id } => Some(self.open_stream(request_id, stream_id)),
            Request::CloseStream { stream_id } => {
                // Cursors of the stream close with it.
                self.cursors.retain(
                    |_, c| !matches!(c, CursorHandle::Open { stream_id: s, .. } if *s == stream_id),
                );
                match self.streams.remove(&stream_id) {
                    // Closing an unknown stream (one whose open failed) is fine.
                    None => Some(ServerMsg::ResponseOk {
                        request_id,
                        response: WsResponse::CloseStream,
                    }),
                    Some(queue) => self.enqueue(&queue, stream_id, StreamJob::Close { request_id }),
                }
            }
            Request::StoreSql { sql_id, sql } => Some(match self.sqls.store(sql_id, sql) {
                Ok(()) => ServerMsg::ResponseOk {
                    request_id,
                    response: WsResponse::StoreSql,
                },
                Err(e) => ServerMsg::ResponseError {
                    request_id,
                    error: e.into(),
                },
            }),
            Request::CloseSql { sql_id } => {
                self.sqls.close(sql_id);
                Some(ServerMsg::ResponseOk {
                    request_id,
                    response: WsResponse::CloseSql,
                })
            }
            Request::OpenCursor {
                stream_id,
                cursor_id,
                batch,
            } => {
                if self.cursors.contains_key(&cursor_id) {
                    return Some(error_msg(
                        request_id,
                        ErrorCode::Protocol,
                        format!("cursor id {cursor_id} is already in use on this connection"),
                    ));
                }
                if self.cursors.len() >= MAX_CURSORS {
                    return Some(error_msg(
                        request_id,
                        ErrorCode::Protocol,
                        format!("too many cursors on this connection (limit {MAX_CURSORS})"),
                    ));
                }
                let Some(queue) = self.streams.get(&stream_id).cloned() else {
                    let why = format!("cursor {cursor_id} failed to open: no stream {stream_id}");
                    self.cursors
                        .insert(cursor_id, CursorHandle::Failed(why.clone()));
                    return Some(error_msg(request_id, ErrorCode::StreamNotFound, why));
                };
                let pinned = self.sqls.pin(batch_sql_ids(&batch));
                let (entries_tx, entries_rx) = crate::blocking::pipe(CURSOR_BUFFER_BYTES);
                let (closed_tx, closed_rx) = oneshot::channel();
                let (jobs_tx, jobs_rx) = mpsc::channel(MAX_OUTSTANDING);
                let job = StreamJob::OpenCursor {
                    request_id,
                    read_only,
                    batch,
                    pinned,
                    entries: entries_tx,
                    closed: closed_rx,
                };
                let reply = self.enqueue(&queue, stream_id, job);
                if reply.is_some() {
                    self.cursors.insert(
                        cursor_id,
                        CursorHandle::Failed(format!(
                            "cursor {cursor_id} failed to open on stream {stream_id}"
                        )),
                    );
                    return reply;
                }
                tokio::spawn(cursor_task(
                    self.ctx.clone(),
                    jobs_rx,
                    entries_rx,
                    closed_tx,
                    self.out_tx.clone(),
                ));
                self.cursors.insert(
                    cursor_id,
                    CursorHandle::Open {
                        stream_id,
                        jobs: jobs_tx,
                    },
                );
                None
            }
            Request::FetchCursor {
                cursor_id,
                max_count,
            } => self.cursor_job(
                cursor_id,
                request_id,
                CursorJob::Fetch {
                    request_id,
                    max_count,
                },
                false,
            ),
            Request::CloseCursor { cursor_id } => {
                self.cursor_job(cursor_id, request_id, CursorJob::Close { request_id }, true)
            }
            other => {
                let Some(stream_id) = other.stream_id() else {
                    return Some(error_msg(
                        request_id,
                        ErrorCode::Internal,
                        "unroutable request",
                    ));
                };
                let request = match other.into_stream_request() {
                    Ok(r) => r,
                    Err(r) => {
                        return Some(error_msg(
                            request_id,
                            ErrorCode::Internal,
                            format!("unroutable request `{}`", r.type_name()),
                        ))
                    }
                };
                let Some(queue) = self.streams.get(&stream_id).cloned() else {
                    return Some(error_msg(
                        request_id,
                        ErrorCode::StreamNotFound,
                        format!("no stream {stream_id} is open on this connection"),
                    ));
                };
                // Stored SQL is taken now, so a later `close_sql` cannot overtake the request
                // while it waits in the queue (shared texts: no copy).
                let pinned = self.sqls.pin(referenced_sql_ids(&request));
                self.enqueue(
                    &queue,
                    stream_id,
                    StreamJob::Run {
                        request_id,
                        request,
                        read_only,
                        pinned,
                    },
                )
            }
        }
    }

    fn open_stream(&mut self, request_id: i32, stream_id: i32) -> ServerMsg {
        if self.streams.contains_key(&stream_id) {
            return error_msg(
                request_id,
                ErrorCode::Protocol,
                format!("stream id {stream_id} is already in use on this connection"),
            );
        }
        if self.streams.len() >= MAX_STREAMS {
            return error_msg(
                request_id,
                ErrorCode::Protocol,
                format!("too many streams on this connection (limit {MAX_STREAMS})"),
            );
        }
        let (tx, rx) = mpsc::channel(MAX_OUTSTANDING);
        let session = Session::with_sql_store(self.ctx.db.clone(), self.sqls.clone());
        tokio::spawn(stream_task(
            self.ctx.clone(),
            stream_id,
            rx,
            session,
            self.out_tx.clone(),
        ));
        self.streams.insert(stream_id, tx);
        ServerMsg::ResponseOk {
            request_id,
            response: WsResponse::OpenStream,
        }
    }

    /// Queues a job on a stream. Returns an immediate error reply if that is impossible.
    fn enqueue(
        &mut self,
        queue: &mpsc::Sender<Job>,
        stream_id: i32,
        job: StreamJob,
    ) -> Option<ServerMsg> {
        let request_id = match &job {
            StreamJob::Run { request_id, .. }
            | StreamJob::OpenCursor { request_id, .. }
            | StreamJob::Close { request_id } => *request_id,
        };
        // The frame's bytes stay charged to the socket until the stream takes the job (the
        // read loop let this frame in because some were left; it takes at most those).
        let available = self.request_bytes.available_permits();
        let charge = u32::try_from(self.frame_bytes.clamp(1, available.max(1)))
            .ok()
            .and_then(|n| self.request_bytes.clone().try_acquire_many_owned(n).ok());
        let job = Job {
            job,
            _charge: charge,
        };
        // The queue holds MAX_OUTSTANDING jobs and no more are outstanding, so it is never
        // full; it is closed only if the stream's task failed.
        match queue.try_send(job) {
            Ok(()) => {
                self.outstanding += 1;
                None
            }
            Err(_) => {
                self.streams.remove(&stream_id);
                Some(error_msg(
                    request_id,
                    ErrorCode::StreamFailed,
                    format!("stream {stream_id} failed and was closed; open a new stream"),
                ))
            }
        }
    }

    fn cursor_job(
        &mut self,
        cursor_id: i32,
        request_id: i32,
        job: CursorJob,
        closing: bool,
    ) -> Option<ServerMsg> {
        let handle = if closing {
            self.cursors.remove(&cursor_id)
        } else {
            self.cursors.get(&cursor_id).map(|h| match h {
                CursorHandle::Failed(why) => CursorHandle::Failed(why.clone()),
                CursorHandle::Open { stream_id, jobs } => CursorHandle::Open {
                    stream_id: *stream_id,
                    jobs: jobs.clone(),
                },
            })
        };
        match handle {
            None if closing => Some(ServerMsg::ResponseOk {
                request_id,
                response: WsResponse::CloseCursor,
            }),
            None => Some(error_msg(
                request_id,
                ErrorCode::CursorNotFound,
                format!("no cursor {cursor_id} is open on this connection"),
            )),
            Some(CursorHandle::Failed(_)) if closing => Some(ServerMsg::ResponseOk {
                request_id,
                response: WsResponse::CloseCursor,
            }),
            Some(CursorHandle::Failed(why)) => {
                Some(error_msg(request_id, ErrorCode::CursorFailed, why))
            }
            Some(CursorHandle::Open { jobs, .. }) => match jobs.try_send(job) {
                Ok(()) => {
                    self.outstanding += 1;
                    None
                }
                Err(_) if closing => Some(ServerMsg::ResponseOk {
                    request_id,
                    response: WsResponse::CloseCursor,
                }),
                Err(_) => Some(error_msg(
                    request_id,
                    ErrorCode::CursorNotFound,
                    format!("cursor {cursor_id} is closed"),
                )),
            },
        }
    }
}

fn decode_json(text: &str) -> Incoming {
    let err = match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => return Incoming::Msg(msg),
        Err(e) => e,
    };
    if err.is_syntax() || err.is_eof() {
        return Incoming::Violation(CloseReason::new(
            CloseReason::INVALID_PAYLOAD,
            format!("invalid JSON: {err}"),
        ));
    }
    /// The envelope alone, to tell a bad request from a bad message.
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        ty: Option<String>,
        request_id: Option<i32>,
    }
    match serde_json::from_str::<Probe>(text) {
        Ok(Probe {
            ty: Some(ty),
            request_id: Some(request_id),
        }) if ty == "request" => Incoming::BadRequest {
            request_id,
            message: format!("invalid request: {err}"),
        },
        Ok(Probe { ty: Some(ty), .. }) if ty != "request" && ty != "hello" => {
            Incoming::Violation(CloseReason::new(
                CloseReason::PROTOCOL_ERROR,
                format!("unknown message type `{ty}` (expected `hello` or `request`)"),
            ))
        }
        Ok(Probe { ty: None, .. }) => Incoming::Violation(CloseReason::new(
            CloseReason::PROTOCOL_ERROR,
            "message without a `type` (expected `hello` or `request`)",
        )),
        _ => Incoming::Violation(CloseReason::new(
            CloseReason::PROTOCOL_ERROR,
            format!("invalid message: {err}"),
        )),
    }
}

fn decode_protobuf(bytes: &[u8]) -> Incoming {
    let raw = match pbws::ClientMsg::decode(bytes) {
        Ok(raw) => raw,
        Err(e) => {
            return Incoming::Violation(CloseReason::new(
                CloseReason::INVALID_PAYLOAD,
                format!("invalid Protobuf ClientMsg: {e}"),
            ))
        }
    };
    let request_id = match &raw.msg {
        None => {
            return Incoming::Violation(CloseReason::new(
                CloseReason::PROTOCOL_ERROR,
                "unknown or missing ClientMsg type (expected hello or request)",
            ))
        }
        Some(pbws::client_msg::Msg::Request(r)) => {
            if r.request.is_none() {
                return Incoming::BadRequest {
                    request_id: r.request_id,
                    message: "unknown or missing request type".to_owned(),
                };
            }
            Some(r.request_id)
        }
        Some(pbws::client_msg::Msg::Hello(_)) => None,
    };
    match ClientMsg::from_proto(raw) {
        Ok(msg) => Incoming::Msg(msg),
        Err(e) => match request_id {
            Some(request_id) => Incoming::BadRequest {
                request_id,
                message: e.to_string(),
            },
            None => {
                Incoming::Violation(CloseReason::new(CloseReason::PROTOCOL_ERROR, e.to_string()))
            }
        },
    }
}

fn response_for(request_id: i32, result: StreamResult) -> ServerMsg {
    match result {
        StreamResult::Error { error } => ServerMsg::ResponseError { request_id, error },
        StreamResult::Ok { response } => {
            let response = match response {
                StreamResponse::Execute { result } => WsResponse::Execute { result },
                StreamResponse::Batch { result } => WsResponse::Batch { result },
                StreamResponse::Sequence => WsResponse::Sequence,
                StreamResponse::Describe { result } => WsResponse::Describe { result },
                StreamResponse::GetAutocommit { is_autocommit } => {
                    WsResponse::GetAutocommit { is_autocommit }
                }
                StreamResponse::Close => WsResponse::CloseStream,
                StreamResponse::StoreSql => WsResponse::StoreSql,
                StreamResponse::CloseSql => WsResponse::CloseSql,
            };
            ServerMsg::ResponseOk {
                request_id,
                response,
            }
        }
    }
}

/// Rolls back and frees a session on a blocking thread; returns whether a transaction was
/// open.
async fn close_session(mut session: Session) -> bool {
    tokio::task::spawn_blocking(move || session.close())
        .await
        .unwrap_or(false)
}

/// Hands a response to the connection task. While the response queue is full (the client is
/// not reading), a transaction of this stream must not keep the write lock past the
/// transaction timeout: the wait watches `watch` and, once a waiting writer revoked the lock,
/// rolls the session back on a blocking thread (later requests get `TRANSACTION_TIMEOUT`).
/// Returns false if the connection is gone.
async fn deliver(
    ctx: &Ctx,
    out: &Outbox,
    msg: Outgoing,
    session: &mut Option<Session>,
    mut watch: Option<LockWatch>,
) -> bool {
    let send = out.send(msg);
    tokio::pin!(send);
    loop {
        tokio::select! {
            sent = &mut send => return sent.is_ok(),
            _ = tokio::time::sleep(SEND_WATCH), if watch.is_some() => {
                if !watch.as_ref().is_some_and(LockWatch::is_revoked) {
                    continue;
                }
                watch = None;
                if let Some(mut s) = session.take() {
                    let back = crate::blocking::run(&ctx.workers, move || {
                        let revoked = s.enforce_revocation();
                        (s, revoked)
                    })
                    .await;
                    if let Ok((s, revoked)) = back {
                        if revoked {
                            tracing::warn!(
                                conn = ctx.conn_id,
                                "rolled back a transaction that held the write lock too long \
                                 while its client was not reading responses"
                            );
                        }
                        *session = Some(s);
                    }
                }
            }
        }
    }
}

/// While writers wait, rolls back the session's idle transaction if they revoked its write
/// lock (on a blocking thread). Returns false if the worker failed (the session is lost).
async fn apply_revocation(ctx: &Ctx, stream_id: i32, session: &mut Option<Session>) -> bool {
    if !ctx.db.has_write_waiters() {
        return true;
    }
    let Some(mut s) = session.take() else {
        return false;
    };
    let back = crate::blocking::run(&ctx.workers, move || {
        let revoked = s.enforce_revocation();
        (s, revoked)
    })
    .await;
    match back {
        Ok((s, revoked)) => {
            if revoked {
                tracing::warn!(
                    conn = ctx.conn_id,
                    stream = stream_id,
                    "rolled back an idle transaction that held the write lock too long"
                );
            }
            *session = Some(s);
            true
        }
        Err(_) => false,
    }
}

/// Cursor entries into the pipe a cursor's task reads for `fetch_cursor`.
struct EntrySink(PipeSender<CursorEntry>);

impl crate::exec::CursorSink for EntrySink {
    fn send(&mut self, entry: CursorEntry, limits: &SendLimits) -> Result<(), SendError> {
        let size = entry_size(&entry);
        self.0.send(entry, size, limits)
    }

    fn send_last(&mut self, entry: CursorEntry) {
        let size = entry_size(&entry);
        self.0.force_send(entry, size);
    }

    fn flush(&mut self, _: &SendLimits) -> Result<(), SendError> {
        Ok(())
    }
}

/// How often a task waiting to hand over a response checks its write lock's revocation.
const SEND_WATCH: Duration = Duration::from_millis(50);

/// Runs the requests of one stream, in order.
async fn stream_task(
    ctx: Ctx,
    stream_id: i32,
    mut jobs: mpsc::Receiver<Job>,
    session: Session,
    out: Outbox,
) {
    let conn_id = ctx.conn_id;
    let mut session = Some(session);
    let mut in_txn = false;
    loop {
        let job = if in_txn {
            tokio::select! {
                job = jobs.recv() => job,
                _ = tokio::time::sleep(REVOCATION_CHECK) => {
                    if !apply_revocation(&ctx, stream_id, &mut session).await {
                        break;
                    }
                    in_txn = session.as_ref().is_some_and(Session::in_transaction);
                    continue;
                }
            }
        } else {
            jobs.recv().await
        };
        // The job's bytes stay charged to the socket until it is done.
        let Some(Job {
            job,
            _charge: charge,
        }) = job
        else {
            break;
        };
        if out.is_closed() {
            // The socket is gone: nobody waits for the remaining answers.
            break;
        }
        // A runner slot of the socket, held until the response is handed over: it bounds the
        // responses a socket's streams hold while the client is slow to read.
        let runner = loop {
            tokio::select! {
                permit = ctx.runners.clone().acquire_owned() => break permit.ok(),
                _ = tokio::time::sleep(REVOCATION_CHECK), if in_txn => {
                    if !apply_revocation(&ctx, stream_id, &mut session).await {
                        break None;
                    }
                    in_txn = session.as_ref().is_some_and(Session::in_transaction);
                }
            }
        };
        if runner.is_none() {
            break;
        }
        let Some(mut s) = session.take() else { break };
        match job {
            StreamJob::Run {
                request_id,
                request,
                read_only,
                pinned,
            } => {
                let limit = ctx.max_response_bytes;
                let proto = ctx.proto;
                let done = crate::blocking::run(&ctx.workers, move || {
                    let requests = std::slice::from_ref(&request);
                    let msg =
                        match crate::exec::run_requests(&mut s, requests, read_only, pinned, limit)
                        {
                            Ok(ran) => match ran.results.into_iter().next() {
                                Some(result) => response_for(request_id, result),
                                None => error_msg(request_id, ErrorCode::Internal, "no result"),
                            },
                            Err(e) => ServerMsg::ResponseError {
                                request_id,
                                error: e.into(),
                            },
                        };
                    let watch = s.current_lock_watch();
                    (s, encode_msg(proto, msg), watch)
                })
                .await;
                match done {
                    Ok((s, msg, watch)) => {
                        session = Some(s);
                        let delivered = deliver(&ctx, &out, msg, &mut session, watch).await;
                        in_txn = session.as_ref().is_some_and(Session::in_transaction);
                        if !delivered {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(
                            conn = conn_id,
                            stream = stream_id,
                            "stream worker failed: {e}"
                        );
                        let msg = error_msg(request_id, ErrorCode::Internal, "the request failed");
                        let _ = out.send(ctx.encode(msg)).await;
                        break;
                    }
                }
            }
            StreamJob::OpenCursor {
                request_id,
                read_only,
                batch,
                pinned,
                entries,
                closed,
            } => {
                let ok = ServerMsg::ResponseOk {
                    request_id,
                    response: WsResponse::OpenCursor,
                };
                session = Some(s);
                let watch = session.as_ref().and_then(Session::current_lock_watch);
                if !deliver(&ctx, &out, ctx.encode(ok), &mut session, watch).await {
                    break;
                }
                let Some(mut s) = session.take() else { break };
                let limit = ctx.max_response_bytes;
                let stall_timeout = ctx.send_timeout;
                let done = crate::blocking::run(&ctx.workers, move || {
                    // A fetch-less client fills the cursor's buffer; the batch then gives up
                    // after the send timeout, or at once when a waiting writer revokes the
                    // stream's write lock. `done` reaches the client only once this returns
                    // (after durability), when the pipe closes.
                    let mut sink = EntrySink(entries);
                    let failed = crate::exec::run_cursor(
                        &mut s,
                        &batch,
                        read_only,
                        pinned,
                        limit,
                        stall_timeout,
                        &mut sink,
                    );
                    if let Some(why) = failed {
                        tracing::debug!(
                            conn = conn_id,
                            stream = stream_id,
                            ?why,
                            "cursor ended early"
                        );
                    }
                    s
                })
                .await;
                match done {
                    Ok(s) => {
                        in_txn = s.in_transaction();
                        session = Some(s);
                    }
                    Err(e) => {
                        tracing::error!(
                            conn = conn_id,
                            stream = stream_id,
                            "cursor worker failed: {e}"
                        );
                        break;
                    }
                }
                // The batch is over; an open cursor holds no runner slot and no request bytes.
                drop(runner);
                drop(charge);
                // Later requests of this stream wait until the cursor is closed; meanwhile a
                // transaction the cursor left open stays revocable.
                tokio::pin!(closed);
                loop {
                    tokio::select! {
                        _ = &mut closed => break,
                        _ = tokio::time::sleep(REVOCATION_CHECK), if in_txn => {
                            if !apply_revocation(&ctx, stream_id, &mut session).await {
                                break;
                            }
                            in_txn = session.as_ref().is_some_and(Session::in_transaction);
                        }
                    }
                }
                if session.is_none() {
                    break;
                }
            }
            StreamJob::Close { request_id } => {
                let had_txn = close_session(s).await;
                if had_txn {
                    tracing::info!(
                        conn = conn_id,
                        stream = stream_id,
                        "stream closed; its open transaction was rolled back"
                    );
                }
                let ok = ServerMsg::ResponseOk {
                    request_id,
                    response: WsResponse::CloseStream,
                };
                let _ = out.send(ctx.encode(ok)).await;
                drain_failed(&ctx, &mut jobs, &out).await;
                return;
            }
        }
    }
    if let Some(s) = session.take() {
        if close_session(s).await {
            tracing::info!(
                conn = conn_id,
                stream = stream_id,
                "websocket gone; the stream's open transaction was rolled back"
            );
        }
    }
    drain_failed(&ctx, &mut jobs, &out).await;
}

/// Answers the jobs left in a queue whose stream ended, so none goes unanswered.
async fn drain_failed(ctx: &Ctx, jobs: &mut mpsc::Receiver<Job>, out: &Outbox) {
    jobs.close();
    while let Some(Job { job, .. }) = jobs.recv().await {
        if out.is_closed() {
            return;
        }
        let request_id = match job {
            StreamJob::Run { request_id, .. }
            | StreamJob::OpenCursor { request_id, .. }
            | StreamJob::Close { request_id } => request_id,
        };
        let msg = error_msg(request_id, ErrorCode::StreamFailed, "the stream is closed");
        let _ = out.send(ctx.encode(msg)).await;
    }
}

/// Serves the fetches of one cursor, in order.
async fn cursor_task(
    ctx: Ctx,
    mut jobs: mpsc::Receiver<CursorJob>,
    mut entries: PipeReceiver<CursorEntry>,
    closed: oneshot::Sender<()>,
    out: Outbox,
) {
    while let Some(job) = jobs.recv().await {
        match job {
            CursorJob::Fetch {
                request_id,
                max_count,
            } => {
                let cap = (max_count as usize).min(FETCH_MAX_ENTRIES);
                let mut list = Vec::new();
                let mut bytes = 0usize;
                let mut finished = false;
                if cap > 0 {
                    // Wait for the first entry (or the end), then take what is ready.
                    match entries.recv().await {
                        Some(e) => {
                            bytes += entry_size(&e);
                            list.push(e);
                        }
                        None => finished = true,
                    }
                    while !finished && list.len() < cap && bytes < FETCH_SOFT_BYTES {
                        match entries.try_recv() {
                            Ok(e) => {
                                bytes += entry_size(&e);
                                list.push(e);
                            }
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => finished = true,
                        }
                    }
                }
                if !finished && entries.is_finished() {
                    finished = true;
                }
                let msg = ServerMsg::ResponseOk {
                    request_id,
                    response: WsResponse::FetchCursor {
                        entries: list,
                        done: finished,
                    },
                };
                if out.send(ctx.encode(msg)).await.is_err() {
                    break;
                }
            }
            CursorJob::Close { request_id } => {
                let msg = ServerMsg::ResponseOk {
                    request_id,
                    response: WsResponse::CloseCursor,
                };
                let _ = out.send(ctx.encode(msg)).await;
                break;
            }
        }
    }
    // Stops the batch (its next send fails) and lets the stream go on.
    drop(entries);
    let _ = closed.send(());
    // Any fetch still queued after a close gets an error.
    jobs.close();
    while let Some(job) = jobs.recv().await {
        let request_id = match job {
            CursorJob::Fetch { request_id, .. } | CursorJob::Close { request_id } => request_id,
        };
        let msg = error_msg(
            request_id,
            ErrorCode::CursorNotFound,
            "the cursor is closed",
        );
        if out.send(ctx.encode(msg)).await.is_err() {
            return;
        }
    }
}

fn entry_size(entry: &CursorEntry) -> usize {
    match entry {
        CursorEntry::Row { row } => 4 + row.iter().map(Value::wire_size_hint).sum::<usize>(),
        _ => 64,
    }
}
