//! Bad input and misbehaving clients: malformed bodies, wrong value types, oversized requests
//! and responses, clients that hang up mid-request or mid-response. The server answers with a
//! clear JSON error, keeps serving, and loses no data.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn assert_json_error(r: &Resp, status: u16, what: &str) -> serde_json::Value {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/json"),
        "{what}: content type"
    );
    let body = r.json();
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: {body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_with_json() {
    let server = TestServer::start().await;
    let exec = |args: serde_json::Value| {
        json!({"requests": [{"type": "execute", "stmt": {"sql": "SELECT ?", "args": args}}]})
            .to_string()
    };
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", Vec::new()),
        ("malformed JSON", b"{\"requests\": [".to_vec()),
        ("not JSON", b"SELECT 1".to_vec()),
        ("binary", vec![0xff, 0xfe, 0x00, 0x01]),
        ("JSON array", b"[1, 2]".to_vec()),
        ("JSON string", b"\"hello\"".to_vec()),
        ("missing requests", b"{\"baton\": null}".to_vec()),
        ("requests not an array", b"{\"requests\": {}}".to_vec()),
        ("integer value not a number", exec(json!([{"type": "integer", "value": "x"}])).into_bytes()),
        ("integer value out of range", exec(json!([{"type": "integer", "value": "9223372036854775808"}])).into_bytes()),
        ("text value a number", exec(json!([{"type": "text", "value": 5}])).into_bytes()),
        ("float value a string", exec(json!([{"type": "float", "value": "abc"}])).into_bytes()),
        ("blob not base64", exec(json!([{"type": "blob", "base64": "!!!"}])).into_bytes()),
        ("unknown value type", exec(json!([{"type": "decimal", "value": "1"}])).into_bytes()),
        ("value without type", exec(json!([{"value": "1"}])).into_bytes()),
        ("value not an object", exec(json!([1])).into_bytes()),
        ("unknown request type", br#"{"requests": [{"type": "explode"}]}"#.to_vec()),
        ("request without type", br#"{"requests": [{"stmt": {"sql": "SELECT 1"}}]}"#.to_vec()),
        ("execute without stmt", br#"{"requests": [{"type": "execute"}]}"#.to_vec()),
        ("store_sql without sql", br#"{"requests": [{"type": "store_sql", "sql_id": 1}]}"#.to_vec()),
        ("bad condition", br#"{"requests": [{"type": "batch", "batch": {"steps": [{"condition": {"type": "maybe"}, "stmt": {"sql": "SELECT 1"}}]}}]}"#.to_vec()),
        ("baton not a string", br#"{"baton": 5, "requests": []}"#.to_vec()),
    ];
    for path in ["/v2/pipeline", "/v3/pipeline"] {
        for (what, body) in &bodies {
            let r = post_raw(server.addr, path, body.clone()).await;
            assert_json_error(&r, 400, &format!("{path} {what}"));
        }
    }
    for (path, body) in [
        ("/v3/cursor", &b""[..]),
        ("/v3/cursor", br#"{"baton": null}"#),
        ("/v3/cursor", br#"{"batch": {"steps": [{"stmt": {"sql": "SELECT ?", "args": [{"type": "integer", "value": "x"}]}}]}}"#),
        ("/v1/execute", b""),
        ("/v1/execute", br#"{"stmt": {"sql": 5}}"#),
        ("/v1/execute", br#"{"stmt": {"sql": "SELECT ?", "args": [{"type": "integer", "value": "x"}]}}"#),
        ("/v1/batch", br#"{"batch": 1}"#),
        ("/", b"{"),
        ("/", br#"{"statements": [5]}"#),
        ("/", br#"{"statements": [{"q": "SELECT ?", "params": [[1]]}]}"#),
    ] {
        let r = post_raw(server.addr, path, body.to_vec()).await;
        assert_json_error(&r, 400, &format!("{path} {}", String::from_utf8_lossy(body)));
    }
    // A valid request with no statement text at all is a per-request error, not a crash.
    let (status, body) = pipeline(
        server.addr,
        None,
        json!([{"type": "execute", "stmt": {}}, {"type": "execute", "stmt": {"sql": ""}}, execute("SELECT 1")]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert!(err_at(&body, 0)["message"].is_string());
    assert_eq!(err_at(&body, 1)["code"], "SQL_NO_STATEMENT");
    assert_eq!(rows(exec_result(&body, 2)), vec![vec![json!(1)]]);
    // Blank text in every shape, on every endpoint that runs single statements.
    for blank in ["", "   ", ";", " ; ;", "-- only a comment", "/* block */ ;"] {
        let (status, body) = pipeline(server.addr, None, json!([execute(blank)])).await;
        assert_eq!(status, 200, "{blank:?}: {body:#}");
        assert_eq!(err_at(&body, 0)["code"], "SQL_NO_STATEMENT", "{blank:?}");
        let (status, lines) =
            cursor(server.addr, None, json!({"steps": [{"stmt": stmt(blank)}]})).await;
        assert_eq!(status, 200);
        assert_eq!(lines[1]["type"], "step_error", "{blank:?}: {lines:?}");
        let r = post_json(server.addr, "/v1/execute", &json!({"stmt": {"sql": blank}})).await;
        assert_json_error(&r, 400, &format!("v1 execute {blank:?}"));
        let r = post_json(server.addr, "/", &json!({"statements": [blank]})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.json()[0]["error"].is_string(), "{}", r.text());
        let (status, body) = pipeline(
            server.addr,
            None,
            json!([{"type": "describe", "sql": blank}, {"type": "sequence", "sql": blank}]),
        )
        .await;
        assert_eq!(status, 200, "{blank:?}: {body:#}");
        ok_at(&body, 1);
    }
    // The server keeps serving.
    assert_eq!(scalar_i64(server.addr, "SELECT 7").await, 7);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_gets_413_and_oversized_response_an_error() {
    let server = TestServer::start_with(|c| {
        c.max_body_bytes = 1024 * 1024;
        c.engine.max_response_bytes = 64 * 1024;
    })
    .await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE t(x)").await;

    // A 2 MiB body.
    let big = "x".repeat(2 * 1024 * 1024);
    let body = json!({"requests": [execute_args("INSERT INTO t VALUES (?)", json!([text(&big)]))]});
    let r = post_json(server.addr, "/v3/pipeline", &body).await;
    assert_json_error(&r, 413, "2 MiB pipeline");
    let r = post_json(
        server.addr,
        "/v1/execute",
        &json!({"stmt": {"sql": "SELECT ?", "args": [text(&big)]}}),
    )
    .await;
    assert_json_error(&r, 413, "2 MiB v1 execute");
    // Just under the limit is fine.
    let ok = "y".repeat(1000 * 1024);
    s.exec_args("INSERT INTO t VALUES (?)", json!([text(&ok)]))
        .await
        .expect("a body under the limit is accepted");

    // A response over the limit: a per-request error, the pipeline itself succeeds.
    let body = s
        .send(json!([
            execute("SELECT length(x) FROM t"),
            execute("SELECT x FROM t"),
        ]))
        .await;
    assert_eq!(rows(exec_result(&body, 0)), vec![vec![json!(1000 * 1024)]]);
    let e = err_at(&body, 1);
    assert_eq!(e["code"], "RESPONSE_TOO_LARGE", "{e}");
    let body = s
        .send(json!([execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000) SELECT i FROM c")]))
        .await;
    assert_eq!(err_at(&body, 0)["code"], "RESPONSE_TOO_LARGE");
    // A cursor limits one row, not the whole result.
    let (status, lines) = cursor(
        server.addr,
        None,
        json!({"steps": [
            {"stmt": stmt("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) SELECT i FROM c")},
            {"stmt": stmt("SELECT x FROM t")},
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(lines.iter().filter(|l| l["type"] == "row").count(), 20000);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "step_error", "{last}");
    assert_eq!(last["error"]["code"], "RESPONSE_TOO_LARGE");
    // v1 execute: an HTTP 400 with the same code.
    let r = post_json(
        server.addr,
        "/v1/execute",
        &json!({"stmt": {"sql": "SELECT x FROM t"}}),
    )
    .await;
    let e = assert_json_error(&r, 400, "v1 too large");
    assert_eq!(e["code"], "RESPONSE_TOO_LARGE");
    // The stream and the server keep working.
    assert_eq!(
        rows(&s.ok("SELECT count(*) FROM t").await),
        vec![vec![json!(1)]]
    );
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);
    assert_eq!(server_panics(), 0);
}

async fn raw_connect(addr: SocketAddr) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_hang_up_do_not_hurt_the_server() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE t(id INTEGER PRIMARY KEY, pad TEXT)")
        .await;
    s.ok(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000) \
          INSERT INTO t SELECT i, printf('%0500d', i) FROM c",
    )
    .await;

    // 1. Half a request: the headers promise more body than is sent, then the client leaves.
    for _ in 0..5 {
        let mut c = raw_connect(server.addr).await;
        let body = br#"{"requests": [{"type": "execute", "stmt": {"sql": "INSERT INTO t(pad) VALUES ('half')"}}]}"#;
        let head = format!(
            "POST /v3/pipeline HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len() + 100
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&body[..]).await.unwrap();
        drop(c);
        // Only the headers.
        let mut c = raw_connect(server.addr).await;
        c.write_all(b"POST /v2/pipeline HTTP/1.1\r\nhost: x\r\ncontent-le")
            .await
            .unwrap();
        drop(c);
    }

    // 2. Hang up while a large response is being sent: a cursor and a pipeline, each
    // producing ~10 MB, read a little and dropped.
    let big_select =
        "SELECT a.id, a.pad FROM t a, (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                      UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                      UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10)";
    for (path, body) in [
        (
            "/v3/cursor",
            json!({"batch": {"steps": [{"stmt": stmt(big_select)}]}}),
        ),
        ("/v3/pipeline", json!({"requests": [execute(big_select)]})),
    ] {
        for _ in 0..3 {
            let mut c = raw_connect(server.addr).await;
            let body = body.to_string();
            let req = format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            c.write_all(req.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 16 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf))
                .await
                .expect("the response starts")
                .unwrap();
            assert!(n > 0);
            assert!(
                buf.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&buf[..n])
            );
            drop(c);
        }
    }

    // After all that, writers still get the lock, nothing half-sent ran, and the data is intact.
    for i in 0..20 {
        let r = query(
            server.addr,
            &format!("INSERT INTO t(pad) VALUES ('after {i}')"),
        )
        .await;
        assert_eq!(r["affected_row_count"], 1);
    }
    assert_eq!(
        scalar_i64(server.addr, "SELECT count(*) FROM t").await,
        2020
    );
    assert_eq!(
        scalar_i64(server.addr, "SELECT count(*) FROM t WHERE pad = 'half'").await,
        0
    );
    let check = query(server.addr, "PRAGMA integrity_check").await;
    assert_eq!(rows(&check), vec![vec![json!("ok")]]);
    // The large query still works end to end for a patient client.
    let (status, lines) = cursor(
        server.addr,
        None,
        json!({"steps": [{"stmt": stmt(big_select)}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(lines.iter().filter(|l| l["type"] == "row").count(), 20200);
    assert_eq!(server_panics(), 0);
}
