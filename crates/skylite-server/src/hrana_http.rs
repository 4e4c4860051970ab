//! Hrana over HTTP: `POST /v2/pipeline`, `POST /v3/pipeline` and `POST /v3/cursor` (JSON), and
//! `POST /v3-protobuf/pipeline` and `POST /v3-protobuf/cursor` (Protobuf).
//!
//! One set of semantics, two encodings: the handlers share [`run_pipeline`] and [`run_cursor`];
//! only the decoding of the request body and the encoding of the response differ
//! ([`Encoding`]). Errors answered at the HTTP level (bad baton, malformed body) are JSON
//! `{"message", "code"}` for both encodings.
//!
//! Every handler takes the [`Authorized`] the request was routed to; streams and batons belong to
//! that database (a baton of one database is refused on another) and to the token the request
//! carries ([`principal_id`]: a baton works only with the token that opened its stream). One
//! token may hold at most `max_streams_per_principal` live streams per database (429
//! `STREAMS_EXHAUSTED`). Requests and cursors run through [`crate::exec`], the execution layer
//! shared with the WebSocket transport.
//!
//! The path of a pipeline request: parse the body; claim the baton's sequence number (exactly
//! one request per baton gets past this) and find the stream it names (or open a new one, or
//! resume a stateless one the server no longer knows); lock it; on a blocking
//! thread run every request through the [`skylite_engine::Session`], wait for durability, bump
//! the stream's sequence number, sign the next baton and serialize the response; register or
//! forget the stream; answer.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use skylite_engine::{ErrorCode, ExecError, PinnedSql};
use skylite_proto::protobuf::{self, FromProto, IntoProto};
use skylite_proto::{
    CursorEntry, CursorReqBody, CursorRespBody, PipelineReqBody, PipelineRespBody, StreamRequest,
};
use tokio::sync::OwnedMutexGuard;

use crate::app::App;
use crate::baton::BatonClaims;
use crate::blocking::{PipeSender, SendError, SendLimits};
use crate::databases::DbHandle;
use crate::error::ApiError;
use crate::routing::Authorized;
use crate::streams::{Claim, PrincipalId, RegisterError, SharedStream, StreamEntry};

/// `GET /v1`, `/v2`, `/v3`, `/v3-protobuf`: the version probe.
pub async fn version_probe() -> &'static str {
    "Hrana over HTTP is supported here (v1, v2, v3, v3-protobuf)\n"
}

/// The encoding of a Hrana-over-HTTP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `/v2/*`, `/v3/*`: JSON bodies, newline-delimited cursor entries.
    Json,
    /// `/v3-protobuf/*`: Protobuf bodies, length-delimited cursor entries.
    Protobuf,
}

impl Encoding {
    /// Decodes a request body.
    fn decode<T>(self, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError>
    where
        T: DeserializeOwned + FromProto,
    {
        match self {
            Encoding::Json => parse_body(body),
            Encoding::Protobuf => {
                let bytes = read_body(body)?;
                protobuf::decode(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
            }
        }
    }

    /// Encodes a whole response body.
    fn encode<T: serde::Serialize + IntoProto>(self, value: T) -> Result<Vec<u8>, ApiError> {
        match self {
            Encoding::Json => serde_json::to_vec(&value)
                .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}"))),
            Encoding::Protobuf => Ok(protobuf::encode(value)),
        }
    }

    /// Appends one framed item of a cursor response (a JSON line, or a length-delimited
    /// message). Returns false if it cannot be encoded.
    fn frame<T: serde::Serialize + IntoProto>(self, value: T, buf: &mut Vec<u8>) -> bool {
        match self {
            Encoding::Json => {
                if serde_json::to_writer(&mut *buf, &value).is_err() {
                    return false;
                }
                buf.push(b'\n');
                true
            }
            Encoding::Protobuf => {
                protobuf::encode_length_delimited(value, buf);
                true
            }
        }
    }

    /// The content type of a pipeline response.
    fn pipeline_content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Protobuf => "application/x-protobuf",
        }
    }

    /// The content type of a cursor response.
    fn cursor_content_type(self) -> &'static str {
        match self {
            Encoding::Json => "text/plain",
            Encoding::Protobuf => "application/x-protobuf",
        }
    }
}

/// Reads a JSON body, turning every failure into a clear 4xx.
pub fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = read_body(body)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
}

/// Takes the body bytes, turning a rejection (too large, unreadable) into a clear 4xx.
pub fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                ErrorCode::RequestTooLarge,
                "the request body exceeds the server's limit (see --max-body-size)",
            )
        } else {
            ApiError::new(status, ErrorCode::Protocol, rejection.body_text())
        }
    })
}

