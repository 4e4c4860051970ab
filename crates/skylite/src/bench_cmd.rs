//! `skylite bench`: a thin entry to the load generator, which is its own binary
//! (`skylite-bench`, crate crates/skylite-bench) so that the server binary does not ship it.
//! It runs the `skylite-bench` next to this executable with the same arguments (the bench then
//! starts this `skylite` as its server), or says how to build it.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context};

/// Everything after `skylite bench`, passed on unchanged (`--help` included).
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    /// The options of `skylite-bench` (see `skylite bench --help`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "OPTIONS"
    )]
    args: Vec<OsString>,
}

/// Runs `skylite-bench` with `args` and returns its exit code.
pub fn run(args: BenchArgs) -> anyhow::Result<u8> {
    let bench = bench_binary()?;
    if !bench.is_file() {
        bail!(
            "the load generator is its own binary and {} is not there; build it with \
             `cargo build --release -p skylite-bench` (next to this skylite) and run \
             `skylite bench` again",
            bench.display()
        );
    }
    let status = std::process::Command::new(&bench)
        .args(&args.args)
        .status()
        .with_context(|| format!("cannot run {}", bench.display()))?;
    Ok(status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1))
}

/// `skylite-bench` in this executable's folder.
fn bench_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    Ok(exe.with_file_name(format!("skylite-bench{}", std::env::consts::EXE_SUFFIX)))
}
