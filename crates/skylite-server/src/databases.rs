//! The databases of one server: name validation, and the registry that maps names to open
//! databases.
//!
//! A database is a folder under the data directory, `<data-dir>/<name>/data.db`. Folders whose
//! name is not a valid database name (`.skylite/` with the server's keys, the hidden temporary
//! folders of forks and deletions) are never databases. A database is opened on first use and
//! stays open: its [`DbHandle`] holds the engine [`Database`] and the [`Streams`] of its
//! Hrana-over-HTTP streams. `default` is created at start.
//!
//! Creating, deleting and forking change the folder layout; they run on worker threads and take
//! one lifecycle lock, as does opening, so a database is never opened while it is being
//! removed, and a folder is never created except by [`Databases::create`] (or a fork).
//! Deletion renames the folder to a hidden trash name first (atomic), then removes it; a fork
//! is written into a hidden temporary folder and renamed into place once complete, and so is an
//! import ([`Databases::install`]).
//!
//! **Eviction.** An open database costs file descriptors, memory for its connections' caches
//! and a WAL. One that nobody uses (no request in flight, no Hrana-over-HTTP stream, no
//! WebSocket, no connection checked out) for `db_idle_timeout` is closed
//! ([`Databases::evict_idle`]), and opening one more than `max_open_databases` first closes the
//! least recently used idle one. Closing happens under the lifecycle lock, so the same file is
//! never open twice (two write locks on one file would let two writers and a checkpoint run
//! at once); the last connection to close checkpoints the WAL and removes it. The next request
//! opens the database again. `default` is never evicted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use skylite_engine::{fs_durable, maintenance, Database, ErrorCode, ExecError, OpenError};

use crate::error::ApiError;
use crate::limits::{LimitsJson, LimitsPatch};
use crate::streams::Streams;
use crate::ServerConfig;

/// The name of the database served when a request names none. It cannot be deleted.
pub const DEFAULT_DATABASE: &str = "default";

/// Longest database name (a DNS label).
pub const MAX_NAME_LEN: usize = 63;

/// Prefixes of the hidden temporary folders in the data folder (a fork or an import being
/// written, a deleted database being removed, an export being streamed). Removed at start.
pub const TEMP_PREFIXES: &[&str] = &[".fork-", ".trash-", ".import-", ".export-"];

/// Checks a database name: 1 to 63 characters, lowercase ASCII letters, digits, `-` and `_`,
/// starting with a letter or a digit. This is the only place names are judged; a name that
/// fails here never reaches the file system.
pub fn validate_name(name: &str) -> Result<&str, ApiError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 63 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        Some("only lowercase letters a-z, digits 0-9, '-' and '_' are allowed")
    } else if !name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        Some("it must start with a letter or a digit")
    } else {
        None
    };
    match why {
        None => Ok(name),
        Some(why) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidDatabaseName,
            format!(
                "invalid database name {:?}: {why}",
                name.chars().take(80).collect::<String>()
            ),
        )),
    }
}

/// True if `name` is a valid database name.
pub fn is_valid_name(name: &str) -> bool {
    validate_name(name).is_ok()
}

/// The 404 for a database that does not exist.
pub fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::DatabaseNotFound,
        format!(
            "database {name:?} does not exist (create it with POST /v1/admin/databases \
             {{\"name\": \"{name}\"}})"
        ),
    )
}

pub(crate) fn exists_error(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::DatabaseExists,
        format!("database {name:?} already exists"),
    )
}

fn io_error(what: &str, e: std::io::Error) -> ApiError {
    ApiError::internal(format!("cannot {what}: {e}"))
}

fn open_error(e: OpenError) -> ApiError {
    ApiError::internal(format!("cannot open the database: {e}"))
}

fn exec_error(what: &str, e: ExecError) -> ApiError {
    ApiError::internal(format!("cannot {what}: {}: {}", e.code, e.message))
}

