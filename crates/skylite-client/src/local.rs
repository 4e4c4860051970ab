//! Local files on the engine in this process: one [`skylite_engine::Database`] per file per
//! process (shared by every client of that file, so they share its write lock and pool), and
//! streams that run Hrana requests on an engine [`Session`].
//!
//! SQL blocks, so the async flavour never runs it on the caller's thread: each request list goes
//! to a small engine worker pool ([`skylite_engine::Workers`], which also keeps the pool moving
//! while a job waits for the write lock) and the answer comes back on a oneshot channel. If the
//! caller's future is dropped mid-way, the job still finishes and the session is dropped on the
//! worker, which rolls back any open transaction there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use skylite_engine::{Budget, Database, EngineConfig, Session, Workers};
use skylite_proto::{StreamRequest, StreamResult};

use crate::error::{Error, Result};

/// One open local database.
pub(crate) struct LocalDb {
    pub(crate) db: Database,
    /// For `:memory:`: the private folder holding the file, removed after `db` closes (fields
    /// drop in declaration order).
    _private: Option<PrivateFolder>,
}

/// A folder that is removed when dropped.
struct PrivateFolder(PathBuf);

impl Drop for PrivateFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for LocalDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDb")
            .field("path", &self.db.path())
            .finish()
    }
}

/// The databases open in this process, with the id of the process that opened them: after a
/// `fork` the child sees the parent's entries, whose engine threads do not exist there, so it
/// must open its own.
type Registry = Mutex<(u32, HashMap<PathBuf, Weak<LocalDb>>)>;

fn registry() -> &'static Registry {
    static OPEN: OnceLock<Registry> = OnceLock::new();
    OPEN.get_or_init(|| Mutex::new((std::process::id(), HashMap::new())))
}

/// The worker threads that run local SQL for the async flavour (a new pool in a forked child,
/// where the parent's threads do not exist; the parent's pool is then leaked, never joined).
pub(crate) fn workers() -> &'static Workers {
    static WORKERS: Mutex<Option<(u32, &'static Workers)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = WORKERS.lock().unwrap_or_else(|p| p.into_inner());
    match *slot {
        Some((owner, workers)) if owner == pid => workers,
        _ => {
            let workers: &'static Workers =
                Box::leak(Box::new(Workers::new("skylite-client", 4, 256)));
            *slot = Some((pid, workers));
            workers
        }
    }
}

/// Runs `job` on the worker pool and waits for it without blocking the async runtime.
pub(crate) async fn on_worker<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    workers().execute(move || {
        let _ = tx.send(job());
    });
    rx.await
        .map_err(|_| Error::Open("the local database worker stopped unexpectedly".into()))
}

impl LocalDb {
    /// Opens `path` (creating the file if needed), or returns the handle already open in this
    /// process. Blocks.
    pub(crate) fn open(path: &Path) -> Result<Arc<LocalDb>> {
        let absolute = std::path::absolute(path)
            .map_err(|e| Error::Open(format!("{}: {e}", path.display())))?;
        let key = absolute.canonicalize().unwrap_or_else(|_| absolute.clone());
        let mut guard = registry().lock().unwrap_or_else(|p| p.into_inner());
        let (owner, open) = &mut *guard;
        if *owner != std::process::id() {
            // A forked child: the parent's databases are not usable here (see `registry`).
            std::mem::forget(std::mem::take(open));
            *owner = std::process::id();
        }
        if let Some(db) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(db);
        }
        let config = EngineConfig {
            // No wire to protect: results are only bounded by memory.
            max_response_bytes: usize::MAX / 4,
            ..EngineConfig::default()
        };
        let db = Database::open(&absolute, config).map_err(|e| Error::Open(e.to_string()))?;
        let local = Arc::new(LocalDb { db, _private: None });
        open.retain(|_, weak| weak.strong_count() > 0);
        open.insert(key, Arc::downgrade(&local));
        Ok(local)
    }
}

impl LocalDb {
    /// Opens a new private database for `:memory:`. The engine runs in WAL mode, which needs a
    /// file, so this is a file in a new folder of the system's temporary directory, never shared
    /// with another client and removed when the last handle is dropped. Blocks.
    pub(crate) fn open_private() -> Result<Arc<LocalDb>> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let folder = std::env::temp_dir().join(format!(
            "skylite-memory-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&folder)
            .map_err(|e| Error::Open(format!("{}: {e}", folder.display())))?;
        let private = PrivateFolder(folder);
        let config = EngineConfig {
            max_response_bytes: usize::MAX / 4,
            ..EngineConfig::default()
        };
        let db = Database::open(&private.0.join("memory.db"), config)
            .map_err(|e| Error::Open(e.to_string()))?;
        Ok(Arc::new(LocalDb {
            db,
            _private: Some(private),
        }))
    }
}

/// A stream on a local database: a session that lives between calls (for transactions).
pub(crate) struct LocalStream {
    db: Arc<LocalDb>,
    /// `None` only while a request runs, or after a cancelled one.
    session: Option<Session>,
}

impl LocalStream {
    pub(crate) fn new(db: Arc<LocalDb>) -> LocalStream {
        let session = Session::new(db.db.clone());
        LocalStream {
            db,
            session: Some(session),
        }
    }

    /// Runs `reqs` in order on the worker pool.
    pub(crate) async fn run(&mut self, reqs: Vec<StreamRequest>) -> Result<Vec<StreamResult>> {
        let mut session = self.session.take().ok_or_else(|| {
            Error::TransactionLost("an earlier call on this transaction was cancelled".into())
        })?;
        let (session, results) = on_worker(move || {
            let results = run_session(&mut session, &reqs);
            (session, results)
        })
        .await?;
        self.session = Some(session);
        results
    }

    /// Whether the session is still there (no call on it was cancelled).
    pub(crate) fn is_usable(&self) -> bool {
        self.session.is_some()
    }

    /// Whether the session is open and inside a transaction.
    pub(crate) fn in_transaction(&self) -> bool {
        self.session.as_ref().is_some_and(Session::in_transaction)
    }

    /// Rolls back and frees the session on a worker, without waiting (for `Drop`).
    pub(crate) fn close_in_background(&mut self) {
        if let Some(session) = self.session.take() {
            // Session's own Drop rolls back and returns the connection to the pool.
            workers().execute(move || drop(session));
        }
    }

    #[allow(dead_code)]
    pub(crate) fn database(&self) -> &Arc<LocalDb> {
        &self.db
    }
}

/// Runs `reqs` on `session` and makes their commits durable, as a server pipeline does.
fn run_session(session: &mut Session, reqs: &[StreamRequest]) -> Result<Vec<StreamResult>> {
    let mut budget = Budget::new(session.database().config().max_response_bytes);
    let results = reqs
        .iter()
        .map(|r| session.handle(r, &mut budget))
        .collect();
    session
        .finish_pipeline()
        .map_err(|e| Error::from_proto(e.into()))?;
    Ok(results)
}
