//! `skylite._skylite`: the Rust core of the Python driver. One connection type ([`Conn`]) over
//! [`skylite_client::Connection`] and one result type ([`ResultSet`]); the Python package on
//! top (`skylite` for PEP 249, `skylite.aio` for asyncio) adds the DB-API surface.
//!
//! Every request runs on one tokio runtime owned by this module. The blocking methods release
//! the GIL while they wait (network and decoding happen without it); the `*_async` methods
//! return at once, and when the request is done its outcome goes, without the GIL, into the
//! event loop's [`LoopWaker`] queue, whose socket wakes the loop; the loop turns outcomes into
//! Python objects and completes the futures on its own thread (an I/O thread never waits for
//! the GIL, which a busy event loop would hold for up to the interpreter's switch interval). A cancelled Python await never cancels the Rust request: it completes in the
//! background, so the stream stays consistent (skylite_client's cancellation rule).
//!
//! Errors are built by a Python factory registered at import (`_set_error_factory`), so they
//! arrive as the DB-API exception classes with SQLite's code attached.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use skylite_client::{
    Config, Connection, Error, Params, Rows, Statement, TransactionBehavior, Value,
};

/// The runtime of this process, recreated in a child after `fork` (its threads do not survive
/// a fork; the parent's runtime is leaked there, never dropped, since dropping would try to
/// join threads that do not exist).
fn runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
    static RT: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(rt.clone());
        }
    }
    if let Some(old) = slot.take() {
        std::mem::forget(old);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("skylite-io")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))?;
    let rt = Arc::new(rt);
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}

