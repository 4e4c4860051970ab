//! Per-database limits: their JSON form in the admin API, their checks, and their file in the
//! database's folder (`<data-dir>/<name>/limits.json`).
//!
//! A database may have its own size limit (`max_size_bytes`), statement timeout
//! (`statement_timeout_ms`) and transaction timeout (`txn_timeout_ms`); a limit left out (or
//! `null`) falls back to the server's flag. They are set at creation (`POST
//! /v1/admin/databases` with `"limits": {...}`) or later (`PATCH /v1/admin/databases/{name}`
//! with `{"limits": {...}}`: a field given sets it, `null` clears it, a field left out is kept),
//! written durably to the folder before the answer, and applied to the open database at once
//! (each connection before its next statement). The engine enforces them
//! (`skylite_engine::DbLimits`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use skylite_engine::{fs_durable, DbLimits, ErrorCode};

use crate::error::ApiError;

/// The file holding a database's limits, in its folder.
pub const LIMITS_FILE: &str = "limits.json";

/// Smallest size limit accepted (a few pages of schema must fit).
pub const MIN_MAX_SIZE_BYTES: u64 = 64 * 1024;

/// Longest statement or transaction timeout accepted, in milliseconds (one day).
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// A database's limits as the admin API shows them and the limits file stores them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsJson {
    /// Largest database size in bytes; `null`: no limit.
    #[serde(default)]
    pub max_size_bytes: Option<u64>,
    /// Statement timeout in milliseconds (0: none); `null`: the server's `--statement-timeout`.
    #[serde(default)]
    pub statement_timeout_ms: Option<u64>,
    /// Transaction timeout in milliseconds; `null`: the server's `--txn-timeout`.
    #[serde(default)]
    pub txn_timeout_ms: Option<u64>,
}

/// A change to a database's limits: a field left out is kept, `null` clears it.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "present")]
    max_size_bytes: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    statement_timeout_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    txn_timeout_ms: Option<Option<u64>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`, by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl LimitsPatch {
    /// `current` with this change applied.
    pub fn apply(&self, current: LimitsJson) -> LimitsJson {
        LimitsJson {
            max_size_bytes: self.max_size_bytes.unwrap_or(current.max_size_bytes),
            statement_timeout_ms: self
                .statement_timeout_ms
                .unwrap_or(current.statement_timeout_ms),
            txn_timeout_ms: self.txn_timeout_ms.unwrap_or(current.txn_timeout_ms),
        }
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidLimit, message)
}

impl LimitsJson {
    /// Checks the values (400 `INVALID_LIMIT`).
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(bytes) = self.max_size_bytes {
            if bytes < MIN_MAX_SIZE_BYTES {
                return Err(invalid(format!(
                    "max_size_bytes must be at least {MIN_MAX_SIZE_BYTES} (got {bytes})"
                )));
            }
        }
        if let Some(ms) = self.statement_timeout_ms {
            if ms > MAX_TIMEOUT_MS {
                return Err(invalid(format!(
                    "statement_timeout_ms must be at most {MAX_TIMEOUT_MS} (0: no limit)"
                )));
            }
        }
        if let Some(ms) = self.txn_timeout_ms {
            if ms == 0 || ms > MAX_TIMEOUT_MS {
                return Err(invalid(format!(
                    "txn_timeout_ms must be between 1 and {MAX_TIMEOUT_MS}"
                )));
            }
        }
        Ok(())
    }

    /// The engine's form.
    pub fn to_engine(self) -> DbLimits {
        DbLimits {
            max_size_bytes: self.max_size_bytes,
            statement_timeout: self.statement_timeout_ms.map(Duration::from_millis),
            txn_timeout: self.txn_timeout_ms.map(Duration::from_millis),
        }
    }

    /// From the engine's form.
    pub fn from_engine(limits: DbLimits) -> LimitsJson {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        LimitsJson {
            max_size_bytes: limits.max_size_bytes,
            statement_timeout_ms: limits.statement_timeout.map(ms),
            txn_timeout_ms: limits.txn_timeout.map(ms),
        }
    }

    /// True if no limit of its own is set.
    pub fn is_empty(&self) -> bool {
        *self == LimitsJson::default()
    }
}

/// The limits file of the database folder `dir`.
pub fn file_in(dir: &Path) -> PathBuf {
    dir.join(LIMITS_FILE)
}

/// Reads the limits stored in the database folder `dir` (none stored: no limits of its own).
/// A file that cannot be read or parsed is logged at error level and its limits are not
/// applied: the database stays usable, and whoever runs the server sees why.
pub fn load(dir: &Path) -> LimitsJson {
    let path = file_in(dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LimitsJson::default(),
        Err(e) => {
            tracing::error!(file = %path.display(), "cannot read the database's limits: {e}");
            return LimitsJson::default();
        }
    };
    match serde_json::from_slice::<LimitsJson>(&bytes) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::error!(
                file = %path.display(),
                "the database's limits file is malformed and is ignored: {e}"
            );
            LimitsJson::default()
        }
    }
}

/// Stores `limits` in the database folder `dir`, durably (write, fsync, rename, fsync the
/// folder); no limits removes the file.
pub fn store(dir: &Path, limits: &LimitsJson) -> std::io::Result<()> {
    let path = file_in(dir);
    if limits.is_empty() {
        return match fs_durable::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
    }
    let bytes = serde_json::to_vec_pretty(limits).map_err(std::io::Error::other)?;
    fs_durable::write_file(&path, &bytes, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_keeps_sets_and_clears() {
        let current = LimitsJson {
            max_size_bytes: Some(1 << 20),
            statement_timeout_ms: Some(1000),
            txn_timeout_ms: None,
        };
        let patch: LimitsPatch =
            serde_json::from_str(r#"{"max_size_bytes": null, "txn_timeout_ms": 500}"#).unwrap();
        let next = patch.apply(current);
        assert_eq!(next.max_size_bytes, None);
        assert_eq!(next.statement_timeout_ms, Some(1000));
        assert_eq!(next.txn_timeout_ms, Some(500));
        assert!(serde_json::from_str::<LimitsPatch>(r#"{"max_size": 1}"#).is_err());
    }
}
