//! One SQLite connection and the execution of single statements on it: binding arguments,
//! taking the write lock for writing statements, enforcing `BEGIN ... READONLY`, streaming rows
//! into a [`RowSink`], and recording commits for group commit.
//!
//! Every statement runs under a deadline ([`StatementClock`], checked by SQLite's progress
//! handler every [`PROGRESS_OPS`] virtual-machine steps): past `statement_timeout` of time spent
//! in SQLite it stops with `STATEMENT_TIMEOUT`, and after a short while it leaves the core
//! worker pool ([`crate::workers::mark_long_running`]) so that runaway statements never occupy
//! every worker. Values are limited to `SQLITE_LIMIT_LENGTH` (tied to the response limit), so
//! `zeroblob(1e9)` fails before it allocates. A read-only caller runs on the connection with
//! `PRAGMA query_only` on, so SQLite itself refuses every write, including the ones made by
//! statements that extensions (FTS, `PRAGMA optimize`) prepare and run internally.
//!
//! All of this is blocking code; callers run it on blocking threads, never on async workers.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, StatementStatus};
use skylite_proto::{Col, DescribeCol, DescribeParam, DescribeResult, NamedArg, Value};

use crate::authorizer::{self, ConnFlags};
use crate::change_log::ChangeSink;
use crate::database::Shared;
use crate::sql_text::{self, TxnKeyword};
use crate::write_lock::Revoker;
use crate::{workers, ErrorCode, ExecError};

/// SQLite calls the progress handler every this many virtual-machine instructions: often
/// enough to stop a runaway statement within microseconds of its deadline, rarely enough that
/// reading the clock costs nothing measurable.
pub const PROGRESS_OPS: i32 = 1000;

/// The smallest `SQLITE_LIMIT_LENGTH` the engine sets, whatever the response limit (a tiny
/// response limit still gets a clear `RESPONSE_TOO_LARGE`, not `SQLITE_TOOBIG`).
const MIN_VALUE_LIMIT: usize = 1 << 20;

/// SQLite's own ceiling for `SQLITE_LIMIT_LENGTH` (its default `SQLITE_MAX_LENGTH`).
const MAX_VALUE_LIMIT: usize = 1_000_000_000;

/// The largest string or blob (and SQL text) a connection of this configuration accepts: the
/// response limit, so that no value is built that could never be sent.
pub fn value_limit(max_response_bytes: usize) -> usize {
    max_response_bytes.clamp(MIN_VALUE_LIMIT, MAX_VALUE_LIMIT)
}

/// The deadline of the statement running on one connection, read by SQLite's progress handler
/// on the thread that runs the statement.
///
/// Only time spent inside SQLite counts: time the row consumer takes (a cursor whose client
/// reads slowly, a dump written to a slow reader) is added back with [`StatementClock::pause`].
pub struct StatementClock {
    base: Instant,
    /// Nanoseconds after `base` at which the current statement started; 0 while none runs.
    started: AtomicU64,
    /// Nanoseconds after `base` past which the statement is stopped.
    deadline: AtomicU64,
    /// Nanoseconds of the current statement spent waiting for its consumer.
    paused: AtomicU64,
    /// The progress handler stopped the statement because of the deadline.
    timed_out: AtomicBool,
    /// The statement has been handed out of the core workers (see `workers`).
    long_running: AtomicBool,
    /// The limit per statement in nanoseconds (0: none); a database's limit may change while
    /// its connections live (the admin API), so it is read at each start.
    timeout_ns: AtomicU64,
}

