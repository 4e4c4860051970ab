//! The Protobuf encoding of Hrana 3: conversions between this crate's domain types and the
//! messages generated from `proto/*.proto` ([`crate::pb`]), and helpers to encode and decode
//! bytes.
//!
//! Encoding is infallible ([`IntoProto`]); decoding ([`FromProto`]) checks what the schema cannot:
//! a message whose required `oneof` is unset (a `Value` with no value, a `StreamRequest` with
//! no request), or a required sub-message that is absent, is a [`DecodeError`] naming the
//! message and the field, never a panic and never a silent default.
//!
//! Differences from the JSON encoding that the schema imposes:
//! - `StmtResult` has no `rows_read`, `rows_written`, `query_duration_ms` in the spec's schema;
//!   they are not sent and decode as zero.
//! - `BatchResult` is two maps keyed by step index, so the number of steps is not carried: a
//!   decoded result is as long as its highest step with an entry, plus one (trailing skipped
//!   steps are lost). Indices beyond [`MAX_DECODED_STEPS`] are refused.

use prost::Message;

mod hrana;
mod http;
mod ws;

/// Highest batch step index (exclusive) a decoded `BatchResult` may name.
pub const MAX_DECODED_STEPS: u32 = 1 << 20;

/// Why bytes could not be decoded into a Hrana structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are not a valid Protobuf encoding of the expected message.
    Malformed(String),
    /// A required field or `oneof` is not set.
    Missing {
        /// The message it belongs to.
        message: &'static str,
        /// The field (or `oneof`) that is missing.
        field: &'static str,
    },
    /// A field holds a value the protocol does not allow.
    Invalid(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(e) => write!(f, "invalid Protobuf message: {e}"),
            DecodeError::Missing { message, field } => {
                write!(
                    f,
                    "invalid Protobuf message: `{field}` is missing in {message}"
                )
            }
            DecodeError::Invalid(e) => write!(f, "invalid Protobuf message: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<prost::DecodeError> for DecodeError {
    fn from(e: prost::DecodeError) -> Self {
        DecodeError::Malformed(e.to_string())
    }
}

/// A domain type with a Protobuf form.
pub trait IntoProto {
    /// The generated message.
    type Proto: Message + Default;
    /// Converts into the message.
    fn into_proto(self) -> Self::Proto;
}

/// A domain type that can be read from its Protobuf form.
pub trait FromProto: Sized {
    /// The generated message.
    type Proto: Message + Default;
    /// Converts from the message, checking required fields.
    fn from_proto(proto: Self::Proto) -> Result<Self, DecodeError>;
}

/// Encodes a value as one Protobuf message.
pub fn encode<T: IntoProto>(value: T) -> Vec<u8> {
    value.into_proto().encode_to_vec()
}

/// Appends a value as a length-delimited Protobuf message (a varint length, then the message).
pub fn encode_length_delimited<T: IntoProto>(value: T, buf: &mut Vec<u8>) {
    let msg = value.into_proto();
    let len = msg.encoded_len();
    buf.reserve(len + prost::length_delimiter_len(len));
    // Writing into a Vec cannot run out of space.
    let _ = msg.encode_length_delimited(buf);
}

/// Decodes one Protobuf message.
pub fn decode<T: FromProto>(bytes: &[u8]) -> Result<T, DecodeError> {
    T::from_proto(T::Proto::decode(bytes)?)
}

/// Decodes one length-delimited message from the front of `buf` and advances past it.
pub fn decode_length_delimited<T: FromProto>(buf: &mut &[u8]) -> Result<T, DecodeError> {
    T::from_proto(T::Proto::decode_length_delimited(buf)?)
}

pub(super) fn required<T>(
    v: Option<T>,
    message: &'static str,
    field: &'static str,
) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::Missing { message, field })
}

pub(super) fn into_vec<T: IntoProto>(v: Vec<T>) -> Vec<T::Proto> {
    v.into_iter().map(T::into_proto).collect()
}

