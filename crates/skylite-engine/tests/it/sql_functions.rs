//! The SQL functions the engine adds to libSQL (`sql_functions.rs`): `REGEXP` and SQLite's math
//! functions, as a client sees them through a session: SQLite's documented results, NULL in →
//! NULL out, domain errors → NULL, clear errors for bad patterns and wrong argument counts, and
//! use from schema objects (CHECK constraints, generated columns, indexes) where only
//! deterministic, innocuous functions are allowed.

use skylite_engine::{Budget, Database, EngineConfig, ExecError, Session};
use skylite_proto::{Stmt, StmtResult, Value};

fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("db/data.db"), EngineConfig::default()).unwrap();
    (dir, db)
}

fn run(s: &mut Session, stmt: Stmt) -> Result<StmtResult, ExecError> {
    let r = s.execute(&stmt, &mut Budget::new(1 << 20));
    s.finish_pipeline().unwrap();
    r
}

fn exec(s: &mut Session, sql: &str) -> Result<StmtResult, ExecError> {
    run(s, Stmt::new(sql))
}

/// The single value of a one-row, one-column query.
fn value(s: &mut Session, sql: &str) -> Value {
    let result = exec(s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(result.rows.len(), 1, "{sql}");
    result.rows[0][0].clone()
}

fn real(s: &mut Session, sql: &str) -> f64 {
    match value(s, sql) {
        Value::Float(f) => f,
        other => panic!("{sql}: expected a real, got {other:?}"),
    }
}

#[test]
fn rounding_functions_keep_integers_and_round_reals() {
    let (_dir, db) = open();
    let mut s = Session::new(db);
    assert_eq!(value(&mut s, "SELECT floor(1.5)"), Value::Float(1.0));
    assert_eq!(value(&mut s, "SELECT floor(-1.5)"), Value::Float(-2.0));
    assert_eq!(value(&mut s, "SELECT floor(7)"), Value::Integer(7));
    assert_eq!(value(&mut s, "SELECT ceil(1.2)"), Value::Float(2.0));
    assert_eq!(value(&mut s, "SELECT ceiling(-1.2)"), Value::Float(-1.0));
    assert_eq!(value(&mut s, "SELECT trunc(-2.7)"), Value::Float(-2.0));
    assert_eq!(
        value(&mut s, "SELECT trunc(9223372036854775807)"),
        Value::Integer(i64::MAX)
    );
    // Text that reads as a number is one (numeric affinity); other text and blobs are not.
    assert_eq!(value(&mut s, "SELECT floor(' 2.5 ')"), Value::Float(2.0));
    assert_eq!(value(&mut s, "SELECT floor('12')"), Value::Integer(12));
    assert_eq!(value(&mut s, "SELECT floor('abc')"), Value::Null);
    assert_eq!(value(&mut s, "SELECT floor('inf')"), Value::Null);
    assert_eq!(value(&mut s, "SELECT floor(x'01')"), Value::Null);
    assert_eq!(value(&mut s, "SELECT floor(NULL)"), Value::Null);
    // SQLAlchemy compiles `a // b` on non-integers to FLOOR(a / b).
    assert_eq!(value(&mut s, "SELECT FLOOR(7.0 / 2)"), Value::Float(3.0));
}

#[test]
fn math_functions_follow_sqlite() {
    let (_dir, db) = open();
    let mut s = Session::new(db);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(real(&mut s, "SELECT pi()"), std::f64::consts::PI));
    assert!(close(real(&mut s, "SELECT sqrt(16)"), 4.0));
    assert!(close(real(&mut s, "SELECT exp(0)"), 1.0));
    assert!(close(real(&mut s, "SELECT ln(exp(2))"), 2.0));
    // log(X) is base 10; log(B, X) takes the base first.
    assert!(close(real(&mut s, "SELECT log(1000)"), 3.0));
    assert!(close(real(&mut s, "SELECT log10(100)"), 2.0));
    assert!(close(real(&mut s, "SELECT log2(8)"), 3.0));
    assert!(close(real(&mut s, "SELECT log(2, 1024)"), 10.0));
    assert!(close(real(&mut s, "SELECT pow(2, 10)"), 1024.0));
    assert!(close(real(&mut s, "SELECT power(9, 0.5)"), 3.0));
    assert!(close(real(&mut s, "SELECT mod(7, 3)"), 1.0));
    assert!(close(real(&mut s, "SELECT mod(-7, 3)"), -1.0));
    assert!(close(real(&mut s, "SELECT degrees(pi())"), 180.0));
    assert!(close(
        real(&mut s, "SELECT radians(180)"),
        std::f64::consts::PI
    ));
    assert!(close(
        real(&mut s, "SELECT atan2(1, 1)"),
        std::f64::consts::FRAC_PI_4
    ));
    for f in [
        "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
    ] {
        real(&mut s, &format!("SELECT {f}(0.5)"));
    }
    assert!(close(real(&mut s, "SELECT acosh(1)"), 0.0));
    assert!(close(real(&mut s, "SELECT atanh(0)"), 0.0));
    // sign() is SQLite's core function, present either way.
    assert_eq!(value(&mut s, "SELECT sign(-3)"), Value::Integer(-1));

    // Domain errors are NULL, never NaN; infinities stay.
    for sql in [
        "SELECT acos(2)",
        "SELECT sqrt(-1)",
        "SELECT ln(0)",
        "SELECT ln(-1)",
        "SELECT log(1, 10)",
        "SELECT log(0.5, -1)",
        "SELECT mod(1, 0)",
        "SELECT atanh(2)",
    ] {
        assert_eq!(value(&mut s, sql), Value::Null, "{sql}");
    }
    assert_eq!(
        value(&mut s, "SELECT exp(1000)"),
        Value::Float(f64::INFINITY)
    );
    // NULL or non-numeric in, NULL out.
    for sql in [
        "SELECT sqrt(NULL)",
        "SELECT pow(NULL, 2)",
        "SELECT pow(2, NULL)",
        "SELECT log(NULL)",
        "SELECT log(10, NULL)",
        "SELECT sin('x')",
        "SELECT atan2(x'00', 1)",
    ] {
        assert_eq!(value(&mut s, sql), Value::Null, "{sql}");
    }
}