/// The Python callables registered by the package.
struct Hooks {
    /// `make_error(kind, code, message, http_status) -> Exception`.
    error_factory: Py<PyAny>,
    /// `adapt(value) -> int | float | str | bytes | None`, for other parameter types.
    adapter: Py<PyAny>,
    /// `complete(future, result, error)`, run on the event loop.
    complete: Py<PyAny>,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Set by the package's `atexit` hook: from then on outcomes that no event loop will drain are
/// leaked rather than dropped (dropping a Python object needs a live interpreter).
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The `atexit` hook (see [`SHUTTING_DOWN`]).
#[pyfunction]
fn _shutdown() {
    SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// One asyncio request's future and its outcome, waiting for the loop to take it.
type Completion = (Py<PyAny>, Result<Done, Error>);

/// The completion queue of one event loop: I/O threads push outcomes without the GIL and wake
/// the loop through a socket pair; the loop watches the read end (`loop.add_reader(fileno(),
/// drain)`) and completes the futures on its own thread. One per event loop (the package keeps
/// them in `_common.waker`).
#[pyclass(module = "skylite._skylite")]
struct LoopWaker {
    inner: Arc<Completions>,
}

struct Completions {
    queue: Mutex<Vec<Completion>>,
    reader: std::os::unix::net::UnixStream,
    writer: std::os::unix::net::UnixStream,
}

impl Completions {
    /// Queues an outcome (any thread, no GIL). Only the push that finds the queue empty writes
    /// a byte: the loop drains everything queued when it wakes, so the socket never fills.
    fn push(&self, future: Py<PyAny>, outcome: Result<Done, Error>) {
        use std::io::Write;
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let was_empty = queue.is_empty();
            queue.push((future, outcome));
            was_empty
        };
        if was_empty {
            // A full socket (WouldBlock) already holds a wake-up byte.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

impl Drop for Completions {
    fn drop(&mut self) {
        let left = std::mem::take(self.queue.get_mut().unwrap_or_else(|p| p.into_inner()));
        if SHUTTING_DOWN.load(std::sync::atomic::Ordering::SeqCst) {
            // Python objects must not be touched while the interpreter finalizes.
            std::mem::forget(left);
        }
    }
}

#[pymethods]
impl LoopWaker {
    #[new]
    fn new() -> PyResult<Self> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot create a socket pair: {e}")))?;
        for end in [&reader, &writer] {
            end.set_nonblocking(true)
                .map_err(|e| PyRuntimeError::new_err(format!("socket pair: {e}")))?;
        }
        Ok(LoopWaker {
            inner: Arc::new(Completions {
                queue: Mutex::new(Vec::new()),
                reader,
                writer,
            }),
        })
    }

    /// The descriptor the event loop watches.
    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.inner.reader.as_raw_fd()
    }

    /// Completes every queued future (on the event loop's thread). Rows of a buffered result
    /// stay Rust values here; they become tuples as they are fetched.
    fn drain(&self, py: Python<'_>) -> PyResult<()> {
        use std::io::Read;
        let mut buf = [0u8; 64];
        // Consume the wake-up bytes first, then take the queue: a push after the take writes
        // a new byte, so nothing is left without a wake-up.
        while matches!((&self.inner.reader).read(&mut buf), Ok(n) if n > 0) {}
        let items =
            std::mem::take(&mut *self.inner.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let complete = hooks()?;
        for (future, outcome) in items {
            let (result, error): (Py<PyAny>, Py<PyAny>) = match outcome {
                Ok(done) => match done.into_py(py) {
                    Ok(o) => (o, py.None()),
                    Err(e) => (py.None(), e.into_value(py).into_any()),
                },
                Err(e) => (py.None(), to_pyerr(py, e).into_value(py).into_any()),
            };
            if let Err(e) = complete.complete.call1(py, (future, result, error)) {
                e.write_unraisable(py, None);
            }
        }
        Ok(())
    }
}

#[pyfunction]
fn _set_hooks(error_factory: Py<PyAny>, adapter: Py<PyAny>, complete: Py<PyAny>) {
    let _ = HOOKS.set(Hooks {
        error_factory,
        adapter,
        complete,
    });
}

fn hooks() -> PyResult<&'static Hooks> {
    HOOKS.get().ok_or_else(|| {
        PyRuntimeError::new_err("skylite._skylite used before the package set it up")
    })
}

/// The kind of a client error, as the Python factory understands it.
fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Sqlite { .. } => "sqlite",
        Error::Server { .. } => "server",
        Error::Auth { .. } => "auth",
        Error::Http { .. } => "http",
        Error::Timeout { .. } => "timeout",
        Error::Connect(_) => "connect",
        Error::Protocol(_) => "protocol",
        Error::Open(_) => "open",
        Error::Config(_) => "config",
        Error::Decode(_) | Error::NoSuchColumn(_) => "decode",
        Error::TransactionLost(_) => "lost",
        _ => "other",
    }
}

fn message_of(e: &Error) -> String {
    match e {
        Error::Sqlite { message, .. } => message.clone(),
        Error::Server { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Turns a client error into the package's exception.
fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let made = hooks().and_then(|h| {
        h.error_factory.call1(
            py,
            (
                error_kind(&e),
                e.code().map(str::to_owned),
                message_of(&e),
                e.http_status(),
            ),
        )
    });
    match made {
        Ok(exc) => PyErr::from_value(exc.into_bound(py)),
        Err(err) => err,
    }
}

/// Converts one parameter. Unknown types go through the package's adapter once.
fn to_value(obj: &Bound<'_, PyAny>, adapt: bool) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Integer(i64::from(obj.is_truthy()?)));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Value::Integer).map_err(|_| {
            PyOverflowError::new_err("Python int too large to convert to SQLite INTEGER")
        });
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract::<f64>()?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Text(s.to_str()?.to_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Blob(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Blob(b.to_vec()));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        let bytes = obj.call_method0("tobytes")?;
        return to_value(&bytes, false);
    }
    if adapt {
        let adapted = hooks()?.adapter.call1(obj.py(), (obj,))?;
        return to_value(adapted.bind(obj.py()), false);
    }
    Err(PyTypeError::new_err(format!(
        "type '{}' is not supported",
        obj.get_type().name()?
    )))
}

