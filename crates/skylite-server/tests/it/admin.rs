//! The admin API (`/v1/admin/databases`): create, list, inspect (size, tables, row counters,
//! open streams, health), delete (including a database with an open transaction) and fork
//! (including while a writer keeps committing: the copy is intact and holds every row committed
//! before the fork began).

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn admin(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = request(
        server.addr,
        method,
        path,
        body.map(|b| serde_json::to_vec(&b).unwrap()),
    )
    .await;
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/json"),
        "{method} {path}"
    );
    (r.status, r.json())
}

/// Runs statements in one pipeline on database `db` and returns the body (asserting 200).
async fn on_db(server: &TestServer, db: &str, stmts: &[&str]) -> Value {
    let mut reqs: Vec<Value> = stmts.iter().map(|s| execute(s)).collect();
    reqs.push(close());
    let (status, body) = pipeline_at(
        server.addr,
        &format!("/db/{db}/v3/pipeline"),
        None,
        json!(reqs),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    for i in 0..stmts.len() {
        assert_eq!(body["results"][i]["type"], "ok", "{}: {body:#}", stmts[i]);
    }
    body
}

async fn count(server: &TestServer, db: &str, sql: &str) -> i64 {
    let body = on_db(server, db, &[sql]).await;
    rows(exec_result(&body, 0))[0][0].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_show_delete() {
    let server = TestServer::start().await;
    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "app"})),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body, json!({"name": "app", "created": true}));
    assert!(server.data_dir().join("app/data.db").is_file());
    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "app"})),
    )
    .await;
    assert_eq!(status, 409, "{body:#}");
    assert_eq!(body["code"], "DATABASE_EXISTS");
    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"nom": "x"})),
    )
    .await;
    assert_eq!(status, 400, "{body:#}");

    on_db(
        &server,
        "app",
        &[
            "CREATE TABLE a(x)",
            "CREATE TABLE b(x)",
            "INSERT INTO a VALUES (1), (2), (3)",
            "SELECT * FROM a",
        ],
    )
    .await;
    // An open stream shows up.
    let (status, body) = pipeline_at(
        server.addr,
        "/db/app/v3/pipeline",
        None,
        json!([execute("SELECT 1")]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");

    let (status, body) = admin(&server, "GET", "/v1/admin/databases", None).await;
    assert_eq!(status, 200, "{body:#}");
    let list = body["databases"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app", "default"], "{body:#}");
    let app = &list[0];
    assert_eq!(app["tables"], 2, "{app:#}");
    // SQLite counts the schema rows CREATE TABLE writes as well.
    assert!(app["rows_written"].as_u64().unwrap() >= 3, "{app:#}");
    assert!(app["rows_read"].as_u64().unwrap() >= 3, "{app:#}");
    assert_eq!(app["open_streams"], 1, "{app:#}");
    assert!(app["size_bytes"].as_u64().unwrap() > 0, "{app:#}");
    assert_eq!(
        app["size_bytes"].as_u64().unwrap(),
        app["db_bytes"].as_u64().unwrap() + app["wal_bytes"].as_u64().unwrap()
    );
    assert!(app.get("health").is_none());

    let (status, one) = admin(&server, "GET", "/v1/admin/databases/app", None).await;
    assert_eq!(status, 200, "{one:#}");
    assert_eq!(one["name"], "app");
    assert_eq!(one["tables"], 2);
    assert_eq!(one["health"], json!({"ok": true, "quick_check": "ok"}));
    let (status, body) = admin(&server, "GET", "/v1/admin/databases/nope", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("DATABASE_NOT_FOUND"))
    );

    let (status, body) = admin(&server, "DELETE", "/v1/admin/databases/app", None).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body, json!({"name": "app", "deleted": true}));
    assert!(!server.data_dir().join("app").exists());
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".trash") || n.starts_with(".fork"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (status, body) = pipeline_at(
        server.addr,
        "/db/app/v3/pipeline",
        None,
        json!([execute("SELECT 1")]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("DATABASE_NOT_FOUND"))
    );
    let (status, body) = admin(&server, "DELETE", "/v1/admin/databases/app", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("DATABASE_NOT_FOUND"))
    );
    let (status, body) = admin(&server, "DELETE", "/v1/admin/databases/default", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("DATABASE_PROTECTED"))
    );

    // Re-created under the same name, it starts empty.
    let (status, _) = admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "app"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        count(&server, "app", "SELECT count(*) FROM sqlite_schema").await,
        0
    );
    assert_eq!(server_panics(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_survive_a_restart_and_open_lazily() {
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().to_path_buf();
    let server = TestServer::start_with(|c| c.data_dir = dir.join("data")).await;
    let (status, _) = admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "kept"})),
    )
    .await;
    assert_eq!(status, 201);
    on_db(
        &server,
        "kept",
        &["CREATE TABLE t(x)", "INSERT INTO t VALUES (42)"],
    )
    .await;
    let config = server.app.config.clone();
    server.stop().await;
    assert!(dir.join("data/kept/data.db").is_file());
    let app = skylite_server::App::open(config).unwrap();
    assert!(
        app.databases.get_open("kept").is_none(),
        "opened lazily, not at start"
    );
    let info = app.databases.info("kept", true).unwrap().unwrap();
    assert_eq!(info.tables, 1);
    assert!(!info.open);
    let handle = app.databases.open_existing("kept").unwrap().unwrap();
    assert_eq!(handle.name(), "kept");
    assert!(app.databases.open_existing("missing").unwrap().is_none());
    assert!(!dir.join("data/missing").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_copies_a_database() {
    let server = TestServer::start().await;
    admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "src"})),
    )
    .await;
    on_db(
        &server,
        "src",
        &["CREATE TABLE t(x)", "INSERT INTO t VALUES (1), (2)"],
    )
    .await;
    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases/src/fork",
        Some(json!({"to": "copy"})),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(
        body,
        json!({"name": "copy", "forked_from": "src", "created": true})
    );
    assert_eq!(count(&server, "copy", "SELECT count(*) FROM t").await, 2);
    // They are independent afterwards.
    on_db(&server, "copy", &["INSERT INTO t VALUES (3)"]).await;
    assert_eq!(count(&server, "src", "SELECT count(*) FROM t").await, 2);
    assert_eq!(count(&server, "copy", "SELECT count(*) FROM t").await, 3);
    // The copy is a WAL database like the others.
    let body = on_db(&server, "copy", &["PRAGMA journal_mode"]).await;
    assert_eq!(rows(exec_result(&body, 0))[0][0], "wal");

    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases/src/fork",
        Some(json!({"to": "copy"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("DATABASE_EXISTS"))
    );
    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases/nope/fork",
        Some(json!({"to": "other"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("DATABASE_NOT_FOUND"))
    );
    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases/src/fork",
        Some(json!({"to": "Bad"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_DATABASE_NAME"))
    );
    // Forking default works too.
    let (status, _) = admin(
        &server,
        "POST",
        "/v1/admin/databases/default/fork",
        Some(json!({"to": "snap"})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(!server.data_dir().join("other").exists());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_while_a_writer_is_active() {
    let server = TestServer::start().await;
    admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "busy"})),
    )
    .await;
    on_db(
        &server,
        "busy",
        &["CREATE TABLE t(id INTEGER PRIMARY KEY, pad TEXT)"],
    )
    .await;
    // An open transaction whose rows must not reach the copy.
    let mut txn = Stream::new(server.addr);
    txn.path = "/db/busy/v3/pipeline".into();

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let addr = server.addr;
    let writer = {
        let (stop, committed) = (stop.clone(), committed.clone());
        tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (status, body) = pipeline_at(
                    addr,
                    "/db/busy/v3/pipeline",
                    None,
                    json!([
                        execute_args(
                            "INSERT INTO t(id, pad) VALUES (?, randomblob(200))",
                            json!([int(i)])
                        ),
                        close()
                    ]),
                )
                .await;
                assert_eq!(status, 200, "{body:#}");
                assert_eq!(body["results"][0]["type"], "ok", "{body:#}");
                committed.store(i, Ordering::SeqCst);
            }
            i
        })
    };
    while committed.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before_fork = committed.load(Ordering::SeqCst);
    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases/busy/fork",
        Some(json!({"to": "snapshot"})),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    let after_fork = committed.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    let total = writer.await.unwrap();
    drop(txn);

    let body = on_db(&server, "snapshot", &["PRAGMA integrity_check"]).await;
    assert_eq!(rows(exec_result(&body, 0))[0][0], "ok");
    let n = count(&server, "snapshot", "SELECT count(*) FROM t").await;
    let max = count(&server, "snapshot", "SELECT coalesce(max(id), 0) FROM t").await;
    assert!(
        n >= before_fork,
        "copy has {n} rows, {before_fork} were committed before the fork"
    );
    assert!(
        n <= after_fork + 1,
        "copy has {n} rows, only {after_fork} committed by the end"
    );
    assert_eq!(n, max, "the copy is a prefix of the commits (no holes)");
    assert_eq!(
        count(&server, "busy", "SELECT count(*) FROM t").await,
        total
    );
    let (_, info) = admin(&server, "GET", "/v1/admin/databases/snapshot", None).await;
    assert_eq!(info["health"]["ok"], true, "{info:#}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_leaves_out_uncommitted_rows() {
    let server = TestServer::start().await;
    admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "txn"})),
    )
    .await;
    on_db(
        &server,
        "txn",
        &["CREATE TABLE t(x)", "INSERT INTO t VALUES ('committed')"],
    )
    .await;
    let mut s = Stream::new(server.addr);
    s.path = "/db/txn/v3/pipeline".into();
    s.ok("BEGIN").await;
    s.ok("INSERT INTO t VALUES ('pending')").await;
    let (status, _) = admin(
        &server,
        "POST",
        "/v1/admin/databases/txn/fork",
        Some(json!({"to": "copy"})),
    )
    .await;
    assert_eq!(status, 201);
    s.ok("COMMIT").await;
    assert_eq!(count(&server, "copy", "SELECT count(*) FROM t").await, 1);
    assert_eq!(count(&server, "txn", "SELECT count(*) FROM t").await, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_database_with_an_open_transaction() {
    let server = TestServer::start().await;
    admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "doomed"})),
    )
    .await;
    on_db(&server, "doomed", &["CREATE TABLE t(x)"]).await;
    let mut s = Stream::new(server.addr);
    s.path = "/db/doomed/v3/pipeline".into();
    s.ok("BEGIN").await;
    s.ok("INSERT INTO t VALUES (1)").await;
    let (_, info) = admin(&server, "GET", "/v1/admin/databases/doomed", None).await;
    assert_eq!(info["open_streams"], 1, "{info:#}");

    let (status, body) = admin(&server, "DELETE", "/v1/admin/databases/doomed", None).await;
    assert_eq!(status, 200, "{body:#}");
    assert!(!server.data_dir().join("doomed").exists());
    // The stream's next request finds no database.
    let (status, body) = pipeline_at(
        server.addr,
        "/db/doomed/v3/pipeline",
        s.baton.as_deref(),
        json!([execute("COMMIT")]),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("DATABASE_NOT_FOUND")),
        "{body:#}"
    );

    // A new database of the same name is empty and writable at once (no lock left behind).
    admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "doomed"})),
    )
    .await;
    on_db(
        &server,
        "doomed",
        &["CREATE TABLE t(x)", "INSERT INTO t VALUES (2)"],
    )
    .await;
    assert_eq!(count(&server, "doomed", "SELECT count(*) FROM t").await, 1);
    assert_eq!(server_panics(), 0);
    server.stop().await;
}
