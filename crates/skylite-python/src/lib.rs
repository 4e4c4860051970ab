//! `skylite._skylite`: the Rust core of the Python driver. One connection type ([`Conn`]) over
//! [`skylite_client::Connection`] and one result type ([`ResultSet`]); the Python package on
//! top (`skylite` for PEP 249, `skylite.aio` for asyncio) adds the DB-API surface.
//!
//! Every request runs on one tokio runtime owned by this module. The blocking methods release
//! the GIL while they wait (network and decoding happen without it); the `*_async` methods
//! return at once and complete an asyncio future through `loop.call_soon_threadsafe` when the
//! request is done. A cancelled Python await never cancels the Rust request: it completes in the
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

/// Set by the package's `atexit` hook: from then on no I/O thread attaches to the interpreter
/// (a thread attaching while Python finalizes aborts the process).
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// I/O threads inside the interpreter right now (completing an asyncio future).
static IN_PYTHON: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The `atexit` hook: no I/O thread enters the interpreter from now on, and those inside are
/// waited for (at most 2 s, without the GIL), because a thread still inside once Python
/// finalizes (its `call_soon_threadsafe` releases the GIL while it writes to the loop's pipe)
/// aborts the process.
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    use std::sync::atomic::Ordering;
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while IN_PYTHON.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Runs `f` attached to the interpreter unless it is shutting down (then `None`).
fn attach_unless_exiting<T>(f: impl for<'py> FnOnce(Python<'py>) -> T) -> Option<T> {
    use std::sync::atomic::Ordering;
    IN_PYTHON.fetch_add(1, Ordering::SeqCst);
    let out = if SHUTTING_DOWN.load(Ordering::SeqCst) {
        None
    } else {
        Some(Python::attach(f))
    };
    IN_PYTHON.fetch_sub(1, Ordering::SeqCst);
    out
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
    /// Rows already turned into tuples (asyncio: off the event loop, see
    /// [`ResultSet::convert_in_chunks`]); handed out before `rows`.
    converted: std::collections::VecDeque<Py<PyTuple>>,
    rows: std::vec::IntoIter<Vec<Value>>,
    rows_affected: u64,
    last_insert_rowid: Option<i64>,
}

/// Rows converted per attach by [`ResultSet::convert_in_chunks`].
const CONVERT_CHUNK: usize = 512;

impl ResultSet {
    /// Turns the rows into tuples on this (I/O) thread, a chunk per attach, so the event loop
    /// can run between chunks instead of converting a large result in one go. Returns false if
    /// the interpreter is exiting.
    fn convert_in_chunks(&mut self) -> bool {
        while self.rows.len() > 0 {
            let converted = attach_unless_exiting(|py| -> PyResult<()> {
                for r in self.rows.by_ref().take(CONVERT_CHUNK) {
                    self.converted.push_back(row_to_py(py, r)?.unbind());
                }
                Ok(())
            });
            match converted {
                None => return false,
                // A conversion error surfaces again (and is raised) at fetch time.
                Some(Err(_)) => return true,
                Some(Ok(())) => {}
            }
        }
        true
    }

    fn from_rows(rows: Rows) -> ResultSet {
        let columns = rows.columns().to_vec();
        let decltypes = rows.column_types().to_vec();
        let rows_affected = rows.rows_affected();
        let last_insert_rowid = rows.last_insert_rowid();
        let values: Vec<Vec<Value>> = rows.into_iter().map(|r| r.into_values()).collect();
        ResultSet {
            columns,
            decltypes,
            converted: Default::default(),
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
            converted: Default::default(),
            rows: Vec::new().into_iter(),
            rows_affected,
            last_insert_rowid,
        }
    }
}

fn value_to_py<'py>(py: Python<'py>, v: Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, f).into_any(),
        Value::Text(s) => PyString::new(py, &s).into_any(),
        Value::Blob(b) => PyBytes::new(py, &b).into_any(),
    })
}

fn row_to_py<'py>(py: Python<'py>, row: Vec<Value>) -> PyResult<Bound<'py, PyTuple>> {
    let items = row
        .into_iter()
        .map(|v| value_to_py(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, items)
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
        self.converted.len() + self.rows.len()
    }

    /// The next row as a tuple, or `None`.
    fn fetchone<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        if let Some(t) = self.converted.pop_front() {
            return Ok(Some(t.into_bound(py)));
        }
        self.rows.next().map(|r| row_to_py(py, r)).transpose()
    }

    /// Up to `n` rows as a list of tuples.
    fn fetchmany<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        let ready = n.min(self.converted.len());
        let mut rows: Vec<Bound<'py, PyTuple>> = self
            .converted
            .drain(..ready)
            .map(|t| t.into_bound(py))
            .collect();
        for r in self.rows.by_ref().take(n - ready) {
            rows.push(row_to_py(py, r)?);
        }
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
    fn fetchmany_async(&self, loop_: Py<PyAny>, future: Py<PyAny>, n: usize) -> PyResult<()> {
        let rows = self.rows.clone();
        submit_on(&self.rt, loop_, future, async move {
            take_rows(rows, n).await.map(Done::Rows)
        })
    }
}

/// Spawns `work` on `rt`; when it is done, `complete(future, result, error)` runs on `loop_`.
fn submit_on<F>(
    rt: &tokio::runtime::Runtime,
    loop_: Py<PyAny>,
    future: Py<PyAny>,
    work: F,
) -> PyResult<()>
where
    F: std::future::Future<Output = Result<Done, Error>> + Send + 'static,
{
    let complete = hooks()?;
    rt.spawn(async move {
        let outcome = work.await;
        complete_on_loop(complete, loop_, future, outcome);
    });
    Ok(())
}

