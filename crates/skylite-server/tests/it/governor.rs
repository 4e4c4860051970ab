//! The resource governor of both transports, seen from clients: stalled consumers (an HTTP
//! cursor nobody reads, a WebSocket that stops reading) lose the write lock at the transaction
//! timeout; byte budgets (stored SQL, errors in batches); the WebSocket `hello` deadline;
//! batons bound to the token that opened the stream and usable by exactly one request; the cap
//! on live HTTP streams per token.

use crate::auth_common;
use crate::common;

use std::time::{Duration, Instant};

use auth_common::{bearer, http_error, WsClient};
use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use skylite_proto::ws::{ClientMsg, Request};
use skylite_proto::Stmt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const TXN_TIMEOUT: Duration = Duration::from_secs(1);

/// A server whose transaction timeout is 1 s, with a table `t(x)`.
async fn server_with(tweak: impl FnOnce(&mut skylite_server::ServerConfig)) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.engine.txn_timeout = TXN_TIMEOUT;
        tweak(c);
    })
    .await;
    let (status, body) = pipeline(server.addr, None, json!([execute("CREATE TABLE t(x)")])).await;
    assert_eq!(status, 200, "{body}");
    server
}

/// A result far larger than every buffer between the server and a client that does not read:
/// about 100 MB of JSON.
const BIG_SELECT: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                          WHERE x < 25000) SELECT x, randomblob(3000) FROM c";

/// Sends a raw HTTP/1.1 POST and returns the socket, unread.
async fn raw_post(addr: std::net::SocketAddr, path: &str, body: &Value) -> tokio::net::TcpStream {
    let body = serde_json::to_vec(body).unwrap();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body).await.unwrap();
    sock
}

