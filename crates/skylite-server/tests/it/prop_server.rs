//! Property tests at the server's edge (the baton properties are unit tests in `baton.rs`):
//! - a real server (auth on) fed random bytes, random JSON shaped like Hrana, and mutations of
//!   valid bodies on every HTTP endpoint, and random frames on WebSockets after a valid
//!   `hello`: no 5xx, the server stays up, no panic anywhere (including the SQL workers);
//!   without a token every such request is a 401, whatever its body.
//!
//! Cases come from `PROPTEST_CASES` (default small); `scripts/fuzz.sh` runs many more.

use crate::auth_common;
use crate::common;

use std::time::Duration;

use auth_common::{bearer, AuthServer};
use common::server_panics;
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use skylite_proto::ws::ServerMsg;
use skylite_proto::{
    protobuf, Batch, BatchStep, CursorReqBody, PipelineReqBody, Stmt, StreamRequest,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- a real server ----------------------------------------------------------

/// Draws one value from `strategy` (no shrinking: the input is printed on failure instead).
fn draw<S: Strategy>(runner: &mut TestRunner, strategy: &S) -> S::Value {
    strategy
        .new_tree(runner)
        .expect("strategies here never reject")
        .current()
}

fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|i| json!(i)),
        proptest::num::f64::NORMAL.prop_map(|f| json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
        proptest::sample::select(vec![
            "execute",
            "batch",
            "sequence",
            "describe",
            "store_sql",
            "close_sql",
            "close",
            "get_autocommit",
            "hello",
            "request",
            "open_stream",
            "close_stream",
            "open_cursor",
            "fetch_cursor",
            "close_cursor",
            "integer",
            "float",
            "text",
            "blob",
            "null",
            "ok",
            "error",
            "not",
            "and",
            "or",
            "is_autocommit",
            "SELECT 1",
            "SELECT * FROM t",
            "SELECT ?",
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "INSERT INTO t VALUES (3)",
            "9223372036854775808",
            "AAAA",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "type",
                        "value",
                        "base64",
                        "sql",
                        "sql_id",
                        "args",
                        "named_args",
                        "want_rows",
                        "stmt",
                        "batch",
                        "steps",
                        "condition",
                        "cond",
                        "conds",
                        "step",
                        "baton",
                        "requests",
                        "request",
                        "request_id",
                        "stream_id",
                        "cursor_id",
                        "max_count",
                        "jwt",
                        "q",
                        "params",
                        "name",
                        "statements",
                    ]),
                    inner
                ),
                0..5
            )
            .prop_map(|kv| serde_json::Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

/// Byte-level mutations: (kind, position, byte).
fn mutations() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    proptest::collection::vec((0..4u8, any::<usize>(), any::<u8>()), 1..5)
}

fn mutate(input: &[u8], muts: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut out = input.to_vec();
    for &(kind, i, b) in muts {
        let len = out.len();
        match kind {
            0 if len > 0 => out[i % len] ^= b.max(1),
            1 => out.insert(i % (len + 1), b),
            2 if len > 0 => {
                out.remove(i % len);
            }
            3 => out.truncate(i % (len + 1)),
            _ => {}
        }
    }
    out
}

