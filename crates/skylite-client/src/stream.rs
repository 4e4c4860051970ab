//! What the local and the remote backends have in common: a Hrana stream that runs a list of
//! requests and answers one result per request ([`Stream`]), and the requests and answers of
//! the client's operations built on it (execute, atomic batch, sequence, transaction control).

use std::sync::Arc;

use skylite_proto::{
    Batch, BatchCond, BatchResult, BatchStep, Stmt, StreamRequest, StreamResponse, StreamResult,
};

use crate::error::{Error, Result};
use crate::local::{LocalDb, LocalStream};
use crate::params::Statement;
use crate::remote::{Remote, RemoteStream};
use crate::rows::Rows;

/// The two backends.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Local(Arc<LocalDb>),
    Remote(Arc<Remote>),
}

/// One Hrana stream on either backend.
pub(crate) enum Stream {
    Local(Box<LocalStream>),
    Remote(RemoteStream),
}

impl Stream {
    pub(crate) fn new(backend: &Backend) -> Stream {
        match backend {
            Backend::Local(db) => Stream::Local(Box::new(LocalStream::new(db.clone()))),
            Backend::Remote(r) => Stream::Remote(RemoteStream::new(r.clone())),
        }
    }

    pub(crate) async fn run(&mut self, reqs: Vec<StreamRequest>) -> Result<Vec<StreamResult>> {
        match self {
            Stream::Local(s) => s.run(reqs).await,
            Stream::Remote(s) => s.run(reqs).await,
        }
    }

    /// Whether more requests can go on this stream (the server has not closed it and no
    /// request on it broke in transit).
    pub(crate) fn is_usable(&self) -> bool {
        match self {
            Stream::Local(s) => s.is_usable(),
            Stream::Remote(s) => s.is_usable(),
        }
    }

    /// Whether this is a remote stream the server still holds (it has a baton).
    pub(crate) fn is_remote_open(&self) -> bool {
        matches!(self, Stream::Remote(s) if s.is_open())
    }

    /// Whether dropping the stream has something to undo.
    pub(crate) fn needs_close(&self) -> bool {
        match self {
            Stream::Local(s) => s.in_transaction(),
            Stream::Remote(s) => s.is_open(),
        }
    }

    /// Ends the stream without waiting: rolls back on a worker (local) or sends `close` in a
    /// background task (remote).
    pub(crate) fn close_in_background(&mut self, handle: Option<&tokio::runtime::Handle>) {
        match self {
            Stream::Local(s) => s.close_in_background(),
            Stream::Remote(s) => s.close_in_background(handle),
        }
    }
}

/// The request that executes `stmt`.
pub(crate) fn execute_req(stmt: Statement) -> StreamRequest {
    StreamRequest::Execute {
        stmt: stmt.into_stmt(),
    }
}

/// A statement of plain SQL without rows (transaction control).
pub(crate) fn control_req(sql: &str) -> StreamRequest {
    StreamRequest::Execute {
        stmt: Stmt {
            want_rows: Some(false),
            ..Stmt::new(sql)
        },
    }
}

/// The `sequence` request.
pub(crate) fn sequence_req(sql: &str) -> StreamRequest {
    StreamRequest::Sequence {
        sql: Some(sql.to_owned()),
        sql_id: None,
    }
}

fn unexpected(resp: &StreamResponse, want: &str) -> Error {
    let got = serde_json::to_value(resp)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    Error::Protocol(format!(
        "expected a `{want}` response, the server sent `{got}`"
    ))
}

/// The outcome of an `execute` request.
pub(crate) fn expect_rows(result: StreamResult) -> Result<Rows> {
    match result {
        StreamResult::Ok {
            response: StreamResponse::Execute { result },
        } => Ok(Rows::from_result(result)),
        StreamResult::Ok { response } => Err(unexpected(&response, "execute")),
        StreamResult::Error { error } => Err(Error::from_proto(error)),
    }
}

/// The outcome of a `sequence` request.
pub(crate) fn expect_sequence(result: StreamResult) -> Result<()> {
    match result {
        StreamResult::Ok {
            response: StreamResponse::Sequence,
        } => Ok(()),
        StreamResult::Ok { response } => Err(unexpected(&response, "sequence")),
        StreamResult::Error { error } => Err(Error::from_proto(error)),
    }
}