/// Converts a parameter set: `None`, a sequence (positional) or a mapping (named).
fn to_params(params: Option<&Bound<'_, PyAny>>) -> PyResult<Params> {
    let Some(params) = params.filter(|p| !p.is_none()) else {
        return Ok(Params::None);
    };
    let named = |items: Vec<(String, Bound<'_, PyAny>)>| -> PyResult<Params> {
        let mut out = Vec::with_capacity(items.len());
        for (k, v) in items {
            let value = to_value(&v, true).map_err(|e| bind_error(&k, e))?;
            out.push((k, value));
        }
        Ok(Params::Named(out))
    };
    if let Ok(d) = params.cast::<PyDict>() {
        let items = d
            .iter()
            .map(|(k, v)| Ok((k.extract::<String>()?, v)))
            .collect::<PyResult<Vec<_>>>()?;
        return named(items);
    }
    let positional = |items: Vec<Bound<'_, PyAny>>| -> PyResult<Params> {
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            out.push(to_value(v, true).map_err(|e| bind_error(&(i + 1).to_string(), e))?);
        }
        Ok(Params::Positional(out))
    };
    if let Ok(t) = params.cast::<PyTuple>() {
        return positional(t.iter().collect());
    }
    if let Ok(l) = params.cast::<PyList>() {
        return positional(l.iter().collect());
    }
    if params.hasattr("keys")? {
        let keys = params.call_method0("keys")?;
        let mut items = Vec::new();
        for k in keys.try_iter()? {
            let k = k?;
            let v = params.get_item(&k)?;
            items.push((k.extract::<String>()?, v));
        }
        return named(items);
    }
    if params.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "parameters are of unsupported type (a str; pass a tuple or a dict)",
        ));
    }
    let items = params
        .try_iter()
        .map_err(|_| PyTypeError::new_err("parameters are of unsupported type"))?
        .collect::<PyResult<Vec<_>>>()?;
    positional(items)
}

fn bind_error(which: &str, e: PyErr) -> PyErr {
    Python::attach(|py| {
        if !e.is_instance_of::<PyTypeError>(py) {
            e
        } else {
            PyTypeError::new_err(format!("Error binding parameter {which}: {}", e.value(py)))
        }
    })
}

/// The statement a call runs and the transaction behaviour to begin (lazily) first: what every
/// `execute`/`query_stream` method, sync or async, takes from Python.
fn statement(
    sql: String,
    params: Option<&Bound<'_, PyAny>>,
    begin: Option<&str>,
) -> PyResult<(Statement, Option<TransactionBehavior>)> {
    let stmt = Statement {
        sql,
        params: to_params(params)?,
    };
    Ok((stmt, begin.map(behavior).transpose()?))
}

fn behavior(name: &str) -> PyResult<TransactionBehavior> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "" | "DEFERRED" => TransactionBehavior::Deferred,
        "IMMEDIATE" => TransactionBehavior::Immediate,
        "EXCLUSIVE" => TransactionBehavior::Exclusive,
        "READONLY" => TransactionBehavior::ReadOnly,
        other => {
            return Err(PyTypeError::new_err(format!(
                "unknown transaction behaviour {other:?}"
            )))
        }
    })
}

/// One statement's outcome: its columns, rows (kept as Rust values until fetched), the number of
/// rows it changed and the last inserted rowid.
#[pyclass(module = "skylite._skylite")]
struct ResultSet {
    columns: Vec<String>,
    decltypes: Vec<Option<String>>,
    rows: std::vec::IntoIter<Vec<Value>>,
    rows_affected: u64,
    last_insert_rowid: Option<i64>,
}

impl ResultSet {
    fn from_rows(rows: Rows) -> ResultSet {
        let columns = rows.columns().to_vec();
        let decltypes = rows.column_types().to_vec();
        let rows_affected = rows.rows_affected();
        let last_insert_rowid = rows.last_insert_rowid();
        let values: Vec<Vec<Value>> = rows.into_iter().map(|r| r.into_values()).collect();
        ResultSet {
            columns,
            decltypes,
            rows: values.into_iter(),
            rows_affected,
            last_insert_rowid,
        }
    }

