//! The skylite network service: axum routes for Hrana over HTTP (v2, v3, v3-protobuf, cursors),
//! Hrana over WebSocket (hrana1..hrana3, JSON and Protobuf), the legacy
//! HTTP API (v0 `POST /`, v1 `execute`/`batch`), health and version, on top of
//! [`skylite_engine`].
//!
//! - [`config`]: what the server is told at start.
//! - [`app`]: shared state (databases, baton key) and the router.
//! - [`databases`]: database names and the registry of open databases (create, delete, fork).
//! - [`routing`]: which database a request is for (path prefix, `x-namespace`, subdomain).
//! - [`admin`]: the admin API under `/v1/admin/databases`.
//! - [`transfer`]: import, export and dump of whole databases (admin API).
//! - [`hrana_http`]: `/v2/pipeline`, `/v3/pipeline`, `/v3/cursor`, and the same under
//!   `/v3-protobuf`.
//! - [`ws`]: Hrana over WebSocket on `GET /`.
//! - [`legacy_http`]: `POST /`, `/v1/execute`, `/v1/batch`.
//! - [`streams`]: live streams, expiry, revocation of stalled transactions.
//! - [`baton`]: signed, single-use batons.
//! - [`error`]: HTTP error bodies.
//! - [`listener`]: the accept loop (plain and TLS), connection cap, header/idle/body timeouts.
//! - [`tls`]: loading `--tls-cert`/`--tls-key`, and the TLS handshake.
//!
//! The API (what other crates may use) is [`App`] (open a data folder; its fields let an
//! embedder or a test inspect the open databases, run work on the SQL workers and check
//! tokens), [`serve`], [`ServerConfig`] and [`config::AuthSettings`], [`TlsConfig`] and
//! [`TlsError`]. Every other module is `pub(crate)`.
//!
//! SQL never runs on async worker threads: every handler hands its work to the engine's
//! worker pool through [`blocking::run`].

pub(crate) mod admin;
pub mod app;
pub(crate) mod baton;
pub(crate) mod blocking;
pub mod config;
pub(crate) mod databases;
pub(crate) mod error;
pub(crate) mod exec;
pub(crate) mod fork_at;
pub(crate) mod hrana_http;
pub(crate) mod legacy_http;
pub(crate) mod limits;
pub(crate) mod listener;
pub(crate) mod request_id;
pub(crate) mod routing;
pub(crate) mod streams;
pub mod tls;
pub(crate) mod tokens_api;
pub(crate) mod transfer;
pub(crate) mod ws;

pub use app::{serve, App, AppInner, ServeError};
pub use config::ServerConfig;
pub use tls::{TlsConfig, TlsError};
