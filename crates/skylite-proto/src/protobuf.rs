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

use crate::pb::hrana as pb;
use crate::ws;
use crate::{
    Batch, BatchCond, BatchResult, BatchStep, Col, CursorEntry, CursorReqBody, CursorRespBody,
    DescribeCol, DescribeParam, DescribeResult, Error, NamedArg, PipelineReqBody, PipelineRespBody,
    Stmt, StmtResult, StreamRequest, StreamResponse, StreamResult, Value,
};

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

fn required<T>(v: Option<T>, message: &'static str, field: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::Missing { message, field })
}

fn into_vec<T: IntoProto>(v: Vec<T>) -> Vec<T::Proto> {
    v.into_iter().map(T::into_proto).collect()
}

fn from_vec<T: FromProto>(v: Vec<T::Proto>) -> Result<Vec<T>, DecodeError> {
    v.into_iter().map(T::from_proto).collect()
}

impl IntoProto for Value {
    type Proto = pb::Value;
    fn into_proto(self) -> pb::Value {
        use pb::value::Value as V;
        pb::Value {
            value: Some(match self {
                Value::Null => V::Null(pb::value::Null {}),
                Value::Integer(i) => V::Integer(i),
                Value::Float(f) => V::Float(f),
                Value::Text(s) => V::Text(s),
                Value::Blob(b) => V::Blob(b),
            }),
        }
    }
}

impl FromProto for Value {
    type Proto = pb::Value;
    fn from_proto(p: pb::Value) -> Result<Self, DecodeError> {
        use pb::value::Value as V;
        Ok(match required(p.value, "Value", "value")? {
            V::Null(_) => Value::Null,
            V::Integer(i) => Value::Integer(i),
            V::Float(f) => Value::Float(f),
            V::Text(s) => Value::Text(s),
            V::Blob(b) => Value::Blob(b),
        })
    }
}

impl IntoProto for Error {
    type Proto = pb::Error;
    fn into_proto(self) -> pb::Error {
        pb::Error {
            message: self.message,
            code: self.code,
        }
    }
}

impl FromProto for Error {
    type Proto = pb::Error;
    fn from_proto(p: pb::Error) -> Result<Self, DecodeError> {
        Ok(Error {
            message: p.message,
            code: p.code,
        })
    }
}

impl IntoProto for NamedArg {
    type Proto = pb::NamedArg;
    fn into_proto(self) -> pb::NamedArg {
        pb::NamedArg {
            name: self.name,
            value: Some(self.value.into_proto()),
        }
    }
}

impl FromProto for NamedArg {
    type Proto = pb::NamedArg;
    fn from_proto(p: pb::NamedArg) -> Result<Self, DecodeError> {
        Ok(NamedArg {
            name: p.name,
            value: Value::from_proto(required(p.value, "NamedArg", "value")?)?,
        })
    }
}

impl IntoProto for Stmt {
    type Proto = pb::Stmt;
    fn into_proto(self) -> pb::Stmt {
        pb::Stmt {
            sql: self.sql,
            sql_id: self.sql_id,
            args: into_vec(self.args),
            named_args: into_vec(self.named_args),
            want_rows: self.want_rows,
        }
    }
}

impl FromProto for Stmt {
    type Proto = pb::Stmt;
    fn from_proto(p: pb::Stmt) -> Result<Self, DecodeError> {
        Ok(Stmt {
            sql: p.sql,
            sql_id: p.sql_id,
            args: from_vec(p.args)?,
            named_args: from_vec(p.named_args)?,
            want_rows: p.want_rows,
        })
    }
}

impl IntoProto for Col {
    type Proto = pb::Col;
    fn into_proto(self) -> pb::Col {
        pb::Col {
            name: self.name,
            decltype: self.decltype,
        }
    }
}

impl FromProto for Col {
    type Proto = pb::Col;
    fn from_proto(p: pb::Col) -> Result<Self, DecodeError> {
        Ok(Col {
            name: p.name,
            decltype: p.decltype,
        })
    }
}

