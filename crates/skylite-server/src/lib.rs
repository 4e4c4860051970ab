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
//! SQL never runs on async worker threads: every handler hands its work to the engine's
//! worker pool through [`blocking::run`].

pub mod admin;
pub mod app;
pub mod baton;
pub mod blocking;
pub mod config;
pub mod databases;
pub mod error;
pub mod exec;
pub mod fork_at;
pub mod hrana_http;
pub mod legacy_http;
pub mod listener;
pub mod routing;
pub mod streams;
pub mod tls;
pub mod tokens_api;
pub mod transfer;
pub mod ws;

pub use app::{serve, App, ServeError};
pub use config::ServerConfig;
pub use tls::{TlsConfig, TlsError};
