//! `skylite restore`: rebuild databases from a continuous backup (`serve --backup`) into a data
//! folder, offline: every database, or one (`--db`), as of the newest backed-up transaction or
//! as of a time (`--at`). Deleted databases stay deleted unless `--include-deleted`.
//!
//! Credentials, region and endpoint come from the standard `AWS_*` variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`).

use std::path::PathBuf;
use std::time::Instant;

use skylite_backup::restore::{self, RestoreOptions};
use skylite_backup::{store, time};

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup: s3://BUCKET/PREFIX, as given to `serve --backup`.
    #[arg(long, env = "SKYLITE_RESTORE_FROM", value_name = "s3://BUCKET/PREFIX")]
    from: String,
    /// The data folder to restore into (created if missing); a database that exists in it
    /// already is never overwritten.
    #[arg(long, env = "SKYLITE_DATA_DIR")]
    data_dir: PathBuf,
    /// Restore only this database (default: every database in the backup).
    #[arg(long)]
    db: Option<String>,
    /// Restore as of this time (RFC 3339, e.g. 2026-12-01T10:00:00Z): every transaction
    /// committed at or before it, none after. Exact to the second; the backup keeps each
    /// page once per segment, so a time with a fraction of a second lands on the end of the
    /// last segment (never straddling a second) committed at or before it. Default: the
    /// newest backed-up transaction.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// Also restore databases that were deleted (their last state before deletion).
    #[arg(long)]
    include_deleted: bool,
    /// Downloads in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    parallelism: u16,
}

/// Runs `skylite restore`.
pub fn run(args: RestoreArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let at_ms = match &args.at {
        Some(text) => Some(time::parse_rfc3339(text)?),
        None => None,
    };
    let store = store::open_from_env(&args.from)?;
    let options = RestoreOptions {
        at_ms,
        include_deleted: args.include_deleted,
        parallelism: usize::from(args.parallelism),
    };
    let started = Instant::now();
    let restored = runtime.block_on(restore::restore_all(
        &store,
        &args.data_dir,
        args.db.as_deref(),
        &options,
    ))?;
    let seconds = started.elapsed().as_secs_f64();
    if restored.is_empty() {
        println!(
            "nothing to restore: {} holds no database{}",
            args.from,
            at_ms.map_or(String::new(), |at| format!(
                " that existed at {}",
                time::format_ms(at)
            ))
        );
        return Ok(());
    }
    let mut bytes = 0u64;
    for r in &restored {
        bytes += r.bytes_downloaded;
        let committed = r.last_commit_ms.map_or(String::new(), |ms| {
            format!(", committed {}", time::format_ms(ms))
        });
        println!(
            "restored {}: generation {}, transaction {}{committed}; {} pages of {} bytes",
            r.name, r.generation, r.txn, r.db_pages, r.page_size
        );
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "{} database(s) into {}: {mb:.1} MB downloaded in {seconds:.2} s ({:.0} MB/s)",
        restored.len(),
        args.data_dir.display(),
        mb / seconds.max(1e-9)
    );
    Ok(())
}

/// Restore-on-start for `serve --backup`: a data folder without any database is filled from
/// the backup (every live database, newest state) before the server opens it; a folder that
/// has databases is left alone.
pub async fn restore_on_start(
    backup: &skylite_server::config::BackupSettings,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let started = Instant::now();
    let restored = restore::restore_if_empty(&backup.store, data_dir, &RestoreOptions::default())
        .await
        .context("restore on start from the backup")?;
    let Some(restored) = restored else {
        return Ok(());
    };
    for r in &restored {
        tracing::info!(
            database = %r.name,
            generation = %r.generation,
            txn = r.txn,
            committed = %r.last_commit_ms.map(time::format_ms).unwrap_or_default(),
            "restored from the backup on start"
        );
    }
    tracing::info!(
        databases = restored.len(),
        seconds = started.elapsed().as_secs_f64(),
        "empty data folder: restored {} database(s) from the backup {}",
        restored.len(),
        backup.url
    );
    Ok(())
}
