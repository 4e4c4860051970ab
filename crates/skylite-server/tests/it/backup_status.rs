//! Continuous backup seen from the server: `--backup` ships every database's commits, the
//! admin API (`GET /v1/admin/databases/NAME`) shows the backed-up position, its age and errors,
//! deleting a database leaves a tombstone, and in sync mode a write the object store cannot
//! take is answered `BACKUP_UNAVAILABLE`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde_json::{json, Value};
use skylite_backup::{BackupConfig, BackupMode};
use skylite_server::config::BackupSettings;

fn settings(store: Arc<dyn ObjectStore>, mode: BackupMode) -> BackupSettings {
    BackupSettings {
        url: "s3://test/prefix".into(),
        store,
        config: BackupConfig {
            mode,
            segment_interval: Duration::from_millis(100),
            sync_timeout: Duration::from_millis(500),
            ..BackupConfig::default()
        },
    }
}

async fn admin(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    admin_call(server.addr, method, path, body).await
}

async fn backup_of(server: &TestServer, db: &str) -> Value {
    let (status, body) = admin(server, "GET", &format!("/v1/admin/databases/{db}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["backup"].clone()
}

async fn wait_backed_up(server: &TestServer, db: &str, txn: u64) -> Value {
    for _ in 0..250 {
        let b = backup_of(server, db).await;
        if b["state"] == "ok" && b["backed_up_txn"] == json!(txn) {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{db} not backed up to {txn}: {}",
        backup_of(server, db).await
    );
}

async fn run(server: &TestServer, db: &str, sql: &str) -> Value {
    run_on(server.addr, db, sql).await
}

async fn keys(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    store
        .list(Some(&object_store::path::Path::from(prefix)))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_shows_the_backed_up_position() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let s2 = store.clone();
    let server = TestServer::start_with(|c| c.backup = Some(settings(s2, BackupMode::Async))).await;

    run(&server, "default", "CREATE TABLE t(x)").await;
    for i in 0..20 {
        let r = run(&server, "default", &format!("INSERT INTO t VALUES ({i})")).await;
        assert_eq!(r["type"], "ok", "{r}");
    }
    let b = wait_backed_up(&server, "default", 21).await;
    assert_eq!(b["captured_txn"], 21);
    assert_eq!(b["lag_ms"], 0);
    assert_eq!(b["spool_bytes"], 0);
    assert!(
        b["generation"].as_str().is_some_and(|g| g.len() == 24),
        "{b}"
    );
    assert!(b["backed_up_age_ms"].as_u64().is_some(), "{b}");
    assert!(b["backed_up_commit_ms"].as_u64().is_some(), "{b}");
    assert!(b["error"].is_null(), "{b}");
    // A snapshot plus a few segments, not one PUT per commit.
    let puts = b["puts"].as_u64().unwrap();
    assert!(puts < 21, "{b}");
    let generation = b["generation"].as_str().unwrap().to_owned();
    let objects = keys(&*store, &format!("dbs/default/{generation}/")).await;
    assert!(
        objects
            .iter()
            .any(|k| k.ends_with("snapshots/00000000000000000000.snap")),
        "{objects:?}"
    );
    assert!(
        objects.iter().any(|k| k.contains("/segments/")),
        "{objects:?}"
    );

    // Another database: created by the admin API, backed up too; deleted: a tombstone.
    let (status, _) = admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(status, 201);
    run(&server, "other", "CREATE TABLE u(y)").await;
    let b = wait_backed_up(&server, "other", 1).await;
    let generation = b["generation"].as_str().unwrap().to_owned();
    let (status, _) = admin(&server, "DELETE", "/v1/admin/databases/other", None).await;
    assert!(status == 200 || status == 204, "{status}");
    let tombstone = format!("dbs/other/tombstone-{generation}");
    let mut found = false;
    for _ in 0..100 {
        if keys(&*store, "dbs/other/").await.contains(&tombstone) {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(found, "{:?}", keys(&*store, "dbs/other/").await);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_refuses_what_the_store_cannot_take() {
    // A store that answers nothing: a closed port on loopback, no retries.
    let url = skylite_backup::store::BackupUrl::parse("s3://bucket/prefix").unwrap();
    let env = skylite_backup::store::AwsEnv::default()
        .set("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .set("AWS_ACCESS_KEY_ID", "test")
        .set("AWS_SECRET_ACCESS_KEY", "test");
    let options = skylite_backup::store::StoreOptions {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        max_retries: 0,
        retry_timeout: Duration::from_secs(1),
    };
    let store = skylite_backup::store::open(&url, &env, &options).unwrap();
    let server =
        TestServer::start_with(|c| c.backup = Some(settings(store, BackupMode::Sync))).await;

    // Committed locally, not acknowledged: the client hears why (the durability step fails
    // the whole request, as a failed fsync does).
    let (status, body) = pipeline_at(
        server.addr,
        "/v3/pipeline",
        None,
        json!([execute("CREATE TABLE t(x)"), close()]),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "BACKUP_UNAVAILABLE", "{body}");
    let b = backup_of(&server, "default").await;
    assert_eq!(b["state"], "retrying", "{b}");
    assert!(b["error"].as_str().is_some_and(|e| !e.is_empty()), "{b}");
    assert_eq!(b["backed_up_txn"], 0);
    // Reads still work.
    let r = run(&server, "default", "SELECT 1").await;
    assert_eq!(r["type"], "ok", "{r}");
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_and_reopened_database_continues_its_history() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let s2 = store.clone();
    let server = TestServer::start_with(|c| {
        c.backup = Some(settings(s2, BackupMode::Async));
        c.db_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let (status, _) = admin(
        &server,
        "POST",
        "/v1/admin/databases",
        Some(json!({"name": "idle"})),
    )
    .await;
    assert_eq!(status, 201);
    run(&server, "idle", "CREATE TABLE t(x)").await;
    run(&server, "idle", "INSERT INTO t VALUES (1)").await;
    let before = wait_backed_up(&server, "idle", 2).await;
    // Closed for being idle (the reaper checks every second)...
    let mut closed = false;
    for _ in 0..100 {
        // Looked at without touching it (a lookup would keep it open).
        if !server
            .app
            .databases
            .all_open()
            .iter()
            .any(|h| h.name() == "idle")
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "the idle database was not closed");
    // ...opened again by the next request: the same generation goes on, no new snapshot.
    run(&server, "idle", "INSERT INTO t VALUES (2)").await;
    let after = wait_backed_up(&server, "idle", 3).await;
    assert_eq!(after["generation"], before["generation"], "{after}");
    let generation = after["generation"].as_str().unwrap();
    let snapshots = keys(&*store, &format!("dbs/idle/{generation}/snapshots/")).await;
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(server_panics(), 0);
}
