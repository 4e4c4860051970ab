//! The shared structures of Hrana 3: statements, results, batches, conditions, cursor entries,
//! describe results, errors, and the stream requests and responses that Hrana over HTTP carries.
//!
//! Field names and tags are the spec's; optional fields accept both "absent" and `null`.

use serde::{Deserialize, Serialize};

use crate::Value;

/// A protocol-level error: SQLite's message plus a stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Error {
    /// Human-readable English description.
    pub message: String,
    /// Stable code such as `SQLITE_CONSTRAINT_UNIQUE` or `STREAM_EXPIRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Error {
    /// An error with a message and a code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            code: Some(code.into()),
        }
    }
}

/// One SQL statement with its arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stmt {
    /// The SQL text (exactly one of `sql` and `sql_id` must be given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// The id of an SQL text stored with `store_sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_id: Option<i32>,
    /// Positional arguments (`?`, `?NNN`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<Value>,
    /// Named arguments (`:a`, `@a`, `$a`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub named_args: Vec<NamedArg>,
    /// Whether the client wants the rows (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub want_rows: Option<bool>,
}

impl Stmt {
    /// A statement with SQL text and no arguments.
    pub fn new(sql: impl Into<String>) -> Self {
        Stmt {
            sql: Some(sql.into()),
            ..Stmt::default()
        }
    }
}

/// A named argument; the name may carry its prefix (`:`, `@`, `$`) or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedArg {
    /// Parameter name.
    pub name: String,
    /// Bound value.
    pub value: Value,
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Col {
    /// Column name, if SQLite gave one.
    pub name: Option<String>,
    /// Declared type of the column it comes from, if any.
    pub decltype: Option<String>,
}

/// The result of executing one statement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StmtResult {
    /// Result columns.
    pub cols: Vec<Col>,
    /// Result rows (empty when `want_rows` was false).
    pub rows: Vec<Vec<Value>>,
    /// Rows changed by an INSERT, UPDATE or DELETE.
    pub affected_row_count: u64,
    /// Rowid of the last successful insert on this connection.
    #[serde(with = "opt_i64_as_string", default)]
    pub last_insert_rowid: Option<i64>,
    /// Rows the statement read.
    #[serde(default)]
    pub rows_read: u64,
    /// Rows the statement wrote.
    #[serde(default)]
    pub rows_written: u64,
    /// Wall time spent in SQLite, in milliseconds.
    #[serde(default)]
    pub query_duration_ms: f64,
}

/// A batch: steps executed in order, each guarded by an optional condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The steps.
    pub steps: Vec<BatchStep>,
}

/// One step of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStep {
    /// Run the statement only if this evaluates to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<BatchCond>,
    /// The statement.
    pub stmt: Stmt,
}

/// A condition over the outcomes of earlier steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchCond {
    /// Step ran and succeeded.
    Ok {
        /// 0-based step index.
        step: u32,
    },
    /// Step ran and failed.
    Error {
        /// 0-based step index.
        step: u32,
    },
    /// Negation.
    Not {
        /// Inner condition.
        cond: Box<BatchCond>,
    },
    /// Conjunction.
    And {
        /// Inner conditions.
        conds: Vec<BatchCond>,
    },
    /// Disjunction.
    Or {
        /// Inner conditions.
        conds: Vec<BatchCond>,
    },
    /// The stream is outside an explicit transaction.
    IsAutocommit,
}

/// The outcome of a batch: for each step, a result or an error (both `null` when skipped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Results of the steps that ran and succeeded.
    pub step_results: Vec<Option<StmtResult>>,
    /// Errors of the steps that ran and failed.
    pub step_errors: Vec<Option<Error>>,
}

