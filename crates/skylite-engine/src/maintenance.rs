//! Administrative work on a database file that no client statement may do: counting tables,
//! `PRAGMA quick_check`, and a consistent copy of a live database (`VACUUM INTO`).
//!
//! Each function opens its own short-lived SQLite connection, without the client-facing
//! authorizer and limits (`VACUUM INTO` attaches its target internally, which those forbid),
//! and never creates a missing database file. All of it blocks: call it from a worker thread.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::ExecError;

/// Opens a maintenance connection to an existing database file.
fn open(path: &Path) -> Result<Connection, ExecError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| ExecError::from_sqlite(&e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| ExecError::from_sqlite(&e))?;
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
pub fn copy_consistent(source: &Path, dest: &Path) -> Result<(), ExecError> {
    let conn = open(source)?;
    let dest = dest.to_str().ok_or_else(|| {
        ExecError::new(
            "INTERNAL",
            format!("the path {} is not valid UTF-8", dest.display()),
        )
    })?;
    conn.execute("VACUUM INTO ?1", [dest])
        .map_err(|e| ExecError::from_sqlite(&e))?;
    Ok(())
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
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
        assert_eq!(table_count(&src).unwrap(), 1);
        assert_eq!(quick_check(&src).unwrap(), "ok");
        let dest = dir.path().join("b.db");
        copy_consistent(&src, &dest).unwrap();
        let copy = Connection::open(&dest).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        assert!(table_count(&dir.path().join("missing.db")).is_err());
        assert!(!dir.path().join("missing.db").exists());
    }
}
