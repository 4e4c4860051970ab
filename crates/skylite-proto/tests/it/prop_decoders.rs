//! Property tests for every decoder of `skylite-proto` that a client's bytes reach: Hrana JSON
//! bodies (pipeline, cursor, `/v1` and legacy bodies, values), Protobuf bodies (prost plus the
//! required-field checks of `protobuf.rs`) and WebSocket client messages in both encodings.
//!
//! Three kinds of property:
//! - round trips: what the server or a client encodes decodes to the same value;
//! - mutations of valid encodings (flipped bytes, truncation, splices, insertions) and
//!   arbitrary input never panic: decoding returns `Ok` or `Err`;
//! - deep nesting (conditions inside conditions) is refused, not a stack overflow.
//!
//! Cases per property come from `PROPTEST_CASES` (default small, so the suite stays quick in a
//! debug build); `scripts/fuzz.sh` runs them much longer.

use proptest::prelude::*;
use proptest::test_runner::Config;
use skylite_proto::legacy::{LegacyQuery, PlainValue, V1BatchReq, V1ExecuteReq};
use skylite_proto::protobuf::{self, FromProto};
use skylite_proto::ws::{ClientMsg, Request};
use skylite_proto::*;

/// Cases per property: `PROPTEST_CASES`, or `default` (kept small for the everyday suite).
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // Failures print their minimal input; nothing is written next to the sources.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- strategies -----------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        // SQL-ish text with quotes, semicolons and escapes.
        "[a-zA-Z0-9 ;'\"\\\\(),*=?:@$\\-\\n]{0,40}",
    ]
}

/// Every value, with floats restricted to finite ones (JSON has no NaN or infinity).
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        proptest::num::f64::NORMAL
            .prop_union(proptest::num::f64::SUBNORMAL)
            .or(proptest::num::f64::ZERO)
            .prop_map(Value::Float),
        text().prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Blob),
    ]
}

fn named_arg() -> impl Strategy<Value = NamedArg> {
    (text(), value()).prop_map(|(name, value)| NamedArg { name, value })
}

fn stmt() -> impl Strategy<Value = Stmt> {
    (
        proptest::option::of(text()),
        proptest::option::of(any::<i32>()),
        proptest::collection::vec(value(), 0..4),
        proptest::collection::vec(named_arg(), 0..3),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(sql, sql_id, args, named_args, want_rows)| Stmt {
            sql,
            sql_id,
            args,
            named_args,
            want_rows,
        })
}

fn batch_cond() -> impl Strategy<Value = BatchCond> {
    let leaf = prop_oneof![
        any::<u32>().prop_map(|step| BatchCond::Ok { step }),
        any::<u32>().prop_map(|step| BatchCond::Error { step }),
        Just(BatchCond::IsAutocommit),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|c| BatchCond::Not { cond: Box::new(c) }),
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|conds| BatchCond::And { conds }),
            proptest::collection::vec(inner, 0..4).prop_map(|conds| BatchCond::Or { conds }),
        ]
    })
}

fn batch() -> impl Strategy<Value = Batch> {
    proptest::collection::vec(
        (proptest::option::of(batch_cond()), stmt())
            .prop_map(|(condition, stmt)| BatchStep { condition, stmt }),
        0..4,
    )
    .prop_map(|steps| Batch { steps })
}

fn stream_request() -> impl Strategy<Value = StreamRequest> {
    prop_oneof![
        Just(StreamRequest::Close),
        stmt().prop_map(|stmt| StreamRequest::Execute { stmt }),
        batch().prop_map(|batch| StreamRequest::Batch { batch }),
        (
            proptest::option::of(text()),
            proptest::option::of(any::<i32>())
        )
            .prop_map(|(sql, sql_id)| StreamRequest::Sequence { sql, sql_id }),
        (
            proptest::option::of(text()),
            proptest::option::of(any::<i32>())
        )
            .prop_map(|(sql, sql_id)| StreamRequest::Describe { sql, sql_id }),
        (any::<i32>(), text()).prop_map(|(sql_id, sql)| StreamRequest::StoreSql { sql_id, sql }),
        any::<i32>().prop_map(|sql_id| StreamRequest::CloseSql { sql_id }),
        Just(StreamRequest::GetAutocommit),
    ]
}

