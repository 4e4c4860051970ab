//! Administrative work on a database file that no client statement may do: counting tables,
//! `PRAGMA quick_check`, and a consistent copy of a live database (SQLite's online backup).
//!
//! Each function opens its own short-lived SQLite connection, without the client-facing
//! authorizer and limits (a copy writes another file, which those forbid), and never creates a
//! missing database file (only a copy's new target). All of it blocks: call it from a worker
//! thread.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{ErrorCode, ExecError};

/// Opens a maintenance connection to an existing database file.
fn open(path: &Path) -> Result<Connection, ExecError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| ExecError::from_sqlite(&e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| ExecError::from_sqlite(&e))?;
    // quick_check evaluates CHECK constraints, which may use REGEXP or math functions.
    crate::sql_functions::register(&conn).map_err(|e| ExecError::from_sqlite(&e))?;
    Ok(conn)
}

/// The number of tables in the database (SQLite's internal tables not counted).
pub fn table_count(path: &Path) -> Result<u64, ExecError> {
    let conn = open(path)?;
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
    .map_err(|e| ExecError::from_sqlite(&e))
}

/// The result of `PRAGMA quick_check`: `"ok"`, or SQLite's list of problems joined by
/// newlines.
pub fn quick_check(path: &Path) -> Result<String, ExecError> {
    let conn = open(path)?;
    let mut stmt = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| ExecError::from_sqlite(&e))?;
    let lines = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| ExecError::from_sqlite(&e))?
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| ExecError::from_sqlite(&e))?;
    Ok(lines.join("\n"))
}

/// Writes a transactionally consistent copy of the database at `source` to the new file
/// `dest` (which must not exist). The copy reads one snapshot of the database, so writers may
/// keep committing meanwhile (WAL mode): it holds exactly the transactions committed before
/// it began.
///
/// It is a page-for-page copy through SQLite's online backup, done in a single step (one read
/// transaction, so concurrent writers never make it restart), and fsynced. Not `VACUUM INTO`:
/// libSQL's `VACUUM` replays `CREATE INDEX ... libsql_vector_idx(...)`, which adds a second row
/// to `libsql_vector_meta_shadow` and leaves a copy that fails `integrity_check`.
pub fn copy_consistent(source: &Path, dest: &Path) -> Result<(), ExecError> {
    if dest.exists() {
        return Err(ExecError::new(
            ErrorCode::Internal,
            format!("the copy's target {} already exists", dest.display()),
        ));
    }
    let conn = open(source)?;
    copy_from(&conn, dest).map(|_| ())
}

/// Copies the database of `conn` into the new file `dest` (online backup in one step, then
/// fsync), as of `conn`'s open read transaction if it has one, else as of now. Returns the
/// copy's page size and page count.
pub(crate) fn copy_from(conn: &Connection, dest: &Path) -> Result<crate::SnapshotInfo, ExecError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut target =
        Connection::open_with_flags(dest, flags).map_err(|e| ExecError::from_sqlite(&e))?;
    // A fresh file that is thrown away if anything fails: no journal needed.
    target
        .execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        .map_err(|e| ExecError::from_sqlite(&e))?;
    {
        let backup = rusqlite::backup::Backup::new(conn, &mut target)
            .map_err(|e| ExecError::from_sqlite(&e))?;
        match backup.step(-1).map_err(|e| ExecError::from_sqlite(&e))? {
            rusqlite::backup::StepResult::Done => {}
            other => {
                return Err(ExecError::new(
                    ErrorCode::SQLITE_BUSY,
                    format!("the copy could not finish ({other:?}); try again"),
                ))
            }
        }
    }
    let pragma = |name: &str| {
        target
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map_err(|e| ExecError::from_sqlite(&e))
    };
    let info = crate::SnapshotInfo {
        page_size: pragma("page_size")? as u32,
        db_pages: pragma("page_count")? as u32,
    };
    target
        .close()
        .map_err(|(_, e)| ExecError::from_sqlite(&e))?;
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| {
            ExecError::new(
                ErrorCode::SQLITE_IOERR_FSYNC,
                format!("cannot fsync the copy: {e}"),
            )
        })?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_checks_and_copies() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.db");
        let conn = Connection::open(&src).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);
             CREATE TABLE v(id INTEGER PRIMARY KEY, emb F32_BLOB(2));
             CREATE INDEX v_idx ON v(libsql_vector_idx(emb));
             INSERT INTO v VALUES (1, vector('[1,2]'));",
        )
        .unwrap();
        assert_eq!(table_count(&src).unwrap(), 4);
        assert_eq!(quick_check(&src).unwrap(), "ok");
        let dest = dir.path().join("b.db");
        copy_consistent(&src, &dest).unwrap();
        let copy = Connection::open(&dest).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        // A vector index survives the copy intact (VACUUM INTO would duplicate its metadata).
        assert_eq!(quick_check(&dest).unwrap(), "ok");
        assert!(copy_consistent(&src, &dest).is_err(), "the target exists");
        assert!(table_count(&dir.path().join("missing.db")).is_err());
        assert!(!dir.path().join("missing.db").exists());
    }
}
