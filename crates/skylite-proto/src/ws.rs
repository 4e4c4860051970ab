//! The messages of Hrana over WebSocket: what a client sends on the socket (`hello`, `request`),
//! what the server answers (`hello_ok`, `hello_error`, `response_ok`, `response_error`), and
//! the requests and responses a `request` message carries (streams, statements, batches,
//! cursors, stored SQL).
//!
//! Encoding-neutral like the rest of the crate: the serde impls give the JSON form of
//! subprotocols `hrana1`, `hrana2` and `hrana3`; [`crate::protobuf`] converts to and from the
//! `hrana3-protobuf` form.

use serde::{Deserialize, Serialize};

use crate::{
    Batch, BatchResult, CursorEntry, DescribeResult, Error, Stmt, StmtResult, StreamRequest,
    StreamResponse, StreamResult,
};

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Authenticates the connection (first message, and again any time to re-authenticate).
    Hello {
        /// The token, or `null` when none is needed.
        #[serde(default)]
        jwt: Option<String>,
    },
    /// A request to be answered by a response with the same id.
    Request {
        /// Client-chosen id, echoed in the response.
        request_id: i32,
        /// The request.
        request: Request,
    },
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The `hello` was accepted.
    HelloOk,
    /// The `hello` was refused; the server closes the socket.
    HelloError {
        /// Why.
        error: Error,
    },
    /// A request succeeded.
    ResponseOk {
        /// The id of the request.
        request_id: i32,
        /// The response.
        response: Response,
    },
    /// A request failed.
    ResponseError {
        /// The id of the request.
        request_id: i32,
        /// Why.
        error: Error,
    },
}

/// A request carried by a `request` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Opens a stream under a client-chosen id (Hrana 1).
    OpenStream {
        /// The new stream's id.
        stream_id: i32,
    },
    /// Closes a stream, rolling back its transaction (Hrana 1).
    CloseStream {
        /// The stream.
        stream_id: i32,
    },
    /// Executes one statement (Hrana 1).
    Execute {
        /// The stream.
        stream_id: i32,
        /// The statement.
        stmt: Stmt,
    },
    /// Executes a batch (Hrana 1).
    Batch {
        /// The stream.
        stream_id: i32,
        /// The batch.
        batch: Batch,
    },
    /// Runs a batch through a cursor (Hrana 3).
    OpenCursor {
        /// The stream.
        stream_id: i32,
        /// Client-chosen id of the cursor, unique on the connection.
        cursor_id: i32,
        /// The batch.
        batch: Batch,
    },
    /// Closes a cursor (Hrana 3).
    CloseCursor {
        /// The cursor.
        cursor_id: i32,
    },
    /// Reads entries from a cursor (Hrana 3).
    FetchCursor {
        /// The cursor.
        cursor_id: i32,
        /// Most entries wanted.
        max_count: u32,
    },
    /// Executes semicolon-separated statements, discarding rows (Hrana 2).
    Sequence {
        /// The stream.
        stream_id: i32,
        /// SQL text.
        #[serde(default)]
        sql: Option<String>,
        /// Or the id of a stored SQL text.
        #[serde(default)]
        sql_id: Option<i32>,
    },
    /// Describes a statement (Hrana 2).
    Describe {
        /// The stream.
        stream_id: i32,
        /// SQL text.
        #[serde(default)]
        sql: Option<String>,
        /// Or the id of a stored SQL text.
        #[serde(default)]
        sql_id: Option<i32>,
    },
    /// Stores an SQL text for the whole connection (Hrana 2).
    StoreSql {
        /// The id.
        sql_id: i32,
        /// The text.
        sql: String,
    },
    /// Forgets a stored SQL text (Hrana 2).
    CloseSql {
        /// The id.
        sql_id: i32,
    },
    /// Asks whether a stream is in autocommit mode (Hrana 3).
    GetAutocommit {
        /// The stream.
        stream_id: i32,
    },
}

