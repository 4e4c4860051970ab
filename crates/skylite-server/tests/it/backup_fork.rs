//! Fork at a time from the continuous backup: `POST /v1/admin/databases/NAME/fork
//! {"to": "copy", "at": "RFC3339"}` gives exactly the transactions committed up to that time,
//! also for a database deleted since; errors for bad times, unknown databases, existing
//! targets and servers without `--backup`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde_json::{json, Value};
use skylite_backup::time::{format_ms, now_ms};
use skylite_backup::{BackupConfig, BackupMode};
use skylite_server::config::BackupSettings;

fn settings(store: Arc<dyn ObjectStore>) -> BackupSettings {
    BackupSettings {
        url: "s3://test/prefix".into(),
        store,
        config: BackupConfig {
            mode: BackupMode::Async,
            segment_interval: Duration::from_millis(100),
            ..BackupConfig::default()
        },
    }
}

async fn admin(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    admin_call(server.addr, method, path, body).await
}

async fn run(server: &TestServer, db: &str, sql: &str) -> Value {
    run_on(server.addr, db, sql).await
}

async fn count(server: &TestServer, db: &str) -> i64 {
    let r = run(server, db, "SELECT count(*) FROM t").await;
    r["response"]["result"]["rows"][0][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn wait_caught_up(server: &TestServer, db: &str) {
    for _ in 0..250 {
        let (_, body) = admin(server, "GET", &format!("/v1/admin/databases/{db}"), None).await;
        let b = &body["backup"];
        if b["state"] == "ok" && b["backed_up_txn"] == b["captured_txn"] && b["lag_ms"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{db} did not catch up");
}

async fn fork(server: &TestServer, from: &str, body: Value) -> (u16, Value) {
    admin(
        server,
        "POST",
        &format!("/v1/admin/databases/{from}/fork"),
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_at_a_time_gives_exactly_the_transactions_up_to_it() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let server = TestServer::start_with(|c| c.backup = Some(settings(store.clone()))).await;
    let (status, body) = admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "app"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    run(
        &server,
        "app",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
    )
    .await;
    for i in 0..5 {
        run(&server, "app", &format!("INSERT INTO t(v) VALUES ('a{i}')")).await;
    }
    wait_caught_up(&server, "app").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at_a = format_ms(now_ms());
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..7 {
        run(&server, "app", &format!("INSERT INTO t(v) VALUES ('b{i}')")).await;
    }
    wait_caught_up(&server, "app").await;

    let (status, body) = fork(&server, "app", json!({"to": "past", "at": at_a})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["at"], json!(at_a));
    assert_eq!(count(&server, "past").await, 5);
    // Without `at`: the live database, as before.
    let (status, body) = fork(&server, "app", json!({"to": "live"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(count(&server, "live").await, 12);

    // Errors.
    let (status, body) = fork(&server, "app", json!({"to": "x", "at": "yesterday"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_TIME")),
        "{body}"
    );
    let (status, body) = fork(&server, "app", json!({"to": "past", "at": at_a})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("DATABASE_EXISTS")),
        "{body}"
    );
    let (status, body) = fork(&server, "nope", json!({"to": "y", "at": at_a})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("DATABASE_NOT_FOUND")),
        "{body}"
    );
    let (status, body) = fork(
        &server,
        "app",
        json!({"to": "z", "at": "2001-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("DATABASE_NOT_FOUND")),
        "{body}"
    );
    let (status, body) = fork(&server, "app", json!({"to": "../x", "at": at_a})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_DATABASE_NAME")),
        "{body}"
    );
    let (status, _) = admin(&server, "GET", "/v1/admin/databases/z", None).await;
    assert_eq!(status, 404, "a failed fork left a database behind");

    // Deleted since: its past is still there.
    let (status, body) = admin(&server, "DELETE", "/v1/admin/databases/app", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = fork(&server, "app", json!({"to": "undeleted", "at": at_a})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(count(&server, "undeleted").await, 5);
    let leftovers: Vec<String> = std::fs::read_dir(server.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".fork-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(server_panics(), 0);
}

#[tokio::test]
async fn fork_at_a_time_needs_backup() {
    let server = TestServer::start().await;
    let (status, body) = fork(
        &server,
        "default",
        json!({"to": "copy", "at": "2026-12-01T10:00:00Z"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BACKUP_NOT_CONFIGURED")),
        "{body}"
    );
}
