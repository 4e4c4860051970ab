//! Durability edges of the engine: a failed fsync poisons the database, a COMMIT that races a
//! lock revocation gets a truthful answer, the write lock serves waiters in arrival order, and
//! checkpoints (run from one place under the write lock) keep every acknowledged row and the
//! WAL bounded.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use skylite_engine::{Budget, Database, Durability, EngineConfig, ExecError, Session};
use skylite_proto::{Stmt, StmtResult, Value};

fn open_at(path: &std::path::Path, config: EngineConfig) -> Database {
    Database::open(path, config).unwrap()
}

fn exec(s: &mut Session, sql: &str) -> Result<StmtResult, ExecError> {
    let r = s.execute(&Stmt::new(sql), &mut Budget::new(1 << 20));
    let durable = s.finish_pipeline();
    let r = r?;
    durable?;
    Ok(r)
}

fn ok(s: &mut Session, sql: &str) -> StmtResult {
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
fn failed_fsync_poisons_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/data.db");
    let config = EngineConfig {
        durability: Durability::Full,
        ..EngineConfig::default()
    };
    let db = open_at(&path, config.clone());
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(x)");
    ok(&mut s, "INSERT INTO t VALUES (1)");

    db.inject_fsync_failure();
    // The write that waited on the failed fsync is not acknowledged.
    let err = exec(&mut s, "INSERT INTO t VALUES (2)").unwrap_err();
    assert_eq!(err.code, "SQLITE_IOERR_FSYNC", "{err}");
    assert!(db.is_poisoned());
    // Later writes are refused, whatever the route (a fresh session, a `close` right after
    // the write, an explicit transaction), with a message saying what to do.
    let mut s2 = Session::new(db.clone());
    let err = exec(&mut s2, "INSERT INTO t VALUES (3)").unwrap_err();
    assert_eq!(err.code, "DATABASE_POISONED", "{err}");
    assert!(err.message.contains("reopen"), "{}", err.message);
    ok(&mut s2, "BEGIN");
    let err = exec(&mut s2, "INSERT INTO t VALUES (4)").unwrap_err();
    assert_eq!(err.code, "DATABASE_POISONED");
    ok(&mut s2, "ROLLBACK");
    // Reads still work.
    assert!(count(&db, "SELECT count(*) FROM t WHERE x = 1") == 1);
    assert_eq!(count(&db, "SELECT count(*) FROM t WHERE x IN (3, 4)"), 0);
    drop((s, s2));
    db.drain_pool();
    drop(db);

    // Opening the database again clears it.
    let db = open_at(&path, config);
    assert!(!db.is_poisoned());
    let mut s = Session::new(db.clone());
    ok(&mut s, "INSERT INTO t VALUES (5)");
    assert_eq!(count(&db, "SELECT count(*) FROM t WHERE x = 5"), 1);
}

#[test]
fn failed_fsync_is_reported_even_when_the_stream_closes_in_the_same_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("data.db"), EngineConfig::default());
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(x)");
    db.inject_fsync_failure();
    // [execute, close]: the most common pipeline.
    let r = s.execute(
        &Stmt::new("INSERT INTO t VALUES (1)"),
        &mut Budget::new(1 << 20),
    );
    assert!(r.is_ok());
    s.close();
    let err = s.finish_pipeline().unwrap_err();
    assert_eq!(err.code, "SQLITE_IOERR_FSYNC");
}

/// Waits until `db` has a writer queued, then long enough for it to revoke a holder whose
/// transaction timeout (`timeout`) has passed.
fn wait_for_revocation(db: &Database, timeout: Duration) {
    let start = Instant::now();
    while !db.has_write_waiters() {
        assert!(start.elapsed() < Duration::from_secs(5), "no waiter");
        thread::sleep(Duration::from_millis(5));
    }
    // The waiter checks the holder at least every 50 ms.
    thread::sleep(timeout + Duration::from_millis(400));
}

#[test]
fn commit_after_revocation_fails_with_transaction_timeout_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(100);
    let db = open_at(
        &dir.path().join("data.db"),
        EngineConfig {
            txn_timeout: timeout,
            ..EngineConfig::default()
        },
    );
    let mut setup = Session::new(db.clone());
    ok(&mut setup, "CREATE TABLE t(x)");
    let mut a = Session::new(db.clone());
    ok(&mut a, "BEGIN");
    ok(&mut a, "INSERT INTO t VALUES ('a')");
    let db2 = db.clone();
    let b = thread::spawn(move || {
        let mut b = Session::new(db2);
        exec(&mut b, "INSERT INTO t VALUES ('b')")
    });
    wait_for_revocation(&db, timeout);
    let err = exec(&mut a, "COMMIT").unwrap_err();
    assert_eq!(err.code, "TRANSACTION_TIMEOUT", "{err}");
    b.join().unwrap().unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM t WHERE x = 'a'"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM t WHERE x = 'b'"), 1);
    // The stream stays truthful: it answers the timeout until the client rolls back.
    assert_eq!(
        exec(&mut a, "SELECT 1").unwrap_err().code,
        "TRANSACTION_TIMEOUT"
    );
    ok(&mut a, "ROLLBACK");
    ok(&mut a, "SELECT 1");
}

