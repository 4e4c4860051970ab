//! The HTTP APIs that predate Hrana streams, still used by real clients (Python
//! `libsql-client` speaks only `/v1/execute` and `/v1/batch`):
//! - `POST /` with `{"statements": [...]}`: statements run in one transaction; the answer is an
//!   array of `{"results": ...}` / `{"error": "..."}` (sqld's "v0" shape).
//! - `POST /v1/execute` with `{"stmt": Stmt}` and `POST /v1/batch` with `{"batch": Batch}`, each
//!   on a fresh stream. An SQL error of `execute` is an HTTP 400 with `{"message", "code"}`.
//!   Both also accept the `{"statements": [...]}` body.
//!
//! Each runs on the database the request was routed to ([`Authorized`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use skylite_engine::sql_text::{txn_keyword, TxnKeyword};
use skylite_engine::{Budget, ExecError, Session};
use skylite_proto::legacy::{
    LegacyParams, LegacyQuery, LegacyResult, V1BatchReq, V1BatchResp, V1ExecuteReq, V1ExecuteResp,
};
use skylite_proto::{NamedArg, Stmt};

use crate::app::App;
use crate::error::ApiError;
use crate::hrana_http::{parse_body, read_body};
use crate::routing::Authorized;

/// Runs `work` on a fresh session on a blocking thread, then makes its writes durable and
/// encodes its output.
async fn on_fresh_session<T, F>(
    app: &App,
    target: &Authorized,
    work: F,
) -> Result<Response, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut Session, &mut Budget) -> Result<T, ApiError> + Send + 'static,
{
    let db = target.db.database().clone();
    let read_only = target.read_only();
    let limit = app.config.engine.max_response_bytes;
    crate::blocking::run(&app.workers, move || {
        let mut session = Session::new(db);
        session.set_read_only(read_only);
        let mut budget = Budget::new(limit);
        let out = work(&mut session, &mut budget);
        // Nothing is acknowledged before it is durable (as for Hrana pipelines).
        let durable = session.finish_pipeline();
        session.close();
        durable.map_err(ApiError::from_exec)?;
        let out = out?;
        let bytes = serde_json::to_vec(&out)
            .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}")))?;
        let mut resp = Response::new(axum::body::Body::from(bytes));
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    })
    .await
    .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// `POST /`.
pub async fn query(
    State(app): State<App>,
    target: Authorized,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let query: LegacyQuery = parse_body(body)?;
    on_fresh_session(&app, &target, move |s, b| run_statements(s, b, query)).await
}

/// `POST /v1/execute`.
pub async fn v1_execute(
    State(app): State<App>,
    target: Authorized,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = read_body(body)?;
    if let Ok(query) = serde_json::from_slice::<LegacyQuery>(&bytes) {
        return on_fresh_session(&app, &target, move |s, b| run_statements(s, b, query)).await;
    }
    let req: V1ExecuteReq = parse_body(Ok(bytes))?;
    on_fresh_session(&app, &target, move |s, b| {
        s.execute(&req.stmt, b)
            .map(|result| V1ExecuteResp { result })
            .map_err(ApiError::from_exec)
    })
    .await
}

/// `POST /v1/batch`.
pub async fn v1_batch(
    State(app): State<App>,
    target: Authorized,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = read_body(body)?;
    if let Ok(query) = serde_json::from_slice::<LegacyQuery>(&bytes) {
        return on_fresh_session(&app, &target, move |s, b| run_statements(s, b, query)).await;
    }
    let req: V1BatchReq = parse_body(Ok(bytes))?;
    on_fresh_session(&app, &target, move |s, b| {
        Ok(V1BatchResp {
            result: s.batch(&req.batch, b),
        })
    })
    .await
}

/// Runs legacy statements: all in one transaction unless they manage transactions themselves;
/// the first error rolls everything back and the remaining statements are skipped (`null`).
/// A failure of the server or its disk (I/O error, full disk, corruption, ...) fails the whole
/// request with a 5xx instead of being reported as the statement's fault.
fn run_statements(
    session: &mut Session,
    budget: &mut Budget,
    query: LegacyQuery,
) -> Result<Vec<Option<LegacyResult>>, ApiError> {
    let server_failure = |e: &ExecError| {
        let api = ApiError::from_exec(e.clone());
        api.status.is_server_error().then_some(api)
    };
    let manages_txn = query.statements.iter().any(|s| {
        txn_keyword(&s.q) != TxnKeyword::Other || {
            let w = skylite_engine::sql_text::first_word(&s.q);
            ["COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
        }
    });
    let wrap = !manages_txn && query.statements.len() > 1;
    let mut out: Vec<Option<LegacyResult>> = Vec::with_capacity(query.statements.len());
    if wrap {
        if let Err(e) = session.execute(&Stmt::new("BEGIN"), budget) {
            if let Some(api) = server_failure(&e) {
                return Err(api);
            }
            return Ok(vec![
                Some(LegacyResult::Error(e.message));
                query.statements.len()
            ]);
        }
    }
    let mut failed = false;
    for statement in &query.statements {
        if failed {
            out.push(None);
            continue;
        }
        let (args, named_args) = match &statement.params {
            LegacyParams::None => (Vec::new(), Vec::new()),
            LegacyParams::Positional(v) => (v.clone(), Vec::new()),
            LegacyParams::Named(m) => (
                Vec::new(),
                m.iter()
                    .map(|(name, value)| NamedArg {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            ),
        };
        let stmt = Stmt {
            sql: Some(statement.q.clone()),
            args,
            named_args,
            ..Stmt::default()
        };
        match session.execute(&stmt, budget) {
            Ok(r) => out.push(Some(LegacyResult::Results {
                columns: r
                    .cols
                    .into_iter()
                    .map(|c| c.name.unwrap_or_default())
                    .collect(),
                rows: r.rows,
                rows_read: r.rows_read,
                rows_written: r.rows_written,
                query_duration_ms: r.query_duration_ms,
            })),
            Err(e) => {
                failed = true;
                if session.in_transaction() {
                    let _ = session.execute(&Stmt::new("ROLLBACK"), budget);
                }
                if let Some(api) = server_failure(&e) {
                    return Err(api);
                }
                out.push(Some(LegacyResult::Error(e.message)));
            }
        }
    }
    if wrap && !failed {
        if let Err(e) = session.execute(&Stmt::new("COMMIT"), budget) {
            let e: ExecError = e;
            let _ = session.execute(&Stmt::new("ROLLBACK"), budget);
            if let Some(api) = server_failure(&e) {
                return Err(api);
            }
            return Ok(vec![
                Some(LegacyResult::Error(e.message));
                query.statements.len()
            ]);
        }
    }
    Ok(out)
}