/// One open database.
pub struct DbHandle {
    name: String,
    streams: Arc<Streams>,
    deleted: AtomicBool,
    websockets: AtomicUsize,
    /// When a request last looked this database up (for idle eviction).
    last_used: Mutex<Instant>,
}

impl DbHandle {
    /// Its name (also the scope its batons are bound to).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its Hrana-over-HTTP streams.
    pub fn streams(&self) -> &Arc<Streams> {
        &self.streams
    }

    /// The engine database.
    pub fn database(&self) -> &Database {
        self.streams.database()
    }

    /// True once the database was deleted: connections still bound to it must stop.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Counts a WebSocket connection bound to this database until the guard is dropped.
    pub fn websocket_guard(self: &Arc<Self>) -> WebSocketGuard {
        self.websockets.fetch_add(1, Ordering::Relaxed);
        WebSocketGuard(self.clone())
    }

    /// WebSocket connections bound to this database.
    pub fn websockets(&self) -> usize {
        self.websockets.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// True if nothing uses the database: no stream, no WebSocket, no connection or session
    /// outside the pool. Callers must also know that nobody else holds this handle.
    fn is_unused(&self) -> bool {
        self.streams.is_empty() && self.websockets() == 0 && self.database().is_unused()
    }
}

/// Keeps a WebSocket connection counted on its database.
pub struct WebSocketGuard(Arc<DbHandle>);

impl Drop for WebSocketGuard {
    fn drop(&mut self) {
        self.0.websockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Size, counts and (optionally) health of one database, as the admin API reports them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DbInfo {
    /// The name.
    pub name: String,
    /// Bytes on disk: the database file plus its WAL.
    pub size_bytes: u64,
    /// The database file alone.
    pub db_bytes: u64,
    /// The WAL alone.
    pub wal_bytes: u64,
    /// Tables (SQLite's internal ones not counted).
    pub tables: u64,
    /// Rows read by statements since the server opened it.
    pub rows_read: u64,
    /// Rows written by statements since the server opened it.
    pub rows_written: u64,
    /// Live Hrana-over-HTTP streams.
    pub open_streams: usize,
    /// WebSocket connections bound to it.
    pub websocket_connections: usize,
    /// SQLite connections the server holds on it (pooled and in use).
    pub open_connections: usize,
    /// Whether the server has it open (counters start when it is opened).
    pub open: bool,
    /// Its own limits (`null`: the server's setting applies).
    pub limits: LimitsJson,
    /// `PRAGMA quick_check` (only for a single database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Continuous backup of this database (with `--backup`, once opened since the start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupInfo>,
}

/// Where the continuous backup of one database stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupInfo {
    /// `ok`, `starting` (first snapshot not stored yet), `retrying` (the object store fails;
    /// writes go on, uploads resume), `gap` (a new generation starts soon) or `fenced` (another
    /// server writes this database's history; this one stopped).
    pub state: &'static str,
    /// The current generation.
    pub generation: Option<String>,
    /// Last transaction committed (and captured) in it.
    pub captured_txn: u64,
    /// Last backed-up position: the last transaction of the generation in the object store.
    pub backed_up_txn: u64,
    /// When that transaction committed (unix ms).
    pub backed_up_commit_ms: Option<u64>,
    /// Age of the backed-up position: now minus `backed_up_commit_ms`.
    pub backed_up_age_ms: Option<u64>,
    /// How far the store is behind: 0 when every committed transaction is stored, else the age
    /// of the oldest one that is not.
    pub lag_ms: u64,
    /// Bytes waiting for upload.
    pub spool_bytes: u64,
    /// The last error (store failure, fencing), if any.
    pub error: Option<String>,
    /// PUT requests made for this database since the server started.
    pub puts: u64,
    /// Transactions captured since the server started.
    pub commits: u64,
}

impl From<skylite_backup::BackupStatus> for BackupInfo {
    fn from(s: skylite_backup::BackupStatus) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        BackupInfo {
            state: s.state,
            generation: s.generation,
            captured_txn: s.captured_txn,
            backed_up_txn: s.backed_up_txn,
            backed_up_commit_ms: s.backed_up_commit_ms,
            backed_up_age_ms: s.backed_up_commit_ms.map(|t| now.saturating_sub(t)),
            lag_ms: s.lag_ms,
            spool_bytes: s.spool_bytes,
            error: s.error,
            puts: s.puts,
            commits: s.commits,
        }
    }
}

/// The health of one database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// True if `quick_check` said `ok`.
    pub ok: bool,
    /// What `PRAGMA quick_check` returned (`"ok"`, or the problems it found).
    pub quick_check: String,
}

