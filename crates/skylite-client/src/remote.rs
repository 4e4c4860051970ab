//! Remote databases: Hrana v3 over HTTP (`POST <base>/v3-protobuf/pipeline`, or
//! `<base>/v3/pipeline` with JSON bodies where the server has no Protobuf endpoint) on hyper 1
//! HTTP/1.1 connections, kept alive and reused from a small pool, over rustls for `https://`;
//! and streams that carry their baton from one request to the next.
//!
//! # Encoding
//!
//! Protobuf is preferred: it is smaller, faster to decode and carries every double exactly,
//! including ±infinity, which JSON cannot represent (servers send `null` for them). The first
//! pipeline goes to `/v3-protobuf/pipeline`; if the server answers 404, 405 or 415 there (an
//! older sqld, a proxy) nothing ran, the client switches to JSON for good and sends the same
//! request to `/v3/pipeline`. [`crate::Config::protobuf`] turns Protobuf off.
//!
//! # Retries
//!
//! A request is repeated only when repeating it cannot do anything twice:
//! - it was **never sent**: connecting failed (refused, DNS, TLS handshake, connect timeout), or
//!   a pooled keep-alive connection turned out to be closed before the request went out
//!   (hyper hands such a request back unsent);
//! - or it is a **read-only request on a fresh stream**: no baton (so no transaction or other
//!   server state can be affected) and every statement is a `SELECT`, `VALUES` or `EXPLAIN`;
//!   then a broken connection, a request timeout or an HTTP 502/503/504 is retried too.
//!
//! Writes, batches, `execute_multiple` and anything on a stream with a baton (a transaction)
//! are never repeated once sent: their error is returned. Retries wait 50 ms, 100 ms, 200 ms, ...
//! and stop after [`crate::Config::max_retries`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, StatusCode};
use skylite_proto::protobuf;
use skylite_proto::{
    CursorEntry, CursorReqBody, CursorRespBody, PipelineReqBody, PipelineRespBody, StreamRequest,
    StreamResult,
};

use crate::config::{Config, RemoteUrl};
use crate::error::{Error, Result};
use crate::http::{full_body, http_error, Attempt, Body, HttpClient};

/// A remote server: its address, token, TLS settings and connection pool.
pub(crate) struct Remote {
    url: RemoteUrl,
    http: HttpClient,
    request_timeout: Duration,
    max_retries: u32,
    /// [`ENC_UNKNOWN`], [`ENC_PROTOBUF`] or [`ENC_JSON`]: what the server speaks.
    encoding: AtomicU8,
}

/// Protobuf not tried yet.
const ENC_UNKNOWN: u8 = 0;
/// The server answered on `/v3-protobuf`.
const ENC_PROTOBUF: u8 = 1;
/// JSON only (configured, or the server has no Protobuf endpoint).
const ENC_JSON: u8 = 2;

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("authority", &self.url.authority)
            .field("base_path", &self.url.base_path)
            .field("tls", &self.url.tls)
            .finish()
    }
}

impl Remote {
    pub(crate) fn new(url: RemoteUrl, config: &Config) -> Result<Remote> {
        let token = config
            .auth_token
            .clone()
            .or_else(|| url.query_token.clone());
        let http = HttpClient::new(
            &url,
            token.as_deref(),
            config.ca_file.as_deref(),
            config.connect_timeout,
            concat!("skylite-client/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Remote {
            url,
            http,
            request_timeout: config.request_timeout,
            max_retries: config.max_retries,
            encoding: AtomicU8::new(if config.protobuf {
                ENC_UNKNOWN
            } else {
                ENC_JSON
            }),
        })
    }

    /// HTTP requests sent so far.
    pub(crate) fn requests_sent(&self) -> u64 {
        self.http.requests_sent()
    }

    /// Whether requests go out as Protobuf (`Some(true)`), JSON (`Some(false)`), or that is
    /// not known yet (`None`: no request sent).
    pub(crate) fn uses_protobuf(&self) -> Option<bool> {
        match self.encoding.load(Ordering::Relaxed) {
            ENC_PROTOBUF => Some(true),
            ENC_JSON => Some(false),
            _ => None,
        }
    }

