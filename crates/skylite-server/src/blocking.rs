//! Hands blocking work (everything that touches SQLite) from async handlers to the engine's
//! worker pool ([`skylite_engine::Workers`]) and awaits the result; and lets blocking code feed
//! async channels without pinning a worker while the receiver is slow ([`send`]), or, for
//! clients that may stall, through a byte-bounded [`pipe`] whose sender gives up after a send
//! timeout or as soon as its transaction's write lock is revoked.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use skylite_engine::workers::blocking_section;
use skylite_engine::{LockWatch, Workers};
use tokio::sync::mpsc;

/// The job never reported back (it panicked; the pool survives that).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the worker running this request failed")]
pub struct WorkerGone;

/// Runs `f` on a pool worker and waits for its result without blocking the async worker.
pub async fn run<T, F>(workers: &Workers, f: F) -> Result<T, WorkerGone>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The caller's span (the request and its id) goes along, so the worker's logs carry it.
    let span = tracing::Span::current();
    workers.execute(move || {
        let _entered = span.enter();
        let _ = tx.send(f());
    });
    rx.await.map_err(|_| WorkerGone)
}

/// Sends from blocking code into an async channel. A full channel means the client reads
/// slowly: the wait is marked as blocking so the pool keeps serving others meanwhile. Returns
/// false if the receiver is gone.
pub fn send<T>(tx: &mpsc::Sender<T>, item: T) -> bool {
    match tx.try_send(item) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(item)) => {
            let _blocked = blocking_section();
            tx.blocking_send(item).is_ok()
        }
    }
}

/// How long a blocked sender sleeps between checks of its give-up conditions.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Why a [`PipeSender::send`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The receiver is gone (the client disconnected or closed the cursor).
    Gone,
    /// The receiver took nothing for the send timeout: the client stopped reading.
    Stalled,
    /// The connection's hold on the write lock was revoked while it waited (a writer waited
    /// past the transaction timeout): the transaction must roll back now.
    Revoked,
}

/// When a blocked sender gives up besides the receiver going away.
#[derive(Clone)]
pub struct SendLimits {
    /// Give up when the receiver has taken nothing for this long while the sender waits.
    pub stall_timeout: Duration,
    /// Give up as soon as this hold on the write lock is revoked.
    pub watch: Option<LockWatch>,
}

struct PipeState {
    /// Bytes sent and not yet taken.
    bytes: usize,
    /// When the receiver last took something (or the pipe was made).
    last_taken: Instant,
    /// The receiver was dropped.
    closed: bool,
}

struct PipeShared {
    state: Mutex<PipeState>,
    taken: Condvar,
    capacity: usize,
}

impl PipeShared {
    fn state(&self) -> MutexGuard<'_, PipeState> {
        // Every update is a plain assignment: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A channel from blocking code to async code that bounds the *bytes* in flight, not the
/// number of items (an item may be a 10 MiB row or a 10-byte one), and whose blocking sender
/// gives up instead of waiting forever on a client that stopped reading ([`SendLimits`]).
pub fn pipe<T>(capacity_bytes: usize) -> (PipeSender<T>, PipeReceiver<T>) {
    let shared = Arc::new(PipeShared {
        state: Mutex::new(PipeState {
            bytes: 0,
            last_taken: Instant::now(),
            closed: false,
        }),
        taken: Condvar::new(),
        capacity: capacity_bytes.max(1),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    (
        PipeSender {
            tx,
            shared: shared.clone(),
        },
        PipeReceiver { rx, shared },
    )
}

/// The blocking end of a [`pipe`].
pub struct PipeSender<T> {
    tx: mpsc::UnboundedSender<(T, usize)>,
    shared: Arc<PipeShared>,
}

impl<T> PipeSender<T> {
    /// Sends `item`, which is about `size` bytes. Waits (marked as blocking, so the pool keeps
    /// serving others) while the pipe holds its capacity; one item always fits in an empty
    /// pipe. Gives up per `limits`.
    pub fn send(&self, item: T, size: usize, limits: &SendLimits) -> Result<(), SendError> {
        let mut state = self.shared.state();
        let mut blocked = None;
        let mut waiting_since: Option<Instant> = None;
        loop {
            if state.closed || self.tx.is_closed() {
                return Err(SendError::Gone);
            }
            if state.bytes == 0 || state.bytes.saturating_add(size) <= self.shared.capacity {
                break;
            }
            if limits.watch.as_ref().is_some_and(LockWatch::is_revoked) {
                return Err(SendError::Revoked);
            }
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if since.max(state.last_taken).elapsed() >= limits.stall_timeout {
                return Err(SendError::Stalled);
            }
            if blocked.is_none() {
                blocked = Some(blocking_section());
            }
            state = self
                .shared
                .taken
                .wait_timeout(state, WAIT_SLICE)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.bytes = state.bytes.saturating_add(size);
        drop(state);
        self.tx.send((item, size)).map_err(|_| SendError::Gone)
    }

    /// Sends `item` whatever the pipe holds (a last, small message such as the error that ends
    /// a cursor). Returns false if the receiver is gone.
    pub fn force_send(&self, item: T, size: usize) -> bool {
        let mut state = self.shared.state();
        state.bytes = state.bytes.saturating_add(size);
        drop(state);
        self.tx.send((item, size)).is_ok()
    }
}

/// The async end of a [`pipe`].
pub struct PipeReceiver<T> {
    rx: mpsc::UnboundedReceiver<(T, usize)>,
    shared: Arc<PipeShared>,
}

impl<T> PipeReceiver<T> {
    fn took(&self, size: usize) {
        let mut state = self.shared.state();
        state.bytes = state.bytes.saturating_sub(size);
        state.last_taken = Instant::now();
        drop(state);
        self.shared.taken.notify_all();
    }

    /// The next item; `None` once the sender is gone and everything was taken.
    pub async fn recv(&mut self) -> Option<T> {
        let (item, size) = self.rx.recv().await?;
        self.took(size);
        Some(item)
    }

    /// The next item if one is ready.
    pub fn try_recv(&mut self) -> Result<T, mpsc::error::TryRecvError> {
        let (item, size) = self.rx.try_recv()?;
        self.took(size);
        Ok(item)
    }

    /// True once the sender is gone and nothing is left.
    pub fn is_finished(&self) -> bool {
        self.rx.is_closed() && self.rx.is_empty()
    }
}

impl<T> Drop for PipeReceiver<T> {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.taken.notify_all();
    }
}
