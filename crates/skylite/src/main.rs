//! The `skylite` command: `skylite serve` runs the server; `skylite bench` measures it;
//! `skylite db ...` moves and manages databases on a server; `skylite shell` is an SQL shell.
//!
//! Every flag can also come from a `SKYLITE_*` environment variable (named after the flag).
//!
//! Errors print as `error: ` and their chain of causes (`what was done: why`). Exit codes, for
//! scripts: 0 success; 1 any other failure; 2 a usage error (clap); 3 the server could not be
//! reached; 4 the server refused the token (HTTP 401/403); 5 not found (HTTP 404: no such
//! database); `skylite bench` exits with the code of `skylite-bench`.

mod bench_cmd;
mod db_cmd;
mod limits_cmd;
mod local_server;
mod remote;
mod restore_cmd;
mod shell;
mod sql_split;
mod token_cmd;
mod transfer_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use skylite_engine::{Durability, EngineConfig};
use skylite_server::{App, ServerConfig, TlsConfig};

#[derive(Parser)]
#[command(
    name = "skylite",
    version,
    about = "SQLite in the cloud that you run yourself"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the databases in a data folder over Hrana (HTTP) and the legacy HTTP API.
    Serve(ServeArgs),
    /// Load a server over HTTP and WebSocket and the same engine in-process, and print the
    /// figures (runs the separate skylite-bench binary next to this one).
    Bench(bench_cmd::BenchArgs),
    /// Make an Ed25519 key pair for signing tokens (jwt.key, jwt.pub).
    Keygen(token_cmd::KeygenArgs),
    /// Create, revoke or inspect tokens.
    Token(token_cmd::TokenArgs),
    /// Databases on a server: import, export, dump, shell, env, create, list, destroy.
    Db(db_cmd::DbArgs),
    /// An interactive SQL shell on a local file, a skylite server or any Hrana server.
    Shell(shell::ShellArgs),
    /// Rebuild databases from a continuous backup (s3://BUCKET/PREFIX) into a data folder.
    Restore(restore_cmd::RestoreArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// fsync the WAL before acknowledging a write (group commit shares fsyncs).
    Full,
    /// Survive a server crash, not a power loss: no fsync per write.
    Normal,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SKYLITE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data folder (created if missing): one sub-folder per database.
    #[arg(long, env = "SKYLITE_DATA_DIR", default_value = "./skylite-data")]
    data_dir: PathBuf,
    /// When an acknowledged write is on disk.
    #[arg(long, env = "SKYLITE_DURABILITY", value_enum, default_value = "full")]
    durability: DurabilityArg,
    /// Seconds an idle stream (and its open transaction) lives.
    #[arg(long, env = "SKYLITE_STREAM_IDLE_TIMEOUT", default_value_t = 60)]
    stream_idle_timeout: u64,
    /// Seconds a transaction may hold the write lock while other writers wait.
    #[arg(long, env = "SKYLITE_TXN_TIMEOUT", default_value_t = 5)]
    txn_timeout: u64,
    /// Seconds one statement may run in SQLite before it is stopped with STATEMENT_TIMEOUT
    /// (time spent waiting for a slow reader does not count; 0: no limit).
    #[arg(long, env = "SKYLITE_STATEMENT_TIMEOUT", default_value_t = 30)]
    statement_timeout: u64,
    /// Largest request body, in bytes (larger ones get HTTP 413).
    #[arg(long, env = "SKYLITE_MAX_BODY_SIZE", default_value_t = 32 * 1024 * 1024)]
    max_body_size: usize,
    /// Largest database file the admin import accepts, in bytes (streamed to disk; larger
    /// ones get HTTP 413).
    #[arg(long, env = "SKYLITE_MAX_IMPORT_SIZE", default_value_t = 64 * 1024 * 1024 * 1024)]
    max_import_size: u64,
    /// Largest response of one request, in bytes (larger ones get RESPONSE_TOO_LARGE).
    #[arg(long, env = "SKYLITE_MAX_RESPONSE_SIZE", default_value_t = 64 * 1024 * 1024)]
    max_response_size: usize,
    /// Most SQLite connections open per database.
    #[arg(long, env = "SKYLITE_MAX_SQLITE_CONNECTIONS", default_value_t = 1024)]
    max_sqlite_connections: usize,
    /// Most client connections open at once (TLS handshakes and WebSockets included); more are
    /// refused (plain HTTP gets a 503). Lowered to half the open-file limit if that is smaller.
    #[arg(long, env = "SKYLITE_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Seconds after which an open database nobody uses (no request, stream or WebSocket) is
    /// closed; the next request opens it again.
    #[arg(long, env = "SKYLITE_DB_IDLE_TIMEOUT", default_value_t = 300)]
    db_idle_timeout: u64,
    /// Most databases open at once; opening one more closes the least recently used idle one
    /// (HTTP 503 TOO_MANY_OPEN_DATABASES if all are in use).
    #[arg(long, env = "SKYLITE_MAX_OPEN_DATABASES", default_value_t = 256)]
    max_open_databases: usize,
    /// Seconds a new connection has to send its first request head, and a request head has
    /// from its first byte to its end; then the connection is closed.
    #[arg(long, env = "SKYLITE_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds an idle keep-alive connection stays open waiting for its next request.
    #[arg(long, env = "SKYLITE_IDLE_TIMEOUT", default_value_t = 60)]
    idle_timeout: u64,
    /// Seconds a request body may make no progress (then HTTP 408 and the connection closes),
    /// and a response write to a client that does not read may stall.
    #[arg(long, env = "SKYLITE_BODY_TIMEOUT", default_value_t = 30)]
    body_timeout: u64,
    /// Slowest average request body rate, in bytes per second, once --body-timeout seconds of
    /// waiting are used up (0: no rate rule).
    #[arg(long, env = "SKYLITE_BODY_MIN_RATE", default_value_t = 1024)]
    body_min_rate: u64,
    /// Seconds a WebSocket has after the upgrade to send `hello`; then it is closed (1008).
    #[arg(long, env = "SKYLITE_WS_HELLO_TIMEOUT", default_value_t = 10)]
    ws_hello_timeout: u64,
    /// Seconds a client may take nothing of what the server sends (cursor entries, WebSocket
    /// responses) before its cursor or socket is ended; a transaction it holds rolls back.
    #[arg(long, env = "SKYLITE_SEND_TIMEOUT", default_value_t = 30)]
    send_timeout: u64,
    /// Most live Hrana-over-HTTP streams one token may hold on one database (beyond: HTTP 429
    /// STREAMS_EXHAUSTED).
    #[arg(long, env = "SKYLITE_MAX_STREAMS_PER_TOKEN", default_value_t = 128)]
    max_streams_per_token: usize,
    /// Serve HTTPS and WSS with this PEM certificate chain (server certificate first, then
    /// intermediates); needs --tls-key. Without both, the server speaks plain HTTP.
    #[arg(
        long,
        env = "SKYLITE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, RSA or EC) of --tls-cert; needs --tls-cert.
    #[arg(
        long,
        env = "SKYLITE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Switch authentication off: anyone who reaches the server may do anything. Only for a
    /// trusted network; the log says so loudly.
    #[arg(long, env = "SKYLITE_NO_AUTH")]
    no_auth: bool,
    /// Also trust tokens signed by these Ed25519 public keys (PEM or raw URL-safe base64, several
    /// per file; sqld's flag). Repeat the flag for several files.
    #[arg(
        long,
        env = "SKYLITE_AUTH_JWT_KEY_FILE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    auth_jwt_key_file: Vec<PathBuf>,
    /// Let tokens without `id`, `p` or `skylite_admin` claims use every database, as sqld does
    /// (by default such a token may do nothing).
    #[arg(long, env = "SKYLITE_AUTH_LEGACY_FULL_ACCESS")]
    auth_legacy_full_access: bool,
    /// Seconds requests in flight get to finish on SIGTERM/SIGINT; then open transactions are
    /// rolled back and every database is checkpointed and fsynced anyway.
    #[arg(long, env = "SKYLITE_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    shutdown_timeout: u64,
    /// Log lines as text (for people) or JSON objects, one per line (for log collectors); each
    /// line of a request carries its id (`x-request-id`).
    #[arg(long, env = "SKYLITE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Milliseconds from which a statement is logged as slow (warn level: database, duration,
    /// the first 200 characters of its SQL, never its arguments); 0: never.
    #[arg(long, env = "SKYLITE_SLOW_STATEMENT_THRESHOLD", default_value_t = 500)]
    slow_statement_threshold: u64,
    /// Stream every database's committed changes to S3-compatible object storage at
    /// s3://BUCKET/PREFIX. Credentials, region and endpoint come from AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL.
    #[arg(long, env = "SKYLITE_BACKUP", value_name = "s3://BUCKET/PREFIX")]
    backup: Option<String>,
    /// async: acknowledge a write after the local fsync (about the last second of writes may
    /// not be in the store yet); sync: only once it is in the object store.
    #[arg(long, env = "SKYLITE_BACKUP_MODE", value_enum, default_value = "async")]
    backup_mode: BackupModeArg,
    /// Keep backups this long (point-in-time restore window), e.g. 7d, 12h, 30m; 0 keeps all.
    #[arg(long, env = "SKYLITE_BACKUP_RETENTION", default_value = "7d", value_parser = parse_duration_arg)]
    backup_retention: Duration,
    /// Most bytes of committed changes per database waiting for upload (held in memory). When
    /// full, async mode starts a new generation (fresh snapshot) once the store answers again;
    /// sync mode refuses writes (BACKUP_UNAVAILABLE).
    #[arg(long, env = "SKYLITE_BACKUP_SPOOL_LIMIT", default_value_t = 512 * 1024 * 1024)]
    backup_spool_limit: usize,
    /// Sync mode: seconds a write waits for the object store before it is answered
    /// BACKUP_UNAVAILABLE (committed locally, not acknowledged); new writes are refused while
    /// the store has failed this long.
    #[arg(long, env = "SKYLITE_BACKUP_SYNC_TIMEOUT", default_value_t = 10)]
    backup_sync_timeout: u64,
    /// Async mode: milliseconds between two segment uploads of a database (fewer PUTs when
    /// larger; more acknowledged writes at risk if the disk is lost).
    #[arg(long, env = "SKYLITE_BACKUP_INTERVAL_MS", default_value_t = 500)]
    backup_interval_ms: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format, with the request span).
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackupModeArg {
    Async,
    Sync,
}