fn row_into_proto(row: Vec<Value>) -> pb::Row {
    pb::Row {
        values: into_vec(row),
    }
}

fn row_from_proto(row: pb::Row) -> Result<Vec<Value>, DecodeError> {
    from_vec(row.values)
}

impl IntoProto for StmtResult {
    type Proto = pb::StmtResult;
    fn into_proto(self) -> pb::StmtResult {
        pb::StmtResult {
            cols: into_vec(self.cols),
            rows: self.rows.into_iter().map(row_into_proto).collect(),
            affected_row_count: self.affected_row_count,
            last_insert_rowid: self.last_insert_rowid,
        }
    }
}

impl FromProto for StmtResult {
    type Proto = pb::StmtResult;
    fn from_proto(p: pb::StmtResult) -> Result<Self, DecodeError> {
        Ok(StmtResult {
            cols: from_vec(p.cols)?,
            rows: p
                .rows
                .into_iter()
                .map(row_from_proto)
                .collect::<Result<_, _>>()?,
            affected_row_count: p.affected_row_count,
            last_insert_rowid: p.last_insert_rowid,
            rows_read: 0,
            rows_written: 0,
            query_duration_ms: 0.0,
        })
    }
}

impl IntoProto for BatchCond {
    type Proto = pb::BatchCond;
    fn into_proto(self) -> pb::BatchCond {
        use pb::batch_cond::{Cond as C, CondList, IsAutocommit};
        pb::BatchCond {
            cond: Some(match self {
                BatchCond::Ok { step } => C::StepOk(step),
                BatchCond::Error { step } => C::StepError(step),
                BatchCond::Not { cond } => C::Not(Box::new((*cond).into_proto())),
                BatchCond::And { conds } => C::And(CondList {
                    conds: into_vec(conds),
                }),
                BatchCond::Or { conds } => C::Or(CondList {
                    conds: into_vec(conds),
                }),
                BatchCond::IsAutocommit => C::IsAutocommit(IsAutocommit {}),
            }),
        }
    }
}

impl FromProto for BatchCond {
    type Proto = pb::BatchCond;
    fn from_proto(p: pb::BatchCond) -> Result<Self, DecodeError> {
        use pb::batch_cond::Cond as C;
        Ok(match required(p.cond, "BatchCond", "cond")? {
            C::StepOk(step) => BatchCond::Ok { step },
            C::StepError(step) => BatchCond::Error { step },
            C::Not(cond) => BatchCond::Not {
                cond: Box::new(BatchCond::from_proto(*cond)?),
            },
            C::And(list) => BatchCond::And {
                conds: from_vec(list.conds)?,
            },
            C::Or(list) => BatchCond::Or {
                conds: from_vec(list.conds)?,
            },
            C::IsAutocommit(_) => BatchCond::IsAutocommit,
        })
    }
}

impl IntoProto for BatchStep {
    type Proto = pb::BatchStep;
    fn into_proto(self) -> pb::BatchStep {
        pb::BatchStep {
            condition: self.condition.map(IntoProto::into_proto),
            stmt: Some(self.stmt.into_proto()),
        }
    }
}

impl FromProto for BatchStep {
    type Proto = pb::BatchStep;
    fn from_proto(p: pb::BatchStep) -> Result<Self, DecodeError> {
        Ok(BatchStep {
            condition: p.condition.map(BatchCond::from_proto).transpose()?,
            stmt: Stmt::from_proto(required(p.stmt, "BatchStep", "stmt")?)?,
        })
    }
}

impl IntoProto for Batch {
    type Proto = pb::Batch;
    fn into_proto(self) -> pb::Batch {
        pb::Batch {
            steps: into_vec(self.steps),
        }
    }
}