    /// Sends one pipeline. `repeatable`: the request may be retried even after it was sent.
    pub(crate) async fn pipeline(
        &self,
        body: &PipelineReqBody,
        repeatable: bool,
    ) -> Result<PipelineRespBody> {
        let resp = if self.encoding.load(Ordering::Relaxed) == ENC_JSON {
            self.pipeline_json(body, repeatable).await?
        } else {
            let bytes = protobuf::encode(body.clone());
            let (status, bytes) = self
                .post(
                    "/v3-protobuf/pipeline",
                    PROTOBUF,
                    Bytes::from(bytes),
                    repeatable,
                )
                .await?;
            if is_missing_endpoint(status, &bytes) {
                // Nothing ran: the route does not exist there. JSON from now on.
                self.encoding.store(ENC_JSON, Ordering::Relaxed);
                self.pipeline_json(body, repeatable).await?
            } else if !status.is_success() {
                return Err(http_error(status, &bytes));
            } else {
                self.encoding.store(ENC_PROTOBUF, Ordering::Relaxed);
                protobuf::decode::<PipelineRespBody>(&bytes).map_err(|e| {
                    Error::Protocol(format!(
                        "the server's pipeline response is not Hrana Protobuf: {e}"
                    ))
                })?
            }
        };
        if resp.results.len() != body.requests.len() {
            return Err(Error::Protocol(format!(
                "the server answered {} results to {} requests",
                resp.results.len(),
                body.requests.len()
            )));
        }
        Ok(resp)
    }

    async fn pipeline_json(
        &self,
        body: &PipelineReqBody,
        repeatable: bool,
    ) -> Result<PipelineRespBody> {
        let json = serde_json::to_vec(body)
            .map_err(|e| Error::Protocol(format!("cannot encode the request: {e}")))?;
        let (status, bytes) = self
            .post("/v3/pipeline", JSON, Bytes::from(json), repeatable)
            .await?;
        if !status.is_success() {
            return Err(http_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Protocol(format!(
                "the server's pipeline response is not Hrana JSON: {e}"
            ))
        })
    }

    /// POSTs `body` to `<base><endpoint>`, retrying as the module docs say.
    async fn post(
        &self,
        endpoint: &str,
        content_type: &'static str,
        body: Bytes,
        repeatable: bool,
    ) -> Result<(StatusCode, Bytes)> {
        let mut attempt = 0u32;
        loop {
            let outcome = self.post_once(endpoint, content_type, body.clone()).await;
            let retry = match &outcome {
                Ok((status, _)) => {
                    repeatable
                        && matches!(
                            *status,
                            StatusCode::BAD_GATEWAY
                                | StatusCode::SERVICE_UNAVAILABLE
                                | StatusCode::GATEWAY_TIMEOUT
                        )
                }
                Err(Attempt::NotSent(_)) => true,
                Err(Attempt::Sent(_)) => repeatable,
            };
            if !retry || attempt >= self.max_retries {
                return outcome.map_err(Attempt::into_error);
            }
            tokio::time::sleep(Duration::from_millis(50u64 << attempt.min(6))).await;
            attempt += 1;
        }
    }

    async fn post_once(
        &self,
        endpoint: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Attempt> {
        let timeout = self.request_timeout;
        let work = async {
            let (resp, sender) = self.send(endpoint, content_type, body).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| {
                    Attempt::Sent(Error::Connect(format!(
                        "the connection broke while reading the response: {e}"
                    )))
                })?
                .to_bytes();
            self.put_idle(sender);
            Ok((status, bytes))
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(Attempt::Sent(Error::Timeout {
                what: format!("waiting for {} to answer", self.url.authority),
                after: timeout,
            })),
        }
    }

    /// Sends one POST and returns the response head (the body still to be read) with the
    /// connection it came on, which goes back to the pool only once the body is read.
    async fn send(
        &self,
        endpoint: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, SendRequest<Body>), Attempt> {
        let request = self
            .http
            .request(
                Method::POST,
                &format!("{}{endpoint}", self.url.base_path),
                &[(CONTENT_TYPE.as_str(), content_type)],
                full_body(body),
            )
            .map_err(Attempt::NotSent)?;
        self.http.send(request).await
    }

    /// Opens a cursor (`/v3-protobuf/cursor`, or `/v3/cursor` where the server speaks JSON
    /// only): the response head (`baton`) and the entries still to be read.
    pub(crate) async fn cursor(
        &self,
        body: &CursorReqBody,
    ) -> Result<(CursorRespBody, CursorFrames)> {
        let timeout = self.request_timeout;
        let mut protobuf = self.encoding.load(Ordering::Relaxed) != ENC_JSON;
        loop {
            let (endpoint, content_type, bytes) = if protobuf {
                (
                    "/v3-protobuf/cursor",
                    PROTOBUF,
                    Bytes::from(protobuf::encode(body.clone())),
                )
            } else {
                let json = serde_json::to_vec(body)
                    .map_err(|e| Error::Protocol(format!("cannot encode the request: {e}")))?;
                ("/v3/cursor", JSON, Bytes::from(json))
            };
            let sent = tokio::time::timeout(timeout, self.send(endpoint, content_type, bytes))
                .await
                .map_err(|_| Error::Timeout {
                    what: format!("waiting for {} to answer", self.url.authority),
                    after: timeout,
                })?
                .map_err(Attempt::into_error)?;
            let (resp, sender) = sent;
            let status = resp.status();
            if !status.is_success() {
                let bytes = tokio::time::timeout(timeout, resp.into_body().collect())
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                self.put_idle(sender);
                if protobuf && is_missing_endpoint(status, &bytes) {
                    self.encoding.store(ENC_JSON, Ordering::Relaxed);
                    protobuf = false;
                    continue;
                }
                return Err(http_error(status, &bytes));
            }
            if protobuf {
                self.encoding.store(ENC_PROTOBUF, Ordering::Relaxed);
            }
            let mut frames = CursorFrames {
                body: resp.into_body(),
                sender: Some(sender),
                buf: Vec::new(),
                protobuf,
                timeout,
            };
            let head = frames.next_frame(self).await?.ok_or_else(|| {
                Error::Protocol("the cursor response ended before its first line".into())
            })?;
            let head: CursorRespBody = if protobuf {
                protobuf::decode(&head).map_err(|e| {
                    Error::Protocol(format!("invalid Protobuf cursor response: {e}"))
                })?
            } else {
                serde_json::from_slice(&head)
                    .map_err(|e| Error::Protocol(format!("invalid JSON cursor response: {e}")))?
            };
            return Ok((head, frames));
        }
    }

