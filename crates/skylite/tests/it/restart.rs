//! Batons across a restart of the real binary on the same data folder: a stream that held no
//! state resumes transparently; one that held a transaction (or stored SQL) gets
//! STREAM_EXPIRED, and its transaction's rows are gone. Also the CLI's idle-timeout flag.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batons_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ChildServer::start(&data, &[]);
    let addr = server.addr;
    query(addr, "CREATE TABLE t(x INTEGER)").await;
    query(addr, "INSERT INTO t VALUES (1)").await;

    let mut stateless = Stream::new(addr);
    stateless.ok("SELECT count(*) FROM t").await;
    let mut v2_stateless = Stream::v2(addr);
    v2_stateless.ok("SELECT 1").await;
    let mut in_txn = Stream::new(addr);
    in_txn.ok("BEGIN").await;
    in_txn.ok("INSERT INTO t VALUES (2)").await;
    let mut stored = Stream::new(addr);
    stored
        .send(json!([{"type": "store_sql", "sql_id": 1, "sql": "SELECT 1"}]))
        .await;
    // A cursor's baton, too.
    let (status, lines) = cursor(addr, None, json!({"steps": [{"stmt": stmt("SELECT 5")}]})).await;
    assert_eq!(status, 200);
    let cursor_baton = lines[0]["baton"].as_str().unwrap().to_owned();

    server.kill_9();
    server.assert_no_panic();
    let server = ChildServer::start(&data, &[]);
    let addr = server.addr;
    for s in [&mut stateless, &mut v2_stateless, &mut in_txn, &mut stored] {
        s.addr = addr;
    }

    // Stateless streams go on as if nothing happened, several requests in a row.
    assert_eq!(
        rows(&stateless.ok("SELECT count(*) FROM t").await),
        vec![vec![json!(1)]]
    );
    assert_eq!(rows(&stateless.ok("SELECT 2").await), vec![vec![json!(2)]]);
    assert_eq!(
        rows(&v2_stateless.ok("SELECT 3").await),
        vec![vec![json!(3)]]
    );
    let (status, body) = pipeline(addr, Some(&cursor_baton), json!([execute("SELECT 6")])).await;
    assert_eq!(status, 200, "{body:#}");

    // Stateful ones learn that their state is gone.
    for (what, baton) in [
        ("transaction", in_txn.baton.clone()),
        ("stored SQL", stored.baton.clone()),
    ] {
        let (status, body) = pipeline(addr, baton.as_deref(), json!([execute("COMMIT")])).await;
        assert_eq!(status, 400, "{what}: {body:#}");
        assert_eq!(body["code"], "STREAM_EXPIRED", "{what}");
        assert!(
            body["message"].as_str().unwrap().contains("rolled back"),
            "{what}: {body}"
        );
    }
    assert_eq!(scalar_i64(addr, "SELECT count(*) FROM t").await, 1);
    // A forged baton is still refused after the restart (the key persisted, it did not change).
    let (status, body) = pipeline(addr, Some("xyz"), json!([execute("SELECT 1")])).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "BATON_INVALID");
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_idle_timeout_expires_an_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ChildServer::start(
        &data,
        &["--stream-idle-timeout", "1", "--durability", "normal"],
    );
    let addr = server.addr;
    query(addr, "CREATE TABLE t(x INTEGER)").await;
    let mut txn = Stream::new(addr);
    txn.ok("BEGIN").await;
    txn.ok("INSERT INTO t VALUES (1)").await;
    let mut idle = Stream::new(addr);
    idle.ok("SELECT 1").await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let (status, body) = pipeline(addr, txn.baton.as_deref(), json!([execute("COMMIT")])).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["code"], "STREAM_EXPIRED");
    assert!(body["message"].as_str().unwrap().contains("rolled back"));
    assert_eq!(rows(&idle.ok("SELECT 2").await), vec![vec![json!(2)]]);
    assert_eq!(scalar_i64(addr, "SELECT count(*) FROM t").await, 0);
    query(addr, "INSERT INTO t VALUES (2)").await;
    assert!(server.log().contains("expired"), "{}", server.log());
    server.assert_no_panic();
}
