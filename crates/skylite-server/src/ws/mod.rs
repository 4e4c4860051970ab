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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use skylite_engine::{Database, ErrorCode};
use skylite_proto::ws::{ClientMsg, ServerMsg};
use skylite_proto::Error as ProtoError;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::databases::DbHandle;
use crate::error::ApiError;
use crate::routing::{self, DbSelector, UpgradeTarget};

mod codec;
mod connection;
mod cursor;
mod stream;

use codec::*;
pub use codec::{negotiate, CloseReason, Subprotocol};
use connection::*;

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