    fn put_idle(&self, sender: SendRequest<Body>) {
        self.http.put_idle(sender);
    }
}

const JSON: &str = "application/json";
const PROTOBUF: &str = "application/x-protobuf";

/// The entries of a cursor response, read as they arrive: newline-delimited JSON, or
/// length-delimited Protobuf messages. Each read waits at most the request timeout.
pub(crate) struct CursorFrames {
    body: hyper::body::Incoming,
    /// The connection, returned to the pool when the body has been read to its end.
    sender: Option<SendRequest<Body>>,
    buf: Vec<u8>,
    protobuf: bool,
    timeout: Duration,
}

impl CursorFrames {
    /// The bytes of the next message, or `None` at the end of the body.
    async fn next_frame(&mut self, remote: &Remote) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(frame) = self.split_frame()? {
                return Ok(Some(frame));
            }
            let next = tokio::time::timeout(self.timeout, self.body.frame())
                .await
                .map_err(|_| Error::Timeout {
                    what: "waiting for the next cursor entry".into(),
                    after: self.timeout,
                })?;
            match next {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(Error::Connect(format!(
                        "the connection broke while reading a cursor: {e}"
                    )))
                }
                None => {
                    if let Some(sender) = self.sender.take() {
                        remote.put_idle(sender);
                    }
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        return Ok(None);
                    }
                    if self.protobuf {
                        return Err(Error::Protocol(
                            "the cursor response ended inside a message".into(),
                        ));
                    }
                    return Ok(Some(std::mem::take(&mut self.buf)));
                }
            }
        }
    }

    /// Takes one complete message off the front of the buffer, if there is one.
    fn split_frame(&mut self) -> Result<Option<Vec<u8>>> {
        if !self.protobuf {
            return Ok(self.buf.iter().position(|&b| b == b'\n').map(|i| {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                line
            }));
        }
        // A varint length, then that many bytes.
        let mut len: u64 = 0;
        for (i, byte) in self.buf.iter().enumerate().take(10) {
            len |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let start = i + 1;
                let len = usize::try_from(len)
                    .map_err(|_| Error::Protocol("a cursor message is too large".into()))?;
                let Some(end) = start.checked_add(len) else {
                    return Err(Error::Protocol("a cursor message is too large".into()));
                };
                if self.buf.len() < end {
                    return Ok(None);
                }
                let frame = self
                    .buf
                    .get(start..end)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                self.buf.drain(..end);
                return Ok(Some(frame));
            }
        }
        if self.buf.len() >= 10 {
            return Err(Error::Protocol(
                "invalid length prefix in a cursor response".into(),
            ));
        }
        Ok(None)
    }

    /// The next cursor entry, or `None` at the end.
    pub(crate) async fn next_entry(&mut self, remote: &Remote) -> Result<Option<CursorEntry>> {
        let Some(frame) = self.next_frame(remote).await? else {
            return Ok(None);
        };
        let entry = if self.protobuf {
            protobuf::decode::<CursorEntry>(&frame)
                .map_err(|e| Error::Protocol(format!("invalid Protobuf cursor entry: {e}")))?
        } else {
            serde_json::from_slice(&frame)
                .map_err(|e| Error::Protocol(format!("invalid JSON cursor entry: {e}")))?
        };
        Ok(Some(entry))
    }
}

/// Whether an answer says the Protobuf endpoint does not exist on this server. A 404 with an
/// error code in its body (an unknown database, say) is a real answer, not a missing route.
fn is_missing_endpoint(status: StatusCode, body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Coded {
        code: Option<String>,
    }
    let coded = serde_json::from_slice::<Coded>(body).is_ok_and(|b| b.code.is_some());
    !coded
        && matches!(
            status,
            StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
        )
}