/// JSON pointers of every node of `v` (the root is `""`).
fn json_pointers(v: &serde_json::Value, here: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                json_pointers(child, format!("{here}/{escaped}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                json_pointers(child, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(here);
}

/// Valid bodies of every endpoint, to be mutated.
fn valid_bodies(path: &str) -> Vec<Vec<u8>> {
    let stmt = |sql: &str| Stmt::new(sql);
    let pipeline = PipelineReqBody {
        baton: None,
        requests: vec![
            StreamRequest::Execute {
                stmt: Stmt {
                    args: vec![skylite_proto::Value::Integer(1)],
                    ..stmt("SELECT x, ? FROM t")
                },
            },
            StreamRequest::Batch {
                batch: Batch {
                    steps: vec![
                        BatchStep {
                            condition: None,
                            stmt: stmt("SELECT 1"),
                        },
                        BatchStep {
                            condition: Some(skylite_proto::BatchCond::Ok { step: 0 }),
                            stmt: stmt("SELECT count(*) FROM t"),
                        },
                    ],
                },
            },
            StreamRequest::StoreSql {
                sql_id: 1,
                sql: "SELECT 2".into(),
            },
            StreamRequest::Describe {
                sql: None,
                sql_id: Some(1),
            },
            StreamRequest::Close,
        ],
    };
    let cursor = CursorReqBody {
        baton: None,
        batch: Batch {
            steps: vec![BatchStep {
                condition: None,
                stmt: stmt("SELECT x FROM t"),
            }],
        },
    };
    match path {
        "/" => vec![
            br#"{"statements":["SELECT 1",{"q":"SELECT ?","params":[1]},{"q":"SELECT :a","params":{"a":{"base64":"AAEC"}}}]}"#.to_vec(),
        ],
        "/v1/execute" => vec![br#"{"stmt":{"sql":"SELECT ?","args":[{"type":"float","value":1.5}]}}"#.to_vec()],
        "/v1/batch" => vec![br#"{"batch":{"steps":[{"stmt":{"sql":"SELECT 1"}},{"condition":{"type":"not","cond":{"type":"error","step":0}},"stmt":{"sql":"SELECT 2"}}]}}"#.to_vec()],
        "/v3-protobuf/pipeline" => vec![protobuf::encode(pipeline)],
        "/v3-protobuf/cursor" => vec![protobuf::encode(cursor)],
        "/v3/cursor" => vec![serde_json::to_vec(&cursor).unwrap()],
        _ => vec![serde_json::to_vec(&pipeline).unwrap()],
    }
}

const SQL_PATHS: [&str; 8] = [
    "/",
    "/v1/execute",
    "/v1/batch",
    "/v2/pipeline",
    "/v3/pipeline",
    "/v3/cursor",
    "/v3-protobuf/pipeline",
    "/v3-protobuf/cursor",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_http_bodies_never_cause_a_5xx_or_a_panic() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let token = bearer(&s.token(&["app"], false));
    let ro_token = bearer(&s.token(&["app"], true));
    let mut runner = TestRunner::new(config(0));
    let body_kind = 0..5u8;
    let bytes = proptest::collection::vec(any::<u8>(), 0..512);
    let n = cases(160);
    let mut transport_errors = 0;
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..n {
        let path = SQL_PATHS[i as usize % SQL_PATHS.len()];
        // Every 10th request is a valid body as it is, so that the server is seen to answer
        // 200 between the random ones (random mutations alone may all fail to parse).
        let kind = if i % 10 == 1 {
            u8::MAX
        } else {
            draw(&mut runner, &body_kind)
        };
        let body = match kind {
            u8::MAX => {
                let valid = valid_bodies(path);
                valid[i as usize % valid.len()].clone()
            }
            0 => draw(&mut runner, &bytes),
            1 => serde_json::to_vec(&draw(&mut runner, &arbitrary_json())).unwrap(),
            2 if !path.starts_with("/v3-protobuf") => {
                // A valid body with one node replaced: gets past the parser more often, so
                // odd but well-formed requests reach the engine.
                let valid = valid_bodies(path);
                let mut doc: serde_json::Value =
                    serde_json::from_slice(&valid[i as usize % valid.len()]).unwrap();
                let mut pointers = Vec::new();
                json_pointers(&doc, String::new(), &mut pointers);
                let at = draw(&mut runner, &any::<usize>()) % pointers.len();
                let replacement = draw(&mut runner, &arbitrary_json());
                if let Some(node) = doc.pointer_mut(&pointers[at]) {
                    *node = replacement;
                }
                serde_json::to_vec(&doc).unwrap()
            }
            _ => {
                let valid = valid_bodies(path);
                let pick = &valid[i as usize % valid.len()];
                mutate(pick, &draw(&mut runner, &mutations()))
            }
        };
        // Every 7th request carries no token: whatever the body, the answer is 401.
        let anonymous = i % 7 == 3;
        let auth = if i % 5 == 0 { &ro_token } else { &token };
        let headers: &[(&str, &str)] = if anonymous {
            &[]
        } else {
            &[("authorization", auth)]
        };
        let full_path = format!("/db/app{path}");
        let res = tokio::time::timeout(
            Duration::from_secs(20),
            common::try_request_with(addr, "POST", &full_path, headers, Some(body.clone())),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer within 20 s: POST {full_path} {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        match res {
            Ok(r) if anonymous => assert_eq!(
                r.status,
                401,
                "POST {full_path} without a token {:?} -> {}",
                String::from_utf8_lossy(&body),
                r.text()
            ),
            Ok(r) => {
                assert!(
                    r.status < 500,
                    "POST {full_path} {:?} -> {} {}",
                    String::from_utf8_lossy(&body),
                    r.status,
                    r.text()
                );
                *statuses.entry(r.status).or_default() += 1;
            }
            // A connection the server closes mid-answer (a cursor whose batch failed late may
            // end its body early): allowed, but not for most requests.
            Err(_) => transport_errors += 1,
        }
    }
    eprintln!("statuses: {statuses:?}, transport errors: {transport_errors}");
    // Some mutations must get through decoding and run (else this tests only the parsers).
    assert!(statuses.get(&200).is_some_and(|&ok| ok > 0), "{statuses:?}");
    assert!(
        transport_errors * 10 <= n,
        "{transport_errors} of {n} requests failed at the transport level"
    );
    assert_eq!(common::get(addr, "/health").await.status, 200);
    assert_eq!(server_panics(), 0);
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_headers_and_paths_never_cause_a_5xx_or_a_panic() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let token = s.token(&["app"], false);
    let mut runner = TestRunner::new(config(0));
    let header_value = prop_oneof![
        "[ -~]{0,40}".boxed(),
        Just(format!("Bearer {token}")).boxed(),
        Just(format!("bearer {token} extra")).boxed(),
        Just(format!("Basic {token}")).boxed(),
        Just(format!("Bearer {token}x")).boxed(),
        Just(format!("Bearer {}", &token[..token.len() / 2])).boxed(),
    ];
    let namespace = prop_oneof![
        Just("app".to_owned()),
        Just("APP".to_owned()),
        Just(".skylite".to_owned()),
        Just("..".to_owned()),
        "[ -~]{0,70}",
    ];
    let path = prop_oneof![
        proptest::sample::select(SQL_PATHS.to_vec()).prop_map(str::to_owned),
        "/db/[ -~&&[^?#]]{0,20}/v3/pipeline",
        "/dev/[a-z.%]{0,10}/v2/pipeline",
        "/[a-z0-9/%.]{0,30}",
    ];
    let n = cases(120);
    for _ in 0..n {
        let authz = draw(&mut runner, &header_value);
        let ns = draw(&mut runner, &namespace);
        let path = draw(&mut runner, &path);
        let body = valid_bodies(if path.ends_with("cursor") {
            "/v3/cursor"
        } else {
            "/v3/pipeline"
        })
        .remove(0);
        let headers = [
            ("authorization", authz.as_str()),
            ("x-namespace", ns.as_str()),
        ];
        // An invalid URI or header value is refused by the client library before sending.
        let Ok(res) = tokio::time::timeout(
            Duration::from_secs(20),
            common::try_request_with(addr, "POST", &path, &headers, Some(body)),
        )
        .await
        else {
            panic!("no answer within 20 s: POST {path} {headers:?}");
        };
        if let Ok(r) = res {
            assert!(
                r.status < 500,
                "POST {path} {headers:?} -> {} {}",
                r.status,
                r.text()
            );
        }
    }
    assert_eq!(common::get(addr, "/health").await.status, 200);
    assert_eq!(server_panics(), 0);
    s.server.stop().await;
}

/// A frame a fuzzing WebSocket client sends after its `hello`.
fn ws_frame(protobuf: bool) -> BoxedStrategy<Message> {
    let json_text = arbitrary_json().prop_map(|v| Message::Text(v.to_string().into()));
    let wrapped = (any::<i32>(), arbitrary_json()).prop_map(|(id, v)| {
        Message::Text(
            json!({"type": "request", "request_id": id, "request": v})
                .to_string()
                .into(),
        )
    });
    let bytes =
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(|b| Message::Binary(b.into()));
    let valid_json = br#"{"type":"request","request_id":7,"request":{"type":"execute","stream_id":1,"stmt":{"sql":"SELECT 1"}}}"#;
    let mutated_json = mutations().prop_map(move |m| {
        Message::Text(
            String::from_utf8_lossy(&mutate(valid_json, &m))
                .into_owned()
                .into(),
        )
    });
    let valid_pb = protobuf::encode(skylite_proto::ws::ClientMsg::Request {
        request_id: 7,
        request: skylite_proto::ws::Request::Execute {
            stream_id: 1,
            stmt: Stmt::new("SELECT 1"),
        },
    });
    let mutated_pb = mutations().prop_map(move |m| Message::Binary(mutate(&valid_pb, &m).into()));
    if protobuf {
        prop_oneof![bytes, mutated_pb, json_text].boxed()
    } else {
        prop_oneof![json_text, wrapped, mutated_json, bytes].boxed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_websocket_frames_never_cause_a_panic() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let token = s.token(&["app"], false);
    let mut runner = TestRunner::new(config(0));
    let n = cases(40);
    for i in 0..n {
        let proto = if i % 2 == 0 {
            "hrana3"
        } else {
            "hrana3-protobuf"
        };
        let protobuf = proto == "hrana3-protobuf";
        let mut req = format!("ws://{addr}/db/app").into_client_request().unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(proto));
        let (mut ws, _) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .expect("connect within 20 s")
        .expect("connect");
        let encode = |msg: skylite_proto::ws::ClientMsg| {
            if protobuf {
                Message::Binary(protobuf::encode(msg).into())
            } else {
                Message::Text(serde_json::to_string(&msg).unwrap().into())
            }
        };
        let hello = skylite_proto::ws::ClientMsg::Hello {
            jwt: Some(token.clone()),
        };
        ws.send(encode(hello)).await.expect("send hello");
        // A stream for the random requests to land on.
        ws.send(encode(skylite_proto::ws::ClientMsg::Request {
            request_id: 1,
            request: skylite_proto::ws::Request::OpenStream { stream_id: 1 },
        }))
        .await
        .expect("send open_stream");
        let frames = draw(
            &mut runner,
            &proptest::collection::vec(ws_frame(protobuf), 1..4),
        );
        let mut closed = false;
        for f in &frames {
            if ws.send(f.clone()).await.is_err() {
                closed = true;
                break;
            }
        }
        // A probe the server must answer (or it closed the socket for a protocol violation).
        const PROBE: i32 = 999_999;
        if !closed {
            let probe = skylite_proto::ws::ClientMsg::Request {
                request_id: PROBE,
                request: skylite_proto::ws::Request::GetAutocommit { stream_id: 1 },
            };
            closed = ws.send(encode(probe)).await.is_err();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !closed {
            let frame = tokio::time::timeout_at(deadline, ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to the probe within 20 s after {frames:?}"));
            let answered = match frame {
                Some(Ok(Message::Text(t))) => serde_json::from_str::<serde_json::Value>(t.as_str())
                    .map(|v| v["request_id"] == PROBE)
                    .unwrap_or(false),
                Some(Ok(Message::Binary(b))) => matches!(
                    protobuf::decode::<ServerMsg>(&b),
                    Ok(ServerMsg::ResponseOk {
                        request_id: PROBE,
                        ..
                    } | ServerMsg::ResponseError {
                        request_id: PROBE,
                        ..
                    })
                ),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    closed = true;
                    false
                }
                Some(Ok(_)) => false,
            };
            if answered {
                break;
            }
        }
        let _ = ws.close(None).await;
    }
    assert_eq!(common::get(addr, "/health").await.status, 200);
    assert_eq!(server_panics(), 0);
    s.server.stop().await;
}