impl StatementClock {
    /// A clock for statements limited to `timeout` each (zero: no limit).
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(StatementClock {
            base: Instant::now(),
            started: AtomicU64::new(0),
            deadline: AtomicU64::new(u64::MAX),
            paused: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
            long_running: AtomicBool::new(false),
            timeout_ns: AtomicU64::new(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX)),
        })
    }

    /// Installs the progress handler that enforces this clock on `conn`.
    pub fn install(self: &Arc<Self>, conn: &Connection) {
        let clock = self.clone();
        conn.progress_handler(PROGRESS_OPS, Some(move || clock.should_stop()));
    }

    /// The limit per statement.
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_ns.load(Ordering::Relaxed))
    }

    /// Changes the limit for the statements that start from now on (zero: no limit).
    pub fn set_timeout(&self, timeout: Duration) {
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.timeout_ns.store(ns, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        // +1: zero means "no statement running".
        u64::try_from(self.base.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Starts the clock for one statement.
    pub fn start(&self) {
        let now = self.now();
        let limit = self.timeout_ns.load(Ordering::Relaxed);
        let deadline = if limit == 0 {
            u64::MAX
        } else {
            now.saturating_add(limit)
        };
        self.timed_out.store(false, Ordering::Relaxed);
        self.long_running.store(false, Ordering::Relaxed);
        self.deadline.store(deadline, Ordering::Relaxed);
        self.paused.store(0, Ordering::Relaxed);
        self.started.store(now, Ordering::Relaxed);
    }

    /// Stops the clock (the statement is done) and gives the worker back to the core if the
    /// statement had left it.
    pub fn stop(&self) {
        self.started.store(0, Ordering::Relaxed);
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        if self.long_running.swap(false, Ordering::Relaxed) {
            workers::end_long_running();
        }
    }

    /// Moves the deadline by `waited`: time spent outside SQLite, waiting for the consumer.
    pub fn pause(&self, waited: Duration) {
        let add = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.paused.fetch_add(add, Ordering::Relaxed);
        let _ = self
            .deadline
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_add(add))
            });
    }

    /// Whether the last statement was stopped by its deadline.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// The progress handler: true stops the statement (`SQLITE_INTERRUPT`).
    fn should_stop(&self) -> bool {
        let started = self.started.load(Ordering::Relaxed);
        if started == 0 {
            return false;
        }
        let now = self.now();
        if now >= self.deadline.load(Ordering::Relaxed) {
            self.timed_out.store(true, Ordering::Relaxed);
            return true;
        }
        // Time in SQLite only: a cursor waiting for its reader is already out of the core (in a
        // blocking section) while it waits.
        let in_sqlite = now
            .saturating_sub(started)
            .saturating_sub(self.paused.load(Ordering::Relaxed));
        let long_after = u64::try_from(workers::LONG_RUNNING_AFTER.as_nanos()).unwrap_or(0);
        if in_sqlite >= long_after && !self.long_running.swap(true, Ordering::Relaxed) {
            workers::mark_long_running();
        }
        false
    }

    /// The error a client sees for a statement stopped by the deadline.
    pub fn timeout_error(&self, rolled_back: bool) -> ExecError {
        let secs = self.timeout().as_secs_f64();
        let mut message = format!(
            "the statement ran for more than {secs} s and was stopped \
             (the database's statement timeout: its statement_timeout_ms limit, or the \
             server's --statement-timeout)"
        );
        if rolled_back {
            message.push_str("; the open transaction was rolled back");
        }
        ExecError::new(ErrorCode::StatementTimeout, message)
    }
}

/// SQLite's largest `max_page_count` (3.45's `SQLITE_MAX_PAGE_COUNT`): no size limit.
const MAX_PAGE_COUNT: u64 = 4_294_967_294;

/// The error a client sees when a write would grow a database past its size limit.
fn size_limit_error(max_size_bytes: u64, rolled_back: bool) -> ExecError {
    let mut message = format!(
        "database or disk is full: this database is limited to {max_size_bytes} bytes \
         (its max_size_bytes limit); reads go on, and deleting rows frees pages for new writes"
    );
    if rolled_back {
        message.push_str("; the open transaction was rolled back");
    }
    ExecError::new(ErrorCode::DatabaseFull, message)
}