impl FromProto for Batch {
    type Proto = pb::Batch;
    fn from_proto(p: pb::Batch) -> Result<Self, DecodeError> {
        Ok(Batch {
            steps: from_vec(p.steps)?,
        })
    }
}

impl IntoProto for BatchResult {
    type Proto = pb::BatchResult;
    fn into_proto(self) -> pb::BatchResult {
        let mut out = pb::BatchResult::default();
        for (i, r) in self.step_results.into_iter().enumerate() {
            if let Some(r) = r {
                out.step_results.insert(i as u32, r.into_proto());
            }
        }
        for (i, e) in self.step_errors.into_iter().enumerate() {
            if let Some(e) = e {
                out.step_errors.insert(i as u32, e.into_proto());
            }
        }
        out
    }
}

impl FromProto for BatchResult {
    type Proto = pb::BatchResult;
    fn from_proto(p: pb::BatchResult) -> Result<Self, DecodeError> {
        let highest = p
            .step_results
            .keys()
            .chain(p.step_errors.keys())
            .copied()
            .max();
        let len = match highest {
            None => 0,
            Some(h) if h < MAX_DECODED_STEPS => h as usize + 1,
            Some(h) => {
                return Err(DecodeError::Invalid(format!(
                    "batch step index {h} is too large (limit {MAX_DECODED_STEPS})"
                )))
            }
        };
        let mut out = BatchResult {
            step_results: vec![None; len],
            step_errors: vec![None; len],
        };
        for (i, r) in p.step_results {
            out.step_results[i as usize] = Some(StmtResult::from_proto(r)?);
        }
        for (i, e) in p.step_errors {
            out.step_errors[i as usize] = Some(Error::from_proto(e)?);
        }
        Ok(out)
    }
}

impl IntoProto for CursorEntry {
    type Proto = pb::CursorEntry;
    fn into_proto(self) -> pb::CursorEntry {
        use pb::cursor_entry::Entry as E;
        pb::CursorEntry {
            entry: Some(match self {
                CursorEntry::StepBegin { step, cols } => E::StepBegin(pb::StepBeginEntry {
                    step,
                    cols: into_vec(cols),
                }),
                CursorEntry::StepEnd {
                    affected_row_count,
                    last_insert_rowid,
                } => E::StepEnd(pb::StepEndEntry {
                    affected_row_count,
                    last_insert_rowid,
                }),
                CursorEntry::StepError { step, error } => E::StepError(pb::StepErrorEntry {
                    step,
                    error: Some(error.into_proto()),
                }),
                CursorEntry::Row { row } => E::Row(row_into_proto(row)),
                CursorEntry::Error { error } => E::Error(error.into_proto()),
            }),
        }
    }
}

impl FromProto for CursorEntry {
    type Proto = pb::CursorEntry;
    fn from_proto(p: pb::CursorEntry) -> Result<Self, DecodeError> {
        use pb::cursor_entry::Entry as E;
        Ok(match required(p.entry, "CursorEntry", "entry")? {
            E::StepBegin(b) => CursorEntry::StepBegin {
                step: b.step,
                cols: from_vec(b.cols)?,
            },
            E::StepEnd(e) => CursorEntry::StepEnd {
                affected_row_count: e.affected_row_count,
                last_insert_rowid: e.last_insert_rowid,
            },
            E::StepError(e) => CursorEntry::StepError {
                step: e.step,
                error: Error::from_proto(required(e.error, "StepErrorEntry", "error")?)?,
            },
            E::Row(row) => CursorEntry::Row {
                row: row_from_proto(row)?,
            },
            E::Error(error) => CursorEntry::Error {
                error: Error::from_proto(error)?,
            },
        })
    }
}

impl IntoProto for DescribeResult {
    type Proto = pb::DescribeResult;
    fn into_proto(self) -> pb::DescribeResult {
        pb::DescribeResult {
            params: self
                .params
                .into_iter()
                .map(|p| pb::DescribeParam { name: p.name })
                .collect(),
            cols: self
                .cols
                .into_iter()
                .map(|c| pb::DescribeCol {
                    name: c.name,
                    decltype: c.decltype,
                })
                .collect(),
            is_explain: self.is_explain,
            is_readonly: self.is_readonly,
        }
    }
}

