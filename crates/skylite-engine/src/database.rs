//! One database on disk: its file, its settings, its pool of idle connections, its write lock
//! and its group-commit syncer.
//!
//! A [`Database`] is a cheap handle (an `Arc`) that any thread may clone. Connections come from
//! [`Database::acquire`] and go back with [`Database::release`], which keeps them only if they
//! carry no state (autocommit, no pragma or temp table left behind), so the next stream starts
//! clean but does not pay for opening SQLite again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::conn::Conn;
use crate::durability::{Durability, Syncer};
use crate::write_lock::WriteLock;
use crate::{ExecError, OpenError};

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
        }
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
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
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
        Ok(Database {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                syncer: Syncer::new(path, config.durability),
                config,
                write_lock: WriteLock::default(),
                pool: Mutex::new(Vec::new()),
                next_conn_id: AtomicU64::new(1),
                open_conns: AtomicUsize::new(0),
                rows_read: AtomicU64::new(0),
                rows_written: AtomicU64::new(0),
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
                "SQLITE_BUSY",
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

    /// Rows read and written by statements since the database was opened.
    pub fn counters(&self) -> DbCounters {
        DbCounters {
            rows_read: self.shared.rows_read.load(Ordering::Relaxed),
            rows_written: self.shared.rows_written.load(Ordering::Relaxed),
        }
    }

    /// Drops the idle pooled connections (before the database's files go away).
    pub fn drain_pool(&self) {
        let idle: Vec<Conn> =
            std::mem::take(&mut *self.shared.pool.lock().unwrap_or_else(|p| p.into_inner()));
        drop(idle);
    }

    /// Number of SQLite connections open on this database (pooled and in use).
    pub fn open_connections(&self) -> usize {
        self.shared.open_conns.load(Ordering::Relaxed)
    }
}

/// Opens one SQLite connection with the server's settings (before the authorizer is installed,
/// since it forbids clients to change these very pragmas).
fn open_sqlite(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Durability comes from the group-commit syncer; see durability.rs.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0);
    Ok(conn)
}
