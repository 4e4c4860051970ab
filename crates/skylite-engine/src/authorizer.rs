//! The SQLite authorizer every connection runs under: it keeps each database inside its own file
//! and notices when a statement leaves state behind on the connection.
//!
//! SQLite calls the authorizer while it prepares a statement, once per action the statement
//! would take. Denied here:
//! - `ATTACH` / `DETACH` (reach other files), `load_extension()` (runs foreign code),
//! - virtual-table modules that read or write the file system,
//! - pragmas that point SQLite at other files or that would undo the server's own durability
//!   and locking settings (`journal_mode`, `locking_mode`, `synchronous`, `writable_schema`, ...).
//!
//! `VACUUM INTO` is refused before preparation (see [`crate::sql_text`]) because SQLite does not
//! route it through the authorizer. The reason for a denial is kept in [`ConnFlags`] so that the
//! client gets a clear message instead of SQLite's bare "not authorized".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Per-connection flags shared between the connection and its authorizer callback.
#[derive(Debug, Default)]
pub struct ConnFlags {
    /// The connection carries state a later request may depend on (a pragma set on it, a
    /// temporary table), so it must not go back to the shared pool.
    pub tainted: AtomicBool,
    /// Why the authorizer denied the last statement: the error code the client should see and
    /// the message.
    pub denial: Mutex<Option<(&'static str, String)>>,
    /// The statement being prepared is for a read-only caller: refuse every write.
    pub read_only: AtomicBool,
}

impl ConnFlags {
    fn deny(&self, reason: String) -> Authorization {
        self.deny_with("SQLITE_AUTH", reason)
    }

    fn deny_with(&self, code: &'static str, reason: String) -> Authorization {
        if let Ok(mut d) = self.denial.lock() {
            *d = Some((code, reason));
        }
        Authorization::Deny
    }

    /// Takes the code and reason of the last denial, if any.
    pub fn take_denial(&self) -> Option<(&'static str, String)> {
        self.denial.lock().ok().and_then(|mut d| d.take())
    }
}

/// Pragmas a client may never set, because they reach other files or undo the server's
/// durability and locking guarantees.
const LOCKED_PRAGMAS: &[&str] = &[
    "journal_mode",
    "locking_mode",
    "synchronous",
    "writable_schema",
    "temp_store_directory",
    "data_store_directory",
    "mmap_size",
    "wal_autocheckpoint",
    "journal_size_limit",
];

/// Pragmas that may not even be read, because they name or reach files.
const FILE_PRAGMAS: &[&str] = &["temp_store_directory", "data_store_directory"];

/// Virtual-table modules that touch the file system.
const FILE_MODULES: &[&str] = &[
    "fsdir",
    "zipfile",
    "csv",
    "fileio",
    "vfsstat",
    "sqlite_dbpage",
];

/// True for actions that change the database file (writes to `temp` count too: a read-only
/// caller has no business leaving state behind).
fn is_write(action: &AuthAction<'_>) -> bool {
    matches!(
        action,
        AuthAction::Insert { .. }
            | AuthAction::Update { .. }
            | AuthAction::Delete { .. }
            | AuthAction::CreateIndex { .. }
            | AuthAction::CreateTable { .. }
            | AuthAction::CreateTrigger { .. }
            | AuthAction::CreateView { .. }
            | AuthAction::CreateTempIndex { .. }
            | AuthAction::CreateTempTable { .. }
            | AuthAction::CreateTempTrigger { .. }
            | AuthAction::CreateTempView { .. }
            | AuthAction::DropIndex { .. }
            | AuthAction::DropTable { .. }
            | AuthAction::DropTrigger { .. }
            | AuthAction::DropView { .. }
            | AuthAction::DropTempIndex { .. }
            | AuthAction::DropTempTable { .. }
            | AuthAction::DropTempTrigger { .. }
            | AuthAction::DropTempView { .. }
            | AuthAction::AlterTable { .. }
            | AuthAction::Reindex { .. }
            | AuthAction::Analyze { .. }
            | AuthAction::CreateVtable { .. }
            | AuthAction::DropVtable { .. }
    )
}

/// Decides one action.
pub fn authorize(flags: &ConnFlags, ctx: AuthContext<'_>) -> Authorization {
    if flags.read_only.load(Ordering::Relaxed) && is_write(&ctx.action) {
        // The same code as a write refused after preparation (conn.rs), so clients see one
        // error whichever check caught it.
        return flags.deny_with(
            "SQLITE_READONLY",
            "attempt to write with read-only access: this token may only read this database".into(),
        );
    }
    match ctx.action {
        AuthAction::Attach { .. } => flags.deny(
            "ATTACH is not allowed: a skylite database cannot reach other database files".into(),
        ),
        AuthAction::Detach { .. } => flags.deny(
            "DETACH is not allowed: a skylite database cannot reach other database files".into(),
        ),
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            flags.deny("load_extension() is not allowed on a skylite server".into())
        }
        AuthAction::CreateVtable { module_name, .. }
            if FILE_MODULES
                .iter()
                .any(|m| m.eq_ignore_ascii_case(module_name)) =>
        {
            flags.deny(format!(
                "the virtual table module `{module_name}` reaches the file system and is not allowed"
            ))
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            if FILE_PRAGMAS.contains(&name.as_str()) {
                return flags.deny(format!("PRAGMA {name} is not allowed: it reaches other files"));
            }
            if pragma_value.is_some() {
                if LOCKED_PRAGMAS.contains(&name.as_str()) {
                    return flags.deny(format!(
                        "PRAGMA {name} cannot be changed: the server manages it \
                         (durability and locking are server settings)"
                    ));
                }
                // A pragma set on this connection must follow the stream, not the pool.
                flags.tainted.store(true, Ordering::Relaxed);
            }
            Authorization::Allow
        }
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. } => {
            flags.tainted.store(true, Ordering::Relaxed);
            Authorization::Allow
        }
        _ => Authorization::Allow,
    }
}

/// Installs the authorizer on a connection.
pub fn install(conn: &rusqlite::Connection, flags: Arc<ConnFlags>) {
    conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&flags, ctx)));
}
