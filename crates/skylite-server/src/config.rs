//! Server settings: where the data lives, engine limits, stream expiry, request limits, TLS.

use std::path::PathBuf;
use std::time::Duration;

use skylite_engine::EngineConfig;

use crate::tls::TlsConfig;

/// Everything the server needs to know at start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The data folder: one sub-folder per database, plus `.skylite/` for server secrets.
    pub data_dir: PathBuf,
    /// Engine settings (durability, transaction timeout, response limit, ...).
    pub engine: EngineConfig,
    /// How long an idle stream lives.
    pub stream_idle_timeout: Duration,
    /// Largest request body accepted (larger ones get 413).
    pub max_body_bytes: usize,
    /// How often an open WebSocket is pinged; a peer silent for three periods is dropped.
    pub ws_keepalive: Duration,
    /// How long a WebSocket may stay open without sending `hello` (then it is closed, 1008).
    pub ws_hello_timeout: Duration,
    /// How long the server waits on a client that takes nothing it is sent (a cursor body or a
    /// WebSocket that is not read): a stalled cursor is ended (its transaction rolled back),
    /// a socket that does not drain is closed. A transaction holding the write lock gives it
    /// up sooner, as soon as a writer has waited `--txn-timeout`.
    pub send_timeout: Duration,
    /// Most live Hrana-over-HTTP streams one principal (token) may hold on one database;
    /// beyond it a new stream is refused with 429 `STREAMS_EXHAUSTED`. A one-shot pipeline
    /// (ending in `close`) opens no live stream and is never refused. With auth off every
    /// client is the same principal, so this caps the live streams of a database.
    pub max_streams_per_principal: usize,
    /// Largest database file the import endpoint accepts (streamed to disk, so not bound by
    /// `max_body_bytes`).
    pub max_import_bytes: u64,
    /// Serve HTTPS/WSS with this certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Who may do what (on by default).
    pub auth: AuthSettings,
    /// An open database nobody uses for this long is closed (`--db-idle-timeout`).
    pub db_idle_timeout: Duration,
    /// Most databases open at once (`--max-open-databases`); opening one more closes the
    /// least recently used idle one.
    pub max_open_databases: usize,
    /// A request head must arrive within this time of its first byte; a new connection must
    /// send its first request head within this time.
    pub header_timeout: Duration,
    /// An idle keep-alive connection (no byte of a next request) is closed after this time.
    pub idle_timeout: Duration,
    /// Longest wait for the next bytes of a request body (then 408 and the connection closes),
    /// and longest a write to a peer that does not read may stall.
    pub body_timeout: Duration,
    /// Slowest average request body rate, in bytes per second, beyond the first `body_timeout`
    /// of waiting (0: no rate rule, only `body_timeout` per wait).
    pub body_min_rate: u64,
    /// Most client connections open at once (TLS handshakes and WebSockets included); more are
    /// refused. Also bounded by half the process's open-file limit.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take to finish before open transactions
    /// are rolled back and the databases closed anyway (`--shutdown-timeout`).
    pub shutdown_timeout: Duration,
    /// Continuous backup to object storage (`--backup`), if on.
    pub backup: Option<BackupSettings>,
}

/// Continuous backup: where to and how.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// The `s3://BUCKET/PREFIX` it was given (for the logs).
    pub url: String,
    /// The object store, paths relative to the prefix.
    pub store: std::sync::Arc<dyn object_store::ObjectStore>,
    /// Mode, spool limit, timeouts, retention.
    pub config: skylite_backup::BackupConfig,
}

/// Authentication settings; the keys themselves live in the data folder.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `--no-auth`: every request may do everything.
    pub disabled: bool,
    /// `--auth-jwt-key-file`: more trusted public keys (tokens minted elsewhere, e.g. for sqld).
    pub key_files: Vec<PathBuf>,
    /// `--auth-legacy-full-access`: a token without `id`, `p` or `skylite_admin` claims may
    /// use every database, as on sqld.
    pub legacy_full_access: bool,
}

impl ServerConfig {
    /// Defaults with the given data folder.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            engine: EngineConfig::default(),
            stream_idle_timeout: Duration::from_secs(60),
            max_body_bytes: 32 * 1024 * 1024,
            ws_keepalive: Duration::from_secs(30),
            ws_hello_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            max_streams_per_principal: 128,
            max_import_bytes: 64 * 1024 * 1024 * 1024,
            tls: None,
            auth: AuthSettings::default(),
            db_idle_timeout: Duration::from_secs(300),
            max_open_databases: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 1024,
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(30),
            backup: None,
        }
    }

    /// The folder of the database `name`.
    pub fn database_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// The SQLite file of the database `name`.
    pub fn database_file(&self, name: &str) -> PathBuf {
        self.database_dir(name).join("data.db")
    }

    /// The folder of server-private files (keys).
    pub fn private_dir(&self) -> PathBuf {
        self.data_dir.join(".skylite")
    }
}
