//! The SQLite authorizer every connection runs under: it keeps each database inside its own file
//! and notices when a statement leaves state behind on the connection.
//!
//! SQLite calls the authorizer while it prepares a statement, once per action the statement
//! would take. Denied here:
//! - `ATTACH` / `DETACH` (reach other files), `load_extension()` (runs foreign code),
//! - virtual-table modules that read or write the file system,
//! - every pragma that is not on the allowlist (`PRAGMAS`: introspection, checks and the
//!   connection settings ORMs send); among them the process-wide ones (`hard_heap_limit`,
//!   `soft_heap_limit`, `threads`, the directory pragmas) with a message saying why, and
//!   changes to the settings the server manages (`journal_mode`, `synchronous`, ...),
//! - for a read-only caller, every action that writes (and changing `query_only`).
//!
//! `VACUUM INTO` is refused before preparation (see [`crate::sql_text`]) because SQLite does not
//! route it through the authorizer. The reason for a denial is kept in [`ConnFlags`] so that the
//! client gets a clear message instead of SQLite's bare "not authorized".

use crate::ErrorCode;
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
    pub denial: Mutex<Option<(ErrorCode, String)>>,
    /// The statement being prepared is for a read-only caller: refuse every write.
    pub read_only: AtomicBool,
    /// The caller has read-only access (set for `describe` too, where `read_only` is not):
    /// it may not switch `query_only` off, even while a statement is only prepared.
    pub read_only_caller: AtomicBool,
    /// The server itself is running a statement (switching `query_only`): allow everything and
    /// do not taint the connection.
    pub internal: AtomicBool,
}

impl ConnFlags {
    fn deny(&self, reason: String) -> Authorization {
        self.deny_with(ErrorCode::SQLITE_AUTH, reason)
    }

    fn deny_with(&self, code: ErrorCode, reason: String) -> Authorization {
        if let Ok(mut d) = self.denial.lock() {
            *d = Some((code, reason));
        }
        Authorization::Deny
    }

    /// Takes the code and reason of the last denial, if any.
    pub fn take_denial(&self) -> Option<(ErrorCode, String)> {
        self.denial.lock().ok().and_then(|mut d| d.take())
    }
}

/// What the server lets a client do with one pragma.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PragmaRule {
    /// Reads or introspects (with or without an argument naming a table, index, ...): never
    /// leaves state behind on the connection.
    Read,
    /// A setting of this connection (`foreign_keys`, `cache_size`, ...): may be read and set;
    /// setting it ties the connection to the stream.
    Setting,
    /// Writes the database file (`user_version = 7`, `optimize`): allowed to writers, refused
    /// to read-only callers (SQLite reports it as writing, and `query_only` stops the rest).
    Write,
    /// May be read; the server manages the value (durability, locking, the file layout).
    ServerManaged,
}