/// One entry of a cursor, the streamed form of a [`BatchResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CursorEntry {
    /// A step starts producing results.
    StepBegin {
        /// 0-based step index.
        step: u32,
        /// Result columns.
        cols: Vec<Col>,
    },
    /// The current step finished.
    StepEnd {
        /// Rows changed.
        affected_row_count: u64,
        /// Last inserted rowid, as a string in JSON.
        #[serde(with = "opt_i64_as_string", default)]
        last_insert_rowid: Option<i64>,
    },
    /// A step failed.
    StepError {
        /// 0-based step index.
        step: u32,
        /// What went wrong.
        error: Error,
    },
    /// One row of the current step.
    Row {
        /// The values.
        row: Vec<Value>,
    },
    /// The whole batch failed; always the last entry.
    Error {
        /// What went wrong.
        error: Error,
    },
}

/// The description of a statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DescribeResult {
    /// Parameters, indexed from 1 in SQLite (so `params[0]` is parameter 1).
    pub params: Vec<DescribeParam>,
    /// Result columns.
    pub cols: Vec<DescribeCol>,
    /// Whether it is an `EXPLAIN` statement.
    pub is_explain: bool,
    /// Whether it leaves the database unchanged.
    pub is_readonly: bool,
}

/// A parameter of a described statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DescribeParam {
    /// Name with its prefix, or `null` for `?`.
    pub name: Option<String>,
}

/// A result column of a described statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DescribeCol {
    /// Column name.
    pub name: String,
    /// Declared type, if the column comes straight from a table.
    pub decltype: Option<String>,
}

/// A request on a stream (Hrana over HTTP, and the stream part of Hrana over WebSocket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamRequest {
    /// Close the stream.
    Close,
    /// Execute one statement.
    Execute {
        /// The statement.
        stmt: Stmt,
    },
    /// Execute a batch.
    Batch {
        /// The batch.
        batch: Batch,
    },
    /// Execute several semicolon-separated statements, discarding their results.
    Sequence {
        /// SQL text.
        #[serde(default)]
        sql: Option<String>,
        /// Or the id of a stored SQL text.
        #[serde(default)]
        sql_id: Option<i32>,
    },
    /// Describe a statement without running it.
    Describe {
        /// SQL text.
        #[serde(default)]
        sql: Option<String>,
        /// Or the id of a stored SQL text.
        #[serde(default)]
        sql_id: Option<i32>,
    },
    /// Store an SQL text under an id.
    StoreSql {
        /// The id.
        sql_id: i32,
        /// The SQL text.
        sql: String,
    },
    /// Forget a stored SQL text.
    CloseSql {
        /// The id.
        sql_id: i32,
    },
    /// Ask whether the stream is in autocommit mode.
    GetAutocommit,
}

/// The successful response to a [`StreamRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamResponse {
    /// Stream closed.
    Close,
    /// Result of `execute`.
    Execute {
        /// The result.
        result: StmtResult,
    },
    /// Result of `batch`.
    Batch {
        /// The result.
        result: BatchResult,
    },
    /// `sequence` finished.
    Sequence,
    /// Result of `describe`.
    Describe {
        /// The result.
        result: DescribeResult,
    },
    /// SQL text stored.
    StoreSql,
    /// SQL text forgotten.
    CloseSql,
    /// Autocommit state.
    GetAutocommit {
        /// True outside an explicit transaction.
        is_autocommit: bool,
    },
}

/// The outcome of one request of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamResult {
    /// It succeeded.
    Ok {
        /// The response.
        response: StreamResponse,
    },
    /// It failed.
    Error {
        /// The error.
        error: Error,
    },
}

/// Body of `POST /v2/pipeline` and `POST /v3/pipeline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineReqBody {
    /// The stream's baton, or `null` to open a new stream.
    #[serde(default)]
    pub baton: Option<String>,
    /// Requests to execute in order.
    pub requests: Vec<StreamRequest>,
}

/// Response to a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRespBody {
    /// Baton for the next request, or `null` when the stream is closed.
    pub baton: Option<String>,
    /// Where to send further requests of this stream (`null`: same URL).
    pub base_url: Option<String>,
    /// One result per request.
    pub results: Vec<StreamResult>,
}

