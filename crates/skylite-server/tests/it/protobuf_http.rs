//! Hrana over HTTP with Protobuf (`/v3-protobuf/pipeline`, `/v3-protobuf/cursor`) against an
//! in-process server: the same pipelines and cursors as over JSON give the same results, the
//! cursor body is length-delimited, and malformed bodies are clear 400s.

use crate::common;

use common::TestServer;
use skylite_proto::protobuf;
use skylite_proto::{
    Batch, BatchCond, BatchStep, CursorEntry, CursorReqBody, CursorRespBody, NamedArg,
    PipelineReqBody, PipelineRespBody, Stmt, StreamRequest, StreamResponse, StreamResult, Value,
};

fn requests() -> Vec<StreamRequest> {
    let insert = |args: Vec<Value>| StreamRequest::Execute {
        stmt: Stmt {
            sql: Some("INSERT INTO t(b, c, d) VALUES (?, ?, ?)".into()),
            args,
            ..Stmt::default()
        },
    };
    vec![
        StreamRequest::Execute {
            stmt: Stmt::new("CREATE TABLE t(a INTEGER PRIMARY KEY, b, c, d)"),
        },
        insert(vec![
            Value::Integer(i64::MIN),
            Value::Float(-0.0),
            Value::Blob(vec![0, 0, 7]),
        ]),
        insert(vec![
            Value::Text("ünïcødé ✓".into()),
            Value::Float(f64::from_bits(1)),
            Value::Null,
        ]),
        StreamRequest::StoreSql {
            sql_id: 1,
            sql: "SELECT a, b, c, d FROM t WHERE a >= :from ORDER BY a".into(),
        },
        StreamRequest::Execute {
            stmt: Stmt {
                sql_id: Some(1),
                named_args: vec![NamedArg {
                    name: "from".into(),
                    value: Value::Integer(1),
                }],
                ..Stmt::default()
            },
        },
        StreamRequest::Batch {
            batch: Batch {
                steps: vec![
                    BatchStep {
                        condition: None,
                        stmt: Stmt::new("BEGIN"),
                    },
                    BatchStep {
                        condition: Some(BatchCond::Ok { step: 0 }),
                        stmt: Stmt::new("INSERT INTO t(b) VALUES (i64_max())"),
                    },
                    BatchStep {
                        condition: Some(BatchCond::Error { step: 1 }),
                        stmt: Stmt::new("ROLLBACK"),
                    },
                    BatchStep {
                        condition: Some(BatchCond::Not {
                            cond: Box::new(BatchCond::IsAutocommit),
                        }),
                        stmt: Stmt::new("COMMIT"),
                    },
                    BatchStep {
                        condition: Some(BatchCond::Or {
                            conds: vec![BatchCond::IsAutocommit],
                        }),
                        stmt: Stmt::new("SELECT count(*) FROM t"),
                    },
                ],
            },
        },
        StreamRequest::Sequence {
            sql: Some("INSERT INTO t(b) VALUES (1); INSERT INTO t(b) VALUES (2)".into()),
            sql_id: None,
        },
        StreamRequest::Describe {
            sql: None,
            sql_id: Some(1),
        },
        StreamRequest::Execute {
            stmt: Stmt::new("BEGIN"),
        },
        StreamRequest::GetAutocommit,
        StreamRequest::Execute {
            stmt: Stmt::new("SELECT * FROM nowhere"),
        },
        StreamRequest::Execute {
            stmt: Stmt::new("COMMIT"),
        },
        StreamRequest::CloseSql { sql_id: 1 },
        StreamRequest::Describe {
            sql: None,
            sql_id: Some(1),
        },
    ]
}

fn normalize(mut results: Vec<StreamResult>) -> Vec<StreamResult> {
    for r in &mut results {
        let StreamResult::Ok { response } = r else {
            continue;
        };
        let fix = |s: &mut skylite_proto::StmtResult| {
            s.rows_read = 0;
            s.rows_written = 0;
            s.query_duration_ms = 0.0;
        };
        match response {
            StreamResponse::Execute { result } => fix(result),
            StreamResponse::Batch { result } => {
                result.step_results.iter_mut().flatten().for_each(fix)
            }
            _ => {}
        }
    }
    results
}

fn cursor_batch() -> Batch {
    Batch {
        steps: vec![
            BatchStep {
                condition: None,
                stmt: Stmt::new("SELECT a, b, c, d FROM t ORDER BY a"),
            },
            BatchStep {
                condition: None,
                stmt: Stmt::new("INSERT INTO t(b) VALUES ('from cursor')"),
            },
            BatchStep {
                condition: None,
                stmt: Stmt::new("SELECT nope FROM t"),
            },
        ],
    }
}

