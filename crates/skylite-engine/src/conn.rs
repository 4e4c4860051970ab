//! One SQLite connection and the execution of single statements on it: binding arguments,
//! taking the write lock for writing statements, enforcing `BEGIN ... READONLY`, streaming rows
//! into a [`RowSink`], and recording commits for group commit.
//!
//! All of this is blocking code; callers run it on blocking threads, never on async workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, StatementStatus};
use skylite_proto::{Col, DescribeCol, DescribeParam, DescribeResult, NamedArg, Value};

use crate::authorizer::{self, ConnFlags};
use crate::database::Shared;
use crate::sql_text::{self, TxnKeyword};
use crate::write_lock::Revoker;
use crate::ExecError;

/// Receives the output of a statement as it runs.
pub trait RowSink {
    /// The statement's columns, before any row.
    fn columns(&mut self, cols: Vec<Col>) -> Result<(), ExecError>;
    /// One row.
    fn row(&mut self, row: Vec<Value>) -> Result<(), ExecError>;
}

/// Everything about a finished statement except its rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StmtSummary {
    /// Rows changed by an INSERT, UPDATE or DELETE (0 for other statements).
    pub affected_row_count: u64,
    /// Rowid of the last insert on this connection, reported for writing statements.
    pub last_insert_rowid: Option<i64>,
    /// Rows read, as counted by libSQL.
    pub rows_read: u64,
    /// Rows written, as counted by libSQL.
    pub rows_written: u64,
    /// Time spent in SQLite.
    pub query_duration_ms: f64,
}

/// A statement's SQL with its arguments.
#[derive(Debug, Clone, Copy)]
pub struct StmtInput<'a> {
    /// SQL text of exactly one statement.
    pub sql: &'a str,
    /// Positional arguments.
    pub args: &'a [Value],
    /// Named arguments.
    pub named_args: &'a [NamedArg],
    /// Whether rows go to the sink (they are always stepped through).
    pub want_rows: bool,
    /// The caller may only read (a read-only token): any statement that would write is refused.
    pub read_only: bool,
}

/// One SQLite connection of a [`crate::Database`].
pub struct Conn {
    id: u64,
    sqlite: Connection,
    shared: Arc<Shared>,
    flags: Arc<ConnFlags>,
    committed: Arc<AtomicBool>,
    revoker: Arc<Revoker>,
    holds_lock: bool,
    readonly_txn: bool,
    pending_ticket: Option<u64>,
}

impl Conn {
    pub(crate) fn new(id: u64, sqlite: Connection, shared: Arc<Shared>) -> Result<Conn, ExecError> {
        sqlite.set_prepared_statement_cache_capacity(shared.config.statement_cache);
        let flags = Arc::new(ConnFlags::default());
        authorizer::install(&sqlite, flags.clone());
        let committed = Arc::new(AtomicBool::new(false));
        let hook_flag = committed.clone();
        sqlite.commit_hook(Some(move || {
            hook_flag.store(true, Ordering::Release);
            false
        }));
        let revoker = Arc::new(Revoker::new(sqlite.get_interrupt_handle()));
        Ok(Conn {
            id,
            sqlite,
            shared,
            flags,
            committed,
            revoker,
            holds_lock: false,
            readonly_txn: false,
            pending_ticket: None,
        })
    }

    /// True outside an explicit transaction.
    pub fn is_autocommit(&self) -> bool {
        self.sqlite.is_autocommit()
    }

    /// True if the connection carries state a later request may rely on (an open transaction,
    /// a pragma set by the client, a temporary table).
    pub fn has_state(&self) -> bool {
        !self.is_autocommit() || self.flags.tainted.load(Ordering::Relaxed)
    }

    pub(crate) fn is_reusable(&self) -> bool {
        !self.has_state() && !self.holds_lock && self.pending_ticket.is_none()
    }