fn pipeline() -> impl Strategy<Value = PipelineReqBody> {
    (
        proptest::option::of("[A-Za-z0-9_-]{0,40}"),
        proptest::collection::vec(stream_request(), 0..5),
    )
        .prop_map(|(baton, requests)| PipelineReqBody { baton, requests })
}

fn cursor_body() -> impl Strategy<Value = CursorReqBody> {
    (proptest::option::of("[A-Za-z0-9_-]{0,40}"), batch())
        .prop_map(|(baton, batch)| CursorReqBody { baton, batch })
}

fn ws_request() -> impl Strategy<Value = Request> {
    let id = any::<i32>;
    prop_oneof![
        id().prop_map(|stream_id| Request::OpenStream { stream_id }),
        id().prop_map(|stream_id| Request::CloseStream { stream_id }),
        (id(), stmt()).prop_map(|(stream_id, stmt)| Request::Execute { stream_id, stmt }),
        (id(), batch()).prop_map(|(stream_id, batch)| Request::Batch { stream_id, batch }),
        (id(), id(), batch()).prop_map(|(stream_id, cursor_id, batch)| Request::OpenCursor {
            stream_id,
            cursor_id,
            batch
        }),
        id().prop_map(|cursor_id| Request::CloseCursor { cursor_id }),
        (id(), any::<u32>()).prop_map(|(cursor_id, max_count)| Request::FetchCursor {
            cursor_id,
            max_count
        }),
        (
            id(),
            proptest::option::of(text()),
            proptest::option::of(id())
        )
            .prop_map(|(stream_id, sql, sql_id)| Request::Sequence {
                stream_id,
                sql,
                sql_id
            }),
        (
            id(),
            proptest::option::of(text()),
            proptest::option::of(id())
        )
            .prop_map(|(stream_id, sql, sql_id)| Request::Describe {
                stream_id,
                sql,
                sql_id
            }),
        (id(), text()).prop_map(|(sql_id, sql)| Request::StoreSql { sql_id, sql }),
        id().prop_map(|sql_id| Request::CloseSql { sql_id }),
        id().prop_map(|stream_id| Request::GetAutocommit { stream_id }),
    ]
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        proptest::option::of(".{0,40}").prop_map(|jwt| ClientMsg::Hello { jwt }),
        (any::<i32>(), ws_request()).prop_map(|(request_id, request)| ClientMsg::Request {
            request_id,
            request
        }),
    ]
}

