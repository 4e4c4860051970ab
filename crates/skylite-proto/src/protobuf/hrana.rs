//! Protobuf forms of the types both transports share: values, errors, statements,
//! batches and their conditions, results, cursor entries, `describe` results.

use crate::pb::hrana as pb;
use crate::{
    Batch, BatchCond, BatchResult, BatchStep, Col, CursorEntry, DescribeCol, DescribeParam,
    DescribeResult, Error, NamedArg, Stmt, StmtResult, Value,
};

use super::*;

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

pub(super) fn row_into_proto(row: Vec<Value>) -> pb::Row {
    pb::Row {
        values: into_vec(row),
    }
}

pub(super) fn row_from_proto(row: pb::Row) -> Result<Vec<Value>, DecodeError> {
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
