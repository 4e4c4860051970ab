//! Protobuf forms of Hrana over HTTP: stream requests and responses, pipeline and cursor
//! bodies (`/v3-protobuf/pipeline`, `/v3-protobuf/cursor`).

use crate::pb::hrana as pb;
use crate::{
    Batch, BatchResult, CursorReqBody, CursorRespBody, DescribeResult, Error, PipelineReqBody,
    PipelineRespBody, Stmt, StmtResult, StreamRequest, StreamResponse, StreamResult,
};

use super::*;

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
