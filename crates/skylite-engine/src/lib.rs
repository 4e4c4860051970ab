//! The skylite engine: SQLite (the libSQL fork) databases on disk and the blocking code that
//! runs Hrana requests on them.
//!
//! - [`Database`] owns one file: its pooled connections, its write lock and its group-commit
//!   syncer ([`durability`]).
//! - [`Conn`] is one SQLite connection and runs single statements ([`conn`]).
//! - [`Session`] is a Hrana stream: requests, batches with conditions, sequences, describe,
//!   stored SQL and cursors ([`session`]).
//! - [`change_log`]: every committed transaction's pages, handed to a sink (continuous backup).
//! - [`maintenance`]: table counts, `quick_check` and consistent copies, for the admin API.
//! - [`import`]: checking an uploaded database file; [`dump`]: a database as SQL text.
//!
//! Everything here blocks. The server calls it from blocking threads only.

pub(crate) mod authorizer;
pub mod change_log;
pub(crate) mod conn;
pub(crate) mod database;
pub mod dump;
pub(crate) mod durability;
mod error;
pub mod fs_durable;
pub mod import;
pub mod maintenance;
pub mod session;
pub mod sql_functions;
/// Where statements end and what they start with: pure text functions, kept in `skylite-proto`
/// so the remote-only client shares them; re-exported here for the engine's users.
pub use skylite_proto::sql_text;
pub mod workers;
pub(crate) mod write_lock;

pub use conn::{Conn, RowSink, StmtInput, StmtSummary};
pub use database::{Database, DbCounters, DbLimits, EngineConfig, SnapshotInfo, WeakDatabase};
pub use durability::Durability;
pub use error::{sqlite_code_name, ErrorCode, ExecError, OpenError};
pub use session::{Budget, LockWatch, PinnedSql, Session, SqlStore};
pub use workers::Workers;

/// The version of the bundled libSQL/SQLite library.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}
