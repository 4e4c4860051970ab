//! The cursor task: one per open cursor, hands out the entries its batch writes into a
//! byte-bounded pipe, `max_count` per `fetch_cursor`, until `close_cursor` or the end.

use skylite_engine::ErrorCode;
use skylite_proto::ws::{Response as WsResponse, ServerMsg};
use skylite_proto::{CursorEntry, Value};
use tokio::sync::{mpsc, oneshot};

use crate::blocking::{PipeReceiver, PipeSender, SendError, SendLimits};

use super::codec::*;
use super::connection::*;
use super::*;

/// A request for a cursor's task.
pub(super) enum CursorJob {
    Fetch { request_id: i32, max_count: u32 },
    Close { request_id: i32 },
}

/// A cursor as the connection task knows it.
pub(super) enum CursorHandle {
    /// Its `open_cursor` failed before reaching a stream; fetches get this error.
    Failed(String),
    /// Running: its task's queue, and the stream it belongs to.
    Open {
        stream_id: i32,
        jobs: mpsc::Sender<CursorJob>,
    },
}

/// Cursor entries into the pipe a cursor's task reads for `fetch_cursor`.
pub(super) struct EntrySink(pub(super) PipeSender<CursorEntry>);

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

/// Serves the fetches of one cursor, in order.
pub(super) async fn cursor_task(
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

pub(super) fn entry_size(entry: &CursorEntry) -> usize {
    match entry {
        CursorEntry::Row { row } => 4 + row.iter().map(Value::wire_size_hint).sum::<usize>(),
        _ => 64,
    }
}