    fn summary(results: Vec<Rows>) -> ResultSet {
        let rows_affected = results.iter().map(Rows::rows_affected).sum();
        let last_insert_rowid = results.iter().rev().find_map(Rows::last_insert_rowid);
        ResultSet {
            columns: Vec::new(),
            decltypes: Vec::new(),
            rows: Vec::new().into_iter(),
            rows_affected,
            last_insert_rowid,
        }
    }
}

/// A value as a Python object (cannot fail: every conversion here is infallible).
fn value_to_py<'py>(py: Python<'py>, v: Value) -> Bound<'py, PyAny> {
    match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => match i.into_pyobject(py) {
            Ok(int) => int.into_any(),
            Err(never) => match never {},
        },
        Value::Float(f) => PyFloat::new(py, f).into_any(),
        Value::Text(s) => PyString::new(py, &s).into_any(),
        Value::Blob(b) => PyBytes::new(py, &b).into_any(),
    }
}

/// A row as a tuple, built straight from the values (no intermediate vector: this runs once
/// per row of every result).
fn row_to_py<'py>(py: Python<'py>, row: Vec<Value>) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, row.into_iter().map(|v| value_to_py(py, v)))
}

#[pymethods]
impl ResultSet {
    /// Column names (empty list for a statement without columns).
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    /// Declared column types (`None` for expressions).
    #[getter]
    fn decltypes(&self) -> Vec<Option<String>> {
        self.decltypes.clone()
    }

    #[getter]
    fn rows_affected(&self) -> u64 {
        self.rows_affected
    }

    #[getter]
    fn last_insert_rowid(&self) -> Option<i64> {
        self.last_insert_rowid
    }

    /// Rows not fetched yet.
    fn remaining(&self) -> usize {
        self.rows.len()
    }

    /// The next row as a tuple, or `None`.
    fn fetchone<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.rows.next().map(|r| row_to_py(py, r)).transpose()
    }

    /// Up to `n` rows as a list of tuples.
    fn fetchmany<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        let rows = self
            .rows
            .by_ref()
            .take(n)
            .map(|r| row_to_py(py, r))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }

    /// Every remaining row.
    fn fetchall<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let n = self.remaining();
        self.fetchmany(py, n)
    }
}

/// What an operation returns before it becomes a Python object.
enum Done {
    Result(ResultSet),
    Stream(RowCursor),
    Rows(Vec<Vec<Value>>),
    Flag(bool),
    Unit,
    /// A connection opened by `connect_async`.
    Opened(Conn),
}

impl Done {
    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Done::Result(r) => Py::new(py, r)?.into_any(),
            Done::Stream(c) => Py::new(py, c)?.into_any(),
            Done::Rows(rows) => {
                let rows = rows
                    .into_iter()
                    .map(|r| row_to_py(py, r))
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, rows)?.into_any().unbind()
            }
            Done::Flag(b) => pyo3::types::PyBool::new(py, b)
                .to_owned()
                .into_any()
                .unbind(),
            Done::Unit => py.None(),
            Done::Opened(conn) => Py::new(py, conn)?.into_any(),
        })
    }
}

/// The rows of a streamed query (`/v3/cursor`), pulled as they are fetched: memory stays flat
/// however large the result.
#[pyclass(module = "skylite._skylite")]
struct RowCursor {
    columns: Vec<String>,
    decltypes: Vec<Option<String>>,
    rows: Arc<tokio::sync::Mutex<skylite_client::RowStream>>,
    rt: Arc<tokio::runtime::Runtime>,
}

/// Up to `n` rows (fewer only at the end).
async fn take_rows(
    rows: Arc<tokio::sync::Mutex<skylite_client::RowStream>>,
    n: usize,
) -> Result<Vec<Vec<Value>>, Error> {
    let mut rows = rows.lock().await;
    let mut out = Vec::with_capacity(n.min(4096));
    while out.len() < n {
        match rows.next().await {
            Some(row) => out.push(row?),
            None => break,
        }
    }
    Ok(out)
}