    pub(crate) fn reset_for_pool(&mut self) {
        self.readonly_txn = false;
        self.revoker.clear();
        // Do not let the next stream see this one's last rowid.
        // SAFETY: the handle is valid for the lifetime of `self.sqlite`, and this call only
        // sets an integer on the connection.
        unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(self.sqlite.handle(), 0) };
    }

    /// The handle through which waiting writers revoke this connection's hold on the write
    /// lock (watched by code that waits on a slow client while the connection holds it).
    pub(crate) fn revoker(&self) -> Arc<Revoker> {
        self.revoker.clone()
    }

    /// If a waiting writer revoked this connection's hold on the write lock, rolls the
    /// transaction back, releases the lock and returns the `TRANSACTION_TIMEOUT` error the
    /// client should see. Otherwise returns `None`.
    pub fn enforce_revocation(&mut self) -> Option<ExecError> {
        if !self.revoker.is_revoked() {
            return None;
        }
        if !self.sqlite.is_autocommit() {
            if let Err(e) = self.sqlite.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rollback of a revoked transaction failed");
            }
        }
        self.readonly_txn = false;
        self.release_lock();
        self.revoker.clear();
        let secs = self.shared.config.txn_timeout.as_secs_f64();
        Some(ExecError::new(
            "TRANSACTION_TIMEOUT",
            format!(
                "the transaction was rolled back: it held the write lock for more than {secs} s \
                 while other writers waited"
            ),
        ))
    }

    /// Rolls back any open transaction (used when a stream expires or closes).
    pub fn rollback(&mut self) {
        if !self.sqlite.is_autocommit() {
            if let Err(e) = self.sqlite.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rollback failed");
            }
        }
        self.readonly_txn = false;
        self.release_lock();
    }

    fn release_lock(&mut self) {
        if self.holds_lock {
            self.shared.write_lock.release(self.id);
            self.holds_lock = false;
        }
    }

    /// Takes the write lock (a free function over the fields it needs, so that it can run
    /// while a prepared statement borrows the connection).
    fn take_lock(
        shared: &Shared,
        id: u64,
        revoker: &Arc<Revoker>,
        holds_lock: &mut bool,
    ) -> Result<(), ExecError> {
        if !*holds_lock {
            let cfg = &shared.config;
            let max_wait = cfg.txn_timeout + cfg.txn_timeout.max(Duration::from_secs(5));
            shared
                .write_lock
                .acquire(id, revoker, cfg.txn_timeout, max_wait)?;
            *holds_lock = true;
        }
        Ok(())
    }

    /// Waits until every commit this connection made is durable (group commit).
    pub fn make_durable(&mut self) -> Result<(), ExecError> {
        match self.pending_ticket.take() {
            Some(ticket) => self.shared.syncer.wait_durable(ticket),
            None => Ok(()),
        }
    }

    fn prepare_error(&self, err: rusqlite::Error) -> ExecError {
        let mut e = ExecError::from_sqlite(&err);
        // SQLite reports a denied action as SQLITE_AUTH, or as a plain SQLITE_ERROR for
        // functions; either way the authorizer recorded the real reason.
        if let Some((code, reason)) = self.flags.take_denial() {
            e.code = code.to_owned();
            e.message = reason;
        }
        e
    }

    /// Runs one statement, sending its columns and rows to `sink`.
    pub fn run(
        &mut self,
        input: StmtInput<'_>,
        sink: &mut dyn RowSink,
    ) -> Result<StmtSummary, ExecError> {
        if let Some(err) = self.enforce_revocation() {
            return Err(err);
        }
        let (len, more) = sql_text::first_statement(input.sql);
        if more {
            return Err(ExecError::new(
                "SQLITE_ERROR",
                "the SQL text contains more than one statement; \
                 use `sequence` (executeMultiple) or a batch",
            ));
        }
        let sql = &input.sql[..len];
        if is_blank(sql) {
            // SQLite prepares no statement at all for such text; running it would touch a null
            // statement handle.
            return Err(ExecError::new(
                "SQL_NO_STATEMENT",
                "the SQL text contains no statement",
            ));
        }
        if sql_text::is_vacuum_into(sql) {
            return Err(ExecError::new(
                "SQLITE_AUTH",
                "VACUUM INTO is not allowed: a skylite database cannot write other files",
            ));
        }
        if !input.read_only && sql_text::first_word(sql).eq_ignore_ascii_case("VACUUM") {
            // (A read-only caller gets the read-only refusal below instead.)
            // VACUUM rebuilds the file through an attached temporary database (which the
            // authorizer refuses), and libSQL's VACUUM duplicates vector-index metadata, which
            // corrupts databases that have a vector index. Freed pages are reused anyway.
            return Err(ExecError::new(
                "SQLITE_AUTH",
                "VACUUM is not available on a skylite server: freed pages are reused by later \
                 writes (and libSQL's VACUUM corrupts vector indexes)",
            ));
        }
        let keyword = sql_text::txn_keyword(sql);
        if input.read_only && keyword == TxnKeyword::BeginImmediate {
            return Err(read_only_error());
        }
        // The authorizer refuses writes while it vets a statement for a read-only caller; the
        // check after preparation below covers statements that come from the cache.
        self.flags
            .read_only
            .store(input.read_only, Ordering::Relaxed);
        let result = self.run_prepared(sql, keyword, input, sink);
        if let Err(e) = &result {
            if e.code == "SQLITE_INTERRUPT" {
                if let Some(timeout) = self.enforce_revocation() {
                    return Err(timeout);
                }
            }
        }
        self.after_statement();
        if result.is_ok() && keyword == TxnKeyword::BeginReadOnly && !self.is_autocommit() {
            self.readonly_txn = true;
        }
        result
    }

    fn after_statement(&mut self) {
        if self.sqlite.is_autocommit() {
            self.readonly_txn = false;
            self.release_lock();
        }
        if self.committed.swap(false, Ordering::AcqRel) {
            self.pending_ticket = Some(self.shared.syncer.ticket());
        }
    }

    fn run_prepared(
        &mut self,
        sql: &str,
        keyword: TxnKeyword,
        input: StmtInput<'_>,
        sink: &mut dyn RowSink,
    ) -> Result<StmtSummary, ExecError> {
        let mut stmt = match self.sqlite.prepare_cached(sql) {
            Ok(s) => s,
            Err(e) => return Err(self.prepare_error(e)),
        };
        stmt.clear_bindings();
        bind_args(&mut stmt, input.args, input.named_args)?;
        let readonly = stmt.readonly() || sql_text::is_journal_mode_query(sql);
        if input.read_only && !readonly {
            stmt.clear_bindings();
            return Err(read_only_error());
        }
        if self.readonly_txn && !readonly {
            stmt.clear_bindings();
            return Err(ExecError::new(
                "SQLITE_READONLY",
                "attempt to write in a read-only transaction (BEGIN TRANSACTION READONLY); \
                 commit or roll back first",
            ));
        }
        let needs_lock = !readonly || keyword == TxnKeyword::BeginImmediate;
        if needs_lock {
            // Waiting for the lock is blocking; the caller runs on a blocking thread.
            if let Err(e) =
                Self::take_lock(&self.shared, self.id, &self.revoker, &mut self.holds_lock)
            {
                stmt.clear_bindings();
                return Err(e);
            }
        }
        let cols: Vec<Col> = stmt
            .columns()
            .iter()
            .map(|c| Col {
                name: Some(c.name().to_owned()),
                decltype: c.decl_type().map(str::to_owned),
            })
            .collect();
        let ncols = cols.len();
        // SAFETY: the handle is valid while `self.sqlite` lives; this reads a counter.
        let total_before = unsafe { rusqlite::ffi::sqlite3_total_changes64(self.sqlite.handle()) };
        let started = Instant::now();
        stmt.reset_status(StatementStatus::RowsRead);
        stmt.reset_status(StatementStatus::RowsWritten);
        let outcome = (|| {
            sink.columns(cols)?;
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().map_err(ExecError::from)? {
                if !input.want_rows {
                    continue;
                }
                let mut values = Vec::with_capacity(ncols);
                for i in 0..ncols {
                    values.push(convert(row.get_ref(i).map_err(ExecError::from)?));
                }
                sink.row(values)?;
            }
            Ok::<(), ExecError>(())
        })();
        let elapsed = started.elapsed();
        let rows_read = stmt.reset_status(StatementStatus::RowsRead).max(0) as u64;
        let rows_written = stmt.reset_status(StatementStatus::RowsWritten).max(0) as u64;
        self.shared.count_rows(rows_read, rows_written);
        stmt.clear_bindings();
        drop(stmt);
        outcome?;
        // SAFETY: as above.
        let total_after = unsafe { rusqlite::ffi::sqlite3_total_changes64(self.sqlite.handle()) };
        let wrote = !readonly && total_after != total_before;
        Ok(StmtSummary {
            affected_row_count: if wrote { self.sqlite.changes() } else { 0 },
            last_insert_rowid: (!readonly).then(|| self.sqlite.last_insert_rowid()),
            rows_read,
            rows_written,
            query_duration_ms: elapsed.as_secs_f64() * 1000.0,
        })
    }

    /// Describes a statement without running it.
    pub fn describe(&mut self, sql: &str) -> Result<DescribeResult, ExecError> {
        if let Some(err) = self.enforce_revocation() {
            return Err(err);
        }
        let (len, _) = sql_text::first_statement(sql);
        // Describing reads nothing and writes nothing, whoever asks.
        self.flags.read_only.store(false, Ordering::Relaxed);
        let stmt = match self.sqlite.prepare_cached(&sql[..len]) {
            Ok(s) => s,
            Err(e) => return Err(self.prepare_error(e)),
        };
        let params = (1..=stmt.parameter_count())
            .map(|i| DescribeParam {
                name: stmt.parameter_name(i).map(str::to_owned),
            })
            .collect();
        let cols = stmt
            .columns()
            .iter()
            .map(|c| DescribeCol {
                name: c.name().to_owned(),
                decltype: c.decl_type().map(str::to_owned),
            })
            .collect();
        Ok(DescribeResult {
            params,
            cols,
            is_explain: sql_text::is_explain(sql),
            is_readonly: stmt.readonly(),
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Roll back before letting go of the lock, so no other writer sees a half transaction
        // holding SQLite's own lock.
        self.rollback();
        if let Some(ticket) = self.pending_ticket.take() {
            let _ = self.shared.syncer.wait_durable(ticket);
        }
        self.shared.open_conns.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The error for a write attempted with read-only access.
fn read_only_error() -> ExecError {
    ExecError::new(
        "SQLITE_READONLY",
        "attempt to write with read-only access: this token may only read this database",
    )
}

/// True if `sql` holds nothing but whitespace, comments and semicolons.
fn is_blank(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        let next = sql_text::skip_space_and_comments(rest).trim_start_matches(';');
        if next.is_empty() {
            return true;
        }
        if next.len() == rest.len() {
            return false;
        }
        rest = next;
    }
}

fn convert(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn to_sql(v: &Value) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::ToSqlOutput::Borrowed;
    match v {
        Value::Null => Borrowed(ValueRef::Null),
        Value::Integer(i) => Borrowed(ValueRef::Integer(*i)),
        Value::Float(f) => Borrowed(ValueRef::Real(*f)),
        Value::Text(s) => Borrowed(ValueRef::Text(s.as_bytes())),
        Value::Blob(b) => Borrowed(ValueRef::Blob(b)),
    }
}

/// Binds positional and named arguments, refusing unknown names and surplus arguments.
fn bind_args(
    stmt: &mut rusqlite::Statement<'_>,
    args: &[Value],
    named: &[NamedArg],
) -> Result<(), ExecError> {
    let count = stmt.parameter_count();
    if args.len() > count {
        return Err(ExecError::new(
            "ARGS_INVALID",
            format!(
                "the statement has {count} parameter(s) but {} positional argument(s) were given",
                args.len()
            ),
        ));
    }
    for (i, v) in args.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, to_sql(v))
            .map_err(ExecError::from)?;
    }
    for arg in named {
        let index = find_param(stmt, &arg.name)?.ok_or_else(|| {
            ExecError::new(
                "ARGS_INVALID",
                format!("the statement has no parameter named `{}`", arg.name),
            )
        })?;
        stmt.raw_bind_parameter(index, to_sql(&arg.value))
            .map_err(ExecError::from)?;
    }
    Ok(())
}

fn find_param(stmt: &rusqlite::Statement<'_>, name: &str) -> Result<Option<usize>, ExecError> {
    if name.starts_with([':', '@', '$', '?']) {
        return stmt.parameter_index(name).map_err(ExecError::from);
    }
    for prefix in [':', '@', '$'] {
        if let Some(i) = stmt
            .parameter_index(&format!("{prefix}{name}"))
            .map_err(ExecError::from)?
        {
            return Ok(Some(i));
        }
    }
    Ok(None)
}