#[test]
fn wrong_argument_counts_are_sql_errors() {
    let (_dir, db) = open();
    let mut s = Session::new(db);
    for sql in [
        "SELECT floor()",
        "SELECT floor(1, 2)",
        "SELECT pow(2)",
        "SELECT pi(1)",
        "SELECT regexp('a')",
        "SELECT log(1, 2, 3)",
    ] {
        let err = exec(&mut s, sql).expect_err(sql);
        assert_eq!(err.code.as_str(), "SQLITE_ERROR", "{sql}: {err}");
        assert!(
            err.message.contains("wrong number of arguments"),
            "{sql}: {err}"
        );
    }
}

#[test]
fn regexp_matches_like_a_search() {
    let (_dir, db) = open();
    let mut s = Session::new(db);
    exec(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)").unwrap();
    exec(
        &mut s,
        "INSERT INTO t(name) VALUES ('alpha'), ('beta'), ('gamma'), (NULL), ('Ünïcødé 🚀')",
    )
    .unwrap();
    let names = |s: &mut Session, sql: &str| -> Vec<Value> {
        exec(s, sql)
            .unwrap()
            .rows
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    };
    let text = |v: &str| Value::Text(v.into());
    assert_eq!(
        names(
            &mut s,
            "SELECT name FROM t WHERE name REGEXP '^[ab]' ORDER BY id"
        ),
        [text("alpha"), text("beta")]
    );
    assert_eq!(
        names(
            &mut s,
            "SELECT name FROM t WHERE name NOT REGEXP 'a$' ORDER BY id"
        ),
        [text("Ünïcødé 🚀")]
    );
    assert_eq!(
        names(
            &mut s,
            "SELECT name FROM t WHERE name REGEXP 'ïc.dé' ORDER BY id"
        ),
        [text("Ünïcødé 🚀")]
    );
    // The pattern bound as a parameter (as SQLAlchemy sends it), compiled once per statement.
    let stmt = Stmt {
        args: vec![text("mm")],
        ..Stmt::new("SELECT name FROM t WHERE name REGEXP ? ORDER BY id")
    };
    let rows = run(&mut s, stmt).unwrap().rows;
    assert_eq!(rows, vec![vec![text("gamma")]]);
    // regexp(pattern, subject); NULL either side is NULL; numbers match as text.
    assert_eq!(
        value(&mut s, "SELECT regexp('b+', 'abbbc')"),
        Value::Integer(1)
    );
    assert_eq!(
        value(&mut s, "SELECT regexp('^b', 'abc')"),
        Value::Integer(0)
    );
    assert_eq!(value(&mut s, "SELECT regexp(NULL, 'abc')"), Value::Null);
    assert_eq!(value(&mut s, "SELECT 'abc' REGEXP NULL"), Value::Null);
    assert_eq!(value(&mut s, "SELECT NULL REGEXP 'a'"), Value::Null);
    assert_eq!(
        value(&mut s, "SELECT 12345 REGEXP '^1\\d+5$'"),
        Value::Integer(1)
    );
    assert_eq!(
        value(&mut s, "SELECT 1.5 REGEXP '^1\\.5$'"),
        Value::Integer(1)
    );
    assert_eq!(
        value(&mut s, "SELECT 'ABC' REGEXP '(?i)abc'"),
        Value::Integer(1)
    );
    // A pattern per row (not constant) works too.
    assert_eq!(
        value(
            &mut s,
            "SELECT count(*) FROM t WHERE name REGEXP substr(name, 1, 2)"
        ),
        Value::Integer(4)
    );
}

