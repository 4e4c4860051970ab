//! What one benchmark cell measured: per-worker records ([`WorkerRecord`]) and their summary
//! ([`CellStats`]): successful requests per second, latency percentiles and errors.

use std::time::Duration;

/// What one worker (a connection or a thread) recorded during a cell.
#[derive(Debug, Default)]
pub struct WorkerRecord {
    /// Latency of every successful request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Requests that failed (transport error, non-200 status, error result, wrong result).
    pub errors: u64,
    /// The first failure, to show the user.
    pub first_error: Option<String>,
}

impl WorkerRecord {
    /// An empty record with room for `capacity` latencies.
    pub fn with_capacity(capacity: usize) -> Self {
        WorkerRecord {
            latencies_us: Vec::with_capacity(capacity),
            ..WorkerRecord::default()
        }
    }

    /// Records a successful request that took `took`.
    pub fn success(&mut self, took: Duration) {
        self.latencies_us
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
    }

    /// Records a failed request.
    pub fn failure(&mut self, why: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }
}

/// The summary of one cell (one workload at one concurrency, on one side).
#[derive(Debug, Clone)]
pub struct CellStats {
    /// Successful requests per second of wall time.
    pub per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Failed requests.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl CellStats {
    /// Merges the workers' records; `elapsed` is the wall time from the start signal until
    /// the last worker stopped.
    pub fn from_records(records: Vec<WorkerRecord>, elapsed: Duration) -> CellStats {
        let mut all: Vec<u32> =
            Vec::with_capacity(records.iter().map(|r| r.latencies_us.len()).sum());
        let mut errors = 0;
        let mut first_error = None;
        for r in records {
            all.extend_from_slice(&r.latencies_us);
            errors += r.errors;
            if first_error.is_none() {
                first_error = r.first_error;
            }
        }
        all.sort_unstable();
        let secs = elapsed.as_secs_f64();
        CellStats {
            per_sec: if secs > 0.0 {
                all.len() as f64 / secs
            } else {
                0.0
            },
            p50_ms: percentile_us(&all, 0.50) / 1000.0,
            p99_ms: percentile_us(&all, 0.99) / 1000.0,
            errors,
            first_error,
        }
    }
}

/// Nearest-rank percentile of sorted latencies (NaN when there are none).
fn percentile_us(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_us(&v, 0.50), 50.0);
        assert_eq!(percentile_us(&v, 0.99), 99.0);
        assert_eq!(percentile_us(&[5], 0.99), 5.0);
        assert!(percentile_us(&[], 0.5).is_nan());
    }

    #[test]
    fn records_merge() {
        let mut a = WorkerRecord::with_capacity(4);
        a.success(Duration::from_micros(1000));
        a.failure(|| "first".into());
        let mut b = WorkerRecord::default();
        b.success(Duration::from_micros(3000));
        b.failure(|| "second".into());
        let s = CellStats::from_records(vec![a, b], Duration::from_secs(2));
        assert_eq!(s.per_sec, 1.0);
        assert_eq!(s.errors, 2);
        assert_eq!(s.first_error.as_deref(), Some("first"));
        assert_eq!(s.p50_ms, 1.0);
        assert_eq!(s.p99_ms, 3.0);
    }
}
