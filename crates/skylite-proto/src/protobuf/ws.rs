//! Protobuf forms of Hrana over WebSocket (`hrana3-protobuf`): client and server messages
//! and the requests and responses they carry.

use crate::pb::hrana as pb;
use crate::ws;
use crate::{Batch, BatchResult, DescribeResult, Error, Stmt, StmtResult};

use super::*;

pub(super) fn request_into_proto(r: ws::Request) -> pb::ws::request_msg::Request {
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

pub(super) fn request_from_proto(
    r: pb::ws::request_msg::Request,
) -> Result<ws::Request, DecodeError> {
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

pub(super) fn response_into_proto(r: ws::Response) -> pb::ws::response_ok_msg::Response {
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

pub(super) fn response_from_proto(
    r: pb::ws::response_ok_msg::Response,
) -> Result<ws::Response, DecodeError> {
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