/// A stream checked out for one request.
pub struct Checkout {
    /// The stream's id.
    pub id: u64,
    /// The locked stream.
    pub guard: OwnedMutexGuard<StreamEntry>,
    /// The stream is new: the client holds no baton of it yet.
    pub fresh: bool,
}

/// The stable id of the credentials a request carries: a hash of its bearer token (whose
/// signature the router already checked), or all zero with auth off. Batons are bound to it,
/// so a baton works only with the token that received it.
pub fn principal_id(app: &App, headers: &HeaderMap) -> PrincipalId {
    let mut id = [0u8; 16];
    if app.auth.is_disabled() {
        return id;
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| v.split_once(' '))
        .map_or("", |(_, token)| token.trim());
    let digest = Sha256::new()
        .chain_update(b"skylite principal\0")
        .chain_update(token.as_bytes())
        .finalize();
    for (out, byte) in id.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    id
}

fn baton_reused() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::BatonReused,
        "this baton was already used: every response carries a new baton, valid for exactly \
         one request (requests on one stream must not overlap)",
    )
}

impl App {
    /// Finds or opens the stream a baton names, among the streams of `db`, for `principal`.
    ///
    /// `acknowledges_loss` says that the request starts with `ROLLBACK`: a stream whose
    /// transaction was lost (expired, or the server restarted) then comes back in the *lost*
    /// state, where that `ROLLBACK` succeeds (the transaction is indeed rolled back) and the
    /// stream works again, instead of failing forever with `STREAM_EXPIRED`.
    ///
    /// `closes` says that the request ends with `close`: a new stream that lives only for this
    /// request is then not registered at all, and does not count toward the token's cap on
    /// live streams (many concurrent one-shot pipelines are not lingering streams).
    pub async fn checkout(
        &self,
        db: &DbHandle,
        principal: &PrincipalId,
        baton: Option<&str>,
        acknowledges_loss: bool,
        closes: bool,
    ) -> Result<Checkout, ApiError> {
        let streams = db.streams();
        let cap = self.config.max_streams_per_principal;
        // Registers a new entry for a request that uses sequence number `seq`, locked for it.
        let register = |id: u64, entry: StreamEntry, fresh: bool| -> Result<Checkout, ApiError> {
            let next_seq = entry.seq.wrapping_add(1);
            let shared: SharedStream = std::sync::Arc::new(tokio::sync::Mutex::new(entry));
            // Nobody else can know this entry yet, so the lock is free.
            let guard = shared
                .clone()
                .try_lock_owned()
                .map_err(|_| ApiError::internal("a new stream was already locked"))?;
            streams
                .register(id, shared, *principal, next_seq, cap)
                .map_err(|e| match e {
                    RegisterError::Taken => baton_reused(),
                    RegisterError::Exhausted => ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        ErrorCode::StreamsExhausted,
                        format!(
                            "this token already holds {cap} open streams on this database (the \
                             limit); close streams it no longer uses (a `close` request) or let \
                             them expire ({} s idle)",
                            self.config.stream_idle_timeout.as_secs()
                        ),
                    ),
                })?;
            Ok(Checkout { id, guard, fresh })
        };
        let lost =
            |id: u64, seq: u64, code: ErrorCode, why: String| -> Result<Checkout, ApiError> {
                if !acknowledges_loss || code != ErrorCode::StreamExpired {
                    return Err(ApiError::new(StatusCode::BAD_REQUEST, code, why));
                }
                let mut entry = streams.new_entry(seq);
                entry.session.mark_lost(ExecError::new(code, why));
                let checkout = register(id, entry, false)?;
                streams.forget_tombstone(id);
                Ok(checkout)
            };
        let Some(baton) = baton else {
            if closes {
                let shared: SharedStream =
                    std::sync::Arc::new(tokio::sync::Mutex::new(streams.new_entry(0)));
                let guard = shared
                    .try_lock_owned()
                    .map_err(|_| ApiError::internal("a new stream was already locked"))?;
                return Ok(Checkout {
                    id: streams.new_id(),
                    guard,
                    fresh: true,
                });
            }
            return register(streams.new_id(), streams.new_entry(0), true);
        };
        let claims = self
            .baton_key
            .decode(db.name(), principal, baton)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BatonInvalid,
                    e.to_string(),
                )
            })?;
        match streams.claim(claims.stream_id, claims.seq) {
            Claim::Reused => return Err(baton_reused()),
            Claim::Claimed(stream) => {
                let guard = stream.lock_owned().await;
                if !guard.expired {
                    return Ok(Checkout {
                        id: claims.stream_id,
                        guard,
                        fresh: false,
                    });
                }
                drop(guard);
                // The reaper buried it while we waited; its tombstone says why.
                let (code, why) = streams.tombstone(claims.stream_id).unwrap_or((
                    ErrorCode::StreamExpired,
                    "the stream expired while this request waited for it".to_owned(),
                ));
                if !claims.stateful {
                    let entry = streams.new_entry(claims.seq);
                    return register(claims.stream_id, entry, false);
                }
                return lost(claims.stream_id, claims.seq, code, why);
            }
            Claim::Unknown => {}
        }
        if let Some((code, why)) = streams.tombstone(claims.stream_id) {
            return lost(claims.stream_id, claims.seq, code, why);
        }
        if claims.stateful {
            return lost(
                claims.stream_id,
                claims.seq,
                ErrorCode::StreamExpired,
                "the stream is gone (it expired or the server restarted) and the state it held \
                 was lost: its open transaction was rolled back"
                    .to_owned(),
            );
        }
        // An authentic baton of a stream that held no state: resume it transparently.
        register(claims.stream_id, streams.new_entry(claims.seq), false)
    }

    /// Signs the baton for the next request on a stream of `db` opened by `principal`.
    pub fn next_baton(
        &self,
        db: &DbHandle,
        principal: &PrincipalId,
        id: u64,
        seq: u64,
        stateful: bool,
    ) -> String {
        self.baton_key.encode(
            db.name(),
            principal,
            BatonClaims {
                stream_id: id,
                seq,
                stateful,
            },
        )
    }
}

