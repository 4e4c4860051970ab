//! `skylite bench`: load generator (placeholder until the benchmark lands).

/// Benchmark options.
#[derive(clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmark.
pub async fn run(_args: BenchArgs) -> Result<(), String> {
    Err("the benchmark is not built yet".into())
}
