//! The registry of live Hrana-over-HTTP streams of one database, and their expiry.
//!
//! A stream is a [`Session`] plus the sequence number its next baton must carry. Streams wait
//! here between requests. A request first *claims* its baton's sequence number
//! ([`Streams::claim`]: checked and advanced in one step under the registry's lock, so of two
//! requests carrying the same baton exactly one proceeds and the other gets `BATON_REUSED` at
//! once), then locks the entry (an async mutex, held while the SQL runs on a blocking thread).
//!
//! Every stream records the principal (credentials) that opened it; one principal may hold at
//! most `max_streams_per_principal` live streams on a database ([`Streams::register`]).
//!
//! The reaper ([`Streams::reap`]) runs every few hundred milliseconds: it drops streams idle
//! longer than the idle timeout (rolling back their transactions and leaving a tombstone so the
//! client learns *why* with `STREAM_EXPIRED`), and it rolls back idle transactions whose write
//! lock was revoked because they held it past the transaction timeout while others waited.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skylite_engine::{Database, ErrorCode, Session, Workers};
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

/// A stable id of the credentials a request came with (a hash of its token; all zero with auth
/// off). Batons are bound to it, and streams are counted per principal.
pub type PrincipalId = [u8; 16];

/// A registered stream.
struct Live {
    stream: SharedStream,
    owner: PrincipalId,
    /// The sequence number the next request must carry; advanced by [`Streams::claim`].
    next_seq: u64,
}

#[derive(Default)]
struct LiveMap {
    streams: HashMap<u64, Live>,
    per_owner: HashMap<PrincipalId, usize>,
}

impl LiveMap {
    fn remove(&mut self, id: u64) -> Option<Live> {
        let live = self.streams.remove(&id)?;
        if let Some(n) = self.per_owner.get_mut(&live.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_owner.remove(&live.owner);
            }
        }
        Some(live)
    }
}

/// What [`Streams::claim`] found.
pub enum Claim {
    /// The stream, with the baton's sequence number now used.
    Claimed(SharedStream),
    /// The stream is live but expects another sequence number: the baton was used already
    /// (or is being used right now by a concurrent request).
    Reused,
    /// No live stream has that id.
    Unknown,
}

/// Why [`Streams::register`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// The principal already holds its maximum of live streams on this database.
    Exhausted,
    /// A stream with that id is live already (a concurrent request resumed it first).
    Taken,
}

/// The streams of one database.
pub struct Streams {
    db: Database,
    live: Mutex<LiveMap>,
    tombstones: Mutex<HashMap<u64, (ErrorCode, String, Instant)>>,
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
            live: Mutex::new(LiveMap::default()),
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

    fn live(&self) -> std::sync::MutexGuard<'_, LiveMap> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up a live stream.
    pub fn get(&self, id: u64) -> Option<SharedStream> {
        self.live().streams.get(&id).map(|l| l.stream.clone())
    }

    /// Uses sequence number `seq` of stream `id`: if the stream is live and expects `seq`, it
    /// now expects `seq + 1` and is returned; a concurrent request with the same baton finds
    /// it advanced and gets [`Claim::Reused`].
    pub fn claim(&self, id: u64, seq: u64) -> Claim {
        let mut live = self.live();
        match live.streams.get_mut(&id) {
            None => Claim::Unknown,
            Some(l) if l.next_seq != seq => Claim::Reused,
            Some(l) => {
                l.next_seq = seq.wrapping_add(1);
                Claim::Claimed(l.stream.clone())
            }
        }
    }

    /// Registers a stream opened (or resumed) by `owner`, whose next request must carry
    /// `next_seq`. Refused if `id` is live already, or if `owner` holds `max_per_owner` live
    /// streams.
    pub fn register(
        &self,
        id: u64,
        stream: SharedStream,
        owner: PrincipalId,
        next_seq: u64,
        max_per_owner: usize,
    ) -> Result<(), RegisterError> {
        let mut live = self.live();
        if live.streams.contains_key(&id) {
            return Err(RegisterError::Taken);
        }
        let count = live.per_owner.get(&owner).copied().unwrap_or(0);
        if count >= max_per_owner {
            return Err(RegisterError::Exhausted);
        }
        live.per_owner.insert(owner, count + 1);
        live.streams.insert(
            id,
            Live {
                stream,
                owner,
                next_seq,
            },
        );
        Ok(())
    }

    /// Live streams `owner` holds on this database.
    pub fn count_of(&self, owner: &PrincipalId) -> usize {
        self.live().per_owner.get(owner).copied().unwrap_or(0)
    }

    /// Forgets a stream.
    pub fn remove(&self, id: u64) {
        self.live().remove(id);
    }

    /// Forgets a stream the client closed, remembering that it did.
    pub fn close(&self, id: u64) {
        self.remove(id);
        self.bury(
            id,
            ErrorCode::StreamClosed,
            "the stream was closed by a `close` request; open a new stream".to_owned(),
        );
    }

    /// Why a stream that is no longer live went away, if it lost state.
    /// Returns the error code (`STREAM_EXPIRED` or `STREAM_CLOSED`) and the explanation.
    pub fn tombstone(&self, id: u64) -> Option<(ErrorCode, String)> {
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

    fn bury(&self, id: u64, code: ErrorCode, why: String) {
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
        self.live().streams.len()
    }

    /// True if no stream is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Expires idle streams and applies lock revocations to idle transactions. Blocking work
    /// (rollbacks) goes to the SQL worker pool `workers`.
    pub async fn reap(self: &Arc<Self>, workers: &Workers) {
        let candidates: Vec<(u64, SharedStream)> = self
            .live()
            .streams
            .iter()
            .map(|(k, v)| (*k, v.stream.clone()))
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
                    self.bury(id, ErrorCode::StreamExpired, why);
                }
                workers.execute(move || {
                    entry.session.close();
                });
            } else if waiters && entry.session.in_transaction() {
                workers.execute(move || {
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
        let all: Vec<SharedStream> = {
            let mut live = self.live();
            live.per_owner.clear();
            live.streams.drain().map(|(_, v)| v.stream).collect()
        };
        for stream in all {
            if let Ok(mut entry) = stream.try_lock_owned() {
                entry.session.close();
            }
        }
    }
}
