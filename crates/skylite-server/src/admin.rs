//! The admin API: create, list, inspect, delete and fork databases. JSON in and out.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/admin/databases` | | 200 `{"databases": [info, ...]}` |
//! | `POST /v1/admin/databases` | `{"name": "app", "limits": {...}}` (`limits` optional) | 201 `{"name": "app", "created": true}` (plus `limits` if given); 409 `DATABASE_EXISTS`; 400 `INVALID_LIMIT` |
//! | `GET /v1/admin/databases/{name}` | | 200 info plus `health` (`PRAGMA quick_check`); 404 |
//! | `PATCH /v1/admin/databases/{name}` | `{"limits": {"max_size_bytes": 1048576, "statement_timeout_ms": null}}` | 200 `{"name", "limits"}`; 404; 400 `INVALID_LIMIT` |
//! | `DELETE /v1/admin/databases/{name}` | | 200 `{"name", "deleted": true}`; 404; 409 `DATABASE_PROTECTED` for `default` |
//! | `POST /v1/admin/databases/{name}/fork` | `{"to": "copy"}`, or `{"to": "copy", "at": "RFC3339"}` from the backup ([`crate::fork_at`]) | 201 `{"name": "copy", "forked_from": "app", "created": true}` (plus `"at"`); 404; 409; 400 `INVALID_TIME`, `BACKUP_NOT_CONFIGURED` |
//! | `PUT /v1/admin/databases/{name}/import` | an SQLite file | 201 `{"name", "created": true, "size_bytes", "page_count", "page_size", "tables", "sha256"}`; 400; 409; 413 |
//! | `GET /v1/admin/databases/{name}/export` | | 200 the database file; 404 |
//! | `GET /v1/admin/databases/{name}/dump` | | 200 SQL text; 404 |
//! | `POST /v1/admin/reload` | | 200 `{"reloaded": true, "tls", "auth", "keys"}`; 500 `RELOAD_FAILED` (the old certificate/keys stay) |
//! | `POST /v1/admin/tokens` | `{"db": "app", "read_only": false, "expires": "30d"}` | 201 `{"token", "jti", "exp"}` ([`crate::tokens_api`]) |
//!
//! Import, export and dump live in [`crate::transfer`].
//!
//! `info` is `name`, `size_bytes` (database file plus WAL), `db_bytes`, `wal_bytes`, `tables`,
//! `rows_read`, `rows_written` (since the server opened the database), `open_streams`,
//! `websocket_connections`, `open_connections`, `open` and `limits` (`max_size_bytes`,
//! `statement_timeout_ms`, `txn_timeout_ms`; `null` where the server's flag applies; see
//! [`crate::limits`]).
//!
//! Every handler takes [`AdminAuth`] as its first extractor (401 without a valid token, 403
//! for a token that is not an admin's, before anything else about the request is read); all
//! file and SQLite work runs on the worker pool.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use skylite_engine::ErrorCode;

use crate::app::App;
use crate::databases::not_found;
use crate::error::ApiError;
use crate::hrana_http::parse_body;
use crate::limits::{LimitsJson, LimitsPatch};
use crate::routing::AdminAuth;
use crate::transfer;

/// The admin routes (merged into the main router).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/admin/databases", get(list).post(create))
        .route(
            "/v1/admin/databases/{name}",
            get(show).delete(delete).patch(update),
        )
        .route("/v1/admin/databases/{name}/fork", post(fork))
        // The file is streamed to disk under its own limit (`max_import_bytes`).
        .route(
            "/v1/admin/databases/{name}/import",
            put(transfer::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/admin/databases/{name}/export", get(transfer::export))
        .route("/v1/admin/databases/{name}/dump", get(transfer::dump))
        .route("/v1/admin/reload", post(reload))
        .merge(crate::tokens_api::routes())
}

#[derive(Deserialize)]
struct CreateReq {
    name: String,
    #[serde(default)]
    limits: LimitsJson,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateReq {
    limits: LimitsPatch,
}

#[derive(Deserialize)]
struct ForkReq {
    to: String,
    /// Fork from the backup as of this time (RFC 3339) instead of the live database.
    #[serde(default)]
    at: Option<String>,
}

pub(crate) fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    let mut resp = (status, value.to_string()).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn path_name(name: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    name.map(|Path(n)| n).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidDatabaseName,
            format!("unreadable database name in the path: {e}"),
        )
    })
}

