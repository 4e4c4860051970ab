//! A database as SQL text, in the shape of `sqlite3`'s `.dump`: `PRAGMA foreign_keys=OFF;`,
//! `BEGIN TRANSACTION;`, each table's `CREATE` statement followed by one `INSERT` per row, the
//! AUTOINCREMENT counters (`sqlite_sequence`), then indexes, views and triggers, and `COMMIT;`.
//! The text restores into plain `sqlite3` and through a skylite `sequence`.
//!
//! The whole dump reads one snapshot (a single read transaction), so writers may keep committing
//! meanwhile. Output goes to any [`Write`] one statement at a time; nothing is gathered in
//! memory but the current row.
//!
//! What differs from `sqlite3`'s `.dump` (whose documented output is the model; the code here
//! is its own):
//! - Tables that SQLite or libSQL maintain themselves are not dumped as tables: `sqlite_stat*`
//!   (run `ANALYZE` after a restore), the shadow tables of virtual tables (`PRAGMA table_list`
//!   calls them `shadow`), and the shadow tables of libSQL vector indexes
//!   (`libsql_vector_meta_shadow`, `<index>_shadow`). A vector index is rebuilt by its own
//!   `CREATE INDEX ... (libsql_vector_idx(...))`, which comes after the rows of its table.
//! - A virtual table is dumped as its `CREATE VIRTUAL TABLE` plus `INSERT`s of the rows it shows
//!   (`sqlite3` writes its shadow tables with `PRAGMA writable_schema`, which skylite refuses).
//!   An FTS table with external content (`content=tbl`) gets `INSERT INTO t(t)
//!   VALUES('rebuild')` instead; a contentless one (`content=''`) stores no text, so only a
//!   comment says it must be filled again.
//! - Rowids of tables without an `INTEGER PRIMARY KEY` are kept (`INSERT INTO t(rowid, ...)`),
//!   generated columns are left out of `INSERT`s, and a non-zero `user_version` is restored.
//! - Floats are written in their shortest form that reads back to the same bits; text with
//!   line breaks uses `replace('..\n..','\n',char(10))` (as `sqlite3` does) so each statement
//!   stays on one line; text that is not valid UTF-8 or holds NUL characters is written as
//!   `CAST(X'..' AS TEXT)`.
//!
//! Each query of the dump runs under the engine's statement deadline (`statement_timeout`,
//! counting only time spent in SQLite, not time spent waiting for the reader), and schema text
//! (client data: table names may be any Unicode) is only ever cut at character boundaries.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::conn::StatementClock;
use crate::{EngineConfig, ErrorCode, ExecError};

/// Why a dump stopped.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// SQLite failed while reading.
    #[error("{0}")]
    Sqlite(#[from] ExecError),
    /// The output could not be written (for a streamed dump: the reader went away).
    #[error("cannot write the dump: {0}")]
    Write(#[from] std::io::Error),
}

impl From<rusqlite::Error> for DumpError {
    fn from(e: rusqlite::Error) -> Self {
        DumpError::Sqlite(ExecError::from_sqlite(&e))
    }
}

/// One row of `sqlite_schema`.
#[derive(Debug, Clone)]
struct SchemaItem {
    kind: String,
    name: String,
    table: String,
    sql: String,
}

/// A dump that has taken its snapshot and listed the schema; [`Dump::write_to`] writes it.
pub struct Dump {
    conn: Connection,
    clock: Arc<StatementClock>,
    items: Vec<SchemaItem>,
    /// Tables (and the objects on them) that are not dumped.
    skipped: HashSet<String>,
    virtual_tables: HashSet<String>,
}

/// Counts of what a dump wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Tables (virtual ones included) whose `CREATE` was written.
    pub tables: u64,
    /// `INSERT` statements written for rows.
    pub rows: u64,
}

impl Dump {
    /// Opens the database at `path` (which must exist), starts one read transaction and lists
    /// the schema. Errors here happen before any output. Blocking. Each query runs under the
    /// default statement timeout ([`EngineConfig::default`]); see [`Dump::begin_with_timeout`].
    pub fn begin(path: &Path) -> Result<Dump, ExecError> {
        Dump::begin_with_timeout(path, EngineConfig::default().statement_timeout)
    }