/// Receives the output of a statement as it runs.
pub trait RowSink {
    /// The statement's columns, before any row.
    fn columns(&mut self, cols: Vec<Col>) -> Result<(), ExecError>;
    /// One row.
    fn row(&mut self, row: Vec<Value>) -> Result<(), ExecError>;
    /// True if taking a row may wait for someone else (a cursor's reader): that time is then
    /// measured and not counted against the statement timeout. Sinks that only collect rows
    /// keep the default, and the engine reads no clock per row for them.
    fn may_wait(&self) -> bool {
        false
    }
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
    clock: Arc<StatementClock>,
    holds_lock: bool,
    readonly_txn: bool,
    /// `PRAGMA query_only` is on because the engine switched it on for a read-only caller.
    query_only: bool,
    pending_ticket: Option<u64>,
    /// The generation of the database's limits this connection has applied (`None`: none yet).
    applied_limits: Option<u64>,
    /// The change sink's durability token of this connection's last commit (continuous
    /// backup), waited on with the fsync before the write is acknowledged.
    pending_backup: Option<(Arc<dyn ChangeSink>, u64)>,
    /// Test hook: the next commit is revoked just after the commit hook let it through (the
    /// race a test cannot time from outside).
    #[cfg(test)]
    revoke_after_commit_hook: Arc<AtomicBool>,
}

