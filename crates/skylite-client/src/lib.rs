//! One Rust client for a SQLite database that is either a **local file** (run in this process on
//! the skylite engine, the same code the server runs) or a **remote server** (skylite, sqld or
//! Turso, Hrana v3 over HTTP), in two flavours: async ([`Client`], tokio) and blocking
//! ([`blocking::Client`]). Moving an app from `app.db` to a server is a change of URL and token.
//!
//! # Async
//!
//! ```no_run
//! use skylite_client::{named_params, Client};
//!
//! # async fn demo() -> skylite_client::Result<()> {
//! // "file:app.db" for a local file; the token is ignored there.
//! let db = Client::connect("http://127.0.0.1:8080/db/app", "eyJ...").await?;
//! db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)", ()).await?;
//! db.execute("INSERT INTO notes (body) VALUES (?)", ["hello"]).await?;
//! let rows = db.execute("SELECT id, body FROM notes WHERE id = :id", named_params! { ":id" => 1 }).await?;
//! for row in &rows {
//!     let id: i64 = row.get(0)?;
//!     let body: String = row.get("body")?;
//!     println!("{id}: {body}");
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Note { id: i64, body: String }
//! let notes: Vec<Note> = rows.deserialize()?;
//!
//! // All or nothing.
//! db.batch(["INSERT INTO notes (body) VALUES ('a')", "INSERT INTO notes (body) VALUES ('b')"]).await?;
//!
//! let tx = db.transaction().await?;
//! tx.execute("UPDATE notes SET body = upper(body)", ()).await?;
//! tx.commit().await?; // dropping `tx` instead rolls back
//! # Ok(()) }
//! ```
//!
//! # Blocking
//!
//! ```no_run
//! use skylite_client::blocking::Client;
//!
//! # fn demo() -> skylite_client::Result<()> {
//! let db = Client::from_env()?; // SKYLITE_URL + SKYLITE_AUTH_TOKEN, or TURSO_*, or LIBSQL_*, or .env
//! let n: i64 = db.execute("SELECT count(*) FROM notes", ())?.first().unwrap().get(0)?;
//! let tx = db.transaction()?;
//! tx.execute("DELETE FROM notes WHERE id = ?", [1])?;
//! tx.commit()?;
//! # Ok(()) }
//! ```
//!
//! A local file needs no server (feature `local`):
//!
//! ```
//! # fn main() -> skylite_client::Result<()> {
//! # #[cfg(feature = "local")] {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("app.db");
//! let db = skylite_client::blocking::Client::connect(&format!("file:{}", path.display()), "")?;
//! db.execute("CREATE TABLE t (x)", ())?;
//! db.execute("INSERT INTO t VALUES (?), (?)", (1, "two"))?;
//! let rows = db.execute("SELECT x FROM t ORDER BY rowid", ())?;
//! assert_eq!(rows.get(1).unwrap().get::<&str>("x")?, "two");
//! # }
//! # Ok(()) }
//! ```
//!
//! # Connecting
//!
//! URLs, `.env` and the environment variables (`SKYLITE_URL`/`SKYLITE_AUTH_TOKEN`,
//! `TURSO_DATABASE_URL`/`TURSO_AUTH_TOKEN`, `LIBSQL_URL`/`LIBSQL_AUTH_TOKEN`, `SKYLITE_CA_FILE`)
//! are described in [`config`]. `https://` trusts the public web roots plus an optional CA file.
//!
//! # Semantics
//!
//! - [`Client::execute`]: one statement (a second one in the same text is an error); parameters
//!   positional (`?`, `?NNN`) or named (`:a`, `@a`, `$a`), see [`mod@params`].
//! - [`Client::batch`]: atomic, as `@libsql/client`'s batch: `BEGIN`, each statement only if the
//!   previous succeeded, `COMMIT`, and `ROLLBACK` if anything failed. One round trip.
//! - [`Client::execute_multiple`]: a `;`-separated script, in order, stopping at the first error.
//! - [`Client::transaction`]: an interactive transaction on its own stream; see [`Transaction`]
//!   for what dropping it does.
//! - Errors: [`Error`]; SQLite's failures carry SQLite's extended code
//!   ([`Error::sqlite_code`], e.g. `SQLITE_CONSTRAINT_UNIQUE`).
//!
//! # Timeouts and retries
//!
//! Connecting (TCP + TLS) is bounded by [`Config::connect_timeout`], each HTTP request by
//! [`Config::request_timeout`]. A request is retried only if repeating it is harmless: when it
//! was never sent (the connection could not be made, or a pooled connection was found closed),
//! or when it is read-only (`SELECT`, `VALUES`, `EXPLAIN`) on a fresh stream (no baton). Writes,
//! batches, scripts and anything inside a transaction are never repeated once sent.
//! The details are in the `remote` module's source docs.
//!
//! # Limits
//!
//! Results come back whole in one response (`/v3/pipeline`), so one statement's rows are bounded
//! by the server's response limit (skylite: `--max-response-size`, 64 MiB; beyond it the error
//! code is `RESPONSE_TOO_LARGE`): page large reads with `LIMIT`/`OFFSET` or keyset pagination.
//! A `base_url` in the server's response (a stream moved elsewhere) is not followed. HTTP/1.1
//! only; Hrana over WebSocket is not used.
//!
//! # Features
//!
//! - `remote` (default): Hrana over HTTP(S) to a server; pure Rust, no C compiler needed.
//! - `local`: `file:` URLs, paths and `:memory:`, run on the skylite engine in this process;
//!   pulls in the bundled libSQL C library. Without it a local URL is [`Error::Config`].
//!
//! # Local files
//!
//! A local file is opened once per process (clients of the same file share its write lock and
//! connection pool), in WAL mode, with the engine's rules (one writer at a time, `ATTACH` and
//! file access refused, see COMPAT.md). The async flavour runs SQL on engine worker threads,
//! never on the runtime's threads.

pub mod admin;
pub mod blocking;
mod client;
pub mod config;
pub mod connection;
pub mod de;
mod error;
pub mod http;
#[cfg(feature = "local")]
mod local;
#[cfg(not(feature = "local"))]
#[path = "no_local.rs"]
mod local;
pub mod params;
mod remote;
mod rows;
mod stream;
mod value;

pub use client::{Client, Transaction};
pub use config::Config;
pub use connection::{Connection, RowStream};
pub use error::{Error, Result};
pub use params::{IntoParams, Params, Statement};
pub use rows::{ColumnIndex, Row, Rows};
pub use stream::TransactionBehavior;
pub use value::{FromValue, IntoValue, Value};