#[pymethods]
impl RowCursor {
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    #[getter]
    fn decltypes(&self) -> Vec<Option<String>> {
        self.decltypes.clone()
    }

    /// Up to `n` rows as tuples (blocking, without the GIL while waiting).
    fn fetchmany(&self, py: Python<'_>, n: usize) -> PyResult<Py<PyAny>> {
        let rows = self.rows.clone();
        let rt = self.rt.clone();
        let got = py.detach(move || rt.block_on(take_rows(rows, n)));
        match got {
            Ok(rows) => Done::Rows(rows).into_py(py),
            Err(e) => Err(to_pyerr(py, e)),
        }
    }

    /// [`RowCursor::fetchmany`] for asyncio.
    fn fetchmany_async(
        &self,
        waker: PyRef<'_, LoopWaker>,
        future: Py<PyAny>,
        n: usize,
    ) -> PyResult<()> {
        let rows = self.rows.clone();
        submit_on(&self.rt, &waker, future, async move {
            take_rows(rows, n).await.map(Done::Rows)
        })
    }
}

/// Spawns `work` on `rt`; its outcome goes to `waker`'s loop, which completes `future`.
fn submit_on<F>(
    rt: &tokio::runtime::Runtime,
    waker: &LoopWaker,
    future: Py<PyAny>,
    work: F,
) -> PyResult<()>
where
    F: std::future::Future<Output = Result<Done, Error>> + Send + 'static,
{
    hooks()?;
    let completions = waker.inner.clone();
    rt.spawn(async move {
        let outcome = work.await;
        completions.push(future, outcome);
    });
    Ok(())
}

/// One queued operation of a connection.
type Job = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Starts the task that runs a connection's operations one at a time, in the order they were
/// submitted. Order matters: after a cancelled await, the rollback the package sends must run
/// after the cancelled request, and the caller's next call after both; separately spawned
/// tasks could take the connection's lock in any order.
fn start_queue(rt: &tokio::runtime::Runtime) -> tokio::sync::mpsc::UnboundedSender<Job> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
    rt.spawn(async move {
        while let Some(job) = rx.recv().await {
            job.await;
        }
    });
    tx
}