    /// [`Dump::begin`] with each query limited to `statement_timeout` of time in SQLite (zero:
    /// no limit); pass the database's `EngineConfig::statement_timeout`.
    pub fn begin_with_timeout(path: &Path, statement_timeout: Duration) -> Result<Dump, ExecError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| ExecError::from_sqlite(&e))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let clock = StatementClock::new(statement_timeout);
        clock.install(&conn);
        clock.start();
        let listed = Dump::list(conn, clock.clone());
        clock.stop();
        listed.map_err(|e| timeout_or(e, &clock))
    }

    fn list(conn: Connection, clock: Arc<StatementClock>) -> Result<Dump, ExecError> {
        conn.execute_batch("PRAGMA query_only=1; BEGIN")?;
        // The first read fixes the snapshot every later query sees.
        let items = {
            let mut stmt = conn.prepare(
                "SELECT type, name, tbl_name, sql FROM sqlite_schema \
                 WHERE sql IS NOT NULL ORDER BY rowid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(SchemaItem {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    table: r.get(2)?,
                    sql: r.get(3)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut skipped = HashSet::new();
        let mut virtual_tables = HashSet::new();
        {
            let mut stmt =
                conn.prepare("SELECT name, type FROM pragma_table_list WHERE schema = 'main'")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (name, kind) = row?;
                match kind.as_str() {
                    "shadow" => {
                        skipped.insert(name.to_ascii_lowercase());
                    }
                    "virtual" => {
                        virtual_tables.insert(name.to_ascii_lowercase());
                    }
                    _ => {}
                }
            }
        }
        for item in &items {
            let lower = item.name.to_ascii_lowercase();
            if item.kind == "table" && (lower.starts_with("sqlite_") || lower == VECTOR_META_TABLE)
            {
                skipped.insert(lower.clone());
            }
            if item.kind == "index" && is_vector_index(&item.sql) {
                skipped.insert(format!("{lower}_shadow"));
            }
        }
        let has_vector_meta = items
            .iter()
            .any(|i| i.kind == "table" && i.name.eq_ignore_ascii_case(VECTOR_META_TABLE));
        if has_vector_meta {
            let mut stmt = conn.prepare(&format!("SELECT name FROM {VECTOR_META_TABLE}"))?;
            let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
            for name in names.flatten() {
                skipped.insert(format!("{}_shadow", name.to_ascii_lowercase()));
            }
        }
        Ok(Dump {
            conn,
            clock,
            items,
            skipped,
            virtual_tables,
        })
    }

    /// Writes the whole dump to `out` and ends the read transaction. Blocking.
    pub fn write_to(self, out: &mut dyn Write) -> Result<DumpStats, DumpError> {
        // Time spent waiting for the reader does not count against the statement deadline.
        let mut out = PausingWriter {
            inner: out,
            clock: &self.clock,
        };
        self.clock.start();
        let result = self.write_all_to(&mut out);
        self.clock.stop();
        result.map_err(|e| match e {
            DumpError::Sqlite(e) => DumpError::Sqlite(timeout_or(e, &self.clock)),
            other => other,
        })
    }

    fn write_all_to(&self, out: &mut dyn Write) -> Result<DumpStats, DumpError> {
        let mut stats = DumpStats::default();
        out.write_all(b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")?;
        let mut rebuilds = Vec::new();
        let mut has_sequence = false;
        for item in self.items.iter().filter(|i| i.kind == "table") {
            let lower = item.name.to_ascii_lowercase();
            if lower == "sqlite_sequence" {
                has_sequence = true;
            }
            if self.skipped.contains(&lower) {
                continue;
            }
            stats.tables += 1;
            writeln!(out, "{};", item.sql)?;
            if self.virtual_tables.contains(&lower) {
                match fts_content(&item.sql) {
                    FtsContent::External => rebuilds.push(item.name.clone()),
                    FtsContent::None => writeln!(
                        out,
                        "-- {}: a contentless full-text table stores no text; fill it again",
                        quote_ident(&item.name)
                    )?,
                    FtsContent::Own => stats.rows += self.write_rows(item, true, out)?,
                }
            } else {
                stats.rows += self.write_rows(item, false, out)?;
            }
        }
        if has_sequence {
            out.write_all(b"DELETE FROM sqlite_sequence;\n")?;
            let mut stmt = self
                .conn
                .prepare("SELECT name, seq FROM sqlite_sequence ORDER BY rowid")?;
            let mut rows = stmt.query([])?;
            let mut line = String::new();
            while let Some(row) = rows.next()? {
                line.clear();
                line.push_str("INSERT INTO sqlite_sequence VALUES(");
                push_value(&mut line, row.get_ref(0)?);
                line.push(',');
                push_value(&mut line, row.get_ref(1)?);
                line.push_str(");\n");
                out.write_all(line.as_bytes())?;
            }
        }
        for name in &rebuilds {
            let q = quote_ident(name);
            writeln!(out, "INSERT INTO {q}({q}) VALUES('rebuild');")?;
        }
        for kind in ["index", "view", "trigger"] {
            for item in self.items.iter().filter(|i| i.kind == kind) {
                if self.skipped.contains(&item.table.to_ascii_lowercase())
                    || self.skipped.contains(&item.name.to_ascii_lowercase())
                {
                    continue;
                }
                writeln!(out, "{};", item.sql)?;
            }
        }
        let user_version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if user_version != 0 {
            writeln!(out, "PRAGMA user_version={user_version};")?;
        }
        out.write_all(b"COMMIT;\n")?;
        out.flush()?;
        self.conn.execute_batch("COMMIT")?;
        Ok(stats)
    }

    /// Writes one `INSERT` per row of a table; returns the number of rows.
    fn write_rows(
        &self,
        item: &SchemaItem,
        is_virtual: bool,
        out: &mut dyn Write,
    ) -> Result<u64, DumpError> {
        // Each table's rows are one query: the deadline starts again for it.
        self.clock.start();
        let table = quote_ident(&item.name);
        // (name, hidden): 0 normal, 1 hidden (virtual tables), 2/3 generated.
        let columns: Vec<(String, i64)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name, hidden FROM pragma_table_xinfo(?1)")?;
            let rows = stmt.query_map([&item.name], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let insertable: Vec<&str> = columns
            .iter()
            .filter(|(_, hidden)| *hidden == 0)
            .map(|(n, _)| n.as_str())
            .collect();
        let rowid = if is_virtual {
            self.virtual_rowid(&item.sql, &table)
        } else {
            self.table_rowid(item, &table, &columns)?
        };
        let mut select_list: Vec<String> = Vec::new();
        if let Some(r) = rowid {
            select_list.push(r.to_owned());
        }
        select_list.extend(insertable.iter().map(|c| quote_ident(c)));
        if select_list.is_empty() {
            return Ok(0);
        }
        let column_list = if rowid.is_some() || insertable.len() != columns.len() {
            format!("({})", select_list.join(","))
        } else {
            String::new()
        };
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {} FROM {table}", select_list.join(",")))?;
        let width = select_list.len();
        let mut rows = stmt.query([])?;
        let mut line = String::new();
        let mut count = 0u64;
        while let Some(row) = rows.next()? {
            line.clear();
            let _ = write!(line, "INSERT INTO {table}{column_list} VALUES(");
            for i in 0..width {
                if i > 0 {
                    line.push(',');
                }
                push_value(&mut line, row.get_ref(i)?);
            }
            line.push_str(");\n");
            out.write_all(line.as_bytes())?;
            count += 1;
        }
        Ok(count)
    }

    /// The name under which an ordinary table's rowid must be kept, or `None` if it has none
    /// (WITHOUT ROWID), it is an `INTEGER PRIMARY KEY` (dumped as a column anyway), or every
    /// rowid name is taken by a column.
    fn table_rowid(
        &self,
        item: &SchemaItem,
        table: &str,
        columns: &[(String, i64)],
    ) -> Result<Option<&'static str>, DumpError> {
        let Some(name) = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|n| !columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(n)))
        else {
            return Ok(None);
        };
        if self
            .conn
            .prepare(&format!("SELECT {name} FROM {table} LIMIT 0"))
            .is_err()
        {
            return Ok(None); // WITHOUT ROWID
        }
        let pk: Vec<(String, i64)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT type, pk FROM pragma_table_info(?1) WHERE pk > 0")?;
            let rows = stmt.query_map([&item.name], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let aliased = pk.len() == 1
            && pk
                .first()
                .is_some_and(|(t, _)| t.eq_ignore_ascii_case("integer"));
        Ok(if aliased { None } else { Some(name) })
    }

    /// Whether a virtual table's rows are inserted with their rowid (FTS tables: yes; R-trees
    /// carry it as their first column; other modules: if they have one).
    fn virtual_rowid(&self, sql: &str, table: &str) -> Option<&'static str> {
        let module = module_name(sql);
        if module.starts_with("rtree") || module == "geopoly" {
            return None;
        }
        self.conn
            .prepare(&format!("SELECT rowid FROM {table} LIMIT 0"))
            .ok()
            .map(|_| "rowid")
    }
}

