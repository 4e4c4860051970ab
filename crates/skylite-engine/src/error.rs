//! Engine errors: what can go wrong opening a database ([`OpenError`]) and running a statement
//! ([`ExecError`]), and the mapping from SQLite's result codes to the stable string codes that
//! clients see (`SQLITE_CONSTRAINT_UNIQUE`, `TRANSACTION_TIMEOUT`, ...).

use std::path::PathBuf;

use rusqlite::ffi;
use skylite_proto::Error as ProtoError;

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
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable message (SQLite's own, where SQLite produced it).
    pub message: String,
}

impl ExecError {
    /// An error with a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ExecError {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// True for failures of the server or its disk rather than of the request: I/O errors, a
    /// full disk, out of memory, corruption, a poisoned database, internal errors. HTTP
    /// answers them with a 5xx, and they are logged at error level.
    pub fn is_server_failure(&self) -> bool {
        let code = self.code.as_str();
        let is = |p: &str| code == p || code.strip_prefix(p).is_some_and(|r| r.starts_with('_'));
        [
            "SQLITE_IOERR",
            "SQLITE_FULL",
            "SQLITE_NOMEM",
            "SQLITE_CORRUPT",
            "SQLITE_NOTADB",
        ]
        .iter()
        .any(|p| is(p))
            || matches!(
                code,
                "SQLITE_INTERNAL" | "SQLITE_CANTOPEN" | "INTERNAL" | "DATABASE_POISONED"
            )
    }

    /// A request that is malformed at the protocol level (bad `sql_id`, wrong arguments, ...).
    pub fn protocol(message: impl Into<String>) -> Self {
        ExecError::new("PROTOCOL_ERROR", message)
    }

    /// The result would exceed the response-size limit.
    pub fn response_too_large(limit: usize) -> Self {
        ExecError::new(
            "RESPONSE_TOO_LARGE",
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
                code: sqlite_code_name(e.extended_code).to_owned(),
                message: msg.clone().unwrap_or_else(|| e.to_string()),
            },
            rusqlite::Error::MultipleStatement => ExecError::new(
                "SQLITE_ERROR",
                "the SQL text contains more than one statement; use `sequence` or a batch",
            ),
            rusqlite::Error::Utf8Error(_) | rusqlite::Error::NulError(_) => {
                ExecError::new("SQLITE_ERROR", format!("invalid SQL text: {err}"))
            }
            other => ExecError::new("SQLITE_ERROR", other.to_string()),
        }
    }
}

impl From<ExecError> for ProtoError {
    fn from(e: ExecError) -> Self {
        ProtoError {
            message: e.message,
            code: Some(e.code),
        }
    }
}

impl From<rusqlite::Error> for ExecError {
    fn from(e: rusqlite::Error) -> Self {
        ExecError::from_sqlite(&e)
    }
}

/// The stable name of an SQLite (extended) result code, as in SQLite's C headers.
pub fn sqlite_code_name(code: i32) -> &'static str {
    match code {
        ffi::SQLITE_ERROR => "SQLITE_ERROR",
        ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
        ffi::SQLITE_PERM => "SQLITE_PERM",
        ffi::SQLITE_ABORT => "SQLITE_ABORT",
        ffi::SQLITE_BUSY => "SQLITE_BUSY",
        ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
        ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
        ffi::SQLITE_READONLY => "SQLITE_READONLY",
        ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
        ffi::SQLITE_IOERR => "SQLITE_IOERR",
        ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
        ffi::SQLITE_NOTFOUND => "SQLITE_NOTFOUND",
        ffi::SQLITE_FULL => "SQLITE_FULL",
        ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
        ffi::SQLITE_PROTOCOL => "SQLITE_PROTOCOL",
        ffi::SQLITE_EMPTY => "SQLITE_EMPTY",
        ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
        ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
        ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
        ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
        ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
        ffi::SQLITE_NOLFS => "SQLITE_NOLFS",
        ffi::SQLITE_AUTH => "SQLITE_AUTH",
        ffi::SQLITE_FORMAT => "SQLITE_FORMAT",
        ffi::SQLITE_RANGE => "SQLITE_RANGE",
        ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
        ffi::SQLITE_BUSY_SNAPSHOT => "SQLITE_BUSY_SNAPSHOT",
        ffi::SQLITE_BUSY_RECOVERY => "SQLITE_BUSY_RECOVERY",
        ffi::SQLITE_BUSY_TIMEOUT => "SQLITE_BUSY_TIMEOUT",
        ffi::SQLITE_LOCKED_SHAREDCACHE => "SQLITE_LOCKED_SHAREDCACHE",
        ffi::SQLITE_READONLY_DBMOVED => "SQLITE_READONLY_DBMOVED",
        ffi::SQLITE_IOERR_SHORT_READ => "SQLITE_IOERR_SHORT_READ",
        ffi::SQLITE_IOERR_WRITE => "SQLITE_IOERR_WRITE",
        ffi::SQLITE_IOERR_FSYNC => "SQLITE_IOERR_FSYNC",
        ffi::SQLITE_IOERR_NOMEM => "SQLITE_IOERR_NOMEM",
        ffi::SQLITE_CONSTRAINT_CHECK => "SQLITE_CONSTRAINT_CHECK",
        ffi::SQLITE_CONSTRAINT_COMMITHOOK => "SQLITE_CONSTRAINT_COMMITHOOK",
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "SQLITE_CONSTRAINT_FOREIGNKEY",
        ffi::SQLITE_CONSTRAINT_FUNCTION => "SQLITE_CONSTRAINT_FUNCTION",
        ffi::SQLITE_CONSTRAINT_NOTNULL => "SQLITE_CONSTRAINT_NOTNULL",
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "SQLITE_CONSTRAINT_PRIMARYKEY",
        ffi::SQLITE_CONSTRAINT_TRIGGER => "SQLITE_CONSTRAINT_TRIGGER",
        ffi::SQLITE_CONSTRAINT_UNIQUE => "SQLITE_CONSTRAINT_UNIQUE",
        ffi::SQLITE_CONSTRAINT_VTAB => "SQLITE_CONSTRAINT_VTAB",
        ffi::SQLITE_CONSTRAINT_ROWID => "SQLITE_CONSTRAINT_ROWID",
        ffi::SQLITE_AUTH_USER => "SQLITE_AUTH_USER",
        other => match other & 0xff {
            c if c != other => sqlite_code_name(c),
            _ => "SQLITE_UNKNOWN",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_codes_have_names_and_unknown_extended_fall_back_to_primary() {
        assert_eq!(
            sqlite_code_name(ffi::SQLITE_CONSTRAINT_UNIQUE),
            "SQLITE_CONSTRAINT_UNIQUE"
        );
        // SQLITE_IOERR_DELETE (10 | 10<<8) is not in the table: its primary code is.
        assert_eq!(sqlite_code_name(10 | (10 << 8)), "SQLITE_IOERR");
        assert_eq!(sqlite_code_name(254), "SQLITE_UNKNOWN");
    }
}
