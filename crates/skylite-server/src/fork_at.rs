//! Fork at a time: `POST /v1/admin/databases/NAME/fork {"to": "copy", "at": "RFC3339"}` makes
//! a new database `copy` from the continuous backup (`--backup`) as of `at`: every
//! transaction of NAME committed at or before that time, none after. The source need not be
//! open, or even exist any more, as long as it existed at that time (a database deleted after
//! `at` can be brought back this way). Without `at` the fork copies the live database
//! (`Databases::fork`).
//!
//! The file is rebuilt in a hidden `.fork-*` folder (removed at start if left behind) by
//! `skylite_backup::restore`, checked (`integrity_check`) and switched to WAL there, then
//! renamed into place by `Databases::install`, so the new database appears whole or not at
//! all. Downloads run on the async runtime; file writes, hashing and the check on blocking
//! threads.

use axum::http::StatusCode;
use skylite_backup::restore::{restore_database, RestoreError, RestoreOptions};
use skylite_backup::time::{format_ms, parse_rfc3339};
use skylite_engine::ErrorCode;

use crate::admin::on_worker;
use crate::app::App;
use crate::databases::{exists_error, validate_name};
use crate::error::ApiError;

/// Forks `from` as of `at` (RFC 3339) into the new database `to`.
pub async fn fork_at_time(app: &App, from: &str, to: &str, at: &str) -> Result<(), ApiError> {
    validate_name(from)?;
    validate_name(to)?;
    let at_ms = parse_rfc3339(at).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidTime,
            e.to_string(),
        )
    })?;
    let Some(backup) = app.config.backup.as_ref() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BackupNotConfigured,
            "a fork at a time needs continuous backup: start the server with --backup",
        ));
    };
    let store = backup.store.clone();
    let (check_to, tmp_to) = (to.to_owned(), to.to_owned());
    let tmp = on_worker(app, move |app| {
        if app.databases.exists(&check_to) {
            return Err(exists_error(&check_to));
        }
        let tmp = app.databases.temp_dir("fork", &tmp_to);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| ApiError::internal(format!("cannot create a temporary folder: {e}")))?;
        Ok(tmp)
    })
    .await?;
    let options = RestoreOptions {
        at_ms: Some(at_ms),
        ..RestoreOptions::default()
    };
    let restored = restore_database(&store, from, &options, &tmp.join("data.db")).await;
    let restored = match restored {
        Ok(restored) => restored,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(restore_error(from, at_ms, e));
        }
    };
    let (install_to, install_tmp) = (to.to_owned(), tmp.clone());
    let installed = on_worker(app, move |app| {
        app.databases.install(&install_to, &install_tmp)
    })
    .await;
    if let Err(e) = installed {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        return Err(e);
    }
    tracing::info!(
        from,
        to,
        at = %format_ms(at_ms),
        generation = %restored.generation,
        txn = restored.txn,
        "forked database from the backup"
    );
    Ok(())
}

/// What a client hears when the backup cannot give the fork.
fn restore_error(from: &str, at_ms: u64, e: RestoreError) -> ApiError {
    match e {
        RestoreError::NotFound(_)
        | RestoreError::NoSnapshot { .. }
        | RestoreError::Deleted { .. }
        | RestoreError::InvalidName(_) => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::DatabaseNotFound,
            format!(
                "database {from:?} has no backup at {}: {e}",
                format_ms(at_ms)
            ),
        ),
        RestoreError::Store(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::BackupUnavailable,
            format!("the object store failed: {e}"),
        ),
        RestoreError::Exists(_) => exists_error(from),
        RestoreError::Format { .. } | RestoreError::Check { .. } | RestoreError::Io { .. } => {
            ApiError::internal(format!("fork from the backup failed: {e}"))
        }
    }
}