/// Reads `7d`, `12h`, `30m`, `45s` or a plain number of seconds.
fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 7d, 12h, 30m or 45s"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::new(&self.data_dir);
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                TlsConfig::load(cert, key).context("cannot load the TLS certificate and key")?,
            ),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together: give both or neither"),
        };
        config.engine = EngineConfig {
            durability: match self.durability {
                DurabilityArg::Full => Durability::Full,
                DurabilityArg::Normal => Durability::Normal,
            },
            txn_timeout: Duration::from_secs(self.txn_timeout.max(1)),
            max_response_bytes: self.max_response_size,
            max_connections: self.max_sqlite_connections.max(2),
            statement_timeout: Duration::from_secs(self.statement_timeout),
            slow_statement_threshold: Duration::from_millis(self.slow_statement_threshold),
            ..EngineConfig::default()
        };
        config.stream_idle_timeout = Duration::from_secs(self.stream_idle_timeout.max(1));
        config.max_body_bytes = self.max_body_size;
        config.max_import_bytes = self.max_import_size;
        config.db_idle_timeout = Duration::from_secs(self.db_idle_timeout.max(1));
        config.max_open_databases = self.max_open_databases.max(2);
        config.max_connections = self.max_connections.max(1);
        config.header_timeout = Duration::from_secs(self.header_timeout.max(1));
        config.idle_timeout = Duration::from_secs(self.idle_timeout.max(1));
        config.body_timeout = Duration::from_secs(self.body_timeout.max(1));
        config.body_min_rate = self.body_min_rate;
        config.ws_hello_timeout = Duration::from_secs(self.ws_hello_timeout.max(1));
        config.send_timeout = Duration::from_secs(self.send_timeout.max(1));
        config.max_streams_per_principal = self.max_streams_per_token.max(1);
        config.shutdown_timeout = Duration::from_secs(self.shutdown_timeout);
        config.auth = skylite_server::config::AuthSettings {
            disabled: self.no_auth,
            key_files: self.auth_jwt_key_file.clone(),
            legacy_full_access: self.auth_legacy_full_access,
        };
        if let Some(url) = &self.backup {
            let store = skylite_backup::store::open_from_env(url)
                .with_context(|| format!("--backup {url}"))?;
            config.backup = Some(skylite_server::config::BackupSettings {
                url: url.clone(),
                store,
                config: skylite_backup::BackupConfig {
                    mode: match self.backup_mode {
                        BackupModeArg::Async => skylite_backup::BackupMode::Async,
                        BackupModeArg::Sync => skylite_backup::BackupMode::Sync,
                    },
                    spool_limit: self.backup_spool_limit.max(1024 * 1024),
                    sync_timeout: Duration::from_secs(self.backup_sync_timeout.max(1)),
                    segment_interval: Duration::from_millis(self.backup_interval_ms.max(10)),
                    retention: self.backup_retention,
                    ..skylite_backup::BackupConfig::default()
                },
            });
        }
        Ok(config)
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKYLITE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight, rolling back open transactions");
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    if let Some(backup) = &config.backup {
        // Before anything is acknowledged: the store must exist, accept our credentials and
        // honour create-only writes (the fencing depends on it).
        skylite_backup::store::probe(&*backup.store)
            .await
            .with_context(|| format!("--backup {}", backup.url))?;
        restore_cmd::restore_on_start(backup, &config.data_dir).await?;
    }
    let app = App::open(config.clone()).context("cannot open the data folder")?;
    #[cfg(unix)]
    app.reload_on_sighup();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    // Lets `skylite db import` on this machine find the server without --url (removed on exit).
    let url = local_server::local_url(local, config.tls.is_some());
    let _announced = local_server::announce(&config.data_dir, &url);
    tracing::info!(
        data_dir = %config.data_dir.display(),
        durability = ?config.engine.durability,
        "skylite {} listening on {}://{local} ({}://{local})",
        env!("CARGO_PKG_VERSION"),
        if config.tls.is_some() { "https" } else { "http" },
        if config.tls.is_some() { "wss" } else { "ws" },
    );
    tracing::info!(
        "move a database in with: skylite db import FILE.db --data-dir {} [--env-file .env]",
        config.data_dir.display()
    );
    skylite_server::serve(app, listener, shutdown_signal())
        .await
        .context("server error")
}

