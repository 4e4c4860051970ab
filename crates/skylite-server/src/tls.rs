//! TLS: loading a PEM certificate chain and private key into a rustls server configuration
//! ([`TlsConfig`]), and the handshake of one connection ([`handshake`]).
//!
//! The accept loop ([`crate::listener`], shared with plain HTTP) only accepts TCP connections;
//! each connection's TLS handshake runs in its own task under a time limit, so a slow, silent
//! or failing client never holds up anyone else, and the connection holds one of the
//! `--max-connections` permits from accept on, handshake included. After the handshake the
//! connection is served exactly like plain HTTP.
//!
//! rustls runs with the `ring` crypto provider (no C toolchain beyond `cc`, no cmake). ALPN
//! advertises `http/1.1` only: the server speaks HTTP/1.1.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
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
///
/// Clones share the current configuration: [`TlsConfig::reload`] reads the files again and
/// swaps it for every clone, so new connections get the new certificate while connections
/// already open keep theirs (a bad new pair keeps the old one).
#[derive(Clone)]
pub struct TlsConfig {
    cert_source: PathBuf,
    key_source: PathBuf,
    from_files: bool,
    server_config: Arc<RwLock<Arc<rustls::ServerConfig>>>,
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
        let mut config = Self::build(&cert_pem, cert_file, &key_pem, key_file)?;
        config.from_files = true;
        Ok(config)
    }

    /// Reads the certificate and key files again (after a renewal) and serves new connections
    /// with them. On any error the current pair stays in use and the error is returned.
    /// Returns `false` if there is nothing to reload (the pair came from memory).
    pub fn reload(&self) -> Result<bool, TlsError> {
        if !self.from_files {
            return Ok(false);
        }
        let fresh = TlsConfig::load(&self.cert_source, &self.key_source)?;
        let next = fresh.rustls_config();
        *self
            .server_config
            .write()
            .unwrap_or_else(|p| p.into_inner()) = next;
        Ok(true)
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

    /// The rustls configuration new connections are served with.
    pub fn rustls_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
            from_files: false,
            server_config: Arc::new(RwLock::new(Arc::new(config))),
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

/// Performs the TLS handshake of one accepted connection under `timeout`. A failure or a
/// timeout is logged at debug level and only ends that connection (`None`).
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out after {timeout:?}");
            None
        }
    }
}
