//! The stream task: one per stream, runs its requests in order on the SQL worker pool
//! through `exec`, hands responses to the connection's outbox, and rolls back when the
//! socket ends or a waiting writer revokes its write lock.

use std::time::Duration;

use skylite_engine::{ErrorCode, LockWatch, PinnedSql, Session};
use skylite_proto::ws::{Response as WsResponse, ServerMsg};
use skylite_proto::{Batch, CursorEntry, StreamRequest};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::blocking::PipeSender;

use super::codec::*;
use super::connection::*;
use super::cursor::*;
use super::*;

/// A request waiting in (or taken from) a stream's queue.
pub(super) enum StreamJob {
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
pub(super) struct Job {
    pub(super) job: StreamJob,
    pub(super) _charge: Option<OwnedSemaphorePermit>,
}

/// Rolls back and frees a session on the SQL worker pool; returns whether a transaction was
/// open.
pub(super) async fn close_session(ctx: &Ctx, mut session: Session) -> bool {
    crate::blocking::run(&ctx.workers, move || session.close())
        .await
        .unwrap_or(false)
}

/// Hands a response to the connection task. While the response queue is full (the client is
/// not reading), a transaction of this stream must not keep the write lock past the
/// transaction timeout: the wait watches `watch` and, once a waiting writer revoked the lock,
/// rolls the session back on a blocking thread (later requests get `TRANSACTION_TIMEOUT`).
/// Returns false if the connection is gone.
pub(super) async fn deliver(
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
pub(super) async fn apply_revocation(
    ctx: &Ctx,
    stream_id: i32,
    session: &mut Option<Session>,
) -> bool {
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

/// How often a task waiting to hand over a response checks its write lock's revocation.
pub(super) const SEND_WATCH: Duration = Duration::from_millis(50);

/// Runs the requests of one stream, in order.
pub(super) async fn stream_task(
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
                                Some(result) => ServerMsg::for_result(request_id, result),
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
                let had_txn = close_session(&ctx, s).await;
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
        if close_session(&ctx, s).await {
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
pub(super) async fn drain_failed(ctx: &Ctx, jobs: &mut mpsc::Receiver<Job>, out: &Outbox) {
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
