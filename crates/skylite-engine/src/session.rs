//! A Hrana stream on the engine side: the requests of Hrana 3 (`execute`, `batch` with
//! conditions, `sequence`, `describe`, `store_sql`, `close_sql`, `get_autocommit`, `close`),
//! cursors, and the connection the stream runs on.
//!
//! A session borrows a pooled connection for the length of a pipeline and gives it back
//! afterwards unless the connection now carries state (an open transaction, a pragma, a temp
//! table): then the session keeps it, so interactive transactions work across requests.
//!
//! When a transaction is taken away from the session (the write lock was revoked after the
//! transaction timeout), the session remembers it as *lost*: until the client acknowledges with
//! `ROLLBACK` (or closes the stream), every statement gets the error that explains the loss, so
//! a client never goes on in autocommit mode believing it is inside its transaction.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use skylite_proto::{
    Batch, BatchCond, BatchResult, Col, CursorEntry, DescribeResult, Error as ProtoError, Stmt,
    StmtResult, StreamRequest, StreamResponse, StreamResult, Value,
};

use crate::conn::{Conn, RowSink, StmtInput, StmtSummary};
use crate::write_lock::Revoker;
use crate::{Database, ErrorCode, ExecError};

/// Most SQL texts one store (an HTTP stream, or a WebSocket connection) may hold.
pub const MAX_STORED_SQL: usize = 1024;
/// Most bytes of SQL text one store may hold in total: the entry cap alone would let a client
/// park 1024 texts of any size.
pub const MAX_STORED_SQL_BYTES: usize = 4 * 1024 * 1024;
/// What an error in a response is estimated to cost beyond its message (code, framing).
const ERROR_OVERHEAD: usize = 64;

/// The response budget of one pipeline or cursor: an estimate of wire bytes still allowed.
#[derive(Debug, Clone)]
pub struct Budget {
    limit: usize,
    used: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Budget { limit, used: 0 }
    }

    fn charge(&mut self, bytes: usize) -> Result<(), ExecError> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            Err(ExecError::response_too_large(self.limit))
        } else {
            Ok(())
        }
    }

    /// Charges an error that goes into the response. Errors are part of the response too (a
    /// batch of many failing steps, each echoing a long token, must not grow it past the
    /// limit): once the budget is spent, the error is replaced by the short
    /// `RESPONSE_TOO_LARGE`, whose size is fixed.
    fn charge_error(&mut self, err: ExecError) -> ExecError {
        let cost = ERROR_OVERHEAD
            .saturating_add(err.message.len())
            .saturating_add(err.code.as_str().len());
        match self.charge(cost) {
            Ok(()) => err,
            Err(too_large) => too_large,
        }
    }
}

/// Stored SQL texts by id. Over HTTP each stream has its own; over WebSocket all streams of a
/// connection share one (the spec scopes `store_sql` to the connection there).
///
/// Texts are shared (`Arc<str>`), so a request that refers to one, and waits in a queue with a
/// [`PinnedSql`] of it, costs no copy. A store holds at most [`MAX_STORED_SQL`] texts and
/// [`MAX_STORED_SQL_BYTES`] bytes.
#[derive(Debug, Clone, Default)]
pub struct SqlStore(Arc<Mutex<StoreInner>>);

#[derive(Debug, Default)]
struct StoreInner {
    texts: HashMap<i32, Arc<str>>,
    bytes: usize,
}

impl SqlStore {
    fn inner(&self) -> MutexGuard<'_, StoreInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an SQL text under `sql_id`; an id in use, or a store at its limits, is a protocol
    /// error.
    pub fn store(&self, sql_id: i32, sql: String) -> Result<(), ExecError> {
        let mut inner = self.inner();
        if inner.texts.contains_key(&sql_id) {
            return Err(ExecError::protocol(format!(
                "SQL text {sql_id} is already stored"
            )));
        }
        if inner.texts.len() >= MAX_STORED_SQL {
            return Err(ExecError::protocol(format!(
                "too many stored SQL texts (limit {MAX_STORED_SQL})"
            )));
        }
        let bytes = inner.bytes.saturating_add(sql.len());
        if bytes > MAX_STORED_SQL_BYTES {
            return Err(ExecError::protocol(format!(
                "stored SQL texts would take more than {MAX_STORED_SQL_BYTES} bytes \
                 (this text: {} bytes); close some with close_sql first",
                sql.len()
            )));
        }
        inner.bytes = bytes;
        inner.texts.insert(sql_id, Arc::from(sql));
        Ok(())
    }