/// The outcome of a `batch` request.
pub(crate) fn expect_batch(result: StreamResult) -> Result<BatchResult> {
    match result {
        StreamResult::Ok {
            response: StreamResponse::Batch { result },
        } => Ok(result),
        StreamResult::Ok { response } => Err(unexpected(&response, "batch")),
        StreamResult::Error { error } => Err(Error::from_proto(error)),
    }
}

/// The outcome of a `close` request (any error is ignored by callers that only clean up).
pub(crate) fn expect_close(result: StreamResult) -> Result<()> {
    match result {
        StreamResult::Ok { .. } => Ok(()),
        StreamResult::Error { error } => Err(Error::from_proto(error)),
    }
}

/// How a transaction starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransactionBehavior {
    /// `BEGIN DEFERRED`: locks are taken when first needed (SQLite's default).
    #[default]
    Deferred,
    /// `BEGIN IMMEDIATE`: the write lock is taken at once.
    Immediate,
    /// `BEGIN EXCLUSIVE`.
    Exclusive,
    /// `BEGIN TRANSACTION READONLY` (libSQL): any write is refused until the end.
    ReadOnly,
}

impl TransactionBehavior {
    pub(crate) fn begin_sql(self) -> &'static str {
        match self {
            TransactionBehavior::Deferred => "BEGIN DEFERRED",
            TransactionBehavior::Immediate => "BEGIN IMMEDIATE",
            TransactionBehavior::Exclusive => "BEGIN EXCLUSIVE",
            TransactionBehavior::ReadOnly => "BEGIN TRANSACTION READONLY",
        }
    }
}

/// An atomic batch: `BEGIN`, each statement only if the one before succeeded, `COMMIT` only if
/// the last succeeded, and `ROLLBACK` if the commit did not happen while a transaction is still
/// open. So either every statement takes effect or none does.
pub(crate) fn atomic_batch(stmts: Vec<Statement>, behavior: TransactionBehavior) -> Batch {
    let n = stmts.len() as u32;
    let mut steps = Vec::with_capacity(stmts.len() + 3);
    steps.push(BatchStep {
        condition: None,
        stmt: Stmt {
            want_rows: Some(false),
            ..Stmt::new(behavior.begin_sql())
        },
    });
    for (i, stmt) in stmts.into_iter().enumerate() {
        steps.push(BatchStep {
            condition: Some(BatchCond::Ok { step: i as u32 }),
            stmt: stmt.into_stmt(),
        });
    }
    steps.push(BatchStep {
        condition: Some(BatchCond::Ok { step: n }),
        stmt: Stmt {
            want_rows: Some(false),
            ..Stmt::new("COMMIT")
        },
    });
    steps.push(BatchStep {
        condition: Some(BatchCond::And {
            conds: vec![
                BatchCond::Not {
                    cond: Box::new(BatchCond::Ok { step: n + 1 }),
                },
                BatchCond::Not {
                    cond: Box::new(BatchCond::IsAutocommit),
                },
            ],
        }),
        stmt: Stmt {
            want_rows: Some(false),
            ..Stmt::new("ROLLBACK")
        },
    });
    Batch { steps }
}

/// A batch inside a transaction: each statement only if the one before succeeded.
pub(crate) fn chained_batch(stmts: Vec<Statement>) -> Batch {
    let steps = stmts
        .into_iter()
        .enumerate()
        .map(|(i, stmt)| BatchStep {
            condition: (i > 0).then(|| BatchCond::Ok { step: i as u32 - 1 }),
            stmt: stmt.into_stmt(),
        })
        .collect();
    Batch { steps }
}

/// The results of steps `range` of a batch, or the first error of any step.
pub(crate) fn batch_rows(result: BatchResult, range: std::ops::Range<usize>) -> Result<Vec<Rows>> {
    if let Some(error) = result.step_errors.iter().flatten().next() {
        return Err(Error::from_proto(error.clone()));
    }
    let mut results = result.step_results;
    let mut out = Vec::with_capacity(range.len());
    for i in range {
        match results.get_mut(i).and_then(Option::take) {
            Some(r) => out.push(Rows::from_result(r)),
            None => {
                return Err(Error::Protocol(format!(
                    "batch step {i} neither succeeded nor failed"
                )))
            }
        }
    }
    Ok(out)
}
