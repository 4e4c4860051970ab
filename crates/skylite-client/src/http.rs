//! The one HTTP transport of skylite: hyper 1 HTTP/1.1 connections to one server, over rustls
//! for `https://` (the public web roots plus an optional CA file), opened within a connect
//! timeout and kept alive in a small pool. Hrana pipelines (the `remote` module) and the admin API
//! ([`crate::admin`], used by the `skylite` command) both go through it.
//!
//! A request taken from the pool on a keep-alive connection that the server has closed meanwhile
//! is handed back unsent by hyper; the transport then tries the next connection, so such
//! a request is never lost and never sent twice.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, HOST, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::RemoteUrl;
use crate::error::{Error, Result};

/// Idle keep-alive connections kept per server.
const MAX_IDLE: usize = 32;

/// A request body: empty, whole, or streamed (e.g. a file upload, built with
/// `http_body_util::StreamBody`).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// An empty request body.
pub fn empty_body() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A request body held whole in memory.
pub fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Pooled HTTP/1.1 connections to one server.
pub(crate) struct HttpClient {
    tls: Option<TlsConnector>,
    /// Host name or IP address, without IPv6 brackets.
    host: String,
    port: u16,
    /// `host:port` as the `Host` header says it.
    pub(crate) authority: String,
    auth_header: Option<String>,
    user_agent: &'static str,
    connect_timeout: Duration,
    idle: Mutex<Vec<SendRequest<Body>>>,
    /// HTTP requests sent (attempts included), for tests and diagnostics.
    requests_sent: AtomicU64,
}

/// The outcome of a failed attempt: whether the request may have reached the server.
pub(crate) enum Attempt {
    /// Nothing reached the server: repeating it is harmless.
    NotSent(Error),
    /// The request went out (or may have): repeating it could do it twice.
    Sent(Error),
}

impl Attempt {
    pub(crate) fn into_error(self) -> Error {
        match self {
            Attempt::NotSent(e) | Attempt::Sent(e) => e,
        }
    }
}

impl HttpClient {
    /// A client for the server of `url`, sending `token` as a bearer token.
    pub(crate) fn new(
        url: &RemoteUrl,
        token: Option<&str>,
        ca_file: Option<&Path>,
        connect_timeout: Duration,
        user_agent: &'static str,
    ) -> Result<HttpClient> {
        let tls = if url.tls {
            Some(tls_connector(ca_file)?)
        } else {
            None
        };
        Ok(HttpClient {
            tls,
            host: url.host.clone(),
            port: url.port,
            authority: url.authority.clone(),
            auth_header: token.map(|t| format!("Bearer {t}")),
            user_agent,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            requests_sent: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent so far.
    pub(crate) fn requests_sent(&self) -> u64 {
        self.requests_sent.load(Ordering::Relaxed)
    }

    /// Whether a token is sent with each request.
    pub(crate) fn has_token(&self) -> bool {
        self.auth_header.is_some()
    }

    /// A request for `path_and_query` with the `Host`, `User-Agent` and `Authorization`
    /// headers set, plus `headers`.
    pub(crate) fn request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Request<Body>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, &self.authority)
            .header(USER_AGENT, self.user_agent);
        if let Some(auth) = &self.auth_header {
            builder = builder.header(AUTHORIZATION, auth);
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder
            .body(body)
            .map_err(|e| Error::Config(format!("invalid request: {e}")))
    }

    /// Sends one request on a pooled connection (or a new one) and returns the response head
    /// (the body still to be read) with the connection it came on; give the connection back
    /// with [`HttpClient::put_idle`] once the body is read to its end.
    pub(crate) async fn send(
        &self,
        mut request: Request<Body>,
    ) -> Result<(Response<Incoming>, SendRequest<Body>), Attempt> {
        self.requests_sent.fetch_add(1, Ordering::Relaxed);
        // A pooled connection first; if the server closed it, hyper gives the request back
        // unsent and we go on with the next one (or a new connection).
        loop {
            let (mut sender, fresh) = match self.take_idle() {
                Some(s) => (s, false),
                None => (self.connect().await.map_err(Attempt::NotSent)?, true),
            };
            if let Err(e) = sender.ready().await {
                if fresh {
                    return Err(Attempt::NotSent(Error::Connect(format!(
                        "the new connection to {} closed at once: {e}",
                        self.authority
                    ))));
                }
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => {
                        request = unsent;
                        continue;
                    }
                    Some(_) => {
                        return Err(Attempt::NotSent(Error::Connect(format!(
                            "the connection closed before the request was sent: {}",
                            e.error()
                        ))))
                    }
                    None => {
                        return Err(Attempt::Sent(Error::Connect(format!(
                            "the connection broke during the request: {}",
                            e.error()
                        ))))
                    }
                },
            }
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to its end to the pool.
    pub(crate) fn put_idle(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// Opens a new HTTP/1.1 connection (TCP, then TLS for https) within the connect timeout.
    async fn connect(&self) -> Result<SendRequest<Body>> {
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| {
                    Error::Connect(format!("cannot connect to {}: {e}", self.authority))
                })?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => handshake(tcp).await,
                Some(connector) => {
                    let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                        Error::Config(format!("invalid TLS server name {:?}: {e}", self.host))
                    })?;
                    let tls = connector.connect(name, tcp).await.map_err(|e| {
                        Error::Connect(format!("TLS handshake with {} failed: {e}", self.authority))
                    })?;
                    handshake(tls).await
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: format!("connecting to {}", self.authority),
                after: self.connect_timeout,
            }),
        }
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<Body>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Error::Connect(format!("HTTP handshake failed: {e}")))?;
    tokio::spawn(async move {
        // The connection ends when the server closes it or every sender is dropped.
        let _ = conn.await;
    });
    Ok(sender)
}

/// The rustls client: the public web roots (webpki-roots) plus the CA file, if any.
fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::Config(format!("cannot read CA file {}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| {
                Error::Config(format!("invalid PEM in CA file {}: {e}", path.display()))
            })?;
        if certs.is_empty() {
            return Err(Error::Config(format!(
                "the CA file {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                Error::Config(format!("unusable certificate in {}: {e}", path.display()))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Turns a non-2xx answer into an error, reading the server's `{"message", "code"}` if present.
pub(crate) fn http_error(status: StatusCode, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct Body {
        message: Option<String>,
        error: Option<String>,
        code: Option<String>,
    }
    let (message, code) = match serde_json::from_slice::<Body>(body) {
        Ok(b) => (
            b.message
                .or(b.error)
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
            b.code,
        ),
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            let text = if text.is_empty() {
                status.canonical_reason().unwrap_or("").to_owned()
            } else {
                text
            };
            (text, None)
        }
    };
    let status = status.as_u16();
    if status == 401 || status == 403 {
        Error::Auth {
            status,
            code,
            message,
        }
    } else {
        Error::Http {
            status,
            code,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_read_the_servers_message() {
        let e = http_error(
            StatusCode::UNAUTHORIZED,
            br#"{"message":"the token has expired","code":"AUTH_EXPIRED"}"#,
        );
        assert!(matches!(e, Error::Auth { status: 401, .. }), "{e:?}");
        assert!(e.to_string().contains("the token has expired"));
        let e = http_error(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(e.to_string(), "HTTP 502: Bad Gateway");
    }
}
