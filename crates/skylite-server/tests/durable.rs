//! Durability and failures of the server or its disk, as legacy (`POST /`, `/v1/*`) clients see
//! them: nothing is acknowledged before it is durable, a failed fsync poisons the database
//! (writes refused until it is reopened), and I/O-class errors are 5xx, not the client's 400.

mod common;

use common::*;
use serde_json::json;

fn v1(sql: &str) -> serde_json::Value {
    json!({"stmt": {"sql": sql}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_is_a_500_on_legacy_endpoints_and_poisons_writes() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let r = post_json(addr, "/v1/execute", &v1("CREATE TABLE t(x)")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(
        addr,
        "/",
        &json!({"statements": ["INSERT INTO t VALUES (1)"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let db = server.app.databases.default_db().unwrap();
    db.database().inject_fsync_failure();
    // The write whose fsync failed is not acknowledged.
    let r = post_json(addr, "/v1/execute", &v1("INSERT INTO t VALUES (2)")).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["code"], "SQLITE_IOERR_FSYNC");
    // Every later write is refused, on every legacy endpoint, as a server failure.
    let r = post_json(addr, "/v1/execute", &v1("INSERT INTO t VALUES (3)")).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["code"], "DATABASE_POISONED");
    let r = post_json(
        addr,
        "/",
        &json!({"statements": ["INSERT INTO t VALUES (4)", "INSERT INTO t VALUES (5)"]}),
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["code"], "DATABASE_POISONED");
    // Reads still work; a client error is still a 400.
    let r = post_json(
        addr,
        "/v1/execute",
        &v1("SELECT count(*) FROM t WHERE x > 2"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"]["rows"][0][0],
        json!({"type": "integer", "value": "0"})
    );
    let r = post_json(addr, "/v1/execute", &v1("SELECT * FROM nope")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_database_is_a_500_not_a_client_error() {
    let server = TestServer::start().await;
    let addr = server.addr;
    // A database whose table pages are garbage (the header is fine, so it opens).
    let dir = server.data_dir().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.db");
    {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(
            "CREATE TABLE t(x);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)
             INSERT INTO t SELECT randomblob(500) FROM c;",
        )
        .unwrap();
    }
    let mut bytes = std::fs::read(&file).unwrap();
    let page = 4096;
    assert!(bytes.len() > 4 * page);
    for b in &mut bytes[page..4 * page] {
        *b = 0xA5;
    }
    std::fs::write(&file, &bytes).unwrap();

    let r = post_json(
        addr,
        "/db/bad/v1/execute",
        &v1("SELECT count(*), sum(length(x)) FROM t"),
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.text());
    let code = r.json()["code"].as_str().unwrap_or_default().to_owned();
    assert!(
        code.starts_with("SQLITE_CORRUPT") || code == "SQLITE_NOTADB",
        "{code}"
    );
    let r = post_json(
        addr,
        "/db/bad/",
        &json!({"statements": ["SELECT count(*), sum(length(x)) FROM t"]}),
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.text());
    // The healthy default database is unaffected.
    let r = post_json(addr, "/v1/execute", &v1("SELECT 1")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server_panics(), 0);
}