/// Every database of the server.
pub struct Databases {
    config: ServerConfig,
    open: Mutex<HashMap<String, Arc<DbHandle>>>,
    /// Held (on worker threads only) while a database is opened, created, deleted or renamed
    /// into place.
    lifecycle: Mutex<()>,
    /// Names recently found not to exist, so that a Host label naming no database does not cost
    /// a file-system check on every request.
    absent: Mutex<HashSet<String>>,
    /// Continuous backup (`--backup`): told about every database opened, replaced or deleted.
    backup: Option<Arc<skylite_backup::Backup>>,
}

/// Most names remembered as absent.
const MAX_ABSENT: usize = 1024;

impl Databases {
    /// Opens the data folder: removes leftovers of interrupted forks and deletions, and opens
    /// (creating it if needed) the `default` database. Blocking.
    pub fn open(
        config: &ServerConfig,
        backup: Option<Arc<skylite_backup::Backup>>,
    ) -> Result<Databases, crate::ServeError> {
        let dir = &config.data_dir;
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut removed = false;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if TEMP_PREFIXES.iter().any(|p| name.starts_with(p)) {
                    tracing::info!(
                        "removing the leftover folder {name} of an interrupted fork, deletion, \
                         import or export"
                    );
                    let _ = std::fs::remove_dir_all(entry.path());
                    removed = true;
                }
            }
            if removed {
                if let Err(e) = fs_durable::sync_dir(dir) {
                    tracing::warn!("cannot fsync the data folder: {e}");
                }
            }
        }
        let dbs = Databases {
            config: config.clone(),
            open: Mutex::new(HashMap::new()),
            lifecycle: Mutex::new(()),
            absent: Mutex::new(HashSet::new()),
            backup,
        };
        let db = Database::open(
            &config.database_file(DEFAULT_DATABASE),
            config.engine.clone(),
        )?;
        dbs.insert(DEFAULT_DATABASE, db)
            .map_err(|e| crate::ServeError::Io {
                what: "the backup of the default database".into(),
                source: std::io::Error::other(e.message),
            })?;
        Ok(dbs)
    }

    /// The continuous backup, if on.
    pub fn backup(&self) -> Option<&Arc<skylite_backup::Backup>> {
        self.backup.as_ref()
    }

    /// Registers an opened database (and starts shipping its changes when backup is on: in
    /// sync mode a database that cannot be backed up is not served).
    fn insert(&self, name: &str, db: Database) -> Result<Arc<DbHandle>, ExecError> {
        // The database's own limits, from its folder, before any request runs on it.
        db.set_limits(crate::limits::load(&self.dir_of(name)).to_engine());
        if let Some(backup) = &self.backup {
            if let Err(e) = backup.database_opened(name, &db) {
                tracing::error!(database = name, error = %e, "backup: cannot start");
                if backup.config().mode == skylite_backup::BackupMode::Sync {
                    return Err(e);
                }
            }
        }
        let handle = Arc::new(DbHandle {
            name: name.to_owned(),
            streams: Arc::new(Streams::new(db, self.config.stream_idle_timeout)),
            deleted: AtomicBool::new(false),
            websockets: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        });
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), handle.clone());
        Ok(handle)
    }

    /// The `default` database.
    pub fn default_db(&self) -> Option<Arc<DbHandle>> {
        self.get_open(DEFAULT_DATABASE)
    }

    /// A database that is already open (never blocks on I/O).
    pub fn get_open(&self, name: &str) -> Option<Arc<DbHandle>> {
        let handle = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if let Some(h) = &handle {
            h.touch();
        }
        handle
    }

    /// Every open database.
    pub fn all_open(&self) -> Vec<Arc<DbHandle>> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// True if `name` was recently found not to exist.
    pub fn known_absent(&self, name: &str) -> bool {
        self.absent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }

    fn remember_absent(&self, name: &str) {
        let mut absent = self.absent.lock().unwrap_or_else(|p| p.into_inner());
        if absent.len() >= MAX_ABSENT {
            absent.clear();
        }
        absent.insert(name.to_owned());
    }

    fn forget_absent(&self, name: &str) {
        self.absent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// The folder of a (validated) database.
    fn dir_of(&self, name: &str) -> PathBuf {
        self.config.database_dir(name)
    }

    fn exists_on_disk(&self, name: &str) -> bool {
        self.config.database_file(name).is_file()
    }

    /// Finds a database: open, or on disk (then opens it and keeps it open). `Ok(None)` if it
    /// does not exist. Blocking (run it on a worker).
    pub fn open_existing(&self, name: &str) -> Result<Option<Arc<DbHandle>>, ApiError> {
        validate_name(name)?;
        if let Some(handle) = self.get_open(name) {
            return Ok(Some(handle));
        }
        let _lifecycle = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = self.get_open(name) {
            return Ok(Some(handle));
        }
        if !self.exists_on_disk(name) {
            self.remember_absent(name);
            return Ok(None);
        }
        self.make_room()?;
        let db = Database::open(&self.config.database_file(name), self.config.engine.clone())
            .map_err(open_error)?;
        tracing::info!(database = name, "opened database");
        let handle = self
            .insert(name, db)
            .map_err(|e| exec_error("start the backup", e))?;
        Ok(Some(handle))
    }

    /// Closes every database (but `default`) unused for `db_idle_timeout`. Blocking (closing
    /// checkpoints the WAL); the server calls it every second or so.
    pub fn evict_idle(&self) {
        let timeout = self.config.db_idle_timeout;
        let candidates: Vec<String> = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(name, h)| name.as_str() != DEFAULT_DATABASE && h.idle_for() >= timeout)
            .map(|(name, _)| name.clone())
            .collect();
        for name in candidates {
            let _lifecycle = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
            self.evict(&name, Some(timeout));
        }
    }

    /// Before opening one more database: if `max_open_databases` are open, closes the least
    /// recently used one that nobody uses; 503 if every one is in use. Caller holds the
    /// lifecycle lock.
    fn make_room(&self) -> Result<(), ApiError> {
        let max = self.config.max_open_databases.max(1);
        loop {
            let mut idle: Vec<(Duration, String)> = {
                let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                if open.len() < max {
                    return Ok(());
                }
                open.iter()
                    .filter(|(name, _)| name.as_str() != DEFAULT_DATABASE)
                    .map(|(name, h)| (h.idle_for(), name.clone()))
                    .collect()
            };
            // Longest idle first.
            idle.sort_by_key(|(idle_for, _)| std::cmp::Reverse(*idle_for));
            if !idle.into_iter().any(|(_, name)| self.evict(&name, None)) {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::TooManyOpenDatabases,
                    format!(
                        "{max} databases are open and in use (--max-open-databases); \
                         try again when a client of another database is done"
                    ),
                ));
            }
        }
    }

    /// Closes the open database `name` if nobody uses it (and, with `min_idle`, if no
    /// request looked it up for that long). Returns whether it was closed. Caller holds the
    /// lifecycle lock, so the database cannot be opened again before it is fully closed.
    fn evict(&self, name: &str, min_idle: Option<Duration>) -> bool {
        let handle = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let Some(h) = open.get(name) else {
                return false;
            };
            // Only the registry holds the handle (no request in flight, no WebSocket task),
            // checked under the registry's lock, where new references come from.
            let unused = Arc::strong_count(h) == 1
                && h.is_unused()
                && min_idle.is_none_or(|t| h.idle_for() >= t);
            if !unused {
                return false;
            }
            open.remove(name)
        };
        let Some(handle) = handle else {
            return false;
        };
        handle.streams.close_all();
        handle.database().drain_pool();
        // The last reference: the anchor connection closes here, checkpointing the WAL.
        drop(handle);
        tracing::info!(database = name, "closed idle database");
        true
    }

    /// Creates a database. Blocking.
    pub fn create(&self, name: &str) -> Result<Arc<DbHandle>, ApiError> {
        self.create_with_limits(name, &LimitsJson::default())
    }

    /// Creates a database with limits of its own (stored in its folder before it is
    /// acknowledged). Blocking.
    pub fn create_with_limits(
        &self,
        name: &str,
        limits: &LimitsJson,
    ) -> Result<Arc<DbHandle>, ApiError> {
        validate_name(name)?;
        limits.validate()?;
        let _lifecycle = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        if self.get_open(name).is_some() || self.exists_on_disk(name) {
            return Err(exists_error(name));
        }
        self.make_room()?;
        let dir = self.dir_of(name);
        // Durable: the folder entry in the data folder (here) and the file entries in the folder
        // (`Database::open`) are fsynced before the creation is acknowledged.
        fs_durable::create_dir_all(&dir).map_err(|e| io_error("create the database folder", e))?;
        if let Err(e) = crate::limits::store(&dir, limits) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(io_error("store the database's limits", e));
        }
        let db = match Database::open(&self.config.database_file(name), self.config.engine.clone())
        {
            Ok(db) => db,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(open_error(e));
            }
        };
        self.forget_absent(name);
        tracing::info!(database = name, "created database");
        self.insert(name, db)
            .map_err(|e| exec_error("start the backup", e))
    }

    /// Changes the limits of a database: stored durably in its folder, then applied to it if it
    /// is open (each connection before its next statement). Returns the new limits. Blocking.
    pub fn set_limits(&self, name: &str, patch: &LimitsPatch) -> Result<LimitsJson, ApiError> {
        validate_name(name)?;
        // Under the lifecycle lock: the database is neither deleted nor opened meanwhile (an
        // open reads the file, which must already hold the new limits).
        let _lifecycle = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        let handle = self.get_open(name);
        if handle.is_none() && !self.exists_on_disk(name) {
            return Err(not_found(name));
        }
        let dir = self.dir_of(name);
        let current = match &handle {
            Some(h) => LimitsJson::from_engine(h.database().limits()),
            None => crate::limits::load(&dir),
        };
        let next = patch.apply(current);
        next.validate()?;
        crate::limits::store(&dir, &next)
            .map_err(|e| io_error("store the database's limits", e))?;
        if let Some(h) = handle {
            h.database().set_limits(next.to_engine());
        }
        tracing::info!(database = name, limits = ?next, "changed database limits");
        Ok(next)
    }

    /// Deletes a database: rolls back and closes its streams, then removes its folder (renamed
    /// to a hidden trash name first, so it disappears at once). `default` cannot be deleted.
    /// Blocking.
    pub fn delete(&self, name: &str) -> Result<(), ApiError> {
        validate_name(name)?;
        if name == DEFAULT_DATABASE {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::DatabaseProtected,
                "the default database cannot be deleted (it serves requests that name no \
                 database); delete its tables instead",
            ));
        }
        let trash = {
            let _lifecycle = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
            let handle = self
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            if handle.is_none() && !self.exists_on_disk(name) {
                return Err(not_found(name));
            }
            if let Some(handle) = &handle {
                handle.deleted.store(true, Ordering::Release);
                handle.streams.close_all();
                handle.database().drain_pool();
            }
            let trash = self
                .config
                .data_dir
                .join(format!(".trash-{name}-{}", random_suffix()));
            // Durable before it is acknowledged: a deleted database must not come back after a
            // power loss.
            fs_durable::rename(&self.dir_of(name), &trash)
                .map_err(|e| io_error("move the database folder away", e))?;
            trash
        };
        if let Err(e) = fs_durable::remove_dir_all(&trash) {
            tracing::warn!(
                "cannot remove {}: {e} (it is removed at the next start)",
                trash.display()
            );
        }
        if let Some(backup) = &self.backup {
            backup.database_deleted(name);
        }
        tracing::info!(database = name, "deleted database");
        Ok(())
    }

    /// Copies the live database `from` into the new database `to`: one consistent snapshot,
    /// while writers may keep committing. Blocking.
    pub fn fork(&self, from: &str, to: &str) -> Result<(), ApiError> {
        validate_name(from)?;
        validate_name(to)?;
        let source = self.open_existing(from)?.ok_or_else(|| not_found(from))?;
        if self.get_open(to).is_some() || self.exists_on_disk(to) {
            return Err(exists_error(to));
        }
        let tmp = self
            .config
            .data_dir
            .join(format!(".fork-{to}-{}", random_suffix()));
        std::fs::create_dir_all(&tmp).map_err(|e| io_error("create a temporary folder", e))?;
        let cleanup = |e: ApiError| {
            let _ = std::fs::remove_dir_all(&tmp);
            e
        };
        maintenance::copy_consistent(source.database().path(), &tmp.join("data.db"))
            .map_err(|e| cleanup(exec_error("copy the database", e)))?;
        // A fork keeps its source's limits.
        let limits = LimitsJson::from_engine(source.database().limits());
        crate::limits::store(&tmp, &limits)
            .map_err(|e| cleanup(io_error("store the database's limits", e)))?;
        let _lifecycle = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        if source.is_deleted() {
            return Err(cleanup(not_found(from)));
        }
        if self.get_open(to).is_some() || self.exists_on_disk(to) {
            return Err(cleanup(exists_error(to)));
        }
        let dest = self.dir_of(to);
        if dest.exists() {
            // A folder without a database file (left by hand): not a database; replace it.
            let _ = std::fs::remove_dir(&dest);
        }
        // Durable: the copy's own entries, then its new name in the data folder.
        fs_durable::rename(&tmp, &dest)
            .map_err(|e| cleanup(io_error("move the copy into place", e)))?;
        self.forget_absent(to);
        tracing::info!(from, to, "forked database");
        Ok(())
    }

    /// True if a database `name` exists (open or on disk). Blocking (a file-system check).
    pub fn exists(&self, name: &str) -> bool {
        self.get_open(name).is_some() || self.exists_on_disk(name)
    }

    /// A fresh hidden folder path in the data folder for temporary work of `kind` (`import`,
    /// `export`) on `name`; not created. Its prefix is in [`TEMP_PREFIXES`].
    pub fn temp_dir(&self, kind: &str, name: &str) -> PathBuf {
        self.config
            .data_dir
            .join(format!(".{kind}-{name}-{}", random_suffix()))
    }

    /// Moves the complete database folder `prepared` (a hidden folder of the data folder
    /// holding `data.db`) into place as the new database `name`: one atomic rename, under the
    /// lifecycle lock, so the database appears whole or not at all. 409 if `name` exists by
    /// then; `prepared` is left for the caller to remove on error. Blocking.
    pub fn install(&self, name: &str, prepared: &Path) -> Result<(), ApiError> {
        validate_name(name)?;
        let _lifecycle = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        if self.get_open(name).is_some() || self.exists_on_disk(name) {
            return Err(exists_error(name));
        }
        let dest = self.dir_of(name);
        if dest.exists() {
            // A folder without a database file (left by hand): not a database; replace it.
            let _ = std::fs::remove_dir(&dest);
        }
        if let Some(backup) = &self.backup {
            // A new file under this name: whatever history the name had ends here.
            backup.database_replaced(name);
        }
        let renamed = fs_durable::rename(prepared, &dest);
        if renamed.is_err() && !prepared.exists() && dest.exists() {
            // Renamed, but the fsync that makes it durable failed: the import must not be
            // acknowledged, and a database that may vanish after a power loss must not stay.
            let _ = std::fs::remove_dir_all(&dest);
        }
        renamed.map_err(|e| io_error("move the new database into place", e))?;
        self.forget_absent(name);
        Ok(())
    }

    /// The names of every database on disk, sorted. Blocking.
    pub fn names(&self) -> Result<Vec<String>, ApiError> {
        let entries = std::fs::read_dir(&self.config.data_dir)
            .map_err(|e| io_error("read the data folder", e))?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_valid_name(n) && self.exists_on_disk(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Size, counts and optionally health of one database; `Ok(None)` if it does not exist.
    /// A database the server has not opened is inspected without opening it for good.
    /// Blocking.
    pub fn info(&self, name: &str, with_health: bool) -> Result<Option<DbInfo>, ApiError> {
        validate_name(name)?;
        let handle = self.get_open(name);
        let path = self.config.database_file(name);
        if handle.is_none() && !path.is_file() {
            return Ok(None);
        }
        let db_bytes = file_len(&path);
        let wal_bytes = file_len(&wal_path(&path));
        let tables = maintenance::table_count(&path).map_err(|e| exec_error("count tables", e))?;
        let health = if with_health {
            let quick_check =
                maintenance::quick_check(&path).map_err(|e| exec_error("check the database", e))?;
            Some(Health {
                ok: quick_check == "ok",
                quick_check,
            })
        } else {
            None
        };
        let counters = handle
            .as_ref()
            .map(|h| h.database().counters())
            .unwrap_or_default();
        Ok(Some(DbInfo {
            name: name.to_owned(),
            size_bytes: db_bytes + wal_bytes,
            db_bytes,
            wal_bytes,
            tables,
            rows_read: counters.rows_read,
            rows_written: counters.rows_written,
            open_streams: handle.as_ref().map_or(0, |h| h.streams.len()),
            websocket_connections: handle.as_ref().map_or(0, |h| h.websockets()),
            open_connections: handle
                .as_ref()
                .map_or(0, |h| h.database().open_connections()),
            open: handle.is_some(),
            limits: match &handle {
                Some(h) => LimitsJson::from_engine(h.database().limits()),
                None => crate::limits::load(&self.dir_of(name)),
            },
            health,
            backup: self
                .backup
                .as_ref()
                .and_then(|b| b.status(name))
                .map(BackupInfo::from),
        }))
    }

    /// Closes every stream of every database (graceful shutdown): transactions roll back.
    /// Blocking.
    pub fn close_all(&self) {
        for handle in self.all_open() {
            handle.streams.close_all();
        }
    }

    /// Graceful shutdown, after the requests in flight: rolls back every open transaction,
    /// then checkpoints every open database into its file and fsyncs it. Blocking.
    pub fn shutdown(&self) {
        self.close_all();
        for handle in self.all_open() {
            match handle.database().checkpoint_for_shutdown() {
                Ok(()) => tracing::debug!(database = handle.name(), "checkpointed at shutdown"),
                Err(e) => tracing::warn!(
                    database = handle.name(),
                    "checkpoint at shutdown failed: {}: {} (the WAL is kept and replayed at \
                     the next start)",
                    e.code,
                    e.message
                ),
            }
            handle.database().drain_pool();
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::getrandom(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "app", "my-db_2", "0day", &"a".repeat(63)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "App",
            "-a",
            "_a",
            "%2e%2e",
            "a.b",
            "é",
            "a b",
            ".skylite",
            long.as_str(),
            "a\0",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
            assert_eq!(
                validate_name(bad).unwrap_err().code,
                ErrorCode::InvalidDatabaseName
            );
        }
    }
}
