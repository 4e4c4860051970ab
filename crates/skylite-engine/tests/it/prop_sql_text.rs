//! Property tests for the SQL text helpers a client's SQL goes through before SQLite sees it
//! (`sql_text.rs`): the statement splitter and the keyword looks.
//! - arbitrary text (non-ASCII, NUL, unterminated strings and comments) never panics, and the
//!   split point is a character boundary within the text;
//! - statements built from pieces that hide `;` (string literals, quoted identifiers, comments,
//!   trigger bodies) split exactly where the first statement ends.
//!
//! Cases per property come from `PROPTEST_CASES` (default small); `scripts/fuzz.sh` runs more.

use proptest::prelude::*;
use proptest::test_runner::Config;
use skylite_engine::sql_text::*;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text that is hard for a splitter: quotes, comment openers, semicolons, NUL, non-ASCII.
fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,64}",
        proptest::collection::vec(
            proptest::sample::select(vec![
                ";",
                "'",
                "\"",
                "`",
                "[",
                "]",
                "--",
                "/*",
                "*/",
                "\n",
                " ",
                "\0",
                "é",
                "😀",
                "BEGIN",
                "END",
                "CASE",
                "CREATE",
                "TRIGGER",
                "VACUUM",
                "INTO",
                "EXPLAIN",
                "PRAGMA",
                "journal_mode",
                "SELECT",
                "x",
                "1",
                "TEMP",
                "SAVEPOINT",
            ]),
            0..40
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// One statement whose text contains `;` only where SQLite does not end a statement.
fn statement() -> impl Strategy<Value = String> {
    let literal = "[a-z ;]{0,8}".prop_map(|s| format!("'{}'", s.replace('\'', "''")));
    let ident = "[a-z ;]{1,8}".prop_map(|s| format!("\"{s}\""));
    let comment = "[a-z ;]{0,8}".prop_map(|s| format!("/* {s} */"));
    let piece = prop_oneof![
        literal,
        ident,
        comment,
        Just("1".to_owned()),
        Just("x".to_owned())
    ];
    prop_oneof![
        4 => proptest::collection::vec(piece, 1..5)
            .prop_map(|pieces| format!("SELECT {}", pieces.join(", "))),
        1 => "[a-z ;]{0,8}".prop_map(|s| format!(
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT '{s}'; INSERT INTO u VALUES (1); END"
        )),
    ]
}

/// True if `s` holds only whitespace, comments and semicolons.
fn only_empty_statements(mut s: &str) -> bool {
    loop {
        let next = skip_space_and_comments(s).trim_start_matches(';');
        if next.len() == s.len() {
            return s.is_empty();
        }
        s = next;
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_text_never_panics(sql in nasty_text()) {
        let (len, more) = first_statement(&sql);
        prop_assert!(len <= sql.len());
        prop_assert!(sql.is_char_boundary(len));
        if !more {
            // "Nothing follows" means only whitespace, comments and empty statements do.
            prop_assert!(only_empty_statements(&sql[len..]), "{:?} at {}", sql, len);
        }
        let _ = txn_keyword(&sql);
        let _ = first_word(&sql);
        let _ = may_leave_state(&sql);
        let _ = is_journal_mode_query(&sql);
        let _ = is_explain(&sql);
        let _ = is_vacuum_into(&sql);
        let rest = skip_space_and_comments(&sql);
        prop_assert!(sql.ends_with(rest));
    }

    #[test]
    fn hidden_semicolons_do_not_split(first in statement(), second in statement(), gap in "[ \n]{0,3}") {
        // One statement, with or without its semicolon: one statement, nothing after it.
        prop_assert_eq!(first_statement(&first), (first.len(), false));
        // (When nothing follows, the length may include the trailing blanks and comments.)
        let terminated = format!("{first};{gap}");
        let (len, more) = first_statement(&terminated);
        prop_assert!(!more && len > first.len(), "{:?} -> {}", terminated, len);
        // Two statements: the split is right after the first one's semicolon.
        let two = format!("{first};{gap}{second}");
        prop_assert_eq!(first_statement(&two), (first.len() + 1, true));
        // Trailing empty statements and comments are not a second statement.
        let tail = format!("{first};{gap};; -- c ; d\n/* ; */");
        let (len, more) = first_statement(&tail);
        prop_assert!(!more && len > first.len(), "{:?} -> {}", tail, len);
    }

    #[test]
    fn begin_kinds_survive_comments_and_case(
        lead in "(/\\*[a-z ;]{0,6}\\*/|--[a-z ;]{0,6}\n| |\n){0,3}",
        kind in proptest::sample::select(vec![
            ("BEGIN", TxnKeyword::BeginDeferred),
            ("begin deferred", TxnKeyword::BeginDeferred),
            ("BEGIN IMMEDIATE", TxnKeyword::BeginImmediate),
            ("Begin Exclusive", TxnKeyword::BeginImmediate),
            ("BEGIN TRANSACTION READONLY", TxnKeyword::BeginReadOnly),
            ("SELECT 'BEGIN IMMEDIATE'", TxnKeyword::Other),
        ]),
    ) {
        let sql = format!("{lead}{}", kind.0);
        prop_assert_eq!(txn_keyword(&sql), kind.1);
    }
}
