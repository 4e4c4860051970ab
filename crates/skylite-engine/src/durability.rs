//! Group commit: making acknowledged writes durable without one fsync per write.
//!
//! Connections run with `synchronous=NORMAL` in WAL mode, so a commit appends its frames to the
//! WAL file (in the OS page cache) and returns without an fsync. Before the server answers a
//! request that committed anything, it calls [`Syncer::wait_durable`] with a ticket taken
//! *after* the commit finished. One caller at a time becomes the leader and fsyncs the WAL;
//! everybody whose ticket was issued before that fsync started is covered by it and returns
//! together. Because the WAL is append-only until a checkpoint (and SQLite itself syncs the WAL
//! before checkpointing), one fsync covers every earlier commit.
//!
//! A failed fsync *poisons* the database: after it the kernel may have dropped dirty pages and
//! marked them clean, so a later fsync that succeeds proves nothing about the earlier commits.
//! From then on every wait for durability fails and every write is refused
//! (`DATABASE_POISONED`) until the database is opened again (in practice: the server restarts
//! and SQLite recovers from what is really on disk).
//!
//! With [`Durability::Normal`] the fsync is skipped: writes survive a crash of the server
//! process (they are in the OS page cache) but not a power loss or kernel crash.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::{ErrorCode, ExecError};

/// How hard the server works to keep acknowledged writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync the WAL before acknowledging a write (shared among concurrent writers).
    #[default]
    Full,
    /// Leave flushing to checkpoints; survives a process crash, not a power loss.
    Normal,
}

#[derive(Default)]
struct SyncState {
    /// Every ticket up to this one is on disk.
    synced: u64,
    /// A leader is fsyncing right now.
    running: bool,
    /// The data folder entry for the WAL file has been fsynced.
    dir_synced: bool,
    /// Why the database is poisoned (the failed fsync), once it is.
    poison: Option<String>,
}

/// Coordinates fsyncs of one database's WAL.
pub struct Syncer {
    durability: Durability,
    wal_path: PathBuf,
    dir_path: PathBuf,
    issued: AtomicU64,
    state: Mutex<SyncState>,
    done: Condvar,
    /// Set once an fsync failed; read without the mutex on every write (see [`Syncer::poisoned_flag`]).
    poisoned: Arc<AtomicBool>,
    /// Test hook: the next fsync fails as if the disk had reported an error.
    fail_next: AtomicBool,
}

impl Syncer {
    /// A syncer for the database file at `db_path`.
    pub fn new(db_path: &std::path::Path, durability: Durability) -> Self {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        Syncer {
            durability,
            wal_path: PathBuf::from(wal),
            dir_path: db_path
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_else(|| PathBuf::from(".")),
            issued: AtomicU64::new(0),
            state: Mutex::new(SyncState::default()),
            done: Condvar::new(),
            poisoned: Arc::new(AtomicBool::new(false)),
            fail_next: AtomicBool::new(false),
        }
    }

    /// The flag that says the database is poisoned, for the commit hook of each connection
    /// (which must not lock anything).
    pub(crate) fn poisoned_flag(&self) -> Arc<AtomicBool> {
        self.poisoned.clone()
    }

    /// Whether an fsync of this database failed since it was opened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// `Ok` unless the database is poisoned; then the error every write and every wait for
    /// durability answers.
    pub fn check_healthy(&self) -> Result<(), ExecError> {
        if !self.is_poisoned() {
            return Ok(());
        }
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Err(poisoned_error(state.poison.as_deref().unwrap_or("unknown")))
    }

    /// Marks the database poisoned after a failed fsync (also used when SQLite's own fsync
    /// during a checkpoint fails).
    pub(crate) fn poison(&self, cause: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.poison.is_none() {
            tracing::error!(
                wal = %self.wal_path.display(),
                "fsync failed ({cause}); the database refuses writes until it is reopened"
            );
            state.poison = Some(cause.to_owned());
        }
        self.poisoned.store(true, Ordering::Release);
        self.done.notify_all();
    }

    /// Makes the next fsync fail (for tests of the poisoned state; not a user setting).
    #[doc(hidden)]
    pub fn inject_fsync_failure(&self) {
        self.fail_next.store(true, Ordering::Release);
    }

    /// A ticket for a commit that has just finished.
    pub fn ticket(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Blocks until the commit behind `ticket` is on disk.
    pub fn wait_durable(&self, ticket: u64) -> Result<(), ExecError> {
        if self.durability == Durability::Normal {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.synced >= ticket {
            return Ok(());
        }
        // Waiting for (or doing) an fsync is not CPU work: let the pool run other jobs.
        let _blocked = crate::workers::blocking_section();
        loop {
            if state.synced >= ticket {
                return Ok(());
            }
            if let Some(cause) = &state.poison {
                // Never retry: a later fsync can succeed after the kernel dropped our pages.
                return Err(poisoned_error(cause));
            }
            if !state.running {
                break;
            }
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        // Become the leader: everything issued so far is already in the WAL file.
        state.running = true;
        let target = self.issued.load(Ordering::Acquire);
        let need_dir = !state.dir_synced;
        drop(state);

        let result = self.fsync(need_dir);

        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.running = false;
        match &result {
            Ok(()) => {
                state.synced = state.synced.max(target);
                state.dir_synced = true;
            }
            Err(e) => {
                if state.poison.is_none() {
                    state.poison = Some(e.message.clone());
                }
                self.poisoned.store(true, Ordering::Release);
            }
        }
        self.done.notify_all();
        result
    }

    fn fsync(&self, with_dir: bool) -> Result<(), ExecError> {
        let io_err = |what: &str, e: std::io::Error| {
            tracing::error!(error = %e, "fsync of {what} failed");
            ExecError::new(
                ErrorCode::SQLITE_IOERR_FSYNC,
                format!(
                    "could not make the write durable ({what}: {e}); the database refuses \
                     writes until it is reopened (restart the server)"
                ),
            )
        };
        if self.fail_next.swap(false, Ordering::AcqRel) {
            return Err(io_err(
                "WAL file",
                std::io::Error::other("injected fsync failure"),
            ));
        }
        match File::open(&self.wal_path) {
            Ok(f) => f.sync_data().map_err(|e| io_err("WAL file", e))?,
            // No WAL file means the commit went straight into the database file (a checkpoint
            // ran and truncated it); SQLite synced that file itself.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("WAL file", e)),
        }
        if with_dir {
            File::open(&self.dir_path)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("data folder", e))?;
        }
        Ok(())
    }
}

/// The error of a poisoned database.
fn poisoned_error(cause: &str) -> ExecError {
    ExecError::new(
        ErrorCode::DatabasePoisoned,
        format!(
            "an fsync of this database failed earlier ({cause}), so the disk may have dropped \
             acknowledged pages; it refuses writes until it is reopened (restart the server). \
             Reads still work"
        ),
    )
}