impl Request {
    /// The request's `type` tag.
    pub fn type_name(&self) -> &'static str {
        match self {
            Request::OpenStream { .. } => "open_stream",
            Request::CloseStream { .. } => "close_stream",
            Request::Execute { .. } => "execute",
            Request::Batch { .. } => "batch",
            Request::OpenCursor { .. } => "open_cursor",
            Request::CloseCursor { .. } => "close_cursor",
            Request::FetchCursor { .. } => "fetch_cursor",
            Request::Sequence { .. } => "sequence",
            Request::Describe { .. } => "describe",
            Request::StoreSql { .. } => "store_sql",
            Request::CloseSql { .. } => "close_sql",
            Request::GetAutocommit { .. } => "get_autocommit",
        }
    }

    /// The Hrana version that introduced this request (1, 2 or 3).
    pub fn min_version(&self) -> u8 {
        match self {
            Request::OpenStream { .. }
            | Request::CloseStream { .. }
            | Request::Execute { .. }
            | Request::Batch { .. } => 1,
            Request::Sequence { .. }
            | Request::Describe { .. }
            | Request::StoreSql { .. }
            | Request::CloseSql { .. } => 2,
            Request::OpenCursor { .. }
            | Request::CloseCursor { .. }
            | Request::FetchCursor { .. }
            | Request::GetAutocommit { .. } => 3,
        }
    }

    /// The stream the request runs on, if it runs on one.
    pub fn stream_id(&self) -> Option<i32> {
        match self {
            Request::OpenStream { stream_id }
            | Request::CloseStream { stream_id }
            | Request::Execute { stream_id, .. }
            | Request::Batch { stream_id, .. }
            | Request::OpenCursor { stream_id, .. }
            | Request::Sequence { stream_id, .. }
            | Request::Describe { stream_id, .. }
            | Request::GetAutocommit { stream_id } => Some(*stream_id),
            Request::CloseCursor { .. }
            | Request::FetchCursor { .. }
            | Request::StoreSql { .. }
            | Request::CloseSql { .. } => None,
        }
    }

    /// The same work as a stream request of Hrana over HTTP (see the `TryFrom` impl); any
    /// other request is given back unchanged.
    pub fn into_stream_request(self) -> Result<StreamRequest, Request> {
        StreamRequest::try_from(self)
    }
}

/// The bridge from WebSocket requests to the one request type the server runs for both
/// transports: the requests that run SQL on a stream (`execute`, `batch`, `sequence`,
/// `describe`, `get_autocommit`) become the [`StreamRequest`] Hrana over HTTP sends for the same
/// work; connection-wide ones (streams, cursors, stored SQL) are given back unchanged.
impl TryFrom<Request> for StreamRequest {
    type Error = Request;

    fn try_from(request: Request) -> Result<StreamRequest, Request> {
        Ok(match request {
            Request::Execute { stmt, .. } => StreamRequest::Execute { stmt },
            Request::Batch { batch, .. } => StreamRequest::Batch { batch },
            Request::Sequence { sql, sql_id, .. } => StreamRequest::Sequence { sql, sql_id },
            Request::Describe { sql, sql_id, .. } => StreamRequest::Describe { sql, sql_id },
            Request::GetAutocommit { .. } => StreamRequest::GetAutocommit,
            other => return Err(other),
        })
    }
}

/// The bridge back: a stream response as the WebSocket response of the same type (`close`
/// answers `close_stream`).
impl From<StreamResponse> for Response {
    fn from(response: StreamResponse) -> Response {
        match response {
            StreamResponse::Execute { result } => Response::Execute { result },
            StreamResponse::Batch { result } => Response::Batch { result },
            StreamResponse::Sequence => Response::Sequence,
            StreamResponse::Describe { result } => Response::Describe { result },
            StreamResponse::GetAutocommit { is_autocommit } => {
                Response::GetAutocommit { is_autocommit }
            }
            StreamResponse::Close => Response::CloseStream,
            StreamResponse::StoreSql => Response::StoreSql,
            StreamResponse::CloseSql => Response::CloseSql,
        }
    }
}

