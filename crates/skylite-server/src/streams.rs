//! The registry of live Hrana-over-HTTP streams of one database, and their expiry.
//!
//! A stream is a [`Session`] plus the sequence number its next baton must carry. Streams wait
//! here between requests. A request checks its stream out by locking the entry (an async
//! mutex, so a second request with the same baton queues instead of racing) and hands the
//! guard to a blocking thread that runs the SQL.
//!
//! The reaper ([`Streams::reap`]) runs every few hundred milliseconds: it drops streams idle
//! longer than the idle timeout (rolling back their transactions and leaving a tombstone so the
//! client learns *why* with `STREAM_EXPIRED`), and it rolls back idle transactions whose write
//! lock was revoked because they held it past the transaction timeout while others waited.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skylite_engine::{Database, Session};
use tokio::sync::Mutex as AsyncMutex;

/// Most tombstones kept (oldest dropped first).
const MAX_TOMBSTONES: usize = 10_000;
/// How long a tombstone explains an expiry.
const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);

/// One live stream.
pub struct StreamEntry {
    /// The engine side.
    pub session: Session,
    /// The sequence number the next baton must carry.
    pub seq: u64,
    /// When the last request on it finished.
    pub last_used: Instant,
    /// Set by the reaper when it expires the stream; a request that was already waiting for
    /// the lock must not go on with it.
    pub expired: bool,
}

/// A shared, lockable stream.
pub type SharedStream = Arc<AsyncMutex<StreamEntry>>;

/// The streams of one database.
pub struct Streams {
    db: Database,
    live: Mutex<HashMap<u64, SharedStream>>,
    tombstones: Mutex<HashMap<u64, (&'static str, String, Instant)>>,
    next_id: AtomicU64,
    idle_timeout: Duration,
}

impl Streams {
    /// An empty registry for `db`.
    pub fn new(db: Database, idle_timeout: Duration) -> Self {
        // Start ids at a random point so ids of a restarted server do not collide with the
        // batons of the previous run (a collision would only resume a stateless stream, but
        // there is no reason to invite it).
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        Streams {
            db,
            live: Mutex::new(HashMap::new()),
            tombstones: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(u64::from_le_bytes(seed) >> 1),
            idle_timeout,
        }
    }

    /// The database these streams run on.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// A fresh stream id.
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A new, unregistered stream entry.
    pub fn new_entry(&self, seq: u64) -> StreamEntry {
        StreamEntry {
            session: Session::new(self.db.clone()),
            seq,
            last_used: Instant::now(),
            expired: false,
        }
    }

    /// Looks up a live stream.
    pub fn get(&self, id: u64) -> Option<SharedStream> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Registers a stream (or replaces the entry under the same id).
    pub fn insert(&self, id: u64, stream: SharedStream) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, stream);
    }

    /// Forgets a stream.
    pub fn remove(&self, id: u64) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Forgets a stream the client closed, remembering that it did.
    pub fn close(&self, id: u64) {
        self.remove(id);
        self.bury(
            id,
            "STREAM_CLOSED",
            "the stream was closed by a `close` request; open a new stream".to_owned(),
        );
    }

    /// Why a stream that is no longer live went away, if it lost state.
    /// Returns the error code (`STREAM_EXPIRED` or `STREAM_CLOSED`) and the explanation.
    pub fn tombstone(&self, id: u64) -> Option<(&'static str, String)> {
        self.tombstones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|(code, why, _)| (*code, why.clone()))
    }

    /// Drops the tombstone of a stream (its loss was acknowledged).
    pub fn forget_tombstone(&self, id: u64) {
        self.tombstones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn bury(&self, id: u64, code: &'static str, why: String) {
        let mut t = self.tombstones.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() >= MAX_TOMBSTONES {
            t.retain(|_, (_, _, at)| at.elapsed() < TOMBSTONE_TTL);
            if t.len() >= MAX_TOMBSTONES {
                if let Some(oldest) = t.iter().min_by_key(|(_, (_, _, at))| *at).map(|(k, _)| *k) {
                    t.remove(&oldest);
                }
            }
        }
        t.insert(id, (code, why, Instant::now()));
    }

    /// Number of live streams.
    pub fn len(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True if no stream is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Expires idle streams and applies lock revocations to idle transactions. Blocking work
    /// (rollbacks) goes to the blocking pool.
    pub async fn reap(self: &Arc<Self>) {
        let candidates: Vec<(u64, SharedStream)> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let waiters = self.db.has_write_waiters();
        for (id, stream) in candidates {
            // A stream in use is not idle.
            let Ok(mut entry) = stream.clone().try_lock_owned() else {
                continue;
            };
            let idle = entry.last_used.elapsed();
            if idle >= self.idle_timeout {
                self.remove(id);
                entry.expired = true;
                let had_state = entry.session.is_stateful();
                let in_txn = entry.session.in_transaction();
                if had_state {
                    let why = if in_txn {
                        format!(
                            "the stream expired after {} s idle and its open transaction was rolled back",
                            self.idle_timeout.as_secs()
                        )
                    } else {
                        format!(
                            "the stream expired after {} s idle and its state \
                             (stored SQL or connection settings) was discarded",
                            self.idle_timeout.as_secs()
                        )
                    };
                    tracing::info!(stream = id, "{why}");
                    self.bury(id, "STREAM_EXPIRED", why);
                }
                tokio::task::spawn_blocking(move || {
                    entry.session.close();
                });
            } else if waiters && entry.session.in_transaction() {
                tokio::task::spawn_blocking(move || {
                    if entry.session.enforce_revocation() {
                        tracing::warn!(
                            stream = id,
                            "rolled back an idle transaction that held the write lock too long"
                        );
                    }
                });
            }
        }
    }

    /// Closes every stream (graceful shutdown): open transactions roll back.
    pub fn close_all(&self) {
        let all: Vec<SharedStream> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, v)| v)
            .collect();
        for stream in all {
            if let Ok(mut entry) = stream.try_lock_owned() {
                entry.session.close();
            }
        }
    }
}
