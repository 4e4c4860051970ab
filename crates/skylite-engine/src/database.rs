//! One database on disk: its file, its settings, its pool of idle connections, its write lock
//! and its group-commit syncer.
//!
//! A [`Database`] is a cheap handle (an `Arc`) that any thread may clone. Connections come from
//! [`Database::acquire`] and go back with [`Database::release`], which keeps them only if they
//! carry no state (autocommit, no pragma or temp table left behind), so the next stream starts
//! clean but does not pay for opening SQLite again.
//!
//! **Checkpoints.** SQLite before 3.51.3 loses writes when one connection checkpoints the WAL
//! while another writes to it (the "WAL-reset" race), and a server runs many connections. So
//! no connection checkpoints on its own (`wal_autocheckpoint` is off on every connection):
//! the connection that commits checkpoints (`PASSIVE`) when the WAL has passed
//! [`WAL_CHECKPOINT_PAGES`], before it releases the database's write lock, so a checkpoint
//! never runs beside a write (see `Conn::checkpoint_if_due`). `journal_size_limit` then
//! truncates the WAL file when SQLite restarts it, which it does only once no reader still
//! needs its frames.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::change_log::{ChangeLog, ChangeSink};
use crate::conn::Conn;
use crate::durability::{Durability, Syncer};
use crate::write_lock::WriteLock;
use crate::{ErrorCode, ExecError, OpenError};

/// WAL pages after which the committing connection checkpoints (SQLite's own default
/// autocheckpoint threshold).
pub const WAL_CHECKPOINT_PAGES: u32 = 1000;

/// Size the WAL file is cut back to when SQLite restarts it (`journal_size_limit`), so one
/// large transaction does not leave a large file behind for good.
pub const WAL_SIZE_LIMIT_BYTES: i64 = 16 * 1024 * 1024;

/// How long a checkpoint waits for readers still on old WAL frames before it gives up.
pub(crate) const CHECKPOINT_READER_WAIT_MS: i32 = 50;

/// SQLite's own busy timeout on every connection (writers queue on the write lock first, so
/// this only covers SQLite-internal waits).
pub(crate) const BUSY_TIMEOUT_MS: i32 = 5000;

/// When checkpoints are due; only touched while holding the write lock.
#[derive(Debug)]
pub(crate) struct CheckpointState {
    /// Checkpoint once the WAL holds this many pages.
    pub(crate) due_at: u32,
    /// WAL pages seen at the last commit (a smaller count later means SQLite restarted it).
    pub(crate) last_pages: u32,
}

/// Settings of the engine, shared by every database it opens.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// fsync policy.
    pub durability: Durability,
    /// How long a transaction may hold the write lock while other writers wait.
    pub txn_timeout: Duration,
    /// Largest response (estimated wire bytes) one pipeline or batch may produce.
    pub max_response_bytes: usize,
    /// Most SQLite connections a database keeps open at once (pooled plus in use).
    pub max_connections: usize,
    /// Idle connections kept in the pool.
    pub pool_size: usize,
    /// Prepared statements cached per connection.
    pub statement_cache: usize,
    /// Longest time one statement may spend running in SQLite before it is stopped with
    /// `STATEMENT_TIMEOUT` (zero: no limit). Also the limit of each statement of a dump.
    pub statement_timeout: Duration,
    /// A statement that takes at least this long (write-lock wait included) is logged at warn
    /// level with its database, duration and the first 200 characters of its SQL, never its
    /// arguments (zero: never).
    pub slow_statement_threshold: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            durability: Durability::Full,
            txn_timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024 * 1024,
            max_connections: 1024,
            pool_size: 64,
            statement_cache: 128,
            statement_timeout: Duration::from_secs(30),
            slow_statement_threshold: Duration::from_millis(500),
        }
    }
}

/// Limits of one database, set through the admin API and kept in its folder by the server;
/// `None` falls back to the server's setting ([`EngineConfig`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbLimits {
    /// Largest size of the database (pages times page size; the WAL is not counted): a write
    /// that would grow it further fails with `DATABASE_FULL`, reads go on. Enforced with
    /// SQLite's `max_page_count` on every connection, which clients cannot change.
    pub max_size_bytes: Option<u64>,
    /// Longest time one statement may run (zero: no limit).
    pub statement_timeout: Option<Duration>,
    /// How long a transaction may hold the write lock while other writers wait.
    pub txn_timeout: Option<Duration>,
}