/// A mutation of a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte (position taken modulo the length).
    Flip(usize, u8),
    /// Keep only a prefix.
    Truncate(usize),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Replace a range with another range of the same input (a splice).
    Splice(usize, usize, usize),
    /// Remove a range.
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                // Bytes that matter to JSON and to Protobuf length prefixes.
                proptest::sample::select(vec![
                    b"{".to_vec(),
                    b"}".to_vec(),
                    b"[".to_vec(),
                    b"\"".to_vec(),
                    b"\\u".to_vec(),
                    b"null".to_vec(),
                    b"1e999999".to_vec(),
                    b"-".to_vec(),
                    vec![0xff, 0xff, 0xff, 0xff, 0x0f],
                    vec![0x80],
                    vec![0x0a, 0x7f],
                ]),
            ]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
        (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(input: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = input.to_vec();
    for m in mutations {
        let len = out.len();
        match m {
            Mutation::Flip(i, x) if len > 0 => out[i % len] ^= x,
            Mutation::Flip(..) => {}
            Mutation::Truncate(n) => out.truncate(n % (len + 1)),
            Mutation::Insert(i, bytes) => {
                let at = i % (len + 1);
                out.splice(at..at, bytes.iter().copied());
            }
            Mutation::Splice(from, to, dest) if len > 0 => {
                let a = from % len;
                let b = a + (to % (len - a + 1));
                let piece = out[a..b].to_vec();
                let at = dest % (len + 1);
                out.splice(at..at, piece);
            }
            Mutation::Splice(..) => {}
            Mutation::Remove(i, n) => {
                let a = i % (len + 1);
                let b = (a + n).min(len);
                out.drain(a..b);
            }
        }
    }
    out
}

/// Every JSON decoder a client reaches over HTTP or WebSocket; none may panic.
fn decode_all_json(bytes: &[u8]) {
    let _ = serde_json::from_slice::<PipelineReqBody>(bytes);
    let _ = serde_json::from_slice::<CursorReqBody>(bytes);
    let _ = serde_json::from_slice::<LegacyQuery>(bytes);
    let _ = serde_json::from_slice::<V1ExecuteReq>(bytes);
    let _ = serde_json::from_slice::<V1BatchReq>(bytes);
    let _ = serde_json::from_slice::<ClientMsg>(bytes);
    let _ = serde_json::from_slice::<Value>(bytes);
    let _ = serde_json::from_slice::<PlainValue>(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = serde_json::from_str::<ClientMsg>(text);
        let _ = decode_base64(text);
    }
}

/// Every Protobuf decoder a client reaches; none may panic.
fn decode_all_protobuf(bytes: &[u8]) {
    let _ = protobuf::decode::<PipelineReqBody>(bytes);
    let _ = protobuf::decode::<CursorReqBody>(bytes);
    let _ = protobuf::decode::<ClientMsg>(bytes);
    let _ = protobuf::decode::<Stmt>(bytes);
    let _ = protobuf::decode::<Value>(bytes);
    let mut buf = bytes;
    while !buf.is_empty() {
        if protobuf::decode_length_delimited::<CursorEntry>(&mut buf).is_err() {
            break;
        }
    }
}

// ---- round trips ----------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn value_json_round_trip(v in value()) {
        let json = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &v);
        if let (Value::Float(a), Value::Float(b)) = (&back, &v) {
            prop_assert_eq!(a.to_bits(), b.to_bits(), "float bits changed: {}", json);
        }
    }

    #[test]
    fn value_protobuf_round_trip_any_float(v in value(), bits in any::<u64>()) {
        // Protobuf carries every double, NaN and infinities included, bit for bit.
        for v in [v, Value::Float(f64::from_bits(bits))] {
            let bytes = protobuf::encode(v.clone());
            let back: Value = protobuf::decode(&bytes).unwrap();
            match (&back, &v) {
                (Value::Float(a), Value::Float(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                _ => prop_assert_eq!(&back, &v),
            }
        }
    }

    #[test]
    fn base64_round_trip_padded_or_not(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let unpadded = encode_base64(&bytes);
        prop_assert_eq!(decode_base64(&unpadded).unwrap(), bytes.clone());
        let padded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
        prop_assert_eq!(decode_base64(&padded).unwrap(), bytes);
    }

    #[test]
    fn pipeline_json_round_trip(body in pipeline()) {
        let json = serde_json::to_vec(&body).unwrap();
        let back: PipelineReqBody = serde_json::from_slice(&json).unwrap();
        prop_assert_eq!(back, body);
    }

    #[test]
    fn pipeline_protobuf_round_trip(body in pipeline()) {
        let bytes = protobuf::encode(body.clone());
        let back: PipelineReqBody = protobuf::decode(&bytes).unwrap();
        prop_assert_eq!(back, body);
    }

    #[test]
    fn cursor_json_and_protobuf_round_trip(body in cursor_body()) {
        let json = serde_json::to_vec(&body).unwrap();
        prop_assert_eq!(serde_json::from_slice::<CursorReqBody>(&json).unwrap(), body.clone());
        let bytes = protobuf::encode(body.clone());
        prop_assert_eq!(protobuf::decode::<CursorReqBody>(&bytes).unwrap(), body);
    }

    #[test]
    fn ws_client_msg_json_and_protobuf_round_trip(msg in client_msg()) {
        let json = serde_json::to_string(&msg).unwrap();
        prop_assert_eq!(serde_json::from_str::<ClientMsg>(&json).unwrap(), msg.clone());
        let bytes = protobuf::encode(msg.clone());
        prop_assert_eq!(protobuf::decode::<ClientMsg>(&bytes).unwrap(), msg);
    }

    #[test]
    fn v1_bodies_round_trip(stmt in stmt(), batch in batch()) {
        let exec = V1ExecuteReq { stmt };
        let json = serde_json::to_vec(&exec).unwrap();
        prop_assert_eq!(serde_json::from_slice::<V1ExecuteReq>(&json).unwrap(), exec);
        let batch = V1BatchReq { batch };
        let json = serde_json::to_vec(&batch).unwrap();
        prop_assert_eq!(serde_json::from_slice::<V1BatchReq>(&json).unwrap(), batch);
    }

    #[test]
    fn plain_values_round_trip(v in value()) {
        // Legacy values are plain JSON; a float that is a whole number may come back as an
        // integer of the same value, which SQLite compares equal.
        let json = serde_json::to_string(&PlainValue(v.clone())).unwrap();
        let back: PlainValue = serde_json::from_str(&json).unwrap();
        match (&back.0, &v) {
            (Value::Integer(i), Value::Float(f)) => prop_assert_eq!(*i as f64, *f),
            _ => prop_assert_eq!(&back.0, &v),
        }
    }

    #[test]
    fn legacy_query_decodes_what_clients_send(
        stmts in proptest::collection::vec((text(), proptest::collection::vec(value(), 0..3)), 0..4)
    ) {
        let json = serde_json::json!({
            "statements": stmts.iter().map(|(q, params)| serde_json::json!({
                "q": q,
                "params": params.iter().map(|p| serde_json::to_value(PlainValue(p.clone())).unwrap())
                    .collect::<Vec<_>>(),
            })).collect::<Vec<_>>()
        });
        let query: LegacyQuery = serde_json::from_value(json).unwrap();
        prop_assert_eq!(query.statements.len(), stmts.len());
        for (got, (q, _)) in query.statements.iter().zip(&stmts) {
            prop_assert_eq!(&got.q, q);
        }
    }
}

// ---- mutations and arbitrary input ------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_json_bodies_never_panic(
        body in pipeline(),
        cursor in cursor_body(),
        msg in client_msg(),
        which in 0..3u8,
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let valid = match which {
            0 => serde_json::to_vec(&body).unwrap(),
            1 => serde_json::to_vec(&cursor).unwrap(),
            _ => serde_json::to_vec(&msg).unwrap(),
        };
        decode_all_json(&apply(&valid, &mutations));
    }

    #[test]
    fn mutated_protobuf_bodies_never_panic(
        body in pipeline(),
        cursor in cursor_body(),
        msg in client_msg(),
        which in 0..3u8,
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let valid = match which {
            0 => protobuf::encode(body),
            1 => protobuf::encode(cursor),
            _ => protobuf::encode(msg),
        };
        decode_all_protobuf(&apply(&valid, &mutations));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_all_json(&bytes);
        decode_all_protobuf(&bytes);
    }

    #[test]
    fn arbitrary_json_values_never_panic(json in arbitrary_json()) {
        let bytes = serde_json::to_vec(&json).unwrap();
        decode_all_json(&bytes);
        // The same shapes wrapped where a request or a value is expected.
        for wrapped in [
            serde_json::json!({"baton": null, "requests": [json.clone()]}),
            serde_json::json!({"baton": null, "batch": {"steps": [{"stmt": json.clone()}]}}),
            serde_json::json!({"requests": [{"type": "execute", "stmt": {"sql": "SELECT ?", "args": [json.clone()]}}]}),
            serde_json::json!({"type": "request", "request_id": 1, "request": json.clone()}),
            serde_json::json!({"statements": [json.clone()]}),
            serde_json::json!({"statements": [{"q": "SELECT ?", "params": json.clone()}]}),
        ] {
            decode_all_json(&serde_json::to_vec(&wrapped).unwrap());
        }
    }

    #[test]
    fn hrana_values_from_arbitrary_fields_never_panic(
        ty in prop_oneof![
            proptest::sample::select(vec!["null", "integer", "float", "text", "blob"]).prop_map(str::to_owned),
            ".{0,8}",
        ],
        value in arbitrary_json(),
        base64 in arbitrary_json(),
    ) {
        for json in [
            serde_json::json!({"type": ty, "value": value}),
            serde_json::json!({"type": ty, "base64": base64}),
            serde_json::json!({"type": ty, "value": value, "base64": base64}),
        ] {
            if let Ok(v) = serde_json::from_value::<Value>(json) {
                // Whatever decodes re-encodes, and the encoding decodes to the same value.
                let again = serde_json::to_string(&v).unwrap();
                let back: Value = serde_json::from_str(&again).unwrap();
                match (&back, &v) {
                    (Value::Float(a), Value::Float(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                    _ => prop_assert_eq!(&back, &v),
                }
            }
        }
    }

    #[test]
    fn integers_as_strings_decode_exactly(i in any::<i64>(), pad in "[ \t]{0,2}") {
        let json = serde_json::json!({"type": "integer", "value": format!("{pad}{i}{pad}")});
        prop_assert_eq!(serde_json::from_value::<Value>(json).unwrap(), Value::Integer(i));
        // Out of range or not a number: an error, not a wrapped or truncated value.
        let too_big = format!("{}0", i64::MAX);
        let json = serde_json::json!({"type": "integer", "value": too_big});
        prop_assert!(serde_json::from_value::<Value>(json).is_err());
    }
}

fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        any::<u64>().prop_map(|u| serde_json::json!(u)),
        proptest::num::f64::NORMAL.prop_map(|f| serde_json::json!(f)),
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
            "open_cursor",
            "fetch_cursor",
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
            "9223372036854775808",
            "-0",
            "AAAA",
            "====",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
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

// ---- nesting --------------------------------------------------------------

/// A JSON batch condition nested `depth` times inside `not`.
fn nested_json_cond(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 30);
    for _ in 0..depth {
        s.push_str(r#"{"type":"not","cond":"#);
    }
    s.push_str(r#"{"type":"ok","step":0}"#);
    for _ in 0..depth {
        s.push('}');
    }
    format!(
        r#"{{"baton":null,"requests":[{{"type":"batch","batch":{{"steps":[{{"condition":{},"stmt":{{"sql":"SELECT 1"}}}}]}}}}]}}"#,
        s
    )
}

#[test]
fn deeply_nested_json_conditions_are_refused_not_a_stack_overflow() {
    // Shallow nesting decodes; very deep nesting is an error (serde_json's recursion limit).
    assert!(serde_json::from_str::<PipelineReqBody>(&nested_json_cond(20)).is_ok());
    for depth in [200, 10_000, 200_000] {
        let body = nested_json_cond(depth);
        assert!(
            serde_json::from_str::<PipelineReqBody>(&body).is_err(),
            "depth {depth}"
        );
        // Arrays nested deep anywhere, too.
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(serde_json::from_str::<PipelineReqBody>(&arrays).is_err());
        assert!(serde_json::from_str::<ClientMsg>(&arrays).is_err());
    }
}

#[test]
fn deeply_nested_protobuf_conditions_are_refused_not_a_stack_overflow() {
    use skylite_proto::pb::hrana as pb;
    // Built as bytes by hand (a message nested 100_000 times cannot even be built as a Rust
    // value without recursion): BatchCond { not: BatchCond { not: ... } }. Field numbers are
    // taken from the generated code so this follows the schema.
    fn nested(depth: usize) -> Vec<u8> {
        let leaf = pb::BatchCond {
            cond: Some(pb::batch_cond::Cond::StepOk(0)),
        };
        let mut bytes = prost::Message::encode_to_vec(&leaf);
        // The `not` field's tag: encode a one-level `not` around an empty message and read it.
        let probe = pb::BatchCond {
            cond: Some(pb::batch_cond::Cond::Not(Box::default())),
        };
        let probe = prost::Message::encode_to_vec(&probe);
        let tag = probe[0];
        for _ in 0..depth {
            let mut outer = vec![tag];
            prost::encoding::encode_varint(bytes.len() as u64, &mut outer);
            outer.extend_from_slice(&bytes);
            bytes = outer;
        }
        bytes
    }
    assert!(<BatchCond as FromProto>::from_proto(
        <pb::BatchCond as prost::Message>::decode(nested(20).as_slice()).unwrap()
    )
    .is_ok());
    for depth in [200, 10_000] {
        let bytes = nested(depth);
        assert!(
            protobuf::decode::<BatchCond>(&bytes).is_err(),
            "depth {depth} decoded"
        );
    }
}

#[test]
fn huge_declared_lengths_do_not_allocate_or_panic() {
    // A Protobuf length prefix claiming 2^62 bytes, and a JSON string claiming nothing: both fail
    // fast without reserving memory for what they claim.
    let mut bytes = vec![0x0a];
    prost::encoding::encode_varint(1 << 62, &mut bytes);
    bytes.extend_from_slice(b"abc");
    assert!(protobuf::decode::<PipelineReqBody>(&bytes).is_err());
    let mut buf: &[u8] = &bytes[1..];
    assert!(protobuf::decode_length_delimited::<CursorEntry>(&mut buf).is_err());
}
