//! The benchmark's workloads: what one request is and how its response is judged.
//!
//! Every request starts as a [`Draw`] (the random values it carries). The HTTP side renders a
//! draw as the JSON body of `POST /v2/pipeline` ([`Draw::write_json`]); the in-process side
//! turns the same draw into the [`StreamRequest`]s the server would have parsed from that body
//! ([`Draw::to_requests`]). Both sides then judge the [`StreamResult`]s with [`check`], so they
//! do exactly the same work apart from the network, HTTP and JSON. The WebSocket side renders
//! the same request as a `request` message on its open stream ([`Draw::write_ws_json`]) and
//! judges the answer with [`check_ws`], the same checks in the WebSocket envelope.

use skylite_proto::ws::{Response as WsResponse, ServerMsg};
use skylite_proto::{
    Batch, BatchCond, BatchStep, Stmt, StreamRequest, StreamResponse, StreamResult, Value,
};

/// Rows inserted by one request of the `batches` workload.
pub const BATCH_ROWS: usize = 100;

/// The point read.
const READ_SQL: &str = "SELECT v FROM bench_kv WHERE id = ?";
/// The single-row insert (also each row of a batch).
const INSERT_SQL: &str = "INSERT INTO bench_ins(a, b) VALUES (?, ?)";

/// Index of the `COMMIT` step in a batch: `BEGIN`, then the inserts, then `COMMIT`.
const COMMIT_STEP: usize = BATCH_ROWS + 1;
/// Steps in a batch: `BEGIN`, the inserts, `COMMIT`, `ROLLBACK`.
const BATCH_STEPS: usize = BATCH_ROWS + 3;

/// One kind of request the benchmark sends over and over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// `SELECT v FROM bench_kv WHERE id = ?` with a random existing id.
    Reads,
    /// One autocommit `INSERT INTO bench_ins` per request.
    Inserts,
    /// One batch per request: `BEGIN`, 100 inserts, `COMMIT` (or `ROLLBACK` on failure).
    Batches,
}

impl Workload {
    /// Name used in the results table.
    pub fn label(self) -> &'static str {
        match self {
            Workload::Reads => "point reads",
            Workload::Inserts => "inserts",
            Workload::Batches => "batches x100",
        }
    }
}

/// A small, fast pseudo-random generator (xorshift64*); statistical quality is irrelevant
/// here, only speed and a spread of keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        // One splitmix64 round spreads nearby seeds apart and never yields zero here.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(z | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One inserted row: an integer and a short text made of hex digits (never needs escaping).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    a: i64,
    b: String,
}

impl Row {
    fn random(rng: &mut Rng) -> Row {
        Row {
            // Keep it within 2^53 so every JSON reader agrees on it.
            a: (rng.next_u64() >> 11) as i64,
            b: format!("b-{:016x}", rng.next_u64()),
        }
    }
}

/// The random values of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Draw {
    /// Read the row with this id.
    Read(i64),
    /// Insert one row.
    Insert(Row),
    /// Insert these rows in one transaction.
    Batch(Vec<Row>),
}

impl Draw {
    /// Draws the values of one request of `workload`; reads pick an id in `1..=rows`.
    pub fn new(workload: Workload, rng: &mut Rng, rows: u64) -> Draw {
        match workload {
            Workload::Reads => Draw::Read(1 + rng.below(rows) as i64),
            Workload::Inserts => Draw::Insert(Row::random(rng)),
            Workload::Batches => Draw::Batch((0..BATCH_ROWS).map(|_| Row::random(rng)).collect()),
        }
    }