    /// Forgets an SQL text (no error if it is unknown).
    pub fn close(&self, sql_id: i32) {
        let mut inner = self.inner();
        if let Some(text) = inner.texts.remove(&sql_id) {
            inner.bytes = inner.bytes.saturating_sub(text.len());
        }
    }

    /// The SQL text stored under `sql_id`.
    pub fn get(&self, sql_id: i32) -> Option<Arc<str>> {
        self.inner().texts.get(&sql_id).cloned()
    }

    /// Takes the texts stored under `ids` now, so that a request waiting in a queue runs with
    /// them even if a later `close_sql` overtakes it. Unknown ids are left out (running the
    /// request then reports them).
    pub fn pin(&self, ids: impl IntoIterator<Item = i32>) -> PinnedSql {
        let inner = self.inner();
        let mut pinned = HashMap::new();
        for id in ids {
            if let Some(text) = inner.texts.get(&id) {
                pinned.insert(id, text.clone());
            }
        }
        PinnedSql(pinned)
    }

    /// Total bytes of the stored texts.
    pub fn bytes(&self) -> usize {
        self.inner().bytes
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.inner().texts.is_empty()
    }

    fn clear(&self) {
        let mut inner = self.inner();
        inner.texts.clear();
        inner.bytes = 0;
    }
}

/// Stored SQL texts taken for one request ([`SqlStore::pin`]); they are consulted before the
/// store itself while the request runs ([`Session::with_pinned`]).
#[derive(Debug, Clone, Default)]
pub struct PinnedSql(HashMap<i32, Arc<str>>);

/// Every `sql_id` a stream request refers to.
pub fn referenced_sql_ids(req: &StreamRequest) -> Vec<i32> {
    match req {
        StreamRequest::Execute { stmt } => stmt.sql_id.into_iter().collect(),
        StreamRequest::Batch { batch } => batch_sql_ids(batch),
        StreamRequest::Sequence { sql_id, .. } | StreamRequest::Describe { sql_id, .. } => {
            sql_id.iter().copied().collect()
        }
        _ => Vec::new(),
    }
}

/// Every `sql_id` the steps of a batch refer to.
pub fn batch_sql_ids(batch: &Batch) -> Vec<i32> {
    batch.steps.iter().filter_map(|s| s.stmt.sql_id).collect()
}

/// Watches whether the write lock was taken away from a session's connection (a writer waited
/// past the transaction timeout). Cheap to clone and to check from any thread, so code that
/// waits on a slow client can give up as soon as the hold is revoked.
#[derive(Clone)]
pub struct LockWatch(Arc<Revoker>);

impl LockWatch {
    /// True once a waiting writer revoked the connection's hold on the write lock; the session
    /// must then roll back ([`Session::abandon`]).
    pub fn is_revoked(&self) -> bool {
        self.0.is_revoked()
    }
}

/// SQL text of a statement: the request's own, or a shared stored one.
enum SqlText<'a> {
    Inline(&'a str),
    Stored(Arc<str>),
}

impl Deref for SqlText<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            SqlText::Inline(s) => s,
            SqlText::Stored(s) => s,
        }
    }
}

/// The engine side of one stream.
pub struct Session {
    db: Database,
    conn: Option<Conn>,
    sqls: SqlStore,
    /// Whether `sqls` belongs to this session alone (and so is part of its state).
    owns_sqls: bool,
    lost: Option<ExecError>,
    read_only: bool,
    /// A durability failure met while closing (a `close` request right after a write): the
    /// next [`Session::finish_pipeline`] reports it, so the write is not acknowledged.
    close_error: Option<ExecError>,
    /// Stored texts taken when the running request was queued (WebSocket).
    pinned: PinnedSql,
}

