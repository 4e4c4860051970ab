//! HTTP-level errors: a status code plus a JSON body in the shape every libSQL client parses
//! (`{"message": ..., "code": ...}` with `content-type: application/json` exactly), and an
//! `error` field with the same message for tools that read sqld's older shape.

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

    /// An SQL error answered at the HTTP level (legacy v1 endpoints do this).
    pub fn from_exec(e: ExecError) -> Self {
        let status = match e.code.as_str() {
            "INTERNAL" | "SQLITE_IOERR_FSYNC" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            code: e.code,
            message: e.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, "{}", self.message);
        } else {
            tracing::info!(status = self.status.as_u16(), code = %self.code, "request refused: {}", self.message);
        }
        let body = serde_json::json!({
            "message": self.message,
            "code": self.code,
            "error": self.message,
        });
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}
