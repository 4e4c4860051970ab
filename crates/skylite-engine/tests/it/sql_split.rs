//! The statement splitter (`sql_text::first_statement`, `is_complete`, `Scanner`) against
//! SQLite's own `sqlite3_complete` as the oracle, on generated SQL-ish text; and its cost on
//! hostile text (megabytes of `;` inside a literal), which must stay linear.
//!
//! `PROPTEST_CASES=100000 cargo test -p skylite-engine --test sql_split` runs longer.

use std::ffi::CString;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use skylite_engine::sql_text::{first_statement, is_blank, is_complete, Scanner};

/// SQLite's judgement (the oracle); text with a NUL is never complete.
fn sqlite_complete(sql: &str) -> bool {
    match CString::new(sql) {
        // SAFETY: a valid NUL-terminated string, only read.
        Ok(c) => unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => false,
    }
}

/// The old, quadratic definition of `first_statement`: the first prefix ending in `;` that
/// SQLite calls complete.
fn oracle_first_statement(sql: &str) -> (usize, bool) {
    for (i, b) in sql.bytes().enumerate() {
        if b == b';' && sqlite_complete(&sql[..=i]) {
            let rest = &sql[i + 1..];
            if rest.trim_end().is_empty() {
                return (sql.len(), false);
            }
            return (i + 1, !is_blank(rest));
        }
    }
    (sql.len(), false)
}

/// Fragments that exercise every token class of `sqlite3_complete`.
fn fragment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        ";",
        ";",
        ";",
        " ",
        "\n",
        "\t",
        "\r",
        "'",
        "\"",
        "`",
        "[",
        "]",
        "--",
        "-",
        "/*",
        "*/",
        "*",
        "/",
        "CREATE",
        "create",
        "TEMP",
        "temporary",
        "TRIGGER",
        "trigger",
        "BEGIN",
        "END",
        "end",
        "EXPLAIN",
        "explain",
        "x",
        "tr",
        "ON",
        "SELECT",
        "1",
        "é",
        "€",
        "$a",
        "_",
        "endx",
        "''",
        "(",
        ")",
        ",",
        "\u{c}",
        // Whole phrases, so that trigger bodies (the states a random mix rarely reaches) are
        // common.
        "CREATE TRIGGER tr BEGIN ",
        "create temp trigger ",
        "EXPLAIN CREATE TRIGGER ",
        "CREATE TEMPORARY TRIGGER",
        " END",
        "END;",
        "; END;",
        " END ;",
        "SELECT 1;",
    ])
}

fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..40).prop_map(|parts| parts.concat())
}

/// Every statement end `Scanner` reports when the text is handed over in one piece.
fn ends_at_once(sql: &str) -> Vec<usize> {
    let mut scanner = Scanner::new();
    let mut ends = Vec::new();
    while let Some(end) = scanner.next_statement_end(sql) {
        ends.push(end);
    }
    ends
}

/// 2000 cases per property in the test suite (a few seconds); set `PROPTEST_CASES` for a
/// longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        // Failures found while changing the code are not kept next to the test.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn is_complete_agrees_with_sqlite(sql in sqlish()) {
        prop_assert_eq!(is_complete(&sql), sqlite_complete(&sql), "{:?}", sql);
    }

    #[test]
    fn first_statement_agrees_with_the_prefix_definition(sql in sqlish()) {
        prop_assert_eq!(first_statement(&sql), oracle_first_statement(&sql), "{:?}", sql);
    }

    #[test]
    fn scanning_a_growing_text_finds_the_same_ends(sql in sqlish(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let mut points: Vec<usize> = cuts
            .iter()
            .map(|c| c.index(sql.len() + 1))
            .filter(|&i| sql.is_char_boundary(i))
            .collect();
        points.push(sql.len());
        points.sort_unstable();
        let mut scanner = Scanner::new();
        let mut ends = Vec::new();
        for p in points {
            let prefix = &sql[..p];
            while let Some(end) = scanner.next_statement_end(prefix) {
                ends.push(end);
            }
            // What the scanner says about the prefix is what SQLite says about it.
            prop_assert_eq!(scanner.is_complete_at_end(prefix), sqlite_complete(prefix), "{:?}", prefix);
        }
        prop_assert_eq!(ends, ends_at_once(&sql), "{:?}", sql);
    }
}

#[test]
fn known_boundaries() {
    let trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (1); END;";
    assert_eq!(first_statement(trigger), (trigger.len(), false));
    let temp_trigger = "CREATE TEMP TRIGGER x BEGIN SELECT 1; END;";
    assert_eq!(
        first_statement(&format!("{temp_trigger} SELECT 2")),
        (temp_trigger.len(), true)
    );
    assert_eq!(first_statement("SELECT 1; ; -- c\n ; /* x */"), (9, false));
    assert!(!first_statement("SELECT 'a\0;'; SELECT 2").1);
    assert!(is_complete("SELECT 1; -- trailing"));
    assert!(!is_complete("SELECT 1; /* open"));
    assert!(!is_complete("SELECT 1; x"));
    assert!(!is_complete("SELECT 'x;"));
    for sql in [
        "EXPLAIN CREATE TRIGGER x BEGIN SELECT 1;",
        "EXPLAIN CREATE TRIGGER x BEGIN SELECT 1; END;",
        "CREATE TABLE trigger(a);",
        "SELECT [a;b], `c;d`, \"e;f\";",
        "SELECT 1 /**/;",
        "SELECT 1 /*/;",
    ] {
        assert_eq!(is_complete(sql), sqlite_complete(sql), "{sql}");
    }
}

#[test]
fn megabytes_of_semicolons_in_a_literal_split_in_linear_time() {
    // Complexity guard, not a speed benchmark: the old splitter called sqlite3_complete on every
    // prefix ending in `;`, hours of CPU for this text.
    let eight_mib = ";".repeat(8 << 20);
    for sql in [
        format!("SELECT '{eight_mib}'"),
        format!("SELECT \"{eight_mib}\"; SELECT 2"),
        format!("SELECT 1 /* {eight_mib} */"),
        format!("SELECT 1 -- {eight_mib}"),
        format!("CREATE TRIGGER tr AFTER INSERT ON t BEGIN {eight_mib}"),
    ] {
        let started = Instant::now();
        let (len, _) = first_statement(&sql);
        assert!(len > 0);
        let _ = is_complete(&sql);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?} for {} bytes",
            started.elapsed(),
            sql.len()
        );
    }
}
