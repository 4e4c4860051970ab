//! HTTP-level errors: a status code plus a JSON body (`content-type: application/json` exactly).
//!
//! Two shapes, chosen by what the real clients do with them:
//!
//! - Most errors: `{"message": ..., "code": ..., "error": ...}`. Hrana clients turn a body with
//!   `message` into a protocol error carrying our code and message (`error` repeats the
//!   message for tools that read sqld's shape).
//! - Authentication and authorization refusals (401, 403): `{"error": ..., "code": ...}`,
//!   without `message`, as sqld answers them. A body with `message` would make
//!   `@libsql/hrana-client` (and `@libsql/client` above it) report a protocol `ResponseError`
//!   instead of an `HttpServerError` with its `status`, and Python `libsql-client` a
//!   `LibsqlError` without the status; apps that check for a 401 (as they do against sqld and
//!   Turso) would break. The code and the text stay in the body for tools that read it. A 401
//!   also carries `WWW-Authenticate: Bearer` (RFC 6750).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use skylite_engine::{ErrorCode, ExecError};

/// An error answered at the HTTP level (the whole request failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A malformed request (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Protocol, message)
    }

    /// A server-side failure (500).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            message,
        )
    }

    /// An SQL error answered at the HTTP level (legacy v1 endpoints do this). Failures of the
    /// server or its disk are 5xx (and logged at error level), never blamed on the client:
    /// a full disk is 507, I/O errors, out-of-memory, corruption, a poisoned database and
    /// internal errors are 500. Everything else is the request's fault: 400.
    pub fn from_exec(e: ExecError) -> Self {
        let status = exec_status(&e);
        ApiError {
            status,
            code: e.code,
            message: e.message,
        }
    }
}

/// The HTTP status of an engine error ([`ErrorCode::http_status`]).
fn exec_status(e: &ExecError) -> StatusCode {
    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, "{}", self.message);
        } else {
            tracing::info!(status = self.status.as_u16(), code = %self.code, "request refused: {}", self.message);
        }
        let is_auth_refusal =
            self.status == StatusCode::UNAUTHORIZED || self.status == StatusCode::FORBIDDEN;
        let body = if is_auth_refusal {
            serde_json::json!({
                "error": self.message,
                "code": self.code.as_str(),
            })
        } else {
            serde_json::json!({
                "message": self.message,
                "code": self.code.as_str(),
                "error": self.message,
            })
        };
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"skylite\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_disk_failures_are_5xx() {
        for (code, status) in [
            (ErrorCode::SQLITE_FULL, 507),
            (ErrorCode::SQLITE_IOERR, 500),
            (ErrorCode::SQLITE_IOERR_FSYNC, 500),
            (ErrorCode::Sqlite(10 | (2 << 8)), 500), // SQLITE_IOERR_SHORT_READ
            (ErrorCode::Sqlite(7), 500),             // SQLITE_NOMEM
            (ErrorCode::SQLITE_CORRUPT, 500),
            (ErrorCode::Sqlite(11 | (3 << 8)), 500), // SQLITE_CORRUPT_INDEX
            (ErrorCode::SQLITE_NOTADB, 500),
            (ErrorCode::DatabasePoisoned, 500),
            (ErrorCode::Internal, 500),
            (ErrorCode::Sqlite(19 | (8 << 8)), 400), // SQLITE_CONSTRAINT_UNIQUE
            (ErrorCode::SQLITE_ERROR, 400),
            (ErrorCode::TransactionTimeout, 400),
        ] {
            let e = ApiError::from_exec(ExecError::new(code, "m"));
            assert_eq!(e.status.as_u16(), status, "{code}");
            assert_eq!(e.code, code);
        }
    }
}
