//! Checking an uploaded database file before it becomes a database: the SQLite header, that
//! SQLite opens it, `PRAGMA quick_check` (or `integrity_check` when asked), the page count the client announced; then the
//! switch to WAL mode and an fsync, so that the file is ready to be moved into place.
//!
//! The file may come in rollback-journal or WAL mode, with any page size SQLite supports
//! (512 to 65536 bytes). It is untrusted: the checking connection runs with
//! `SQLITE_DBCONFIG_DEFENSIVE` and `trusted_schema=OFF`, and nothing in its schema runs.
//! Blocking: call it from a worker thread.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{ErrorCode, ExecError};

/// The first 16 bytes of every SQLite database file.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Most lines of `integrity_check` output kept in an error.
const MAX_PROBLEMS: usize = 10;

/// Why a file cannot become a database.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not an SQLite database at all (wrong magic, or too short for a header).
    #[error("{0}")]
    NotADatabase(String),
    /// An SQLite file that is truncated or damaged.
    #[error("{0}")]
    Corrupt(String),
    /// The file has a different number of pages than the client said.
    #[error("{0}")]
    PageCountMismatch(String),
    /// The server failed (disk, SQLite) while checking a file that may be fine.
    #[error("{0}")]
    Internal(String),
}

/// What an accepted file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportedFile {
    /// Pages in the database.
    pub page_count: u64,
    /// Bytes per page.
    pub page_size: u64,
    /// Tables (SQLite's internal ones not counted).
    pub tables: u64,
}

/// The fields of the 100-byte database header that the checks use.
#[derive(Debug, Clone, Copy)]
struct Header {
    page_size: u64,
    /// The size in pages the header records, if the header says it is valid.
    page_count: Option<u64>,
}

fn read_header(path: &Path, file_len: u64) -> Result<Header, ImportError> {
    let mut head = [0u8; 100];
    let mut file = std::fs::File::open(path)
        .map_err(|e| ImportError::Internal(format!("cannot read the uploaded file: {e}")))?;
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                return Err(ImportError::Internal(format!(
                    "cannot read the uploaded file: {e}"
                )))
            }
        }
    }
    if got < SQLITE_MAGIC.len() || &head[..SQLITE_MAGIC.len()] != SQLITE_MAGIC {
        return Err(ImportError::NotADatabase(format!(
            "the file is not an SQLite database: it does not start with \"SQLite format 3\" \
             ({file_len} bytes received)"
        )));
    }
    if got < head.len() {
        return Err(ImportError::Corrupt(format!(
            "the file is truncated: {got} bytes, shorter than the 100-byte SQLite header"
        )));
    }
    let raw_size = u16::from_be_bytes([head[16], head[17]]) as u64;
    let page_size = if raw_size == 1 { 65536 } else { raw_size };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(ImportError::Corrupt(format!(
            "the SQLite header is damaged: page size {raw_size} is not a power of two \
             between 512 and 65536"
        )));
    }
    let be32 = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    // The in-header size is valid only if it is non-zero and the change counter matches the
    // "version-valid-for" number, as SQLite itself decides.
    let in_header = be32(28) as u64;
    let page_count = (in_header != 0 && be32(24) == be32(92)).then_some(in_header);
    Ok(Header {
        page_size,
        page_count,
    })
}

fn sqlite_error(what: &str, e: rusqlite::Error) -> ImportError {
    let e = ExecError::from_sqlite(&e);
    // A file that is not a database, or a damaged one, is the upload's fault; anything else
    // (I/O, memory) is the server's.
    let damaged = e.code == ErrorCode::SQLITE_NOTADB
        || e.code.sqlite_primary() == Some(11) // SQLITE_CORRUPT and its extended codes
        || e.code == ErrorCode::Sqlite(10 | (2 << 8)) // SQLITE_IOERR_SHORT_READ: a truncated file
        || e.code == ErrorCode::Sqlite(24); // SQLITE_FORMAT
    let text = format!("{what}: {}: {}", e.code, e.message);
    if damaged {
        ImportError::Corrupt(text)
    } else {
        ImportError::Internal(text)
    }
}

/// Checks the database file at `path` (alone in its folder: no journal or WAL beside it),
/// switches it to WAL mode and makes it durable. `expected_pages` is the page count the client
/// announced, if any. On success the file is a WAL-mode database with its WAL checkpointed
/// away.
pub fn check_and_prepare(
    path: &Path,
    expected_pages: Option<u64>,
) -> Result<ImportedFile, ImportError> {
    check_and_prepare_with(path, expected_pages, ImportCheck::Quick)
}

/// How thoroughly an uploaded file is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportCheck {
    /// `PRAGMA quick_check` (with `cell_size_check` on): every b-tree page, cell, record and
    /// free page, and the page accounting; what keeps a damaged file from being served. It
    /// skips only the comparison of each index with its table (and UNIQUE re-checks), which
    /// costs an order of magnitude more on a large file (19 s against 1 s for 300 MB).
    #[default]
    Quick,
    /// `PRAGMA integrity_check`: also every index entry against its table row.
    Full,
}

