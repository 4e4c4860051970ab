//! Small, conservative looks at SQL text before SQLite sees it: where the first statement ends
//! (so `execute` refuses several statements instead of silently running one), and which kind of
//! `BEGIN` a statement is (so the engine can take the write lock for `BEGIN IMMEDIATE` and
//! enforce `BEGIN ... READONLY`).
//!
//! Statement boundaries follow SQLite's own `sqlite3_complete` (strings, quoted names, comments
//! and `CREATE TRIGGER ... BEGIN ... END` bodies), reimplemented as one linear pass
//! ([`Scanner`]): calling `sqlite3_complete` on every prefix that ends in `;` costs time
//! quadratic in the text, which a client controls.

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
/// whitespace, comments and semicolons follows it. Text that is not a complete statement (no
/// terminating semicolon) counts as one statement.
///
/// One linear pass (see [`Scanner`]): the statement ends at the first semicolon after which
/// SQLite's `sqlite3_complete` would call the text complete.
pub fn first_statement(sql: &str) -> (usize, bool) {
    // Fast path for the common case: without a semicolon before the trailing whitespace,
    // nothing can follow the statement.
    match sql.bytes().position(|b| b == b';') {
        None => return (sql.len(), false),
        Some(i) if i + 1 == sql.trim_end().len() => return (sql.len(), false),
        Some(_) => {}
    }
    let mut scanner = Scanner::new();
    match scanner.next_statement_end(sql) {
        Some(end) => {
            let rest = sql.get(end..).unwrap_or("");
            if rest.trim_end().is_empty() {
                // Trailing whitespace belongs to the statement.
                return (sql.len(), false);
            }
            (end, !is_blank(rest))
        }
        None => (sql.len(), false),
    }
}

/// True if `sql` holds nothing but whitespace, comments and semicolons (an unterminated block
/// comment counts as a comment).
pub fn is_blank(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        let next = skip_space_and_comments(rest).trim_start_matches(';');
        if next.is_empty() {
            return true;
        }
        if next.len() == rest.len() {
            return false;
        }
        rest = next;
    }
}

/// SQLite's judgement of whether `sql` ends with a complete statement (`sqlite3_complete`),
/// computed in one linear pass. Text holding a NUL character is never complete (SQLite would
/// stop reading at the NUL).
pub fn is_complete(sql: &str) -> bool {
    let mut scanner = Scanner::new();
    while scanner.next_statement_end(sql).is_some() {}
    scanner.is_complete_at_end(sql)
}

/// The token classes of `sqlite3_complete` (complete.c).
#[derive(Clone, Copy)]
enum Token {
    Semi = 0,
    Ws = 1,
    Other = 2,
    Explain = 3,
    Create = 4,
    Temp = 5,
    Trigger = 6,
    End = 7,
}

/// The state machine of `sqlite3_complete`: `TRANSITIONS[state][token]`. State 1 means "just
/// after the end of a statement"; states 5 to 7 are inside a `CREATE TRIGGER` body, where
/// semicolons do not end the statement until `END;`.
const TRANSITIONS: [[u8; 8]; 8] = [
    //  SEMI WS OTHER EXPLAIN CREATE TEMP TRIGGER END
    [1, 0, 2, 3, 4, 2, 2, 2], // 0 INVALID
    [1, 1, 2, 3, 4, 2, 2, 2], // 1 START
    [1, 2, 2, 2, 2, 2, 2, 2], // 2 NORMAL
    [1, 3, 3, 2, 4, 2, 2, 2], // 3 EXPLAIN
    [1, 4, 2, 2, 2, 4, 5, 2], // 4 CREATE
    [6, 5, 5, 5, 5, 5, 5, 5], // 5 TRIGGER
    [6, 6, 5, 5, 5, 5, 5, 7], // 6 SEMI
    [1, 7, 5, 5, 5, 5, 5, 5], // 7 END
];

/// Where a [`Scanner`] stopped inside a token that the text so far does not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Between tokens.
    None,
    /// Inside a string or quoted name that ends at this byte (`'`, `"`, `` ` `` or `]`).
    Quote(u8),
    /// Inside a `/* ... */` comment.
    Block,
    /// Inside a `-- ...` comment.
    Line,
}

