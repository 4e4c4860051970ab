//! The engine without HTTP: `Database` and `Session` used directly from threads, as the server
//! uses them from its blocking pool.

use std::thread;
use std::time::{Duration, Instant};

use skylite_engine::{Budget, Database, Durability, EngineConfig, Session};
use skylite_proto::{
    Batch, BatchCond, BatchStep, NamedArg, Stmt, StreamRequest, StreamResponse, StreamResult, Value,
};

fn open(config: EngineConfig) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("db/data.db"), config).unwrap();
    (dir, db)
}

fn budget() -> Budget {
    Budget::new(64 * 1024 * 1024)
}

fn exec(
    s: &mut Session,
    sql: &str,
) -> Result<skylite_proto::StmtResult, skylite_engine::ExecError> {
    let r = s.execute(&Stmt::new(sql), &mut budget());
    s.finish_pipeline().unwrap();
    r
}

fn ok(s: &mut Session, sql: &str) -> skylite_proto::StmtResult {
    exec(s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn count(db: &Database, sql: &str) -> i64 {
    let mut s = Session::new(db.clone());
    match ok(&mut s, sql).rows[0][0] {
        Value::Integer(i) => i,
        ref other => panic!("{sql}: {other:?}"),
    }
}

#[test]
fn group_commit_under_many_threads_keeps_every_write() {
    for durability in [Durability::Full, Durability::Normal] {
        let (_dir, db) = open(EngineConfig {
            durability,
            ..EngineConfig::default()
        });
        ok(
            &mut Session::new(db.clone()),
            "CREATE TABLE t(th INTEGER, n INTEGER)",
        );
        const THREADS: i64 = 16;
        const EACH: i64 = 40;
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let db = db.clone();
                thread::spawn(move || {
                    for n in 0..EACH {
                        let mut s = Session::new(db.clone());
                        let stmt = Stmt {
                            sql: Some("INSERT INTO t VALUES (?, ?)".into()),
                            args: vec![Value::Integer(th), Value::Integer(n)],
                            ..Stmt::default()
                        };
                        let r = s.execute(&stmt, &mut budget()).expect("insert");
                        assert_eq!(r.affected_row_count, 1);
                        s.finish_pipeline().expect("durable");
                        assert!(!s.is_stateful());
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(count(&db, "SELECT count(*) FROM t"), THREADS * EACH);
        // Reopening the file sees everything.
        let path = db.path().to_path_buf();
        drop(db);
        let db = Database::open(&path, EngineConfig::default()).unwrap();
        assert_eq!(count(&db, "SELECT count(*) FROM t"), THREADS * EACH);
        // Idle connections went back to the pool, bounded by the limit.
        assert!(db.open_connections() <= EngineConfig::default().pool_size + 1);
    }
}

#[test]
fn stalled_write_lock_holder_is_revoked_and_recovers_after_rollback() {
    let (_dir, db) = open(EngineConfig {
        txn_timeout: Duration::from_millis(300),
        ..EngineConfig::default()
    });
    let mut a = Session::new(db.clone());
    ok(&mut a, "CREATE TABLE t(x)");
    ok(&mut a, "BEGIN IMMEDIATE");
    ok(&mut a, "INSERT INTO t VALUES (1)");
    assert!(a.in_transaction() && a.is_stateful());

    let db2 = db.clone();
    let started = Instant::now();
    let waiter = thread::spawn(move || {
        let mut b = Session::new(db2);
        ok(&mut b, "BEGIN IMMEDIATE");
        ok(&mut b, "INSERT INTO t VALUES (2)");
        ok(&mut b, "COMMIT");
        started.elapsed()
    });
    // Wait until B queues, then let the timeout pass; the idle holder is rolled back by
    // whoever polices idle sessions (the server's reaper; here, the test).
    while !db.has_write_waiters() {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(!a.enforce_revocation(), "not revoked before the timeout");
    thread::sleep(Duration::from_millis(450));
    assert!(a.enforce_revocation(), "revoked after the timeout");
    let waited = waiter.join().unwrap();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");

    let e = exec(&mut a, "INSERT INTO t VALUES (3)").unwrap_err();
    assert_eq!(e.code, "TRANSACTION_TIMEOUT");
    assert_eq!(
        exec(&mut a, "COMMIT").unwrap_err().code,
        "TRANSACTION_TIMEOUT"
    );
    assert!(a.is_stateful(), "the loss is remembered until acknowledged");
    ok(&mut a, "ROLLBACK");
    assert!(a.is_autocommit());
    ok(&mut a, "INSERT INTO t VALUES (4)");
    let mut check = Session::new(db.clone());
    let r = ok(
        &mut check,
        "SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)",
    );
    assert_eq!(r.rows[0][0], Value::Text("2,4".into()));
}

#[test]
fn revocation_interrupts_a_running_statement() {
    let (_dir, db) = open(EngineConfig {
        txn_timeout: Duration::from_millis(200),
        ..EngineConfig::default()
    });
    let mut a = Session::new(db.clone());
    ok(&mut a, "CREATE TABLE t(x)");
    ok(&mut a, "BEGIN IMMEDIATE");
    ok(&mut a, "INSERT INTO t VALUES (1)");
    let db2 = db.clone();
    let waiter = thread::spawn(move || {
        // Start waiting while A is busy.
        thread::sleep(Duration::from_millis(100));
        let mut b = Session::new(db2);
        ok(&mut b, "INSERT INTO t VALUES (2)");
    });
    // A long statement inside A's transaction: the waiter's revocation interrupts it.
    let started = Instant::now();
    let e = exec(
        &mut a,
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500000000) \
         SELECT count(*) FROM c",
    )
    .unwrap_err();
    assert_eq!(e.code, "TRANSACTION_TIMEOUT", "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    waiter.join().unwrap();
    ok(&mut a, "ROLLBACK");
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 1);
    assert_eq!(count(&db, "SELECT x FROM t"), 2);
}

#[test]
fn readonly_transaction() {
    let (_dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(x)");
    ok(&mut s, "BEGIN TRANSACTION READONLY");
    assert!(s.in_transaction());
    assert_eq!(
        exec(&mut s, "INSERT INTO t VALUES (1)").unwrap_err().code,
        "SQLITE_READONLY"
    );
    assert_eq!(
        exec(&mut s, "DROP TABLE t").unwrap_err().code,
        "SQLITE_READONLY"
    );
    ok(&mut s, "SELECT * FROM t");
    // A read-only transaction does not block writers on other sessions.
    let mut w = Session::new(db.clone());
    ok(&mut w, "INSERT INTO t VALUES (5)");
    ok(&mut s, "COMMIT");
    ok(&mut s, "INSERT INTO t VALUES (1)");
    // Plain BEGIN (no READONLY) allows writes.
    ok(&mut s, "BEGIN");
    ok(&mut s, "INSERT INTO t VALUES (2)");
    ok(&mut s, "COMMIT");
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 3);
}

#[test]
fn authorizer_refuses_file_access_and_setting_changes() {
    let (dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db.clone());
    let other = dir.path().join("other.db").display().to_string();
    for sql in [
        format!("ATTACH '{other}' AS o"),
        "DETACH o".to_owned(),
        format!("VACUUM INTO '{other}'"),
        format!("SELECT load_extension('{other}')"),
        "PRAGMA journal_mode=DELETE".to_owned(),
        "PRAGMA synchronous=OFF".to_owned(),
        "PRAGMA temp_store_directory".to_owned(),
    ] {
        let e = exec(&mut s, &sql).unwrap_err();
        assert_eq!(e.code, "SQLITE_AUTH", "{sql}: {e}");
        assert!(!e.message.is_empty());
    }
    assert!(!dir.path().join("other.db").exists());
    // A pragma the client may set makes the session stateful (it must keep its connection).
    assert!(!s.is_stateful());
    ok(&mut s, "PRAGMA foreign_keys=ON");
    assert!(s.is_stateful());
    // A temporary table too.
    let mut t = Session::new(db.clone());
    ok(&mut t, "CREATE TEMP TABLE scratch(x)");
    assert!(t.is_stateful());
    ok(&mut t, "INSERT INTO scratch VALUES (1)");
    assert_eq!(
        ok(&mut t, "SELECT count(*) FROM scratch").rows[0][0],
        Value::Integer(1)
    );
    // Closing forgets it; a new session never sees another's temp table.
    t.close();
    let mut u = Session::new(db);
    assert!(exec(&mut u, "SELECT * FROM scratch").is_err());
}

fn handle(s: &mut Session, req: StreamRequest) -> StreamResult {
    let r = s.handle(&req, &mut budget());
    s.finish_pipeline().unwrap();
    r
}

#[test]
fn stored_sql_ids() {
    let (_dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db);
    ok(&mut s, "CREATE TABLE t(x)");
    let r = handle(
        &mut s,
        StreamRequest::StoreSql {
            sql_id: 1,
            sql: "INSERT INTO t VALUES (:v)".into(),
        },
    );
    assert!(matches!(
        r,
        StreamResult::Ok {
            response: StreamResponse::StoreSql
        }
    ));
    assert!(s.is_stateful(), "stored SQL is stream state");
    // Storing the same id twice is a protocol error.
    let r = handle(
        &mut s,
        StreamRequest::StoreSql {
            sql_id: 1,
            sql: "SELECT 1".into(),
        },
    );
    assert!(matches!(r, StreamResult::Error { .. }), "{r:?}");
    let stmt = |v: i64| Stmt {
        sql_id: Some(1),
        named_args: vec![NamedArg {
            name: "v".into(),
            value: Value::Integer(v),
        }],
        ..Stmt::default()
    };
    s.execute(&stmt(1), &mut budget()).unwrap();
    let batch = Batch {
        steps: vec![
            BatchStep {
                condition: None,
                stmt: stmt(2),
            },
            BatchStep {
                condition: None,
                stmt: stmt(3),
            },
        ],
    };
    let r = s.batch(&batch, &mut budget());
    assert_eq!(r.step_errors, vec![None, None]);
    // Both `sql` and `sql_id` is an error, as is neither.
    let both = Stmt {
        sql: Some("SELECT 1".into()),
        sql_id: Some(1),
        ..Stmt::default()
    };
    assert_eq!(
        s.execute(&both, &mut budget()).unwrap_err().code,
        "PROTOCOL_ERROR"
    );
    assert_eq!(
        s.execute(&Stmt::default(), &mut budget()).unwrap_err().code,
        "PROTOCOL_ERROR"
    );
    handle(&mut s, StreamRequest::CloseSql { sql_id: 1 });
    assert!(s.execute(&stmt(4), &mut budget()).is_err());
    assert!(!s.is_stateful());
    let r = ok(&mut s, "SELECT sum(x) FROM t");
    assert_eq!(r.rows[0][0], Value::Integer(6));
}

#[test]
fn batch_conditions_and_autocommit() {
    let (_dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db);
    let step = |cond: Option<BatchCond>, sql: &str| BatchStep {
        condition: cond,
        stmt: Stmt::new(sql),
    };
    let ok_c = |i| BatchCond::Ok { step: i };
    let err_c = |i| BatchCond::Error { step: i };
    let batch = Batch {
        steps: vec![
            step(None, "CREATE TABLE t(x UNIQUE)"),       // 0 ok
            step(Some(BatchCond::IsAutocommit), "BEGIN"), // 1 ok
            step(Some(BatchCond::IsAutocommit), "SELECT 'skipped'"), // 2 skipped
            step(Some(ok_c(1)), "INSERT INTO t VALUES (1)"), // 3 ok
            step(Some(ok_c(3)), "INSERT INTO t VALUES (1)"), // 4 error
            step(Some(err_c(4)), "INSERT INTO t VALUES (2)"), // 5 ok
            step(
                Some(BatchCond::And {
                    conds: vec![
                        ok_c(5),
                        BatchCond::Not {
                            cond: Box::new(ok_c(2)),
                        },
                    ],
                }),
                "COMMIT",
            ), // 6 ok
            step(
                Some(BatchCond::Or {
                    conds: vec![err_c(6), ok_c(2)],
                }),
                "ROLLBACK",
            ), // 7 skipped
            step(Some(BatchCond::IsAutocommit), "SELECT count(*) FROM t"), // 8 ok
            step(Some(err_c(2)), "SELECT 'skipped'"),     // 9 skipped: step 2 did not run
        ],
    };
    let r = s.batch(&batch, &mut budget());
    s.finish_pipeline().unwrap();
    let ran: Vec<bool> = r.step_results.iter().map(Option::is_some).collect();
    let failed: Vec<bool> = r.step_errors.iter().map(Option::is_some).collect();
    assert_eq!(
        ran,
        vec![true, true, false, true, false, true, true, false, true, false]
    );
    assert_eq!(
        failed,
        vec![false, false, false, false, true, false, false, false, false, false]
    );
    assert_eq!(
        r.step_errors[4].as_ref().unwrap().code.as_deref(),
        Some("SQLITE_CONSTRAINT_UNIQUE")
    );
    assert_eq!(
        r.step_results[8].as_ref().unwrap().rows[0][0],
        Value::Integer(2)
    );
    assert!(s.is_autocommit());
}

#[test]
fn response_budget_is_enforced() {
    let (_dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db);
    let mut small = Budget::new(10_000);
    let e = s
        .execute(&Stmt::new("SELECT randomblob(20000)"), &mut small)
        .unwrap_err();
    assert_eq!(e.code, "RESPONSE_TOO_LARGE");
    let mut small = Budget::new(10_000);
    s.execute(&Stmt::new("SELECT randomblob(2000)"), &mut small)
        .unwrap();
}

#[test]
fn connection_limit_is_a_clear_error() {
    let (_dir, db) = open(EngineConfig {
        max_connections: 2,
        ..EngineConfig::default()
    });
    let mut a = Session::new(db.clone());
    let mut b = Session::new(db.clone());
    ok(&mut a, "CREATE TABLE t(x)");
    ok(&mut a, "BEGIN");
    ok(&mut b, "BEGIN");
    let mut c = Session::new(db.clone());
    let e = exec(&mut c, "SELECT 1").unwrap_err();
    assert_eq!(e.code, "SQLITE_BUSY");
    assert!(e.message.contains("too many open connections"), "{e}");
    a.close();
    ok(&mut c, "SELECT 1");
    drop(b);
}
