//! Hands blocking work (everything that touches SQLite) from async handlers to the engine's
//! worker pool ([`skylite_engine::Workers`]) and awaits the result; and lets blocking code feed
//! async channels without pinning a worker while the receiver is slow.

use skylite_engine::workers::blocking_section;
use skylite_engine::Workers;
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
    workers.execute(move || {
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