impl ServerMsg {
    /// The message answering request `request_id` with the outcome of its stream request:
    /// `response_ok` or `response_error`.
    pub fn for_result(request_id: i32, result: StreamResult) -> ServerMsg {
        match result {
            StreamResult::Ok { response } => ServerMsg::ResponseOk {
                request_id,
                response: response.into(),
            },
            StreamResult::Error { error } => ServerMsg::ResponseError { request_id, error },
        }
    }
}

/// A response carried by a `response_ok` message; its type matches the request's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Stream opened.
    OpenStream,
    /// Stream closed.
    CloseStream,
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
    /// Cursor opened.
    OpenCursor,
    /// Cursor closed.
    CloseCursor,
    /// Entries of a cursor.
    FetchCursor {
        /// The entries (at most `max_count`).
        entries: Vec<CursorEntry>,
        /// True when the cursor has no more entries.
        done: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_as_the_spec_writes_them() {
        let hello: ClientMsg = serde_json::from_str(r#"{"type":"hello","jwt":null}"#).unwrap();
        assert_eq!(hello, ClientMsg::Hello { jwt: None });
        let hello: ClientMsg = serde_json::from_str(r#"{"type":"hello"}"#).unwrap();
        assert_eq!(hello, ClientMsg::Hello { jwt: None });
        let req: ClientMsg = serde_json::from_str(
            r#"{"type":"request","request_id":-7,"request":
                {"type":"fetch_cursor","cursor_id":3,"max_count":100}}"#,
        )
        .unwrap();
        assert_eq!(
            req,
            ClientMsg::Request {
                request_id: -7,
                request: Request::FetchCursor {
                    cursor_id: 3,
                    max_count: 100
                }
            }
        );
        let req: ClientMsg = serde_json::from_str(
            r#"{"type":"request","request_id":1,"request":{"type":"describe","stream_id":2,"sql_id":5}}"#,
        )
        .unwrap();
        match req {
            ClientMsg::Request { request, .. } => {
                assert_eq!(request.stream_id(), Some(2));
                assert_eq!(request.min_version(), 2);
                assert_eq!(
                    request.into_stream_request(),
                    Ok(StreamRequest::Describe {
                        sql: None,
                        sql_id: Some(5)
                    })
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_messages_encode_as_the_spec_writes_them() {
        assert_eq!(
            serde_json::to_string(&ServerMsg::HelloOk).unwrap(),
            r#"{"type":"hello_ok"}"#
        );
        let msg = ServerMsg::ResponseOk {
            request_id: 4,
            response: Response::FetchCursor {
                entries: vec![CursorEntry::Row {
                    row: vec![crate::Value::Integer(1)],
                }],
                done: true,
            },
        };
        assert_eq!(
            serde_json::to_string(&msg).unwrap(),
            r#"{"type":"response_ok","request_id":4,"response":{"type":"fetch_cursor","entries":[{"type":"row","row":[{"type":"integer","value":"1"}]}],"done":true}}"#
        );
        let back: ServerMsg = serde_json::from_str(&serde_json::to_string(&msg).unwrap()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn the_bridge_maps_stream_requests_and_responses_both_ways() {
        let get = Request::GetAutocommit { stream_id: 9 };
        assert_eq!(
            StreamRequest::try_from(get),
            Ok(StreamRequest::GetAutocommit)
        );
        let open = Request::OpenStream { stream_id: 9 };
        assert_eq!(StreamRequest::try_from(open.clone()), Err(open));
        assert_eq!(Response::from(StreamResponse::Close), Response::CloseStream);
        let ok = ServerMsg::for_result(
            3,
            StreamResult::Ok {
                response: StreamResponse::GetAutocommit {
                    is_autocommit: true,
                },
            },
        );
        assert_eq!(
            ok,
            ServerMsg::ResponseOk {
                request_id: 3,
                response: Response::GetAutocommit {
                    is_autocommit: true
                }
            }
        );
        let error = Error::new(crate::ErrorCode::StreamFailed, "x");
        assert_eq!(
            ServerMsg::for_result(
                4,
                StreamResult::Error {
                    error: error.clone()
                }
            ),
            ServerMsg::ResponseError {
                request_id: 4,
                error
            }
        );
    }
}
