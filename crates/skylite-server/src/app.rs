//! Shared server state and the router: which path goes to which handler, body limits, the
//! database path prefixes (`/db/<name>/...`, `/dev/<name>/...`, see [`crate::routing`]), the
//! stream reaper, graceful shutdown (the accept loop itself is [`crate::listener`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use skylite_auth::{AuthConfig, Authenticator};
use skylite_engine::{ErrorCode, OpenError, Workers};
use tokio::net::TcpListener;

use crate::baton::BatonKey;
use crate::databases::Databases;
use crate::error::ApiError;
use crate::{admin, hrana_http, legacy_http, routing, ws, ServerConfig};

pub use crate::databases::DEFAULT_DATABASE;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A file in the data folder could not be used.
    #[error("cannot use {what}: {source}")]
    Io {
        /// Which file.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The signing key, a trusted key file or the revocation list is unusable.
    #[error("authentication setup failed: {0}")]
    Auth(#[from] skylite_auth::KeyError),
}

/// What a reload did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Reloaded {
    /// The TLS certificate and key were read again.
    pub tls: bool,
    /// The trusted key files and the revocation list were read again.
    pub auth: bool,
    /// Public keys trusted now.
    pub keys: usize,
    /// What could not be reloaded (the old version of each stays in use).
    pub errors: Vec<String>,
}

/// Everything the handlers share.
pub struct AppInner {
    /// Settings.
    pub config: ServerConfig,
    /// Signs batons.
    pub(crate) baton_key: BatonKey,
    /// Every database, with its streams.
    pub databases: Databases,
    /// The threads that run SQL.
    pub workers: Workers,
    /// Checks tokens (a disabled one allows everything, with `--no-auth`).
    pub auth: Authenticator,
}

/// A cheap handle to the shared state.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// Opens the data folder: the default database (created if needed) and the baton key.
    pub fn open(config: ServerConfig) -> Result<App, ServeError> {
        skylite_engine::fs_durable::create_dir_all(&config.data_dir).map_err(|source| {
            ServeError::Io {
                what: format!("data folder {}", config.data_dir.display()),
                source,
            }
        })?;
        let key_path = config.private_dir().join("baton.key");
        let baton_key = BatonKey::load_or_create(&key_path).map_err(|source| ServeError::Io {
            what: format!("baton key {}", key_path.display()),
            source,
        })?;
        let auth = open_authenticator(&config)?;
        let backup = match &config.backup {
            Some(settings) => {
                tracing::info!(url = %settings.url, "continuous backup to object storage");
                Some(
                    skylite_backup::Backup::new(
                        settings.store.clone(),
                        settings.config.clone(),
                        &config.data_dir,
                    )
                    .map_err(|e| ServeError::Io {
                        what: "the backup".into(),
                        source: std::io::Error::other(e.to_string()),
                    })?,
                )
            }
            None => None,
        };
        let databases = Databases::open(&config, backup)?;
        Ok(App(Arc::new(AppInner {
            config,
            baton_key,
            databases,
            workers: Workers::for_this_machine("skylite-sql"),
            auth,
        })))
    }

    /// The router with every route. A `/db/<name>` or `/dev/<name>` path prefix is stripped
    /// (and remembered) before routing, so every route also works under it.
    pub fn router(&self) -> Router {
        let inner = self.routes();
        Router::new()
            .fallback(move |req: Request| {
                let inner = inner.clone();
                async move {
                    use tower::ServiceExt;
                    let req = routing::strip_database_prefix(req);
                    match inner.oneshot(req).await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    }
                }
            })
            // Outermost: every request, routed or not, gets an id and a span.
            .layer(axum::middleware::from_fn(crate::request_id::layer))
    }

    /// The routes, as seen after the database prefix is stripped.
    fn routes(&self) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/version", get(version))
            .route("/", get(ws::upgrade).post(legacy_http::query))
            .route("/v1", get(hrana_http::version_probe))
            .route("/v1/execute", post(legacy_http::v1_execute))
            .route("/v1/batch", post(legacy_http::v1_batch))
            .route("/v2", get(hrana_http::version_probe))
            .route("/v2/pipeline", post(hrana_http::pipeline))
            .route("/v3", get(hrana_http::version_probe))
            .route("/v3/pipeline", post(hrana_http::pipeline))
            .route("/v3/cursor", post(hrana_http::cursor))
            .route("/v3-protobuf", get(hrana_http::version_probe))
            .route("/v3-protobuf/pipeline", post(hrana_http::pipeline_protobuf))
            .route("/v3-protobuf/cursor", post(hrana_http::cursor_protobuf))
            .merge(admin::routes())
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .with_state(self.clone())
    }

    /// Reads the TLS certificate and key, the trusted key files and the revocation list again
    /// (SIGHUP, `POST /v1/admin/reload`). Each part that fails keeps what it had and is
    /// reported; the others are still reloaded. Blocking (file I/O).
    pub fn reload(&self) -> Reloaded {
        let mut report = Reloaded::default();
        if let Some(tls) = &self.config.tls {
            match tls.reload() {
                Ok(done) => report.tls = done,
                Err(e) => report
                    .errors
                    .push(format!("{e} (the previous certificate stays in use)")),
            }
        }
        if !self.auth.is_disabled() {
            match self.auth.reload() {
                Ok(()) => report.auth = true,
                Err(e) => report.errors.push(format!(
                    "{e} (the previous keys and revocation list stay in use)"
                )),
            }
        }
        report.keys = self.auth.key_count();
        if report.errors.is_empty() {
            tracing::info!(
                tls = report.tls,
                auth = report.auth,
                keys = report.keys,
                "reloaded"
            );
        } else {
            for e in &report.errors {
                tracing::error!("reload: {e}");
            }
        }
        report
    }

    /// Reloads on every SIGHUP (see [`App::reload`]) for as long as the app lives.
    #[cfg(unix)]
    pub fn reload_on_sighup(&self) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot watch SIGHUP (reload with POST /v1/admin/reload): {e}");
                return;
            }
        };
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(app) = weak.upgrade().map(App) else {
                    return;
                };
                tracing::info!("SIGHUP: reloading certificates, keys and the revocation list");
                let _ = tokio::task::spawn_blocking(move || app.reload()).await;
            }
        });
    }

    /// Starts the stream reaper; it stops when the app is dropped.
    fn spawn_reaper(&self) {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks = 0u64;
            loop {
                tick.tick().await;
                let Some(app) = weak.upgrade() else { return };
                for db in app.databases.all_open() {
                    db.streams().reap(&app.workers).await;
                }
                ticks += 1;
                if ticks.is_multiple_of(5) {
                    // Closing checkpoints: blocking work.
                    let workers = app.workers.clone();
                    let _ =
                        crate::blocking::run(&workers, move || app.databases.evict_idle()).await;
                }
            }
        });
    }
}

