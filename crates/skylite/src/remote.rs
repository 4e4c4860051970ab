//! Where the CLI's server is and how it talks to it: `--url` and `--token` (or the environment
//! and `.env`, read as skylite-client reads them), and plain HTTP(S) requests to the admin API
//! with streamed bodies in both directions (hyper HTTP/1.1, rustls for `https://`).
//!
//! URL and token: `--url` wins; else the first of `SKYLITE_URL`, `TURSO_DATABASE_URL`,
//! `LIBSQL_URL` in the environment or `./.env`. `--token` wins; else the token of the same
//! family as the URL (`SKYLITE_AUTH_TOKEN`, `TURSO_AUTH_TOKEN`, `LIBSQL_AUTH_TOKEN`); with an
//! explicit `--url`, the first of those three that is set. `SKYLITE_CA_FILE` adds trusted CA
//! certificates for `https://`.
//!
//! For the admin API the URL is the server's base URL; a database path at its end
//! (`/db/<name>`, `/dev/<name>`) is dropped, so the `SKYLITE_URL` that `skylite db env` writes
//! works too (its token, though, is not an admin's).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `--url` and `--token` every command that talks to a server takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServerArgs {
    /// Server URL (for `db` commands its base URL, e.g. http://127.0.0.1:8080). Default:
    /// SKYLITE_URL, TURSO_DATABASE_URL or LIBSQL_URL from the environment or ./.env.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token (an admin token for `db` commands). Default: SKYLITE_AUTH_TOKEN,
    /// TURSO_AUTH_TOKEN or LIBSQL_AUTH_TOKEN from the environment or ./.env.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// A URL and a token, resolved.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Reads one variable from the environment or `./.env` (the environment wins).
fn env_lookup() -> Result<impl Fn(&str) -> Option<String>, String> {
    let path = std::path::Path::new(".env");
    let file: Vec<(String, String)> = if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read .env: {e}"))?;
        skylite_client::config::parse_dotenv(&text).map_err(|e| format!(".env: {e}"))?
    } else {
        Vec::new()
    };
    Ok(move |key: &str| {
        std::env::var(key)
            .ok()
            .or_else(|| {
                file.iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            })
            .filter(|v| !v.is_empty())
    })
}

impl ServerArgs {
    /// The URL and token to use, from the flags or the environment and `.env`.
    pub fn resolve(&self) -> Result<Target, String> {
        let get = env_lookup()?;
        let ca_file = get("SKYLITE_CA_FILE").map(PathBuf::from);
        let families = [
            ("SKYLITE_URL", "SKYLITE_AUTH_TOKEN"),
            ("TURSO_DATABASE_URL", "TURSO_AUTH_TOKEN"),
            ("LIBSQL_URL", "LIBSQL_AUTH_TOKEN"),
        ];
        let (url, env_token) = match &self.url {
            Some(url) => (url.clone(), families.iter().find_map(|(_, t)| get(t))),
            None => families
                .iter()
                .find_map(|(u, t)| {
                    get(u).map(|url| (url, get(t).or_else(|| get("SKYLITE_AUTH_TOKEN"))))
                })
                .ok_or(
                    "no server URL: pass --url URL, or set SKYLITE_URL (or TURSO_DATABASE_URL, \
                     LIBSQL_URL) in the environment or in .env",
                )?,
        };
        let token = self.token.clone().filter(|t| !t.is_empty()).or(env_token);
        Ok(Target {
            url,
            token,
            ca_file,
        })
    }
}

/// A server's admin API: base URL, token, TLS.
pub struct Server {
    /// The base URL as shown in messages (`http://host:port` plus any proxy prefix).
    pub base: String,
    tls: Option<TlsConnector>,
    host: String,
    port: u16,
    authority: String,
    /// Path prefix before `/v1/...` (no trailing slash).
    prefix: String,
    auth_header: Option<String>,
}

/// A request body: empty, whole, or streamed.
pub type ReqBody = BoxBody<Bytes, std::io::Error>;

/// An empty request body.
pub fn empty_body() -> ReqBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON request body.
pub fn json_body(value: &serde_json::Value) -> ReqBody {
    Full::new(Bytes::from(value.to_string()))
        .map_err(|never| match never {})
        .boxed()
}