/// A stream on a remote server: its baton between requests.
pub(crate) struct RemoteStream {
    remote: Arc<Remote>,
    baton: Option<String>,
    /// A request is in flight or failed in transit: the baton may be stale.
    broken: bool,
    /// The server closed the stream (it returned no baton).
    closed: bool,
}

impl RemoteStream {
    pub(crate) fn new(remote: Arc<Remote>) -> RemoteStream {
        RemoteStream {
            remote,
            baton: None,
            broken: false,
            closed: false,
        }
    }

    /// Runs `reqs` on the stream in one HTTP request.
    pub(crate) async fn run(&mut self, reqs: Vec<StreamRequest>) -> Result<Vec<StreamResult>> {
        if self.broken {
            return Err(Error::TransactionLost(
                "an earlier request on this stream was cancelled or failed in transit".into(),
            ));
        }
        if self.closed {
            return Err(Error::TransactionLost(
                "the server closed this stream".into(),
            ));
        }
        let repeatable = self.baton.is_none() && reqs.iter().all(is_repeatable);
        let body = PipelineReqBody {
            baton: self.baton.clone(),
            requests: reqs,
        };
        self.broken = true;
        let resp = self.remote.pipeline(&body, repeatable).await?;
        self.broken = false;
        self.closed = resp.baton.is_none();
        self.baton = resp.baton;
        Ok(resp.results)
    }

    /// Opens a cursor on this stream. The stream counts as broken until
    /// [`RemoteStream::cursor_done`] says the whole response was read.
    pub(crate) async fn open_cursor(
        &mut self,
        batch: skylite_proto::Batch,
    ) -> Result<CursorFrames> {
        if self.broken || self.closed {
            return Err(Error::TransactionLost(
                "an earlier request on this stream was cancelled or failed in transit".into(),
            ));
        }
        let body = CursorReqBody {
            baton: self.baton.clone(),
            batch,
        };
        self.broken = true;
        let (head, frames) = self.remote.cursor(&body).await?;
        self.closed = head.baton.is_none();
        self.baton = head.baton;
        Ok(frames)
    }

    /// The cursor's response was read to its end: the stream is usable again.
    pub(crate) fn cursor_done(&mut self) {
        self.broken = false;
    }

    /// The server this stream is on.
    pub(crate) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    /// Whether requests can still go on this stream.
    pub(crate) fn is_usable(&self) -> bool {
        !self.broken && !self.closed
    }

    /// Whether the stream has server-side state worth closing.
    pub(crate) fn is_open(&self) -> bool {
        self.baton.is_some()
    }

    /// Sends `close` for the stream in a background task, without waiting (for `Drop`). The
    /// server rolls back the open transaction. Without a tokio runtime to run the task on, the
    /// server rolls it back when the stream idles out.
    pub(crate) fn close_in_background(&mut self, handle: Option<&tokio::runtime::Handle>) {
        let Some(baton) = self.baton.take() else {
            return;
        };
        let remote = self.remote.clone();
        let task = async move {
            let body = PipelineReqBody {
                baton: Some(baton),
                requests: vec![StreamRequest::Close],
            };
            let _ = remote.pipeline(&body, false).await;
        };
        match tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| handle.cloned())
        {
            Some(h) => {
                h.spawn(task);
            }
            None => drop(task),
        }
    }
}

/// Whether a request may be repeated on a fresh stream.
fn is_repeatable(req: &StreamRequest) -> bool {
    match req {
        StreamRequest::Close | StreamRequest::GetAutocommit => true,
        StreamRequest::Execute { stmt } => stmt.sql.as_deref().is_some_and(is_read_only_sql),
        StreamRequest::Describe { .. } => true,
        _ => false,
    }
}

/// A conservative test for SQL that cannot write: it starts with `SELECT`, `VALUES` or
/// `EXPLAIN` (after whitespace and comments). `WITH` is not accepted (it may lead to a write).
pub(crate) fn is_read_only_sql(sql: &str) -> bool {
    let word = skylite_proto::sql_text::first_word(sql);
    ["SELECT", "VALUES", "EXPLAIN"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_sql_is_recognised_conservatively() {
        assert!(is_read_only_sql("  select 1"));
        assert!(is_read_only_sql("-- c\n/* x */ SELECT * FROM t"));
        assert!(is_read_only_sql("EXPLAIN QUERY PLAN SELECT 1"));
        assert!(!is_read_only_sql("INSERT INTO t VALUES (1)"));
        assert!(!is_read_only_sql("WITH x AS (SELECT 1) DELETE FROM t"));
        assert!(!is_read_only_sql("PRAGMA user_version = 3"));
        assert!(!is_read_only_sql("SELECTX"));
    }
}