/// The table libSQL keeps its vector indexes' settings in.
const VECTOR_META_TABLE: &str = "libsql_vector_meta_shadow";

fn is_vector_index(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains("libsql_vector_idx")
}

/// Where an FTS virtual table's text lives.
#[derive(Debug, PartialEq, Eq)]
enum FtsContent {
    /// In the table itself (or not an FTS table at all): dump its rows.
    Own,
    /// In another table (`content=tbl`): rebuild the index from it.
    External,
    /// Nowhere (`content=''`).
    None,
}

/// The module of a `CREATE VIRTUAL TABLE ... USING module(...)` statement, lowercased.
fn module_name(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let Some(pos) = find_word(&lower, "using") else {
        return String::new();
    };
    lower
        .get(pos + "using".len()..)
        .unwrap_or("")
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The byte offset of `word` in `text` as a whole word outside quotes.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let Some(&b) = bytes.get(i) else { break };
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if matches!(b, b'\'' | b'"' | b'`') => quote = Some(b),
            None if b == b'[' => quote = Some(b']'),
            None => {
                // Compared as bytes: `i` may be inside a multi-byte character of a name.
                let before_ok = i == 0 || !bytes.get(i - 1).copied().is_some_and(is_word_byte);
                let after = i + word.len();
                if before_ok
                    && bytes
                        .get(i..)
                        .is_some_and(|rest| rest.starts_with(word.as_bytes()))
                    && !bytes.get(after).copied().is_some_and(is_word_byte)
                {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The `content=` option of an FTS3/4/5 table.
fn fts_content(sql: &str) -> FtsContent {
    let module = module_name(sql);
    if !matches!(module.as_str(), "fts3" | "fts4" | "fts5") {
        return FtsContent::Own;
    }
    let Some(open) = sql.find('(') else {
        return FtsContent::Own;
    };
    let close = sql.rfind(')').unwrap_or(sql.len()).max(open + 1);
    // Both ends sit on ASCII parentheses, so on character boundaries; `get` keeps it so.
    let args = sql.get(open + 1..close).unwrap_or("");
    for arg in split_args(args) {
        let Some((key, value)) = arg.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("content") {
            continue;
        }
        let value = value.trim();
        let unquoted = value
            .strip_prefix(['\'', '"', '`', '['])
            .and_then(|v| v.strip_suffix(['\'', '"', '`', ']']))
            .unwrap_or(value);
        return if unquoted.is_empty() {
            FtsContent::None
        } else {
            FtsContent::External
        };
    }
    FtsContent::Own
}

/// Splits a module argument list at the commas that are outside quotes and parentheses.
fn split_args(args: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in args.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '[' => quote = Some(']'),
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    parts.push(args.get(start..i).unwrap_or(""));
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    parts.push(args.get(start..).unwrap_or(""));
    parts
}

/// `"name"`, with inner double quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Appends one value as an SQL literal that reads back to exactly the same value. The one SQL
/// literal printer of skylite: the dump here and the `skylite shell`'s `.dump` both use it.
pub fn push_value(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("NULL"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(f) => push_float(out, f),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => push_text(out, text),
            _ => {
                out.push_str("CAST(");
                push_blob(out, bytes);
                out.push_str(" AS TEXT)");
            }
        },
        ValueRef::Blob(bytes) => push_blob(out, bytes),
    }
}

fn push_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NULL");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "9.0e+999" } else { "-9.0e+999" });
    } else {
        // Rust prints the shortest digits that read back to the same double.
        let plain = format!("{f}");
        if plain.len() <= 24 {
            out.push_str(&plain);
            if !plain.contains('.') {
                out.push_str(".0");
            }
        } else {
            let _ = write!(out, "{f:e}");
        }
    }
}

