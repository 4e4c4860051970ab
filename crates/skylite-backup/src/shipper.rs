//! One database's stream to the object store: the spool of captured transactions (a
//! [`ChangeSink`] per generation), the uploader task that cuts them into segments, the first
//! snapshot of each generation, sealing the generation it replaces, and fencing.
//!
//! **Spool.** Captured transactions wait in memory, bounded by the spool limit. The local
//! database keeps them durably anyway (it was fsynced by group commit), so the spool only holds
//! what still has to be shipped. In async mode a full spool is a gap: the spool is dropped and,
//! once the store answers again, a new generation starts from a fresh snapshot (nothing is
//! lost; point-in-time restore inside the gap is not possible). In sync mode writes are refused
//! instead (`BACKUP_UNAVAILABLE`), before they take the write lock.
//!
//! **Segments.** Async: every `segment_interval` (or sooner once `segment_bytes` wait) the
//! uploader puts everything spooled as one segment, so the number of PUTs does not grow with
//! the number of commits and is zero when idle. Sync: it uploads as soon as something is
//! spooled; commits that arrive during a PUT go together into the next one (group commit).
//!
//! **Fencing.** Every segment is created with `PutMode::Create` at the key of its first
//! transaction. If the key exists and the object there was not written by us (another writer
//! id, or a seal), another server continues this history: the shipper stops for good, logs an
//! error, reports `fenced` in the status, and (sync mode) refuses writes.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use skylite_engine::change_log::{CapturedTxn, ChangeSink};
use skylite_engine::{Database, ErrorCode, ExecError, WeakDatabase};

use crate::config::{BackupConfig, BackupMode};
use crate::format::{self, GenerationId, ObjectHeader, ObjectKind};

/// Snapshots up to this size are uploaded in one PUT; larger ones in parts.
const SINGLE_PUT_SNAPSHOT: u64 = 64 * 1024 * 1024;
/// Size of each part of a multipart snapshot upload.
const SNAPSHOT_PART: usize = 16 * 1024 * 1024;
/// Longest pause between two attempts after a store error.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a database's backup stands, for the admin API and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStatus {
    /// `"ok"`, `"starting"` (first snapshot not stored yet), `"retrying"` (the store fails;
    /// uploads resume when it answers), `"gap"` (waiting to start a new generation) or
    /// `"fenced"` (another server writes this database's history; this one stopped).
    pub state: &'static str,
    /// The current generation.
    pub generation: Option<String>,
    /// The last transaction captured in it.
    pub captured_txn: u64,
    /// The last transaction stored in the object store (the last backed-up position).
    pub backed_up_txn: u64,
    /// When that transaction committed (unix ms).
    pub backed_up_commit_ms: Option<u64>,
    /// How old the backed-up position is: 0 when everything captured is stored, else the age
    /// of the oldest transaction not stored yet (ms).
    pub lag_ms: u64,
    /// Bytes waiting in the spool.
    pub spool_bytes: u64,
    /// The last error (store failure, fencing, gap), if any.
    pub error: Option<String>,
    /// PUT requests made for this database since the server started.
    pub puts: u64,
    /// Transactions captured since the server started.
    pub commits: u64,
}

/// How the store is doing for this database.
#[derive(Debug, Clone)]
enum Health {
    Ok,
    /// Uploads fail since `since`; retried with backoff.
    Retrying {
        since: Instant,
        error: String,
    },
    /// Another server writes this history; nothing more is shipped.
    Fenced(String),
}

/// The part of a shipper shared with its generations' sinks.
struct State {
    health: Health,
    /// The live generation, if any.
    current: Option<Arc<Generation>>,
    /// A generation must be (re)started at the next open or as soon as possible (gap, or the
    /// database file was replaced).
    needs_new_generation: bool,
    puts: u64,
    commits: u64,
    last_error: Option<String>,
}

