//! Request ids: every HTTP request (a WebSocket upgrade included) runs inside a tracing span
//! `request{id=...}`, so every log line it causes carries the id, also from the SQL worker
//! threads ([`crate::blocking::run`] carries the span over). The id is the client's
//! `x-request-id` when it sends a usable one (1 to 128 characters of `A-Z a-z 0-9 - _ . :`),
//! otherwise a fresh random one; either way it is echoed in the response's `x-request-id`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header that carries the id, both ways.
pub const HEADER: &str = "x-request-id";

/// Longest client-supplied id accepted (a longer one is replaced by a fresh id).
pub const MAX_LEN: usize = 128;

/// True for an id a client may choose: short, and nothing that could forge a log line.
fn usable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A fresh id (16 hex digits).
fn fresh() -> String {
    // A random start per process, then a counter: unique within the process and not guessable
    // across restarts, with no system call and one allocation per request (this runs on every
    // request, so it is on the hot path).
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let mut bytes = [0u8; 8];
        let _ = getrandom::getrandom(&mut bytes);
        AtomicU64::new(u64::from_le_bytes(bytes))
    });
    format!("{:016x}", next.fetch_add(1, Ordering::Relaxed))
}

/// The middleware: picks the id, runs the request in its span, echoes the id, and logs the
/// request at debug level with its status and duration.
pub async fn layer(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| usable(id))
        .map_or_else(fresh, str::to_owned);
    let span = tracing::info_span!("request", id = %id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, value);
    }
    span.in_scope(|| {
        tracing::debug!(
            %method,
            path,
            status = resp.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(usable("abc-123_x.y:z"));
        assert!(!usable(""));
        assert!(!usable("a b"));
        assert!(!usable("a\nb"));
        assert!(!usable(&"a".repeat(129)));
        assert_eq!(fresh().len(), 16);
    }
}