/// Logs a line if the client goes away before its response is ready.
struct DisconnectGuard {
    what: &'static str,
    done: bool,
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        if !self.done {
            tracing::info!(
                "client disconnected before the {} response was sent; \
                 the work already started completes and nothing is lost",
                self.what
            );
        }
    }
}

fn ok_response(bytes: Vec<u8>, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `POST /v2/pipeline` and `POST /v3/pipeline`.
pub async fn pipeline(
    State(app): State<App>,
    target: Authorized,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_id(&app, &headers);
    let read_only = target.read_only();
    run_pipeline(app, target.db, read_only, principal, Encoding::Json, body).await
}

/// `POST /v3-protobuf/pipeline`.
pub async fn pipeline_protobuf(
    State(app): State<App>,
    target: Authorized,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_id(&app, &headers);
    let read_only = target.read_only();
    run_pipeline(
        app,
        target.db,
        read_only,
        principal,
        Encoding::Protobuf,
        body,
    )
    .await
}

/// Runs a pipeline whose bodies use `encoding`, on `db`, for `principal`, who may only read
/// if `read_only`.
pub async fn run_pipeline(
    app: App,
    db: std::sync::Arc<DbHandle>,
    read_only: bool,
    principal: PrincipalId,
    encoding: Encoding,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: PipelineReqBody = encoding.decode(body)?;
    let acknowledges_loss = req
        .requests
        .first()
        .is_some_and(skylite_engine::session::starts_with_rollback);
    let closes = matches!(req.requests.last(), Some(StreamRequest::Close));
    let checkout = app
        .checkout(
            &db,
            &principal,
            req.baton.as_deref(),
            acknowledges_loss,
            closes,
        )
        .await?;
    let id = checkout.id;
    let fresh = checkout.fresh;
    let mut guard = checkout.guard;
    let worker_app = app.clone();
    let worker_db = db.clone();
    let mut guard_log = DisconnectGuard {
        what: "pipeline",
        done: false,
    };
    let outcome = crate::blocking::run(&app.workers, move || {
        let streams = worker_db.streams();
        let max_response = worker_app.config.engine.max_response_bytes;
        let ran = crate::exec::run_requests(
            &mut guard.session,
            &req.requests,
            read_only,
            PinnedSql::default(),
            max_response,
        );
        guard.seq += 1;
        guard.last_used = Instant::now();
        // The registry is updated here, not after the await: a client that disconnects
        // meanwhile must not leave a closed stream behind.
        let ran = match ran {
            Ok(ran) => ran,
            Err(e) => {
                streams.remove(id);
                return Err(ApiError::from_exec(e));
            }
        };
        let baton = (!ran.closed).then(|| {
            let stateful = guard.session.is_stateful();
            worker_app.next_baton(&worker_db, &principal, id, guard.seq, stateful)
        });
        drop(guard);
        if ran.closed {
            if fresh {
                streams.remove(id);
            } else {
                // The client holds batons of this stream: tell it why they stopped working.
                streams.close(id);
            }
        }
        let body = PipelineRespBody {
            baton,
            base_url: None,
            results: ran.results,
        };
        encoding.encode(body)
    })
    .await
    .map_err(|e| ApiError::internal(format!("pipeline worker failed: {e}")))?;
    guard_log.done = true;
    Ok(ok_response(outcome?, encoding.pipeline_content_type()))
}

/// Flushes cursor output in chunks of about this many bytes.
const CURSOR_CHUNK: usize = 32 * 1024;
/// Bytes of cursor output produced ahead of what the client has read (one chunk always fits,
/// however large its single entry).
pub const CURSOR_BUFFER_BYTES: usize = 1024 * 1024;

/// Cursor output as the HTTP body: entries framed by the encoding, sent in chunks of about
/// [`CURSOR_CHUNK`] bytes through a byte-bounded pipe.
struct ChunkSink {
    encoding: Encoding,
    buf: Vec<u8>,
    tx: PipeSender<Bytes>,
}

impl crate::exec::CursorSink for ChunkSink {
    fn send(&mut self, entry: CursorEntry, limits: &SendLimits) -> Result<(), SendError> {
        // An entry that cannot be encoded is left out (none can: plain data).
        let _ = self.encoding.frame(entry, &mut self.buf);
        if self.buf.len() >= CURSOR_CHUNK {
            return self.flush(limits);
        }
        Ok(())
    }

    fn send_last(&mut self, entry: CursorEntry) {
        // What was buffered cannot go out (the client stalled); the reason can.
        self.buf.clear();
        let _ = self.encoding.frame(entry, &mut self.buf);
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        let size = chunk.len();
        self.tx.force_send(chunk, size);
    }

    fn flush(&mut self, limits: &SendLimits) -> Result<(), SendError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        let size = chunk.len();
        self.tx.send(chunk, size, limits)
    }
}

