//! Hrana over WebSocket against an in-process server, with `tokio-tungstenite` as the client:
//! subprotocol negotiation, hello and re-hello, every request type (streams, stored SQL shared
//! by the streams of a socket, batches, sequences, describe, autocommit, cursors), per-stream
//! ordering, the close codes of protocol violations, a socket dropped inside a transaction, and
//! the same scenario over JSON and Protobuf giving the same results.

use crate::common;

use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use skylite_proto::protobuf;
use skylite_proto::ws::{ClientMsg, Request, Response, ServerMsg};
use skylite_proto::{Batch, BatchCond, BatchStep, CursorEntry, Stmt, StmtResult, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A Hrana WebSocket client.
struct Client {
    ws: Socket,
    /// The subprotocol the server chose (`None`: no header).
    proto: Option<String>,
}

impl Client {
    /// Connects offering `protos` (nothing offered when empty).
    async fn connect(server: &TestServer, protos: &[&str]) -> Client {
        Self::try_connect(server, protos)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    async fn try_connect(server: &TestServer, protos: &[&str]) -> Result<Client, String> {
        let mut req = format!("ws://{}/", server.addr)
            .into_client_request()
            .map_err(|e| e.to_string())?;
        if !protos.is_empty() {
            req.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(&protos.join(", ")).unwrap(),
            );
        }
        let (ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| e.to_string())?;
        let proto = resp
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(Client { ws, proto })
    }

    fn is_protobuf(&self) -> bool {
        self.proto.as_deref() == Some("hrana3-protobuf")
    }

    async fn send(&mut self, msg: ClientMsg) {
        let frame = if self.is_protobuf() {
            Message::Binary(protobuf::encode(msg).into())
        } else {
            Message::Text(serde_json::to_string(&msg).unwrap().into())
        };
        self.ws.send(frame).await.expect("send");
    }

    async fn recv(&mut self) -> ServerMsg {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("a message within 20 s")
                .expect("socket open")
                .expect("frame");
            return match frame {
                Message::Text(t) => {
                    assert!(!self.is_protobuf(), "text frame on protobuf");
                    serde_json::from_str(t.as_str()).expect("server JSON")
                }
                Message::Binary(b) => {
                    assert!(self.is_protobuf(), "binary frame on JSON");
                    protobuf::decode(&b).expect("server protobuf")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            };
        }
    }

    async fn hello(&mut self) {
        self.send(ClientMsg::Hello { jwt: None }).await;
        assert_eq!(self.recv().await, ServerMsg::HelloOk);
    }

    /// Sends one request and waits for its response (no other request may be in flight).
    async fn call(&mut self, request_id: i32, request: Request) -> ServerMsg {
        self.send(ClientMsg::Request {
            request_id,
            request,
        })
        .await;
        let msg = self.recv().await;
        assert_eq!(id_of(&msg), Some(request_id), "{msg:?}");
        msg
    }

    async fn ok(&mut self, request_id: i32, request: Request) -> Response {
        match self.call(request_id, request.clone()).await {
            ServerMsg::ResponseOk { response, .. } => response,
            other => panic!("{request:?} failed: {other:?}"),
        }
    }

    async fn err(&mut self, request_id: i32, request: Request) -> skylite_proto::Error {
        match self.call(request_id, request.clone()).await {
            ServerMsg::ResponseError { error, .. } => error,
            other => panic!("{request:?} should fail: {other:?}"),
        }
    }

    /// Waits for the server to close the socket; returns the close code and reason.
    async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("close within 10 s");
            match frame {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    panic!("closed without a close frame")
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}

fn id_of(msg: &ServerMsg) -> Option<i32> {
    match msg {
        ServerMsg::ResponseOk { request_id, .. } | ServerMsg::ResponseError { request_id, .. } => {
            Some(*request_id)
        }
        _ => None,
    }
}

fn exec(stream_id: i32, sql: &str) -> Request {
    Request::Execute {
        stream_id,
        stmt: Stmt::new(sql),
    }
}

fn result(resp: Response) -> StmtResult {
    match resp {
        Response::Execute { result } => result,
        other => panic!("not an execute response: {other:?}"),
    }
}

/// Zeroes what the Protobuf schema does not carry and what varies between runs.
fn normalize(msg: ServerMsg) -> ServerMsg {
    fn stmt(r: &mut StmtResult) {
        r.rows_read = 0;
        r.rows_written = 0;
        r.query_duration_ms = 0.0;
    }
    match msg {
        ServerMsg::ResponseOk {
            request_id,
            mut response,
        } => {
            match &mut response {
                Response::Execute { result } => stmt(result),
                Response::Batch { result } => {
                    result.step_results.iter_mut().flatten().for_each(stmt);
                }
                _ => {}
            }
            ServerMsg::ResponseOk {
                request_id,
                response,
            }
        }
        other => other,
    }
}

fn insert_stored() -> &'static str {
    "INSERT INTO t(b, c, d) VALUES (?, ?, ?)"
}

/// The whole request vocabulary on one socket; returns every response (normalized; the
/// entries of all fetches of the cursor merged into one `fetch_cursor` response).
async fn scenario(c: &mut Client) -> Vec<ServerMsg> {
    let mut out = Vec::new();
    let mut id = 0;
    let mut next = || {
        id += 1;
        id
    };
    c.hello().await;
    for s in [1, 2] {
        assert_eq!(
            c.ok(next(), Request::OpenStream { stream_id: s }).await,
            Response::OpenStream
        );
    }
    let requests = vec![
        exec(
            1,
            "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL, d BLOB)",
        ),
        Request::StoreSql {
            sql_id: 7,
            sql: insert_stored().into(),
        },
        // Stored SQL is connection-wide: used from both streams.
        Request::Execute {
            stream_id: 2,
            stmt: Stmt {
                sql_id: Some(7),
                args: vec![
                    Value::Text("héllo 🌍".into()),
                    Value::Float(1.5),
                    Value::Blob(vec![0, 1, 0]),
                ],
                ..Stmt::default()
            },
        },
        Request::Execute {
            stream_id: 1,
            stmt: Stmt {
                sql_id: Some(7),
                args: vec![Value::Null, Value::Float(5e-324), Value::Blob(vec![])],
                ..Stmt::default()
            },
        },
        Request::Batch {
            stream_id: 1,
            batch: Batch {
                steps: vec![
                    BatchStep {
                        condition: None,
                        stmt: Stmt::new("BEGIN"),
                    },
                    BatchStep {
                        condition: Some(BatchCond::Ok { step: 0 }),
                        stmt: Stmt {
                            sql_id: Some(7),
                            args: vec![
                                Value::Text("batch".into()),
                                Value::Integer(i64::MAX),
                                Value::Null,
                            ],
                            ..Stmt::default()
                        },
                    },
                    BatchStep {
                        condition: Some(BatchCond::Ok { step: 1 }),
                        stmt: Stmt::new("SELECT * FROM no_such_table"),
                    },
                    BatchStep {
                        condition: Some(BatchCond::Error { step: 2 }),
                        stmt: Stmt::new("COMMIT"),
                    },
                    BatchStep {
                        condition: Some(BatchCond::Not {
                            cond: Box::new(BatchCond::IsAutocommit),
                        }),
                        stmt: Stmt::new("ROLLBACK"),
                    },
                    BatchStep {
                        condition: Some(BatchCond::And {
                            conds: vec![BatchCond::IsAutocommit, BatchCond::Ok { step: 3 }],
                        }),
                        stmt: Stmt::new("SELECT count(*) FROM t"),
                    },
                ],
            },
        },
        Request::Sequence {
            stream_id: 2,
            sql: Some("INSERT INTO t(b) VALUES ('x'); INSERT INTO t(b) VALUES ('y');".into()),
            sql_id: None,
        },
        Request::Describe {
            stream_id: 1,
            sql: Some("SELECT a, b AS bee FROM t WHERE a > :min AND b = ?".into()),
            sql_id: None,
        },
        exec(1, "BEGIN"),
        Request::GetAutocommit { stream_id: 1 },
        Request::GetAutocommit { stream_id: 2 },
        exec(1, "INSERT INTO t(b) VALUES ('in txn')"),
        exec(1, "COMMIT"),
        Request::GetAutocommit { stream_id: 1 },
    ];
    for r in requests {
        out.push(normalize(c.call(next(), r).await));
    }

    // A cursor on stream 2, read two entries at a time.
    let open = Request::OpenCursor {
        stream_id: 2,
        cursor_id: 3,
        batch: Batch {
            steps: vec![
                BatchStep {
                    condition: None,
                    stmt: Stmt::new("SELECT a, b, c, d FROM t ORDER BY a"),
                },
                BatchStep {
                    condition: None,
                    stmt: Stmt::new("SELEC 1"),
                },
                BatchStep {
                    condition: Some(BatchCond::Error { step: 1 }),
                    stmt: Stmt::new("SELECT 42 AS answer"),
                },
            ],
        },
    };
    assert_eq!(c.ok(next(), open).await, Response::OpenCursor);
    let mut entries = Vec::new();
    let mut fetches = 0;
    loop {
        fetches += 1;
        assert!(fetches < 100, "the cursor never finished");
        // How many fetches it takes depends on timing (a fetch returns what is ready), so
        // their ids come from their own range and leave the scenario's ids alike in every run.
        match c
            .ok(
                1000 + fetches,
                Request::FetchCursor {
                    cursor_id: 3,
                    max_count: 2,
                },
            )
            .await
        {
            Response::FetchCursor { entries: got, done } => {
                assert!(got.len() <= 2, "more entries than max_count");
                entries.extend(got);
                if done {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    // After `done`, fetches return nothing.
    assert_eq!(
        c.ok(
            next(),
            Request::FetchCursor {
                cursor_id: 3,
                max_count: 10
            }
        )
        .await,
        Response::FetchCursor {
            entries: vec![],
            done: true
        }
    );
    out.push(ServerMsg::ResponseOk {
        request_id: 0,
        response: Response::FetchCursor {
            entries,
            done: true,
        },
    });
    assert_eq!(
        c.ok(next(), Request::CloseCursor { cursor_id: 3 }).await,
        Response::CloseCursor
    );

    let requests = vec![
        exec(2, "SELECT count(*) AS n FROM t"),
        exec(1, "SELECT * FROM missing"),
        Request::CloseSql { sql_id: 7 },
        Request::Execute {
            stream_id: 1,
            stmt: Stmt {
                sql_id: Some(7),
                ..Stmt::default()
            },
        },
        Request::OpenStream { stream_id: 1 },
        Request::CloseStream { stream_id: 2 },
        exec(2, "SELECT 1"),
        Request::FetchCursor {
            cursor_id: 99,
            max_count: 1,
        },
        Request::CloseStream { stream_id: 1 },
    ];
    for r in requests {
        let mut msg = normalize(c.call(next(), r).await);
        // Request ids differ between runs only by position; keep them.
        if let ServerMsg::ResponseError { error, .. } = &mut msg {
            assert!(error.code.is_some(), "{error:?}");
        }
        out.push(msg);
    }
    out
}

fn check_scenario(out: &[ServerMsg]) {
    let ok = |i: usize| match &out[i] {
        ServerMsg::ResponseOk { response, .. } => response.clone(),
        other => panic!("step {i}: {other:?}"),
    };
    // Create, store, two inserts.
    assert_eq!(result(ok(2)).last_insert_rowid, Some(1));
    assert_eq!(result(ok(3)).last_insert_rowid, Some(2));
    match ok(4) {
        Response::Batch { result } => {
            assert_eq!(result.step_results.len(), 6);
            assert!(result.step_errors[2].is_some(), "{result:?}");
            assert!(result.step_results[3].is_some(), "COMMIT ran");
            assert!(result.step_results[4].is_none() && result.step_errors[4].is_none());
            let count = &result.step_results[5].as_ref().expect("count ran").rows[0][0];
            assert_eq!(count, &Value::Integer(3));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ok(5), Response::Sequence);
    match ok(6) {
        Response::Describe { result } => {
            assert_eq!(result.params.len(), 2);
            assert_eq!(result.params[0].name.as_deref(), Some(":min"));
            assert_eq!(result.cols[1].name, "bee");
            assert!(result.is_readonly);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ok(8),
        Response::GetAutocommit {
            is_autocommit: false
        }
    );
    assert_eq!(
        ok(9),
        Response::GetAutocommit {
            is_autocommit: true
        }
    );
    assert_eq!(
        ok(12),
        Response::GetAutocommit {
            is_autocommit: true
        }
    );
    match ok(13) {
        Response::FetchCursor { entries, done } => {
            assert!(done);
            let rows: Vec<_> = entries
                .iter()
                .filter_map(|e| match e {
                    CursorEntry::Row { row } => Some(row.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(rows.len(), 7, "{entries:?}");
            assert_eq!(rows[0][1], Value::Text("héllo 🌍".into()));
            assert_eq!(rows[0][3], Value::Blob(vec![0, 1, 0]));
            match rows[1][2] {
                Value::Float(f) => assert_eq!(f.to_bits(), 5e-324f64.to_bits()),
                ref other => panic!("{other:?}"),
            }
            assert_eq!(rows[6], vec![Value::Integer(42)]);
            assert!(entries
                .iter()
                .any(|e| matches!(e, CursorEntry::StepError { step: 1, .. })));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(result(ok(14)).rows, vec![vec![Value::Integer(6)]]);
    let code = |i: usize| match &out[i] {
        ServerMsg::ResponseError { error, .. } => error.code.clone().unwrap_or_default(),
        other => panic!("step {i} should fail: {other:?}"),
    };
    assert_eq!(code(15), "SQLITE_ERROR");
    assert_eq!(ok(16), Response::CloseSql);
    assert_eq!(code(17), "PROTOCOL_ERROR");
    assert_eq!(code(18), "PROTOCOL_ERROR", "duplicate stream id");
    assert_eq!(ok(19), Response::CloseStream);
    assert_eq!(code(20), "STREAM_NOT_FOUND");
    assert_eq!(code(21), "CURSOR_NOT_FOUND");
    assert_eq!(ok(22), Response::CloseStream);
}

#[tokio::test]
async fn every_request_type_over_json_and_protobuf_gives_the_same_results() {
    let json_server = TestServer::start().await;
    let mut c = Client::connect(&json_server, &["hrana3"]).await;
    assert_eq!(c.proto.as_deref(), Some("hrana3"));
    let json = scenario(&mut c).await;
    check_scenario(&json);

    let pb_server = TestServer::start().await;
    let mut c = Client::connect(&pb_server, &["hrana3-protobuf"]).await;
    assert_eq!(c.proto.as_deref(), Some("hrana3-protobuf"));
    let pb = scenario(&mut c).await;
    check_scenario(&pb);
    assert_eq!(json.len(), pb.len());
    for (i, (j, p)) in json.iter().zip(&pb).enumerate() {
        assert_eq!(j, p, "response {i} differs between JSON and Protobuf");
    }
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test]
async fn the_newest_common_subprotocol_is_chosen() {
    let server = TestServer::start().await;
    for (offered, chosen) in [
        (&["hrana1", "hrana2", "hrana3"][..], Some("hrana3")),
        (
            &["hrana2", "hrana3", "hrana3-protobuf"][..],
            Some("hrana3-protobuf"),
        ),
        (&["hrana3-protobuf", "hrana3"][..], Some("hrana3-protobuf")),
        (&["x-unknown", "hrana2", "hrana1"][..], Some("hrana2")),
        (&["hrana1"][..], Some("hrana1")),
        (&[][..], None),
    ] {
        let mut c = Client::connect(&server, offered).await;
        assert_eq!(c.proto.as_deref(), chosen, "offered {offered:?}");
        c.hello().await;
        assert_eq!(
            c.ok(1, Request::OpenStream { stream_id: 1 }).await,
            Response::OpenStream
        );
        let r = result(c.ok(2, exec(1, "SELECT 1 + 1")).await);
        assert_eq!(r.rows, vec![vec![Value::Integer(2)]]);
    }
    // Only unknown subprotocols: the upgrade is refused.
    let err = Client::try_connect(&server, &["hrana4", "graphql-ws"])
        .await
        .err()
        .expect("refused");
    assert!(err.contains("400"), "{err}");
}

#[tokio::test]
async fn requests_are_gated_by_the_negotiated_version() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server, &[]).await; // hrana1
    c.hello().await;
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    for (i, r) in [
        Request::Sequence {
            stream_id: 1,
            sql: Some("SELECT 1".into()),
            sql_id: None,
        },
        Request::StoreSql {
            sql_id: 1,
            sql: "SELECT 1".into(),
        },
        Request::GetAutocommit { stream_id: 1 },
        Request::CloseCursor { cursor_id: 1 },
    ]
    .into_iter()
    .enumerate()
    {
        let e = c.err(10 + i as i32, r).await;
        assert!(e.message.contains("needs Hrana"), "{e:?}");
    }
    let mut c = Client::connect(&server, &["hrana2"]).await;
    c.hello().await;
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    c.ok(
        2,
        Request::Sequence {
            stream_id: 1,
            sql: Some("SELECT 1; SELECT 2".into()),
            sql_id: None,
        },
    )
    .await;
    let e = c
        .err(
            3,
            Request::OpenCursor {
                stream_id: 1,
                cursor_id: 1,
                batch: Batch::default(),
            },
        )
        .await;
    assert!(e.message.contains("needs Hrana 3"), "{e:?}");
}

#[tokio::test]
async fn hello_can_be_repeated_and_request_ids_are_echoed() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server, &["hrana3"]).await;
    c.hello().await;
    c.ok(i32::MIN, Request::OpenStream { stream_id: -5 }).await;
    c.send(ClientMsg::Hello {
        jwt: Some("a.b.c".into()),
    })
    .await;
    assert_eq!(c.recv().await, ServerMsg::HelloOk);
    let r = result(c.ok(i32::MAX, exec(-5, "SELECT 'still here'")).await);
    assert_eq!(r.rows[0][0], Value::Text("still here".into()));
    // An unknown request type inside a valid envelope is an error response, not a close.
    c.ws.send(Message::Text(
        r#"{"type":"request","request_id":77,"request":{"type":"frobnicate"}}"#.into(),
    ))
    .await
    .unwrap();
    match c.recv().await {
        ServerMsg::ResponseError { request_id, error } => {
            assert_eq!(request_id, 77);
            assert!(error.message.contains("frobnicate"), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    c.ok(78, Request::GetAutocommit { stream_id: -5 }).await;
}

#[tokio::test]
async fn requests_of_one_stream_run_in_order_and_streams_interleave() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server, &["hrana3"]).await;
    c.send(ClientMsg::Hello { jwt: None }).await;
    // Everything pipelined without waiting: open, create, 100 inserts on stream 1 and reads
    // on stream 2, then a final read on stream 1.
    let mut sent = 0;
    async fn send(c: &mut Client, sent: &mut usize, id: i32, request: Request) {
        *sent += 1;
        let msg = ClientMsg::Request {
            request_id: id,
            request,
        };
        let text = serde_json::to_string(&msg).unwrap();
        c.ws.send(Message::Text(text.into())).await.unwrap();
    }
    send(&mut c, &mut sent, 1, Request::OpenStream { stream_id: 1 }).await;
    send(&mut c, &mut sent, 2, Request::OpenStream { stream_id: 2 }).await;
    send(&mut c, &mut sent, 3, exec(1, "CREATE TABLE seq(i INTEGER)")).await;
    for i in 0..100 {
        send(
            &mut c,
            &mut sent,
            100 + i,
            exec(1, &format!("INSERT INTO seq VALUES ({i})")),
        )
        .await;
        send(&mut c, &mut sent, 1000 + i, exec(2, "SELECT 1")).await;
    }
    send(
        &mut c,
        &mut sent,
        5000,
        exec(1, "SELECT group_concat(i) FROM seq"),
    )
    .await;
    let mut last = None;
    let mut got = 0;
    assert_eq!(c.recv().await, ServerMsg::HelloOk);
    while got < sent {
        let msg = c.recv().await;
        got += 1;
        match &msg {
            ServerMsg::ResponseOk { request_id, .. } if *request_id == 5000 => {
                last = Some(msg.clone())
            }
            ServerMsg::ResponseOk { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    match last {
        Some(ServerMsg::ResponseOk {
            response: Response::Execute { result },
            ..
        }) => assert_eq!(result.rows[0][0], Value::Text(expected.join(","))),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn many_outstanding_requests_are_all_answered() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server, &["hrana3-protobuf"]).await;
    c.hello().await;
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    // Far beyond the outstanding limit; the server stops reading, then catches up.
    let n = 1000;
    for i in 0..n {
        c.send(ClientMsg::Request {
            request_id: i,
            request: exec(1, "SELECT randomblob(100)"),
        })
        .await;
    }
    let mut seen = vec![false; n as usize];
    for _ in 0..n {
        let msg = c.recv().await;
        let id = id_of(&msg).expect("a response");
        assert!(matches!(msg, ServerMsg::ResponseOk { .. }), "{msg:?}");
        assert!(!seen[id as usize], "duplicate response {id}");
        seen[id as usize] = true;
    }
}

async fn closed_with(protos: &[&str], frames: Vec<Message>) -> (u16, String) {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server, protos).await;
    for f in frames {
        let _ = c.ws.send(f).await;
    }
    c.expect_close().await
}

fn hello_json() -> Message {
    Message::Text(r#"{"type":"hello","jwt":null}"#.into())
}

#[tokio::test]
async fn protocol_violations_close_with_the_right_code() {
    let (code, reason) = closed_with(&["hrana3"], vec![Message::Text("{not json".into())]).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("invalid JSON"), "{reason}");

    let (code, reason) = closed_with(
        &["hrana3"],
        vec![hello_json(), Message::Binary(vec![1, 2, 3].into())],
    )
    .await;
    assert_eq!(code, 1003, "{reason}");
    assert!(reason.contains("binary frame"), "{reason}");

    let (code, reason) = closed_with(&["hrana3-protobuf"], vec![Message::Text("{}".into())]).await;
    assert_eq!(code, 1003, "{reason}");

    let (code, reason) = closed_with(
        &["hrana3"],
        vec![Message::Text(r#"{"type":"goodbye"}"#.into())],
    )
    .await;
    assert_eq!(code, 1002, "{reason}");
    assert!(reason.contains("goodbye"), "{reason}");

    let (code, reason) =
        closed_with(&["hrana3"], vec![Message::Text(r#"{"jwt":null}"#.into())]).await;
    assert_eq!(code, 1002, "{reason}");

    let (code, reason) = closed_with(
        &["hrana2"],
        vec![Message::Text(
            r#"{"type":"request","request_id":1,"request":{"type":"open_stream","stream_id":1}}"#
                .into(),
        )],
    )
    .await;
    assert_eq!(code, 1002, "{reason}");
    assert!(reason.contains("before the hello"), "{reason}");

    let (code, reason) = closed_with(
        &["hrana3-protobuf"],
        vec![Message::Binary(vec![0xff, 0xff, 0xff].into())],
    )
    .await;
    assert_eq!(code, 1007, "{reason}");

    // A ClientMsg with no message set (e.g. a type from the future).
    let (code, reason) = closed_with(
        &["hrana3-protobuf"],
        vec![Message::Binary(Vec::new().into())],
    )
    .await;
    assert_eq!(code, 1002, "{reason}");

    // Protobuf request before hello.
    let req = protobuf::encode(ClientMsg::Request {
        request_id: 1,
        request: Request::OpenStream { stream_id: 1 },
    });
    let (code, _) = closed_with(&["hrana3-protobuf"], vec![Message::Binary(req.into())]).await;
    assert_eq!(code, 1002);
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test]
async fn a_dropped_socket_rolls_back_and_frees_the_write_lock() {
    let server = TestServer::start().await;
    let mut setup = Client::connect(&server, &["hrana3"]).await;
    setup.hello().await;
    setup.ok(1, Request::OpenStream { stream_id: 1 }).await;
    setup.ok(2, exec(1, "CREATE TABLE w(x)")).await;

    let mut a = Client::connect(&server, &["hrana3"]).await;
    a.hello().await;
    a.ok(1, Request::OpenStream { stream_id: 1 }).await;
    a.ok(2, exec(1, "BEGIN IMMEDIATE")).await;
    a.ok(3, exec(1, "INSERT INTO w VALUES ('lost')")).await;
    // A second stream with an open cursor, to be torn down as well.
    a.ok(4, Request::OpenStream { stream_id: 2 }).await;
    a.ok(
        5,
        Request::OpenCursor {
            stream_id: 2,
            cursor_id: 1,
            batch: Batch {
                steps: vec![BatchStep {
                    condition: None,
                    stmt: Stmt::new(
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                         WHERE i < 100000) SELECT i FROM n",
                    ),
                }],
            },
        },
    )
    .await;
    // Drop without a close handshake.
    drop(a);

    let start = Instant::now();
    setup.ok(3, Request::OpenStream { stream_id: 2 }).await;
    let r = result(setup.ok(4, exec(2, "INSERT INTO w VALUES ('kept')")).await);
    let took = start.elapsed();
    assert_eq!(r.affected_row_count, 1);
    assert!(
        took < Duration::from_secs(1),
        "the write waited {took:?} for the dropped socket's lock"
    );
    let r = result(setup.ok(5, exec(2, "SELECT x FROM w")).await);
    assert_eq!(r.rows, vec![vec![Value::Text("kept".into())]]);
}

#[tokio::test]
async fn a_plain_get_of_the_root_explains_itself() {
    let server = TestServer::start().await;
    let r = common::get(server.addr, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("WebSocket"), "{}", r.text());
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_with_1009() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 4096).await;
    let mut c = Client::connect(&server, &["hrana3"]).await;
    c.hello().await;
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    // Just under the limit works.
    let sql = format!("SELECT '{}'", "x".repeat(3000));
    c.ok(2, exec(1, &sql)).await;
    let sql = format!("SELECT '{}'", "x".repeat(10_000));
    let _ =
        c.ws.send(Message::Text(
            serde_json::to_string(&ClientMsg::Request {
                request_id: 3,
                request: exec(1, &sql),
            })
            .unwrap()
            .into(),
        ))
        .await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
}

#[tokio::test]
async fn a_stream_waits_while_its_cursor_is_open() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server, &["hrana3"]).await;
    c.hello().await;
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    c.ok(2, Request::OpenStream { stream_id: 2 }).await;
    let open = Request::OpenCursor {
        stream_id: 1,
        cursor_id: 9,
        batch: Batch {
            steps: vec![BatchStep {
                condition: None,
                stmt: Stmt::new("SELECT 1 UNION ALL SELECT 2"),
            }],
        },
    };
    assert_eq!(c.ok(3, open).await, Response::OpenCursor);
    // Queued behind the cursor on stream 1; stream 2 is not held up.
    c.send(ClientMsg::Request {
        request_id: 4,
        request: exec(1, "SELECT 'after'"),
    })
    .await;
    let r = result(c.ok(5, exec(2, "SELECT 'other stream'")).await);
    assert_eq!(r.rows[0][0], Value::Text("other stream".into()));
    let mut entries = Vec::new();
    loop {
        match c
            .ok(
                6,
                Request::FetchCursor {
                    cursor_id: 9,
                    max_count: 100,
                },
            )
            .await
        {
            Response::FetchCursor { entries: e, done } => {
                entries.extend(e);
                if done {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(entries.len(), 4, "{entries:?}"); // begin, 2 rows, end
                                                 // Nothing on stream 1 has run yet: the next message is the close_cursor response.
    c.send(ClientMsg::Request {
        request_id: 7,
        request: Request::CloseCursor { cursor_id: 9 },
    })
    .await;
    let first = c.recv().await;
    assert_eq!(id_of(&first), Some(7), "{first:?}");
    let second = c.recv().await;
    assert_eq!(id_of(&second), Some(4), "{second:?}");
}

/// Keepalive: the server pings; a client that answers stays connected, one that goes silent is
/// dropped after three periods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peers_are_dropped_and_answering_ones_kept() {
    let server = TestServer::start_with(|c| c.ws_keepalive = Duration::from_millis(100)).await;

    // Answers pings by reading: still usable after many periods.
    let mut alive = Client::connect(&server, &["hrana3"]).await;
    alive.hello().await;
    let mut pings = 0;
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        if let Ok(Some(Ok(Message::Ping(_)))) =
            tokio::time::timeout(Duration::from_millis(50), alive.ws.next()).await
        {
            pings += 1;
            // tungstenite queues the pong; flushing sends it, as browsers and Node's `ws` do
            // on their own.
            alive.ws.flush().await.expect("pong");
        }
    }
    assert!(pings >= 3, "the server pinged {pings} times in 800 ms");
    alive.ok(1, Request::OpenStream { stream_id: 1 }).await;

    // Reads nothing (so never answers): the server gives up on it.
    let mut silent = Client::connect(&server, &["hrana3"]).await;
    silent.hello().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match silent.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server kept a silent peer open");
    // (`alive` went silent too while this test slept.) The server is fine.
    let mut fresh = Client::connect(&server, &["hrana3"]).await;
    fresh.hello().await;
    fresh.ok(1, Request::OpenStream { stream_id: 1 }).await;
}
