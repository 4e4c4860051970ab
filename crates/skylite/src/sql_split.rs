//! Splitting SQL text into statements as it streams in, line by line, in memory bounded by the
//! longest statement: the engine's [`Scanner`] (a linear equivalent of SQLite's
//! `sqlite3_complete`) decides where a statement ends, so semicolons inside strings, quoted
//! names, comments and `CREATE TRIGGER ... BEGIN ... END;` bodies never split one. The scanner
//! resumes where it stopped, so a statement of many lines is scanned once, not once per line.
//! Used by `skylite db import dump.sql` and by the shell. Blank text, completeness and the end
//! of the first statement are the engine's judgement ([`skylite_engine::sql_text`]), never
//! re-implemented here.

use std::io::BufRead;

use skylite_engine::sql_text::{first_statement, is_blank, Scanner};

/// Splits complete text (one or more whole statements) into its statements, trimmed.
pub fn split_complete(mut sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    while !is_blank(sql) {
        let (len, _) = first_statement(sql);
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
    /// Scans `pending` as it grows.
    scanner: Scanner,
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
            scanner: Scanner::new(),
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
            if self.scanner.is_blank_so_far(&self.pending) {
                self.pending.clear();
                self.scanner = Scanner::new();
                self.pending_line = self.line;
            }
            self.pending.push_str(&text);
            while self.scanner.next_statement_end(&self.pending).is_some() {}
            let complete = if self.scanner.saw_nul() {
                // SQLite would stop reading at the NUL; let the server judge the text.
                true
            } else {
                self.scanner.is_complete_at_end(&self.pending)
            };
            if complete && self.pending.trim_end().ends_with(';') {
                self.scanner = Scanner::new();
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
    fn a_comment_over_several_lines_stays_with_its_statement() {
        assert_eq!(
            all("/* a\n b; */ SELECT 1;\n-- x\nSELECT 2;\n"),
            vec!["/* a\n b; */ SELECT 1;", "SELECT 2;"]
        );
    }

    #[test]
    fn a_long_statement_of_many_lines_is_read_in_linear_time() {
        // Complexity guard, not a benchmark: 200k lines ending in ';' inside one literal cost
        // a sqlite3_complete of the whole text per line before.
        let text = format!(
            "INSERT INTO t VALUES('{}');\nSELECT 1;\n",
            "x;\n".repeat(200_000)
        );
        let started = std::time::Instant::now();
        let got = all(&text);
        assert_eq!(got.len(), 2);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn an_incomplete_end_is_an_error() {
        let mut r = StatementReader::new("SELECT 1;\nINSERT INTO t VALUES('open".as_bytes());
        assert!(r.next_statement().unwrap().is_some());
        assert!(r.next_statement().unwrap_err().contains("line 2"));
    }
}
