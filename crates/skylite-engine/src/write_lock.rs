//! The per-database write lock: at most one connection writes at a time, and the others wait
//! here, first come first served (a ticket queue), instead of inside SQLite's busy handler (which sleeps in coarse steps and
//! would cap a busy server at a few hundred writes per second).
//!
//! A connection takes the lock before its first writing statement and keeps it until it is back
//! in autocommit mode, so an interactive transaction holds it across requests. A holder that
//! keeps the lock longer than the transaction timeout while someone else waits is *revoked*:
//! its [`Revoker`] is flagged and its running statement interrupted, and the connection rolls
//! back at its next opportunity (see `Conn::enforce_revocation`), answering
//! `TRANSACTION_TIMEOUT`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::InterruptHandle;

use crate::{ErrorCode, ExecError};

/// The handle through which a waiting writer takes the lock back from a stalled holder.
pub struct Revoker {
    revoked: AtomicBool,
    interrupt: InterruptHandle,
}

impl Revoker {
    /// A revoker for the connection behind `interrupt`.
    pub fn new(interrupt: InterruptHandle) -> Self {
        Revoker {
            revoked: AtomicBool::new(false),
            interrupt,
        }
    }

    /// Whether the lock was taken away from this connection.
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    /// Clears the flag once the connection has rolled back.
    pub fn clear(&self) {
        self.revoked.store(false, Ordering::Release);
    }

    /// Sets the flag without interrupting (tests of the commit race).
    #[cfg(test)]
    pub(crate) fn revoke_flag_only(&self) {
        self.revoked.store(true, Ordering::Release);
    }

    fn revoke(&self) {
        self.revoked.store(true, Ordering::Release);
        self.interrupt.interrupt();
    }
}

struct Holder {
    conn_id: u64,
    since: Instant,
    revoker: Arc<Revoker>,
}

#[derive(Default)]
struct LockState {
    holder: Option<Holder>,
    /// The writers waiting, in arrival order, each with its own wake-up signal (so a release
    /// wakes the next writer only, not every waiter); the front one is served next.
    queue: VecDeque<(u64, Arc<Condvar>)>,
    next_ticket: u64,
}

impl LockState {
    /// Wakes the first writer in line (after a release, or when the one before it gave up).
    fn wake_front(&self) {
        if self.holder.is_none() {
            if let Some((_, signal)) = self.queue.front() {
                signal.notify_one();
            }
        }
    }
}

/// The lock itself. Waiters are served first come, first served: a ticket queue, so a newcomer
/// never barges ahead of writers already waiting (which could starve them past their
/// `max_wait` under steady load).
#[derive(Default)]
pub struct WriteLock {
    state: Mutex<LockState>,
}