/// The backup of one database.
pub(crate) struct Shipper {
    name: String,
    writer_id: String,
    store: Arc<dyn ObjectStore>,
    config: BackupConfig,
    spool_dir: PathBuf,
    state: Mutex<State>,
    /// Wakes the uploader (new data in sync mode, a full segment, a new generation, stop).
    wake: tokio::sync::Notify,
    /// The database while it is open (to start a new generation after a gap).
    db: Mutex<Option<WeakDatabase>>,
    stopped: std::sync::atomic::AtomicBool,
    /// The uploader has returned.
    done: std::sync::atomic::AtomicBool,
}

/// The spool of one generation, and the sink the engine feeds.
pub(crate) struct Generation {
    id: GenerationId,
    shipper: std::sync::Weak<Shipper>,
    spool: Mutex<Spool>,
    /// Signals waiters of sync acknowledgements (something was stored, or the generation
    /// ended).
    uploaded: Condvar,
}

struct Spool {
    /// Captured, not yet taken by the uploader.
    txns: VecDeque<format::Txn>,
    page_size: u32,
    /// Bytes in `txns` plus the segment being uploaded.
    bytes: usize,
    /// Number of the last transaction captured.
    captured: u64,
    /// Number of the last transaction stored (0: none yet).
    stored: u64,
    stored_commit_ms: Option<u64>,
    /// The first snapshot, still to be uploaded (path of the local copy, its info).
    snapshot: Option<(PathBuf, skylite_engine::SnapshotInfo)>,
    /// The snapshot is in the store (sync acknowledgements wait for it too).
    snapshot_stored: bool,
    /// This generation stopped taking transactions (gap, replaced, fenced).
    dead: Option<String>,
}

impl Spool {
    fn oldest_unstored_ms(&self, in_flight_ms: Option<u64>) -> Option<u64> {
        in_flight_ms.or_else(|| self.txns.front().map(|t| t.commit_ms))
    }
}

/// The wall-clock second a commit belongs to for cutting segments: the seconds are (T-1 s, T],
/// so a restore to an RFC 3339 second T (`at` = T exactly, every commit at or before it) always
/// falls on a segment boundary.
fn commit_second(commit_ms: u64) -> u64 {
    commit_ms.saturating_sub(1) / 1000
}

fn txn_bytes(t: &format::Txn) -> usize {
    format::TXN_HEAD_LEN + t.pages.iter().map(|p| 4 + p.data.len()).sum::<usize>()
}

fn unavailable(message: String) -> ExecError {
    ExecError::new(ErrorCode::BackupUnavailable, message)
}

impl ChangeSink for Generation {
    fn admit_write(&self) -> Result<(), ExecError> {
        let Some(shipper) = self.shipper.upgrade() else {
            return Ok(());
        };
        if shipper.config.mode != BackupMode::Sync {
            return Ok(());
        }
        shipper.check_sync_health()?;
        let spool = shipper.lock_spool(self);
        if let Some(reason) = &spool.dead {
            return Err(unavailable(format!(
                "sync backup of this database stopped ({reason}); writes are refused until it \
                 restarts"
            )));
        }
        if spool.bytes >= shipper.config.spool_limit {
            return Err(unavailable(format!(
                "sync backup is {} bytes behind (the spool limit); writes are refused until \
                 the object store catches up",
                spool.bytes
            )));
        }
        Ok(())
    }

    fn committed(&self, txn: CapturedTxn) -> u64 {
        let Some(shipper) = self.shipper.upgrade() else {
            return 0;
        };
        let mut spool = shipper.lock_spool(self);
        if spool.dead.is_some() {
            return 0;
        }
        spool.captured += 1;
        let number = spool.captured;
        spool.page_size = txn.page_size;
        let txn = format::Txn {
            txn: number,
            commit_ms: txn.commit_ms,
            db_pages: txn.db_pages,
            pages: txn
                .pages
                .into_iter()
                .map(|(number, data)| format::Page { number, data })
                .collect(),
        };
        spool.bytes += txn_bytes(&txn);
        spool.txns.push_back(txn);
        let full = spool.bytes >= shipper.config.spool_limit;
        let segment_ready = spool.bytes >= shipper.config.segment_bytes;
        if full && shipper.config.mode == BackupMode::Async {
            drop(spool);
            shipper.gap(
                self,
                "the spool limit was reached while the store lagged behind",
            );
        } else {
            drop(spool);
        }
        shipper.lock_state().commits += 1;
        if shipper.config.mode == BackupMode::Sync || segment_ready {
            shipper.wake.notify_one();
        }
        number
    }

