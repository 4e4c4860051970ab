//! The dump on hostile data: names that are not ASCII (a slice mid-character used to panic the
//! worker, and the dump just ended), and the statement deadline on the dump's own queries.

use std::time::Duration;

use skylite_engine::dump::{Dump, DumpError};
use skylite_engine::{Budget, Database, EngineConfig, Session};
use skylite_proto::{Stmt, StmtResult, Value};

fn open(dir: &tempfile::TempDir, name: &str) -> Database {
    Database::open(
        &dir.path().join(name).join("data.db"),
        EngineConfig::default(),
    )
    .unwrap()
}

fn exec(s: &mut Session, sql: &str) -> StmtResult {
    let r = s
        .execute(&Stmt::new(sql), &mut Budget::new(64 << 20))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    s.finish_pipeline().unwrap();
    r
}

#[test]
fn virtual_tables_with_non_ascii_names_dump_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, "src");
    let mut s = Session::new(db.clone());
    for sql in [
        // Unquoted names of several UTF-8 widths, where the dump looks for `USING`.
        "CREATE VIRTUAL TABLE été USING fts5(corps)",
        "CREATE VIRTUAL TABLE 日本語 USING fts5(本文, tokenize = 'unicode61')",
        "CREATE VIRTUAL TABLE \"ñ using\" USING fts4(a)",
        "CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT)",
        "CREATE VIRTUAL TABLE índice USING fts5(body, content='docs', content_rowid='id')",
        "INSERT INTO été(corps) VALUES ('première ligne'), ('deuxième')",
        "INSERT INTO 日本語(本文) VALUES ('こんにちは 世界')",
        "INSERT INTO \"ñ using\"(a) VALUES ('x')",
        "INSERT INTO docs(body) VALUES ('hello world')",
        "INSERT INTO índice(índice) VALUES ('rebuild')",
    ] {
        exec(&mut s, sql);
    }
    drop(s);

    let mut text = Vec::new();
    let stats = Dump::begin(db.path()).unwrap().write_to(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.ends_with("COMMIT;\n"), "{text}");
    assert_eq!(stats.tables, 5, "{text}");

    let copy = open(&dir, "copy");
    let mut r = Session::new(copy);
    r.sequence(&text).unwrap();
    r.finish_pipeline().unwrap();
    for (sql, want) in [
        ("SELECT count(*) FROM été WHERE été MATCH 'ligne'", 1),
        ("SELECT count(*) FROM 日本語", 1),
        ("SELECT count(*) FROM \"ñ using\"", 1),
        ("SELECT count(*) FROM índice WHERE índice MATCH 'hello'", 1),
    ] {
        assert_eq!(exec(&mut r, sql).rows[0][0], Value::Integer(want), "{sql}");
    }
}

#[test]
fn each_dump_query_has_the_statement_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, "big");
    let mut s = Session::new(db.clone());
    exec(&mut s, "CREATE TABLE t(a)");
    exec(
        &mut s,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000) \
         INSERT INTO t SELECT x FROM c",
    );
    drop(s);
    // A deadline no query can meet: the dump stops with the same error a statement gets.
    let outcome = Dump::begin_with_timeout(db.path(), Duration::from_nanos(1))
        .map(|d| d.write_to(&mut Vec::new()));
    let err = match outcome {
        Err(e) => e,
        Ok(Err(DumpError::Sqlite(e))) => e,
        Ok(other) => panic!("{other:?}"),
    };
    assert_eq!(err.code, "STATEMENT_TIMEOUT", "{err}");
    // With the ordinary limit it completes.
    let stats = Dump::begin(db.path())
        .unwrap()
        .write_to(&mut Vec::new())
        .unwrap();
    assert_eq!(stats.rows, 20000);
}
