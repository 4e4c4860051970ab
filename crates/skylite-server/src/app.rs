//! Shared server state and the router: which path goes to which handler, body limits, the
//! stream reaper, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use skylite_engine::{Database, OpenError, Workers};
use tokio::net::TcpListener;

use crate::baton::BatonKey;
use crate::error::ApiError;
use crate::streams::Streams;
use crate::{hrana_http, legacy_http, ws, ServerConfig};

/// The name of the database served when a request names none.
pub const DEFAULT_DATABASE: &str = "default";

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
}

/// Everything the handlers share.
pub struct AppInner {
    /// Settings.
    pub config: ServerConfig,
    /// Signs batons.
    pub baton_key: BatonKey,
    /// The database's streams (and through them, the database).
    pub streams: Arc<Streams>,
    /// The threads that run SQL.
    pub workers: Workers,
}

/// A cheap handle to the shared state.
#[derive(Clone)]
pub struct App(pub Arc<AppInner>);

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// Opens the data folder: the default database and the baton key.
    pub fn open(config: ServerConfig) -> Result<App, ServeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::Io {
            what: format!("data folder {}", config.data_dir.display()),
            source,
        })?;
        let key_path = config.private_dir().join("baton.key");
        let baton_key = BatonKey::load_or_create(&key_path).map_err(|source| ServeError::Io {
            what: format!("baton key {}", key_path.display()),
            source,
        })?;
        let db = Database::open(
            &config.database_file(DEFAULT_DATABASE),
            config.engine.clone(),
        )?;
        let streams = Arc::new(Streams::new(db, config.stream_idle_timeout));
        Ok(App(Arc::new(AppInner {
            config,
            baton_key,
            streams,
            workers: Workers::for_this_machine("skylite-sql"),
        })))
    }

    /// The database requests go to.
    pub fn database(&self) -> &Database {
        self.streams.database()
    }

    /// The scope batons are bound to.
    pub fn baton_scope(&self) -> &str {
        DEFAULT_DATABASE
    }

    /// The router with every route.
    pub fn router(&self) -> Router {
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
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .with_state(self.clone())
    }

    /// Starts the stream reaper; it stops when the app is dropped.
    fn spawn_reaper(&self) {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(app) = weak.upgrade() else { return };
                app.streams.reap().await;
            }
        });
    }
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

async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then rolls back open transactions.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    app.spawn_reaper();
    let router = app.router();
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    let streams = app.streams.clone();
    let _ = tokio::task::spawn_blocking(move || streams.close_all()).await;
    result
}
