//! TLS: loading a PEM certificate chain and private key into a rustls server configuration
//! ([`TlsConfig`]), and the accept loop that serves the router over TLS ([`serve_tls`]).
//!
//! The accept loop only accepts TCP connections; each connection's TLS handshake runs in its own
//! task under a time limit, so a slow, silent or failing client never holds up anyone else. After
//! the handshake the connection is served by hyper's HTTP/1.1 connection (with upgrades, so
//! WebSocket works) and the same axum [`Router`] as plain HTTP. On shutdown the loop stops
//! accepting, handshakes in progress are dropped, connections finish the requests they are
//! running and close, and only then does [`serve_tls`] return.
//!
//! rustls runs with the `ring` crypto provider (no C toolchain beyond `cc`, no cmake). ALPN
//! advertises `http/1.1` only: the server speaks HTTP/1.1.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its TLS handshake, unless configured otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate or key could not be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read (missing, unreadable).
    #[error("cannot read the TLS {what} file {}: {source}", path.display())]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("the TLS {what} file {} is not valid PEM: {detail}", path.display())]
    Pem {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },
    /// The certificate file holds no certificate.
    #[error(
        "the TLS certificate file {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" \
         sections, the server's certificate first, then its intermediates)",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no (unencrypted) private key.
    #[error(
        "the TLS key file {} holds no private key (expected an unencrypted PEM \"BEGIN PRIVATE \
         KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" section{hint})",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
        /// A hint about what the file holds instead.
        hint: &'static str,
    },
    /// The private key is not the one the certificate was issued for.
    #[error(
        "the TLS key file {} does not match the certificate in {} (the key must belong to the \
         first certificate of the chain)",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate or key for another reason (unsupported key type, ...).
    #[error("cannot use the TLS certificate {} with the key {}: {detail}", cert.display(), key.display())]
    Invalid {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
}

/// A loaded certificate chain and key, ready to serve: what `--tls-cert`/`--tls-key` become.
#[derive(Clone)]
pub struct TlsConfig {
    cert_source: PathBuf,
    key_source: PathBuf,
    server_config: Arc<rustls::ServerConfig>,
    /// How long a client may take to complete its handshake before it is disconnected.
    pub handshake_timeout: Duration,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert_source)
            .field("key", &self.key_source)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first, then intermediates) and a
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) and checks that they belong together.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<TlsConfig, TlsError> {
        let cert_pem = std::fs::read(cert_file).map_err(|source| TlsError::Read {
            what: "certificate",
            path: cert_file.to_owned(),
            source,
        })?;
        let key_pem = std::fs::read(key_file).map_err(|source| TlsError::Read {
            what: "key",
            path: key_file.to_owned(),
            source,
        })?;
        Self::build(&cert_pem, cert_file, &key_pem, key_file)
    }

    /// Like [`TlsConfig::load`], from PEM text already in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsConfig, TlsError> {
        Self::build(
            cert_pem,
            Path::new("<certificate PEM>"),
            key_pem,
            Path::new("<key PEM>"),
        )
    }

    /// Where the certificate chain came from (a file name, or a placeholder for in-memory PEM).
    pub fn cert_source(&self) -> &Path {
        &self.cert_source
    }

    /// Where the private key came from.
    pub fn key_source(&self) -> &Path {
        &self.key_source
    }

    /// The rustls configuration connections are served with.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.server_config
    }

    fn build(
        cert_pem: &[u8],
        cert_path: &Path,
        key_pem: &[u8],
        key_path: &Path,
    ) -> Result<TlsConfig, TlsError> {
        let chain = parse_chain(cert_pem, cert_path)?;
        let key = parse_key(key_pem, key_path)?;
        let invalid = |e: rustls::Error| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::Mismatch {
                    cert: cert_path.to_owned(),
                    key: key_path.to_owned(),
                }
            }
            other => TlsError::Invalid {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
                detail: other.to_string(),
            },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(invalid)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Session tickets let a reconnecting client skip the full handshake.
        if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
            config.ticketer = ticketer;
        }
        Ok(TlsConfig {
            cert_source: cert_path.to_owned(),
            key_source: key_path.to_owned(),
            server_config: Arc::new(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }
}

fn pem_error(what: &'static str, path: &Path, e: pem::Error) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

fn parse_chain(pem_text: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("certificate", path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn parse_key(pem_text: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem_text) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let text = String::from_utf8_lossy(pem_text);
            let hint = if text.contains("ENCRYPTED PRIVATE KEY") {
                "; this one is encrypted: decrypt it with `openssl pkey -in KEY -out PLAIN`"
            } else if text.contains("BEGIN CERTIFICATE") {
                "; this file holds a certificate: are --tls-cert and --tls-key swapped?"
            } else {
                ""
            };
            Err(TlsError::NoKey {
                path: path.to_owned(),
                hint,
            })
        }
        Err(e) => Err(pem_error("key", path, e)),
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves; then stops accepting, lets
/// every connection finish the requests it is running, and returns once all have closed.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    tls: TlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls.server_config.clone());
    // `true` once shutdown has begun; every connection task watches it.
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; `closed()` resolves when the last one is gone.
    let (alive_tx, alive_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let conn = Conn {
            acceptor: acceptor.clone(),
            router: router.clone(),
            handshake_timeout: tls.handshake_timeout,
            stop: stop_rx.clone(),
        };
        let alive = alive_rx.clone();
        tokio::spawn(async move {
            conn.run(tcp, peer).await;
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_rx);
    alive_tx.closed().await;
    Ok(())
}

/// Errors of one incoming connection, not of the listener: the loop just goes on.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// What one connection task needs.
struct Conn {
    acceptor: TlsAcceptor,
    router: Router,
    handshake_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Conn {
    async fn run(mut self, tcp: TcpStream, peer: SocketAddr) {
        // Responses are often written as several small frames (WebSocket): no Nagle delays.
        let _ = tcp.set_nodelay(true);
        let handshake = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp));
        let tls = tokio::select! {
            result = handshake => match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out after {:?}", self.handshake_timeout);
                    return;
                }
            },
            () = stopped(&mut self.stop) => return,
        };
        let service = TowerToHyperService::new(self.router);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades();
        let mut connection = pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stopped(&mut self.stop) => {
                // Finish the request in progress (if any), then close.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "TLS connection ended with an error: {e}");
        }
    }
}

/// Resolves once shutdown has begun (or the accept loop is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