impl FromProto for DescribeResult {
    type Proto = pb::DescribeResult;
    fn from_proto(p: pb::DescribeResult) -> Result<Self, DecodeError> {
        Ok(DescribeResult {
            params: p
                .params
                .into_iter()
                .map(|p| DescribeParam { name: p.name })
                .collect(),
            cols: p
                .cols
                .into_iter()
                .map(|c| DescribeCol {
                    name: c.name,
                    decltype: c.decltype,
                })
                .collect(),
            is_explain: p.is_explain,
            is_readonly: p.is_readonly,
        })
    }
}

// ---- Hrana over HTTP ----

impl IntoProto for StreamRequest {
    type Proto = pb::http::StreamRequest;
    fn into_proto(self) -> pb::http::StreamRequest {
        use pb::http as h;
        use pb::http::stream_request::Request as R;
        h::StreamRequest {
            request: Some(match self {
                StreamRequest::Close => R::Close(h::CloseStreamReq {}),
                StreamRequest::Execute { stmt } => R::Execute(h::ExecuteStreamReq {
                    stmt: Some(stmt.into_proto()),
                }),
                StreamRequest::Batch { batch } => R::Batch(h::BatchStreamReq {
                    batch: Some(batch.into_proto()),
                }),
                StreamRequest::Sequence { sql, sql_id } => {
                    R::Sequence(h::SequenceStreamReq { sql, sql_id })
                }
                StreamRequest::Describe { sql, sql_id } => {
                    R::Describe(h::DescribeStreamReq { sql, sql_id })
                }
                StreamRequest::StoreSql { sql_id, sql } => {
                    R::StoreSql(h::StoreSqlStreamReq { sql_id, sql })
                }
                StreamRequest::CloseSql { sql_id } => R::CloseSql(h::CloseSqlStreamReq { sql_id }),
                StreamRequest::GetAutocommit => R::GetAutocommit(h::GetAutocommitStreamReq {}),
            }),
        }
    }
}

impl FromProto for StreamRequest {
    type Proto = pb::http::StreamRequest;
    fn from_proto(p: pb::http::StreamRequest) -> Result<Self, DecodeError> {
        use pb::http::stream_request::Request as R;
        Ok(match required(p.request, "StreamRequest", "request")? {
            R::Close(_) => StreamRequest::Close,
            R::Execute(r) => StreamRequest::Execute {
                stmt: Stmt::from_proto(required(r.stmt, "ExecuteStreamReq", "stmt")?)?,
            },
            R::Batch(r) => StreamRequest::Batch {
                batch: Batch::from_proto(required(r.batch, "BatchStreamReq", "batch")?)?,
            },
            R::Sequence(r) => StreamRequest::Sequence {
                sql: r.sql,
                sql_id: r.sql_id,
            },
            R::Describe(r) => StreamRequest::Describe {
                sql: r.sql,
                sql_id: r.sql_id,
            },
            R::StoreSql(r) => StreamRequest::StoreSql {
                sql_id: r.sql_id,
                sql: r.sql,
            },
            R::CloseSql(r) => StreamRequest::CloseSql { sql_id: r.sql_id },
            R::GetAutocommit(_) => StreamRequest::GetAutocommit,
        })
    }
}

