//! Per-database limits through the admin API: a size limit (`DATABASE_FULL` when reached,
//! reads go on, a client cannot raise it with `PRAGMA max_page_count`), a statement timeout and
//! a transaction timeout of the database's own, set at creation and changed later with
//! `PATCH`, shown by `GET`, and kept in the data folder across a restart.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const RUNAWAY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";

async fn admin(
    server_addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let body = if body.is_null() {
        None
    } else {
        Some(serde_json::to_vec(&body).unwrap())
    };
    let r = request(server_addr, method, path, body).await;
    (r.status, r.json())
}

fn on(addr: std::net::SocketAddr, db: &str) -> Stream {
    let mut s = Stream::new(addr);
    s.path = format!("/db/{db}/v3/pipeline");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limit_stops_growth_reads_go_on_and_clients_cannot_raise_it() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (status, body) = admin(
        addr,
        "POST",
        "/v1/admin/databases",
        json!({"name": "small", "limits": {"max_size_bytes": 262144}}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["limits"]["max_size_bytes"], 262144);

    let mut s = on(addr, "small");
    s.ok("CREATE TABLE t(b BLOB)").await;
    let mut full = None;
    for i in 0..100 {
        match s.exec("INSERT INTO t VALUES (randomblob(16384))").await {
            Ok(_) => {}
            Err(e) => {
                full = Some((i, e));
                break;
            }
        }
    }
    let (inserted, error) = full.expect("the size limit stops the inserts");
    assert!(inserted > 3, "only {inserted} rows fit");
    assert_eq!(error["code"], "DATABASE_FULL", "{error:#}");
    assert!(
        error["message"].as_str().unwrap().contains("262144"),
        "{error:#}"
    );
    // Reads go on.
    let count = s.ok("SELECT count(*) FROM t").await;
    assert_eq!(count["rows"][0][0]["value"], inserted.to_string());
    // A client cannot raise the limit, in any spelling.
    for sql in [
        "PRAGMA max_page_count = 1000000",
        "PRAGMA max_page_count(1000000)",
    ] {
        let msg = s.fails(sql, "SQLITE_AUTH").await;
        assert!(msg.contains("max_page_count"), "{sql}: {msg}");
    }
    // (The table-valued form takes a schema name, not a value: it sets nothing.)
    let _ = s.exec("SELECT * FROM pragma_max_page_count(1000000)").await;
    // Reading it is harmless.
    s.ok("PRAGMA max_page_count").await;
    // Still full on a fresh stream (a new connection gets the limit too).
    let mut fresh = on(addr, "small");
    fresh
        .fails("INSERT INTO t VALUES (randomblob(16384))", "DATABASE_FULL")
        .await;

    // Raising it through the admin API lets writes go on at once.
    let (status, body) = admin(
        addr,
        "PATCH",
        "/v1/admin/databases/small",
        json!({"limits": {"max_size_bytes": 4194304}}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["limits"]["max_size_bytes"], 4194304);
    s.ok("INSERT INTO t VALUES (randomblob(16384))").await;
    fresh.ok("INSERT INTO t VALUES (randomblob(16384))").await;

    // GET shows it; the default database has none.
    let (_, info) = admin(addr, "GET", "/v1/admin/databases/small", Value::Null).await;
    assert_eq!(
        info["limits"],
        json!({"max_size_bytes": 4194304, "statement_timeout_ms": null, "txn_timeout_ms": null})
    );
    let (_, info) = admin(addr, "GET", "/v1/admin/databases/default", Value::Null).await;
    assert_eq!(info["limits"]["max_size_bytes"], Value::Null);

    // Clearing it (null) removes the limit.
    let (status, body) = admin(
        addr,
        "PATCH",
        "/v1/admin/databases/small",
        json!({"limits": {"max_size_bytes": null}}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["limits"]["max_size_bytes"], Value::Null);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_survive_a_restart() {
    let mut first = TestServer::start().await;
    let data = first.data_dir();
    let (status, body) = admin(
        first.addr,
        "POST",
        "/v1/admin/databases",
        json!({"name": "kept", "limits": {"max_size_bytes": 131072, "statement_timeout_ms": 700}}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    let (status, _) = admin(
        first.addr,
        "PATCH",
        "/v1/admin/databases/kept",
        json!({"limits": {"txn_timeout_ms": 1500}}),
    )
    .await;
    assert_eq!(status, 200);
    // Keep the data folder past the first server.
    let dir = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    first.stop().await;

    let second = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    let (status, info) = admin(second.addr, "GET", "/v1/admin/databases/kept", Value::Null).await;
    assert_eq!(status, 200, "{info:#}");
    assert_eq!(
        info["limits"],
        json!({"max_size_bytes": 131072, "statement_timeout_ms": 700, "txn_timeout_ms": 1500})
    );
    // Enforced after the restart too.
    let mut s = on(second.addr, "kept");
    s.fails(RUNAWAY, "STATEMENT_TIMEOUT").await;
    drop(dir);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_and_transaction_timeouts_per_database() {
    // The server's own timeouts are long: only the database's limits can explain a stop.
    let server = TestServer::start_with(|c| {
        c.engine.statement_timeout = Duration::from_secs(60);
        c.engine.txn_timeout = Duration::from_secs(60);
    })
    .await;
    let addr = server.addr;
    let (status, body) = admin(
        addr,
        "POST",
        "/v1/admin/databases",
        json!({"name": "quick", "limits": {"statement_timeout_ms": 300, "txn_timeout_ms": 500}}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");

    let started = Instant::now();
    let mut s = on(addr, "quick");
    s.fails(RUNAWAY, "STATEMENT_TIMEOUT").await;
    assert!(started.elapsed() < Duration::from_secs(20));

    // A transaction that holds the write lock loses it after 500 ms while another writer waits.
    s.ok("CREATE TABLE t(x)").await;
    s.ok("BEGIN IMMEDIATE").await;
    s.ok("INSERT INTO t VALUES (1)").await;
    let waiter = tokio::spawn(async move {
        let mut b = on(addr, "quick");
        b.ok("INSERT INTO t VALUES (2)").await;
    });
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter gets the lock after the database's txn timeout")
        .unwrap();
    s.fails("INSERT INTO t VALUES (3)", "TRANSACTION_TIMEOUT")
        .await;
    s.ok("ROLLBACK").await;

    // Changed later: a longer statement timeout applies to the next statement.
    let (status, body) = admin(
        addr,
        "PATCH",
        "/v1/admin/databases/quick",
        json!({"limits": {"statement_timeout_ms": 1200}}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["limits"]["txn_timeout_ms"], 500, "left out: kept");
    let started = Instant::now();
    s.fails(RUNAWAY, "STATEMENT_TIMEOUT").await;
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_limits_are_refused() {
    let server = TestServer::start().await;
    let addr = server.addr;
    for limits in [
        json!({"max_size_bytes": 10}),
        json!({"txn_timeout_ms": 0}),
        json!({"statement_timeout_ms": 999_999_999_999u64}),
    ] {
        let (status, body) = admin(
            addr,
            "POST",
            "/v1/admin/databases",
            json!({"name": "bad", "limits": limits}),
        )
        .await;
        assert_eq!(status, 400, "{limits}: {body:#}");
        assert_eq!(body["code"], "INVALID_LIMIT", "{body:#}");
    }
    assert!(!server.data_dir().join("bad").exists());
    let (status, body) = admin(
        addr,
        "POST",
        "/v1/admin/databases",
        json!({"name": "bad", "limits": {"max_size": 1}}),
    )
    .await;
    assert_eq!(status, 400, "{body:#}");
    let (status, body) = admin(
        addr,
        "PATCH",
        "/v1/admin/databases/nope",
        json!({"limits": {"max_size_bytes": 1048576}}),
    )
    .await;
    assert_eq!(status, 404, "{body:#}");
    assert_eq!(body["code"], "DATABASE_NOT_FOUND");
    let (status, body) = admin(
        addr,
        "PATCH",
        "/v1/admin/databases/default",
        json!({"limits": {"max_size_bytes": 1}}),
    )
    .await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["code"], "INVALID_LIMIT");
}