/// `POST /v3/cursor`: newline-delimited cursor entries, streamed as they are produced.
pub async fn cursor(
    State(app): State<App>,
    target: Authorized,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_id(&app, &headers);
    let read_only = target.read_only();
    run_cursor(app, target.db, read_only, principal, Encoding::Json, body).await
}

/// `POST /v3-protobuf/cursor`: length-delimited cursor entries, streamed as they are produced.
pub async fn cursor_protobuf(
    State(app): State<App>,
    target: Authorized,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_id(&app, &headers);
    let read_only = target.read_only();
    run_cursor(
        app,
        target.db,
        read_only,
        principal,
        Encoding::Protobuf,
        body,
    )
    .await
}

/// Runs a cursor whose bodies use `encoding`: the head ([`CursorRespBody`]) first, then the
/// entries, each framed by the encoding.
pub async fn run_cursor(
    app: App,
    db: std::sync::Arc<DbHandle>,
    read_only: bool,
    principal: PrincipalId,
    encoding: Encoding,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CursorReqBody = encoding.decode(body)?;
    let checkout = app
        .checkout(&db, &principal, req.baton.as_deref(), false, false)
        .await?;
    let id = checkout.id;
    let mut guard = checkout.guard;
    guard.seq += 1;
    // The baton is sent before the batch runs, so its state flag is a forecast: stateful if the
    // stream already is, or if the batch may open a transaction or change the connection.
    let may_hold_state = guard.session.is_stateful()
        || req.batch.steps.iter().any(|s| {
            s.stmt.sql_id.is_some()
                || s.stmt
                    .sql
                    .as_deref()
                    .is_some_and(skylite_engine::sql_text::may_leave_state)
        });
    let baton = app.next_baton(&db, &principal, id, guard.seq, may_hold_state);
    let mut first = Vec::new();
    let head = CursorRespBody {
        baton: Some(baton),
        base_url: None,
    };
    if !encoding.frame(head, &mut first) {
        return Err(ApiError::internal("cannot encode the cursor response"));
    }

    let (tx, rx) = crate::blocking::pipe::<Bytes>(CURSOR_BUFFER_BYTES);
    let limit = app.config.engine.max_response_bytes;
    let stall_timeout = app.config.send_timeout;
    let batch = req.batch;
    let span = tracing::Span::current();
    app.workers.execute(move || {
        let _entered = span.enter();
        let mut sink = ChunkSink {
            encoding,
            buf: first,
            tx,
        };
        let failed = crate::exec::run_cursor(
            &mut guard.session,
            &batch,
            read_only,
            PinnedSql::default(),
            limit,
            stall_timeout,
            &mut sink,
        );
        if let Some(why) = failed {
            tracing::debug!(stream = id, ?why, "cursor ended early");
        }
        guard.last_used = Instant::now();
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (Ok::<Bytes, std::io::Error>(item), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.cursor_content_type()),
    );
    Ok(resp)
}
