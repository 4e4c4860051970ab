//! What SQL may do to the server, as a client sees it: runaway statements stop at the statement
//! timeout and never keep others from being answered, huge values fail with SQLITE_TOOBIG
//! before they are built, a process-wide pragma cannot be set, not even through `describe`, and
//! a read-only token cannot write through maintenance statements or full-text commands.

use crate::auth_common;
use crate::common;

use std::time::{Duration, Instant};

use auth_common::*;
use common::*;
use serde_json::json;

/// Never ends on its own.
const RUNAWAY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_statements_stop_at_the_timeout_and_others_are_still_answered() {
    let server = TestServer::start_with(|c| {
        c.engine.statement_timeout = Duration::from_secs(6);
    })
    .await;
    let addr = server.addr;
    // More runaway statements than the pool has core workers (at least 4).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runaways: Vec<_> = (0..(cores * 2).max(4) + 2)
        .map(|_| {
            tokio::spawn(async move {
                let (status, body) = pipeline(addr, None, json!([execute(RUNAWAY), close()])).await;
                (status, body, Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let one = tokio::time::timeout(Duration::from_secs(5), scalar_i64(addr, "SELECT 1"))
        .await
        .expect("SELECT 1 is answered while the runaway statements run");
    assert_eq!(one, 1);
    let answered = Instant::now();
    for task in runaways {
        let (status, body, ended) = task.await.unwrap();
        assert_eq!(status, 200, "{body:#}");
        let error = err_at(&body, 0);
        assert_eq!(error["code"], "STATEMENT_TIMEOUT", "{body:#}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("--statement-timeout"),
            "{error:#}"
        );
        assert!(ended > answered, "SELECT 1 waited for a runaway statement");
    }
    assert!(answered > asked);
    // The server goes on normally.
    let mut s = Stream::new(addr);
    s.ok("CREATE TABLE t(a)").await;
    s.ok("INSERT INTO t VALUES (1)").await;
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_statement_in_a_sequence_stops_too() {
    let server = TestServer::start_with(|c| {
        c.engine.statement_timeout = Duration::from_secs(1);
    })
    .await;
    let mut s = Stream::new(server.addr);
    let body = s
        .send(json!([{"type": "sequence", "sql": format!("SELECT 1; {RUNAWAY}; SELECT 2")}]))
        .await;
    assert_eq!(err_at(&body, 0)["code"], "STATEMENT_TIMEOUT", "{body:#}");
    assert_eq!(s.ok("SELECT 3").await["rows"][0][0]["value"], "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_values_fail_with_toobig_and_the_server_is_fine() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    for sql in [
        "SELECT zeroblob(2000000000)",
        "SELECT randomblob(2000000000)",
        "SELECT length(replace(printf('%.*c', 20000000, 'x'), 'x', 'xxxxxxxxxx'))",
    ] {
        let msg = s.fails(sql, "SQLITE_TOOBIG").await;
        assert!(msg.contains("--max-response-size"), "{msg}");
    }
    // printf() stops at the limit instead of building two gigabytes.
    let r = s.ok("SELECT printf('%.*c', 2000000000, 'x') IS NULL").await;
    assert_eq!(r["rows"][0][0]["value"], "1");
    assert_eq!(scalar_i64(server.addr, "SELECT 42").await, 42);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cannot_set_a_process_wide_pragma() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    for sql in [
        "PRAGMA hard_heap_limit=100000",
        "PRAGMA soft_heap_limit=100000",
        "PRAGMA threads=8",
    ] {
        let body = s.send(json!([{"type": "describe", "sql": sql}])).await;
        let error = err_at(&body, 0);
        assert_eq!(error["code"], "SQLITE_AUTH", "{body:#}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("server process"),
            "{error:#}"
        );
        s.fails(sql, "SQLITE_AUTH").await;
    }
    // Every statement on every database still has its memory.
    s.ok("CREATE TABLE t(a)").await;
    s.ok(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000) \
         INSERT INTO t SELECT zeroblob(1000) FROM c",
    )
    .await;
    assert_eq!(
        scalar_i64(server.addr, "SELECT count(*) FROM t").await,
        2000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_cannot_write_through_maintenance_or_full_text_commands() {
    let s = AuthServer::start().await;
    let rw = bearer(&s.token(&["app"], false));
    let ro = bearer(&s.token(&["app"], true));
    for sql in [
        "CREATE INDEX t_x ON t(x)",
        "CREATE VIRTUAL TABLE f3 USING fts3(body)",
        "CREATE VIRTUAL TABLE f5 USING fts5(body)",
        "INSERT INTO f3(body) VALUES ('one'), ('two')",
        "INSERT INTO f3(body) VALUES ('three')",
        "INSERT INTO f5(body) VALUES ('one'), ('two')",
        "INSERT INTO f5(body) VALUES ('three')",
        // Warms the pooled connections' internal FTS statements.
        "SELECT optimize(f3) FROM f3 LIMIT 1",
        "INSERT INTO f3(body) VALUES ('four')",
    ] {
        let o = run_sql(s.addr(), Ep::V3, Some("app"), Some(&rw), sql).await;
        assert!(matches!(o, Outcome::Rows(_)), "{sql}: {o:?}");
    }
    let path = s.data_dir().join("app").join("data.db");
    let observer = rusqlite::Connection::open(&path).unwrap();
    let version = || -> i64 {
        observer
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let before = version();
    for ep in [Ep::V3, Ep::V2, Ep::Cursor, Ep::V1Execute] {
        for sql in [
            "REINDEX",
            "REINDEX t",
            "ANALYZE",
            "PRAGMA optimize(0x10002)",
            "PRAGMA incremental_vacuum",
            "SELECT optimize(f3) FROM f3 LIMIT 1",
            "INSERT INTO f3(f3) VALUES ('optimize')",
            "INSERT INTO f5(f5) VALUES ('optimize')",
            "INSERT INTO f5(f5) VALUES ('rebuild')",
            "INSERT INTO f5(f5, rank) VALUES ('merge', 1)",
        ] {
            let o = run_sql(s.addr(), ep, Some("app"), Some(&ro), sql).await;
            assert!(
                matches!(o, Outcome::SqlError { .. }),
                "{ep:?} {sql} ran with a read-only token: {o:?}"
            );
            assert_eq!(version(), before, "{ep:?} {sql} changed the database");
        }
    }
    let o = run_sql(
        s.addr(),
        Ep::V3,
        Some("app"),
        Some(&ro),
        "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'",
    )
    .await;
    assert_eq!(o.rows(), &vec![vec![json!(0)]]);
    assert_eq!(server_panics(), 0);
}