/// Builds the token checker from the settings, making the data folder's key pair on first
/// start, and says in the log how to get a token (or, loudly, that nobody needs one).
fn open_authenticator(config: &ServerConfig) -> Result<Authenticator, ServeError> {
    let settings = &config.auth;
    if settings.disabled {
        tracing::warn!(
            "AUTHENTICATION IS OFF (--no-auth): anyone who can reach this server can read, \
             change and delete every database. Use it only on a trusted network."
        );
        return Ok(Authenticator::disabled());
    }
    let mut auth_config = AuthConfig::new(&config.data_dir);
    auth_config.key_files = settings.key_files.clone();
    auth_config.legacy_full_access = settings.legacy_full_access;
    let auth = Authenticator::from_config(&auth_config)?;
    let data_dir = config.data_dir.display();
    if auth.keypair().is_some_and(|k| k.created) {
        tracing::info!(
            "made a signing key pair in {data_dir}/.skylite (jwt.key, jwt.pub); \
             mint a token with: skylite token create --data-dir {data_dir} [--db NAME] \
             [--read-only] [--expires 30d]  (admin API: --admin)"
        );
    } else {
        tracing::info!(
            keys = auth.key_count(),
            "authentication is on; mint a token with: skylite token create --data-dir {data_dir}"
        );
    }
    if settings.legacy_full_access {
        tracing::warn!(
            "--auth-legacy-full-access: tokens without id/p claims may use every database"
        );
    }
    Ok(auth)
}

async fn health() -> &'static str {
    "ok"
}

async fn version() -> String {
    format!(
        "skylite {} (libSQL {})",
        env!("CARGO_PKG_VERSION"),
        rusqlite_version()
    )
}

fn rusqlite_version() -> &'static str {
    skylite_engine::sqlite_version()
}

async fn not_found(req: Request) -> impl IntoResponse {
    let mut message = format!("no such endpoint: {}", req.uri().path());
    if let Some(routing::PathDatabase(name)) = req.extensions().get::<routing::PathDatabase>() {
        message.push_str(&format!(" (after the database prefix naming {name:?})"));
        if let Some(hint) = routing::trailing_slash_hint(name) {
            message.push_str(hint);
        }
    }
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
}

/// Serves `app` on `listener` (over TLS when `config.tls` is set) until `shutdown` resolves, then
/// rolls back open transactions. Connections are accepted and timed by [`crate::listener`].
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    app.spawn_reaper();
    let router = app.router();
    let limits = crate::listener::Limits::new(&app.config);
    let result =
        crate::listener::serve(listener, router, limits, app.config.tls.clone(), shutdown).await;
    let closing = app.clone();
    let _ = crate::blocking::run(&app.workers, move || closing.databases.shutdown()).await;
    if let Some(backup) = app.databases.backup() {
        // Ship what is spooled; a store that does not answer does not hold up the exit (the
        // local files keep everything; the next start begins a new generation).
        backup.shutdown(Duration::from_secs(10)).await;
    }
    tracing::info!("shut down: open transactions rolled back, databases checkpointed");
    result
}