/// The exit code for an error: the kind of the first server failure in its chain, else 1.
fn exit_code(e: &anyhow::Error) -> u8 {
    use remote::{Failure, ServerError};
    let failure = e.chain().find_map(|cause| {
        if let Some(server) = cause.downcast_ref::<ServerError>() {
            return Some(server.failure);
        }
        Failure::of(cause.downcast_ref::<skylite_client::Error>()?)
    });
    match failure {
        Some(Failure::Connect) => 3,
        Some(Failure::Auth) => 4,
        Some(Failure::NotFound) => 5,
        Some(Failure::Other) | None => 1,
    }
}

fn main() -> ExitCode {
    let command = match Cli::parse().command {
        // The bench prints its own errors; its exit code is ours.
        Command::Bench(args) => {
            return match bench_cmd::run(args) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        other => other,
    };
    init_logging(match &command {
        Command::Serve(args) => args.log_format,
        _ => LogFormat::Text,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Bench(_) => Ok(()),
        Command::Keygen(args) => token_cmd::keygen(args),
        Command::Token(args) => token_cmd::token(args),
        Command::Db(args) => db_cmd::run(args, &runtime),
        Command::Shell(args) => shell::run(args, &runtime),
        Command::Restore(args) => restore_cmd::run(args, &runtime),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}
