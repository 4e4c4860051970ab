//! Small, conservative looks at SQL text before SQLite sees it: where the first statement ends
//! (so `execute` refuses several statements instead of silently running one), and which kind of
//! `BEGIN` a statement is (so the engine can take the write lock for `BEGIN IMMEDIATE` and
//! enforce `BEGIN ... READONLY`).
//!
//! Statement boundaries are decided by SQLite's own `sqlite3_complete`, which understands
//! strings, comments and `CREATE TRIGGER ... BEGIN ... END` bodies; this module only finds the
//! candidate semicolons and the leading keywords.

use std::ffi::CString;

/// What a statement does to the transaction state, judged from its leading keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKeyword {
    /// `BEGIN` / `BEGIN DEFERRED`: no lock until the first write.
    BeginDeferred,
    /// `BEGIN IMMEDIATE` / `BEGIN EXCLUSIVE`: takes the write lock at once.
    BeginImmediate,
    /// `BEGIN TRANSACTION READONLY` (libSQL): a transaction that must not write.
    BeginReadOnly,
    /// Anything else.
    Other,
}

/// Iterates over the keywords at the start of `sql`, skipping whitespace and comments, stopping
/// at the first character that is not part of a bare word.
fn leading_words(sql: &str) -> impl Iterator<Item = &str> {
    let mut rest = sql;
    std::iter::from_fn(move || {
        rest = skip_space_and_comments(rest);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(word)
    })
}

/// Skips whitespace, `-- line` and `/* block */` comments.
pub fn skip_space_and_comments(mut s: &str) -> &str {
    loop {
        let trimmed = s.trim_start();
        if let Some(after) = trimmed.strip_prefix("--") {
            s = after.find('\n').map_or("", |i| &after[i + 1..]);
        } else if let Some(after) = trimmed.strip_prefix("/*") {
            s = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            return trimmed;
        }
    }
}

/// Classifies a statement's effect on the transaction state.
pub fn txn_keyword(sql: &str) -> TxnKeyword {
    let mut words = leading_words(sql);
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("BEGIN") => {}
        _ => return TxnKeyword::Other,
    }
    for w in words.take(3) {
        if w.eq_ignore_ascii_case("IMMEDIATE") || w.eq_ignore_ascii_case("EXCLUSIVE") {
            return TxnKeyword::BeginImmediate;
        }
        if w.eq_ignore_ascii_case("READONLY") {
            return TxnKeyword::BeginReadOnly;
        }
    }
    TxnKeyword::BeginDeferred
}

/// The first keyword of a statement (empty if it does not start with one).
pub fn first_word(sql: &str) -> &str {
    leading_words(sql).next().unwrap_or("")
}

/// True if running `sql` may leave state on the stream that a later request relies on: a
/// transaction, a savepoint, a connection setting or a temporary object.
pub fn may_leave_state(sql: &str) -> bool {
    let mut words = leading_words(sql);
    let Some(first) = words.next() else {
        return false;
    };
    let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
    if is(first, "BEGIN") || is(first, "SAVEPOINT") || is(first, "PRAGMA") {
        return true;
    }
    is(first, "CREATE")
        && words
            .next()
            .is_some_and(|w| is(w, "TEMP") || is(w, "TEMPORARY"))
}

/// True for `PRAGMA [schema.]journal_mode` asked as a question (no value): SQLite marks it as
/// writing because the same pragma with a value switches modes, but asked alone (and the server
/// refuses to set it anyway) it only reads.
pub fn is_journal_mode_query(sql: &str) -> bool {
    let Some((name, tail)) = pragma_name(sql) else {
        return false;
    };
    if !name.eq_ignore_ascii_case("journal_mode") {
        return false;
    }
    skip_space_and_comments(tail)
        .trim_start_matches(|c: char| c == ';' || c.is_whitespace())
        .is_empty()
}

/// True for `PRAGMA wal_checkpoint` in any form: SQLite reports it as read-only, but a
/// checkpoint must never run beside a write (the WAL-reset race), so it takes the write lock.
pub fn is_checkpoint_pragma(sql: &str) -> bool {
    pragma_name(sql).is_some_and(|(name, _)| name.eq_ignore_ascii_case("wal_checkpoint"))
}

/// The name of the pragma `sql` runs (schema prefix removed) and the text after the name.
fn pragma_name(sql: &str) -> Option<(&str, &str)> {
    let body = skip_space_and_comments(sql);
    let rest = skip_space_and_comments(strip_keyword(body, "PRAGMA")?);
    let name_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let (name, tail) = rest.split_at(name_end);
    Some((name.rsplit('.').next().unwrap_or(name), tail))
}

fn strip_keyword<'a>(s: &'a str, keyword: &str) -> Option<&'a str> {
    let head = s.get(..keyword.len())?;
    let rest = &s[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword)
        && !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(rest)
}