fn push_blob(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push('\'');
}

fn push_text(out: &mut String, text: &str) {
    // Line breaks become escapes undone by replace(), so one statement stays on one line; if
    // the text already holds the escape, the line break is written as it is (still valid SQL).
    let newline = text.contains('\n') && !text.contains("\\n");
    let cr = text.contains('\r') && !text.contains("\\r");
    if newline {
        out.push_str("replace(");
    }
    if cr {
        out.push_str("replace(");
    }
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\n' if newline => out.push_str("\\n"),
            '\r' if cr => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    if cr {
        out.push_str(",'\\r',char(13))");
    }
    if newline {
        out.push_str(",'\\n',char(10))");
    }
}

/// A writer that moves the statement deadline by the time each write takes (a slow reader is not
/// a slow statement).
struct PausingWriter<'a> {
    inner: &'a mut dyn Write,
    clock: &'a StatementClock,
}

impl Write for PausingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let started = Instant::now();
        let n = self.inner.write(buf);
        self.clock.pause(started.elapsed());
        n
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let started = Instant::now();
        let r = self.inner.write_all(buf);
        self.clock.pause(started.elapsed());
        r
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let started = Instant::now();
        let r = self.inner.flush();
        self.clock.pause(started.elapsed());
        r
    }
}