/// Hands `outcome` to the event loop: `complete(future, result, error)` via
/// `loop.call_soon_threadsafe`.
fn complete_on_loop(
    complete: &'static Hooks,
    loop_: Py<PyAny>,
    future: Py<PyAny>,
    outcome: Result<Done, Error>,
) {
    let mut outcome = outcome;
    if let Ok(Done::Result(rs)) = &mut outcome {
        if rs.rows.len() > CONVERT_CHUNK && !rs.convert_in_chunks() {
            std::mem::forget((loop_, future, outcome));
            return;
        }
    }
    let mut pending = Some((loop_, future, outcome));
    let done = attach_unless_exiting(|py| {
        let Some((loop_, future, outcome)) = pending.take() else {
            return;
        };
        let (result, error): (Py<PyAny>, Py<PyAny>) = match outcome {
            Ok(done) => match done.into_py(py) {
                Ok(o) => (o, py.None()),
                Err(e) => (py.None(), e.into_value(py).into_any()),
            },
            Err(e) => (py.None(), to_pyerr(py, e).into_value(py).into_any()),
        };
        let args = (complete.complete.clone_ref(py), future, result, error);
        if let Err(e) = loop_.call_method1(py, "call_soon_threadsafe", args) {
            // The loop is closed: nobody waits any more.
            e.write_unraisable(py, None);
        }
    });
    if done.is_none() {
        // The interpreter is exiting: nobody waits, and Python objects must not be touched.
        std::mem::forget(pending);
    }
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

    /// Spawns `work`; when it is done, `complete(future, result, error)` runs on `loop_`.
    fn submit<F>(&self, loop_: Py<PyAny>, future: Py<PyAny>, work: F) -> PyResult<()>
    where
        F: std::future::Future<Output = Result<Done, Error>> + Send + 'static,
    {
        self.check_pid()?;
        let complete = hooks()?;
        let handle = self.rt.handle().clone();
        self.enqueue(async move {
            let outcome = work.await;
            // Completing needs the GIL: not on the queue's time.
            handle.spawn(async move { complete_on_loop(complete, loop_, future, outcome) });
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

    /// Executes one statement; completes `future` on `loop_`.
    #[pyo3(signature = (loop_, future, sql, params=None, begin=None))]
    fn execute_async(
        &self,
        loop_: Py<PyAny>,
        future: Py<PyAny>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        begin: Option<&str>,
    ) -> PyResult<()> {
        let (stmt, begin) = statement(sql, params, begin)?;
        let conn = self.inner.clone();
        self.submit(loop_, future, async move {
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
    #[pyo3(signature = (loop_, future, sql, params=None, begin=None))]
    fn query_stream_async(
        &self,
        loop_: Py<PyAny>,
        future: Py<PyAny>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        begin: Option<&str>,
    ) -> PyResult<()> {
        let (stmt, begin) = statement(sql, params, begin)?;
        let conn = self.inner.clone();
        let rt = self.rt.clone();
        self.submit(loop_, future, async move {
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
    #[pyo3(signature = (loop_, future, sql, seq, begin=None))]
    fn execute_many_async(
        &self,
        loop_: Py<PyAny>,
        future: Py<PyAny>,
        sql: String,
        seq: &Bound<'_, PyAny>,
        begin: Option<&str>,
    ) -> PyResult<()> {
        let stmts = many(&sql, seq)?;
        let begin = begin.map(behavior).transpose()?;
        let conn = self.inner.clone();
        self.submit(loop_, future, async move {
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
        loop_: Py<PyAny>,
        future: Py<PyAny>,
        sql: String,
    ) -> PyResult<()> {
        let conn = self.inner.clone();
        self.submit(loop_, future, async move {
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
    fn end_async(&self, loop_: Py<PyAny>, future: Py<PyAny>, how: &str) -> PyResult<()> {
        let conn = self.inner.clone();
        let how = how.to_owned();
        self.submit(loop_, future, async move {
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
    fn close_async(&self, loop_: Py<PyAny>, future: Py<PyAny>) -> PyResult<()> {
        let conn = self.inner.clone();
        self.submit(loop_, future, async move {
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
#[pyo3(signature = (loop_, future, url=None, auth_token=None, timeout=None, protobuf=true))]
fn connect_async(
    loop_: Py<PyAny>,
    future: Py<PyAny>,
    url: Option<String>,
    auth_token: Option<String>,
    timeout: Option<f64>,
    protobuf: bool,
) -> PyResult<()> {
    let rt = runtime()?;
    let complete = hooks()?;
    let rt2 = rt.clone();
    rt.spawn(async move {
        let opened = match config(url, auth_token, timeout, protobuf) {
            Ok(c) => Connection::open(c).await,
            Err(e) => Err(e),
        };
        let mut pending = Some((loop_, future, opened));
        let done = attach_unless_exiting(|py| {
            let Some((loop_, future, opened)) = pending.take() else {
                return;
            };
            let (result, error): (Py<PyAny>, Py<PyAny>) = match opened {
                Ok(inner) => match Py::new(
                    py,
                    Conn {
                        inner,
                        queue: start_queue(&rt2),
                        rt: rt2,
                        pid: std::process::id(),
                    },
                ) {
                    Ok(c) => (c.into_any(), py.None()),
                    Err(e) => (py.None(), e.into_value(py).into_any()),
                },
                Err(e) => (py.None(), to_pyerr(py, e).into_value(py).into_any()),
            };
            let args = (complete.complete.clone_ref(py), future, result, error);
            if let Err(e) = loop_.call_method1(py, "call_soon_threadsafe", args) {
                e.write_unraisable(py, None);
            }
        });
        if done.is_none() {
            std::mem::forget(pending);
        }
    });
    Ok(())
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
    Ok(())
}