    fn gap(&self, reason: &str) {
        if let Some(shipper) = self.shipper.upgrade() {
            shipper.gap(self, reason);
        }
    }

    fn wait_durable(&self, token: u64) -> Result<(), ExecError> {
        let Some(shipper) = self.shipper.upgrade() else {
            return Ok(());
        };
        if shipper.config.mode != BackupMode::Sync || token == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + shipper.config.sync_timeout;
        let mut spool = shipper.lock_spool(self);
        if spool.snapshot_stored && spool.stored >= token {
            return Ok(());
        }
        // Waiting for the store is not CPU work: let the worker pool run other jobs meanwhile.
        let _blocked = skylite_engine::workers::blocking_section();
        loop {
            if spool.snapshot_stored && spool.stored >= token {
                return Ok(());
            }
            if let Some(reason) = &spool.dead {
                return Err(unavailable(format!(
                    "the write is committed locally but not in the object store: sync backup \
                     stopped ({reason})"
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(unavailable(format!(
                    "the write is committed locally but the object store did not take it within \
                     {} s (--backup-sync-timeout)",
                    shipper.config.sync_timeout.as_secs_f64()
                )));
            }
            spool = self
                .uploaded
                .wait_timeout(spool, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// What the uploader took from the spool.
struct Batch {
    segment: format::Segment,
    bytes: usize,
}

impl Shipper {
    pub(crate) fn new(
        name: &str,
        writer_id: &str,
        store: Arc<dyn ObjectStore>,
        config: BackupConfig,
        spool_dir: PathBuf,
    ) -> Arc<Self> {
        Arc::new(Shipper {
            name: name.to_owned(),
            writer_id: writer_id.to_owned(),
            store,
            config,
            spool_dir,
            state: Mutex::new(State {
                health: Health::Ok,
                current: None,
                needs_new_generation: true,
                puts: 0,
                commits: 0,
                last_error: None,
            }),
            wake: tokio::sync::Notify::new(),
            db: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
            done: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The spool of `generation`.
    fn lock_spool<'a>(&self, generation: &'a Generation) -> MutexGuard<'a, Spool> {
        generation.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_sync_health(&self) -> Result<(), ExecError> {
        match &self.lock_state().health {
            Health::Fenced(why) => Err(unavailable(format!(
                "this server no longer backs up this database ({why}); writes are refused in \
                 sync mode"
            ))),
            Health::Retrying { since, error } if since.elapsed() >= self.config.sync_timeout => {
                Err(unavailable(format!(
                    "the object store has failed for {} s ({error}); writes are refused in sync \
                     mode until it answers",
                    since.elapsed().as_secs()
                )))
            }
            _ => Ok(()),
        }
    }

    /// The history of `generation` cannot go on: drop its spool and start a new generation as
    /// soon as possible.
    fn gap(&self, generation: &Generation, reason: &str) {
        {
            let mut spool = self.lock_spool(generation);
            if spool.dead.is_some() {
                return;
            }
            spool.dead = Some(reason.to_owned());
            spool.txns.clear();
            spool.bytes = 0;
        }
        tracing::warn!(database = %self.name, generation = %generation.id,
            "backup: {reason}; a new generation starts from a fresh snapshot");
        let mut state = self.lock_state();
        state.needs_new_generation = true;
        state.last_error = Some(reason.to_owned());
        drop(state);
        generation.uploaded.notify_all();
        self.wake.notify_one();
    }

    /// The database was opened (or opened again): attach the live generation, or start a new
    /// one (with its snapshot) if there is none. Blocking.
    pub(crate) fn attach(self: &Arc<Self>, db: &Database) -> Result<(), ExecError> {
        *self.db.lock().unwrap_or_else(|p| p.into_inner()) = Some(db.downgrade());
        let (current, needs_new) = {
            let state = self.lock_state();
            if matches!(state.health, Health::Fenced(_)) {
                return Ok(());
            }
            (state.current.clone(), state.needs_new_generation)
        };
        match current {
            Some(generation) if !needs_new => {
                db.attach_change_sink(generation, None)?;
                Ok(())
            }
            _ => self.start_generation(db),
        }
    }

    /// Starts a new generation: attaches its sink and copies the database as of that point
    /// into the spool folder (uploaded first by the uploader). Blocking.
    fn start_generation(self: &Arc<Self>, db: &Database) -> Result<(), ExecError> {
        let id = GenerationId::new_at(now_ms());
        let generation = Arc::new(Generation {
            id: id.clone(),
            shipper: Arc::downgrade(self),
            spool: Mutex::new(Spool {
                txns: VecDeque::new(),
                page_size: 0,
                bytes: 0,
                captured: 0,
                stored: 0,
                stored_commit_ms: None,
                snapshot: None,
                snapshot_stored: false,
                dead: None,
            }),
            uploaded: Condvar::new(),
        });
        std::fs::create_dir_all(&self.spool_dir).map_err(|e| {
            ExecError::new(
                ErrorCode::Internal,
                format!("cannot create the backup spool folder: {e}"),
            )
        })?;
        let snapshot_path = self.spool_dir.join(format!("{id}.snap.db"));
        let _ = std::fs::remove_file(&snapshot_path);
        let info = db
            .attach_change_sink(generation.clone(), Some(&snapshot_path))?
            .ok_or_else(|| ExecError::new(ErrorCode::Internal, "no snapshot was taken"))?;
        generation
            .spool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot = Some((snapshot_path, info));
        let previous = {
            let mut state = self.lock_state();
            state.needs_new_generation = false;
            state.current.replace(generation)
        };
        if let Some(previous) = previous {
            // Its sink is detached (replaced); whoever waits on it learns it ended.
            self.lock_spool(&previous)
                .dead
                .get_or_insert_with(|| "a new generation started".into());
            previous.uploaded.notify_all();
        }
        tracing::info!(database = %self.name, generation = %id, pages = info.db_pages,
            "backup: new generation");
        self.wake.notify_one();
        Ok(())
    }

    /// The database file was replaced (import, restore) or deleted: its history ends here.
    pub(crate) fn end_generation(&self, reason: &str) {
        let current = {
            let mut state = self.lock_state();
            state.needs_new_generation = true;
            state.current.take()
        };
        if let Some(generation) = current {
            self.lock_spool(&generation)
                .dead
                .get_or_insert_with(|| reason.to_owned());
            generation.uploaded.notify_all();
        }
    }

    /// Stops the uploader (after it has shipped what is spooled, if the store answers).
    pub(crate) fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    pub(crate) fn status(&self) -> BackupStatus {
        let state = self.lock_state();
        let (generation, captured, stored, stored_ms, bytes, oldest, snapshot_stored, dead) =
            match &state.current {
                Some(g) => {
                    let spool = self.lock_spool(g);
                    (
                        Some(g.id.to_string()),
                        spool.captured,
                        spool.stored,
                        spool.stored_commit_ms,
                        spool.bytes as u64,
                        spool.oldest_unstored_ms(None),
                        spool.snapshot_stored,
                        spool.dead.clone(),
                    )
                }
                None => (None, 0, 0, None, 0, None, false, None),
            };
        let lag_ms = if stored >= captured {
            0
        } else {
            oldest.map_or(0, |t| now_ms().saturating_sub(t))
        };
        let state_name = match &state.health {
            Health::Fenced(_) => "fenced",
            Health::Retrying { .. } => "retrying",
            Health::Ok if dead.is_some() || state.needs_new_generation => "gap",
            Health::Ok if !snapshot_stored => "starting",
            Health::Ok => "ok",
        };
        let error = match &state.health {
            Health::Fenced(e) => Some(e.clone()),
            Health::Retrying { error, .. } => Some(error.clone()),
            Health::Ok => state.last_error.clone(),
        };
        BackupStatus {
            state: state_name,
            generation,
            captured_txn: captured,
            backed_up_txn: stored,
            backed_up_commit_ms: stored_ms,
            lag_ms,
            spool_bytes: bytes,
            error,
            puts: state.puts,
            commits: state.commits,
        }
    }

    fn record_store_error(&self, error: String) {
        let mut state = self.lock_state();
        match &state.health {
            Health::Retrying { .. } | Health::Fenced(_) => {}
            Health::Ok => {
                tracing::warn!(database = %self.name, error = %error,
                    "backup: the object store fails; writes go on locally, uploads are retried");
            }
        }
        if let Health::Retrying { error: e, .. } = &mut state.health {
            *e = error.clone();
        } else if !matches!(state.health, Health::Fenced(_)) {
            state.health = Health::Retrying {
                since: Instant::now(),
                error: error.clone(),
            };
        }
        state.last_error = Some(error);
    }

    fn record_store_ok(&self) {
        let mut state = self.lock_state();
        if let Health::Retrying { since, .. } = &state.health {
            tracing::info!(database = %self.name, after_s = since.elapsed().as_secs(),
                "backup: the object store answers again; uploads catch up");
            state.health = Health::Ok;
        }
    }

    fn fence(&self, why: String) {
        tracing::error!(database = %self.name, "backup fenced: {why}; this server stops \
            shipping this database's history");
        let current = {
            let mut state = self.lock_state();
            state.health = Health::Fenced(why.clone());
            state.last_error = Some(why.clone());
            state.current.clone()
        };
        if let Some(generation) = current {
            let mut spool = self.lock_spool(&generation);
            spool.dead.get_or_insert(why);
            spool.txns.clear();
            spool.bytes = 0;
            drop(spool);
            generation.uploaded.notify_all();
        }
    }

    fn is_fenced(&self) -> bool {
        matches!(self.lock_state().health, Health::Fenced(_))
    }

    /// A create-only PUT. `Ok(true)`: created; `Ok(false)`: the key exists.
    async fn put_create(&self, key: &str, body: Vec<u8>) -> Result<bool, object_store::Error> {
        self.lock_state().puts += 1;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&StorePath::from(key), PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The header of the object at `key`.
    async fn read_header(&self, key: &str) -> Result<ObjectHeader, String> {
        let got = self
            .store
            .get(&StorePath::from(key))
            .await
            .map_err(|e| e.to_string())?;
        let bytes = got.bytes().await.map_err(|e| e.to_string())?;
        ObjectHeader::decode(&bytes)
            .map(|(h, _)| h)
            .map_err(|e| e.to_string())
    }

    /// Whether the uploader has returned (after [`Shipper::stop`]).
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The uploader: runs until stopped. One per database.
    pub(crate) async fn run(self: Arc<Self>) {
        self.clone().run_loop().await;
        self.done.store(true, std::sync::atomic::Ordering::Release);
    }

    async fn run_loop(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let stopping = self.stopped.load(std::sync::atomic::Ordering::Acquire);
            if !stopping {
                self.wait_for_work().await;
            }
            let stopping = self.stopped.load(std::sync::atomic::Ordering::Acquire);
            if self.is_fenced() {
                if stopping {
                    return;
                }
                continue;
            }
            match self.ship_once().await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    self.record_store_ok();
                    if stopping && self.idle() {
                        return;
                    }
                }
                Err(e) => {
                    self.record_store_error(e);
                    if stopping {
                        // Shutdown does not wait for a store that is down: the local files
                        // hold everything and the next start begins a new generation.
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            self.restart_after_gap().await;
        }
    }

    /// Nothing left to ship.
    fn idle(&self) -> bool {
        let current = self.lock_state().current.clone();
        current.is_none_or(|g| {
            let spool = self.lock_spool(&g);
            spool.txns.is_empty() && (spool.snapshot_stored || spool.dead.is_some())
        })
    }

    async fn wait_for_work(&self) {
        let pending_sync = {
            let current = self.lock_state().current.clone();
            current.is_some_and(|g| {
                let spool = self.lock_spool(&g);
                spool.dead.is_none() && (!spool.txns.is_empty() || !spool.snapshot_stored)
            })
        };
        let retrying = matches!(self.lock_state().health, Health::Retrying { .. });
        if self.config.mode == BackupMode::Sync && pending_sync && !retrying {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(self.config.segment_interval) => {}
            _ = self.wake.notified() => {}
        }
    }

    /// After a gap, start a new generation if the database is open.
    async fn restart_after_gap(self: &Arc<Self>) {
        let needs = {
            let state = self.lock_state();
            state.needs_new_generation
                && !matches!(state.health, Health::Fenced(_) | Health::Retrying { .. })
        };
        if !needs {
            return;
        }
        let db = self
            .db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|w| w.upgrade());
        let Some(db) = db else { return };
        let this = self.clone();
        let started = tokio::task::spawn_blocking(move || this.start_generation(&db)).await;
        match started {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(database = %self.name, error = %e,
                    "backup: cannot start a new generation")
            }
            Err(e) => tracing::error!(database = %self.name, error = %e,
                "backup: starting a new generation panicked"),
        }
    }

    /// One round: the generation's snapshot (and the seal of the generation before it) if not
    /// stored yet, then one segment of what is spooled.
    async fn ship_once(self: &Arc<Self>) -> Result<(), String> {
        let Some(generation) = self.lock_state().current.clone() else {
            return Ok(());
        };
        let snapshot = {
            let spool = self.lock_spool(&generation);
            if spool.dead.is_some() {
                return Ok(());
            }
            (!spool.snapshot_stored)
                .then(|| spool.snapshot.clone())
                .flatten()
        };
        if let Some((path, info)) = snapshot {
            self.seal_previous(&generation.id).await?;
            if self.is_fenced() {
                return Ok(());
            }
            self.upload_snapshot(&generation.id, &path, info).await?;
            let _ = std::fs::remove_file(&path);
            if self.is_fenced() {
                return Ok(());
            }
            let mut spool = self.lock_spool(&generation);
            spool.snapshot_stored = true;
            spool.snapshot = None;
            drop(spool);
            generation.uploaded.notify_all();
        }
        loop {
            let Some(batch) = self.take_batch(&generation) else {
                return Ok(());
            };
            // Copying and hashing megabytes is CPU work: not on the runtime's threads.
            let (name, gen_id, writer) = (
                self.name.clone(),
                generation.id.clone(),
                self.writer_id.clone(),
            );
            let encoded = tokio::task::spawn_blocking(move || {
                let body = batch.segment.encode();
                let header =
                    ObjectHeader::for_body(ObjectKind::Segment, &name, &gen_id, &writer, &body);
                let mut object = header.encode();
                object.extend_from_slice(&body);
                (batch, object, header.body_sha256)
            })
            .await;
            let Ok((batch, object, sha)) = encoded else {
                self.gap(&generation, "encoding a segment failed");
                return Ok(());
            };
            let result = self.upload_segment(&generation, &batch, object, sha).await;
            let mut spool = self.lock_spool(&generation);
            match result {
                // Fenced: nothing was stored, and the spool is gone with the history.
                Ok(false) => return Ok(()),
                Ok(true) => {
                    spool.bytes = spool.bytes.saturating_sub(batch.bytes);
                    if let Some(last) = batch.segment.txns.last() {
                        spool.stored = last.txn;
                        spool.stored_commit_ms = Some(last.commit_ms);
                    }
                    drop(spool);
                    generation.uploaded.notify_all();
                }
                Err(e) => {
                    // Put the transactions back in front, in order, for the next attempt (the
                    // same key: if this attempt did land, the retry recognizes our object).
                    if spool.dead.is_none() {
                        for t in batch.segment.txns.into_iter().rev() {
                            spool.txns.push_front(t);
                        }
                    }
                    return Err(e);
                }
            }
            // In async mode one segment per interval, except that what was left behind by a cut
            // at a second boundary goes too; sync mode (and a full spool) go on.
            let more = {
                let spool = self.lock_spool(&generation);
                let cut_at_second = spool.txns.front().is_some_and(|next| {
                    batch.segment.txns.last().is_some_and(|last| {
                        commit_second(next.commit_ms) != commit_second(last.commit_ms)
                    })
                });
                !spool.txns.is_empty()
                    && (self.config.mode == BackupMode::Sync
                        || cut_at_second
                        || spool.bytes >= self.config.segment_bytes)
            };
            if !more {
                return Ok(());
            }
        }
    }

    fn take_batch(&self, generation: &Generation) -> Option<Batch> {
        let mut spool = self.lock_spool(generation);
        if spool.dead.is_some() || spool.txns.is_empty() {
            return None;
        }
        let mut txns = Vec::new();
        let mut bytes = 0;
        // A segment never straddles a wall-clock second: it is deduplicated (restorable only at
        // its end), so this keeps "restore to second T" exact.
        let second = spool.txns.front().map(|t| commit_second(t.commit_ms));
        while let Some(t) = spool.txns.front() {
            let size = txn_bytes(t);
            if !txns.is_empty()
                && (bytes + size > self.config.segment_bytes
                    || Some(commit_second(t.commit_ms)) != second)
            {
                break;
            }
            bytes += size;
            if let Some(t) = spool.txns.pop_front() {
                txns.push(t);
            }
        }
        Some(Batch {
            segment: format::Segment {
                page_size: spool.page_size,
                txns,
                deduplicated: true,
            },
            bytes,
        })
    }

    /// Puts one segment. `Ok(true)`: it is in the store; `Ok(false)`: fenced instead.
    async fn upload_segment(
        &self,
        generation: &Generation,
        batch: &Batch,
        object: Vec<u8>,
        body_sha256: [u8; 32],
    ) -> Result<bool, String> {
        let Some((first, last)) = batch.segment.range() else {
            return Ok(true);
        };
        let key = format::segment_key(&self.name, &generation.id, first);
        let created = self
            .put_create(&key, object)
            .await
            .map_err(|e| format!("PUT {key}: {e}"))?;
        if created {
            return Ok(true);
        }
        // The key exists: ours (an earlier attempt landed though its answer was lost) or
        // another server's (fenced).
        let header = self.read_header(&key).await?;
        if header.kind == ObjectKind::Segment
            && header.writer_id == self.writer_id
            && header.body_sha256 == body_sha256
        {
            return Ok(true);
        }
        self.fence(format!(
            "transactions {first}..={last} of generation {} were already written by another \
             server (writer {}, {:?})",
            generation.id, header.writer_id, header.kind
        ));
        Ok(false)
    }

    /// Seals the newest generation before `current` (if it is not sealed yet), so a server
    /// still writing there is fenced.
    async fn seal_previous(&self, current: &GenerationId) -> Result<(), String> {
        let prefix = StorePath::from(format::db_prefix(&self.name));
        let listing = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| format!("LIST {prefix}: {e}"))?;
        let previous = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|f| GenerationId::parse(f).ok()))
            .filter(|g| g < current)
            .max();
        let Some(previous) = previous else {
            return Ok(());
        };
        for _attempt in 0..8 {
            let seg_prefix = StorePath::from(format::segments_prefix(&self.name, &previous));
            let mut stream = self.store.list(Some(&seg_prefix));
            let mut newest: Option<(u64, String)> = None;
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(|e| format!("LIST {seg_prefix}: {e}"))?;
                let key = meta.location.to_string();
                if let Some(format::ObjectKey::Segment { first, .. }) =
                    format::ObjectKey::parse(&key)
                {
                    if newest.as_ref().is_none_or(|(f, _)| first > *f) {
                        newest = Some((first, key));
                    }
                }
            }
            let next = match &newest {
                None => 1,
                Some((_, key)) => {
                    let got = self
                        .store
                        .get(&StorePath::from(key.as_str()))
                        .await
                        .map_err(|e| format!("GET {key}: {e}"))?;
                    let bytes = got.bytes().await.map_err(|e| format!("GET {key}: {e}"))?;
                    let (header, body) =
                        format::decode_object(&bytes).map_err(|e| format!("{key}: {e}"))?;
                    if header.kind == ObjectKind::Seal {
                        return Ok(());
                    }
                    let head =
                        format::Segment::decode_head(body).map_err(|e| format!("{key}: {e}"))?;
                    head.last_txn + 1
                }
            };
            let body = format::Seal {
                next_generation: Some(current.clone()),
                sealed_ms: now_ms(),
            }
            .encode();
            let object = format::encode_object(
                ObjectKind::Seal,
                &self.name,
                &previous,
                &self.writer_id,
                &body,
            );
            let key = format::segment_key(&self.name, &previous, next);
            if self
                .put_create(&key, object)
                .await
                .map_err(|e| format!("PUT {key}: {e}"))?
            {
                tracing::info!(database = %self.name, generation = %previous, next_txn = next,
                    "backup: sealed the previous generation");
                return Ok(());
            }
            // Somebody wrote that key meanwhile (the server still writing there): look again.
        }
        Err(format!(
            "cannot seal generation {previous}: another server keeps writing it"
        ))
    }

    async fn upload_snapshot(
        &self,
        generation: &GenerationId,
        path: &std::path::Path,
        info: skylite_engine::SnapshotInfo,
    ) -> Result<(), String> {
        let head = format::SnapshotHead {
            page_size: info.page_size,
            db_pages: info.db_pages,
            txn: 0,
            taken_ms: now_ms(),
        };
        let key = format::snapshot_key(&self.name, generation, 0);
        let file_len = u64::from(info.db_pages) * u64::from(info.page_size);
        // Hash (and, when small, read) the file on a blocking thread.
        let (path_buf, head_bytes) = (path.to_path_buf(), head.encode());
        let small = file_len <= SINGLE_PUT_SNAPSHOT;
        let (sha, content) = tokio::task::spawn_blocking(move || {
            hash_snapshot(&path_buf, &head_bytes, file_len, small)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("read the snapshot copy: {e}"))?;
        let header = ObjectHeader {
            kind: ObjectKind::Snapshot,
            db_name: self.name.clone(),
            generation: generation.clone(),
            writer_id: self.writer_id.clone(),
            body_len: head.body_len(),
            body_sha256: sha,
        }
        .encode();
        if let Some(content) = content {
            let mut object = header;
            object.extend_from_slice(&content);
            if !self
                .put_create(&key, object)
                .await
                .map_err(|e| format!("PUT {key}: {e}"))?
            {
                let found = self.read_header(&key).await?;
                if found.writer_id != self.writer_id || found.body_sha256 != sha {
                    self.fence(format!("the snapshot {key} was written by another server"));
                }
            }
            return Ok(());
        }
        self.lock_state().puts += 1;
        let upload = self
            .store
            .put_multipart(&StorePath::from(key.as_str()))
            .await
            .map_err(|e| format!("PUT {key}: {e}"))?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, SNAPSHOT_PART);
        writer.write(&header);
        writer.write(&head.encode());
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("read the snapshot copy: {e}"))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = file_len;
        while left > 0 {
            use tokio::io::AsyncReadExt;
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("read the snapshot copy: {e}"))?;
            if n == 0 {
                return Err("the snapshot copy is shorter than announced".into());
            }
            let n = n.min(left as usize);
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| format!("PUT {key}: {e}"))?;
            writer.write(buf.get(..n).unwrap_or_default());
            left -= n as u64;
        }
        writer
            .finish()
            .await
            .map_err(|e| format!("PUT {key}: {e}"))?;
        Ok(())
    }
}

/// SHA-256 of a snapshot body (head + file), and the body itself when `keep` is set.
fn hash_snapshot(
    path: &std::path::Path,
    head: &[u8],
    file_len: u64,
    keep: bool,
) -> std::io::Result<([u8; 32], Option<Bytes>)> {
    use sha2::Digest;
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    hasher.update(head);
    let mut kept = keep.then(|| {
        let mut v = Vec::with_capacity(head.len() + file_len as usize);
        v.extend_from_slice(head);
        v
    });
    let mut file = std::fs::File::open(path)?.take(file_len);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        if let Some(v) = kept.as_mut() {
            v.extend_from_slice(chunk);
        }
        total += n as u64;
    }
    if total != file_len {
        return Err(std::io::Error::other(
            "the snapshot copy is shorter than announced",
        ));
    }
    Ok((hasher.finalize().into(), kept.map(Bytes::from)))
}