/// A resumable, linear-time equivalent of SQLite's `sqlite3_complete`: it walks SQL text once,
/// token by token (strings, quoted names, comments, keywords), and reports each semicolon that
/// ends a statement. Text may grow between calls (a file read line by line): the scanner goes
/// on where it stopped, so a long statement costs one pass, not one pass per line.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Byte offset of the next byte to look at.
    pos: usize,
    state: u8,
    open: Open,
    /// A NUL byte was seen: SQLite stops reading there, so nothing after it completes.
    nul: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// A scanner at the start of the text.
    pub fn new() -> Self {
        Scanner {
            pos: 0,
            state: 0,
            open: Open::None,
            nul: false,
        }
    }

    /// Byte offset up to which the text has been scanned.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Continues scanning `sql` (the same text as before, possibly longer) and returns the byte
    /// offset just past the next semicolon that ends a statement, or `None` when the text ends
    /// first. Call again to find the statement after it.
    pub fn next_statement_end(&mut self, sql: &str) -> Option<usize> {
        let bytes = sql.as_bytes();
        while !self.nul {
            let &b = bytes.get(self.pos)?;
            // Finish a token left open by a shorter text first.
            match self.open {
                // A quoted token ends at its quote, a line comment at the newline.
                Open::Quote(_) | Open::Line => {
                    let (end, token) = match self.open {
                        Open::Quote(q) => (q, Token::Other),
                        _ => (b'\n', Token::Ws),
                    };
                    match find_byte(bytes, self.pos, end) {
                        Some(i) if bytes.get(i) == Some(&0) => {
                            self.nul = true;
                            return None;
                        }
                        Some(i) => {
                            self.pos = i + 1;
                            self.open = Open::None;
                            self.feed(token);
                        }
                        None => {
                            self.pos = bytes.len();
                            return None;
                        }
                    }
                    continue;
                }
                Open::Block => {
                    match find_block_end(bytes, self.pos) {
                        Some(i) if bytes.get(i.wrapping_sub(1)) == Some(&0) => {
                            self.nul = true;
                            return None;
                        }
                        Some(i) => {
                            self.pos = i;
                            self.open = Open::None;
                            self.feed(Token::Ws);
                        }
                        None => {
                            // Keep a trailing '*' for the next call: it may start the "*/".
                            self.pos = bytes.len().saturating_sub(1).max(self.pos);
                            return None;
                        }
                    }
                    continue;
                }
                Open::None => {}
            }
            let next = bytes.get(self.pos + 1).copied();
            match b {
                0 => {
                    self.nul = true;
                    return None;
                }
                b';' => {
                    self.pos += 1;
                    self.feed(Token::Semi);
                    if self.state == 1 {
                        return Some(self.pos);
                    }
                }
                b' ' | b'\r' | b'\t' | b'\n' | 0x0c => {
                    self.pos += 1;
                    self.feed(Token::Ws);
                }
                b'/' if next == Some(b'*') => {
                    self.pos += 2;
                    self.open = Open::Block;
                }
                b'/' => {
                    // At the end of the text, this may become a comment.
                    next?;
                    self.pos += 1;
                    self.feed(Token::Other);
                }
                b'-' if next == Some(b'-') => {
                    self.pos += 2;
                    self.open = Open::Line;
                }
                b'-' => {
                    next?;
                    self.pos += 1;
                    self.feed(Token::Other);
                }
                b'[' => {
                    self.pos += 1;
                    self.open = Open::Quote(b']');
                }
                b'`' | b'"' | b'\'' => {
                    self.pos += 1;
                    self.open = Open::Quote(b);
                }
                b if is_id_char(b) => {
                    let start = self.pos;
                    let mut end = start + 1;
                    while bytes.get(end).copied().is_some_and(is_id_char) {
                        end += 1;
                    }
                    if end == bytes.len() {
                        // The word may go on in a longer text.
                        return None;
                    }
                    let word = bytes.get(start..end).unwrap_or_default();
                    self.pos = end;
                    self.feed(keyword(word));
                }
                _ => {
                    self.pos += 1;
                    self.feed(Token::Other);
                }
            }
        }
        None
    }

    /// After [`Scanner::next_statement_end`] returned `None`: whether the whole text scanned is
    /// complete in `sqlite3_complete`'s sense (it ends with a statement's semicolon, maybe
    /// followed by whitespace and comments).
    pub fn is_complete_at_end(&self, sql: &str) -> bool {
        let open_ok = match self.open {
            // A word, `-` or `/` left unscanned at the end is a token that is not `;`.
            Open::None => self.pos >= sql.len(),
            // SQLite judges an unterminated `--` comment by the state before it.
            Open::Line => true,
            Open::Quote(_) | Open::Block => false,
        };
        !self.nul && open_ok && self.state == 1
    }

    /// True while the text scanned so far (all of `sql`) holds only whitespace and finished
    /// comments: no statement has begun.
    pub fn is_blank_so_far(&self, sql: &str) -> bool {
        !self.nul
            && self.state == 0
            && matches!(self.open, Open::None | Open::Line)
            && self.pos >= sql.len()
    }

    /// True if a NUL character stopped the scan (SQLite stops reading there).
    pub fn saw_nul(&self) -> bool {
        self.nul
    }

    fn feed(&mut self, token: Token) {
        let row = TRANSITIONS
            .get(self.state as usize)
            .copied()
            .unwrap_or([0; 8]);
        self.state = row.get(token as usize).copied().unwrap_or(0);
    }
}

/// `IdChar` of SQLite's tokenizer: letters, digits, `_`, `$` and every byte of a multi-byte
/// UTF-8 character.
fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn keyword(word: &[u8]) -> Token {
    let is = |k: &str| word.eq_ignore_ascii_case(k.as_bytes());
    if is("create") {
        Token::Create
    } else if is("trigger") {
        Token::Trigger
    } else if is("temp") || is("temporary") {
        Token::Temp
    } else if is("end") {
        Token::End
    } else if is("explain") {
        Token::Explain
    } else {
        Token::Other
    }
}

/// The index of the first `needle` or NUL at or after `from` (a NUL ends the search: SQLite
/// stops reading there).
fn find_byte(bytes: &[u8], from: usize, needle: u8) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == needle || b == 0)
        .map(|i| from + i)
}

/// The index just past the first `*/` at or after `from`, or just past the first NUL.
fn find_block_end(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    for (i, &b) in rest.iter().enumerate() {
        if b == 0 || (b == b'/' && i > 0 && rest.get(i - 1) == Some(&b'*')) {
            return Some(from + i + 1);
        }
    }
    None
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
