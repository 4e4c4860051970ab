//! The execution layer under both transports: Hrana over HTTP (`hrana_http.rs`) and over
//! WebSocket (`ws/`) run requests and cursors on a [`Session`] through these functions, so the
//! governor applies the same way to both: what the token allows, one response budget per
//! pipeline (errors included), stored SQL pinned when a request was queued, durability before
//! anything is acknowledged, and cursors that write through a byte-bounded [`crate::blocking`]
//! pipe and give up (rolling back their transaction, releasing the write lock) when the client
//! stalls past the send timeout or a waiting writer revokes the lock.
//!
//! Everything here is blocking: callers run it on the SQL worker pool. Checking out a stream
//! (batons, the registry) and encoding stay with each transport.

use std::cell::Cell;
use std::time::Duration;

use skylite_engine::{Budget, ErrorCode, ExecError, PinnedSql, Session};
use skylite_proto::{Batch, CursorEntry, StreamRequest, StreamResult};

use crate::blocking::{SendError, SendLimits};

/// The outcome of [`run_requests`].
pub struct Ran {
    /// One result per request.
    pub results: Vec<StreamResult>,
    /// A `close` request closed the stream (the requests after it were refused).
    pub closed: bool,
}

/// Runs `requests` in order on `session` for a caller who may only read if `read_only`, with
/// one response budget of `max_response_bytes`, then waits until their commits are durable.
/// A durability failure closes the session (rolling back) and is returned: nothing that is not
/// durable is acknowledged.
pub fn run_requests(
    session: &mut Session,
    requests: &[StreamRequest],
    read_only: bool,
    pinned: PinnedSql,
    max_response_bytes: usize,
) -> Result<Ran, ExecError> {
    // What this request's token allows (a stream may outlive a token: each request decides).
    session.set_read_only(read_only);
    let mut budget = Budget::new(max_response_bytes);
    let mut results = Vec::with_capacity(requests.len());
    let mut closed = false;
    session.with_pinned(pinned, |session| {
        for request in requests {
            if closed {
                results.push(StreamResult::Error {
                    error: ExecError::protocol("the stream was closed by an earlier request")
                        .into(),
                });
                continue;
            }
            results.push(session.handle(request, &mut budget));
            closed = matches!(request, StreamRequest::Close);
        }
    });
    if let Err(e) = session.finish_pipeline() {
        session.close();
        return Err(e);
    }
    Ok(Ran { results, closed })
}

/// Where a cursor's entries go.
pub trait CursorSink {
    /// Sends one entry, waiting while the client is behind; gives up per `limits`.
    fn send(&mut self, entry: CursorEntry, limits: &SendLimits) -> Result<(), SendError>;
    /// Sends the entry that ends a cursor that gave up, whatever the buffer holds.
    fn send_last(&mut self, entry: CursorEntry);
    /// Sends what is still buffered once the cursor is complete.
    fn flush(&mut self, limits: &SendLimits) -> Result<(), SendError>;
}

/// Runs `batch` as a cursor on `session` (read-only if `read_only`), each row bounded by
/// `max_response_bytes`, its entries going to `sink`.
///
/// If the sink gives up, the batch stops. If the client stalled for `stall_timeout`, or a
/// writer revoked the session's write lock while it waited, the transaction is rolled back
/// (the stream then answers `TRANSACTION_TIMEOUT` until the client acknowledges with
/// `ROLLBACK`) and a last error entry says why. Returns why it gave up, if it did.
pub fn run_cursor(
    session: &mut Session,
    batch: &Batch,
    read_only: bool,
    pinned: PinnedSql,
    max_response_bytes: usize,
    stall_timeout: Duration,
    sink: &mut dyn CursorSink,
) -> Option<SendError> {
    session.set_read_only(read_only);
    // The watch lets a send blocked on a stalled client give up as soon as a waiting writer
    // revokes this session's hold on the write lock.
    let limits = SendLimits {
        stall_timeout,
        watch: session.lock_watch().ok(),
    };
    let failed: Cell<Option<SendError>> = Cell::new(None);
    session.with_pinned(pinned, |session| {
        let mut emit = |entry: CursorEntry| {
            if failed.get().is_some() {
                return false;
            }
            match sink.send(entry, &limits) {
                Ok(()) => true,
                Err(e) => {
                    failed.set(Some(e));
                    false
                }
            }
        };
        session.cursor(batch, max_response_bytes, &mut emit);
    });
    let failed = match failed.get() {
        None => match session.finish_pipeline() {
            // The end of the output (`done` over WebSocket) comes only after durability.
            Ok(()) => sink.flush(&limits).err(),
            Err(e) => {
                // Nothing is acknowledged that is not durable.
                session.close();
                let _ = sink.send(CursorEntry::Error { error: e.into() }, &limits);
                sink.flush(&limits).err()
            }
        },
        Some(why) => Some(why),
    };
    match failed {
        // The client closed the cursor early or disconnected: the batch stops, and the stream
        // keeps its transaction (a client may close a cursor and go on to `COMMIT`); an idle
        // transaction is still revoked and reaped like any other.
        Some(SendError::Gone) => {
            let _ = session.finish_pipeline();
        }
        Some(why) => {
            // The client stalled: its transaction must not keep the write lock.
            let error = stalled_cursor_error(why, stall_timeout);
            if session.abandon(error.clone()) {
                tracing::warn!("{}", error.message);
            } else {
                tracing::info!("{}", error.message);
            }
            let _ = session.finish_pipeline();
            // Ends the output with the reason, for a client that comes back to read it.
            sink.send_last(CursorEntry::Error {
                error: error.into(),
            });
        }
        None => {}
    }
    failed
}

/// The error that ends a cursor whose client stalled (or whose transaction lost the write lock
/// while the client stalled).
pub fn stalled_cursor_error(why: SendError, stall_timeout: Duration) -> ExecError {
    match why {
        SendError::Revoked => ExecError::new(
            ErrorCode::TransactionTimeout,
            "the transaction was rolled back: it held the write lock past the transaction \
             timeout while other writers waited and the client was not reading the cursor",
        ),
        SendError::Stalled => ExecError::new(
            ErrorCode::TransactionTimeout,
            format!(
                "the cursor was ended and its transaction rolled back: the client read \
                 nothing for {} s",
                stall_timeout.as_secs_f64()
            ),
        ),
        SendError::Gone => ExecError::new(ErrorCode::ClientGone, "the client went away"),
    }
}