/// The limits in force on a database: its own, or the server's.
#[derive(Debug)]
pub(crate) struct LiveLimits {
    /// Bumped on every change, so each connection applies a change before its next statement.
    pub(crate) generation: AtomicU64,
    limits: Mutex<DbLimits>,
    /// Effective statement timeout in nanoseconds (0: none).
    statement_timeout_ns: AtomicU64,
    /// Effective transaction timeout in nanoseconds.
    txn_timeout_ns: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl LiveLimits {
    fn new(config: &EngineConfig) -> LiveLimits {
        LiveLimits {
            generation: AtomicU64::new(0),
            limits: Mutex::new(DbLimits::default()),
            statement_timeout_ns: AtomicU64::new(nanos(config.statement_timeout)),
            txn_timeout_ns: AtomicU64::new(nanos(config.txn_timeout)),
        }
    }

    pub(crate) fn get(&self) -> DbLimits {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn statement_timeout(&self) -> Duration {
        Duration::from_nanos(self.statement_timeout_ns.load(Ordering::Relaxed))
    }

    pub(crate) fn txn_timeout(&self) -> Duration {
        Duration::from_nanos(self.txn_timeout_ns.load(Ordering::Relaxed))
    }
}

/// What every connection of a database shares.
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    pub(crate) config: EngineConfig,
    pub(crate) write_lock: WriteLock,
    pub(crate) syncer: Syncer,
    pool: Mutex<Vec<Conn>>,
    next_conn_id: AtomicU64,
    pub(crate) open_conns: AtomicUsize,
    /// Rows read by statements since the database was opened (SQLite's own count).
    rows_read: AtomicU64,
    /// Rows written by statements since the database was opened.
    rows_written: AtomicU64,
    /// Pages in the WAL after the latest commit (set by each connection's WAL hook).
    pub(crate) wal_pages: AtomicU32,
    /// When the next checkpoint is due.
    pub(crate) checkpoint: Mutex<CheckpointState>,
    /// The database's own limits and the effective values.
    pub(crate) limits: LiveLimits,
    /// Committed transactions captured for a change sink (continuous backup), if one is attached.
    pub(crate) change_log: ChangeLog,
    /// Held open for the database's lifetime, so the WAL file is never deleted and recreated
    /// under the syncer (SQLite removes it when the last connection closes).
    _anchor: Mutex<Connection>,
}

impl Shared {
    /// Adds one statement's row counts to the database's totals.
    pub(crate) fn count_rows(&self, read: u64, written: u64) {
        self.rows_read.fetch_add(read, Ordering::Relaxed);
        self.rows_written.fetch_add(written, Ordering::Relaxed);
    }
}

/// Counters of one open database, since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbCounters {
    /// Rows read by statements (the sum of their `rows_read`).
    pub rows_read: u64,
    /// Rows written by statements (the sum of their `rows_written`).
    pub rows_written: u64,
}