#[test]
fn bad_and_huge_patterns_are_clear_errors() {
    let (_dir, db) = open();
    let mut s = Session::new(db);
    let err = exec(&mut s, "SELECT 'abc' REGEXP 'a('").unwrap_err();
    assert_eq!(err.code.as_str(), "SQLITE_ERROR", "{err}");
    assert!(err.message.contains("regexp: invalid pattern"), "{err}");
    assert!(err.message.contains("unclosed group"), "{err}");
    // Beyond the compiled-size limit: refused, not built.
    let err = exec(&mut s, "SELECT 'abc' REGEXP '\\w{1000}\\w{1000}\\w{1000}'").unwrap_err();
    assert!(err.message.contains("regexp: invalid pattern"), "{err}");
    assert!(err.message.contains("size limit"), "{err}");
    // Backreferences and lookaround are not supported (linear-time engine): an error, not a hang.
    let err = exec(&mut s, "SELECT 'aa' REGEXP '(a)\\1'").unwrap_err();
    assert!(err.message.contains("regexp: invalid pattern"), "{err}");
    // A classic catastrophic-backtracking pattern runs in linear time.
    let subject = format!("{}!", "a".repeat(100_000));
    let stmt = Stmt {
        args: vec![Value::Text(subject)],
        ..Stmt::new("SELECT ? REGEXP '^(a+)+$'")
    };
    assert_eq!(run(&mut s, stmt).unwrap().rows[0][0], Value::Integer(0));
    // The session is still usable.
    assert_eq!(value(&mut s, "SELECT 1"), Value::Integer(1));
}

#[test]
fn functions_work_in_schema_objects_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/data.db");
    {
        let db = Database::open(&path, EngineConfig::default()).unwrap();
        let mut s = Session::new(db);
        for sql in [
            "CREATE TABLE c(email TEXT CHECK (email REGEXP '^[^@]+@[^@]+$'), \
             x REAL, x_floor GENERATED ALWAYS AS (floor(x)) VIRTUAL)",
            "CREATE INDEX c_sqrt ON c(sqrt(x))",
            "INSERT INTO c(email, x) VALUES ('a@b.c', 6.25)",
        ] {
            exec(&mut s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let err = exec(&mut s, "INSERT INTO c(email, x) VALUES ('nope', 1)").unwrap_err();
        assert_eq!(err.code.as_str(), "SQLITE_CONSTRAINT_CHECK", "{err}");
    }
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let mut s = Session::new(db);
    assert_eq!(value(&mut s, "SELECT x_floor FROM c"), Value::Float(6.0));
    assert_eq!(
        value(&mut s, "SELECT count(*) FROM c WHERE sqrt(x) = 2.5"),
        Value::Integer(1)
    );
    assert_eq!(
        value(
            &mut s,
            "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"
        ),
        Value::Integer(1)
    );
}

/// A database whose CHECK constraints use REGEXP and floor(), written by the engine and closed
/// (checkpointed into the main file).
fn file_with_function_checks(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("db/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let mut s = Session::new(db);
    for sql in [
        "CREATE TABLE c(email TEXT CHECK (email REGEXP '^[^@]+@'), x REAL CHECK (floor(x) >= 0))",
        "INSERT INTO c VALUES ('a@b', 1.5)",
    ] {
        exec(&mut s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    path
}

#[test]
fn quick_check_evaluates_checks_that_use_the_functions() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with_function_checks(dir.path());
    assert_eq!(
        skylite_engine::maintenance::quick_check(&path).unwrap(),
        "ok"
    );
}

#[test]
fn an_imported_file_whose_checks_use_the_functions_passes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let source = file_with_function_checks(dir.path());
    // An upload arrives alone in its folder, without a WAL beside it.
    let upload_dir = dir.path().join("upload");
    std::fs::create_dir_all(&upload_dir).unwrap();
    let upload = upload_dir.join("data.db");
    skylite_engine::maintenance::copy_consistent(&source, &upload).unwrap();
    skylite_engine::import::check_and_prepare(&upload, None)
        .unwrap_or_else(|e| panic!("the check refused the file: {e}"));
}