/// Body of `POST /v3/cursor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorReqBody {
    /// The stream's baton, or `null` to open a new stream.
    #[serde(default)]
    pub baton: Option<String>,
    /// The batch to run through the cursor.
    pub batch: Batch,
}

/// The first line of a cursor response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorRespBody {
    /// Baton for the next request, or `null` when the stream is closed.
    pub baton: Option<String>,
    /// Where to send further requests of this stream (`null`: same URL).
    pub base_url: Option<String>,
}

fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// `Option<i64>` as a JSON string (`"42"`) or `null`; accepts a JSON number when reading.
mod opt_i64_as_string {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(i) => s.serialize_str(itoa::Buffer::new().format(*i)),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrInt {
        Str(String),
        Int(i64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<StrOrInt>::deserialize(d)? {
            None => Ok(None),
            Some(StrOrInt::Int(i)) => Ok(Some(i)),
            Some(StrOrInt::Str(s)) => s.parse().map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_request_parses_every_request_type() {
        let body = r#"{"baton":null,"requests":[
            {"type":"execute","stmt":{"sql":"SELECT ?","args":[{"type":"integer","value":"1"}]}},
            {"type":"batch","batch":{"steps":[
                {"stmt":{"sql":"BEGIN"}},
                {"condition":{"type":"and","conds":[{"type":"ok","step":0},
                    {"type":"not","cond":{"type":"error","step":0}},
                    {"type":"or","conds":[{"type":"is_autocommit"}]}]},
                 "stmt":{"sql":"COMMIT","named_args":[],"want_rows":false}}]}},
            {"type":"sequence","sql":"SELECT 1; SELECT 2"},
            {"type":"describe","sql_id":3},
            {"type":"store_sql","sql_id":3,"sql":"SELECT 3"},
            {"type":"close_sql","sql_id":3},
            {"type":"get_autocommit"},
            {"type":"close"}]}"#;
        let req: PipelineReqBody = serde_json::from_str(body).unwrap();
        assert_eq!(req.requests.len(), 8);
        assert!(matches!(req.requests[7], StreamRequest::Close));
        match &req.requests[1] {
            StreamRequest::Batch { batch } => {
                assert_eq!(batch.steps.len(), 2);
                assert_eq!(batch.steps[1].stmt.want_rows, Some(false));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn null_args_are_empty() {
        let stmt: Stmt =
            serde_json::from_str(r#"{"sql":"SELECT 1","args":null,"named_args":null}"#).unwrap();
        assert!(stmt.args.is_empty() && stmt.named_args.is_empty());
    }

    #[test]
    fn unknown_request_type_names_itself() {
        let err = serde_json::from_str::<PipelineReqBody>(
            r#"{"baton":null,"requests":[{"type":"frobnicate"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("frobnicate"), "{err}");
    }

    #[test]
    fn results_encode_as_the_spec_says() {
        let result = StmtResult {
            cols: vec![Col {
                name: Some("a".into()),
                decltype: Some("INTEGER".into()),
            }],
            rows: vec![vec![Value::Integer(1)]],
            affected_row_count: 0,
            last_insert_rowid: Some(7),
            rows_read: 1,
            rows_written: 0,
            query_duration_ms: 0.5,
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["last_insert_rowid"], "7");
        assert_eq!(json["cols"][0]["decltype"], "INTEGER");
        let entry = CursorEntry::StepEnd {
            affected_row_count: 2,
            last_insert_rowid: Some(-5),
        };
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            r#"{"type":"step_end","affected_row_count":2,"last_insert_rowid":"-5"}"#
        );
        let err = Error::new("SQLITE_ERROR", "no such table: t");
        assert_eq!(
            serde_json::to_string(&StreamResult::Error { error: err }).unwrap(),
            r#"{"type":"error","error":{"message":"no such table: t","code":"SQLITE_ERROR"}}"#
        );
    }
}
