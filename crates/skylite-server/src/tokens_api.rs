//! Minting tokens through the admin API, so that a client with an admin token can hand a fresh,
//! narrower token to an app without access to the server's data folder (`skylite db env`).
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /v1/admin/tokens` | `{"db": "app", "read_only": false, "expires": "30d"}` | 201 `{"token", "jti", "exp"}` |
//!
//! `db` is one database name or a list of names; `read_only` defaults to `false`; `expires`
//! takes what `skylite token create --expires` takes (`30d`, `12h`, `90m`, `3600s`, `2w`,
//! `never`; default `30d`); `exp` is `null` for a token that never expires. The token is signed
//! with the data folder's key (`.skylite/jwt.key`), exactly as `skylite token create` signs it,
//! and never grants the admin API. Admin-only; 409 `AUTH_DISABLED` when the server runs with
//! `--no-auth` (no key, and no token is needed).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use skylite_auth::{mint, parse_lifetime, TokenSpec};
use skylite_engine::ErrorCode;

use crate::admin::json_response;
use crate::app::App;
use crate::databases::validate_name;
use crate::error::ApiError;
use crate::routing::AdminAuth;

/// The token routes (merged into the admin router).
pub fn routes() -> Router<App> {
    Router::new().route("/v1/admin/tokens", post(create))
}

/// One name or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateReq {
    db: Names,
    #[serde(default)]
    read_only: bool,
    expires: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Protocol, message)
}

/// `POST /v1/admin/tokens`.
async fn create(
    State(app): State<App>,
    _admin: AdminAuth,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| bad(format!("cannot read the request body: {e}")))?;
    let req: CreateReq = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "expected {{\"db\": \"name\" or [\"names\"], \"read_only\": bool, \"expires\": \
             \"30d\"}}: {e}"
        ))
    })?;
    let databases = match req.db {
        Names::One(n) => vec![n],
        Names::Many(v) => v,
    };
    if databases.is_empty() {
        return Err(bad("name at least one database in \"db\""));
    }
    for name in &databases {
        validate_name(name)?;
    }
    let lifetime = parse_lifetime(req.expires.as_deref().unwrap_or("30d"))
        .map_err(|e| bad(format!("\"expires\": {e}")))?;
    let Some(pair) = app.auth.keypair() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::AuthDisabled,
            "this server has no signing key of its own (authentication is off, or it only \
             trusts outside keys): no token is needed, or mint one where the key is",
        ));
    };
    let spec = TokenSpec {
        databases,
        read_only: req.read_only,
        admin: false,
        lifetime,
    };
    let (token, claims) = mint(&pair.signing, &spec).map_err(bad)?;
    tracing::info!(
        jti = claims.jti.as_deref().unwrap_or("-"),
        databases = ?spec.databases,
        read_only = spec.read_only,
        "minted a token through the admin API"
    );
    Ok(json_response(
        StatusCode::CREATED,
        json!({"token": token, "jti": claims.jti, "exp": claims.exp}),
    ))
}
