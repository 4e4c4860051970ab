//! [`Connection`]: one persistent stream per connection, as a database driver needs it
//! (PEP 249, JDBC-like APIs): statements run one after another on the same stream, so
//! connection state (temp tables, pragmas, `last_insert_rowid`) lives on between them, and
//! transactions are begun lazily.
//!
//! # Round trips
//!
//! - [`Connection::begin`] sends nothing: the `BEGIN` goes out with the first statement of the
//!   transaction, in the same request (as a batch `BEGIN; stmt if BEGIN succeeded`), so a
//!   failed `BEGIN` never lets the statement run in autocommit.
//! - [`Connection::commit`] / [`Connection::rollback`] send one request, and none at all when
//!   no transaction is open (nothing begun, or begun but never used).
//! - So a write transaction costs two round trips: `BEGIN + INSERT ...`, then `COMMIT`.
//! - Every request also asks the server whether the stream is in autocommit
//!   (`get_autocommit`, no extra round trip), so [`Connection::in_transaction`] is exact even
//!   after `BEGIN`/`COMMIT` written as SQL or a rollback SQLite did by itself.
//!
//! # Streams
//!
//! On a server, a connection holds a stream only while it needs one: an operation that starts
//! and ends outside a transaction, and `COMMIT`/`ROLLBACK`, close the stream in the same
//! request, so an idle connection costs the server nothing (servers cap the streams a token
//! may hold: skylite `--max-streams-per-token`) and never finds its stream expired. Inside a
//! transaction the stream lives on. Session state outlives a transaction only if the client
//! saw it being made: after `PRAGMA x = y` or `CREATE TEMP ...` the connection keeps its
//! stream for good (state made otherwise, e.g. by a script, lasts until the next close).
//!
//! # Lost streams
//!
//! A server forgets an idle stream after a while (skylite: `--stream-idle-timeout`). If that
//! happens outside a transaction, the request is sent again on a new stream (nothing ran on the
//! old one; only its temp tables and pragmas are gone). Inside a transaction it is an
//! [`Error::TransactionLost`]: the server rolled it back; the connection is usable again
//! afterwards, in autocommit.
//!
//! # Cancellation
//!
//! Every operation runs in a task of its own on the tokio runtime the connection was opened on,
//! so dropping the future of a call (a timeout, a cancelled task) does not interrupt the request:
//! it completes in the background and the stream stays consistent for the next call, which
//! waits for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use skylite_proto::{Batch, BatchStep, Stmt, StreamRequest, StreamResponse, StreamResult};

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::local::{on_worker, LocalDb};
use crate::params::{IntoParams, Statement};
use crate::remote::Remote;
use crate::rows::Rows;
use crate::stream::{
    batch_rows, chained_batch, control_req, execute_req, expect_batch, expect_rows,
    expect_sequence, sequence_req, Backend, Stream, TransactionBehavior,
};
use crate::value::Value;

/// A connection with its own persistent stream. Cheap to clone: clones share the stream (and
/// take turns on it).
#[derive(Clone)]
pub struct Connection {
    backend: Backend,
    state: Arc<tokio::sync::Mutex<State>>,
    /// `in_transaction` as of the end of the last operation, readable without waiting.
    txn_hint: Arc<AtomicBool>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

struct State {
    /// `None` before the first request and after the stream was closed or lost.
    stream: Option<Stream>,
    /// A `BEGIN` to send with the next statement.
    pending_begin: Option<TransactionBehavior>,
    /// What the server said after the last request (true outside a transaction).
    autocommit: bool,
    closed: bool,
    /// The stream may carry session state (a pragma was set, a temp table created): keep it
    /// between transactions instead of closing it (see "Streams" in the module docs).
    sticky: bool,
}

/// What one operation sends, besides the optional `BEGIN` and the trailing `get_autocommit`.
enum Op {
    Execute(Statement),
    Batch(Vec<Statement>),
    Sequence(String),
    Control(&'static str),
}

/// What one operation returns.
enum Outcome {
    Rows(Rows),
    Many(Vec<Rows>),
    Done,
}

impl Connection {
    /// Connects to `url` (see [`crate::config`]) with a token (`""`: none). Must be called
    /// inside a tokio runtime; the connection runs its requests there.
    pub async fn connect(url: &str, auth_token: &str) -> Result<Connection> {
        Connection::open(Config::new(url).auth_token(auth_token)).await
    }