/// The pragmas a client may use, and how: what ORMs and drivers send (SQLAlchemy, Alembic batch
/// mode, Django, Prisma, Drizzle, TypeORM, Knex, libSQL clients) plus harmless introspection.
/// Every other pragma is refused: an allowlist, so a pragma added to SQLite later is refused
/// until someone has looked at it.
const PRAGMAS: &[(&str, PragmaRule)] = &[
    // Schema introspection.
    ("table_info", PragmaRule::Read),
    ("table_xinfo", PragmaRule::Read),
    ("table_list", PragmaRule::Read),
    ("index_list", PragmaRule::Read),
    ("index_info", PragmaRule::Read),
    ("index_xinfo", PragmaRule::Read),
    ("foreign_key_list", PragmaRule::Read),
    ("foreign_key_check", PragmaRule::Read),
    ("database_list", PragmaRule::Read),
    ("collation_list", PragmaRule::Read),
    ("function_list", PragmaRule::Read),
    ("module_list", PragmaRule::Read),
    ("pragma_list", PragmaRule::Read),
    ("compile_options", PragmaRule::Read),
    // Checks and counters.
    ("integrity_check", PragmaRule::Read),
    ("quick_check", PragmaRule::Read),
    ("data_version", PragmaRule::Read),
    ("freelist_count", PragmaRule::Read),
    ("page_count", PragmaRule::Read),
    ("schema_version", PragmaRule::ServerManaged),
    ("encoding", PragmaRule::ServerManaged),
    ("page_size", PragmaRule::ServerManaged),
    ("auto_vacuum", PragmaRule::ServerManaged),
    // Values stored in the database header.
    ("user_version", PragmaRule::Write),
    ("application_id", PragmaRule::Write),
    // Maintenance that writes.
    ("optimize", PragmaRule::Write),
    ("incremental_vacuum", PragmaRule::Write),
    // Settings of the connection.
    ("foreign_keys", PragmaRule::Setting),
    ("defer_foreign_keys", PragmaRule::Setting),
    ("legacy_alter_table", PragmaRule::Setting),
    ("recursive_triggers", PragmaRule::Setting),
    ("case_sensitive_like", PragmaRule::Setting),
    ("read_uncommitted", PragmaRule::Setting),
    ("reverse_unordered_selects", PragmaRule::Setting),
    ("automatic_index", PragmaRule::Setting),
    ("ignore_check_constraints", PragmaRule::Setting),
    ("cell_size_check", PragmaRule::Setting),
    ("secure_delete", PragmaRule::Setting),
    ("trusted_schema", PragmaRule::Setting),
    ("temp_store", PragmaRule::Setting),
    ("cache_size", PragmaRule::Setting),
    ("cache_spill", PragmaRule::Setting),
    ("busy_timeout", PragmaRule::Setting),
    ("analysis_limit", PragmaRule::Setting),
    ("query_only", PragmaRule::Setting),
    ("shrink_memory", PragmaRule::Setting),
    // Managed by the server; reading them is harmless.
    ("journal_mode", PragmaRule::ServerManaged),
    ("locking_mode", PragmaRule::ServerManaged),
    ("synchronous", PragmaRule::ServerManaged),
    ("fullfsync", PragmaRule::ServerManaged),
    ("checkpoint_fullfsync", PragmaRule::ServerManaged),
    ("wal_autocheckpoint", PragmaRule::ServerManaged),
    ("journal_size_limit", PragmaRule::ServerManaged),
    ("mmap_size", PragmaRule::ServerManaged),
    // The per-database size limit (`max_size_bytes`): a client must not raise it.
    ("max_page_count", PragmaRule::ServerManaged),
    ("writable_schema", PragmaRule::ServerManaged),
];

/// Pragmas that act on the whole server process (every database, every connection), or on
/// what the server alone does (checkpoints), refused outright, with the reason the client
/// sees. SQLite runs most of them while the statement is *prepared*, so even `describe` would
/// apply them: the authorizer, which runs before that, is the place to refuse them.
const PROCESS_PRAGMAS: &[(&str, &str)] = &[
    (
        "hard_heap_limit",
        "it sets the memory limit of the whole server process, for every database",
    ),
    (
        "soft_heap_limit",
        "it sets the memory limit of the whole server process, for every database",
    ),
    (
        "threads",
        "it lets SQLite start helper threads in the server process, shared by every database",
    ),
    (
        "temp_store_directory",
        "it changes where every connection of the server process writes temporary files",
    ),
    (
        "data_store_directory",
        "it changes where every connection of the server process finds relative file names",
    ),
    (
        "wal_checkpoint",
        "the server checkpoints every database itself, from one place",
    ),
];

/// Largest page cache a client may ask for on one connection (`PRAGMA cache_size`), in KiB:
/// the server runs many connections, and memory is shared.
const MAX_CACHE_KIB: i64 = 256 * 1024;

