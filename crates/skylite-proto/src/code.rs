//! The one list of error codes a client can see: SQLite's own result codes (by number, named as
//! in SQLite's C headers) and skylite's codes for what SQLite does not know about (streams,
//! batons, limits, tokens, databases). Every crate refers to a code through [`ErrorCode`]; the
//! string form exists only on the wire ([`ErrorCode::as_str`], [`ErrorCode::from_wire`]).
//!
//! Which codes are the server's fault (I/O, a full disk, corruption, a poisoned database) is
//! decided here, once: [`ErrorCode::is_server_failure`]. The HTTP layers turn those into 5xx
//! and log them at error level.

use std::fmt;

/// SQLite result codes (primary and extended) with their names, as in `sqlite3.h`. Extended
/// codes not listed fall back to their primary code's name.
const SQLITE_CODES: &[(i32, &str)] = &[
    (1, "SQLITE_ERROR"),
    (2, "SQLITE_INTERNAL"),
    (3, "SQLITE_PERM"),
    (4, "SQLITE_ABORT"),
    (5, "SQLITE_BUSY"),
    (6, "SQLITE_LOCKED"),
    (7, "SQLITE_NOMEM"),
    (8, "SQLITE_READONLY"),
    (9, "SQLITE_INTERRUPT"),
    (10, "SQLITE_IOERR"),
    (11, "SQLITE_CORRUPT"),
    (12, "SQLITE_NOTFOUND"),
    (13, "SQLITE_FULL"),
    (14, "SQLITE_CANTOPEN"),
    (15, "SQLITE_PROTOCOL"),
    (16, "SQLITE_EMPTY"),
    (17, "SQLITE_SCHEMA"),
    (18, "SQLITE_TOOBIG"),
    (19, "SQLITE_CONSTRAINT"),
    (20, "SQLITE_MISMATCH"),
    (21, "SQLITE_MISUSE"),
    (22, "SQLITE_NOLFS"),
    (23, "SQLITE_AUTH"),
    (24, "SQLITE_FORMAT"),
    (25, "SQLITE_RANGE"),
    (26, "SQLITE_NOTADB"),
    (5 | (1 << 8), "SQLITE_BUSY_RECOVERY"),
    (5 | (2 << 8), "SQLITE_BUSY_SNAPSHOT"),
    (5 | (3 << 8), "SQLITE_BUSY_TIMEOUT"),
    (6 | (1 << 8), "SQLITE_LOCKED_SHAREDCACHE"),
    (8 | (4 << 8), "SQLITE_READONLY_DBMOVED"),
    (10 | (2 << 8), "SQLITE_IOERR_SHORT_READ"),
    (10 | (3 << 8), "SQLITE_IOERR_WRITE"),
    (10 | (4 << 8), "SQLITE_IOERR_FSYNC"),
    (10 | (12 << 8), "SQLITE_IOERR_NOMEM"),
    (11 | (3 << 8), "SQLITE_CORRUPT_INDEX"),
    (19 | (1 << 8), "SQLITE_CONSTRAINT_CHECK"),
    (19 | (2 << 8), "SQLITE_CONSTRAINT_COMMITHOOK"),
    (19 | (3 << 8), "SQLITE_CONSTRAINT_FOREIGNKEY"),
    (19 | (4 << 8), "SQLITE_CONSTRAINT_FUNCTION"),
    (19 | (5 << 8), "SQLITE_CONSTRAINT_NOTNULL"),
    (19 | (6 << 8), "SQLITE_CONSTRAINT_PRIMARYKEY"),
    (19 | (7 << 8), "SQLITE_CONSTRAINT_TRIGGER"),
    (19 | (8 << 8), "SQLITE_CONSTRAINT_UNIQUE"),
    (19 | (9 << 8), "SQLITE_CONSTRAINT_VTAB"),
    (19 | (10 << 8), "SQLITE_CONSTRAINT_ROWID"),
    (23 | (1 << 8), "SQLITE_AUTH_USER"),
];

/// The name of an SQLite (extended) result code; an extended code without a name of its own
/// takes its primary code's, an unknown primary code is `SQLITE_UNKNOWN`.
pub fn sqlite_code_name(code: i32) -> &'static str {
    if let Some((_, name)) = SQLITE_CODES.iter().find(|(c, _)| *c == code) {
        return name;
    }
    let primary = code & 0xff;
    if primary != code {
        return sqlite_code_name(primary);
    }
    "SQLITE_UNKNOWN"
}

