//! Transactions as a client sees them: `BEGIN TRANSACTION READONLY`, `BEGIN IMMEDIATE` from two
//! streams, and a stalled holder losing the write lock after the transaction timeout.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_transaction_refuses_writes_until_it_ends() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE t(x INTEGER)").await;
    s.ok("INSERT INTO t VALUES (1)").await;

    for end in ["ROLLBACK", "COMMIT"] {
        s.ok("BEGIN TRANSACTION READONLY").await;
        let msg = s.fails("INSERT INTO t VALUES (2)", "SQLITE_READONLY").await;
        assert!(msg.contains("read-only"), "{msg}");
        s.fails("UPDATE t SET x = 5", "SQLITE_READONLY").await;
        s.fails("CREATE TABLE u(y)", "SQLITE_READONLY").await;
        // Reads work, and the transaction is still open.
        assert_eq!(
            rows(&s.ok("SELECT count(*) FROM t").await),
            vec![vec![json!(1)]]
        );
        let body = s.send(json!([{"type": "get_autocommit"}])).await;
        assert_eq!(ok_at(&body, 0)["is_autocommit"], false);
        s.ok(end).await;
        // Writes work again.
        s.ok("INSERT INTO t VALUES (3)").await;
        s.ok("DELETE FROM t WHERE x = 3").await;
    }
    // The same inside a Node-style read batch.
    let body = s
        .send(json!([{"type": "batch", "batch": {"steps": [
            {"stmt": stmt("BEGIN TRANSACTION READONLY")},
            {"condition": {"type": "ok", "step": 0}, "stmt": stmt("INSERT INTO t VALUES (7)")},
            {"condition": {"type": "ok", "step": 1}, "stmt": stmt("COMMIT")},
            {"condition": {"type": "not", "cond": {"type": "ok", "step": 2}}, "stmt": stmt("ROLLBACK")},
        ]}}]))
        .await;
    let res = &ok_at(&body, 0)["result"];
    assert_eq!(res["step_errors"][1]["code"], "SQLITE_READONLY", "{res:#}");
    assert!(res["step_results"][3].is_object(), "{res:#}");
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_immediate_writer_waits_for_the_first() {
    let server = TestServer::start().await;
    let mut a = Stream::new(server.addr);
    a.ok("CREATE TABLE t(x INTEGER)").await;
    a.ok("BEGIN IMMEDIATE").await;
    a.ok("INSERT INTO t VALUES (1)").await;

    let addr = server.addr;
    let waiter = tokio::spawn(async move {
        let mut b = Stream::new(addr);
        let started = Instant::now();
        b.ok("BEGIN IMMEDIATE").await;
        let waited = started.elapsed();
        b.ok("INSERT INTO t VALUES (2)").await;
        // B sees A's committed row.
        let n = rows(&b.ok("SELECT count(*) FROM t").await)[0][0].clone();
        b.ok("COMMIT").await;
        (waited, n)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiter.is_finished(),
        "B must wait while A holds the write lock"
    );
    a.ok("COMMIT").await;
    let (waited, n) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("B gets the lock once A commits")
        .unwrap();
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_eq!(n, json!(2));
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_holder_loses_the_write_lock_after_the_txn_timeout() {
    let server = TestServer::start_with(|c| {
        c.engine.txn_timeout = Duration::from_secs(1);
    })
    .await;
    let mut a = Stream::new(server.addr);
    a.ok("CREATE TABLE t(x INTEGER)").await;
    a.ok("BEGIN IMMEDIATE").await;
    a.ok("INSERT INTO t VALUES (1)").await;
    a.ok("INSERT INTO t VALUES (2)").await;

    // B waits; after ~1 s, A (idle) is revoked and B gets the lock.
    let addr = server.addr;
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        let mut b = Stream::new(addr);
        b.ok("BEGIN IMMEDIATE").await;
        b.ok("INSERT INTO t VALUES (10)").await;
        b.ok("COMMIT").await;
    });
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter succeeds once the stalled holder is revoked")
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "B waited only {waited:?}"
    );

    // A's next statement learns what happened; its rows are gone.
    let msg = a
        .fails("INSERT INTO t VALUES (3)", "TRANSACTION_TIMEOUT")
        .await;
    assert!(msg.contains("rolled back"), "{msg}");
    // It keeps failing (the client must not silently continue in autocommit) ...
    a.fails("SELECT count(*) FROM t", "TRANSACTION_TIMEOUT")
        .await;
    assert_eq!(
        rows(&query(server.addr, "SELECT x FROM t ORDER BY x").await),
        vec![vec![json!(10)]]
    );
    // ... until it acknowledges with ROLLBACK; then the stream works again.
    a.ok("ROLLBACK").await;
    let body = a.send(json!([{"type": "get_autocommit"}])).await;
    assert_eq!(ok_at(&body, 0)["is_autocommit"], true);
    a.ok("INSERT INTO t VALUES (4)").await;
    assert_eq!(
        rows(&query(server.addr, "SELECT x FROM t ORDER BY x").await),
        vec![vec![json!(4)], vec![json!(10)]]
    );
    assert_eq!(server_panics(), 0);
}