impl Server {
    /// The server of `target` (its base URL: a trailing `/db/<name>` is dropped).
    pub fn new(target: &Target) -> Result<Server, String> {
        let raw = target.url.trim();
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
            format!("{raw:?} is not a server URL (expected http://host:port or https://...)")
        })?;
        let scheme = scheme.to_ascii_lowercase();
        let mut tls = match scheme.as_str() {
            "http" | "ws" => false,
            "https" | "wss" | "libsql" => true,
            other => {
                return Err(format!(
                    "unsupported URL scheme {other:?} in {raw:?} (expected http:// or https://)"
                ))
            }
        };
        let uri: hyper::Uri = format!("http://{rest}")
            .parse()
            .map_err(|e| format!("invalid URL {raw:?}: {e}"))?;
        if scheme == "libsql"
            && uri
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "tls=0"))
        {
            tls = false;
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("the URL {raw:?} names no host"))?
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = match uri.port_u16() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let prefix = base_prefix(uri.path());
        let tls_connector = if tls {
            Some(tls_connector(target.ca_file.as_deref())?)
        } else {
            None
        };
        Ok(Server {
            base: format!(
                "{}://{authority}{prefix}",
                if tls { "https" } else { "http" }
            ),
            tls: tls_connector,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority,
            prefix,
            auth_header: target.token.as_ref().map(|t| format!("Bearer {t}")),
        })
    }

    /// The URL of database `name` for HTTP clients (with the trailing slash they need).
    pub fn database_url(&self, name: &str) -> String {
        format!("{}/db/{name}/", self.base)
    }

    /// Whether a token will be sent.
    pub fn has_token(&self) -> bool {
        self.auth_header.is_some()
    }

    /// Sends one request to `<base><path>` on a new connection and returns the response head
    /// and its streaming body (any status).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: ReqBody,
    ) -> Result<Response<Incoming>, String> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(HOST, &self.authority)
            .header(
                USER_AGENT,
                concat!("skylite-cli/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(auth) = &self.auth_header {
            builder = builder.header(AUTHORIZATION, auth);
        }
        for (k, v) in headers {
            builder = builder.header(*k, v);
        }
        let request = builder
            .body(body)
            .map_err(|e| format!("invalid request: {e}"))?;
        let mut sender = self.connect().await?;
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request to {} failed: {e}", self.base))
    }

    /// Sends a JSON request and returns the JSON answer of a 2xx, or the server's error.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let (headers, body) = match &body {
            Some(v) => (
                vec![(CONTENT_TYPE.as_str(), "application/json".to_owned())],
                json_body(v),
            ),
            None => (Vec::new(), empty_body()),
        };
        let resp = self.send(method, path, &headers, body).await?;
        let status = resp.status();
        let bytes = read_all(resp).await?;
        if !status.is_success() {
            return Err(self.error_text(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "the server {} answered something that is not JSON ({e}): {}",
                self.base,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        })
    }

    /// Turns an error response into a message naming the server and saying what it said.
    pub fn error_text(&self, status: StatusCode, body: &[u8]) -> String {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let message = parsed
            .as_ref()
            .and_then(|v| v["message"].as_str().or(v["error"].as_str()))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
                if text.trim().is_empty() {
                    status.canonical_reason().unwrap_or("").to_owned()
                } else {
                    text.trim().to_owned()
                }
            });
        let code = parsed
            .as_ref()
            .and_then(|v| v["code"].as_str())
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let hint = match status.as_u16() {
            401 if !self.has_token() => {
                " (no token given: pass --token, or set SKYLITE_AUTH_TOKEN; mint an admin token \
                 with `skylite token create --data-dir DIR --admin`)"
            }
            401 | 403 => {
                " (this needs an admin token: `skylite token create --data-dir DIR --admin`)"
            }
            404 if message.trim().is_empty() || code.is_empty() => {
                " (is this a skylite server with the admin API?)"
            }
            _ => "",
        };
        format!(
            "the server {} answered {}{code}: {message}{hint}",
            self.base,
            status.as_u16()
        )
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>, String> {
        let addr = (self.host.as_str(), self.port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("timed out connecting to {}", self.base))?
            .map_err(|e| format!("cannot connect to {}: {e}", self.base))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(TokioIo::new(tcp), &self.base).await,
            Some(connector) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("invalid TLS server name {:?}: {e}", self.host))?;
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| format!("timed out in the TLS handshake with {}", self.base))?
                    .map_err(|e| format!("TLS handshake with {} failed: {e}", self.base))?;
                handshake(TokioIo::new(stream), &self.base).await
            }
        }
    }
}

async fn handshake<T>(
    io: T,
    base: &str,
) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake with {base} failed: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Reads a whole (small) response body.
pub async fn read_all(resp: Response<Incoming>) -> Result<Bytes, String> {
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("the server's answer broke off: {e}"))
}

/// The base path of a server URL: no trailing slash, no trailing `/db/<name>` or `/dev/<name>`.
fn base_prefix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let mut parts: Vec<&str> = trimmed.split('/').collect();
    if parts.len() >= 3 {
        let n = parts.len();
        if matches!(parts[n - 2], "db" | "dev") && !parts[n - 1].is_empty() {
            parts.truncate(n - 2);
        }
    }
    parts.join("/").trim_end_matches('/').to_owned()
}

fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| format!("invalid PEM in the CA file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("unusable certificate in {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::base_prefix;

    #[test]
    fn database_paths_are_dropped_from_the_base() {
        assert_eq!(base_prefix(""), "");
        assert_eq!(base_prefix("/"), "");
        assert_eq!(base_prefix("/db/app/"), "");
        assert_eq!(base_prefix("/db/app"), "");
        assert_eq!(base_prefix("/dev/app"), "");
        assert_eq!(base_prefix("/proxy/db/app/"), "/proxy");
        assert_eq!(base_prefix("/proxy/"), "/proxy");
    }
}