impl IntoProto for StreamResponse {
    type Proto = pb::http::StreamResponse;
    fn into_proto(self) -> pb::http::StreamResponse {
        use pb::http as h;
        use pb::http::stream_response::Response as R;
        h::StreamResponse {
            response: Some(match self {
                StreamResponse::Close => R::Close(h::CloseStreamResp {}),
                StreamResponse::Execute { result } => R::Execute(h::ExecuteStreamResp {
                    result: Some(result.into_proto()),
                }),
                StreamResponse::Batch { result } => R::Batch(h::BatchStreamResp {
                    result: Some(result.into_proto()),
                }),
                StreamResponse::Sequence => R::Sequence(h::SequenceStreamResp {}),
                StreamResponse::Describe { result } => R::Describe(h::DescribeStreamResp {
                    result: Some(result.into_proto()),
                }),
                StreamResponse::StoreSql => R::StoreSql(h::StoreSqlStreamResp {}),
                StreamResponse::CloseSql => R::CloseSql(h::CloseSqlStreamResp {}),
                StreamResponse::GetAutocommit { is_autocommit } => {
                    R::GetAutocommit(h::GetAutocommitStreamResp { is_autocommit })
                }
            }),
        }
    }
}

impl FromProto for StreamResponse {
    type Proto = pb::http::StreamResponse;
    fn from_proto(p: pb::http::StreamResponse) -> Result<Self, DecodeError> {
        use pb::http::stream_response::Response as R;
        Ok(match required(p.response, "StreamResponse", "response")? {
            R::Close(_) => StreamResponse::Close,
            R::Execute(r) => StreamResponse::Execute {
                result: StmtResult::from_proto(required(r.result, "ExecuteStreamResp", "result")?)?,
            },
            R::Batch(r) => StreamResponse::Batch {
                result: BatchResult::from_proto(required(r.result, "BatchStreamResp", "result")?)?,
            },
            R::Sequence(_) => StreamResponse::Sequence,
            R::Describe(r) => StreamResponse::Describe {
                result: DescribeResult::from_proto(required(
                    r.result,
                    "DescribeStreamResp",
                    "result",
                )?)?,
            },
            R::StoreSql(_) => StreamResponse::StoreSql,
            R::CloseSql(_) => StreamResponse::CloseSql,
            R::GetAutocommit(r) => StreamResponse::GetAutocommit {
                is_autocommit: r.is_autocommit,
            },
        })
    }
}

impl IntoProto for StreamResult {
    type Proto = pb::http::StreamResult;
    fn into_proto(self) -> pb::http::StreamResult {
        use pb::http::stream_result::Result as R;
        pb::http::StreamResult {
            result: Some(match self {
                StreamResult::Ok { response } => R::Ok(response.into_proto()),
                StreamResult::Error { error } => R::Error(error.into_proto()),
            }),
        }
    }
}

impl FromProto for StreamResult {
    type Proto = pb::http::StreamResult;
    fn from_proto(p: pb::http::StreamResult) -> Result<Self, DecodeError> {
        use pb::http::stream_result::Result as R;
        Ok(match required(p.result, "StreamResult", "result")? {
            R::Ok(response) => StreamResult::Ok {
                response: StreamResponse::from_proto(response)?,
            },
            R::Error(error) => StreamResult::Error {
                error: Error::from_proto(error)?,
            },
        })
    }
}

impl IntoProto for PipelineReqBody {
    type Proto = pb::http::PipelineReqBody;
    fn into_proto(self) -> pb::http::PipelineReqBody {
        pb::http::PipelineReqBody {
            baton: self.baton,
            requests: into_vec(self.requests),
        }
    }
}

impl FromProto for PipelineReqBody {
    type Proto = pb::http::PipelineReqBody;
    fn from_proto(p: pb::http::PipelineReqBody) -> Result<Self, DecodeError> {
        Ok(PipelineReqBody {
            baton: p.baton,
            requests: from_vec(p.requests)?,
        })
    }
}

impl IntoProto for PipelineRespBody {
    type Proto = pb::http::PipelineRespBody;
    fn into_proto(self) -> pb::http::PipelineRespBody {
        pb::http::PipelineRespBody {
            baton: self.baton,
            base_url: self.base_url,
            results: into_vec(self.results),
        }
    }
}

