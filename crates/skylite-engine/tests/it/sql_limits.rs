//! What SQL may do on a skylite server, and for how long: the per-statement deadline
//! (`STATEMENT_TIMEOUT`), runaway statements leaving the core workers, the value size limit
//! (`SQLITE_TOOBIG` before a gigabyte is allocated), and the pragma allowlist (process-wide
//! pragmas refused, even through `describe` or a pragma function).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use skylite_engine::{Budget, Database, EngineConfig, ExecError, Session, Workers};
use skylite_proto::{
    Batch, BatchStep, CursorEntry, Stmt, StmtResult, StreamRequest, StreamResponse, StreamResult,
    Value,
};

/// Never ends on its own.
const RUNAWAY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";

fn open(config: EngineConfig) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("db/data.db"), config).unwrap();
    (dir, db)
}

fn with_timeout(timeout: Duration) -> EngineConfig {
    EngineConfig {
        statement_timeout: timeout,
        ..EngineConfig::default()
    }
}

fn exec(s: &mut Session, sql: &str) -> Result<StmtResult, ExecError> {
    let r = s.execute(&Stmt::new(sql), &mut Budget::new(64 << 20));
    s.finish_pipeline().unwrap();
    r
}

fn ok(s: &mut Session, sql: &str) -> StmtResult {
    exec(s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn int(r: &StmtResult) -> i64 {
    match r.rows.first().and_then(|row| row.first()) {
        Some(Value::Integer(i)) => *i,
        other => panic!("{other:?}"),
    }
}

fn describe(s: &mut Session, sql: &str) -> StreamResult {
    s.handle(
        &StreamRequest::Describe {
            sql: Some(sql.into()),
            sql_id: None,
        },
        &mut Budget::new(1 << 20),
    )
}

#[test]
fn a_runaway_statement_stops_at_the_deadline_and_the_connection_stays_usable() {
    let (_dir, db) = open(with_timeout(Duration::from_secs(1)));
    let mut s = Session::new(db.clone());
    let started = Instant::now();
    let err = exec(&mut s, RUNAWAY).unwrap_err();
    assert_eq!(err.code, "STATEMENT_TIMEOUT", "{err}");
    assert!(err.message.contains("--statement-timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(int(&ok(&mut s, "SELECT 42")), 42);

    // Inside a transaction: the statement stops, the session goes on.
    ok(&mut s, "CREATE TABLE t(a)");
    ok(&mut s, "BEGIN");
    ok(&mut s, "INSERT INTO t VALUES (1)");
    let err = exec(&mut s, RUNAWAY).unwrap_err();
    assert_eq!(err.code, "STATEMENT_TIMEOUT", "{err}");
    if !s.is_autocommit() {
        ok(&mut s, "COMMIT");
    }
    assert_eq!(int(&ok(&mut s, "SELECT 7")), 7);

    // `sequence` runs each statement under the same deadline.
    let r = s.handle(
        &StreamRequest::Sequence {
            sql: Some(format!("SELECT 1; {RUNAWAY}; SELECT 2")),
            sql_id: None,
        },
        &mut Budget::new(1 << 20),
    );
    match r {
        StreamResult::Error { error } => {
            assert_eq!(
                error.code.as_deref(),
                Some("STATEMENT_TIMEOUT"),
                "{error:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    s.finish_pipeline().unwrap();
    // A write from another session is not blocked by what happened.
    let mut other = Session::new(db);
    ok(&mut other, "INSERT INTO t VALUES (2)");
}

#[test]
fn a_slow_cursor_reader_does_not_count_against_the_deadline() {
    let (_dir, db) = open(with_timeout(Duration::from_millis(500)));
    let mut s = Session::new(db);
    let batch = Batch {
        steps: vec![BatchStep {
            condition: None,
            stmt: Stmt::new("VALUES (1), (2), (3)"),
        }],
    };
    let mut rows = 0;
    let mut errors = Vec::new();
    s.cursor(&batch, 1 << 20, &mut |entry| {
        match entry {
            CursorEntry::Row { .. } => {
                rows += 1;
                // A client that reads slowly: 3 × 300 ms > 500 ms.
                std::thread::sleep(Duration::from_millis(300));
            }
            CursorEntry::StepError { error, .. } => errors.push(error),
            _ => {}
        }
        true
    });
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(rows, 3);
}

#[test]
fn zero_disables_the_deadline() {
    let (_dir, db) = open(with_timeout(Duration::ZERO));
    let mut s = Session::new(db);
    let r = ok(
        &mut s,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000) \
         SELECT count(*) FROM c",
    );
    assert_eq!(int(&r), 100000);
}

#[test]
fn runaway_statements_do_not_take_every_worker() {
    // Fewer core workers than runaway statements: without the long-running hand-off, `SELECT 1`
    // would wait until the runaways hit their deadline.
    let pool = Workers::new("sql-limits", 2, 64);
    let (_dir, db) = open(with_timeout(Duration::from_secs(8)));
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..4 {
        let db = db.clone();
        let done_tx = done_tx.clone();
        pool.execute(move || {
            let mut s = Session::new(db);
            let r = exec(&mut s, RUNAWAY);
            let _ = done_tx.send(r.map(|_| ()).map_err(|e| e.code));
        });
    }
    // Let the runaways occupy the core workers and leave them.
    std::thread::sleep(Duration::from_millis(400));
    let (tx, rx) = mpsc::channel();
    let asked = Instant::now();
    let quick_db = db.clone();
    pool.execute(move || {
        let mut s = Session::new(quick_db);
        let _ = tx.send(exec(&mut s, "SELECT 1").map(|r| int(&r)));
    });
    let answer = rx
        .recv_timeout(Duration::from_secs(6))
        .expect("SELECT 1 answered while the runaway statements still ran");
    assert_eq!(answer.unwrap(), 1);
    // It answered before any runaway statement ended.
    assert!(done_rx.try_recv().is_err(), "a runaway ended first");
    assert!(asked.elapsed() < Duration::from_secs(6));
    for _ in 0..4 {
        let r = done_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(r.map_err(|c| c.as_str()), Err("STATEMENT_TIMEOUT"));
    }
    assert!(pool.threads() <= 64);
}

#[test]
fn huge_values_fail_with_toobig_before_they_are_built() {
    let (_dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db);
    for sql in [
        "SELECT zeroblob(2000000000)",
        "SELECT randomblob(2000000000)",
        "SELECT length(replace(printf('%.*c', 20000000, 'x'), 'x', 'xxxxxxxxxx'))",
        "SELECT length(zeroblob(100000000) || 'x')",
    ] {
        let err = exec(&mut s, sql).expect_err(sql);
        assert_eq!(err.code, "SQLITE_TOOBIG", "{sql}: {err}");
        assert!(err.message.contains("--max-response-size"), "{err}");
    }
    // printf() stops at the limit (SQLite gives NULL rather than an error) instead of building
    // two gigabytes.
    let r = ok(&mut s, "SELECT printf('%.*c', 2000000000, 'x') IS NULL");
    assert_eq!(int(&r), 1);
    // zeroblob() alone stays lazy for length(); ordinary values are fine.
    assert_eq!(
        int(&ok(&mut s, "SELECT length(zeroblob(1000000))")),
        1_000_000
    );
    assert_eq!(int(&ok(&mut s, "SELECT 5")), 5);
}

#[test]
fn process_wide_pragmas_are_refused_by_every_route() {
    let (_dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db.clone());
    s.set_read_only(true);
    for pragma in ["hard_heap_limit", "soft_heap_limit", "threads"] {
        for sql in [
            format!("PRAGMA {pragma}=100000"),
            format!("PRAGMA {pragma}(100000)"),
            format!("PRAGMA main.{pragma} = 100000"),
            format!("SELECT * FROM pragma_{pragma}"),
            format!("PRAGMA {pragma}"),
        ] {
            let err = exec(&mut s, &sql).expect_err(&sql);
            assert_eq!(err.code, "SQLITE_AUTH", "{sql}: {err}");
            assert!(
                err.message.contains("server process"),
                "{sql}: {}",
                err.message
            );
            // Describing prepares the statement, and SQLite applies pragmas while preparing:
            // refused too. (A pragma function runs its pragma only when stepped, so describing
            // it applies nothing; the limits are checked below.)
            match describe(&mut s, &sql) {
                StreamResult::Error { error } => {
                    assert_eq!(error.code.as_deref(), Some("SQLITE_AUTH"), "{sql}")
                }
                other if sql.starts_with("SELECT") => drop(other),
                other => panic!("describe {sql}: {other:?}"),
            }
            s.finish_pipeline().unwrap();
        }
    }
    // The table-valued form takes no argument for these (SQLite refuses to set them that way).
    for pragma in ["hard_heap_limit", "soft_heap_limit", "threads"] {
        let sql = format!("SELECT * FROM pragma_{pragma}(100000)");
        exec(&mut s, &sql).expect_err(&sql);
    }
    // The process limits are untouched: every database still works.
    // SAFETY: a negative argument only reads the current limit.
    let hard = unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(-1) };
    let soft = unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(-1) };
    assert_eq!((hard, soft), (0, 0));
    let (_dir2, other) = open(EngineConfig::default());
    let mut w = Session::new(other);
    ok(&mut w, "CREATE TABLE t(a)");
    ok(
        &mut w,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000) \
         INSERT INTO t SELECT zeroblob(1000) FROM c",
    );
}

#[test]
fn the_pragmas_orms_send_work_and_unknown_ones_are_refused() {
    let (_dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db.clone());
    ok(
        &mut s,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, p INTEGER REFERENCES t(id), v TEXT UNIQUE)",
    );
    ok(&mut s, "CREATE INDEX t_v2 ON t(v, p)");
    // What SQLAlchemy (sqlite dialect, pysqlite), Alembic batch mode, Django, Prisma, Drizzle,
    // TypeORM and Knex send.
    for sql in [
        "PRAGMA main.table_info(\"t\")",
        "PRAGMA main.table_xinfo(\"t\")",
        "PRAGMA temp.table_xinfo(\"t\")",
        "SELECT * FROM pragma_table_xinfo(\"t\")",
        "PRAGMA main.index_list(\"t\")",
        "PRAGMA main.index_info(\"t_v2\")",
        "PRAGMA main.index_xinfo(\"t_v2\")",
        "PRAGMA main.foreign_key_list(\"t\")",
        "PRAGMA foreign_key_check",
        "PRAGMA read_uncommitted",
        "PRAGMA foreign_keys",
        "PRAGMA table_list",
        "PRAGMA database_list",
        "PRAGMA compile_options",
        "PRAGMA integrity_check",
        "PRAGMA quick_check",
        "PRAGMA function_list",
        "PRAGMA pragma_list",
        "PRAGMA encoding",
        "PRAGMA page_size",
        "PRAGMA page_count",
        "PRAGMA freelist_count",
        "PRAGMA data_version",
        "PRAGMA schema_version",
        "PRAGMA user_version",
        "PRAGMA journal_mode",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA main.synchronous = 1",
        "PRAGMA busy_timeout",
        "PRAGMA cache_size",
        "SELECT name FROM pragma_table_info('t')",
        "SELECT * FROM pragma_index_list('t')",
        "SELECT count(*) FROM pragma_function_list",
        "PRAGMA optimize",
    ] {
        ok(&mut s, sql);
        s.close();
    }
    // Connection settings: allowed, and they keep the connection with the stream.
    for sql in [
        "PRAGMA foreign_keys = ON",
        "PRAGMA foreign_keys=OFF",
        "PRAGMA legacy_alter_table = ON",
        "PRAGMA defer_foreign_keys = ON",
        "PRAGMA recursive_triggers = ON",
        "PRAGMA read_uncommitted = 1",
        "PRAGMA busy_timeout = 5000",
        "PRAGMA cache_size = -2000",
        "PRAGMA case_sensitive_like = ON",
        "PRAGMA query_only = 0",
        "PRAGMA user_version = 3",
    ] {
        ok(&mut s, sql);
        if !sql.contains("user_version") {
            assert!(s.is_stateful(), "{sql}");
        }
        s.close();
    }
    for (sql, words) in [
        ("PRAGMA journal_mode = DELETE", "server manages"),
        ("PRAGMA synchronous = OFF", "server manages"),
        ("PRAGMA locking_mode = EXCLUSIVE", "server manages"),
        ("PRAGMA writable_schema = ON", "server manages"),
        ("PRAGMA schema_version = 99", "server manages"),
        ("PRAGMA wal_checkpoint(TRUNCATE)", "checkpoints"),
        ("PRAGMA temp_store_directory = '/tmp'", "server process"),
        ("PRAGMA cache_size = -100000000", "limited"),
        ("PRAGMA busy_timeout = 100000000", "limited"),
        ("PRAGMA count_changes = ON", "allowlist"),
        ("PRAGMA vdbe_trace = ON", "allowlist"),
        ("PRAGMA no_such_pragma", "allowlist"),
        ("SELECT * FROM pragma_short_column_names", "allowlist"),
    ] {
        let err = exec(&mut s, sql).expect_err(sql);
        assert_eq!(err.code, "SQLITE_AUTH", "{sql}: {err}");
        assert!(err.message.contains(words), "{sql}: {}", err.message);
        s.close();
    }
}

#[test]
fn a_read_only_caller_cannot_switch_query_only_off() {
    let (_dir, db) = open(EngineConfig::default());
    ok(&mut Session::new(db.clone()), "CREATE TABLE t(a)");
    let mut s = Session::new(db.clone());
    s.set_read_only(true);
    let err = exec(&mut s, "PRAGMA query_only = 0").unwrap_err();
    assert_eq!(err.code, "SQLITE_READONLY", "{err}");
    match describe(&mut s, "PRAGMA query_only = OFF") {
        StreamResult::Error { error } => {
            assert_eq!(error.code.as_deref(), Some("SQLITE_READONLY"))
        }
        other => panic!("{other:?}"),
    }
    let err = exec(&mut s, "INSERT INTO t VALUES (1)").unwrap_err();
    assert_eq!(err.code, "SQLITE_READONLY", "{err}");
    // Describing a write is fine (nothing runs).
    match describe(&mut s, "INSERT INTO t VALUES (?)") {
        StreamResult::Ok {
            response: StreamResponse::Describe { result },
        } => assert!(!result.is_readonly),
        other => panic!("{other:?}"),
    }
    s.finish_pipeline().unwrap();
    drop(s);
    // A writer after it on the same pooled connection writes again.
    let mut w = Session::new(db);
    ok(&mut w, "INSERT INTO t VALUES (1)");
}

#[test]
fn a_runaway_writer_past_the_transaction_timeout_gets_transaction_timeout() {
    // The statement deadline is far; the transaction timeout is what stops a statement that
    // holds the write lock while another writer waits, and the client can tell which.
    let (_dir, db) = open(EngineConfig {
        statement_timeout: Duration::from_secs(30),
        txn_timeout: Duration::from_secs(1),
        ..EngineConfig::default()
    });
    ok(&mut Session::new(db.clone()), "CREATE TABLE t(a)");
    let holder_db = db.clone();
    let holder = std::thread::spawn(move || {
        let mut s = Session::new(holder_db);
        ok(&mut s, "BEGIN IMMEDIATE");
        ok(&mut s, "INSERT INTO t VALUES (1)");
        exec(&mut s, RUNAWAY)
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut writer = Session::new(db.clone());
    ok(&mut writer, "INSERT INTO t VALUES (2)");
    assert!(started.elapsed() < Duration::from_secs(15));
    let err = holder.join().unwrap().unwrap_err();
    assert_eq!(err.code, "TRANSACTION_TIMEOUT", "{err}");
    let mut s = Session::new(db);
    assert_eq!(int(&ok(&mut s, "SELECT count(*) FROM t")), 1);
}