#[test]
fn write_lock_is_granted_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("data.db"), EngineConfig::default());
    let mut setup = Session::new(db.clone());
    ok(
        &mut setup,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, who INTEGER)",
    );
    let mut holder = Session::new(db.clone());
    ok(&mut holder, "BEGIN IMMEDIATE");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for who in 0..6i64 {
        let db2 = db.clone();
        let order = order.clone();
        threads.push(thread::spawn(move || {
            let mut s = Session::new(db2);
            ok(&mut s, &format!("INSERT INTO t(who) VALUES ({who})"));
            order.lock().unwrap().push(who);
        }));
        // Each waiter is queued before the next one arrives.
        let start = Instant::now();
        while count_waiting(&db) < (who + 1) as usize {
            assert!(start.elapsed() < Duration::from_secs(5));
            thread::sleep(Duration::from_millis(2));
        }
    }
    ok(&mut holder, "COMMIT");
    for t in threads {
        t.join().unwrap();
    }
    // Rows were inserted in the order the writers arrived.
    let mut s = Session::new(db.clone());
    let rows = ok(&mut s, "SELECT who FROM t ORDER BY id").rows;
    let got: Vec<i64> = rows
        .iter()
        .map(|r| match r[0] {
            Value::Integer(i) => i,
            _ => -1,
        })
        .collect();
    assert_eq!(got, (0..6).collect::<Vec<_>>());
}

fn count_waiting(db: &Database) -> usize {
    db.write_waiters()
}

#[test]
fn checkpoints_under_the_write_lock_keep_every_acknowledged_row_and_bound_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/data.db");
    let db = open_at(
        &path,
        EngineConfig {
            durability: Durability::Normal,
            ..EngineConfig::default()
        },
    );
    let mut setup = Session::new(db.clone());
    ok(
        &mut setup,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER, pad BLOB)",
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            thread::spawn(move || {
                let mut s = Session::new(db);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Short reads (a long one holds old frames: see the warning in `Conn`).
                    ok(
                        &mut s,
                        "SELECT max(id), (SELECT length(pad) FROM t WHERE id = 1) FROM t",
                    );
                }
            })
        })
        .collect();
    // 4 writers x 1500 rows of ~3 KB: about 18 MB, several thousand WAL pages, far past the
    // checkpoint threshold.
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let db = db.clone();
            thread::spawn(move || {
                let mut acked = 0i64;
                let mut s = Session::new(db);
                for i in 0..1500 {
                    let sql = if i % 10 == 0 {
                        // Some commits are multi-statement transactions.
                        ok(&mut s, "BEGIN");
                        ok(
                            &mut s,
                            &format!("INSERT INTO t(writer, pad) VALUES ({w}, randomblob(3000))"),
                        );
                        "COMMIT".to_owned()
                    } else {
                        format!("INSERT INTO t(writer, pad) VALUES ({w}, randomblob(3000))")
                    };
                    ok(&mut s, &sql);
                    acked += 1;
                }
                acked
            })
        })
        .collect();
    let acked: Vec<i64> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    for (w, n) in acked.iter().enumerate() {
        assert_eq!(
            count(&db, &format!("SELECT count(*) FROM t WHERE writer = {w}")),
            *n
        );
    }
    let mut s = Session::new(db.clone());
    assert_eq!(
        ok(&mut s, "PRAGMA integrity_check").rows[0][0],
        Value::Text("ok".into())
    );
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_bytes = std::fs::metadata(&wal).unwrap().len();
    let db_bytes = std::fs::metadata(&path).unwrap().len();
    // Most of the data reached the database file (checkpoints ran although no connection
    // checkpoints on its own), and the WAL stayed within the size limit plus one threshold.
    assert!(db_bytes > 12 * 1024 * 1024, "db file {db_bytes} bytes");
    assert!(
        wal_bytes <= 16 * 1024 * 1024 + 1000 * 4096 + 1024 * 1024,
        "WAL grew to {wal_bytes} bytes"
    );
}

#[test]
fn a_long_reader_lets_the_wal_grow_without_blocking_writers_and_it_shrinks_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let db = open_at(
        &path,
        EngineConfig {
            durability: Durability::Normal,
            ..EngineConfig::default()
        },
    );
    let wal_len = || {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(&wal).map_or(0, |m| m.len())
    };
    let mut w = Session::new(db.clone());
    ok(&mut w, "CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB)");
    ok(&mut w, "INSERT INTO t(pad) VALUES (randomblob(3000))");
    // A reader holds an old snapshot (an open read transaction).
    let mut reader = Session::new(db.clone());
    ok(&mut reader, "BEGIN");
    ok(&mut reader, "SELECT count(*) FROM t");
    let insert = "INSERT INTO t(pad) VALUES (randomblob(3000))";
    for _ in 0..6000 {
        ok(&mut w, insert);
    }
    let grown = wal_len();
    assert!(grown > 20 * 1024 * 1024, "WAL only {grown} bytes");
    // The reader still sees its snapshot.
    assert_eq!(
        ok(&mut reader, "SELECT count(*) FROM t").rows[0][0],
        Value::Integer(1)
    );
    ok(&mut reader, "COMMIT");
    // Once the reader is gone, a checkpoint completes and the WAL is cut back.
    for _ in 0..2000 {
        ok(&mut w, insert);
    }
    let after = wal_len();
    assert!(
        after <= 16 * 1024 * 1024 + 1000 * 4096 + 1024 * 1024,
        "WAL still {after} bytes (was {grown})"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM t"), 8001);
}