/// Runs admin work (file and SQLite work of the admin and transfer endpoints) on the worker
/// pool.
pub(crate) async fn on_worker<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let worker_app = app.clone();
    crate::blocking::run(&app.workers, move || f(&worker_app))
        .await
        .map_err(|e| ApiError::internal(format!("admin worker failed: {e}")))?
}

/// `GET /v1/admin/databases`.
async fn list(State(app): State<App>, _admin: AdminAuth) -> Result<Response, ApiError> {
    let infos = on_worker(&app, |app| {
        let mut infos = Vec::new();
        for name in app.databases.names()? {
            // A database deleted meanwhile is simply left out.
            if let Some(info) = app.databases.info(&name, false)? {
                infos.push(info);
            }
        }
        Ok(infos)
    })
    .await?;
    Ok(json_response(StatusCode::OK, json!({ "databases": infos })))
}

/// `POST /v1/admin/databases`.
async fn create(
    State(app): State<App>,
    _admin: AdminAuth,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateReq = parse_body(body)?;
    let (name, limits) = (req.name.clone(), req.limits);
    on_worker(&app, move |app| {
        app.databases
            .create_with_limits(&req.name, &req.limits)
            .map(|_| ())
    })
    .await?;
    let mut answer = json!({ "name": name, "created": true });
    if !limits.is_empty() {
        answer["limits"] = json!(limits);
    }
    Ok(json_response(StatusCode::CREATED, answer))
}

/// `PATCH /v1/admin/databases/{name}`: changes the database's limits.
async fn update(
    State(app): State<App>,
    _admin: AdminAuth,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = path_name(name)?;
    let req: UpdateReq = parse_body(body)?;
    let answer = name.clone();
    let limits = on_worker(&app, move |app| {
        app.databases.set_limits(&name, &req.limits)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "name": answer, "limits": limits }),
    ))
}

/// `POST /v1/admin/reload`: the TLS certificate and key, trusted key files and revocation
/// list are read again (as on SIGHUP).
async fn reload(State(app): State<App>, _admin: AdminAuth) -> Result<Response, ApiError> {
    let report = on_worker(&app, |app| Ok(app.reload())).await?;
    if !report.errors.is_empty() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ReloadFailed,
            report.errors.join("; "),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        json!({ "reloaded": true, "tls": report.tls, "auth": report.auth, "keys": report.keys }),
    ))
}

/// `GET /v1/admin/databases/{name}`.
async fn show(
    State(app): State<App>,
    _admin: AdminAuth,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path_name(name)?;
    let info = on_worker(&app, move |app| {
        app.databases
            .info(&name, true)?
            .ok_or_else(|| not_found(&name))
    })
    .await?;
    let value = serde_json::to_value(info)
        .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}")))?;
    Ok(json_response(StatusCode::OK, value))
}

/// `DELETE /v1/admin/databases/{name}`.
async fn delete(
    State(app): State<App>,
    _admin: AdminAuth,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path_name(name)?;
    let answer = name.clone();
    on_worker(&app, move |app| app.databases.delete(&name)).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "name": answer, "deleted": true }),
    ))
}

/// `POST /v1/admin/databases/{name}/fork`.
async fn fork(
    State(app): State<App>,
    _admin: AdminAuth,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let from = path_name(name)?;
    let req: ForkReq = parse_body(body)?;
    let (answer_from, answer_to) = (from.clone(), req.to.clone());
    if let Some(at) = req.at {
        crate::fork_at::fork_at_time(&app, &from, &req.to, &at).await?;
        return Ok(json_response(
            StatusCode::CREATED,
            json!({ "name": answer_to, "forked_from": answer_from, "created": true, "at": at }),
        ));
    }
    on_worker(&app, move |app| app.databases.fork(&from, &req.to)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "name": answer_to, "forked_from": answer_from, "created": true }),
    ))
}
