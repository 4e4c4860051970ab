//! Continuous backup survives losing the machine: `skylite serve --backup` (SeaweedFS on
//! loopback) under concurrent writers is killed with SIGKILL, its data folder wiped, and the
//! database restored from the object store. Sync mode: every acknowledged write is there.
//! Async mode: every write acknowledged more than ~1.5 s before the kill is there. Always whole
//! transactions and `integrity_check` ok (the restore checks it).

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use skylite_backup::restore::{restore_database, RestoreOptions};
use skylite_backup::testing::SeaweedFs;

const WRITERS: i64 = 8;

/// Acknowledged autocommit inserts (value, when acknowledged), until `stop` or the server dies.
async fn writer(addr: std::net::SocketAddr, w: i64, stop: Arc<AtomicBool>) -> Vec<(i64, Instant)> {
    let mut acked = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let v = w * 1_000_000 + n;
        n += 1;
        let body = json!({"baton": null, "requests": [
            execute_args("INSERT INTO t(v) VALUES (?)", json!([int(v)])),
            close(),
        ]});
        let resp = try_request(
            addr,
            "POST",
            "/v2/pipeline",
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
        match resp {
            Ok(r) if r.status == 200 && r.json()["results"][0]["type"] == "ok" => {
                acked.push((v, Instant::now()));
            }
            Ok(r) if r.status == 200 => panic!("an insert failed: {}", r.text()),
            // Killed (or a 503 while dying): stop.
            _ => break,
        }
    }
    acked
}

async fn kill_wipe_restore(
    s3: &SeaweedFs,
    mode: &str,
) -> (Vec<(i64, Instant)>, Instant, BTreeSet<i64>) {
    let prefix = format!("kill-{mode}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = s3.url(&prefix);
    let mut server = ChildServer::start_with_env(
        &data,
        &["--backup", &url, "--backup-mode", mode],
        &s3.env_vars(),
    );
    let addr = server.addr;
    query(addr, "CREATE TABLE t(v INTEGER PRIMARY KEY)").await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(addr, w, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.assert_no_panic();
    server.kill_9();
    let killed_at = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() > 50,
        "too few writes to mean anything: {}",
        acked.len()
    );
    // The disk is gone.
    std::fs::remove_dir_all(&data).unwrap();

    let store = s3.store(&prefix);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("restored.db");
    restore_database(&store, "default", &RestoreOptions::default(), &dest)
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&dest).unwrap();
    let mut stmt = conn.prepare("SELECT v FROM t").unwrap();
    let restored: BTreeSet<i64> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (acked, killed_at, restored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_backup_keeps_every_acknowledged_write_after_kill_9_and_a_lost_disk() {
    let Some(s3) = SeaweedFs::start_or_skip("sync_backup_keeps_every_acknowledged_write") else {
        return;
    };
    let (acked, _, restored) = kill_wipe_restore(&s3, "sync").await;
    let missing: Vec<i64> = acked
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| !restored.contains(v))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost: {missing:?}",
        missing.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_backup_loses_at_most_the_last_moments_after_kill_9_and_a_lost_disk() {
    let Some(s3) = SeaweedFs::start_or_skip("async_backup_loses_at_most_the_last_moments") else {
        return;
    };
    let (acked, killed_at, restored) = kill_wipe_restore(&s3, "async").await;
    let old_enough = |at: &Instant| killed_at.duration_since(*at) > Duration::from_millis(1500);
    let missing: Vec<(i64, u128)> = acked
        .iter()
        .filter(|(v, at)| old_enough(at) && !restored.contains(v))
        .map(|(v, at)| (*v, killed_at.duration_since(*at).as_millis()))
        .collect();
    let newest = acked
        .iter()
        .map(|(_, at)| killed_at.duration_since(*at).as_millis())
        .min();
    assert!(
        missing.is_empty(),
        "{} writes older than 1.5 s lost (value, ms before the kill): {missing:?}; {} acked, \
         the newest {newest:?} ms before the kill",
        missing.len(),
        acked.len()
    );
    assert!(!restored.is_empty());
}