    /// Appends the JSON body of the pipeline (the request, then `close`) to `buf`.
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(br#"{"baton":null,"requests":["#);
        self.write_request_json(buf, None);
        buf.extend_from_slice(br#",{"type":"close"}]}"#);
    }

    /// Appends the Hrana over WebSocket `request` message that carries the same request on
    /// stream `stream_id` under id `request_id` (no `close`: the stream stays open).
    pub fn write_ws_json(&self, buf: &mut Vec<u8>, request_id: i32, stream_id: i32) {
        buf.extend_from_slice(br#"{"type":"request","request_id":"#);
        push_decimal(buf, i64::from(request_id));
        buf.extend_from_slice(br#","request":"#);
        self.write_request_json(buf, Some(stream_id));
        buf.push(b'}');
    }

    /// Appends the request object (`execute` or `batch`); with `stream_id`, it carries the
    /// `stream_id` field that Hrana over WebSocket requests need.
    fn write_request_json(&self, buf: &mut Vec<u8>, stream_id: Option<i32>) {
        let push_stream = |buf: &mut Vec<u8>| {
            if let Some(id) = stream_id {
                buf.extend_from_slice(br#""stream_id":"#);
                push_decimal(buf, i64::from(id));
                buf.push(b',');
            }
        };
        match self {
            Draw::Read(id) => {
                buf.extend_from_slice(br#"{"type":"execute","#);
                push_stream(buf);
                buf.extend_from_slice(br#""stmt":{"sql":""#);
                buf.extend_from_slice(READ_SQL.as_bytes());
                buf.extend_from_slice(br#"","args":["#);
                push_integer(buf, *id);
                buf.extend_from_slice(b"]}}");
            }
            Draw::Insert(row) => {
                buf.extend_from_slice(br#"{"type":"execute","#);
                push_stream(buf);
                buf.extend_from_slice(br#""stmt":"#);
                push_insert_stmt(buf, row);
                buf.push(b'}');
            }
            Draw::Batch(rows) => {
                buf.extend_from_slice(br#"{"type":"batch","#);
                push_stream(buf);
                buf.extend_from_slice(br#""batch":{"steps":[{"stmt":{"sql":"BEGIN"}}"#);
                for (i, row) in rows.iter().enumerate() {
                    buf.extend_from_slice(br#",{"condition":{"type":"ok","step":"#);
                    push_decimal(buf, i as i64);
                    buf.extend_from_slice(br#"},"stmt":"#);
                    push_insert_stmt(buf, row);
                    buf.push(b'}');
                }
                let last = rows.len() as i64;
                buf.extend_from_slice(br#",{"condition":{"type":"ok","step":"#);
                push_decimal(buf, last);
                buf.extend_from_slice(br#"},"stmt":{"sql":"COMMIT"}}"#);
                buf.extend_from_slice(
                    br#",{"condition":{"type":"not","cond":{"type":"ok","step":"#,
                );
                push_decimal(buf, last + 1);
                buf.extend_from_slice(br#"}},"stmt":{"sql":"ROLLBACK"}}]}}"#);
            }
        }
    }

    /// The stream requests the server parses from [`Draw::write_json`]'s body.
    pub fn to_requests(&self) -> Vec<StreamRequest> {
        let first = match self {
            Draw::Read(id) => StreamRequest::Execute {
                stmt: Stmt {
                    args: vec![Value::Integer(*id)],
                    ..Stmt::new(READ_SQL)
                },
            },
            Draw::Insert(row) => StreamRequest::Execute {
                stmt: insert_stmt(row),
            },
            Draw::Batch(rows) => {
                let mut steps = Vec::with_capacity(rows.len() + 3);
                steps.push(BatchStep {
                    condition: None,
                    stmt: Stmt::new("BEGIN"),
                });
                for (i, row) in rows.iter().enumerate() {
                    steps.push(BatchStep {
                        condition: Some(BatchCond::Ok { step: i as u32 }),
                        stmt: insert_stmt(row),
                    });
                }
                let last = rows.len() as u32;
                steps.push(BatchStep {
                    condition: Some(BatchCond::Ok { step: last }),
                    stmt: Stmt::new("COMMIT"),
                });
                steps.push(BatchStep {
                    condition: Some(BatchCond::Not {
                        cond: Box::new(BatchCond::Ok { step: last + 1 }),
                    }),
                    stmt: Stmt::new("ROLLBACK"),
                });
                StreamRequest::Batch {
                    batch: Batch { steps },
                }
            }
        };
        vec![first, StreamRequest::Close]
    }
}

fn insert_stmt(row: &Row) -> Stmt {
    Stmt {
        args: vec![Value::Integer(row.a), Value::Text(row.b.clone())],
        ..Stmt::new(INSERT_SQL)
    }
}

fn push_insert_stmt(buf: &mut Vec<u8>, row: &Row) {
    buf.extend_from_slice(br#"{"sql":""#);
    buf.extend_from_slice(INSERT_SQL.as_bytes());
    buf.extend_from_slice(br#"","args":["#);
    push_integer(buf, row.a);
    buf.extend_from_slice(br#",{"type":"text","value":""#);
    // Hex digits and a dash: nothing to escape.
    buf.extend_from_slice(row.b.as_bytes());
    buf.extend_from_slice(br#""}]}"#);
}

/// A Hrana integer value: `{"type":"integer","value":"<n>"}` (the value is a string).
fn push_integer(buf: &mut Vec<u8>, n: i64) {
    buf.extend_from_slice(br#"{"type":"integer","value":""#);
    push_decimal(buf, n);
    buf.extend_from_slice(br#""}"#);
}

/// Appends `n` in decimal without allocating.
fn push_decimal(buf: &mut Vec<u8>, n: i64) {
    if n < 0 {
        buf.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut v = n.unsigned_abs();
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend(digits[..len].iter().rev());
}

/// The statements that create and fill the tables: `bench_kv` with `rows` rows
/// (`id` 1..=rows, a ~40-byte text each) and an empty `bench_ins`.
pub fn setup_requests(rows: u64) -> Vec<StreamRequest> {
    let exec = |sql: String| StreamRequest::Execute {
        stmt: Stmt::new(sql),
    };
    vec![
        exec("CREATE TABLE IF NOT EXISTS bench_kv(id INTEGER PRIMARY KEY, v TEXT)".into()),
        exec("CREATE TABLE IF NOT EXISTS bench_ins(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)".into()),
        exec(format!(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {rows}) \
             INSERT INTO bench_kv(id, v) SELECT x, printf('value-%010d-', x) || hex(randomblob(12)) FROM n"
        )),
        exec("SELECT count(*) FROM bench_kv".into()),
        StreamRequest::Close,
    ]
}

/// Checks the results of [`setup_requests`]: every request succeeded and the table holds
/// `rows` rows.
pub fn check_setup(results: &[StreamResult], rows: u64) -> Result<(), String> {
    for (i, r) in results.iter().enumerate() {
        if let StreamResult::Error { error } = r {
            return Err(format!(
                "setup statement {i} failed: {}",
                describe_error(error)
            ));
        }
    }
    let count = match results.get(3) {
        Some(StreamResult::Ok {
            response: StreamResponse::Execute { result },
        }) => result.rows.first().and_then(|r| r.first()).cloned(),
        _ => None,
    };
    match count {
        Some(Value::Integer(n)) if n as u64 == rows => Ok(()),
        other => Err(format!(
            "setup: bench_kv should hold {rows} rows, the count returned {other:?}"
        )),
    }
}

fn describe_error(e: &skylite_proto::Error) -> String {
    format!("{} ({})", e.message, e.code.as_deref().unwrap_or("no code"))
}

/// Judges the results of one pipeline of `workload`: the request succeeded with the expected
/// effect (a row read, a row inserted, a batch committed) and the stream was closed.
pub fn check(workload: Workload, results: &[StreamResult]) -> Result<(), String> {
    if results.len() != 2 {
        return Err(format!("expected 2 results, got {}", results.len()));
    }
    let response = match &results[0] {
        StreamResult::Ok { response } => response,
        StreamResult::Error { error } => return Err(describe_error(error)),
    };
    match &results[1] {
        StreamResult::Ok {
            response: StreamResponse::Close,
        } => {}
        other => return Err(format!("close failed: {other:?}")),
    }
    check_response(workload, response)
}

/// Judges the response to one request of `workload` on a WebSocket stream: a `response_ok`
/// with the expected effect (a row read, a row inserted, a batch committed). The caller has
/// already matched its request id.
pub fn check_ws(workload: Workload, msg: ServerMsg) -> Result<(), String> {
    let response = match msg {
        ServerMsg::ResponseOk { response, .. } => response,
        ServerMsg::ResponseError { error, .. } => return Err(describe_error(&error)),
        other => return Err(format!("unexpected message {other:?}")),
    };
    // The same results as over HTTP, in the WebSocket envelope.
    let response = match response {
        WsResponse::Execute { result } => StreamResponse::Execute { result },
        WsResponse::Batch { result } => StreamResponse::Batch { result },
        other => return Err(format!("unexpected response {other:?}")),
    };
    check_response(workload, &response)
}

/// Judges the response to the request itself (not the `close`) of one pipeline.
fn check_response(workload: Workload, response: &StreamResponse) -> Result<(), String> {
    match (workload, response) {
        (Workload::Reads, StreamResponse::Execute { result }) => {
            if result.rows.len() == 1 {
                Ok(())
            } else {
                Err(format!("point read returned {} rows", result.rows.len()))
            }
        }
        (Workload::Inserts, StreamResponse::Execute { result }) => {
            if result.affected_row_count == 1 {
                Ok(())
            } else {
                Err(format!(
                    "insert affected {} rows",
                    result.affected_row_count
                ))
            }
        }
        (Workload::Batches, StreamResponse::Batch { result }) => {
            if let Some((step, Some(e))) = result
                .step_errors
                .iter()
                .enumerate()
                .find(|(_, e)| e.is_some())
            {
                return Err(format!("batch step {step} failed: {}", describe_error(e)));
            }
            let ran = |i: usize| result.step_results.get(i).is_some_and(|r| r.is_some());
            if result.step_results.len() != BATCH_STEPS {
                Err(format!(
                    "batch returned {} step results, expected {BATCH_STEPS}",
                    result.step_results.len()
                ))
            } else if !(0..=COMMIT_STEP).all(ran) || ran(COMMIT_STEP + 1) {
                Err("batch did not commit".into())
            } else {
                Ok(())
            }
        }
        (_, other) => Err(format!("unexpected response {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skylite_proto::PipelineReqBody;

    #[test]
    fn json_bodies_parse_to_the_in_process_requests() {
        let mut rng = Rng::new(7);
        for workload in [Workload::Reads, Workload::Inserts, Workload::Batches] {
            let draw = Draw::new(workload, &mut rng, 1000);
            let mut buf = Vec::new();
            draw.write_json(&mut buf);
            let parsed: PipelineReqBody = serde_json::from_slice(&buf)
                .unwrap_or_else(|e| panic!("{workload:?}: {e}: {}", String::from_utf8_lossy(&buf)));
            assert_eq!(parsed.baton, None);
            assert_eq!(parsed.requests, draw.to_requests(), "{workload:?}");
        }
    }

    #[test]
    fn ws_messages_parse_to_the_in_process_requests() {
        use skylite_proto::ws::{ClientMsg, Request};
        let mut rng = Rng::new(11);
        for workload in [Workload::Reads, Workload::Inserts, Workload::Batches] {
            let draw = Draw::new(workload, &mut rng, 1000);
            let mut buf = Vec::new();
            draw.write_ws_json(&mut buf, 42, 7);
            let parsed: ClientMsg = serde_json::from_slice(&buf)
                .unwrap_or_else(|e| panic!("{workload:?}: {e}: {}", String::from_utf8_lossy(&buf)));
            let ClientMsg::Request {
                request_id,
                request,
            } = parsed
            else {
                panic!("{workload:?}: not a request");
            };
            assert_eq!(request_id, 42);
            assert_eq!(request.stream_id(), Some(7));
            let as_stream: Result<StreamRequest, Request> = request.into_stream_request();
            assert_eq!(
                as_stream.ok().as_ref(),
                draw.to_requests().first(),
                "{workload:?}"
            );
        }
    }

    #[test]
    fn decimals_and_ranges() {
        for n in [0i64, 7, -7, 1234567890, i64::MIN, i64::MAX] {
            let mut buf = Vec::new();
            push_decimal(&mut buf, n);
            assert_eq!(String::from_utf8(buf).unwrap(), n.to_string());
        }
        let mut rng = Rng::new(0);
        assert!((0..10_000).all(|_| rng.below(10) < 10));
        match Draw::new(Workload::Reads, &mut rng, 1) {
            Draw::Read(id) => assert_eq!(id, 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_shape() {
        let draw = Draw::new(Workload::Batches, &mut Rng::new(1), 10);
        match &draw.to_requests()[0] {
            StreamRequest::Batch { batch } => assert_eq!(batch.steps.len(), BATCH_STEPS),
            other => panic!("{other:?}"),
        }
    }
}