/// Another client writes; it must succeed within the transaction timeout plus one second.
async fn writer_gets_through(addr: std::net::SocketAddr) {
    let started = Instant::now();
    let (status, body) = pipeline(addr, None, json!([execute("INSERT INTO t VALUES (42)")])).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["type"], "ok",
        "the writer must get the lock: {body}"
    );
    assert!(
        took < TXN_TIMEOUT + Duration::from_secs(1),
        "the writer waited {took:?}, more than the transaction timeout + 1 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http_cursor_with_begin_immediate_loses_the_write_lock() {
    let server = server_with(|_| {}).await;
    let batch = json!({"steps": [{"stmt": stmt("BEGIN IMMEDIATE")}, {"stmt": stmt(BIG_SELECT)}]});
    // The client sends its cursor request and never reads the answer.
    let _stalled = raw_post(
        server.addr,
        "/v3/cursor",
        &json!({"baton": null, "batch": batch}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    writer_gets_through(server.addr).await;
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_whose_reader_stalls_is_ended_and_its_stream_reports_the_loss() {
    // No writer waits here: the send timeout alone ends the cursor.
    let server = server_with(|c| c.send_timeout = Duration::from_millis(500)).await;
    let batch = json!({"steps": [{"stmt": stmt("BEGIN")}, {"stmt": stmt(BIG_SELECT)}]});
    let mut sock = raw_post(
        server.addr,
        "/v3/cursor",
        &json!({"baton": null, "batch": batch}),
    )
    .await;
    // Read the head (status line, headers and the baton line), then stop reading.
    let mut head = vec![0u8; 4096];
    let mut got = 0;
    let baton = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut head[got..]))
            .await
            .expect("the cursor head within 10 s")
            .unwrap();
        assert!(n > 0, "connection closed early");
        got += n;
        let text = String::from_utf8_lossy(&head[..got]).into_owned();
        if let Some(line) = text.lines().find(|l| l.starts_with("{\"baton\"")) {
            let v: Value = serde_json::from_str(line).unwrap();
            break v["baton"].as_str().unwrap().to_owned();
        }
        assert!(got < head.len(), "no baton line in {text:?}");
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The stream's transaction was rolled back: the next request on it is told so.
    let (status, body) = pipeline(server.addr, Some(&baton), json!([execute("SELECT 1")])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        err_at(&body, 0)["code"],
        "TRANSACTION_TIMEOUT",
        "the stalled cursor's transaction must be reported lost: {body}"
    );
    drop(sock);
    assert_eq!(scalar_i64(server.addr, "SELECT 7").await, 7);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_client_that_stops_reading_loses_the_write_lock() {
    let server = server_with(|_| {}).await;
    let mut req = format!("ws://{}/", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("hrana3"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let send = |msg: ClientMsg| Message::Text(serde_json::to_string(&msg).unwrap().into());
    let mut frames = vec![
        send(ClientMsg::Hello { jwt: None }),
        send(ClientMsg::Request {
            request_id: 1,
            request: Request::OpenStream { stream_id: 1 },
        }),
        send(ClientMsg::Request {
            request_id: 2,
            request: Request::Execute {
                stream_id: 1,
                stmt: Stmt::new("BEGIN IMMEDIATE"),
            },
        }),
    ];
    for i in 0..40 {
        frames.push(send(ClientMsg::Request {
            request_id: 3 + i,
            request: Request::Execute {
                stream_id: 1,
                stmt: Stmt::new("SELECT randomblob(2000000)"),
            },
        }));
    }
    // Send everything, never read a response; give the server time to fill every buffer up
    // to the stream task, which then waits to hand over its next response.
    for frame in frames {
        ws.send(frame).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    writer_gets_through(server.addr).await;
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);
    drop(ws);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_that_stops_reading_is_closed_after_the_send_timeout() {
    let server = server_with(|c| c.send_timeout = Duration::from_millis(500)).await;
    let mut req = format!("ws://{}/", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("hrana3"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let text = |msg: ClientMsg| Message::Text(serde_json::to_string(&msg).unwrap().into());
    ws.send(text(ClientMsg::Hello { jwt: None })).await.unwrap();
    ws.send(text(ClientMsg::Request {
        request_id: 1,
        request: Request::OpenStream { stream_id: 1 },
    }))
    .await
    .unwrap();
    // About 35 MB of answers in messages of 340 KB (each may take the send timeout plus the
    // time to drain it at the slowest rate allowed).
    for i in 0..100 {
        ws.send(text(ClientMsg::Request {
            request_id: 2 + i,
            request: Request::Execute {
                stream_id: 1,
                stmt: Stmt::new("SELECT randomblob(250000)"),
            },
        }))
        .await
        .unwrap();
    }
    // The server gives up on the socket and closes it; its count on the database drops.
    let db = server.app.databases.default_db().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.websockets() > 0 {
        assert!(
            Instant::now() < deadline,
            "a socket that does not drain must be closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scalar_i64(server.addr, "SELECT 5").await, 5);
    drop(ws);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_without_hello_is_closed_with_1008() {
    let server = server_with(|c| c.ws_hello_timeout = Duration::from_millis(300)).await;
    let mut c = WsClient::connect(server.addr, "/", "hrana3").await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("hello"), "{reason}");
    // A client that says hello in time is served.
    let mut ok = WsClient::connect(server.addr, "/", "hrana3").await;
    ok.hello(None).await;
    ok.ok(1, Request::OpenStream { stream_id: 1 }).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ok.query(2, 1, "SELECT 3").await, vec![vec![json!(3)]]);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_sql_is_capped_in_bytes() {
    let server = server_with(|_| {}).await;
    let big = format!("SELECT '{}'", "x".repeat(1024 * 1024));
    // WebSocket: one store per socket.
    let mut c = WsClient::connect(server.addr, "/", "hrana3").await;
    c.hello(None).await;
    for id in 0..3 {
        c.ok(
            id + 1,
            Request::StoreSql {
                sql_id: id,
                sql: big.clone(),
            },
        )
        .await;
    }
    let err = c
        .err(
            10,
            Request::StoreSql {
                sql_id: 3,
                sql: format!("{big}{big}"),
            },
        )
        .await;
    assert_eq!(err.code.as_deref(), Some("PROTOCOL_ERROR"), "{err:?}");
    assert!(err.message.contains("bytes"), "{err:?}");
    // Closing one frees its bytes.
    c.ok(11, Request::CloseSql { sql_id: 0 }).await;
    c.ok(
        12,
        Request::StoreSql {
            sql_id: 3,
            sql: big.clone(),
        },
    )
    .await;
    c.ok(13, Request::OpenStream { stream_id: 1 }).await;
    assert_eq!(c.query(14, 1, "SELECT 1").await, vec![vec![json!(1)]]);

    // HTTP: one store per stream.
    let store = |id: i32, sql: &str| json!({"type": "store_sql", "sql_id": id, "sql": sql});
    let (status, body) = pipeline(
        server.addr,
        None,
        json!([
            store(1, &big),
            store(2, &big),
            store(3, &big),
            store(4, &format!("{big}{big}")),
            {"type": "execute", "stmt": {"sql_id": 1}}
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][2]["type"], "ok", "{body}");
    assert_eq!(err_at(&body, 3)["code"], "PROTOCOL_ERROR", "{body}");
    assert_eq!(body["results"][4]["type"], "ok", "{body}");
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_a_batch_are_charged_to_the_response_budget() {
    let server = server_with(|c| c.engine.max_response_bytes = 64 * 1024).await;
    // Each step fails with an error that echoes a 2 KiB name: 200 of them would be 400 KiB.
    let name = "n".repeat(2048);
    let steps: Vec<Value> = (0..200)
        .map(|_| json!({"stmt": stmt(&format!("SELECT * FROM \"{name}\""))}))
        .collect();
    let (status, body) = pipeline(
        server.addr,
        None,
        json!([{"type": "batch", "batch": {"steps": steps}}]),
    )
    .await;
    assert_eq!(status, 200);
    let errors = body["results"][0]["response"]["result"]["step_errors"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(errors.len(), 200);
    assert!(errors[0]["message"].as_str().unwrap().contains(&name));
    assert_eq!(errors[199]["code"], "RESPONSE_TOO_LARGE", "{}", errors[199]);
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(size < 128 * 1024, "the response is {size} bytes");
    assert_eq!(scalar_i64(server.addr, "SELECT 9").await, 9);
}

fn baton_of(body: &Value) -> String {
    body["baton"]
        .as_str()
        .unwrap_or_else(|| panic!("no baton: {body}"))
        .to_owned()
}

async fn pipeline_as(
    addr: std::net::SocketAddr,
    token: &str,
    baton: Option<&str>,
    requests: Value,
) -> Resp {
    request_with(
        addr,
        "POST",
        "/db/app/v3/pipeline",
        &[("authorization", &bearer(token))],
        Some(serde_json::to_vec(&json!({"baton": baton, "requests": requests})).unwrap()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baton_works_only_with_the_token_that_opened_the_stream() {
    let s = auth_common::AuthServer::start().await;
    // Two tokens with the same rights on `app`.
    let alice = s.token(&["app"], false);
    let bob = s.token(&["app", "other"], false);
    assert_ne!(alice, bob);
    let r = pipeline_as(
        s.addr(),
        &alice,
        None,
        json!([execute("BEGIN"), execute("INSERT INTO t VALUES (3)")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let baton = baton_of(&r.json());
    // Bob cannot continue Alice's transaction.
    let r = pipeline_as(s.addr(), &bob, Some(&baton), json!([execute("COMMIT")])).await;
    let (status, code, _) = http_error(&r);
    assert_eq!((status, code.as_str()), (400, "BATON_INVALID"));
    // Alice can, with the same baton (the refused attempt did not use it up).
    let r = pipeline_as(
        s.addr(),
        &alice,
        Some(&baton),
        json!([execute("COMMIT"), close()]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["type"], "ok");
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_with_one_baton_never_both_run() {
    let server = server_with(|c| c.stream_idle_timeout = Duration::from_millis(300)).await;
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
                SELECT count(*) FROM c";
    let race = |baton: String| {
        let addr = server.addr;
        async move {
            let a = pipeline(addr, Some(&baton), json!([execute(slow)]));
            let b = pipeline(addr, Some(&baton), json!([execute(slow)]));
            let ((sa, ba), (sb, bb)) = tokio::join!(a, b);
            let mut outcomes = vec![(sa, ba), (sb, bb)];
            outcomes.sort_by_key(|(s, _)| *s);
            assert_eq!(outcomes[0].0, 200, "{:?}", outcomes);
            assert_eq!(outcomes[1].0, 400, "exactly one may run: {:?}", outcomes);
            assert_eq!(outcomes[1].1["code"], "BATON_REUSED", "{:?}", outcomes);
        }
    };
    // A live stream.
    let (_, body) = pipeline(server.addr, None, json!([execute("SELECT 1")])).await;
    race(baton_of(&body)).await;
    // A stream that expired without state: its baton resumes it, once.
    let (_, body) = pipeline(server.addr, None, json!([execute("SELECT 1")])).await;
    let baton = baton_of(&body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let db = server.app.databases.default_db().unwrap();
    while !db.streams().is_empty() {
        assert!(Instant::now() < deadline, "streams must expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    race(baton).await;
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_http_streams_are_capped_per_token() {
    let s = auth_common::AuthServer::start_with(|c| c.max_streams_per_principal = 2).await;
    let alice = s.token(&["app"], false);
    let bob = s.token(&["app", "other"], false);
    let mut batons = Vec::new();
    for _ in 0..2 {
        let r = pipeline_as(s.addr(), &alice, None, json!([execute("SELECT 1")])).await;
        assert_eq!(r.status, 200, "{}", r.text());
        batons.push(baton_of(&r.json()));
    }
    let r = pipeline_as(s.addr(), &alice, None, json!([execute("SELECT 1")])).await;
    let (status, code, message) = http_error(&r);
    assert_eq!(
        (status, code.as_str()),
        (429, "STREAMS_EXHAUSTED"),
        "{message}"
    );
    // A one-shot pipeline (it closes its stream) leaves nothing behind, so it is not refused.
    let r = pipeline_as(
        s.addr(),
        &alice,
        None,
        json!([execute("SELECT 5"), close()]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Other tokens are not affected.
    let r = pipeline_as(s.addr(), &bob, None, json!([execute("SELECT 2")])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The existing streams go on, and closing one frees a slot.
    let r = pipeline_as(s.addr(), &alice, Some(&batons[0]), json!([close()])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = pipeline_as(
        s.addr(),
        &alice,
        None,
        json!([execute("SELECT 3"), close()]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = pipeline_as(
        s.addr(),
        &alice,
        Some(&batons[1]),
        json!([execute("SELECT 4")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_cursor_early_keeps_the_transaction() {
    let server = server_with(|_| {}).await;
    let mut c = WsClient::connect(server.addr, "/", "hrana3").await;
    c.hello(None).await;
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    c.query(2, 1, "BEGIN").await;
    c.query(3, 1, "INSERT INTO t VALUES (1)").await;
    let batch = skylite_proto::Batch {
        steps: vec![skylite_proto::BatchStep {
            condition: None,
            stmt: Stmt::new(BIG_SELECT),
        }],
    };
    c.ok(
        4,
        Request::OpenCursor {
            stream_id: 1,
            cursor_id: 1,
            batch,
        },
    )
    .await;
    c.ok(
        5,
        Request::FetchCursor {
            cursor_id: 1,
            max_count: 3,
        },
    )
    .await;
    c.ok(6, Request::CloseCursor { cursor_id: 1 }).await;
    // The batch stopped because the client closed the cursor, not because it stalled: the
    // transaction goes on.
    c.query(7, 1, "COMMIT").await;
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_stops_reading_when_queued_requests_reach_their_byte_budget() {
    use futures_util::StreamExt;
    // Queued requests may hold 2 × the body limit: 128 KiB here.
    let server = server_with(|c| {
        c.max_body_bytes = 64 * 1024;
        c.engine.txn_timeout = Duration::from_secs(8);
    })
    .await;
    // Another client holds the write lock, so the socket's stream waits and its queue fills.
    let (status, body) = pipeline(server.addr, None, json!([execute("BEGIN IMMEDIATE")])).await;
    assert_eq!(status, 200, "{body}");
    let holder = baton_of(&body);

    let mut req = format!("ws://{}/", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("hrana3"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let text = |msg: ClientMsg| Message::Text(serde_json::to_string(&msg).unwrap().into());
    let request = |request_id: i32, request: Request| {
        text(ClientMsg::Request {
            request_id,
            request,
        })
    };
    let exec = |id: i32, sql: &str| {
        request(
            id,
            Request::Execute {
                stream_id: 1,
                stmt: Stmt::new(sql),
            },
        )
    };
    ws.send(text(ClientMsg::Hello { jwt: None })).await.unwrap();
    ws.send(request(1, Request::OpenStream { stream_id: 1 }))
        .await
        .unwrap();
    ws.send(exec(2, "INSERT INTO t VALUES (1)")).await.unwrap();
    let filler = format!("SELECT '{}'", "f".repeat(60 * 1024));
    for id in 3..13 {
        ws.send(exec(id, &filler)).await.unwrap();
    }
    // A connection-level request after them: answered at once if the socket were still read.
    ws.send(request(
        100,
        Request::StoreSql {
            sql_id: 1,
            sql: "SELECT 1".into(),
        },
    ))
    .await
    .unwrap();
    let mut answered = Vec::new();
    let quiet = Instant::now() + Duration::from_secs(1);
    while let Ok(Some(frame)) = tokio::time::timeout_at(quiet.into(), ws.next()).await {
        if let Message::Text(t) = frame.unwrap() {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            answered.push(v["request_id"].clone());
        }
    }
    assert!(
        !answered.contains(&json!(100)),
        "the socket must not be read past the queued-bytes budget: {answered:?}"
    );
    // The lock holder commits: the queue drains, the socket is read again, all are answered.
    let (status, body) = pipeline(server.addr, Some(&holder), json!([execute("COMMIT")])).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !answered.contains(&json!(100)) {
        let frame = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .expect("every request is answered once the lock is free")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(v["type"], "response_error", "{v}");
            answered.push(v["request_id"].clone());
        }
    }
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM t").await, 1);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_cursor_never_fetched_loses_the_write_lock() {
    let server = server_with(|_| {}).await;
    let mut c = WsClient::connect(server.addr, "/", "hrana3").await;
    c.hello(None).await;
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    let batch = skylite_proto::Batch {
        steps: vec![
            skylite_proto::BatchStep {
                condition: None,
                stmt: Stmt::new("BEGIN IMMEDIATE"),
            },
            skylite_proto::BatchStep {
                condition: None,
                stmt: Stmt::new(BIG_SELECT),
            },
        ],
    };
    c.ok(
        2,
        Request::OpenCursor {
            stream_id: 1,
            cursor_id: 1,
            batch,
        },
    )
    .await;
    // The client never fetches; the batch fills the cursor's buffer and waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    writer_gets_through(server.addr).await;
    // The cursor ends with the reason, and the stream reports the lost transaction.
    let mut entries = Vec::new();
    for i in 0..1000 {
        match c
            .ok(
                10 + i,
                Request::FetchCursor {
                    cursor_id: 1,
                    max_count: 4096,
                },
            )
            .await
        {
            skylite_proto::ws::Response::FetchCursor { entries: got, done } => {
                entries.extend(got);
                if done {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    match entries.last() {
        Some(skylite_proto::CursorEntry::Error { error }) => {
            assert_eq!(
                error.code.as_deref(),
                Some("TRANSACTION_TIMEOUT"),
                "{error:?}"
            )
        }
        other => panic!("the cursor must end with TRANSACTION_TIMEOUT: {other:?}"),
    }
    c.ok(2000, Request::CloseCursor { cursor_id: 1 }).await;
    let err = c.err(2001, ws_exec_req(1, "SELECT 1")).await;
    assert_eq!(err.code.as_deref(), Some("TRANSACTION_TIMEOUT"), "{err:?}");
    assert_eq!(server_panics(), 0);
}

fn ws_exec_req(stream_id: i32, sql: &str) -> Request {
    Request::Execute {
        stream_id,
        stmt: Stmt::new(sql),
    }
}