pub(super) fn from_vec<T: FromProto>(v: Vec<T::Proto>) -> Result<Vec<T>, DecodeError> {
    v.into_iter().map(T::from_proto).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::hrana as pb;
    use crate::ws;
    use crate::{
        Batch, BatchCond, BatchResult, BatchStep, Col, CursorEntry, CursorReqBody, CursorRespBody,
        DescribeCol, DescribeParam, DescribeResult, Error, NamedArg, PipelineReqBody,
        PipelineRespBody, Stmt, StmtResult, StreamRequest, StreamResponse, StreamResult, Value,
    };

    fn sample_values() -> Vec<Value> {
        let mut v = vec![
            Value::Null,
            Value::Integer(0),
            Value::Integer(-1),
            Value::Integer(-42),
            Value::Integer(i64::MIN),
            Value::Integer(i64::MAX),
            Value::Integer(9_007_199_254_740_993),
            Value::Text(String::new()),
            Value::Text("héllo wörld ✓ 🌍 \u{0} tab\t".into()),
            Value::Blob(Vec::new()),
            Value::Blob(vec![0, 0, 1, 0, 255, 0]),
        ];
        for f in [
            0.0,
            -0.0,
            0.1,
            -2.5,
            1e300,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            5e-324,                                // the smallest subnormal
            f64::from_bits(0x000f_ffff_ffff_ffff), // the largest subnormal
            f64::from_bits(0x0000_0000_1234_5678),
            std::f64::consts::PI,
        ] {
            v.push(Value::Float(f));
        }
        v
    }

    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    #[test]
    fn every_value_round_trips_through_json_and_protobuf() {
        for v in sample_values() {
            let json: Value = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert!(same(&v, &json), "JSON: {v:?} came back as {json:?}");
            let pb: Value = decode(&encode(v.clone())).unwrap();
            assert!(same(&v, &pb), "Protobuf: {v:?} came back as {pb:?}");
        }
        // Non-finite floats have no JSON form but do have a Protobuf one.
        for f in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let back: Value = decode(&encode(Value::Float(f))).unwrap();
            assert!(same(&Value::Float(f), &back));
        }
    }

    fn stmt() -> Stmt {
        Stmt {
            sql: Some("SELECT ?, :a".into()),
            sql_id: None,
            args: sample_values(),
            named_args: vec![NamedArg {
                name: ":a".into(),
                value: Value::Blob(vec![0, 1]),
            }],
            want_rows: Some(false),
        }
    }

    fn batch() -> Batch {
        Batch {
            steps: vec![
                BatchStep {
                    condition: None,
                    stmt: Stmt::new("BEGIN"),
                },
                BatchStep {
                    condition: Some(BatchCond::And {
                        conds: vec![
                            BatchCond::Ok { step: 0 },
                            BatchCond::Not {
                                cond: Box::new(BatchCond::Error { step: 0 }),
                            },
                            BatchCond::Or {
                                conds: vec![BatchCond::IsAutocommit],
                            },
                            BatchCond::Or { conds: vec![] },
                        ],
                    }),
                    stmt: Stmt {
                        sql: None,
                        sql_id: Some(-3),
                        ..stmt()
                    },
                },
            ],
        }
    }

    fn stmt_result() -> StmtResult {
        StmtResult {
            cols: vec![
                Col {
                    name: Some("a".into()),
                    decltype: Some("INTEGER".into()),
                },
                Col {
                    name: None,
                    decltype: None,
                },
            ],
            rows: vec![sample_values(), vec![], vec![Value::Null]],
            affected_row_count: 3,
            last_insert_rowid: Some(i64::MIN),
            // Not in the Protobuf schema.
            rows_read: 0,
            rows_written: 0,
            query_duration_ms: 0.0,
        }
    }

    fn batch_result() -> BatchResult {
        BatchResult {
            step_results: vec![Some(stmt_result()), None, None, Some(StmtResult::default())],
            step_errors: vec![None, None, Some(Error::new("SQLITE_ERROR", "boom")), None],
        }
    }

    fn describe_result() -> DescribeResult {
        DescribeResult {
            params: vec![
                DescribeParam { name: None },
                DescribeParam {
                    name: Some(":a".into()),
                },
            ],
            cols: vec![DescribeCol {
                name: "x".into(),
                decltype: Some("TEXT".into()),
            }],
            is_explain: true,
            is_readonly: false,
        }
    }

    fn cursor_entries() -> Vec<CursorEntry> {
        vec![
            CursorEntry::StepBegin {
                step: 0,
                cols: stmt_result().cols,
            },
            CursorEntry::Row {
                row: sample_values(),
            },
            CursorEntry::Row { row: vec![] },
            CursorEntry::StepEnd {
                affected_row_count: 0,
                last_insert_rowid: None,
            },
            CursorEntry::StepEnd {
                affected_row_count: u64::MAX,
                last_insert_rowid: Some(-5),
            },
            CursorEntry::StepError {
                step: 7,
                error: Error {
                    message: "m".into(),
                    code: None,
                },
            },
            CursorEntry::Error {
                error: Error::new("INTERNAL", "x"),
            },
        ]
    }

    fn round_trip<T>(v: T)
    where
        T: IntoProto + FromProto + Clone + PartialEq + std::fmt::Debug,
    {
        let bytes = encode(v.clone());
        let back: T = decode(&bytes).unwrap();
        assert_eq!(back, v);
        let mut framed = Vec::new();
        encode_length_delimited(v.clone(), &mut framed);
        encode_length_delimited(v.clone(), &mut framed);
        let mut rest = &framed[..];
        assert_eq!(decode_length_delimited::<T>(&mut rest).unwrap(), v);
        assert_eq!(decode_length_delimited::<T>(&mut rest).unwrap(), v);
        assert!(rest.is_empty());
    }

    #[test]
    fn shared_structures_round_trip() {
        round_trip(stmt());
        round_trip(batch());
        round_trip(stmt_result());
        round_trip(batch_result());
        round_trip(BatchResult::default());
        round_trip(describe_result());
        round_trip(Error::new("C", "m"));
        for e in cursor_entries() {
            round_trip(e);
        }
    }

    fn stream_requests() -> Vec<StreamRequest> {
        vec![
            StreamRequest::Close,
            StreamRequest::Execute { stmt: stmt() },
            StreamRequest::Batch { batch: batch() },
            StreamRequest::Sequence {
                sql: Some("SELECT 1; SELECT 2".into()),
                sql_id: None,
            },
            StreamRequest::Sequence {
                sql: None,
                sql_id: Some(4),
            },
            StreamRequest::Describe {
                sql: Some("SELECT ?".into()),
                sql_id: None,
            },
            StreamRequest::StoreSql {
                sql_id: i32::MIN,
                sql: "SELECT 1".into(),
            },
            StreamRequest::CloseSql { sql_id: 9 },
            StreamRequest::GetAutocommit,
        ]
    }

    fn stream_responses() -> Vec<StreamResponse> {
        vec![
            StreamResponse::Close,
            StreamResponse::Execute {
                result: stmt_result(),
            },
            StreamResponse::Batch {
                result: batch_result(),
            },
            StreamResponse::Sequence,
            StreamResponse::Describe {
                result: describe_result(),
            },
            StreamResponse::StoreSql,
            StreamResponse::CloseSql,
            StreamResponse::GetAutocommit {
                is_autocommit: false,
            },
            StreamResponse::GetAutocommit {
                is_autocommit: true,
            },
        ]
    }

    #[test]
    fn http_bodies_round_trip() {
        for r in stream_requests() {
            round_trip(r);
        }
        for r in stream_responses() {
            round_trip(StreamResult::Ok { response: r });
        }
        round_trip(StreamResult::Error {
            error: Error::new("SQLITE_CONSTRAINT_UNIQUE", "UNIQUE constraint failed: t.a"),
        });
        round_trip(PipelineReqBody {
            baton: None,
            requests: stream_requests(),
        });
        round_trip(PipelineReqBody {
            baton: Some("b".into()),
            requests: vec![],
        });
        round_trip(PipelineRespBody {
            baton: Some("next".into()),
            base_url: Some("https://example.com".into()),
            results: stream_responses()
                .into_iter()
                .map(|response| StreamResult::Ok { response })
                .collect(),
        });
        round_trip(CursorReqBody {
            baton: None,
            batch: batch(),
        });
        round_trip(CursorRespBody {
            baton: None,
            base_url: None,
        });
    }

    #[test]
    fn websocket_messages_round_trip() {
        round_trip(ws::ClientMsg::Hello { jwt: None });
        round_trip(ws::ClientMsg::Hello {
            jwt: Some("token".into()),
        });
        let requests = vec![
            ws::Request::OpenStream { stream_id: 1 },
            ws::Request::CloseStream { stream_id: -1 },
            ws::Request::Execute {
                stream_id: 1,
                stmt: stmt(),
            },
            ws::Request::Batch {
                stream_id: 1,
                batch: batch(),
            },
            ws::Request::OpenCursor {
                stream_id: 1,
                cursor_id: 2,
                batch: batch(),
            },
            ws::Request::CloseCursor { cursor_id: 2 },
            ws::Request::FetchCursor {
                cursor_id: 2,
                max_count: u32::MAX,
            },
            ws::Request::Sequence {
                stream_id: 1,
                sql: None,
                sql_id: Some(3),
            },
            ws::Request::Describe {
                stream_id: 1,
                sql: Some("SELECT 1".into()),
                sql_id: None,
            },
            ws::Request::StoreSql {
                sql_id: 3,
                sql: "SELECT 1".into(),
            },
            ws::Request::CloseSql { sql_id: 3 },
            ws::Request::GetAutocommit { stream_id: 1 },
        ];
        for (i, request) in requests.into_iter().enumerate() {
            round_trip(ws::ClientMsg::Request {
                request_id: i as i32 - 5,
                request,
            });
        }
        let responses = vec![
            ws::Response::OpenStream,
            ws::Response::CloseStream,
            ws::Response::Execute {
                result: stmt_result(),
            },
            ws::Response::Batch {
                result: batch_result(),
            },
            ws::Response::OpenCursor,
            ws::Response::CloseCursor,
            ws::Response::FetchCursor {
                entries: cursor_entries(),
                done: true,
            },
            ws::Response::FetchCursor {
                entries: vec![],
                done: false,
            },
            ws::Response::Sequence,
            ws::Response::Describe {
                result: describe_result(),
            },
            ws::Response::StoreSql,
            ws::Response::CloseSql,
            ws::Response::GetAutocommit {
                is_autocommit: true,
            },
        ];
        for (i, response) in responses.into_iter().enumerate() {
            round_trip(ws::ServerMsg::ResponseOk {
                request_id: i as i32,
                response,
            });
        }
        round_trip(ws::ServerMsg::HelloOk);
        round_trip(ws::ServerMsg::HelloError {
            error: Error::new("AUTH", "no"),
        });
        round_trip(ws::ServerMsg::ResponseError {
            request_id: i32::MAX,
            error: Error::new("X", "y"),
        });
    }

    #[test]
    fn missing_oneofs_and_fields_are_clear_errors() {
        let err = decode::<Value>(&pb::Value { value: None }.encode_to_vec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Protobuf message: `value` is missing in Value"
        );
        let err = decode::<ws::ClientMsg>(&[]).unwrap_err();
        assert!(
            err.to_string().contains("`msg` is missing in ClientMsg"),
            "{err}"
        );
        let req = pb::ws::ClientMsg {
            msg: Some(pb::ws::client_msg::Msg::Request(pb::ws::RequestMsg {
                request_id: 1,
                request: None,
            })),
        };
        let err = decode::<ws::ClientMsg>(&req.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("`request` is missing"), "{err}");
        let body = pb::http::PipelineReqBody {
            baton: None,
            requests: vec![pb::http::StreamRequest {
                request: Some(pb::http::stream_request::Request::Execute(
                    pb::http::ExecuteStreamReq { stmt: None },
                )),
            }],
        };
        let err = decode::<PipelineReqBody>(&body.encode_to_vec()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`stmt` is missing in ExecuteStreamReq"),
            "{err}"
        );
        let err = decode::<PipelineReqBody>(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
        let mut huge = pb::BatchResult::default();
        huge.step_errors.insert(u32::MAX, pb::Error::default());
        let err = decode::<BatchResult>(&huge.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // A Value with an extra field 15 (varint 1) before the integer.
        let mut bytes = vec![15 << 3, 1];
        bytes.extend(encode(Value::Integer(-3)));
        assert_eq!(decode::<Value>(&bytes).unwrap(), Value::Integer(-3));
    }
}