impl Conn {
    pub(crate) fn new(id: u64, sqlite: Connection, shared: Arc<Shared>) -> Result<Conn, ExecError> {
        sqlite.set_prepared_statement_cache_capacity(shared.config.statement_cache);
        // No string or blob (zeroblob(1e9), randomblob, printf('%.*c'), replace()) is built
        // larger than a response could carry: SQLite fails with SQLITE_TOOBIG before it
        // allocates. SQL texts get the same bound.
        let limit =
            i32::try_from(value_limit(shared.config.max_response_bytes)).unwrap_or(i32::MAX);
        sqlite.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, limit);
        sqlite.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_SQL_LENGTH, limit);
        let flags = Arc::new(ConnFlags::default());
        authorizer::install(&sqlite, flags.clone());
        let committed = Arc::new(AtomicBool::new(false));
        let revoker = Arc::new(Revoker::new(sqlite.get_interrupt_handle()));
        // SAFETY: the hook's argument points into `shared`, which this `Conn` keeps alive
        // (`shared` is declared after `sqlite`, so the connection closes first); the hook
        // only stores an integer.
        unsafe {
            rusqlite::ffi::sqlite3_wal_hook(
                sqlite.handle(),
                Some(record_wal_pages),
                &shared.wal_pages as *const AtomicU32 as *mut std::ffi::c_void,
            );
        }
        let hook_flag = committed.clone();
        let hook_revoker = revoker.clone();
        let poisoned = shared.syncer.poisoned_flag();
        #[cfg(test)]
        let revoke_after_commit_hook = Arc::new(AtomicBool::new(false));
        #[cfg(test)]
        let race = revoke_after_commit_hook.clone();
        sqlite.commit_hook(Some(move || {
            // The last word on a commit, decided at the moment SQLite commits: a transaction
            // whose lock was revoked, or a write to a poisoned database, rolls back instead
            // (returning true turns the COMMIT into a ROLLBACK). A revocation that lands after
            // this point loses the race: the commit stands and the flag is cleared once the
            // lock is released (`after_statement`).
            if hook_revoker.is_revoked() || poisoned.load(Ordering::Acquire) {
                return true;
            }
            hook_flag.store(true, Ordering::Release);
            #[cfg(test)]
            if race.swap(false, Ordering::AcqRel) {
                hook_revoker.revoke_flag_only();
            }
            false
        }));
        let clock = StatementClock::new(shared.config.statement_timeout);
        clock.install(&sqlite);
        Ok(Conn {
            id,
            sqlite,
            shared,
            flags,
            committed,
            revoker,
            clock,
            holds_lock: false,
            readonly_txn: false,
            query_only: false,
            pending_ticket: None,
            applied_limits: None,
            pending_backup: None,
            #[cfg(test)]
            revoke_after_commit_hook,
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
        !self.has_state()
            && !self.holds_lock
            && self.pending_ticket.is_none()
            && self.pending_backup.is_none()
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
        let secs = self.shared.limits.txn_timeout().as_secs_f64();
        Some(ExecError::new(
            ErrorCode::TransactionTimeout,
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
            if let Some(sink) = shared.change_log.sink() {
                // The backup may refuse new writes (its spool is full, or sync mode cannot
                // reach the store).
                sink.admit_write()?;
            }
            let txn_timeout = shared.limits.txn_timeout();
            let max_wait = txn_timeout + txn_timeout.max(Duration::from_secs(5));
            shared
                .write_lock
                .acquire(id, revoker, txn_timeout, max_wait)?;
            *holds_lock = true;
        }
        Ok(())
    }

    /// Applies the database's limits if they changed since this connection last did: the
    /// statement timeout, and the size limit as SQLite's `max_page_count` (set by the server
    /// only: the authorizer refuses the pragma to clients, so it cannot be raised).
    fn apply_limits(&mut self) -> Result<(), ExecError> {
        let generation = self.shared.limits.generation.load(Ordering::Acquire);
        if self.applied_limits == Some(generation) {
            return Ok(());
        }
        let limits = self.shared.limits.get();
        self.clock
            .set_timeout(self.shared.limits.statement_timeout());
        self.flags.internal.store(true, Ordering::Relaxed);
        let result = (|| {
            let page_size: i64 = self
                .sqlite
                .query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let page_size = u64::try_from(page_size).unwrap_or(4096).max(512);
            let pages = limits
                .max_size_bytes
                .map_or(MAX_PAGE_COUNT, |b| (b / page_size).clamp(1, MAX_PAGE_COUNT));
            self.sqlite
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        })();
        self.flags.internal.store(false, Ordering::Relaxed);
        result.map_err(|e| ExecError::from_sqlite(&e))?;
        self.applied_limits = Some(generation);
        Ok(())
    }

    /// Waits until every commit this connection made is durable (group commit), and, with a
    /// change sink attached, as durable as the sink promises (sync backup).
    pub fn make_durable(&mut self) -> Result<(), ExecError> {
        let local = match self.pending_ticket.take() {
            Some(ticket) => self.shared.syncer.wait_durable(ticket),
            None => Ok(()),
        };
        let backup = match self.pending_backup.take() {
            // A sink that waits (sync backup) marks its own blocking section.
            Some((sink, token)) => sink.wait_durable(token),
            None => Ok(()),
        };
        local.and(backup)
    }

    fn prepare_error(&self, err: rusqlite::Error) -> ExecError {
        self.explain_error(ExecError::from_sqlite(&err))
    }

    /// Replaces SQLite's bare message where the engine knows better: the reason the authorizer
    /// recorded for a denial (SQLite reports it as SQLITE_AUTH, or as a plain SQLITE_ERROR for
    /// functions; also at run time, for pragma functions such as `pragma_table_info`), and the
    /// value limit behind SQLITE_TOOBIG.
    fn explain_error(&self, mut e: ExecError) -> ExecError {
        if let Some((code, reason)) = self.flags.take_denial() {
            e.code = code;
            e.message = reason;
        } else if e.code == ErrorCode::SQLITE_TOOBIG {
            e.message = format!(
                "{}: strings, blobs and SQL texts are limited to {} bytes on this server \
                 (the response limit, --max-response-size)",
                e.message,
                value_limit(self.shared.config.max_response_bytes)
            );
        }
        e
    }

    /// Switches `PRAGMA query_only` to match the caller, so that SQLite itself refuses every
    /// write of a read-only caller. Only switched when it changes (a pooled connection serves
    /// both kinds of caller); a writer's own `query_only` setting is left alone.
    fn set_query_only(&mut self, on: bool) -> Result<(), ExecError> {
        if self.query_only == on {
            return Ok(());
        }
        self.flags.internal.store(true, Ordering::Relaxed);
        // SQLite applies a flag pragma while it *prepares* it; running it would also expire
        // every cached statement of the connection (its program ends in OP_Expire), which
        // query_only does not need (it is checked when a statement starts to write). So the
        // statement is prepared and dropped, never stepped. `read_only.rs` checks that the flag
        // is really on for a read-only caller, in case a later SQLite changes this.
        let result = self
            .sqlite
            .prepare(if on {
                "PRAGMA query_only = 1"
            } else {
                "PRAGMA query_only = 0"
            })
            .map(drop);
        self.flags.internal.store(false, Ordering::Relaxed);
        result.map_err(ExecError::from)?;
        self.query_only = on;
        Ok(())
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
        self.apply_limits()?;
        let started = Instant::now();
        let result = self.run_checked(input, sink);
        let threshold = self.shared.config.slow_statement_threshold;
        let took = started.elapsed();
        if !threshold.is_zero() && took >= threshold {
            // The SQL text only: argument values may be private, and they are not logged.
            let (len, _) = sql_text::first_statement(input.sql);
            let sql: String = input
                .sql
                .get(..len)
                .unwrap_or(input.sql)
                .trim()
                .chars()
                .take(200)
                .collect();
            let path = &self.shared.path;
            let database = path
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            tracing::warn!(
                %database,
                duration_ms = took.as_secs_f64() * 1000.0,
                ok = result.is_ok(),
                sql = %sql,
                "slow statement"
            );
        }
        result
    }

    fn run_checked(
        &mut self,
        input: StmtInput<'_>,
        sink: &mut dyn RowSink,
    ) -> Result<StmtSummary, ExecError> {
        // A stale reason must not explain this statement's error.
        self.flags.take_denial();
        let (len, more) = sql_text::first_statement(input.sql);
        if more {
            return Err(ExecError::new(
                ErrorCode::SQLITE_ERROR,
                "the SQL text contains more than one statement; \
                 use `sequence` (executeMultiple) or a batch",
            ));
        }
        let sql = input.sql.get(..len).unwrap_or(input.sql);
        if sql_text::is_blank(sql) {
            // SQLite prepares no statement at all for such text; running it would touch a null
            // statement handle.
            return Err(ExecError::new(
                ErrorCode::SqlNoStatement,
                "the SQL text contains no statement",
            ));
        }
        if sql_text::is_vacuum_into(sql) {
            return Err(ExecError::new(
                ErrorCode::SQLITE_AUTH,
                "VACUUM INTO is not allowed: a skylite database cannot write other files",
            ));
        }
        if !input.read_only && sql_text::first_word(sql).eq_ignore_ascii_case("VACUUM") {
            // (A read-only caller gets the read-only refusal below instead.)
            // VACUUM rebuilds the file through an attached temporary database (which the
            // authorizer refuses), and libSQL's VACUUM duplicates vector-index metadata, which
            // corrupts databases that have a vector index. Freed pages are reused anyway.
            return Err(ExecError::new(
                ErrorCode::SQLITE_AUTH,
                "VACUUM is not available on a skylite server: freed pages are reused by later \
                 writes (and libSQL's VACUUM corrupts vector indexes)",
            ));
        }
        let keyword = sql_text::txn_keyword(sql);
        if input.read_only
            && (keyword == TxnKeyword::BeginImmediate || is_maintenance(sql_text::first_word(sql)))
        {
            return Err(read_only_error());
        }
        // Three locks against a read-only caller's writes: SQLite's `query_only` (which also
        // stops writes made by statements that extensions run internally), the authorizer that
        // refuses writes while it vets a statement, and the check after preparation below
        // (statements that come from the cache).
        self.set_query_only(input.read_only)?;
        self.flags
            .read_only
            .store(input.read_only, Ordering::Relaxed);
        self.flags
            .read_only_caller
            .store(input.read_only, Ordering::Relaxed);
        let in_txn = !self.sqlite.is_autocommit();
        let result = match self.run_prepared(sql, keyword, input, sink) {
            Ok(summary) => Ok(summary),
            Err(mut e) => {
                if e.code == ErrorCode::SQLITE_FULL {
                    if let Some(max) = self.shared.limits.get().max_size_bytes {
                        // The size limit (max_page_count) rather than the disk, as a rule: the
                        // client's doing, not a server failure.
                        let rolled_back = in_txn && self.sqlite.is_autocommit();
                        e = size_limit_error(max, rolled_back);
                    }
                }
                if e.is_server_failure() {
                    // Not the client's fault: whoever runs the server needs to see it.
                    tracing::error!(
                        code = %e.code,
                        database = %self.shared.path.display(),
                        "statement failed: {}",
                        e.message
                    );
                }
                if e.code == ErrorCode::SQLITE_INTERRUPT
                    || e.code == ErrorCode::SQLITE_CONSTRAINT_COMMITHOOK
                {
                    if let Some(timeout) = self.enforce_revocation() {
                        return Err(timeout);
                    }
                    if self.clock.timed_out() {
                        let rolled_back = in_txn && self.sqlite.is_autocommit();
                        tracing::info!(
                            conn = self.id,
                            timeout_s = self.clock.timeout().as_secs_f64(),
                            rolled_back,
                            "a statement ran past the statement timeout and was stopped"
                        );
                        e = self.clock.timeout_error(rolled_back);
                    }
                }
                if e.code == ErrorCode::SQLITE_CONSTRAINT_COMMITHOOK {
                    // Our commit hook refused the commit: the database is poisoned.
                    self.after_statement();
                    return Err(self.shared.syncer.check_healthy().err().unwrap_or(e));
                }
                Err(e)
            }
        };
        let result = result.map_err(|e| self.explain_error(e));
        self.after_statement();
        if result.is_ok() && keyword == TxnKeyword::BeginReadOnly && !self.is_autocommit() {
            self.readonly_txn = true;
        }
        result
    }

    fn after_statement(&mut self) {
        let committed = self.committed.swap(false, Ordering::AcqRel);
        if committed {
            self.pending_ticket = Some(self.shared.syncer.ticket());
            // Before any checkpoint can reset the WAL, and still under the write lock: the
            // change log reads this transaction's frames (see change_log.rs).
            let frames = self.shared.wal_pages.load(Ordering::Acquire);
            if let Some(pending) = self.shared.change_log.capture(frames) {
                self.pending_backup = Some(pending);
            }
        }
        if self.sqlite.is_autocommit() {
            self.readonly_txn = false;
            let held = self.holds_lock;
            if committed && held {
                self.checkpoint_if_due();
            }
            self.release_lock();
            if held {
                // The transaction ended (committed or rolled back) and the lock is gone, so a
                // revocation that arrived after the commit hook is moot; left set, it would make
                // the next statement claim a rollback that never happened. Cleared after the
                // release: nobody revokes a connection that no longer holds the lock.
                self.revoker.clear();
            }
        }
    }

    /// Copies the whole WAL into the database file and empties it (`TRUNCATE`), under the
    /// write lock like every checkpoint, then fsyncs the database file: at shutdown, so the
    /// data is in the database file itself. Waits for readers (SQLite's busy timeout).
    pub fn checkpoint_truncate(&mut self) -> Result<(), ExecError> {
        Self::take_lock(&self.shared, self.id, &self.revoker, &mut self.holds_lock)?;
        // SAFETY: a valid handle while `self.sqlite` lives, a NUL-terminated name, and null
        // out-pointers (allowed by SQLite).
        let rc = unsafe {
            rusqlite::ffi::sqlite3_wal_checkpoint_v2(
                self.sqlite.handle(),
                c"main".as_ptr(),
                rusqlite::ffi::SQLITE_CHECKPOINT_TRUNCATE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        self.release_lock();
        if rc != rusqlite::ffi::SQLITE_OK {
            return Err(ExecError::new(
                ErrorCode::Sqlite(rc),
                format!("checkpoint failed: {}", crate::sqlite_code_name(rc)),
            ));
        }
        crate::fs_durable::sync_file(&self.shared.path).map_err(|e| {
            ExecError::new(
                ErrorCode::SQLITE_IOERR,
                format!("cannot fsync the database file: {e}"),
            )
        })
    }

    /// Checkpoints the WAL if it has grown past [`crate::database::WAL_CHECKPOINT_PAGES`]
    /// since the last checkpoint. Runs right after a commit, while this connection still
    /// holds the write lock: the only place a checkpoint ever runs (see `database.rs`).
    fn checkpoint_if_due(&mut self) {
        use crate::database::WAL_CHECKPOINT_PAGES;
        let pages = self.shared.wal_pages.load(Ordering::Acquire);
        let mut state = self
            .shared
            .checkpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pages < state.last_pages {
            // SQLite restarted the WAL from its beginning.
            state.due_at = WAL_CHECKPOINT_PAGES;
        }
        state.last_pages = pages;
        if pages < state.due_at {
            return;
        }
        let (mut log, mut done) = (0, 0);
        // SAFETY: the raw handle is only passed to SQLite calls below, while `self.sqlite`
        // lives.
        let handle = unsafe { self.sqlite.handle() };
        // RESTART copies every frame and then lets the next writer start the WAL from its
        // beginning (where `journal_size_limit` cuts the file back). It waits for readers
        // still on old frames (new readers skip a fully copied WAL), but only briefly: a
        // reader that stays longer makes it give up (SQLITE_BUSY) rather than hold the write
        // lock. Without that wait, steady overlapping reads would starve every restart.
        // SAFETY: a valid handle, a NUL-terminated name and two out-pointers to locals.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_busy_timeout(handle, crate::database::CHECKPOINT_READER_WAIT_MS);
            let rc = rusqlite::ffi::sqlite3_wal_checkpoint_v2(
                handle,
                c"main".as_ptr(),
                rusqlite::ffi::SQLITE_CHECKPOINT_RESTART,
                &mut log,
                &mut done,
            );
            rusqlite::ffi::sqlite3_busy_timeout(handle, crate::database::BUSY_TIMEOUT_MS);
            rc
        };
        // Try again once another batch of pages has arrived, not on every commit.
        state.due_at = pages.max(log.max(0) as u32) + WAL_CHECKPOINT_PAGES;
        if rc == rusqlite::ffi::SQLITE_BUSY {
            // A reader is still on old frames: part of the WAL (or its restart) waits for the
            // next checkpoint.
            if log as u32 >= 10 * WAL_CHECKPOINT_PAGES {
                tracing::warn!(
                    wal_pages = log,
                    checkpointed = done,
                    database = %self.shared.path.display(),
                    "the WAL keeps growing: a long-running read (an open read transaction or \
                     cursor) holds frames that cannot be checkpointed"
                );
            }
            return;
        }
        if rc != rusqlite::ffi::SQLITE_OK {
            let name = crate::sqlite_code_name(rc);
            tracing::error!(code = name, "checkpoint of the WAL failed");
            if rc == rusqlite::ffi::SQLITE_IOERR_FSYNC {
                self.shared
                    .syncer
                    .poison(&format!("{name} during a checkpoint"));
            }
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
                ErrorCode::SQLITE_READONLY,
                "attempt to write in a read-only transaction (BEGIN TRANSACTION READONLY); \
                 commit or roll back first",
            ));
        }
        let needs_lock = !readonly || keyword == TxnKeyword::BeginImmediate;
        if needs_lock {
            if let Err(e) = self.shared.syncer.check_healthy() {
                stmt.clear_bindings();
                return Err(e);
            }
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
        let clock = &self.clock;
        let sink_waits = sink.may_wait();
        clock.start();
        let outcome = (|| {
            let waiting = sink_waits.then(Instant::now);
            sink.columns(cols)?;
            if let Some(waiting) = waiting {
                clock.pause(waiting.elapsed());
            }
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().map_err(ExecError::from)? {
                if !input.want_rows {
                    continue;
                }
                let mut values = Vec::with_capacity(ncols);
                for i in 0..ncols {
                    values.push(convert(row.get_ref(i).map_err(ExecError::from)?));
                }
                // The consumer's time (a slow cursor reader) is not the statement's.
                let waiting = sink_waits.then(Instant::now);
                sink.row(values)?;
                if let Some(waiting) = waiting {
                    clock.pause(waiting.elapsed());
                }
            }
            Ok::<(), ExecError>(())
        })();
        clock.stop();
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

    /// Describes a statement without running it. `read_only`: the caller has read-only access.
    ///
    /// Describing runs no statement, but SQLite applies many pragmas while it *prepares* them
    /// (`PRAGMA foreign_keys = ON` takes effect here): the authorizer vets them exactly as for
    /// `execute`, so process-wide pragmas are refused and a read-only caller cannot switch
    /// `query_only` off.
    pub fn describe(&mut self, sql: &str, read_only: bool) -> Result<DescribeResult, ExecError> {
        if let Some(err) = self.enforce_revocation() {
            return Err(err);
        }
        self.flags.take_denial();
        let (len, _) = sql_text::first_statement(sql);
        self.set_query_only(read_only)?;
        // Describing a write is allowed to anyone (nothing runs); only the pragma rules of a
        // read-only caller apply.
        self.flags.read_only.store(false, Ordering::Relaxed);
        self.flags
            .read_only_caller
            .store(read_only, Ordering::Relaxed);
        let stmt = match self.sqlite.prepare_cached(sql.get(..len).unwrap_or(sql)) {
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
        let _ = self.make_durable();
        self.shared.open_conns.fetch_sub(1, Ordering::AcqRel);
    }
}

/// WAL hook: records how many pages the WAL holds after a commit (replaces SQLite's
/// autocheckpoint, which is off; see `Conn::checkpoint_if_due`).
unsafe extern "C" fn record_wal_pages(
    arg: *mut std::ffi::c_void,
    _db: *mut rusqlite::ffi::sqlite3,
    _name: *const std::ffi::c_char,
    pages: std::ffi::c_int,
) -> std::ffi::c_int {
    // SAFETY: `arg` is the `AtomicU32` installed in `Conn::new`, alive while the connection is.
    let counter = unsafe { &*(arg as *const AtomicU32) };
    counter.store(pages.max(0) as u32, Ordering::Release);
    rusqlite::ffi::SQLITE_OK
}

/// True for the maintenance statements that rebuild stored data (`REINDEX`, `ANALYZE`). They
/// are refused to read-only callers by name, as sqld does: with nothing to rebuild SQLite
/// reports them as reading and they would succeed as no-ops, which tells a read-only token that
/// it may run them.
fn is_maintenance(first_word: &str) -> bool {
    first_word.eq_ignore_ascii_case("REINDEX") || first_word.eq_ignore_ascii_case("ANALYZE")
}

/// The error for a write attempted with read-only access.
fn read_only_error() -> ExecError {
    ExecError::new(
        ErrorCode::SQLITE_READONLY,
        "attempt to write with read-only access: this token may only read this database",
    )
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
            ErrorCode::ArgsInvalid,
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
                ErrorCode::ArgsInvalid,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Database, EngineConfig};

    struct NoRows;
    impl RowSink for NoRows {
        fn columns(&mut self, _: Vec<Col>) -> Result<(), ExecError> {
            Ok(())
        }
        fn row(&mut self, _: Vec<Value>) -> Result<(), ExecError> {
            Ok(())
        }
    }

    fn run(conn: &mut Conn, sql: &str) -> Result<StmtSummary, ExecError> {
        let input = StmtInput {
            sql,
            args: &[],
            named_args: &[],
            want_rows: true,
            read_only: false,
        };
        conn.run(input, &mut NoRows)
    }

    #[test]
    fn commit_that_wins_the_race_against_revocation_stands_and_is_not_reported_lost() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("data.db"), EngineConfig::default()).unwrap();
        let mut conn = db.acquire().unwrap();
        run(&mut conn, "CREATE TABLE t(x)").unwrap();
        run(&mut conn, "BEGIN").unwrap();
        run(&mut conn, "INSERT INTO t VALUES (1)").unwrap();
        // A waiter revokes the lock right after SQLite decided to commit.
        conn.revoke_after_commit_hook.store(true, Ordering::Release);
        run(&mut conn, "COMMIT").unwrap();
        assert!(conn.is_autocommit());
        // The commit stands, and the next statement does not claim it was rolled back.
        run(&mut conn, "SELECT 1").unwrap();
        let n: i64 = conn
            .sqlite
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        conn.make_durable().unwrap();
    }
}
