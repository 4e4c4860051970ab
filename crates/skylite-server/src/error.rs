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
use skylite_engine::ExecError;

/// An error answered at the HTTP level (the whole request failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// A malformed request (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "PROTOCOL_ERROR", message)
    }

    /// A server-side failure (500).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
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

/// The HTTP status of an engine error.
fn exec_status(e: &ExecError) -> StatusCode {
    if !e.is_server_failure() {
        StatusCode::BAD_REQUEST
    } else if e.code == "SQLITE_FULL" || e.code.starts_with("SQLITE_FULL_") {
        StatusCode::INSUFFICIENT_STORAGE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
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
                "code": self.code,
            })
        } else {
            serde_json::json!({
                "message": self.message,
                "code": self.code,
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
            ("SQLITE_FULL", 507),
            ("SQLITE_IOERR", 500),
            ("SQLITE_IOERR_FSYNC", 500),
            ("SQLITE_IOERR_SHORT_READ", 500),
            ("SQLITE_NOMEM", 500),
            ("SQLITE_CORRUPT", 500),
            ("SQLITE_CORRUPT_INDEX", 500),
            ("SQLITE_NOTADB", 500),
            ("DATABASE_POISONED", 500),
            ("INTERNAL", 500),
            ("SQLITE_CONSTRAINT_UNIQUE", 400),
            ("SQLITE_ERROR", 400),
            ("SQLITE_IOERRX", 400),
            ("TRANSACTION_TIMEOUT", 400),
        ] {
            let e = ApiError::from_exec(ExecError::new(code, "m"));
            assert_eq!(e.status.as_u16(), status, "{code}");
            assert_eq!(e.code, code);
        }
    }
}