impl Session {
    /// Limits the session to reading (a read-only token). Enforced by the engine for every
    /// statement: the authorizer refuses writes while a statement is prepared, and any prepared
    /// statement that would write is refused before it runs.
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    /// Whether the session may only read.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A fresh session on `db`.
    pub fn new(db: Database) -> Self {
        Session {
            db,
            conn: None,
            sqls: SqlStore::default(),
            owns_sqls: true,
            lost: None,
            read_only: false,
            close_error: None,
            pinned: PinnedSql::default(),
        }
    }

    /// A fresh session on `db` whose stored SQL lives in a store shared with other sessions
    /// (the streams of one WebSocket connection).
    pub fn with_sql_store(db: Database, sqls: SqlStore) -> Self {
        Session {
            db,
            conn: None,
            sqls,
            owns_sqls: false,
            lost: None,
            read_only: false,
            close_error: None,
            pinned: PinnedSql::default(),
        }
    }

    /// The database this session runs on.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// True if the session holds state a client may rely on across requests.
    pub fn is_stateful(&self) -> bool {
        self.lost.is_some()
            || (self.owns_sqls && !self.sqls.is_empty())
            || self.conn.as_ref().is_some_and(|c| c.has_state())
    }

    /// True if the session has an open transaction.
    pub fn in_transaction(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.is_autocommit())
    }

    /// True outside an explicit transaction.
    pub fn is_autocommit(&self) -> bool {
        !self.in_transaction()
    }

    fn conn(&mut self) -> Result<&mut Conn, ExecError> {
        if self.conn.is_none() {
            self.conn = Some(self.db.acquire()?);
        }
        // Just filled above.
        self.conn
            .as_mut()
            .ok_or_else(|| ExecError::new(ErrorCode::Internal, "connection missing"))
    }

    /// Ends a pipeline: waits for durability of its commits and returns a clean connection to
    /// the pool. Must run before the response is sent.
    pub fn finish_pipeline(&mut self) -> Result<(), ExecError> {
        if let Some(e) = self.close_error.take() {
            return Err(e);
        }
        if let Some(conn) = self.conn.as_mut() {
            conn.make_durable()?;
            if !conn.has_state() {
                if let Some(conn) = self.conn.take() {
                    self.db.release(conn);
                }
            }
        }
        Ok(())
    }

    /// Rolls back and forgets everything (stream closed or expired). Returns whether a
    /// transaction was open.
    pub fn close(&mut self) -> bool {
        let had_txn = self.in_transaction();
        if let Some(mut conn) = self.conn.take() {
            conn.rollback();
            if let Err(e) = conn.make_durable() {
                self.close_error = Some(e);
            }
            self.db.release(conn);
        }
        if self.owns_sqls {
            self.sqls.clear();
        }
        self.lost = None;
        had_txn
    }

    /// Puts the session in the *lost* state: every statement answers `err` until the client
    /// sends `ROLLBACK` (used when a stream that held a transaction comes back after expiry).
    pub fn mark_lost(&mut self, err: ExecError) {
        self.lost = Some(err);
    }

    /// Applies a pending revocation while the session is idle. Returns true if a transaction
    /// was rolled back because of it.
    pub fn enforce_revocation(&mut self) -> bool {
        if let Some(err) = self.conn.as_mut().and_then(|c| c.enforce_revocation()) {
            self.lost = Some(err);
            return true;
        }
        false
    }

    /// A watch on this session's hold of the write lock (taking a connection from the pool if
    /// the session has none yet: the statements about to run use that same connection).
    pub fn lock_watch(&mut self) -> Result<LockWatch, ExecError> {
        Ok(LockWatch(self.conn()?.revoker()))
    }

    /// A watch on the hold of the connection the session already has, if any (never takes one
    /// from the pool, so it is safe on async threads).
    pub fn current_lock_watch(&self) -> Option<LockWatch> {
        self.conn.as_ref().map(|c| LockWatch(c.revoker()))
    }

    /// Gives up the session's transaction because its client stalled: if the write lock was
    /// revoked, applies that (rolls back, `TRANSACTION_TIMEOUT`); otherwise rolls back an open
    /// transaction and answers `err` until the client acknowledges with `ROLLBACK`. Releases
    /// the write lock either way. Returns true if a transaction was rolled back.
    pub fn abandon(&mut self, err: ExecError) -> bool {
        if self.enforce_revocation() {
            return true;
        }
        if !self.in_transaction() {
            return false;
        }
        if let Some(conn) = self.conn.as_mut() {
            conn.rollback();
        }
        self.lost = Some(err);
        true
    }

    /// Runs `f` with `pinned` consulted before the stored SQL of the session (the texts a
    /// queued request referred to when it was queued).
    pub fn with_pinned<R>(&mut self, pinned: PinnedSql, f: impl FnOnce(&mut Self) -> R) -> R {
        self.pinned = pinned;
        let result = f(self);
        self.pinned = PinnedSql::default();
        result
    }

    /// Executes one stream request.
    pub fn handle(&mut self, req: &StreamRequest, budget: &mut Budget) -> StreamResult {
        match self.handle_inner(req, budget) {
            Ok(response) => StreamResult::Ok { response },
            Err(e) => StreamResult::Error {
                error: budget.charge_error(e).into(),
            },
        }
    }

    fn handle_inner(
        &mut self,
        req: &StreamRequest,
        budget: &mut Budget,
    ) -> Result<StreamResponse, ExecError> {
        Ok(match req {
            StreamRequest::Close => {
                self.close();
                StreamResponse::Close
            }
            StreamRequest::Execute { stmt } => StreamResponse::Execute {
                result: self.execute(stmt, budget)?,
            },
            StreamRequest::Batch { batch } => StreamResponse::Batch {
                result: self.batch(batch, budget),
            },
            StreamRequest::Sequence { sql, sql_id } => {
                let sql = self.resolve_sql(sql.as_deref(), *sql_id)?;
                self.sequence(&sql)?;
                StreamResponse::Sequence
            }
            StreamRequest::Describe { sql, sql_id } => {
                let sql = self.resolve_sql(sql.as_deref(), *sql_id)?;
                StreamResponse::Describe {
                    result: self.describe(&sql)?,
                }
            }
            StreamRequest::StoreSql { sql_id, sql } => {
                self.store_sql(*sql_id, sql.clone())?;
                StreamResponse::StoreSql
            }
            StreamRequest::CloseSql { sql_id } => {
                self.sqls.close(*sql_id);
                StreamResponse::CloseSql
            }
            StreamRequest::GetAutocommit => StreamResponse::GetAutocommit {
                is_autocommit: self.is_autocommit(),
            },
        })
    }

    /// Stores an SQL text under `sql_id`.
    pub fn store_sql(&mut self, sql_id: i32, sql: String) -> Result<(), ExecError> {
        self.sqls.store(sql_id, sql)
    }

    fn resolve_sql<'a>(
        &self,
        sql: Option<&'a str>,
        sql_id: Option<i32>,
    ) -> Result<SqlText<'a>, ExecError> {
        match (sql, sql_id) {
            (Some(s), None) => Ok(SqlText::Inline(s)),
            (None, Some(id)) => self
                .pinned
                .0
                .get(&id)
                .cloned()
                .or_else(|| self.sqls.get(id))
                .map(SqlText::Stored)
                .ok_or_else(|| {
                    ExecError::protocol(format!("no SQL text stored under id {id} on this stream"))
                }),
            (Some(_), Some(_)) => Err(ExecError::protocol(
                "a statement must have either `sql` or `sql_id`, not both",
            )),
            (None, None) => Err(ExecError::protocol(
                "a statement must have either `sql` or `sql_id`",
            )),
        }
    }

    /// Runs one statement through `sink`, honouring a lost transaction.
    fn run_stmt(&mut self, stmt: &Stmt, sink: &mut dyn RowSink) -> Result<StmtSummary, ExecError> {
        let sql = self.resolve_sql(stmt.sql.as_deref(), stmt.sql_id)?;
        if let Some(lost) = &self.lost {
            if is_plain_rollback(&sql) {
                // The transaction is already rolled back: acknowledge and recover.
                self.lost = None;
                sink.columns(Vec::new())?;
                return Ok(StmtSummary::default());
            }
            return Err(lost.clone());
        }
        let input = StmtInput {
            sql: &sql,
            args: &stmt.args,
            named_args: &stmt.named_args,
            want_rows: stmt.want_rows.unwrap_or(true),
            read_only: self.read_only,
        };
        let result = self.conn()?.run(input, sink);
        if let Err(e) = &result {
            if e.code == ErrorCode::TransactionTimeout {
                self.lost = Some(e.clone());
            }
        }
        result
    }

    /// Executes one statement and collects its result.
    pub fn execute(&mut self, stmt: &Stmt, budget: &mut Budget) -> Result<StmtResult, ExecError> {
        let mut sink = Collect {
            budget,
            cols: Vec::new(),
            rows: Vec::new(),
        };
        let summary = self.run_stmt(stmt, &mut sink)?;
        Ok(StmtResult {
            cols: sink.cols,
            rows: sink.rows,
            affected_row_count: summary.affected_row_count,
            last_insert_rowid: summary.last_insert_rowid,
            rows_read: summary.rows_read,
            rows_written: summary.rows_written,
            query_duration_ms: summary.query_duration_ms,
        })
    }

    /// Executes a batch, step by step, honouring conditions.
    pub fn batch(&mut self, batch: &Batch, budget: &mut Budget) -> BatchResult {
        let mut result = BatchResult::default();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.steps.len());
        for step in &batch.steps {
            let run = match &step.condition {
                None => true,
                Some(cond) => self.eval(cond, &outcomes),
            };
            if !run {
                outcomes.push(Outcome::Skipped);
                result.step_results.push(None);
                result.step_errors.push(None);
                continue;
            }
            match self.execute(&step.stmt, budget) {
                Ok(r) => {
                    outcomes.push(Outcome::Ok);
                    result.step_results.push(Some(r));
                    result.step_errors.push(None);
                }
                Err(e) => {
                    outcomes.push(Outcome::Error);
                    result.step_results.push(None);
                    result.step_errors.push(Some(budget.charge_error(e).into()));
                }
            }
        }
        result
    }

    /// Runs a batch through a cursor: entries go to `emit` as they are produced. `emit`
    /// returns false when the receiver has gone away, which stops the batch.
    pub fn cursor(
        &mut self,
        batch: &Batch,
        budget_limit: usize,
        emit: &mut dyn FnMut(CursorEntry) -> bool,
    ) {
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.steps.len());
        for (i, step) in batch.steps.iter().enumerate() {
            let run = match &step.condition {
                None => true,
                Some(cond) => self.eval(cond, &outcomes),
            };
            if !run {
                outcomes.push(Outcome::Skipped);
                continue;
            }
            let mut sink = Stream {
                step: i as u32,
                emit: &mut *emit,
                began: false,
                gone: false,
                // A cursor streams, so the budget bounds one row, not the whole result.
                row_limit: budget_limit,
            };
            let outcome = self.run_stmt(&step.stmt, &mut sink);
            let (began, gone) = (sink.began, sink.gone);
            if gone {
                return;
            }
            let delivered = match outcome {
                Ok(summary) => {
                    outcomes.push(Outcome::Ok);
                    let mut ok = true;
                    if !began {
                        ok = emit(CursorEntry::StepBegin {
                            step: i as u32,
                            cols: Vec::new(),
                        });
                    }
                    ok && emit(CursorEntry::StepEnd {
                        affected_row_count: summary.affected_row_count,
                        last_insert_rowid: summary.last_insert_rowid,
                    })
                }
                Err(e) => {
                    outcomes.push(Outcome::Error);
                    emit(CursorEntry::StepError {
                        step: i as u32,
                        error: ProtoError::from(e),
                    })
                }
            };
            if !delivered {
                return;
            }
        }
    }

    /// Executes several statements separated by semicolons, discarding rows; stops at the
    /// first error.
    pub fn sequence(&mut self, sql: &str) -> Result<(), ExecError> {
        let mut rest = sql;
        loop {
            let body = crate::sql_text::skip_space_and_comments(rest);
            let body = body.trim_start_matches(|c: char| c == ';' || c.is_whitespace());
            if crate::sql_text::skip_space_and_comments(body).is_empty() {
                return Ok(());
            }
            let (len, more) = crate::sql_text::first_statement(body);
            let stmt = Stmt {
                sql: Some(body[..len].to_owned()),
                want_rows: Some(false),
                ..Stmt::default()
            };
            self.run_stmt(&stmt, &mut Discard)?;
            if !more {
                return Ok(());
            }
            rest = &body[len..];
        }
    }

    /// Describes a statement.
    pub fn describe(&mut self, sql: &str) -> Result<DescribeResult, ExecError> {
        let read_only = self.read_only;
        self.conn()?.describe(sql, read_only)
    }

    fn eval(&self, cond: &BatchCond, outcomes: &[Outcome]) -> bool {
        match cond {
            BatchCond::Ok { step } => outcomes.get(*step as usize) == Some(&Outcome::Ok),
            BatchCond::Error { step } => outcomes.get(*step as usize) == Some(&Outcome::Error),
            BatchCond::Not { cond } => !self.eval(cond, outcomes),
            BatchCond::And { conds } => conds.iter().all(|c| self.eval(c, outcomes)),
            BatchCond::Or { conds } => conds.iter().any(|c| self.eval(c, outcomes)),
            BatchCond::IsAutocommit => self.is_autocommit(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Error,
    Skipped,
}

/// True if `req` starts by rolling back (`ROLLBACK` as an execute, or as the first step of a
/// batch): the client acknowledges that its transaction is gone.
pub fn starts_with_rollback(req: &StreamRequest) -> bool {
    let first_sql = match req {
        StreamRequest::Execute { stmt } => stmt.sql.as_deref(),
        StreamRequest::Batch { batch } => batch.steps.first().and_then(|s| s.stmt.sql.as_deref()),
        StreamRequest::Sequence { sql, .. } => sql.as_deref(),
        _ => None,
    };
    first_sql.is_some_and(is_plain_rollback)
}

/// `ROLLBACK` / `ROLLBACK TRANSACTION` (not `ROLLBACK TO`).
fn is_plain_rollback(sql: &str) -> bool {
    let s = crate::sql_text::skip_space_and_comments(sql);
    let mut words = s
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty());
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("ROLLBACK") => {}
        _ => return false,
    }
    !words.any(|w| w.eq_ignore_ascii_case("TO"))
}