impl FromProto for PipelineRespBody {
    type Proto = pb::http::PipelineRespBody;
    fn from_proto(p: pb::http::PipelineRespBody) -> Result<Self, DecodeError> {
        Ok(PipelineRespBody {
            baton: p.baton,
            base_url: p.base_url,
            results: from_vec(p.results)?,
        })
    }
}

impl IntoProto for CursorReqBody {
    type Proto = pb::http::CursorReqBody;
    fn into_proto(self) -> pb::http::CursorReqBody {
        pb::http::CursorReqBody {
            baton: self.baton,
            batch: Some(self.batch.into_proto()),
        }
    }
}

impl FromProto for CursorReqBody {
    type Proto = pb::http::CursorReqBody;
    fn from_proto(p: pb::http::CursorReqBody) -> Result<Self, DecodeError> {
        Ok(CursorReqBody {
            baton: p.baton,
            batch: Batch::from_proto(required(p.batch, "CursorReqBody", "batch")?)?,
        })
    }
}

impl IntoProto for CursorRespBody {
    type Proto = pb::http::CursorRespBody;
    fn into_proto(self) -> pb::http::CursorRespBody {
        pb::http::CursorRespBody {
            baton: self.baton,
            base_url: self.base_url,
        }
    }
}

impl FromProto for CursorRespBody {
    type Proto = pb::http::CursorRespBody;
    fn from_proto(p: pb::http::CursorRespBody) -> Result<Self, DecodeError> {
        Ok(CursorRespBody {
            baton: p.baton,
            base_url: p.base_url,
        })
    }
}

// ---- Hrana over WebSocket ----

fn request_into_proto(r: ws::Request) -> pb::ws::request_msg::Request {
    use pb::ws as w;
    use pb::ws::request_msg::Request as R;
    match r {
        ws::Request::OpenStream { stream_id } => R::OpenStream(w::OpenStreamReq { stream_id }),
        ws::Request::CloseStream { stream_id } => R::CloseStream(w::CloseStreamReq { stream_id }),
        ws::Request::Execute { stream_id, stmt } => R::Execute(w::ExecuteReq {
            stream_id,
            stmt: Some(stmt.into_proto()),
        }),
        ws::Request::Batch { stream_id, batch } => R::Batch(w::BatchReq {
            stream_id,
            batch: Some(batch.into_proto()),
        }),
        ws::Request::OpenCursor {
            stream_id,
            cursor_id,
            batch,
        } => R::OpenCursor(w::OpenCursorReq {
            stream_id,
            cursor_id,
            batch: Some(batch.into_proto()),
        }),
        ws::Request::CloseCursor { cursor_id } => R::CloseCursor(w::CloseCursorReq { cursor_id }),
        ws::Request::FetchCursor {
            cursor_id,
            max_count,
        } => R::FetchCursor(w::FetchCursorReq {
            cursor_id,
            max_count,
        }),
        ws::Request::Sequence {
            stream_id,
            sql,
            sql_id,
        } => R::Sequence(w::SequenceReq {
            stream_id,
            sql,
            sql_id,
        }),
        ws::Request::Describe {
            stream_id,
            sql,
            sql_id,
        } => R::Describe(w::DescribeReq {
            stream_id,
            sql,
            sql_id,
        }),
        ws::Request::StoreSql { sql_id, sql } => R::StoreSql(w::StoreSqlReq { sql_id, sql }),
        ws::Request::CloseSql { sql_id } => R::CloseSql(w::CloseSqlReq { sql_id }),
        ws::Request::GetAutocommit { stream_id } => {
            R::GetAutocommit(w::GetAutocommitReq { stream_id })
        }
    }
}