/// Largest `PRAGMA busy_timeout` a client may set, in milliseconds (a statement waiting in
/// SQLite's busy handler holds a worker thread).
const MAX_BUSY_TIMEOUT_MS: i64 = 60_000;

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
    if flags.internal.load(Ordering::Relaxed) {
        return Authorization::Allow;
    }
    if flags.read_only.load(Ordering::Relaxed) && is_write(&ctx.action) {
        // The same code as a write refused after preparation (conn.rs), so clients see one
        // error whichever check caught it.
        return flags.deny_with(
            ErrorCode::SQLITE_READONLY,
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
        } => authorize_pragma(flags, pragma_name, pragma_value),
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

/// Decides one pragma (plain `PRAGMA x`, `PRAGMA x = v`, `PRAGMA x(v)`, and the table-valued
/// `pragma_x(...)` functions, which SQLite runs as the same pragma and so authorizes alike).
fn authorize_pragma(flags: &ConnFlags, name: &str, value: Option<&str>) -> Authorization {
    let name = name.to_ascii_lowercase();
    if let Some((_, why)) = PROCESS_PRAGMAS.iter().find(|(p, _)| *p == name) {
        return flags.deny(format!(
            "PRAGMA {name} is not allowed on a skylite server: {why}"
        ));
    }
    let Some(rule) = PRAGMAS.iter().find(|(p, _)| *p == name).map(|(_, r)| *r) else {
        return flags.deny(format!(
            "PRAGMA {name} is not allowed: skylite accepts only the pragmas on its allowlist \
             (schema introspection, checks, and connection settings such as foreign_keys, \
             busy_timeout or cache_size; see the documentation)"
        ));
    };
    // Maintenance pragmas write even without an argument, and may find nothing to do (then
    // SQLite reports them as reading): refused to a read-only caller either way, as sqld does.
    let writes = rule == PragmaRule::Write
        && (value.is_some() || name == "optimize" || name == "incremental_vacuum");
    if writes && flags.read_only_caller.load(Ordering::Relaxed) {
        return flags.deny_with(
            ErrorCode::SQLITE_READONLY,
            format!(
                "attempt to write with read-only access: PRAGMA {name} writes the database, \
                 and this token may only read it"
            ),
        );
    }
    let Some(value) = value else {
        return Authorization::Allow;
    };
    match rule {
        // The argument names a table or an index, or limits a check: nothing is set.
        PragmaRule::Read => Authorization::Allow,
        // The file itself refuses a read-only caller (stmt_readonly, query_only).
        PragmaRule::Write => Authorization::Allow,
        PragmaRule::ServerManaged => {
            if is_server_value(&name, value) {
                // Asking for what the server already set changes nothing (TypeORM, Rails and
                // Django setups send `journal_mode = WAL` and `synchronous = NORMAL` on
                // connect).
                return Authorization::Allow;
            }
            flags.deny(format!(
                "PRAGMA {name} cannot be changed: the server manages it \
                 (durability, locking, the file layout and the database's size limit are \
                 server settings)"
            ))
        }
        PragmaRule::Setting => {
            if name == "query_only" && flags.read_only_caller.load(Ordering::Relaxed) {
                return flags.deny_with(
                    ErrorCode::SQLITE_READONLY,
                    "PRAGMA query_only cannot be changed with read-only access".into(),
                );
            }
            if let Some(why) = setting_out_of_range(&name, value) {
                return flags.deny(why);
            }
            // A pragma set on this connection must follow the stream, not the pool.
            flags.tainted.store(true, Ordering::Relaxed);
            Authorization::Allow
        }
    }
}

/// True if `value` is what the server itself sets for the server-managed pragma `name` (keep in
/// step with `open_sqlite` in database.rs: WAL, `synchronous = NORMAL`).
fn is_server_value(name: &str, value: &str) -> bool {
    let value = value.trim().trim_matches(['\'', '"']);
    match name {
        "journal_mode" => value.eq_ignore_ascii_case("wal"),
        "synchronous" => value.eq_ignore_ascii_case("normal") || value == "1",
        _ => false,
    }
}

/// Why a connection setting's value is refused, if it is: the settings that cost server memory
/// or hold a worker thread are bounded.
fn setting_out_of_range(name: &str, value: &str) -> Option<String> {
    let number = || value.trim().trim_matches(['\'', '"']).parse::<i64>().ok();
    match name {
        "cache_size" => {
            // Negative: KiB; positive: pages (at most 64 KiB each).
            let kib = match number() {
                Some(n) if n < 0 => n.checked_neg().unwrap_or(i64::MAX),
                Some(n) => n.saturating_mul(64),
                None => return None,
            };
            (kib > MAX_CACHE_KIB).then(|| {
                format!(
                    "PRAGMA cache_size is limited to {MAX_CACHE_KIB} KiB per connection \
                     (cache_size = -{MAX_CACHE_KIB})"
                )
            })
        }
        "busy_timeout" => match number() {
            Some(ms) if ms > MAX_BUSY_TIMEOUT_MS => Some(format!(
                "PRAGMA busy_timeout is limited to {MAX_BUSY_TIMEOUT_MS} ms"
            )),
            _ => None,
        },
        _ => None,
    }
}

/// Installs the authorizer on a connection.
pub fn install(conn: &rusqlite::Connection, flags: Arc<ConnFlags>) {
    conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&flags, ctx)));
}