/// A handle to one open database.
#[derive(Clone)]
pub struct Database {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl Database {
    /// Opens (creating if needed) the database file at `path`, in WAL mode.
    pub fn open(path: &Path, config: EngineConfig) -> Result<Database, OpenError> {
        let io_err = |dir: &Path, source| OpenError::Io {
            path: dir.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            crate::fs_durable::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let is_new = !path.exists();
        let sqlite_err = |source| OpenError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let anchor = open_sqlite(path).map_err(sqlite_err)?;
        let mode: String = anchor
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sqlite_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::Sqlite {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidQuery,
            });
        }
        if is_new {
            // A new database is acknowledged as created once this returns: its header (written
            // by the switch to WAL) and its folder entries must survive a power loss.
            crate::fs_durable::sync_file(path)
                .and_then(|()| crate::fs_durable::sync_parent(path))
                .map_err(|e| io_err(path, e))?;
        }
        Ok(Database {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                syncer: Syncer::new(path, config.durability),
                limits: LiveLimits::new(&config),
                config,
                write_lock: WriteLock::default(),
                pool: Mutex::new(Vec::new()),
                next_conn_id: AtomicU64::new(1),
                open_conns: AtomicUsize::new(0),
                rows_read: AtomicU64::new(0),
                rows_written: AtomicU64::new(0),
                wal_pages: AtomicU32::new(0),
                checkpoint: Mutex::new(CheckpointState {
                    due_at: WAL_CHECKPOINT_PAGES,
                    last_pages: 0,
                }),
                change_log: ChangeLog::new(path),
                _anchor: Mutex::new(anchor),
            }),
        })
    }

    /// The file behind this database.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The engine settings.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The database's own limits (`None` where the server's setting applies).
    pub fn limits(&self) -> DbLimits {
        self.shared.limits.get()
    }

    /// The statement timeout in force on this database (its own, or the server's).
    pub fn statement_timeout(&self) -> Duration {
        self.shared.limits.statement_timeout()
    }

    /// The transaction timeout in force on this database (its own, or the server's).
    pub fn txn_timeout(&self) -> Duration {
        self.shared.limits.txn_timeout()
    }

    /// Sets the database's own limits. Connections apply them before their next statement
    /// (a statement already running keeps the limits it started with).
    pub fn set_limits(&self, limits: DbLimits) {
        let live = &self.shared.limits;
        let config = &self.shared.config;
        let mut current = live.limits.lock().unwrap_or_else(|p| p.into_inner());
        *current = limits;
        live.statement_timeout_ns.store(
            nanos(limits.statement_timeout.unwrap_or(config.statement_timeout)),
            Ordering::Relaxed,
        );
        live.txn_timeout_ns.store(
            nanos(limits.txn_timeout.unwrap_or(config.txn_timeout)),
            Ordering::Relaxed,
        );
        live.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes an idle connection from the pool or opens a new one (blocking).
    pub fn acquire(&self) -> Result<Conn, ExecError> {
        let pooled = self
            .shared
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        if let Some(conn) = pooled {
            return Ok(conn);
        }
        let open = self.shared.open_conns.fetch_add(1, Ordering::AcqRel);
        if open >= self.shared.config.max_connections {
            self.shared.open_conns.fetch_sub(1, Ordering::AcqRel);
            return Err(ExecError::new(
                ErrorCode::SQLITE_BUSY,
                format!(
                    "too many open connections to this database (limit {}); \
                     close idle streams and transactions",
                    self.shared.config.max_connections
                ),
            ));
        }
        let id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let sqlite = match open_sqlite(&self.shared.path) {
            Ok(c) => c,
            Err(e) => {
                self.shared.open_conns.fetch_sub(1, Ordering::AcqRel);
                return Err(ExecError::from_sqlite(&e));
            }
        };
        Conn::new(id, sqlite, self.shared.clone())
    }

    /// Returns a connection: pooled if it is clean, closed otherwise.
    pub fn release(&self, mut conn: Conn) {
        if !conn.is_reusable() {
            return;
        }
        conn.reset_for_pool();
        let mut pool = self.shared.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.shared.config.pool_size {
            pool.push(conn);
        }
    }

    /// Whether writers are queued on the write lock.
    pub fn has_write_waiters(&self) -> bool {
        self.shared.write_lock.has_waiters()
    }

    /// How many writers are queued on the write lock.
    pub fn write_waiters(&self) -> usize {
        self.shared.write_lock.waiters()
    }

    /// Rows read and written by statements since the database was opened.
    pub fn counters(&self) -> DbCounters {
        DbCounters {
            rows_read: self.shared.rows_read.load(Ordering::Relaxed),
            rows_written: self.shared.rows_written.load(Ordering::Relaxed),
        }
    }

    /// True if no connection is checked out and no other handle to this database exists: only
    /// this handle and the pooled connections hold it. (Counting references is exact here
    /// because a new reference can only be made from an existing one.)
    pub fn is_unused(&self) -> bool {
        let pool = self.shared.pool.lock().unwrap_or_else(|p| p.into_inner());
        Arc::strong_count(&self.shared) == 1 + pool.len()
    }

    /// Shutdown: copies the WAL into the database file, empties it and fsyncs the file (see
    /// `Conn::checkpoint_truncate`). Blocking.
    pub fn checkpoint_for_shutdown(&self) -> Result<(), ExecError> {
        let mut conn = self.acquire()?;
        let result = conn.checkpoint_truncate();
        self.release(conn);
        result
    }

    /// Drops the idle pooled connections (before the database's files go away).
    pub fn drain_pool(&self) {
        let idle: Vec<Conn> =
            std::mem::take(&mut *self.shared.pool.lock().unwrap_or_else(|p| p.into_inner()));
        drop(idle);
    }

    /// Whether an fsync of this database failed since it was opened: it then refuses writes
    /// (`DATABASE_POISONED`) until it is opened again.
    pub fn is_poisoned(&self) -> bool {
        self.shared.syncer.is_poisoned()
    }

    /// Makes the next fsync of this database fail (tests of the poisoned state only).
    #[doc(hidden)]
    pub fn inject_fsync_failure(&self) {
        self.shared.syncer.inject_fsync_failure();
    }

    /// Attaches a change sink: from now on every committed transaction is handed to `sink`
    /// (see [`crate::change_log`]), and `snapshot_to` (a new file), if given, receives a
    /// consistent copy of the database exactly as of the attachment, i.e. just before the first
    /// transaction the sink will see. The write lock is held only to fix that point; the copy
    /// runs from a read transaction while writers go on. Blocks; replaces a sink attached
    /// before (which sees nothing more).
    pub fn attach_change_sink(
        &self,
        sink: Arc<dyn ChangeSink>,
        snapshot_to: Option<&Path>,
    ) -> Result<Option<SnapshotInfo>, ExecError> {
        let sqlite_err = |e: rusqlite::Error| ExecError::from_sqlite(&e);
        if let Some(snapshot_to) = snapshot_to.filter(|p| p.exists()) {
            return Err(ExecError::new(
                ErrorCode::Internal,
                format!(
                    "the snapshot target {} already exists",
                    snapshot_to.display()
                ),
            ));
        }
        let source = open_sqlite(&self.shared.path).map_err(sqlite_err)?;
        let revoker = Arc::new(crate::write_lock::Revoker::new(
            source.get_interrupt_handle(),
        ));
        let id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let cfg = &self.shared.config;
        let max_wait = cfg.txn_timeout + cfg.txn_timeout.max(Duration::from_secs(5));
        self.shared
            .write_lock
            .acquire(id, &revoker, cfg.txn_timeout, max_wait)?;
        let fixed = (|| {
            // The WAL's committed frame count right now: a PASSIVE checkpoint reports it
            // without waiting for anybody (and nobody writes: we hold the write lock).
            let (mut log, mut done) = (0, 0);
            // SAFETY: a valid handle, a NUL-terminated name and two out-pointers to locals.
            let rc = unsafe {
                rusqlite::ffi::sqlite3_wal_checkpoint_v2(
                    source.handle(),
                    c"main".as_ptr(),
                    rusqlite::ffi::SQLITE_CHECKPOINT_PASSIVE,
                    &mut log,
                    &mut done,
                )
            };
            if rc != rusqlite::ffi::SQLITE_OK && rc != rusqlite::ffi::SQLITE_BUSY {
                return Err(ExecError::new(
                    ErrorCode::Internal,
                    format!(
                        "cannot read the WAL position: {}",
                        crate::sqlite_code_name(rc)
                    ),
                ));
            }
            if snapshot_to.is_some() {
                // A read transaction that sees exactly the commits so far, whatever comes next.
                source.execute_batch("BEGIN").map_err(sqlite_err)?;
                source
                    .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map_err(sqlite_err)?;
            }
            self.shared
                .change_log
                .attach(sink, log.max(0) as u32)
                .map_err(|e| {
                    ExecError::new(ErrorCode::Internal, format!("cannot open the WAL: {e}"))
                })
        })();
        self.shared.write_lock.release(id);
        fixed?;
        let Some(snapshot_to) = snapshot_to else {
            return Ok(None);
        };
        let copied = crate::maintenance::copy_from(&source, snapshot_to).map(Some);
        let _ = source.execute_batch("COMMIT");
        if copied.is_err() {
            // Without its starting image the captured history is useless: start over later.
            self.shared.change_log.detach();
            let _ = std::fs::remove_file(snapshot_to);
        }
        copied
    }

    /// A handle that does not keep the database open (see [`WeakDatabase`]).
    pub fn downgrade(&self) -> WeakDatabase {
        WeakDatabase(Arc::downgrade(&self.shared))
    }

    /// Detaches the change sink, if any: nothing is captured any more.
    pub fn detach_change_sink(&self) {
        self.shared.change_log.detach();
    }

    /// Number of SQLite connections open on this database (pooled and in use).
    pub fn open_connections(&self) -> usize {
        self.shared.open_conns.load(Ordering::Relaxed)
    }
}

/// A reference to a database that does not keep it open (nor count as a user of it, see
/// [`Database::is_unused`]): for background work that acts only while the database is open.
#[derive(Clone)]
pub struct WeakDatabase(std::sync::Weak<Shared>);

impl WeakDatabase {
    /// The database, if it is still open.
    pub fn upgrade(&self) -> Option<Database> {
        self.0.upgrade().map(|shared| Database { shared })
    }
}

/// What [`Database::attach_change_sink`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Page size of the database.
    pub page_size: u32,
    /// Pages in the copy.
    pub db_pages: u32,
}

/// Opens one SQLite connection with the server's settings (before the authorizer is installed,
/// since it forbids clients to change these very pragmas).
fn open_sqlite(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS as u64))?;
    // Durability comes from the group-commit syncer; see durability.rs.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoints run from one place, under the write lock (see the module doc).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0);
    // REGEXP and the math functions this libSQL build lacks (server and local files alike).
    crate::sql_functions::register(&conn)?;
    Ok(conn)
}
