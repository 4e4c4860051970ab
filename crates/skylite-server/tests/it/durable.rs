//! Durability and failures of the server or its disk, as legacy (`POST /`, `/v1/*`) clients see
//! them: nothing is acknowledged before it is durable, a failed fsync poisons the database
//! (writes refused until it is reopened), and I/O-class errors are 5xx, not the client's 400.

use crate::common;

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
    // Hrana pipelines too: `[execute, close]` is a 500, never a 200 with a result.
    let (status, body) = pipeline_at(
        addr,
        "/v2/pipeline",
        None,
        json!([execute("INSERT INTO t VALUES (6)"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(err_at(&body, 0)["code"], "DATABASE_POISONED", "{body}");
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
async fn failed_fsync_fails_a_hrana_pipeline_that_closes_its_stream() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (status, body) = pipeline_at(
        addr,
        "/v2/pipeline",
        None,
        json!([execute("CREATE TABLE t(x)"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server
        .app
        .databases
        .default_db()
        .unwrap()
        .database()
        .inject_fsync_failure();
    // The most common pipeline: the write, then `close`. Not acknowledged.
    let (status, body) = pipeline_at(
        addr,
        "/v2/pipeline",
        None,
        json!([execute("INSERT INTO t VALUES (1)"), close()]),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["code"], "SQLITE_IOERR_FSYNC", "{body}");
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

async fn create_db(addr: std::net::SocketAddr, name: &str) {
    let r = post_json(addr, "/v1/admin/databases", &json!({"name": name})).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
}

fn wal_of(server: &TestServer, name: &str) -> std::path::PathBuf {
    server.data_dir().join(name).join("data.db-wal")
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_database_is_closed_cleanly_and_reopens_on_the_next_request() {
    let server = TestServer::start_with(|c| {
        c.db_idle_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let addr = server.addr;
    create_db(addr, "app").await;
    let r = post_json(
        addr,
        "/db/app/",
        &json!({"statements": ["CREATE TABLE t(x)", "INSERT INTO t VALUES (42)"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A live Hrana stream keeps it open past the idle timeout.
    let (status, body) = pipeline_at(
        addr,
        "/db/app/v2/pipeline",
        None,
        json!([execute("SELECT 1")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let baton = body["baton"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(server.app.databases.get_open("app").is_some());
    let (status, body) =
        pipeline_at(addr, "/db/app/v2/pipeline", Some(&baton), json!([close()])).await;
    assert_eq!(status, 200, "{body}");

    // Once unused, it is closed: the last connection checkpointed and removed the WAL.
    let dbs = &server.app.databases;
    wait_until("the database is closed", || {
        !dbs.all_open().iter().any(|h| h.name() == "app")
    })
    .await;
    assert!(
        !wal_of(&server, "app").exists(),
        "the WAL was not checkpointed away"
    );
    // `default` is never closed.
    assert!(dbs.all_open().iter().any(|h| h.name() == "default"));
    // The next request opens it again, with its data.
    let r = post_json(addr, "/db/app/v1/execute", &v1("SELECT x FROM t")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"]["rows"][0][0],
        json!({"type": "integer", "value": "42"})
    );
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_past_the_cap_closes_the_least_recently_used_idle_database() {
    let server = TestServer::start_with(|c| {
        c.max_open_databases = 3;
    })
    .await;
    let addr = server.addr;
    for name in ["a", "b"] {
        create_db(addr, name).await;
        let r = post_json(
            addr,
            &format!("/db/{name}/v1/execute"),
            &v1("CREATE TABLE t(x)"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Touch `a`, so `b` is the least recently used.
    let r = post_json(addr, "/db/a/v1/execute", &v1("INSERT INTO t VALUES (1)")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    create_db(addr, "c").await;
    let open: Vec<String> = server
        .app
        .databases
        .all_open()
        .iter()
        .map(|h| h.name().to_owned())
        .collect();
    assert_eq!(open.len(), 3, "{open:?}");
    assert!(!open.contains(&"b".to_owned()), "{open:?}");
    // `b` still works (reopened, closing another idle one).
    let r = post_json(addr, "/db/b/v1/execute", &v1("INSERT INTO t VALUES (2)")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.app.databases.all_open().len(), 3);

    // When every open database is in use, one more is refused with a 503.
    let open: Vec<String> = server
        .app
        .databases
        .all_open()
        .iter()
        .map(|h| h.name().to_owned())
        .filter(|n| n != "default")
        .collect();
    let mut batons = Vec::new();
    for name in &open {
        let (status, body) = pipeline_at(
            addr,
            &format!("/db/{name}/v2/pipeline"),
            None,
            json!([execute("SELECT 1")]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        batons.push(body["baton"].as_str().unwrap().to_owned());
    }
    let closed = ["a", "b", "c"]
        .into_iter()
        .find(|n| !open.iter().any(|o| o == n))
        .unwrap();
    let r = post_json(addr, &format!("/db/{closed}/v1/execute"), &v1("SELECT 1")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "TOO_MANY_OPEN_DATABASES");
    // Closing a stream frees a slot.
    let (status, _) = pipeline_at(
        addr,
        &format!("/db/{}/v2/pipeline", open[0]),
        Some(&batons[0]),
        json!([close()]),
    )
    .await;
    assert_eq!(status, 200);
    let r = post_json(addr, &format!("/db/{closed}/v1/execute"), &v1("SELECT 1")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server_panics(), 0);
}