macro_rules! skylite_codes {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal,)*) => {
        /// A stable, machine-readable error code, as clients see it in `code`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            /// An SQLite result code (primary or extended, e.g. 2067 = `SQLITE_CONSTRAINT_UNIQUE`).
            Sqlite(i32),
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// The code as it goes on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    ErrorCode::Sqlite(code) => sqlite_code_name(code),
                    $(ErrorCode::$variant => $wire,)*
                }
            }

            /// Every skylite code (not SQLite's), for documentation and tests.
            pub const SKYLITE: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            fn from_skylite_wire(code: &str) -> Option<ErrorCode> {
                match code {
                    $($wire => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

skylite_codes! {
    /// A request the protocol does not allow (malformed body, bad `sql_id`, wrong version).
    Protocol => "PROTOCOL_ERROR",
    /// Arguments that do not fit the statement's parameters.
    ArgsInvalid => "ARGS_INVALID",
    /// SQL text with no statement in it.
    SqlNoStatement => "SQL_NO_STATEMENT",
    /// The response would exceed `--max-response-size`.
    ResponseTooLarge => "RESPONSE_TOO_LARGE",
    /// A request (body, frame, stored SQL, queued requests) beyond its byte budget.
    RequestTooLarge => "REQUEST_TOO_LARGE",
    /// A request body that stopped arriving (HTTP 408).
    BodyTimeout => "BODY_TIMEOUT",
    /// The server is at `--max-connections` (HTTP 503).
    TooManyConnections => "TOO_MANY_CONNECTIONS",
    /// A transaction lost the write lock after `--txn-timeout` while others waited.
    TransactionTimeout => "TRANSACTION_TIMEOUT",
    /// A statement ran past `--statement-timeout`.
    StatementTimeout => "STATEMENT_TIMEOUT",
    /// A stream that held state is gone (idle expiry, restart).
    StreamExpired => "STREAM_EXPIRED",
    /// No such stream (WebSocket).
    StreamNotFound => "STREAM_NOT_FOUND",
    /// The stream was closed.
    StreamClosed => "STREAM_CLOSED",
    /// The stream failed earlier and takes no more requests.
    StreamFailed => "STREAM_FAILED",
    /// The token has too many live streams.
    StreamsExhausted => "STREAMS_EXHAUSTED",
    /// No such cursor (WebSocket).
    CursorNotFound => "CURSOR_NOT_FOUND",
    /// The cursor's batch failed to open.
    CursorFailed => "CURSOR_FAILED",
    /// A baton that is not authentic, or not for this database or token.
    BatonInvalid => "BATON_INVALID",
    /// A baton that was already used.
    BatonReused => "BATON_REUSED",
    /// The client went away before the answer.
    ClientGone => "CLIENT_GONE",
    /// A failure inside the server.
    Internal => "INTERNAL_ERROR",
    /// An fsync failed: the database refuses writes until it is reopened.
    DatabasePoisoned => "DATABASE_POISONED",
    /// A database name that is not valid.
    InvalidDatabaseName => "INVALID_DATABASE_NAME",
    /// No database of that name.
    DatabaseNotFound => "DATABASE_NOT_FOUND",
    /// A database of that name exists already.
    DatabaseExists => "DATABASE_EXISTS",
    /// `default` cannot be deleted.
    DatabaseProtected => "DATABASE_PROTECTED",
    /// Every open database is in use and `--max-open-databases` is reached.
    TooManyOpenDatabases => "TOO_MANY_OPEN_DATABASES",
    /// No such endpoint.
    NotFound => "NOT_FOUND",
    /// An uploaded file that is not an SQLite database.
    NotADatabase => "NOT_A_DATABASE",
    /// An uploaded database that fails `integrity_check`.
    ImportCorrupt => "IMPORT_CORRUPT",
    /// An uploaded file whose SHA-256 differs from the one announced.
    ImportChecksumMismatch => "IMPORT_CHECKSUM_MISMATCH",
    /// An uploaded file whose page count differs from the one announced.
    ImportPageCountMismatch => "IMPORT_PAGE_COUNT_MISMATCH",
    /// An upload that ended early.
    ImportInterrupted => "IMPORT_INTERRUPTED",
    /// An upload beyond `--max-import-size`.
    ImportTooLarge => "IMPORT_TOO_LARGE",
    /// The disk has no room for the operation.
    NoSpace => "NO_SPACE",
    /// A reload (SIGHUP, `POST /v1/admin/reload`) could not use a new certificate, key file or
    /// revocation list; the old ones stay in use (HTTP 500).
    ReloadFailed => "RELOAD_FAILED",
    /// A per-database limit with a value out of range (admin API).
    InvalidLimit => "INVALID_LIMIT",
    /// A write would grow the database past its size limit (`max_size_bytes`, HTTP 507).
    DatabaseFull => "DATABASE_FULL",
    /// Continuous backup in sync mode cannot take the write: the object store did not accept
    /// it within `--backup-sync-timeout`, the spool is full, or another server writes this
    /// database's history (fenced). HTTP 503.
    BackupUnavailable => "BACKUP_UNAVAILABLE",
    /// A request that needs continuous backup (a fork at a time) on a server started without
    /// `--backup`.
    BackupNotConfigured => "BACKUP_NOT_CONFIGURED",
    /// A time that is not RFC 3339 (e.g. `2026-12-01T10:00:00Z`).
    InvalidTime => "INVALID_TIME",
    /// Tokens cannot be minted: the server runs with `--no-auth`.
    AuthDisabled => "AUTH_DISABLED",
    /// No token.
    AuthJwtMissing => "AUTH_JWT_MISSING",
    /// An `Authorization` header that is not `Bearer`.
    AuthHttpHeaderUnsupportedScheme => "AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME",
    /// A token that is malformed or wrongly signed.
    AuthJwtInvalid => "AUTH_JWT_INVALID",
    /// A token signed with an algorithm other than EdDSA.
    AuthJwtAlgorithm => "AUTH_JWT_ALGORITHM",
    /// An expired token.
    AuthJwtExpired => "AUTH_JWT_EXPIRED",
    /// A token not valid yet (`nbf`).
    AuthJwtImmature => "AUTH_JWT_IMMATURE",
    /// A revoked token.
    AuthJwtRevoked => "AUTH_JWT_REVOKED",
    /// A token that opens no database (no `id`, `p` or `skylite_admin`).
    AuthJwtUnscoped => "AUTH_JWT_UNSCOPED",
    /// A token that does not open this database.
    AuthDatabaseForbidden => "AUTH_DATABASE_FORBIDDEN",
    /// A read-only token asked for write access.
    AuthReadOnly => "AUTH_READ_ONLY",
    /// A token that is not an admin's on the admin API.
    AuthAdminForbidden => "AUTH_ADMIN_FORBIDDEN",
}

impl ErrorCode {
    /// SQLite's `SQLITE_ERROR`, the generic SQL error.
    pub const SQLITE_ERROR: ErrorCode = ErrorCode::Sqlite(1);
    /// `SQLITE_INTERNAL`.
    pub const SQLITE_INTERNAL: ErrorCode = ErrorCode::Sqlite(2);
    /// `SQLITE_BUSY`: the write lock could not be had in time.
    pub const SQLITE_BUSY: ErrorCode = ErrorCode::Sqlite(5);
    /// `SQLITE_READONLY`: a write with read-only access.
    pub const SQLITE_READONLY: ErrorCode = ErrorCode::Sqlite(8);
    /// `SQLITE_INTERRUPT`: the statement was interrupted.
    pub const SQLITE_INTERRUPT: ErrorCode = ErrorCode::Sqlite(9);
    /// `SQLITE_IOERR`.
    pub const SQLITE_IOERR: ErrorCode = ErrorCode::Sqlite(10);
    /// `SQLITE_CORRUPT`.
    pub const SQLITE_CORRUPT: ErrorCode = ErrorCode::Sqlite(11);
    /// `SQLITE_FULL`: the disk (or `max_page_count`) is full.
    pub const SQLITE_FULL: ErrorCode = ErrorCode::Sqlite(13);
    /// `SQLITE_CANTOPEN`.
    pub const SQLITE_CANTOPEN: ErrorCode = ErrorCode::Sqlite(14);
    /// `SQLITE_TOOBIG`: a string or blob beyond the length limit.
    pub const SQLITE_TOOBIG: ErrorCode = ErrorCode::Sqlite(18);
    /// `SQLITE_AUTH`: refused by the server's authorizer.
    pub const SQLITE_AUTH: ErrorCode = ErrorCode::Sqlite(23);
    /// `SQLITE_NOTADB`.
    pub const SQLITE_NOTADB: ErrorCode = ErrorCode::Sqlite(26);
    /// `SQLITE_IOERR_FSYNC`.
    pub const SQLITE_IOERR_FSYNC: ErrorCode = ErrorCode::Sqlite(10 | (4 << 8));
    /// `SQLITE_CONSTRAINT_COMMITHOOK`: the commit hook turned a COMMIT into a rollback.
    pub const SQLITE_CONSTRAINT_COMMITHOOK: ErrorCode = ErrorCode::Sqlite(19 | (2 << 8));

    /// Reads a code off the wire; `None` for a code this list does not know (another
    /// server's, or a newer skylite's).
    pub fn from_wire(code: &str) -> Option<ErrorCode> {
        if let Some(known) = ErrorCode::from_skylite_wire(code) {
            return Some(known);
        }
        SQLITE_CODES
            .iter()
            .find(|(_, name)| *name == code)
            .map(|(number, _)| ErrorCode::Sqlite(*number))
    }

    /// The primary SQLite result code (the low byte), if this is an SQLite code.
    pub fn sqlite_primary(self) -> Option<i32> {
        match self {
            ErrorCode::Sqlite(code) => Some(code & 0xff),
            _ => None,
        }
    }

    /// True for failures of the server or its disk rather than of the request: I/O errors, a
    /// full disk, out of memory, corruption, a poisoned database, internal errors. They are
    /// answered with a 5xx at the HTTP level and logged at error level.
    pub fn is_server_failure(self) -> bool {
        match self {
            ErrorCode::Sqlite(code) => matches!(
                code & 0xff,
                2 /* INTERNAL */ | 7 /* NOMEM */ | 10 /* IOERR */ | 11 /* CORRUPT */
                | 13 /* FULL */ | 14 /* CANTOPEN */ | 26 /* NOTADB */
            ),
            ErrorCode::Internal | ErrorCode::DatabasePoisoned | ErrorCode::NoSpace => true,
            _ => false,
        }
    }

    /// The HTTP status for this code when a whole request fails with it: 507 for a full disk,
    /// 500 for other server failures, 400 otherwise (callers with more context, such as the
    /// auth and routing layers, pick their own statuses).
    pub fn http_status(self) -> u16 {
        if self == ErrorCode::SQLITE_FULL
            || self == ErrorCode::NoSpace
            || self == ErrorCode::DatabaseFull
        {
            507
        } else if self == ErrorCode::BackupUnavailable {
            503
        } else if self.is_server_failure() {
            500
        } else {
            400
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests (and clients) compare a code with what a client sees on the wire.
impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<ErrorCode> for String {
    fn from(code: ErrorCode) -> String {
        code.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_wire_form() {
        for code in ErrorCode::SKYLITE {
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(*code));
        }
        for (number, name) in SQLITE_CODES {
            assert_eq!(ErrorCode::Sqlite(*number).as_str(), *name);
            assert_eq!(ErrorCode::from_wire(name), Some(ErrorCode::Sqlite(*number)));
        }
        assert_eq!(ErrorCode::from_wire("SOMETHING_NEW"), None);
    }

    #[test]
    fn extended_codes_fall_back_to_their_primary_name() {
        // SQLITE_IOERR_DELETE (10 | 10<<8) has no entry of its own.
        assert_eq!(ErrorCode::Sqlite(10 | (10 << 8)).as_str(), "SQLITE_IOERR");
        assert_eq!(ErrorCode::Sqlite(254).as_str(), "SQLITE_UNKNOWN");
    }

    #[test]
    fn server_failures_are_the_io_class() {
        assert!(ErrorCode::SQLITE_IOERR_FSYNC.is_server_failure());
        assert!(ErrorCode::Sqlite(10 | (10 << 8)).is_server_failure());
        assert!(ErrorCode::SQLITE_CORRUPT.is_server_failure());
        assert!(ErrorCode::DatabasePoisoned.is_server_failure());
        assert_eq!(ErrorCode::SQLITE_FULL.http_status(), 507);
        assert_eq!(ErrorCode::Sqlite(19 | (8 << 8)).http_status(), 400);
        assert!(!ErrorCode::SQLITE_BUSY.is_server_failure());
        assert!(!ErrorCode::StatementTimeout.is_server_failure());
    }

    #[test]
    fn wire_names_are_unique() {
        let mut names: Vec<&str> = ErrorCode::SKYLITE.iter().map(|c| c.as_str()).collect();
        names.extend(SQLITE_CODES.iter().map(|(_, n)| *n));
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