/// True for `EXPLAIN ...` and `EXPLAIN QUERY PLAN ...`.
pub fn is_explain(sql: &str) -> bool {
    leading_words(sql)
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("EXPLAIN"))
}

/// True for `VACUUM ... INTO ...`, which writes a copy of the database to another file.
pub fn is_vacuum_into(sql: &str) -> bool {
    let mut words = leading_words(sql);
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("VACUUM") => {}
        _ => return false,
    }
    // VACUUM [schema-name] INTO expr: the word INTO appears within the next two words.
    words.take(2).any(|w| w.eq_ignore_ascii_case("INTO")) || {
        let upper = sql.to_ascii_uppercase();
        upper.contains("INTO")
    }
}

/// Returns the byte length of the first complete statement of `sql` and whether anything but
/// whitespace and comments follows it. Text that is not a complete statement (no terminating
/// semicolon) counts as one statement.
pub fn first_statement(sql: &str) -> (usize, bool) {
    let bytes = sql.as_bytes();
    // Fast path: no semicolon at all, or only one at the very end.
    let trimmed_len = sql.trim_end().len();
    match memchr_semicolon(bytes) {
        None => return (sql.len(), false),
        Some(i) if i + 1 == trimmed_len => return (sql.len(), false),
        _ => {}
    }
    for (i, b) in bytes.iter().enumerate() {
        if *b != b';' {
            continue;
        }
        let candidate = &sql[..=i];
        if is_complete(candidate) {
            let rest = skip_space_and_comments(&sql[i + 1..]);
            // Extra semicolons with nothing between them are empty statements, not SQL.
            let rest = rest.trim_start_matches(|c: char| c == ';' || c.is_whitespace());
            let rest = skip_space_and_comments(rest);
            return (i + 1, !rest.is_empty());
        }
    }
    (sql.len(), false)
}

fn memchr_semicolon(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b';')
}

/// SQLite's own judgement of whether `sql` ends with a complete statement.
fn is_complete(sql: &str) -> bool {
    match CString::new(sql) {
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call, and
        // sqlite3_complete only reads it.
        Ok(c) => unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_kinds() {
        assert_eq!(txn_keyword("BEGIN"), TxnKeyword::BeginDeferred);
        assert_eq!(
            txn_keyword("  /* x */ begin deferred transaction"),
            TxnKeyword::BeginDeferred
        );
        assert_eq!(txn_keyword("BEGIN IMMEDIATE"), TxnKeyword::BeginImmediate);
        assert_eq!(
            txn_keyword("-- c\nBEGIN EXCLUSIVE;"),
            TxnKeyword::BeginImmediate
        );
        assert_eq!(
            txn_keyword("BEGIN TRANSACTION READONLY"),
            TxnKeyword::BeginReadOnly
        );
        assert_eq!(txn_keyword("begin readonly"), TxnKeyword::BeginReadOnly);
        assert_eq!(txn_keyword("SELECT 'BEGIN'"), TxnKeyword::Other);
        assert_eq!(txn_keyword("BEGINX"), TxnKeyword::Other);
    }

    #[test]
    fn journal_mode_queries() {
        assert!(is_journal_mode_query("PRAGMA journal_mode"));
        assert!(is_journal_mode_query("pragma main.journal_mode;"));
        assert!(is_journal_mode_query(" /* c */ PRAGMA  journal_mode ; "));
        assert!(!is_journal_mode_query("PRAGMA journal_mode=DELETE"));
        assert!(!is_journal_mode_query("PRAGMA journal_mode = wal"));
        assert!(!is_journal_mode_query("PRAGMA journal_mode(DELETE)"));
        assert!(!is_journal_mode_query("PRAGMA journal_size_limit"));
        assert!(!is_journal_mode_query("PRAGMAjournal_mode"));
        assert!(!is_journal_mode_query("SELECT 1"));
    }

    #[test]
    fn vacuum_into() {
        assert!(is_vacuum_into("VACUUM INTO '/tmp/x.db'"));
        assert!(is_vacuum_into("vacuum main into 'x'"));
        assert!(!is_vacuum_into("VACUUM"));
        assert!(!is_vacuum_into("SELECT 'VACUUM INTO'"));
    }

    #[test]
    fn statement_boundaries() {
        assert_eq!(first_statement("SELECT 1"), (8, false));
        assert_eq!(first_statement("SELECT 1;"), (9, false));
        assert_eq!(first_statement("SELECT 1;  \n"), (12, false));
        assert_eq!(first_statement("SELECT 1; -- done"), (9, false));
        assert_eq!(first_statement("SELECT 1;;"), (9, false));
        assert_eq!(first_statement("SELECT 1; SELECT 2"), (9, true));
        assert_eq!(first_statement("SELECT 'a;b'"), (12, false));
        assert_eq!(first_statement("SELECT 'a;b'; DROP TABLE t"), (13, true));
        let trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (1); END;";
        assert_eq!(first_statement(trigger), (trigger.len(), false));
    }
}
