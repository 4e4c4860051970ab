//! Engine errors: what can go wrong opening a database ([`OpenError`]) and running a statement
//! ([`ExecError`], carrying one of the [`ErrorCode`]s clients see: SQLite's extended result
//! codes such as `SQLITE_CONSTRAINT_UNIQUE`, or skylite's such as `TRANSACTION_TIMEOUT`).

use std::path::PathBuf;

use skylite_proto::Error as ProtoError;
pub use skylite_proto::{sqlite_code_name, ErrorCode};

/// Failure to open or prepare a database on disk.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data folder could not be created or read.
    #[error("cannot use data folder {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite refused to open or configure the file.
    #[error("cannot open database {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
}

/// Why a request could not run; always turned into a protocol [`ProtoError`] for the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ExecError {
    /// Stable machine-readable code (the wire form is [`ErrorCode::as_str`]).
    pub code: ErrorCode,
    /// Human-readable message (SQLite's own, where SQLite produced it).
    pub message: String,
}

impl ExecError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ExecError {
            code,
            message: message.into(),
        }
    }

    /// True for failures of the server or its disk rather than of the request (see
    /// [`ErrorCode::is_server_failure`]): HTTP answers them with a 5xx, and they are logged at
    /// error level.
    pub fn is_server_failure(&self) -> bool {
        self.code.is_server_failure()
    }

    /// A request that is malformed at the protocol level (bad `sql_id`, wrong arguments, ...).
    pub fn protocol(message: impl Into<String>) -> Self {
        ExecError::new(ErrorCode::Protocol, message)
    }

    /// The result would exceed the response-size limit.
    pub fn response_too_large(limit: usize) -> Self {
        ExecError::new(
            ErrorCode::ResponseTooLarge,
            format!(
                "the response would exceed the limit of {limit} bytes; \
                 fetch fewer rows at a time (LIMIT/OFFSET) or use a cursor"
            ),
        )
    }

    /// Converts a rusqlite error, keeping SQLite's message and extended code.
    pub fn from_sqlite(err: &rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::SqliteFailure(e, msg) => ExecError {
                code: ErrorCode::Sqlite(e.extended_code),
                message: msg.clone().unwrap_or_else(|| e.to_string()),
            },
            rusqlite::Error::MultipleStatement => ExecError::new(
                ErrorCode::SQLITE_ERROR,
                "the SQL text contains more than one statement; use `sequence` or a batch",
            ),
            rusqlite::Error::Utf8Error(_) | rusqlite::Error::NulError(_) => {
                ExecError::new(ErrorCode::SQLITE_ERROR, format!("invalid SQL text: {err}"))
            }
            other => ExecError::new(ErrorCode::SQLITE_ERROR, other.to_string()),
        }
    }
}

impl From<ExecError> for ProtoError {
    fn from(e: ExecError) -> Self {
        ProtoError {
            message: e.message,
            code: Some(e.code.as_str().to_owned()),
        }
    }
}

