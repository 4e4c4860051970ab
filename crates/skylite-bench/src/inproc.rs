//! The in-process baseline: the same engine, tables and requests as the server, called
//! directly from OS threads. Each request runs the way the server's pipeline handler runs it —
//! a fresh [`Session`], [`Session::handle`] for each request, then
//! [`Session::finish_pipeline`] (which waits for durability) — minus HTTP and JSON.
//!
//! Everything here blocks; call it from `spawn_blocking`, never from an async worker.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use skylite_engine::{Budget, Database, Durability, EngineConfig, Session};
use skylite_proto::StreamRequest;

use super::stats::{CellStats, WorkerRecord};
use super::workload::{self, Draw, Rng, Workload};

/// Opens the baseline database at `path` with the server's default engine settings.
pub fn open(path: &Path, durability: Durability) -> Result<Database, String> {
    let config = EngineConfig {
        durability,
        ..EngineConfig::default()
    };
    Database::open(path, config).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Runs one pipeline like the server does and returns its results.
fn run_pipeline(
    db: &Database,
    requests: &[StreamRequest],
) -> Result<Vec<skylite_proto::StreamResult>, String> {
    let mut session = Session::new(db.clone());
    let mut budget = Budget::new(db.config().max_response_bytes);
    let results: Vec<_> = requests
        .iter()
        .map(|r| session.handle(r, &mut budget))
        .collect();
    session
        .finish_pipeline()
        .map_err(|e| format!("{} ({})", e.message, e.code))?;
    Ok(results)
}

/// Creates and fills the tables.
pub fn setup(db: &Database, rows: u64) -> Result<(), String> {
    let results = run_pipeline(db, &workload::setup_requests(rows))?;
    workload::check_setup(&results, rows)
}

/// Runs `workload` on `threads` OS threads for `duration`.
pub fn run_cell(
    db: &Database,
    workload: Workload,
    threads: usize,
    duration: Duration,
    rows: u64,
    seed: u64,
) -> Result<CellStats, String> {
    let gate = Arc::new(Gate::default());
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let db = db.clone();
        let my_gate = gate.clone();
        let rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        let spawned = std::thread::Builder::new()
            .name(format!("bench-inproc-{i}"))
            .spawn(move || {
                if my_gate.wait() {
                    worker(&db, workload, duration, rows, rng)
                } else {
                    WorkerRecord::default()
                }
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                gate.open(false);
                for h in handles {
                    let _ = h.join();
                }
                return Err(format!("cannot start a benchmark thread: {e}"));
            }
        }
    }
    gate.open(true);
    let began = Instant::now();
    let mut records = Vec::with_capacity(threads);
    for h in handles {
        records.push(
            h.join()
                .map_err(|_| "an in-process benchmark thread panicked".to_string())?,
        );
    }
    Ok(CellStats::from_records(records, began.elapsed()))
}

fn worker(
    db: &Database,
    workload: Workload,
    duration: Duration,
    rows: u64,
    mut rng: Rng,
) -> WorkerRecord {
    let deadline = Instant::now() + duration;
    let mut record = WorkerRecord::with_capacity(1 << 14);
    while Instant::now() < deadline {
        let requests = Draw::new(workload, &mut rng, rows).to_requests();
        let began = Instant::now();
        let outcome = run_pipeline(db, &requests).and_then(|r| workload::check(workload, &r));
        let took = began.elapsed();
        match outcome {
            Ok(()) => record.success(took),
            Err(e) => record.failure(|| e),
        }
    }
    record
}

/// Holds the threads until every one of them exists, then lets them all go at once (or tells
/// them to give up).
#[derive(Default)]
struct Gate {
    state: Mutex<Option<bool>>,
    changed: Condvar,
}

impl Gate {
    /// Releases the waiting threads: to run (`true`) or to stop (`false`).
    fn open(&self, run: bool) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
        self.changed.notify_all();
    }

    /// Waits for [`Gate::open`] and returns its verdict.
    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(run) = *state {
                return run;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}