/// `STATEMENT_TIMEOUT` for an error the deadline caused, `e` otherwise.
fn timeout_or(e: ExecError, clock: &StatementClock) -> ExecError {
    if e.code == ErrorCode::SQLITE_INTERRUPT && clock.timed_out() {
        clock.timeout_error(false)
    } else {
        e
    }
}

/// Dumps the database at `path` into `out` (see the module documentation). Blocking.
pub fn dump(path: &Path, out: &mut dyn Write) -> Result<DumpStats, DumpError> {
    Dump::begin(path)?.write_to(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(v: ValueRef<'_>) -> String {
        let mut s = String::new();
        push_value(&mut s, v);
        s
    }

    #[test]
    fn literals_read_back_exactly() {
        let conn = Connection::open_in_memory().unwrap();
        let texts = [
            "plain",
            "it's",
            "two\nlines\r\nand a CR\r",
            "has \\n already\nand a newline",
            "ünïcödé 🎉",
            "",
        ];
        for t in texts {
            let lit = literal(ValueRef::Text(t.as_bytes()));
            assert!(
                !lit.contains('\n') || t.contains("\\n"),
                "{lit} spans lines"
            );
            let back: String = conn
                .query_row(&format!("SELECT {lit}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(back, t, "{lit}");
        }
        for f in [
            0.1,
            -2.5,
            1.0,
            1e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            123456789.0,
            -0.0,
        ] {
            let lit = literal(ValueRef::Real(f));
            let (back, kind): (f64, String) = conn
                .query_row(&format!("SELECT {lit}, typeof({lit})"), [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!(kind, "real", "{lit}");
            assert!(back == f, "{lit}: {back} != {f}");
        }
        for i in [i64::MIN, i64::MAX, 0, -1] {
            let lit = literal(ValueRef::Integer(i));
            let back: i64 = conn
                .query_row(&format!("SELECT {lit}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(back, i);
        }
        let inf: f64 = conn
            .query_row(
                &format!("SELECT {}", literal(ValueRef::Real(f64::INFINITY))),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(inf, f64::INFINITY);
        let raw = b"a\0b\xff";
        let (back, kind): (Vec<u8>, String) = conn
            .query_row(
                &format!(
                    "SELECT CAST({0} AS BLOB), typeof({0})",
                    literal(ValueRef::Text(raw))
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((back.as_slice(), kind.as_str()), (&raw[..], "text"));
    }

    #[test]
    fn fts_options() {
        assert_eq!(
            fts_content("CREATE VIRTUAL TABLE f USING fts5(a, b)"),
            FtsContent::Own
        );
        assert_eq!(
            fts_content("CREATE VIRTUAL TABLE f USING fts5(a, content='docs', content_rowid='id')"),
            FtsContent::External
        );
        assert_eq!(
            fts_content("create virtual table f using FTS5(a, content = '')"),
            FtsContent::None
        );
        assert_eq!(
            fts_content("CREATE VIRTUAL TABLE r USING rtree(id, x0, x1)"),
            FtsContent::Own
        );
        assert_eq!(
            module_name("CREATE VIRTUAL TABLE \"using\" USING rtree_i32(id, a, b)"),
            "rtree_i32"
        );
    }
}
