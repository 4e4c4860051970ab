//! Splitting SQL text into statements as it streams in, line by line, in memory bounded by the
//! longest statement: SQLite's own `sqlite3_complete` decides where a statement ends, so
//! semicolons inside strings, quoted names, comments and `CREATE TRIGGER ... BEGIN ... END;`
//! bodies never split one. Used by `skylite db import dump.sql` and by the shell.

use std::ffi::CString;
use std::io::BufRead;

/// SQLite's judgement of whether `sql` ends with a complete statement.
pub fn is_complete(sql: &str) -> bool {
    match CString::new(sql) {
        // SAFETY: `c` is a valid NUL-terminated string that outlives the call, and
        // sqlite3_complete only reads it.
        Ok(c) => unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 },
        // A NUL byte: SQLite would stop reading there; let the server judge the text.
        Err(_) => sql.trim_end().ends_with(';'),
    }
}

/// True if `sql` holds nothing but whitespace, comments and semicolons.
pub fn is_blank(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        let s = skylite_engine::sql_text::skip_space_and_comments(rest);
        let s = s.trim_start_matches(|c: char| c == ';' || c.is_whitespace());
        if s.len() == rest.len() {
            return s.is_empty();
        }
        rest = s;
    }
}

/// Splits complete text (one or more whole statements) into its statements, trimmed.
pub fn split_complete(mut sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    while !is_blank(sql) {
        let (len, _) = skylite_engine::sql_text::first_statement(sql);
        let stmt = sql[..len].trim();
        if !is_blank(stmt) {
            out.push(stmt.to_owned());
        }
        sql = &sql[len..];
    }
    out
}

/// One statement and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: u64,
    pub sql: String,
}

/// Reads statements from a stream of SQL text.
pub struct StatementReader<R> {
    input: R,
    pending: String,
    pending_line: u64,
    line: u64,
    queue: std::collections::VecDeque<Located>,
    bytes_read: u64,
    done: bool,
}

impl<R: BufRead> StatementReader<R> {
    pub fn new(input: R) -> Self {
        StatementReader {
            input,
            pending: String::new(),
            pending_line: 1,
            line: 0,
            queue: Default::default(),
            bytes_read: 0,
            done: false,
        }
    }

    /// Bytes consumed from the input so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next statement, `None` at the end, or an error (unreadable input, text that is not
    /// UTF-8, an incomplete statement at the end).
    pub fn next_statement(&mut self) -> Result<Option<Located>, String> {
        loop {
            if let Some(s) = self.queue.pop_front() {
                return Ok(Some(s));
            }
            if self.done {
                return Ok(None);
            }
            let mut raw = Vec::new();
            let n = self
                .input
                .read_until(b'\n', &mut raw)
                .map_err(|e| format!("cannot read line {}: {e}", self.line + 1))?;
            self.bytes_read += n as u64;
            if n == 0 {
                self.done = true;
                if !is_blank(&self.pending) {
                    return Err(format!(
                        "the SQL ends in the middle of a statement (it starts on line {}): is \
                         the file truncated?",
                        self.pending_line
                    ));
                }
                continue;
            }
            self.line += 1;
            let text = String::from_utf8(raw)
                .map_err(|_| format!("line {} is not UTF-8 text", self.line))?;
            if is_blank(&self.pending) {
                self.pending.clear();
                self.pending_line = self.line;
            }
            self.pending.push_str(&text);
            if self.pending.trim_end().ends_with(';') && is_complete(&self.pending) {
                let text = std::mem::take(&mut self.pending);
                let mut line = self.pending_line;
                for sql in split_complete(&text) {
                    self.queue.push_back(Located { line, sql });
                    // Statements after the first on the same text start no earlier than here.
                    line = line.max(self.pending_line);
                }
                self.pending_line = self.line + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<String> {
        let mut r = StatementReader::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(s) = r.next_statement().unwrap() {
            out.push(s.sql);
        }
        out
    }

    #[test]
    fn splits_like_sqlite() {
        let text = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
            CREATE TABLE t(a TEXT); -- c;omment\n\
            INSERT INTO t VALUES('x;y\nstill ''string'';');INSERT INTO t VALUES('attach');\n\
            CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = 'z;';\n  SELECT 1;\nEND;\n\
            /* block; */ COMMIT;\n";
        assert_eq!(
            all(text),
            vec![
                "PRAGMA foreign_keys=OFF;",
                "BEGIN TRANSACTION;",
                "CREATE TABLE t(a TEXT);",
                // A comment after a statement stays with the next one (SQLite skips it).
                "-- c;omment\nINSERT INTO t VALUES('x;y\nstill ''string'';');",
                "INSERT INTO t VALUES('attach');",
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = 'z;';\n  SELECT 1;\nEND;",
                "/* block; */ COMMIT;",
            ]
        );
    }

    #[test]
    fn an_incomplete_end_is_an_error() {
        let mut r = StatementReader::new("SELECT 1;\nINSERT INTO t VALUES('open".as_bytes());
        assert!(r.next_statement().unwrap().is_some());
        assert!(r.next_statement().unwrap_err().contains("line 2"));
        assert!(is_blank(" -- x\n /* y */ ;; "));
    }
}
