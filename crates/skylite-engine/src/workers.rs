//! The threads that run SQLite work: a small pool that grows only while its threads are blocked.
//!
//! Every request runs a little blocking SQLite work. Handing each one to a fresh thread of a
//! large pool (tokio's `spawn_blocking`) costs two context switches and a crowd of runnable
//! threads per request; on a small machine that, not SQLite, is where the time goes. Here a
//! fixed number of *core* workers take jobs from one queue and, while the queue is busy, never
//! sleep.
//!
//! A job that must wait for something other than the CPU (the write lock, a group-commit fsync,
//! a slow client reading a cursor) first enters a [`blocking_section`]. If the caller is a pool
//! worker, the pool starts a temporary worker so that the number of workers able to run jobs
//! stays at the core size; temporary workers leave once the queue is empty. A transaction
//! waiting for the write lock can therefore never starve the reads queued behind it, and group
//! commit still sees every concurrent writer.
//!
//! A job that simply runs long (a runaway statement, noticed by the statement's progress
//! handler after [`LONG_RUNNING_AFTER`]) leaves the core the same way, through
//! [`mark_long_running`], until [`end_long_running`]: a handful of CPU-bound statements can
//! then no longer occupy every core worker while short requests queue behind them. At most
//! [`Workers`]' long-running cap of jobs leave the core at once (beyond it a long job keeps
//! its core slot), and the pool never exceeds its `max` threads.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a temporary worker waits for more work before it leaves.
const TEMP_WORKER_LINGER: Duration = Duration::from_millis(200);

/// How long a job may run before it counts as long-running and leaves the core (see
/// [`mark_long_running`]). Short enough that queued requests barely notice a runaway
/// statement, long enough that ordinary statements never pay for a thread start.
pub const LONG_RUNNING_AFTER: Duration = Duration::from_millis(150);

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads alive.
    total: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads inside a blocking section (long-running jobs included).
    blocked: usize,
    /// Jobs that ran past [`LONG_RUNNING_AFTER`] and left the core.
    long_running: usize,
    shutdown: bool,
}

struct Inner {
    state: Mutex<State>,
    work: Condvar,
    core: usize,
    max: usize,
    /// Most jobs that may leave the core for running long, at once.
    long_running_cap: usize,
    name: String,
}

/// Jobs that panicked, in every pool of this process. The pool survives a panicking job, so
/// without this count a panic reachable from input would go unnoticed (tests assert it is 0).
static JOB_PANICS: AtomicUsize = AtomicUsize::new(0);

/// How many jobs have panicked on any worker pool of this process so far.
pub fn job_panics() -> usize {
    JOB_PANICS.load(Ordering::SeqCst)
}

thread_local! {
    static CURRENT_POOL: RefCell<Option<Weak<Inner>>> = const { RefCell::new(None) };
    /// The blocking section of the job on this thread while it counts as long-running.
    static LONG_RUNNING: RefCell<Option<BlockingSection>> = const { RefCell::new(None) };
}

/// A pool of threads for blocking work.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("core", &self.inner.core)
            .field("max", &self.inner.max)
            .finish()
    }
}

impl Workers {
    /// A pool of `core` workers that may grow to `max` while workers are blocked or run long.
    /// At most `4 × core` (at least 16) long-running jobs leave the core at once.
    pub fn new(name: &str, core: usize, max: usize) -> Self {
        let core = core.max(1);
        Workers {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                core,
                max: max.max(core),
                long_running_cap: (core * 4).max(16),
                name: name.to_owned(),
            }),
        }
    }

    /// A pool sized for this machine: twice the number of CPUs (at least 4) core workers.
    pub fn for_this_machine(name: &str) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Workers::new(name, (cpus * 2).max(4), 1024)
    }

    /// Queues `job` to run on a worker.
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        let mut state = self.inner.lock();
        state.jobs.push_back(Box::new(job));
        if state.idle > 0 {
            self.inner.work.notify_one();
        } else if state.total - state.blocked.min(state.total) < self.inner.core
            && state.total < self.inner.max
        {
            state.total += 1;
            drop(state);
            self.inner.spawn_worker();
        }
    }

    /// Number of threads alive (for tests and stats).
    pub fn threads(&self) -> usize {
        self.inner.lock().total
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under panics (jobs run outside the lock).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn_worker(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || worker_loop(weak));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a worker thread");
            self.lock().total -= 1;
        }
    }
}

fn worker_loop(weak: Weak<Inner>) {
    CURRENT_POOL.with(|c| *c.borrow_mut() = Some(weak.clone()));
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let job = {
            let mut state = inner.lock();
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break Some(job);
                }
                if state.shutdown {
                    break None;
                }
                // Temporary workers (beyond the core size, not counting blocked ones) leave
                // after a short linger; core workers wait for work.
                let runnable = state.total - state.blocked.min(state.total);
                state.idle += 1;
                if runnable > inner.core {
                    let (s, timeout) = inner
                        .work
                        .wait_timeout(state, TEMP_WORKER_LINGER)
                        .unwrap_or_else(|p| p.into_inner());
                    state = s;
                    state.idle -= 1;
                    if timeout.timed_out() && state.jobs.is_empty() {
                        break None;
                    }
                } else {
                    state = inner.work.wait(state).unwrap_or_else(|p| p.into_inner());
                    state.idle -= 1;
                }
            }
        };
        let Some(job) = job else {
            inner.lock().total -= 1;
            return;
        };
        drop(inner);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
            JOB_PANICS.fetch_add(1, Ordering::SeqCst);
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(not a string)");
            tracing::error!(panic = message, "a worker job panicked; the worker goes on");
        }
        // A job that ran long is back in the core once it is done, whatever it forgot.
        end_long_running();
    }
}

