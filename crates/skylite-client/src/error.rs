//! The client's error type: SQLite errors with SQLite's extended code, other errors the server
//! (or the local engine) reports per request, HTTP and authentication failures, timeouts,
//! connection failures, malformed responses, configuration and decoding mistakes.

use std::time::Duration;

/// Everything that can go wrong talking to a database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite refused the statement: `code` is SQLite's extended result code name
    /// (`SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_ERROR`, ...), `message` SQLite's own message.
    #[error("{code}: {message}")]
    Sqlite {
        /// SQLite's (extended) result code name.
        code: String,
        /// SQLite's message.
        message: String,
    },
    /// The server (or the local engine) refused a request for a reason that is not SQLite's:
    /// `ARGS_INVALID`, `STREAM_EXPIRED`, `TRANSACTION_TIMEOUT`, `RESPONSE_TOO_LARGE`, ...
    #[error("{}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Server {
        /// The server's stable code, if it sent one.
        code: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The token was refused: 401 (missing, malformed, expired, revoked) or 403 (valid but not
    /// allowed to do this). `message` is the server's explanation.
    #[error("authentication failed (HTTP {status}{}): {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Auth {
        /// 401 or 403.
        status: u16,
        /// The server's code (`AUTH_...`), if any.
        code: Option<String>,
        /// The server's message.
        message: String,
    },
    /// Any other HTTP error status.
    #[error("HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Http {
        /// The HTTP status.
        status: u16,
        /// The server's code, if the body carried one.
        code: Option<String>,
        /// The server's message (or the body as text).
        message: String,
    },
    /// Connecting or sending did not finish in time.
    #[error("timed out after {after:?} while {what}")]
    Timeout {
        /// What was going on (`connecting to host:port`, `waiting for the response`).
        what: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// The server could not be reached, the TLS handshake failed, or the connection broke.
    #[error("connection error: {0}")]
    Connect(String),
    /// The server answered something that is not Hrana.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A local database file could not be opened.
    #[error("cannot open the local database: {0}")]
    Open(String),
    /// The configuration is incomplete or wrong (URL, `.env`, CA file).
    #[error("configuration error: {0}")]
    Config(String),
    /// A value could not be converted to the requested Rust type, or a row to a struct.
    #[error("cannot decode: {0}")]
    Decode(String),
    /// A column was asked for by a name or index that the result does not have.
    #[error("no such column: {0}")]
    NoSuchColumn(String),
    /// A blocking call was made on a thread that runs a tokio runtime, where blocking would stall
    /// (or panic) the runtime. Use the async [`crate::Client`] there.
    #[error(
        "a blocking skylite_client call was made inside a tokio runtime; \
         use the async skylite_client::Client there (or call from spawn_blocking)"
    )]
    InsideRuntime,
    /// A transaction's stream was lost: an earlier call on it was cancelled or its connection
    /// broke mid-request, so its state on the server is unknown (it will be rolled back).
    #[error("the transaction can no longer be used: {0}")]
    TransactionLost(String),
}

impl Error {
    /// The machine-readable code, if any: SQLite's code, the server's code, or an HTTP error's.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Sqlite { code, .. } => Some(code),
            Error::Server { code, .. } | Error::Auth { code, .. } | Error::Http { code, .. } => {
                code.as_deref()
            }
            _ => None,
        }
    }

    /// SQLite's extended result code name, for errors SQLite raised.
    pub fn sqlite_code(&self) -> Option<&str> {
        match self {
            Error::Sqlite { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for authentication and HTTP errors.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Auth { status, .. } | Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// An error the server or the engine reported for one request.
    pub(crate) fn from_proto(e: skylite_proto::Error) -> Error {
        match e.code {
            Some(code) if code.starts_with("SQLITE_") => Error::Sqlite {
                code,
                message: e.message,
            },
            code => Error::Server {
                code,
                message: e.message,
            },
        }
    }

    pub(crate) fn decode(message: impl Into<String>) -> Error {
        Error::Decode(message.into())
    }
}

/// `Result` with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
