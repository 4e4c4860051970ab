//! The connection task: one per socket. Reads frames, checks them (hello first, version
//! gating, budgets), answers connection-wide requests (`open_stream`, `store_sql`, ...),
//! queues stream requests, and writes responses from the [`Outbox`] to the socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use skylite_engine::session::{batch_sql_ids, referenced_sql_ids};
use skylite_engine::{ErrorCode, Session, SqlStore};
use skylite_proto::ws::{ClientMsg, Request, Response as WsResponse, ServerMsg};
use skylite_proto::{Error as ProtoError, StreamRequest};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::databases::{DbHandle, WebSocketGuard};

use super::codec::*;
use super::cursor::*;
use super::stream::*;
use super::*;

/// A response waiting for the connection task, with its share of the response-queue bytes
/// (given back when the connection task has written it).
pub(super) struct Queued {
    pub(super) msg: Outgoing,
    pub(super) _bytes: Option<OwnedSemaphorePermit>,
}

/// The receiving end is gone (the socket closed).
#[derive(Debug)]
pub(super) struct OutboxClosed;

/// The queue through which stream and cursor tasks hand responses to the connection task.
/// Bounded in bytes ([`RESPONSE_QUEUE_BYTES`]) as well as in messages: a task whose response
/// does not fit waits (while its transaction stays revocable, see [`deliver`]).
#[derive(Clone)]
pub(super) struct Outbox {
    pub(super) tx: mpsc::Sender<Queued>,
    pub(super) bytes: Arc<Semaphore>,
}

impl Outbox {
    pub(super) fn new() -> (Outbox, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(MAX_OUTSTANDING);
        let outbox = Outbox {
            tx,
            bytes: Arc::new(Semaphore::new(RESPONSE_QUEUE_BYTES)),
        };
        (outbox, rx)
    }

    /// Queues a response, waiting while the queue is full.
    pub(super) async fn send(&self, msg: Outgoing) -> Result<(), OutboxClosed> {
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
    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The connection task's state.
pub(super) struct Connection {
    pub(super) ctx: Ctx,
    pub(super) app: App,
    /// The database this connection was opened for; every stream runs on it.
    pub(super) target: Arc<DbHandle>,
    /// Counts this connection on its database while it lives.
    pub(super) _counted: WebSocketGuard,
    pub(super) hello: bool,
    /// The client's token from its last `hello`, checked again on every request (it may expire
    /// or be revoked while the socket lives).
    pub(super) jwt: Option<String>,
    pub(super) sqls: SqlStore,
    pub(super) streams: HashMap<i32, mpsc::Sender<Job>>,
    pub(super) cursors: HashMap<i32, CursorHandle>,
    pub(super) out_tx: Outbox,
    pub(super) out_rx: mpsc::Receiver<Queued>,
    /// Requests handed to a task whose response has not been written yet.
    pub(super) outstanding: usize,
    /// Bytes of requests waiting in stream queues (2 × `--max-body-size` permits); the socket
    /// is not read while none are left.
    pub(super) request_bytes: Arc<Semaphore>,
    /// The size of the frame being dispatched (charged to `request_bytes` if it is queued).
    pub(super) frame_bytes: usize,
}

impl Connection {
    pub(super) fn new(app: App, target: Arc<DbHandle>, conn_id: u64, proto: Subprotocol) -> Self {
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

    pub(super) async fn run(mut self, mut socket: TimedSocket) {
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
    pub(super) fn classify(&self, frame: Option<Result<Message, axum::Error>>) -> Incoming {
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
    pub(super) fn authorize(&self, jwt: Option<&str>) -> Result<bool, ProtoError> {
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

    pub(super) fn dispatch(
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
                let request = match StreamRequest::try_from(other) {
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

    pub(super) fn open_stream(&mut self, request_id: i32, stream_id: i32) -> ServerMsg {
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
    pub(super) fn enqueue(
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

    pub(super) fn cursor_job(
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