/// One connection: a persistent stream on a server, or a session on a local file.
#[pyclass(module = "skylite._skylite")]
struct Conn {
    inner: Connection,
    rt: Arc<tokio::runtime::Runtime>,
    pid: u32,
    /// Operations in submission order (see [`start_queue`]).
    queue: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl Conn {
    fn check_pid(&self) -> PyResult<()> {
        if self.pid != std::process::id() {
            return Err(Python::attach(|py| {
                to_pyerr(
                    py,
                    Error::Config(
                        "this connection was opened before fork(); open a new one in the child \
                         process"
                            .into(),
                    ),
                )
            }));
        }
        Ok(())
    }

    /// Runs `work` on the runtime, waiting without the GIL.
    fn block<F>(&self, py: Python<'_>, work: F) -> PyResult<Done>
    where
        F: std::future::Future<Output = Result<Done, Error>> + Send + 'static,
    {
        self.check_pid()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(async move {
            let _ = tx.send(work.await);
        })?;
        let rt = self.rt.clone();
        let outcome = py.detach(move || rt.block_on(rx));
        match outcome {
            Ok(result) => result.map_err(|e| to_pyerr(py, e)),
            Err(_) => Err(PyRuntimeError::new_err(
                "the connection's operation queue stopped",
            )),
        }
    }

    fn enqueue(&self, job: impl std::future::Future<Output = ()> + Send + 'static) -> PyResult<()> {
        self.queue
            .send(Box::pin(job))
            .map_err(|_| PyRuntimeError::new_err("the connection's operation queue stopped"))
    }

    /// Queues `work`; its outcome goes to `waker`'s loop, which completes `future`.
    fn submit<F>(&self, waker: &LoopWaker, future: Py<PyAny>, work: F) -> PyResult<()>
    where
        F: std::future::Future<Output = Result<Done, Error>> + Send + 'static,
    {
        self.check_pid()?;
        hooks()?;
        let completions = waker.inner.clone();
        self.enqueue(async move {
            let outcome = work.await;
            completions.push(future, outcome);
        })
    }
}

impl Drop for Conn {
    /// A connection dropped without `close()` (garbage collected) is closed in the background,
    /// so a server releases its stream (and an open transaction's write lock) at once instead
    /// of when the stream idles out. Nothing is touched in a forked child.
    fn drop(&mut self) {
        if self.pid == std::process::id() {
            let conn = self.inner.clone();
            // After whatever is still queued.
            let _ = self.queue.send(Box::pin(async move {
                let _ = conn.close().await;
            }));
        }
    }
}

fn stream_done(stream: skylite_client::RowStream, rt: Arc<tokio::runtime::Runtime>) -> Done {
    Done::Stream(RowCursor {
        columns: stream.columns().to_vec(),
        decltypes: stream.column_types().to_vec(),
        rows: Arc::new(tokio::sync::Mutex::new(stream)),
        rt,
    })
}

fn done_result(rows: Rows) -> Done {
    Done::Result(ResultSet::from_rows(rows))
}

#[pymethods]
impl Conn {
    /// Executes one statement (blocking). `begin`: a transaction behaviour to begin (lazily)
    /// first unless one is open.
    #[pyo3(signature = (sql, params=None, begin=None))]
    fn execute(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        begin: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let (stmt, begin) = statement(sql, params, begin)?;
        let conn = self.inner.clone();
        self.block(py, async move {
            begin_unless_open(&conn, begin).await?;
            conn.execute_statement(stmt).await.map(done_result)
        })?
        .into_py(py)
    }

    /// Executes one statement; completes `future` through `waker`'s loop.
    #[pyo3(signature = (waker, future, sql, params=None, begin=None))]
    fn execute_async(
        &self,
        waker: PyRef<'_, LoopWaker>,
        future: Py<PyAny>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        begin: Option<&str>,
    ) -> PyResult<()> {
        let (stmt, begin) = statement(sql, params, begin)?;
        let conn = self.inner.clone();
        self.submit(&waker, future, async move {
            begin_unless_open(&conn, begin).await?;
            conn.execute_statement(stmt).await.map(done_result)
        })
    }

    /// Executes a query and streams its rows (blocking until the columns are known).
    #[pyo3(signature = (sql, params=None, begin=None))]
    fn query_stream(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        begin: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let (stmt, begin) = statement(sql, params, begin)?;
        let conn = self.inner.clone();
        let rt = self.rt.clone();
        self.block(py, async move {
            begin_unless_open(&conn, begin).await?;
            conn.query_stream(stmt).await.map(|s| stream_done(s, rt))
        })?
        .into_py(py)
    }

    /// [`Conn::query_stream`] for asyncio.
    #[pyo3(signature = (waker, future, sql, params=None, begin=None))]
    fn query_stream_async(
        &self,
        waker: PyRef<'_, LoopWaker>,
        future: Py<PyAny>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        begin: Option<&str>,
    ) -> PyResult<()> {
        let (stmt, begin) = statement(sql, params, begin)?;
        let conn = self.inner.clone();
        let rt = self.rt.clone();
        self.submit(&waker, future, async move {
            begin_unless_open(&conn, begin).await?;
            conn.query_stream(stmt).await.map(|s| stream_done(s, rt))
        })
    }

    /// Executes `sql` once per parameter set in one request (blocking); returns a result with
    /// the total changed rows and the last rowid.
    #[pyo3(signature = (sql, seq, begin=None))]
    fn execute_many(
        &self,
        py: Python<'_>,
        sql: String,
        seq: &Bound<'_, PyAny>,
        begin: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let stmts = many(&sql, seq)?;
        let begin = begin.map(behavior).transpose()?;
        let conn = self.inner.clone();
        self.block(py, async move {
            begin_unless_open(&conn, begin).await?;
            conn.execute_batch(stmts)
                .await
                .map(|r| Done::Result(ResultSet::summary(r)))
        })?
        .into_py(py)
    }

    /// [`Conn::execute_many`] for asyncio.
    #[pyo3(signature = (waker, future, sql, seq, begin=None))]
    fn execute_many_async(
        &self,
        waker: PyRef<'_, LoopWaker>,
        future: Py<PyAny>,
        sql: String,
        seq: &Bound<'_, PyAny>,
        begin: Option<&str>,
    ) -> PyResult<()> {
        let stmts = many(&sql, seq)?;
        let begin = begin.map(behavior).transpose()?;
        let conn = self.inner.clone();
        self.submit(&waker, future, async move {
            begin_unless_open(&conn, begin).await?;
            conn.execute_batch(stmts)
                .await
                .map(|r| Done::Result(ResultSet::summary(r)))
        })
    }

    /// Runs a `;`-separated script (blocking).
    fn execute_script(&self, py: Python<'_>, sql: String) -> PyResult<()> {
        let conn = self.inner.clone();
        self.block(py, async move {
            conn.execute_multiple(&sql).await.map(|()| Done::Unit)
        })
        .map(|_| ())
    }

    /// [`Conn::execute_script`] for asyncio.
    fn execute_script_async(
        &self,
        waker: PyRef<'_, LoopWaker>,
        future: Py<PyAny>,
        sql: String,
    ) -> PyResult<()> {
        let conn = self.inner.clone();
        self.submit(&waker, future, async move {
            conn.execute_multiple(&sql).await.map(|()| Done::Unit)
        })
    }

    /// Begins a transaction lazily (no round trip).
    #[pyo3(signature = (behavior="DEFERRED"))]
    fn begin(&self, py: Python<'_>, behavior: &str) -> PyResult<()> {
        let b = self::behavior(behavior)?;
        let conn = self.inner.clone();
        self.block(py, async move { conn.begin(b).await.map(|()| Done::Unit) })
            .map(|_| ())
    }

    /// Commits (blocking; no round trip when nothing is open).
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        let conn = self.inner.clone();
        self.block(py, async move { conn.commit().await.map(|()| Done::Unit) })
            .map(|_| ())
    }

    /// Rolls back (blocking; no round trip when nothing is open).
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        let conn = self.inner.clone();
        self.block(
            py,
            async move { conn.rollback().await.map(|()| Done::Unit) },
        )
        .map(|_| ())
    }