/// Marks the current thread as blocked until the guard drops. Inside a pool worker this keeps
/// the pool's runnable worker count at its core size by starting a temporary worker if needed.
/// Anywhere else it does nothing.
pub fn blocking_section() -> BlockingSection {
    let pool = CURRENT_POOL.with(|c| c.borrow().as_ref().and_then(Weak::upgrade));
    if let Some(inner) = &pool {
        let mut state = inner.lock();
        state.blocked += 1;
        let runnable = state.total - state.blocked.min(state.total);
        if runnable < inner.core && state.total < inner.max && !state.jobs.is_empty() {
            state.total += 1;
            drop(state);
            inner.spawn_worker();
        }
    }
    BlockingSection {
        pool,
        long_running: false,
    }
}

/// Called (cheaply, repeatedly) by a job that has run past [`LONG_RUNNING_AFTER`]: the first
/// call moves it out of the core, as a [`blocking_section`] would, so that the pool starts
/// another worker for queued jobs; [`end_long_running`] moves it back. Does nothing outside a
/// pool worker, when the job is already marked, or when the pool's long-running cap is reached.
pub fn mark_long_running() {
    LONG_RUNNING.with(|slot| {
        let Ok(mut slot) = slot.try_borrow_mut() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let pool = CURRENT_POOL.with(|c| c.borrow().as_ref().and_then(Weak::upgrade));
        let Some(inner) = pool else {
            return;
        };
        {
            let mut state = inner.lock();
            if state.long_running >= inner.long_running_cap {
                return;
            }
            state.long_running += 1;
        }
        tracing::debug!("a job runs long; it leaves the core workers");
        let mut section = blocking_section();
        section.long_running = true;
        *slot = Some(section);
    });
}

/// Ends what [`mark_long_running`] started (at the end of each statement). Cheap when the job
/// was not marked.
pub fn end_long_running() {
    let section = LONG_RUNNING.with(|slot| slot.try_borrow_mut().ok().and_then(|mut s| s.take()));
    drop(section);
}

/// See [`blocking_section`].
pub struct BlockingSection {
    pool: Option<Arc<Inner>>,
    /// Opened by [`mark_long_running`]: also counted in `long_running`.
    long_running: bool,
}

impl Drop for BlockingSection {
    fn drop(&mut self) {
        if let Some(inner) = &self.pool {
            let mut state = inner.lock();
            state.blocked = state.blocked.saturating_sub(1);
            if self.long_running {
                state.long_running = state.long_running.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn runs_jobs_and_survives_panics() {
        let pool = Workers::new("t", 2, 8);
        let (tx, rx) = mpsc::channel();
        let panics_before = job_panics();
        pool.execute(|| panic!("boom"));
        for i in 0..100 {
            let tx = tx.clone();
            pool.execute(move || tx.send(i).unwrap());
        }
        let mut got: Vec<i32> = (0..100).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(pool.threads() <= 2);
        // The panic is counted once its unwinding is over (other tests of this binary may
        // panic jobs too: at least one more).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while job_panics() == panics_before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(job_panics() > panics_before);
    }

    #[test]
    fn a_long_running_job_leaves_the_core_and_the_pool_stays_capped() {
        // One core worker, at most 3 threads.
        let pool = Workers::new("t", 1, 3);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (started_tx, started_rx) = mpsc::channel();
        let long_job = |rx: Arc<Mutex<mpsc::Receiver<()>>>, started: mpsc::Sender<()>| {
            move || {
                // What a statement's progress handler does after LONG_RUNNING_AFTER (again
                // and again: only the first call counts).
                mark_long_running();
                mark_long_running();
                started.send(()).unwrap();
                let _ = rx.lock().unwrap().recv();
            }
        };
        for _ in 0..2 {
            pool.execute(long_job(release_rx.clone(), started_tx.clone()));
            started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        // A short job queued behind the long ones still runs.
        let (tx, rx) = mpsc::channel();
        pool.execute(move || tx.send(()).unwrap());
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a queued job ran while long ones held the core worker");
        // More long jobs never take the pool past its maximum.
        for _ in 0..4 {
            pool.execute(long_job(release_rx.clone(), started_tx.clone()));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(pool.threads() <= 3, "threads: {}", pool.threads());
        for _ in 0..6 {
            release_tx.send(()).unwrap();
        }
        for _ in 0..4 {
            started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        // Once done, the jobs are back in the core and the pool shrinks to it.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.threads() > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(pool.threads() <= 1, "threads: {}", pool.threads());
        assert_eq!(pool.inner.lock().long_running, 0);
    }

    #[test]
    fn blocked_workers_do_not_starve_the_queue() {
        // Two core workers both block (as if waiting for the write lock) until a job queued
        // after them runs: without temporary workers this would deadlock.
        let pool = Workers::new("t", 2, 8);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let rx = release_rx.clone();
            let done = done.clone();
            pool.execute(move || {
                let _blocked = blocking_section();
                rx.lock().unwrap().recv().unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        let (tx, rx) = mpsc::channel();
        pool.execute(move || {
            release_tx.send(()).unwrap();
            release_tx.send(()).unwrap();
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the queued job ran while the others were blocked");
        while done.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The temporary worker leaves once idle.
        std::thread::sleep(TEMP_WORKER_LINGER * 3);
        assert!(pool.threads() <= 2, "threads: {}", pool.threads());
    }
}