    /// Connects with a full configuration.
    pub async fn open(config: Config) -> Result<Connection> {
        let backend = match Target::parse(&config.url)? {
            Target::Local(path) => Backend::Local(on_worker(move || LocalDb::open(&path)).await??),
            Target::Memory => Backend::Local(on_worker(LocalDb::open_private).await??),
            Target::Remote(url) => Backend::Remote(Arc::new(Remote::new(url, &config)?)),
        };
        Ok(Connection {
            backend,
            state: Arc::new(tokio::sync::Mutex::new(State {
                stream: None,
                pending_begin: None,
                autocommit: true,
                closed: false,
                sticky: false,
            })),
            txn_hint: Arc::new(AtomicBool::new(false)),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// True for a server, false for a local file.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Remote(_))
    }

    /// HTTP requests this connection's server client has sent so far (0 for local files): what
    /// the round-trip promises above are tested with.
    pub fn round_trips(&self) -> u64 {
        match &self.backend {
            Backend::Remote(r) => r.requests_sent(),
            Backend::Local(_) => 0,
        }
    }

    /// For a server: whether requests go out as Protobuf (`Some(true)`) or JSON
    /// (`Some(false)`); `None` before the first request and for local files.
    pub fn uses_protobuf(&self) -> Option<bool> {
        match &self.backend {
            Backend::Remote(r) => r.uses_protobuf(),
            Backend::Local(_) => None,
        }
    }

    /// Executes one statement and returns its rows.
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> Result<Rows> {
        self.execute_statement(Statement::with_params(sql, params))
            .await
    }

    /// Executes one prepared [`Statement`].
    pub async fn execute_statement(&self, stmt: Statement) -> Result<Rows> {
        match self.run(Op::Execute(stmt)).await? {
            Outcome::Rows(rows) => Ok(rows),
            _ => Err(internal()),
        }
    }

    /// Executes a query and streams its rows (`/v3/cursor` on a server): memory stays flat
    /// however many rows there are, and results larger than the server's response limit work.
    /// Resolves once the columns are known (so SQL errors come from here); then read rows
    /// with [`RowStream::next`].
    ///
    /// The connection is busy until the stream is read to its end or dropped; other calls
    /// wait. Dropping it early inside a transaction reads (and discards) the rest in the
    /// background so the transaction stays usable; outside one the cursor is abandoned and the
    /// next call uses a new stream. For a local file the rows are produced whole, then handed
    /// out (no response limit applies there).
    pub async fn query_stream(&self, stmt: Statement) -> Result<RowStream> {
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let (row_tx, row_rx) = tokio::sync::mpsc::channel(ROW_BUFFER);
        let state = self.state.clone();
        let backend = self.backend.clone();
        let hint = self.txn_hint.clone();
        self.runtime.spawn(async move {
            let mut state = state.lock_owned().await;
            let mut head_tx = Some(head_tx);
            let outcome = stream_locked(&mut state, &backend, stmt, &mut head_tx, &row_tx).await;
            hint.store(
                state.pending_begin.is_some() || !state.autocommit,
                Ordering::Relaxed,
            );
            if let Err(e) = outcome {
                match head_tx.take() {
                    Some(h) => {
                        let _ = h.send(Err(e));
                    }
                    None => {
                        let _ = row_tx.send(Err(e)).await;
                    }
                }
            }
        });
        let (columns, decltypes) = head_rx
            .await
            .map_err(|_| Error::Protocol("the cursor task ended without an answer".into()))??;
        Ok(RowStream {
            columns,
            decltypes,
            rows: row_rx,
        })
    }

    /// Executes statements in order in one request, each only if the previous succeeded (no
    /// transaction of its own: in autocommit each commits by itself). Returns the first error.
    pub async fn execute_batch(&self, stmts: Vec<Statement>) -> Result<Vec<Rows>> {
        if stmts.is_empty() {
            return Ok(Vec::new());
        }
        match self.run(Op::Batch(stmts)).await? {
            Outcome::Many(rows) => Ok(rows),
            _ => Err(internal()),
        }
    }

    /// Executes `;`-separated statements in order, stopping at the first error. A pending
    /// `BEGIN` is sent first.
    pub async fn execute_multiple(&self, sql: &str) -> Result<()> {
        self.run(Op::Sequence(sql.to_owned())).await.map(|_| ())
    }

    /// Starts a transaction lazily: `BEGIN` travels with the next statement. An error if one
    /// is already open or pending.
    pub async fn begin(&self, behavior: TransactionBehavior) -> Result<()> {
        let mut state = self.state.clone().lock_owned().await;
        check_open(&state)?;
        if state.pending_begin.is_some() || !state.autocommit {
            return Err(Error::Sqlite {
                code: "SQLITE_ERROR".into(),
                message: "cannot start a transaction within a transaction".into(),
            });
        }
        state.pending_begin = Some(behavior);
        self.txn_hint.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Commits the open transaction; does nothing (no round trip) if none is open.
    pub async fn commit(&self) -> Result<()> {
        self.finish("COMMIT").await
    }

    /// Rolls back the open transaction; does nothing (no round trip) if none is open.
    pub async fn rollback(&self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    async fn finish(&self, sql: &'static str) -> Result<()> {
        {
            let mut state = self.state.clone().lock_owned().await;
            check_open(&state)?;
            // A BEGIN that never went out: nothing to end.
            state.pending_begin = None;
            if state.autocommit {
                self.txn_hint.store(false, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.run(Op::Control(sql)).await.map(|_| ())
    }

    /// Whether a transaction is open or begun (pending).
    pub async fn in_transaction(&self) -> bool {
        let state = self.state.lock().await;
        state.pending_begin.is_some() || !state.autocommit
    }

    /// Whether a transaction was open (or pending) when the last operation ended. Unlike
    /// [`Connection::in_transaction`] it never waits for an operation in flight.
    pub fn in_transaction_hint(&self) -> bool {
        self.txn_hint.load(Ordering::Relaxed)
    }

    /// Closes the stream (rolling back an open transaction). Later calls fail.
    pub async fn close(&self) -> Result<()> {
        self.txn_hint.store(false, Ordering::Relaxed);
        let state = self.state.clone();
        let task = self.runtime.spawn(async move {
            let mut state = state.lock_owned().await;
            state.closed = true;
            state.pending_begin = None;
            state.autocommit = true;
            if let Some(mut stream) = state.stream.take() {
                if stream.is_remote_open() {
                    let _ = stream.run(vec![StreamRequest::Close]).await;
                } else {
                    stream.close_in_background(None);
                }
            }
        });
        task.await
            .map_err(|e| Error::Protocol(format!("the close task failed: {e}")))
    }

    /// Runs `op` in its own task (see "Cancellation" in the module docs).
    async fn run(&self, op: Op) -> Result<Outcome> {
        let state = self.state.clone();
        let backend = self.backend.clone();
        let hint = self.txn_hint.clone();
        let task = self.runtime.spawn(async move {
            let mut state = state.lock_owned().await;
            let outcome = run_locked(&mut state, &backend, op).await;
            hint.store(
                state.pending_begin.is_some() || !state.autocommit,
                Ordering::Relaxed,
            );
            outcome
        });
        task.await
            .map_err(|e| Error::Protocol(format!("the request task failed: {e}")))?
    }
}

/// Rows buffered between the network and the reader of a [`RowStream`].
const ROW_BUFFER: usize = 256;

/// Column names and declared types, sent once a cursor knows them.
type Head = Result<(Vec<String>, Vec<Option<String>>)>;

/// The rows of [`Connection::query_stream`], as they arrive.
pub struct RowStream {
    columns: Vec<String>,
    decltypes: Vec<Option<String>>,
    rows: tokio::sync::mpsc::Receiver<Result<Vec<Value>>>,
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl RowStream {
    /// Column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Declared column types (`None` for expressions).
    pub fn column_types(&self) -> &[Option<String>] {
        &self.decltypes
    }

    /// The next row's values, `None` at the end, or the error that ended the query.
    pub async fn next(&mut self) -> Option<Result<Vec<Value>>> {
        self.rows.recv().await
    }

    /// The next row without waiting: `Ok(None)` when none has arrived yet or at the end.
    pub fn try_next(&mut self) -> Result<Option<Vec<Value>>> {
        match self.rows.try_recv() {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }
}

async fn stream_locked(
    state: &mut State,
    backend: &Backend,
    stmt: Statement,
    head_tx: &mut Option<tokio::sync::oneshot::Sender<Head>>,
    row_tx: &tokio::sync::mpsc::Sender<Result<Vec<Value>>>,
) -> Result<()> {
    check_open(state)?;
    if let Backend::Local(_) = backend {
        let Outcome::Rows(rows) = run_locked(state, backend, Op::Execute(stmt)).await? else {
            return Err(internal());
        };
        if let Some(h) = head_tx.take() {
            let _ = h.send(Ok((rows.columns().to_vec(), rows.column_types().to_vec())));
        }
        for row in rows {
            if row_tx.send(Ok(row.into_values())).await.is_err() {
                break;
            }
        }
        return Ok(());
    }
    let begin = state.pending_begin.take();
    let mut steps = Vec::with_capacity(2);
    if let Some(b) = begin {
        steps.push(begin_step(b));
    }
    let target_step = steps.len() as u32;
    steps.push(BatchStep {
        condition: begin.map(|_| skylite_proto::BatchCond::Ok { step: 0 }),
        stmt: stmt.into_stmt(),
    });
    let batch = Batch { steps };
    let mut attempt = 0;
    let (mut frames, remote) = loop {
        let stream = state.stream.get_or_insert_with(|| Stream::new(backend));
        let Stream::Remote(remote_stream) = stream else {
            return Err(internal());
        };
        match remote_stream.open_cursor(batch.clone()).await {
            Ok(frames) => break (frames, remote_stream.remote().clone()),
            Err(e) if is_stream_lost(&e) && state.autocommit && attempt == 0 => {
                state.stream = None;
                attempt += 1;
            }
            Err(e) => {
                if let Some(mut s) = state.stream.take() {
                    s.close_in_background(None);
                }
                if is_stream_lost(&e) {
                    state.autocommit = true;
                }
                return Err(e);
            }
        }
    };
    if begin.is_some() {
        state.autocommit = false;
    }
    let mut reader_gone = false;
    let mut failure = None;
    loop {
        let entry = match frames.next_entry(&remote).await {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => {
                // In transit: the stream is unusable now.
                if let Some(mut s) = state.stream.take() {
                    s.close_in_background(None);
                }
                state.autocommit = true;
                return Err(e);
            }
        };
        match entry {
            skylite_proto::CursorEntry::StepBegin { step, cols } if step == target_step => {
                if let Some(h) = head_tx.take() {
                    let names = cols
                        .iter()
                        .map(|c| c.name.clone().unwrap_or_default())
                        .collect();
                    let types = cols.into_iter().map(|c| c.decltype).collect();
                    let _ = h.send(Ok((names, types)));
                }
            }
            skylite_proto::CursorEntry::Row { row } => {
                if reader_gone {
                    continue;
                }
                if row_tx.send(Ok(row)).await.is_err() {
                    reader_gone = true;
                    if state.autocommit {
                        // Nothing to keep consistent: abandon the cursor and its stream.
                        drop(frames);
                        if let Some(mut s) = state.stream.take() {
                            s.close_in_background(None);
                        }
                        return Ok(());
                    }
                }
            }
            skylite_proto::CursorEntry::StepError { step, error } => {
                if step == 0 && begin.is_some() {
                    state.autocommit = true;
                }
                failure.get_or_insert(Error::from_proto(error));
            }
            skylite_proto::CursorEntry::Error { error } => {
                failure.get_or_insert(Error::from_proto(error));
            }
            _ => {}
        }
    }
    if let Some(Stream::Remote(s)) = state.stream.as_mut() {
        s.cursor_done();
    }
    if state.autocommit && !state.sticky {
        // As other operations outside a transaction: give the stream back (a cursor request
        // cannot carry the close itself, so it goes in the background).
        if let Some(mut s) = state.stream.take() {
            s.close_in_background(None);
        }
    }
    if let Some(mut s) = state.stream.take_if(|s| !s.is_usable()) {
        s.close_in_background(None);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(h) = head_tx.take() {
        // A statement without a StepBegin (it failed before producing anything).
        let _ = h.send(Ok((Vec::new(), Vec::new())));
    }
    Ok(())
}

fn check_open(state: &State) -> Result<()> {
    if state.closed {
        return Err(Error::Config("the connection is closed".into()));
    }
    Ok(())
}

fn internal() -> Error {
    Error::Protocol("unexpected result shape".into())
}

fn missing() -> Error {
    Error::Protocol("the server sent fewer results than requests".into())
}

/// Whether an error says the server no longer knows the stream.
fn is_stream_lost(e: &Error) -> bool {
    matches!(e.code(), Some("STREAM_EXPIRED" | "STREAM_CLOSED"))
        || matches!(e, Error::TransactionLost(_))
}

/// Whether `sql` makes session state a later transaction may rely on: a pragma being set, or
/// a temporary table, view or trigger.
fn makes_session_state(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .take(3)
        .map(str::to_ascii_uppercase)
        .collect();
    match words.first().map(String::as_str) {
        Some("PRAGMA") => sql.contains('='),
        Some("CREATE") => matches!(words.get(1).map(String::as_str), Some("TEMP" | "TEMPORARY")),
        _ => false,
    }
}

/// Whether `sql` may leave a transaction open although it runs outside one.
fn may_open_transaction(sql: &str) -> bool {
    let word: String = sql
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(word.as_str(), "BEGIN" | "SAVEPOINT")
}

async fn run_locked(state: &mut State, backend: &Backend, op: Op) -> Result<Outcome> {
    check_open(state)?;
    let begin = state.pending_begin.take();
    if let Op::Execute(stmt) = &op {
        state.sticky |= makes_session_state(&stmt.sql);
    }
    // Close the stream in the same request when the operation cannot leave a transaction
    // open (see "Streams"). Remote only: a local session costs nothing while idle.
    let close = matches!(backend, Backend::Remote(_))
        && !state.sticky
        && match &op {
            Op::Control(_) => true,
            Op::Execute(stmt) => {
                begin.is_none() && state.autocommit && !may_open_transaction(&stmt.sql)
            }
            Op::Batch(stmts) => {
                begin.is_none()
                    && state.autocommit
                    && !stmts.iter().any(|s| may_open_transaction(&s.sql))
            }
            Op::Sequence(_) => false,
        };
    let (mut reqs, shape) = build(begin, &op);
    if close {
        reqs.push(StreamRequest::Close);
    }
    let mut attempt = 0;
    let results = loop {
        let stream = state.stream.get_or_insert_with(|| Stream::new(backend));
        match stream.run(reqs.clone()).await {
            Ok(results) => break results,
            Err(e) if is_stream_lost(&e) => {
                state.stream = None;
                let was_in_txn = !state.autocommit;
                state.autocommit = true;
                if was_in_txn || attempt > 0 {
                    return Err(Error::TransactionLost(format!(
                        "the server lost this connection's stream and rolled back its \
                         transaction: {e}"
                    )));
                }
                attempt += 1;
            }
            Err(e) => {
                // In transit: the stream's state on the server is unknown; start over with a
                // new one (the server rolls the old one back when it expires).
                if let Some(mut s) = state.stream.take() {
                    s.close_in_background(None);
                }
                state.autocommit = true;
                return Err(e);
            }
        }
    };
    if let Some(mut s) = state.stream.take_if(|s| !s.is_usable()) {
        s.close_in_background(None);
    }
    let mut results = results.into_iter();
    if close {
        // The close's own result; the server dropped the stream.
        results.next_back().ok_or_else(missing)?;
        state.stream = None;
    }
    let autocommit_result = results.next_back().ok_or_else(missing)?;
    if let StreamResult::Ok {
        response: StreamResponse::GetAutocommit { is_autocommit },
    } = autocommit_result
    {
        state.autocommit = is_autocommit;
    }
    if close {
        // Whatever was open (a COMMIT that failed) ended with the stream.
        state.autocommit = true;
    }
    let main = results.next().ok_or_else(missing)?;
    match shape {
        Shape::Execute => expect_rows(main).map(Outcome::Rows),
        Shape::BeginExecute => {
            let mut rows = batch_rows(expect_batch(main)?, 1..2)?;
            rows.pop().map(Outcome::Rows).ok_or_else(missing)
        }
        Shape::Batch { first, n } => {
            batch_rows(expect_batch(main)?, first..first + n).map(Outcome::Many)
        }
        Shape::Sequence { begin } => {
            if begin {
                expect_rows(main)?;
                expect_sequence(results.next().ok_or_else(missing)?)?;
            } else {
                expect_sequence(main)?;
            }
            Ok(Outcome::Done)
        }
        Shape::Control => expect_rows(main).map(|_| Outcome::Done),
    }
}

/// How to read the results of what [`build`] made.
enum Shape {
    Execute,
    BeginExecute,
    Batch { first: usize, n: usize },
    Sequence { begin: bool },
    Control,
}

fn begin_step(behavior: TransactionBehavior) -> BatchStep {
    BatchStep {
        condition: None,
        stmt: Stmt {
            want_rows: Some(false),
            ..Stmt::new(behavior.begin_sql())
        },
    }
}

fn build(begin: Option<TransactionBehavior>, op: &Op) -> (Vec<StreamRequest>, Shape) {
    let (mut reqs, shape) = match (begin, op) {
        (None, Op::Execute(stmt)) => (vec![execute_req(stmt.clone())], Shape::Execute),
        (Some(b), Op::Execute(stmt)) => {
            let batch = Batch {
                steps: vec![
                    begin_step(b),
                    BatchStep {
                        condition: Some(skylite_proto::BatchCond::Ok { step: 0 }),
                        stmt: stmt.clone().into_stmt(),
                    },
                ],
            };
            (vec![StreamRequest::Batch { batch }], Shape::BeginExecute)
        }
        (begin, Op::Batch(stmts)) => {
            let mut all = Vec::with_capacity(stmts.len() + 1);
            let first = usize::from(begin.is_some());
            let mut batch = chained_batch(stmts.clone());
            if let Some(b) = begin {
                // Shift every condition by one: step i now depends on step i (was i - 1).
                for (i, step) in batch.steps.iter_mut().enumerate() {
                    step.condition = Some(skylite_proto::BatchCond::Ok { step: i as u32 });
                }
                all.push(begin_step(b));
            }
            all.append(&mut batch.steps);
            (
                vec![StreamRequest::Batch {
                    batch: Batch { steps: all },
                }],
                Shape::Batch {
                    first,
                    n: stmts.len(),
                },
            )
        }
        (begin, Op::Sequence(sql)) => {
            let mut reqs = Vec::new();
            if let Some(b) = begin {
                reqs.push(control_req(b.begin_sql()));
            }
            reqs.push(sequence_req(sql));
            (
                reqs,
                Shape::Sequence {
                    begin: begin.is_some(),
                },
            )
        }
        (_, Op::Control(sql)) => (vec![control_req(sql)], Shape::Control),
    };
    reqs.push(StreamRequest::GetAutocommit);
    (reqs, shape)
}