    /// `"commit"`, `"rollback"`, or `"rollback_if_open"` (completes with whether a
    /// transaction was open and rolled back: the clean-up after a cancelled await) for asyncio.
    fn end_async(&self, waker: PyRef<'_, LoopWaker>, future: Py<PyAny>, how: &str) -> PyResult<()> {
        let conn = self.inner.clone();
        let how = how.to_owned();
        self.submit(&waker, future, async move {
            match how.as_str() {
                "commit" => conn.commit().await.map(|()| Done::Unit),
                "rollback_if_open" => {
                    if conn.in_transaction().await {
                        conn.rollback().await.map(|()| Done::Flag(true))
                    } else {
                        Ok(Done::Flag(false))
                    }
                }
                _ => conn.rollback().await.map(|()| Done::Unit),
            }
        })
    }

    /// Whether a transaction is open (or begun and pending), as of the end of the last
    /// operation (never waits).
    #[getter]
    fn in_transaction(&self) -> bool {
        self.inner.in_transaction_hint()
    }

    /// Closes the connection (rolls back an open transaction).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.pid != std::process::id() {
            // Another process's connection: nothing of it may be touched here.
            return Ok(());
        }
        let conn = self.inner.clone();
        self.block(py, async move { conn.close().await.map(|()| Done::Unit) })
            .map(|_| ())
    }

    /// `close` for asyncio.
    fn close_async(&self, waker: PyRef<'_, LoopWaker>, future: Py<PyAny>) -> PyResult<()> {
        let conn = self.inner.clone();
        self.submit(&waker, future, async move {
            conn.close().await.map(|()| Done::Unit)
        })
    }

    /// True for a server.
    #[getter]
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    /// HTTP requests sent so far (0 for local files).
    #[getter]
    fn round_trips(&self) -> u64 {
        self.inner.round_trips()
    }
}