fn request_from_proto(r: pb::ws::request_msg::Request) -> Result<ws::Request, DecodeError> {
    use pb::ws::request_msg::Request as R;
    Ok(match r {
        R::OpenStream(r) => ws::Request::OpenStream {
            stream_id: r.stream_id,
        },
        R::CloseStream(r) => ws::Request::CloseStream {
            stream_id: r.stream_id,
        },
        R::Execute(r) => ws::Request::Execute {
            stream_id: r.stream_id,
            stmt: Stmt::from_proto(required(r.stmt, "ExecuteReq", "stmt")?)?,
        },
        R::Batch(r) => ws::Request::Batch {
            stream_id: r.stream_id,
            batch: Batch::from_proto(required(r.batch, "BatchReq", "batch")?)?,
        },
        R::OpenCursor(r) => ws::Request::OpenCursor {
            stream_id: r.stream_id,
            cursor_id: r.cursor_id,
            batch: Batch::from_proto(required(r.batch, "OpenCursorReq", "batch")?)?,
        },
        R::CloseCursor(r) => ws::Request::CloseCursor {
            cursor_id: r.cursor_id,
        },
        R::FetchCursor(r) => ws::Request::FetchCursor {
            cursor_id: r.cursor_id,
            max_count: r.max_count,
        },
        R::Sequence(r) => ws::Request::Sequence {
            stream_id: r.stream_id,
            sql: r.sql,
            sql_id: r.sql_id,
        },
        R::Describe(r) => ws::Request::Describe {
            stream_id: r.stream_id,
            sql: r.sql,
            sql_id: r.sql_id,
        },
        R::StoreSql(r) => ws::Request::StoreSql {
            sql_id: r.sql_id,
            sql: r.sql,
        },
        R::CloseSql(r) => ws::Request::CloseSql { sql_id: r.sql_id },
        R::GetAutocommit(r) => ws::Request::GetAutocommit {
            stream_id: r.stream_id,
        },
    })
}

fn response_into_proto(r: ws::Response) -> pb::ws::response_ok_msg::Response {
    use pb::ws as w;
    use pb::ws::response_ok_msg::Response as R;
    match r {
        ws::Response::OpenStream => R::OpenStream(w::OpenStreamResp {}),
        ws::Response::CloseStream => R::CloseStream(w::CloseStreamResp {}),
        ws::Response::Execute { result } => R::Execute(w::ExecuteResp {
            result: Some(result.into_proto()),
        }),
        ws::Response::Batch { result } => R::Batch(w::BatchResp {
            result: Some(result.into_proto()),
        }),
        ws::Response::OpenCursor => R::OpenCursor(w::OpenCursorResp {}),
        ws::Response::CloseCursor => R::CloseCursor(w::CloseCursorResp {}),
        ws::Response::FetchCursor { entries, done } => R::FetchCursor(w::FetchCursorResp {
            entries: into_vec(entries),
            done,
        }),
        ws::Response::Sequence => R::Sequence(w::SequenceResp {}),
        ws::Response::Describe { result } => R::Describe(w::DescribeResp {
            result: Some(result.into_proto()),
        }),
        ws::Response::StoreSql => R::StoreSql(w::StoreSqlResp {}),
        ws::Response::CloseSql => R::CloseSql(w::CloseSqlResp {}),
        ws::Response::GetAutocommit { is_autocommit } => {
            R::GetAutocommit(w::GetAutocommitResp { is_autocommit })
        }
    }
}

fn response_from_proto(r: pb::ws::response_ok_msg::Response) -> Result<ws::Response, DecodeError> {
    use pb::ws::response_ok_msg::Response as R;
    Ok(match r {
        R::OpenStream(_) => ws::Response::OpenStream,
        R::CloseStream(_) => ws::Response::CloseStream,
        R::Execute(r) => ws::Response::Execute {
            result: StmtResult::from_proto(required(r.result, "ExecuteResp", "result")?)?,
        },
        R::Batch(r) => ws::Response::Batch {
            result: BatchResult::from_proto(required(r.result, "BatchResp", "result")?)?,
        },
        R::OpenCursor(_) => ws::Response::OpenCursor,
        R::CloseCursor(_) => ws::Response::CloseCursor,
        R::FetchCursor(r) => ws::Response::FetchCursor {
            entries: from_vec(r.entries)?,
            done: r.done,
        },
        R::Sequence(_) => ws::Response::Sequence,
        R::Describe(r) => ws::Response::Describe {
            result: DescribeResult::from_proto(required(r.result, "DescribeResp", "result")?)?,
        },
        R::StoreSql(_) => ws::Response::StoreSql,
        R::CloseSql(_) => ws::Response::CloseSql,
        R::GetAutocommit(r) => ws::Response::GetAutocommit {
            is_autocommit: r.is_autocommit,
        },
    })
}