async fn json_run(server: &TestServer) -> (Vec<StreamResult>, Vec<CursorEntry>) {
    let body = PipelineReqBody {
        baton: None,
        requests: requests(),
    };
    let r = common::post_raw(
        server.addr,
        "/v3/pipeline",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let resp: PipelineRespBody = serde_json::from_slice(&r.body).unwrap();
    let cursor = CursorReqBody {
        baton: resp.baton.clone(),
        batch: cursor_batch(),
    };
    let c = common::post_raw(
        server.addr,
        "/v3/cursor",
        serde_json::to_vec(&cursor).unwrap(),
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.text());
    let text = c.text();
    let mut lines = text.lines();
    let head: CursorRespBody = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(head.baton.is_some());
    let entries = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    (resp.results, entries)
}

async fn protobuf_run(server: &TestServer) -> (Vec<StreamResult>, Vec<CursorEntry>) {
    let body = PipelineReqBody {
        baton: None,
        requests: requests(),
    };
    let r = common::post_raw(server.addr, "/v3-protobuf/pipeline", protobuf::encode(body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type.as_deref(), Some("application/x-protobuf"));
    let resp: PipelineRespBody = protobuf::decode(&r.body).unwrap();
    assert!(resp.baton.is_some());
    let cursor = CursorReqBody {
        baton: resp.baton.clone(),
        batch: cursor_batch(),
    };
    let c = common::post_raw(server.addr, "/v3-protobuf/cursor", protobuf::encode(cursor)).await;
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.content_type.as_deref(), Some("application/x-protobuf"));
    let mut rest = &c.body[..];
    let head: CursorRespBody = protobuf::decode_length_delimited(&mut rest).unwrap();
    assert!(head.baton.is_some());
    let mut entries = Vec::new();
    while !rest.is_empty() {
        entries.push(protobuf::decode_length_delimited(&mut rest).unwrap());
    }
    (resp.results, entries)
}

#[tokio::test]
async fn protobuf_pipeline_and_cursor_match_json() {
    let json_server = TestServer::start().await;
    let pb_server = TestServer::start().await;
    let (json_results, json_entries) = json_run(&json_server).await;
    let (pb_results, pb_entries) = protobuf_run(&pb_server).await;
    let json_results = normalize(json_results);
    let pb_results = normalize(pb_results);
    assert_eq!(json_results.len(), requests().len());
    for (i, (j, p)) in json_results.iter().zip(&pb_results).enumerate() {
        assert_eq!(j, p, "result {i} differs between JSON and Protobuf");
    }
    // Spot checks that the scenario did what it says.
    assert!(matches!(
        &pb_results[9],
        StreamResult::Ok {
            response: StreamResponse::GetAutocommit {
                is_autocommit: false
            }
        }
    ));
    assert!(matches!(&pb_results[10], StreamResult::Error { .. }));
    assert!(matches!(&pb_results[13], StreamResult::Error { .. }));
    match &pb_results[4] {
        StreamResult::Ok {
            response: StreamResponse::Execute { result },
        } => {
            assert_eq!(result.rows.len(), 2);
            assert_eq!(result.rows[0][1], Value::Integer(i64::MIN));
            assert_eq!(result.rows[0][3], Value::Blob(vec![0, 0, 7]));
            match result.rows[0][2] {
                Value::Float(f) => assert_eq!(f.to_bits(), (-0.0f64).to_bits()),
                ref other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(json_entries, pb_entries);
    assert!(pb_entries
        .iter()
        .any(|e| matches!(e, CursorEntry::StepError { step: 2, .. })));
    assert_eq!(
        pb_entries
            .iter()
            .filter(|e| matches!(e, CursorEntry::Row { .. }))
            .count(),
        4
    );
}

#[tokio::test]
async fn protobuf_probe_and_bad_bodies() {
    let server = TestServer::start().await;
    let r = common::get(server.addr, "/v3-protobuf").await;
    assert_eq!(r.status, 200);
    // Not Protobuf at all.
    let r = common::post_raw(server.addr, "/v3-protobuf/pipeline", vec![0xff, 0xff, 0xff]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert!(r.text().contains("invalid Protobuf"), "{}", r.text());
    // A StreamRequest with no request set.
    let raw = skylite_proto::pb::hrana::http::PipelineReqBody {
        baton: None,
        requests: vec![skylite_proto::pb::hrana::http::StreamRequest { request: None }],
    };
    let r = common::post_raw(
        server.addr,
        "/v3-protobuf/pipeline",
        prost::Message::encode_to_vec(&raw),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("`request` is missing in StreamRequest"),
        "{}",
        r.text()
    );
    // A cursor without its batch.
    let raw = skylite_proto::pb::hrana::http::CursorReqBody {
        baton: None,
        batch: None,
    };
    let r = common::post_raw(
        server.addr,
        "/v3-protobuf/cursor",
        prost::Message::encode_to_vec(&raw),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("`batch` is missing"), "{}", r.text());
    // An empty body is a valid, empty pipeline.
    let r = common::post_raw(server.addr, "/v3-protobuf/pipeline", Vec::new()).await;
    assert_eq!(r.status, 200);
    let resp: PipelineRespBody = protobuf::decode(&r.body).unwrap();
    assert!(resp.results.is_empty());
    assert_eq!(common::server_panics(), 0);
}