impl WriteLock {
    fn state(&self) -> MutexGuard<'_, LockState> {
        // A panic while holding this mutex cannot leave the state inconsistent (every update is
        // a single assignment or queue operation), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the lock for `conn_id`, waiting at most `max_wait` behind the writers that came
    /// first; revokes a holder that has kept it longer than `txn_timeout` while this caller
    /// waits.
    pub fn acquire(
        &self,
        conn_id: u64,
        revoker: &Arc<Revoker>,
        txn_timeout: Duration,
        max_wait: Duration,
    ) -> Result<(), ExecError> {
        let start = Instant::now();
        let mut state = self.state();
        if let Some(h) = &state.holder {
            if h.conn_id == conn_id {
                return Ok(());
            }
        }
        if state.holder.is_none() && state.queue.is_empty() {
            state.holder = Some(Holder {
                conn_id,
                since: Instant::now(),
                revoker: revoker.clone(),
            });
            return Ok(());
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let signal = Arc::new(Condvar::new());
        state.queue.push_back((ticket, signal.clone()));
        // Waiting for another writer is not CPU work: let the pool run other jobs meanwhile.
        let _blocked = crate::workers::blocking_section();
        loop {
            match &state.holder {
                None if state.queue.front().is_some_and(|(t, _)| *t == ticket) => {
                    state.queue.pop_front();
                    state.holder = Some(Holder {
                        conn_id,
                        since: Instant::now(),
                        revoker: revoker.clone(),
                    });
                    return Ok(());
                }
                None => {}
                Some(h) if h.since.elapsed() >= txn_timeout && !h.revoker.is_revoked() => {
                    tracing::warn!(
                        held_ms = h.since.elapsed().as_millis() as u64,
                        "revoking a transaction that held the write lock past the timeout"
                    );
                    h.revoker.revoke();
                }
                Some(_) => {}
            }
            let waited = start.elapsed();
            if waited >= max_wait {
                state.queue.retain(|(t, _)| *t != ticket);
                // The writer behind this one may be first in line now.
                state.wake_front();
                return Err(ExecError::new(
                    ErrorCode::SQLITE_BUSY,
                    format!(
                        "database is locked: another transaction held the write lock for more than {} ms",
                        max_wait.as_millis()
                    ),
                ));
            }
            let slice = (max_wait - waited).min(Duration::from_millis(50));
            // Woken by a release when this writer is first in line; otherwise every slice, to
            // watch the holder's clock (revocation) and this writer's own deadline.
            state = signal
                .wait_timeout(state, slice)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Releases the lock if `conn_id` holds it.
    pub fn release(&self, conn_id: u64) {
        let mut state = self.state();
        if state.holder.as_ref().is_some_and(|h| h.conn_id == conn_id) {
            state.holder = None;
            state.wake_front();
        }
    }

    /// Whether writers are waiting for the lock right now.
    pub fn has_waiters(&self) -> bool {
        !self.state().queue.is_empty()
    }

    /// How many writers are waiting for the lock right now.
    pub fn waiters(&self) -> usize {
        self.state().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoker() -> Arc<Revoker> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        Arc::new(Revoker::new(conn.get_interrupt_handle()))
    }

    #[test]
    fn waiter_gets_lock_after_release_and_stalled_holder_is_revoked() {
        let lock = Arc::new(WriteLock::default());
        let (a, b) = (revoker(), revoker());
        lock.acquire(1, &a, Duration::from_secs(60), Duration::from_secs(1))
            .unwrap();
        // Re-entrant for the same connection.
        lock.acquire(1, &a, Duration::from_secs(60), Duration::from_secs(1))
            .unwrap();
        // A second connection times out while the first holds it (no revocation: long timeout).
        let err = lock
            .acquire(2, &b, Duration::from_secs(60), Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SQLITE_BUSY);
        assert!(!a.is_revoked());
        // With a short transaction timeout, the waiter revokes the holder.
        let lock2 = lock.clone();
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || {
            lock2.acquire(2, &b2, Duration::from_millis(10), Duration::from_secs(5))
        });
        while !a.is_revoked() {
            std::thread::sleep(Duration::from_millis(5));
        }
        lock.release(1);
        waiter.join().unwrap().unwrap();
        assert!(!lock.has_waiters());
        lock.release(2);
    }

    #[test]
    fn waiters_are_served_in_arrival_order_and_a_newcomer_does_not_barge() {
        let lock = Arc::new(WriteLock::default());
        let holder = revoker();
        lock.acquire(
            100,
            &holder,
            Duration::from_secs(60),
            Duration::from_secs(1),
        )
        .unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for id in 1..=5u64 {
            let (lock2, order2) = (lock.clone(), order.clone());
            let r = revoker();
            threads.push(std::thread::spawn(move || {
                lock2
                    .acquire(id, &r, Duration::from_secs(60), Duration::from_secs(10))
                    .unwrap();
                order2.lock().unwrap().push(id);
                std::thread::sleep(Duration::from_millis(5));
                lock2.release(id);
            }));
            while lock.waiters() < id as usize {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        lock.release(100);
        // A newcomer arriving while others wait queues behind them.
        let late = revoker();
        lock.acquire(6, &late, Duration::from_secs(60), Duration::from_secs(10))
            .unwrap();
        order.lock().unwrap().push(6);
        lock.release(6);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_queue() {
        let lock = Arc::new(WriteLock::default());
        let (a, b, c) = (revoker(), revoker(), revoker());
        lock.acquire(1, &a, Duration::from_secs(60), Duration::from_secs(1))
            .unwrap();
        let err = lock
            .acquire(2, &b, Duration::from_secs(60), Duration::from_millis(50))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SQLITE_BUSY);
        assert!(!lock.has_waiters());
        lock.release(1);
        // Nobody is stuck behind the departed ticket.
        lock.acquire(3, &c, Duration::from_secs(60), Duration::from_millis(100))
            .unwrap();
    }
}
