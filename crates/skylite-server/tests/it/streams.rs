//! Batons and streams over HTTP: interactive transactions across requests, isolation, baton
//! reuse and forgery, closed streams, idle expiry (with and without an open transaction).

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_transaction_across_requests_is_isolated() {
    let server = TestServer::start().await;
    let mut setup = Stream::new(server.addr);
    setup.ok("CREATE TABLE t(x INTEGER)").await;
    setup.ok("INSERT INTO t VALUES (0)").await;

    let mut writer = Stream::v2(server.addr);
    let body = writer
        .send(json!([execute("BEGIN"), {"type": "get_autocommit"}]))
        .await;
    assert_eq!(ok_at(&body, 1)["is_autocommit"], false);
    let b1 = writer.baton.clone().unwrap();
    writer.ok("INSERT INTO t VALUES (1)").await;
    writer.ok("INSERT INTO t VALUES (2)").await;
    assert_ne!(
        writer.baton.as_deref(),
        Some(b1.as_str()),
        "every response has a new baton"
    );
    // The writer sees its own rows.
    assert_eq!(
        rows(&writer.ok("SELECT count(*) FROM t").await),
        vec![vec![json!(3)]]
    );

    // A reader on another stream does not see them, and neither does a one-shot request.
    let mut reader = Stream::new(server.addr);
    assert_eq!(
        rows(&reader.ok("SELECT count(*) FROM t").await),
        vec![vec![json!(1)]]
    );
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);

    let body = writer
        .send(json!([execute("COMMIT"), {"type": "get_autocommit"}]))
        .await;
    assert_eq!(ok_at(&body, 1)["is_autocommit"], true);
    assert_eq!(
        rows(&reader.ok("SELECT count(*) FROM t").await),
        vec![vec![json!(3)]]
    );

    // A transaction abandoned by closing the stream is rolled back.
    writer.ok("BEGIN").await;
    writer.ok("INSERT INTO t VALUES (99)").await;
    let body = writer.send(json!([close()])).await;
    assert!(body["baton"].is_null());
    assert_eq!(
        scalar_i64(server.addr, "SELECT count(*) FROM t WHERE x = 99").await,
        0
    );
    // ... and the write lock is free again.
    assert_eq!(
        query(server.addr, "INSERT INTO t VALUES (100)").await["affected_row_count"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_forged_and_closed_batons() {
    let server = TestServer::start().await;
    let (status, body) = pipeline(server.addr, None, json!([execute("SELECT 1")])).await;
    assert_eq!(status, 200);
    let b1 = body["baton"].as_str().unwrap().to_owned();
    let (status, body) = pipeline(server.addr, Some(&b1), json!([execute("SELECT 2")])).await;
    assert_eq!(status, 200, "{body:#}");
    let b2 = body["baton"].as_str().unwrap().to_owned();

    // Reusing the old baton.
    let r = post_json(
        server.addr,
        "/v3/pipeline",
        &json!({"baton": b1, "requests": [execute("SELECT 3")]}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.json()["code"], "BATON_REUSED");
    assert!(r.json()["message"].is_string());

    // Forged and garbage batons.
    let mut forged = b2.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [
        forged.as_str(),
        "garbage",
        "",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (status, body) = pipeline(server.addr, Some(bad), json!([execute("SELECT 1")])).await;
        assert_eq!(status, 400, "baton {bad:?}: {body:#}");
        assert_eq!(body["code"], "BATON_INVALID", "baton {bad:?}");
    }

    // The legitimate holder of the stream is unaffected by all that.
    let (status, body) = pipeline(
        server.addr,
        Some(&b2),
        json!([execute("SELECT 4"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(rows(exec_result(&body, 0)), vec![vec![json!(4)]]);
    assert!(body["baton"].is_null());

    // After close, the baton that closed the stream names a closed stream.
    let (status, body) = pipeline(server.addr, Some(&b2), json!([execute("SELECT 5")])).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["code"], "STREAM_CLOSED");

    // The same on a cursor.
    let (status, lines) = cursor(
        server.addr,
        Some(&b2),
        json!({"steps": [{"stmt": stmt("SELECT 1")}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(lines[0]["code"], "STREAM_CLOSED");
    let (status, lines) = cursor(server.addr, Some("garbage"), json!({"steps": []})).await;
    assert_eq!(status, 400);
    assert_eq!(lines[0]["code"], "BATON_INVALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_expire_and_lose_only_their_transaction() {
    let server = TestServer::start_with(|c| {
        c.stream_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut setup = Stream::new(server.addr);
    setup.ok("CREATE TABLE t(x INTEGER)").await;

    // A stateless stream and a stream inside a transaction both go idle.
    let mut stateless = Stream::new(server.addr);
    stateless.ok("SELECT 1").await;
    let mut txn = Stream::new(server.addr);
    txn.ok("BEGIN").await;
    txn.ok("INSERT INTO t VALUES (1)").await;
    let txn_baton = txn.baton.clone();

    tokio::time::sleep(Duration::from_millis(2000)).await;

    // The stateless baton still works (the stream resumes transparently).
    let r = stateless.ok("SELECT 42").await;
    assert_eq!(rows(&r), vec![vec![json!(42)]]);

    // The transaction's stream expired, and says its transaction was rolled back.
    let (status, body) = pipeline(
        server.addr,
        txn_baton.as_deref(),
        json!([execute("INSERT INTO t VALUES (2)"), execute("COMMIT")]),
    )
    .await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["code"], "STREAM_EXPIRED");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("transaction") && msg.contains("rolled back"),
        "{msg}"
    );
    // Its rows are not there, and the write lock is free.
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 0);
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        query(server.addr, "INSERT INTO t VALUES (3)"),
    )
    .await
    .expect("another writer gets the lock at once");
    assert_eq!(r["affected_row_count"], 1);
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_baton_used_twice_at_once_serves_exactly_one() {
    let server = TestServer::start().await;
    // The first request of a stream may omit the baton key entirely (Node does).
    let r = post_json(
        server.addr,
        "/v2/pipeline",
        &json!({"requests": [execute("CREATE TABLE t(x)")]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let baton = r.json()["baton"].as_str().unwrap().to_owned();
    let send = |b: String| {
        let addr = server.addr;
        tokio::spawn(async move {
            pipeline(addr, Some(&b), json!([execute("INSERT INTO t VALUES (1)")])).await
        })
    };
    let (a, b) = (send(baton.clone()), send(baton.clone()));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{a:?} {b:?}");
    let refused = if a.0 == 400 { &a.1 } else { &b.1 };
    assert_eq!(refused["code"], "BATON_REUSED");
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);
}