/// [`check_and_prepare`] with the check to run.
pub fn check_and_prepare_with(
    path: &Path,
    expected_pages: Option<u64>,
    check: ImportCheck,
) -> Result<ImportedFile, ImportError> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| ImportError::Internal(format!("cannot read the uploaded file: {e}")))?
        .len();
    let header = read_header(path, file_len)?;
    if file_len % header.page_size != 0 {
        return Err(ImportError::Corrupt(format!(
            "the file is truncated or damaged: {file_len} bytes is not a whole number of \
             {}-byte pages",
            header.page_size
        )));
    }
    if let Some(pages) = header.page_count {
        let needed = pages.saturating_mul(header.page_size);
        if file_len < needed {
            return Err(ImportError::Corrupt(format!(
                "the file is truncated: its header says {pages} pages of {} bytes ({needed} \
                 bytes), but only {file_len} bytes arrived",
                header.page_size
            )));
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| sqlite_error("SQLite cannot open the file", e))?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        conn.execute_batch("PRAGMA trusted_schema=OFF; PRAGMA cell_size_check=ON")?;
        // CHECK constraints may use REGEXP or math functions; the check evaluates them.
        crate::sql_functions::register(&conn)?;
        Ok(())
    };
    setup().map_err(|e| sqlite_error("cannot set up the check", e))?;
    let problems = {
        let mut stmt = conn
            .prepare(match check {
                ImportCheck::Quick => "PRAGMA quick_check",
                ImportCheck::Full => "PRAGMA integrity_check",
            })
            .map_err(|e| sqlite_error("the database schema cannot be read", e))?;
        let mut rows = stmt
            .query([])
            .map_err(|e| sqlite_error("the check failed", e))?;
        let mut lines = Vec::new();
        let mut more = 0usize;
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    let line: String = row
                        .get::<_, Option<String>>(0)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    if lines.len() < MAX_PROBLEMS {
                        lines.push(line);
                    } else {
                        more += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(sqlite_error("the check failed", e)),
            }
        }
        if more > 0 {
            lines.push(format!("... and {more} more"));
        }
        lines
    };
    if problems.len() != 1 || problems[0] != "ok" {
        return Err(ImportError::Corrupt(format!(
            "the database is damaged; PRAGMA {} says: {}",
            match check {
                ImportCheck::Quick => "quick_check (integrity_check without the index scan)",
                ImportCheck::Full => "integrity_check",
            },
            problems.join("; ")
        )));
    }
    let pragma = |sql: &str| -> Result<i64, ImportError> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(|e| sqlite_error(sql, e))
    };
    let page_count = pragma("PRAGMA page_count")?.max(0) as u64;
    let page_size = pragma("PRAGMA page_size")?.max(0) as u64;
    if let Some(expected) = expected_pages {
        if expected != page_count {
            return Err(ImportError::PageCountMismatch(format!(
                "the file has {page_count} pages but x-skylite-page-count says {expected}: \
                 the upload is incomplete or not the file that was meant"
            )));
        }
    }
    let tables = pragma(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?
    .max(0) as u64;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| sqlite_error("cannot switch the database to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(ImportError::Internal(format!(
            "cannot switch the database to WAL mode (it stays in {mode} mode)"
        )));
    }
    // Closing the last connection checkpoints the WAL into the file and removes it.
    conn.close()
        .map_err(|(_, e)| sqlite_error("cannot close the checked database", e))?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| ImportError::Internal(format!("cannot fsync the imported file: {e}")))?;
    Ok(ImportedFile {
        page_count,
        page_size,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, name: &str, setup: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(setup).unwrap();
        path
    }

    #[test]
    fn accepts_any_page_size_and_journal_mode() {
        let dir = tempfile::tempdir().unwrap();
        for (i, size) in [512, 1024, 4096, 65536].into_iter().enumerate() {
            let sub = dir.path().join(format!("d{i}"));
            std::fs::create_dir(&sub).unwrap();
            let path = make(
                &sub,
                "data.db",
                &format!(
                    "PRAGMA page_size={size}; PRAGMA journal_mode=DELETE; \
                     CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(3000));"
                ),
            );
            let got = check_and_prepare(&path, None).unwrap();
            assert_eq!(got.page_size, size);
            assert_eq!(got.tables, 1);
            let conn = Connection::open(&path).unwrap();
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }

    #[test]
    fn refuses_what_is_not_a_database_or_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, b"hello, this is not a database at all").unwrap();
        assert!(matches!(
            check_and_prepare(&text, None),
            Err(ImportError::NotADatabase(_))
        ));
        let good = make(
            dir.path(),
            "good.db",
            "CREATE TABLE t(x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c \
             WHERE i < 100) INSERT INTO t SELECT randomblob(500) FROM c;",
        );
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.db");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            check_and_prepare(&cut, None),
            Err(ImportError::Corrupt(_))
        ));
        let pages = (bytes.len() / 4096) as u64;
        assert!(matches!(
            check_and_prepare(&good, Some(pages + 1)),
            Err(ImportError::PageCountMismatch(_))
        ));
        assert!(check_and_prepare(&good, Some(pages)).is_ok());
    }
}
