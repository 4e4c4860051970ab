//! The engine's part of the resource governor: stored SQL capped in bytes and shared, errors
//! charged to the response budget, and the hooks the server uses to take the write lock away
//! from a session whose client stalled (`lock_watch`, `abandon`).

use std::thread;
use std::time::{Duration, Instant};

use skylite_engine::session::{referenced_sql_ids, MAX_STORED_SQL_BYTES};
use skylite_engine::{Budget, Database, EngineConfig, ErrorCode, ExecError, Session, SqlStore};
use skylite_proto::{Batch, BatchStep, Stmt, StreamRequest, StreamResult, Value};

fn open(config: EngineConfig) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("db/data.db"), config).unwrap();
    (dir, db)
}

fn exec(s: &mut Session, sql: &str) -> Result<skylite_proto::StmtResult, ExecError> {
    let r = s.execute(&Stmt::new(sql), &mut Budget::new(1 << 20));
    s.finish_pipeline().unwrap();
    r
}

fn ok(s: &mut Session, sql: &str) -> skylite_proto::StmtResult {
    exec(s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn stored_sql_is_capped_in_bytes_and_closing_frees_them() {
    let store = SqlStore::default();
    let quarter = "x".repeat(MAX_STORED_SQL_BYTES / 4);
    for id in 0..4 {
        store.store(id, quarter.clone()).unwrap();
    }
    assert_eq!(store.bytes(), MAX_STORED_SQL_BYTES);
    let e = store.store(9, "S".to_owned()).unwrap_err();
    assert_eq!(e.code, "PROTOCOL_ERROR");
    assert!(e.message.contains("bytes"), "{e}");
    store.close(0);
    store.store(9, "SELECT 1".to_owned()).unwrap();
    assert_eq!(store.bytes(), 3 * quarter.len() + "SELECT 1".len());
}

#[test]
fn pinned_sql_survives_a_later_close() {
    let (_dir, db) = open(EngineConfig::default());
    let store = SqlStore::default();
    let mut s = Session::with_sql_store(db, store.clone());
    store.store(5, "SELECT 40 + 2".to_owned()).unwrap();
    let req = StreamRequest::Execute {
        stmt: Stmt {
            sql_id: Some(5),
            ..Stmt::default()
        },
    };
    let pinned = store.pin(referenced_sql_ids(&req));
    // `close_sql` overtakes the queued request.
    store.close(5);
    let result = s.with_pinned(pinned, |s| s.handle(&req, &mut Budget::new(1 << 20)));
    assert!(matches!(result, StreamResult::Ok { .. }), "{result:?}");
    // Unpinned, the id is gone.
    let result = s.handle(&req, &mut Budget::new(1 << 20));
    match result {
        StreamResult::Error { error } => assert_eq!(error.code.as_deref(), Some("PROTOCOL_ERROR")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_are_charged_to_the_response_budget() {
    let (_dir, db) = open(EngineConfig::default());
    let mut s = Session::new(db);
    let name = "n".repeat(4096);
    let sql = format!("SELECT * FROM \"{name}\"");
    let batch = Batch {
        steps: (0..100)
            .map(|_| BatchStep {
                condition: None,
                stmt: Stmt::new(sql.as_str()),
            })
            .collect(),
    };
    let limit = 40 * 1024;
    let result = s.batch(&batch, &mut Budget::new(limit));
    let errors: Vec<_> = result.step_errors.iter().flatten().collect();
    assert_eq!(errors.len(), 100);
    assert!(errors[0].message.contains(&name));
    assert_eq!(errors[99].code.as_deref(), Some("RESPONSE_TOO_LARGE"));
    let total: usize = errors.iter().map(|e| e.message.len()).sum();
    assert!(total < limit + 100 * 300, "errors took {total} bytes");

    // A failing request outside a batch is charged too.
    let mut budget = Budget::new(1024);
    let req = StreamRequest::Execute {
        stmt: Stmt::new(sql.as_str()),
    };
    match s.handle(&req, &mut budget) {
        StreamResult::Error { error } => {
            assert_eq!(
                error.code.as_deref(),
                Some("RESPONSE_TOO_LARGE"),
                "{error:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stalled_session_gives_up_its_transaction_when_revoked() {
    let (_dir, db) = open(EngineConfig {
        txn_timeout: Duration::from_millis(300),
        ..EngineConfig::default()
    });
    let mut a = Session::new(db.clone());
    ok(&mut a, "CREATE TABLE t(x)");
    ok(&mut a, "BEGIN IMMEDIATE");
    ok(&mut a, "INSERT INTO t VALUES (1)");
    let watch = a.lock_watch().unwrap();
    assert!(!watch.is_revoked());
    assert!(a.current_lock_watch().is_some());

    let db2 = db.clone();
    let writer = thread::spawn(move || {
        let started = Instant::now();
        let mut b = Session::new(db2);
        ok(&mut b, "INSERT INTO t VALUES (2)");
        started.elapsed()
    });
    // What the server's blocked sender does: watch, then give up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watch.is_revoked() {
        assert!(
            Instant::now() < deadline,
            "the waiting writer must revoke the lock"
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert!(a.abandon(ExecError::new(ErrorCode::TransactionTimeout, "stalled")));
    writer.join().unwrap();
    assert_eq!(
        exec(&mut a, "SELECT 1").unwrap_err().code,
        "TRANSACTION_TIMEOUT"
    );
    ok(&mut a, "ROLLBACK");
    let r = ok(&mut a, "SELECT group_concat(x) FROM t");
    assert_eq!(r.rows[0][0], Value::Text("2".into()));
}

#[test]
fn abandoning_a_transaction_releases_the_lock_at_once() {
    let (_dir, db) = open(EngineConfig {
        txn_timeout: Duration::from_secs(8),
        ..EngineConfig::default()
    });
    let mut a = Session::new(db.clone());
    ok(&mut a, "CREATE TABLE t(x)");
    // Nothing to give up outside a transaction.
    assert!(!a.abandon(ExecError::new(ErrorCode::TransactionTimeout, "stalled")));
    ok(&mut a, "BEGIN IMMEDIATE");
    ok(&mut a, "INSERT INTO t VALUES (1)");
    assert!(a.abandon(ExecError::new(
        ErrorCode::TransactionTimeout,
        "the client stalled"
    )));
    // Another writer gets the lock without waiting for the (long) transaction timeout.
    let mut b = Session::new(db.clone());
    ok(&mut b, "INSERT INTO t VALUES (2)");
    let e = exec(&mut a, "INSERT INTO t VALUES (3)").unwrap_err();
    assert_eq!(e.code, "TRANSACTION_TIMEOUT");
    assert_eq!(e.message, "the client stalled");
    ok(&mut a, "ROLLBACK");
    let r = ok(&mut b, "SELECT group_concat(x) FROM t");
    assert_eq!(r.rows[0][0], Value::Text("2".into()));
}