/// Begins a transaction (lazily) unless one is open; in the request's own task, so the check
/// and the begin cannot be separated by another call.
async fn begin_unless_open(
    conn: &Connection,
    begin: Option<TransactionBehavior>,
) -> Result<(), Error> {
    if let Some(b) = begin {
        if !conn.in_transaction().await {
            conn.begin(b).await?;
        }
    }
    Ok(())
}

fn many(sql: &str, seq: &Bound<'_, PyAny>) -> PyResult<Vec<Statement>> {
    let mut stmts = Vec::new();
    for params in seq.try_iter()? {
        let params = params?;
        stmts.push(Statement {
            sql: sql.to_owned(),
            params: to_params(Some(&params))?,
        });
    }
    Ok(stmts)
}

/// Builds the configuration: an explicit URL, or the environment and `.env`.
fn config(
    url: Option<String>,
    auth_token: Option<String>,
    timeout: Option<f64>,
    protobuf: bool,
) -> Result<Config, Error> {
    let mut config = match url {
        Some(url) => Config::new(url),
        None => Config::from_env()?,
    };
    if let Some(token) = auth_token {
        config = config.auth_token(token);
    }
    if let Some(t) = timeout.filter(|t| t.is_finite() && *t > 0.0) {
        config = config.request_timeout(Duration::from_secs_f64(t));
    }
    Ok(config.protobuf(protobuf))
}

/// Opens a connection (blocking, without the GIL). `url=None` reads `SKYLITE_URL`,
/// `TURSO_DATABASE_URL`, ... from the environment and `.env`.
#[pyfunction]
#[pyo3(signature = (url=None, auth_token=None, timeout=None, protobuf=true))]
fn connect(
    py: Python<'_>,
    url: Option<String>,
    auth_token: Option<String>,
    timeout: Option<f64>,
    protobuf: bool,
) -> PyResult<Conn> {
    let rt = runtime()?;
    let rt2 = rt.clone();
    let opened = py.detach(move || {
        rt2.block_on(
            async move { Connection::open(config(url, auth_token, timeout, protobuf)?).await },
        )
    });
    let inner = opened.map_err(|e| to_pyerr(py, e))?;
    Ok(Conn {
        inner,
        queue: start_queue(&rt),
        rt,
        pid: std::process::id(),
    })
}

/// [`connect`] for asyncio: completes `future` with a `Conn`.
#[pyfunction]
#[pyo3(signature = (waker, future, url=None, auth_token=None, timeout=None, protobuf=true))]
fn connect_async(
    waker: PyRef<'_, LoopWaker>,
    future: Py<PyAny>,
    url: Option<String>,
    auth_token: Option<String>,
    timeout: Option<f64>,
    protobuf: bool,
) -> PyResult<()> {
    let rt = runtime()?;
    let rt2 = rt.clone();
    submit_on(&rt, &waker, future, async move {
        let inner = Connection::open(config(url, auth_token, timeout, protobuf)?).await?;
        Ok(Done::Opened(Conn {
            inner,
            queue: start_queue(&rt2),
            rt: rt2,
            pid: std::process::id(),
        }))
    })
}

#[pymodule]
fn _skylite(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(connect_async, m)?)?;
    m.add_function(wrap_pyfunction!(_set_hooks, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_class::<Conn>()?;
    m.add_class::<ResultSet>()?;
    m.add_class::<RowCursor>()?;
    m.add_class::<LoopWaker>()?;
    Ok(())
}