impl IntoProto for ws::ClientMsg {
    type Proto = pb::ws::ClientMsg;
    fn into_proto(self) -> pb::ws::ClientMsg {
        use pb::ws::client_msg::Msg;
        pb::ws::ClientMsg {
            msg: Some(match self {
                ws::ClientMsg::Hello { jwt } => Msg::Hello(pb::ws::HelloMsg { jwt }),
                ws::ClientMsg::Request {
                    request_id,
                    request,
                } => Msg::Request(pb::ws::RequestMsg {
                    request_id,
                    request: Some(request_into_proto(request)),
                }),
            }),
        }
    }
}

impl FromProto for ws::ClientMsg {
    type Proto = pb::ws::ClientMsg;
    fn from_proto(p: pb::ws::ClientMsg) -> Result<Self, DecodeError> {
        use pb::ws::client_msg::Msg;
        Ok(match required(p.msg, "ClientMsg", "msg")? {
            Msg::Hello(h) => ws::ClientMsg::Hello { jwt: h.jwt },
            Msg::Request(r) => ws::ClientMsg::Request {
                request_id: r.request_id,
                request: request_from_proto(required(r.request, "RequestMsg", "request")?)?,
            },
        })
    }
}

impl IntoProto for ws::ServerMsg {
    type Proto = pb::ws::ServerMsg;
    fn into_proto(self) -> pb::ws::ServerMsg {
        use pb::ws::server_msg::Msg;
        pb::ws::ServerMsg {
            msg: Some(match self {
                ws::ServerMsg::HelloOk => Msg::HelloOk(pb::ws::HelloOkMsg {}),
                ws::ServerMsg::HelloError { error } => Msg::HelloError(pb::ws::HelloErrorMsg {
                    error: Some(error.into_proto()),
                }),
                ws::ServerMsg::ResponseOk {
                    request_id,
                    response,
                } => Msg::ResponseOk(pb::ws::ResponseOkMsg {
                    request_id,
                    response: Some(response_into_proto(response)),
                }),
                ws::ServerMsg::ResponseError { request_id, error } => {
                    Msg::ResponseError(pb::ws::ResponseErrorMsg {
                        request_id,
                        error: Some(error.into_proto()),
                    })
                }
            }),
        }
    }
}

impl FromProto for ws::ServerMsg {
    type Proto = pb::ws::ServerMsg;
    fn from_proto(p: pb::ws::ServerMsg) -> Result<Self, DecodeError> {
        use pb::ws::server_msg::Msg;
        Ok(match required(p.msg, "ServerMsg", "msg")? {
            Msg::HelloOk(_) => ws::ServerMsg::HelloOk,
            Msg::HelloError(e) => ws::ServerMsg::HelloError {
                error: Error::from_proto(required(e.error, "HelloErrorMsg", "error")?)?,
            },
            Msg::ResponseOk(r) => ws::ServerMsg::ResponseOk {
                request_id: r.request_id,
                response: response_from_proto(required(r.response, "ResponseOkMsg", "response")?)?,
            },
            Msg::ResponseError(r) => ws::ServerMsg::ResponseError {
                request_id: r.request_id,
                error: Error::from_proto(required(r.error, "ResponseErrorMsg", "error")?)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