/// Collects a whole result, charging the budget.
struct Collect<'b> {
    budget: &'b mut Budget,
    cols: Vec<Col>,
    rows: Vec<Vec<Value>>,
}

impl RowSink for Collect<'_> {
    fn columns(&mut self, cols: Vec<Col>) -> Result<(), ExecError> {
        self.budget.charge(64 + cols.len() * 48)?;
        self.cols = cols;
        Ok(())
    }
    fn row(&mut self, row: Vec<Value>) -> Result<(), ExecError> {
        self.budget
            .charge(4 + row.iter().map(Value::wire_size_hint).sum::<usize>())?;
        self.rows.push(row);
        Ok(())
    }
}

/// Drops rows (for `sequence`).
struct Discard;

impl RowSink for Discard {
    fn columns(&mut self, _: Vec<Col>) -> Result<(), ExecError> {
        Ok(())
    }
    fn row(&mut self, _: Vec<Value>) -> Result<(), ExecError> {
        Ok(())
    }
}

/// Forwards rows to a cursor as entries.
struct Stream<'e> {
    step: u32,
    emit: &'e mut dyn FnMut(CursorEntry) -> bool,
    began: bool,
    gone: bool,
    row_limit: usize,
}

impl RowSink for Stream<'_> {
    fn columns(&mut self, cols: Vec<Col>) -> Result<(), ExecError> {
        self.began = true;
        if !(self.emit)(CursorEntry::StepBegin {
            step: self.step,
            cols,
        }) {
            self.gone = true;
            return Err(ExecError::new(
                ErrorCode::ClientGone,
                "the client went away",
            ));
        }
        Ok(())
    }
    fn row(&mut self, row: Vec<Value>) -> Result<(), ExecError> {
        let size: usize = row.iter().map(Value::wire_size_hint).sum();
        if size > self.row_limit {
            return Err(ExecError::response_too_large(self.row_limit));
        }
        if !(self.emit)(CursorEntry::Row { row }) {
            self.gone = true;
            return Err(ExecError::new(
                ErrorCode::ClientGone,
                "the client went away",
            ));
        }
        Ok(())
    }
    fn may_wait(&self) -> bool {
        // The reader of the cursor sets the pace.
        true
    }
}
