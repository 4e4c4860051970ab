//! Crash safety of the real binary: clients stream autocommit inserts, the server is killed with
//! SIGKILL mid-stream, restarted on the same data folder, and every insert that was
//! acknowledged (HTTP 200 with a successful result) is there, while rows of a transaction that
//! was open at the time are not.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;

const WRITERS: i64 = 8;
const UNCOMMITTED_BASE: i64 = 900_000_000;
const UNCOMMITTED_ROWS: i64 = 20_000;

/// One acknowledged autocommit insert per loop turn, until `stop`.
async fn writer(addr: std::net::SocketAddr, w: i64, stop: Arc<AtomicBool>) -> Vec<i64> {
    let mut acked = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let v = w * 1_000_000 + n;
        n += 1;
        let body = json!({"baton": null, "requests": [
            execute_args("INSERT INTO t(v, src) VALUES (?, 'writer')", json!([int(v)])),
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
            Ok(r) if r.status == 200 => {
                let out = r.json();
                if out["results"][0]["type"] == "ok"
                    && out["results"][0]["response"]["result"]["affected_row_count"] == 1
                {
                    acked.push(v);
                } else {
                    panic!("an insert failed while the server was up: {out}");
                }
            }
            // The server is gone (killed): stop.
            Err(_) => break,
            Ok(r) => panic!("unexpected HTTP {}: {}", r.status, r.text()),
        }
    }
    acked
}

/// Runs the scenario and returns the number of acknowledged writes.
async fn kill_mid_stream(durability: &str, open_txn_at_kill: bool) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ChildServer::start(&data, &["--durability", durability]);
    let addr = server.addr;
    query(
        addr,
        "CREATE TABLE t(v INTEGER PRIMARY KEY, src TEXT, pad TEXT)",
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(addr, w, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;

    if open_txn_at_kill {
        // A transaction with many uncommitted rows (more than SQLite's page cache holds, so some
        // of its pages spill into the WAL without a commit record). It takes the write lock, so
        // the writers queue behind it: the kill lands while they wait and while it is open.
        let mut txn = Stream::v2(addr);
        txn.ok("BEGIN IMMEDIATE").await;
        let r = txn
            .exec_args(
                "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ? - 1) \
                 INSERT INTO t(v, src, pad) SELECT ? + i, 'uncommitted', printf('%0300d', i) FROM c",
                json!([int(UNCOMMITTED_ROWS), int(UNCOMMITTED_BASE)]),
            )
            .await
            .expect("uncommitted insert");
        assert_eq!(r["affected_row_count"], UNCOMMITTED_ROWS);
        let r = txn
            .ok("SELECT count(*) FROM t WHERE src = 'uncommitted'")
            .await;
        assert_eq!(rows(&r)[0][0], json!(UNCOMMITTED_ROWS));
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // SIGKILL while requests are in flight.
    server.kill_9();
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    server.assert_no_panic();
    assert!(
        acked.len() >= 20,
        "too few writes were acknowledged: {}",
        acked.len()
    );

    // Restart on the same data folder.
    let server = ChildServer::start(&data, &["--durability", durability]);
    let addr = server.addr;
    let (status, lines) = cursor(
        addr,
        None,
        json!({"steps": [{"stmt": stmt("SELECT v FROM t WHERE src = 'writer' ORDER BY v")}]}),
    )
    .await;
    assert_eq!(status, 200);
    let present: BTreeSet<i64> = lines
        .iter()
        .filter(|l| l["type"] == "row")
        .map(|l| l["row"][0]["value"].as_str().unwrap().parse().unwrap())
        .collect();
    let lost: Vec<&i64> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes were lost after kill -9 (durability {durability}), e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(
        scalar_i64(
            addr,
            &format!("SELECT count(*) FROM t WHERE v >= {UNCOMMITTED_BASE}")
        )
        .await,
        0,
        "rows of the open transaction survived the crash"
    );
    assert_eq!(
        rows(&query(addr, "PRAGMA integrity_check").await),
        vec![vec![json!("ok")]]
    );
    // The restarted server takes writes.
    query(addr, "INSERT INTO t(v, src) VALUES (-1, 'after')").await;
    server.assert_no_panic();
    eprintln!(
        "durability {durability}, open txn {open_txn_at_kill}: {} acknowledged writes, all present",
        acked.len()
    );
    acked.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_full_durability_and_an_open_transaction() {
    kill_mid_stream("full", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_full_durability_while_writers_commit() {
    kill_mid_stream("full", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_normal_durability_while_writers_commit() {
    kill_mid_stream("normal", false).await;
}