impl From<rusqlite::Error> for ExecError {
    fn from(e: rusqlite::Error) -> Self {
        ExecError::from_sqlite(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers in skylite-proto's table are SQLite's own (it has no SQLite to ask).
    #[test]
    fn the_wire_names_match_sqlites_constants() {
        for (number, name) in [
            (rusqlite::ffi::SQLITE_ERROR, "SQLITE_ERROR"),
            (rusqlite::ffi::SQLITE_INTERNAL, "SQLITE_INTERNAL"),
            (rusqlite::ffi::SQLITE_PERM, "SQLITE_PERM"),
            (rusqlite::ffi::SQLITE_ABORT, "SQLITE_ABORT"),
            (rusqlite::ffi::SQLITE_BUSY, "SQLITE_BUSY"),
            (rusqlite::ffi::SQLITE_LOCKED, "SQLITE_LOCKED"),
            (rusqlite::ffi::SQLITE_NOMEM, "SQLITE_NOMEM"),
            (rusqlite::ffi::SQLITE_READONLY, "SQLITE_READONLY"),
            (rusqlite::ffi::SQLITE_INTERRUPT, "SQLITE_INTERRUPT"),
            (rusqlite::ffi::SQLITE_IOERR, "SQLITE_IOERR"),
            (rusqlite::ffi::SQLITE_CORRUPT, "SQLITE_CORRUPT"),
            (rusqlite::ffi::SQLITE_NOTFOUND, "SQLITE_NOTFOUND"),
            (rusqlite::ffi::SQLITE_FULL, "SQLITE_FULL"),
            (rusqlite::ffi::SQLITE_CANTOPEN, "SQLITE_CANTOPEN"),
            (rusqlite::ffi::SQLITE_PROTOCOL, "SQLITE_PROTOCOL"),
            (rusqlite::ffi::SQLITE_EMPTY, "SQLITE_EMPTY"),
            (rusqlite::ffi::SQLITE_SCHEMA, "SQLITE_SCHEMA"),
            (rusqlite::ffi::SQLITE_TOOBIG, "SQLITE_TOOBIG"),
            (rusqlite::ffi::SQLITE_CONSTRAINT, "SQLITE_CONSTRAINT"),
            (rusqlite::ffi::SQLITE_MISMATCH, "SQLITE_MISMATCH"),
            (rusqlite::ffi::SQLITE_MISUSE, "SQLITE_MISUSE"),
            (rusqlite::ffi::SQLITE_NOLFS, "SQLITE_NOLFS"),
            (rusqlite::ffi::SQLITE_AUTH, "SQLITE_AUTH"),
            (rusqlite::ffi::SQLITE_FORMAT, "SQLITE_FORMAT"),
            (rusqlite::ffi::SQLITE_RANGE, "SQLITE_RANGE"),
            (rusqlite::ffi::SQLITE_NOTADB, "SQLITE_NOTADB"),
            (rusqlite::ffi::SQLITE_BUSY_RECOVERY, "SQLITE_BUSY_RECOVERY"),
            (rusqlite::ffi::SQLITE_BUSY_SNAPSHOT, "SQLITE_BUSY_SNAPSHOT"),
            (rusqlite::ffi::SQLITE_BUSY_TIMEOUT, "SQLITE_BUSY_TIMEOUT"),
            (
                rusqlite::ffi::SQLITE_LOCKED_SHAREDCACHE,
                "SQLITE_LOCKED_SHAREDCACHE",
            ),
            (
                rusqlite::ffi::SQLITE_READONLY_DBMOVED,
                "SQLITE_READONLY_DBMOVED",
            ),
            (
                rusqlite::ffi::SQLITE_IOERR_SHORT_READ,
                "SQLITE_IOERR_SHORT_READ",
            ),
            (rusqlite::ffi::SQLITE_IOERR_WRITE, "SQLITE_IOERR_WRITE"),
            (rusqlite::ffi::SQLITE_IOERR_FSYNC, "SQLITE_IOERR_FSYNC"),
            (rusqlite::ffi::SQLITE_IOERR_NOMEM, "SQLITE_IOERR_NOMEM"),
            (rusqlite::ffi::SQLITE_CORRUPT_INDEX, "SQLITE_CORRUPT_INDEX"),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_CHECK,
                "SQLITE_CONSTRAINT_CHECK",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_COMMITHOOK,
                "SQLITE_CONSTRAINT_COMMITHOOK",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
                "SQLITE_CONSTRAINT_FOREIGNKEY",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_FUNCTION,
                "SQLITE_CONSTRAINT_FUNCTION",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL,
                "SQLITE_CONSTRAINT_NOTNULL",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
                "SQLITE_CONSTRAINT_PRIMARYKEY",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER,
                "SQLITE_CONSTRAINT_TRIGGER",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
                "SQLITE_CONSTRAINT_UNIQUE",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_VTAB,
                "SQLITE_CONSTRAINT_VTAB",
            ),
            (
                rusqlite::ffi::SQLITE_CONSTRAINT_ROWID,
                "SQLITE_CONSTRAINT_ROWID",
            ),
            (rusqlite::ffi::SQLITE_AUTH_USER, "SQLITE_AUTH_USER"),
        ] {
            assert_eq!(sqlite_code_name(number), name);
            assert_eq!(ErrorCode::Sqlite(number).as_str(), name);
        }
    }
}
