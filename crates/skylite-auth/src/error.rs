//! Errors: why a request is refused (`AuthError`, each with its HTTP status and a stable code) and
//! why keys or the revocation list could not be loaded (`KeyError`).

use skylite_proto::ErrorCode;
use std::path::PathBuf;

use crate::time::format_unix;

/// Why a request was refused. [`AuthError::status`] says 401 (who are you?) or 403 (you may not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token at all (no `Authorization` header, an empty bearer, no `jwt` in `hello`).
    #[error(
        "authentication required: send a token as `Authorization: Bearer <token>` \
         (mint one with `skylite token create`)"
    )]
    Missing,
    /// The `Authorization` header does not use the `Bearer` scheme.
    #[error("unsupported authorization scheme `{0}`: send `Authorization: Bearer <token>`")]
    UnsupportedScheme(String),
    /// Not a JWT, or a JWT whose parts do not decode.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm other than EdDSA (`none`, HS256, RS256, ...).
    #[error("token algorithm `{0}` is not accepted: tokens must be signed with EdDSA (Ed25519)")]
    UnsupportedAlgorithm(String),
    /// No trusted key verifies the signature.
    #[error("token signature does not match any trusted key")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired at {}", format_unix(*.0))]
    Expired(i64),
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid before {}", format_unix(*.0))]
    NotYetValid(i64),
    /// The token's `jti` is on the revocation list.
    #[error("token `{0}` has been revoked")]
    Revoked(String),
    /// A valid token whose `id` names another database.
    #[error("token is for database `{token_db}`, not `{db}`")]
    WrongDatabase { token_db: String, db: String },
    /// A valid token whose `p` does not list the database.
    #[error("token does not grant database `{db}` (it grants {granted})")]
    DatabaseNotGranted { db: String, granted: String },
    /// A read-only token tried to write.
    #[error("read-only token cannot write (database `{0}`)")]
    ReadOnly(String),
    /// A token without the admin marker tried the admin API.
    #[error(
        "token does not grant the admin API: it needs the claim `\"skylite_admin\": true` \
         (mint one with `skylite token create --admin`)"
    )]
    NotAdmin,
    /// An admin token limited by `"a": "ro"` tried the admin API.
    #[error(
        "token has `skylite_admin` but `\"a\": \"ro\"`: a read-only token cannot use the admin API"
    )]
    ReadOnlyAdmin,
    /// A valid token with none of `id`, `p`, `skylite_admin`.
    #[error(
        "token grants nothing: it has none of the claims `id` (one database), `p` (per-database \
         permissions) or `skylite_admin`; mint a scoped token with `skylite token create --db NAME`, \
         or start the server with --auth-legacy-full-access to give such tokens full access as sqld does"
    )]
    Unscoped,
}

impl AuthError {
    /// The HTTP status: 401 when the token itself is missing or not acceptable, 403 when a valid
    /// token does not allow what was asked.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing
            | AuthError::UnsupportedScheme(_)
            | AuthError::Malformed(_)
            | AuthError::UnsupportedAlgorithm(_)
            | AuthError::BadSignature
            | AuthError::Expired(_)
            | AuthError::NotYetValid(_)
            | AuthError::Revoked(_) => 401,
            AuthError::WrongDatabase { .. }
            | AuthError::DatabaseNotGranted { .. }
            | AuthError::ReadOnly(_)
            | AuthError::NotAdmin
            | AuthError::ReadOnlyAdmin
            | AuthError::Unscoped => 403,
        }
    }

    /// A stable machine-readable code (sqld's code where sqld has the same error).
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Missing => ErrorCode::AuthJwtMissing,
            AuthError::UnsupportedScheme(_) => ErrorCode::AuthHttpHeaderUnsupportedScheme,
            AuthError::Malformed(_) => ErrorCode::AuthJwtInvalid,
            AuthError::UnsupportedAlgorithm(_) => ErrorCode::AuthJwtAlgorithm,
            AuthError::BadSignature => ErrorCode::AuthJwtInvalid,
            AuthError::Expired(_) => ErrorCode::AuthJwtExpired,
            AuthError::NotYetValid(_) => ErrorCode::AuthJwtImmature,
            AuthError::Revoked(_) => ErrorCode::AuthJwtRevoked,
            AuthError::WrongDatabase { .. } | AuthError::DatabaseNotGranted { .. } => {
                ErrorCode::AuthDatabaseForbidden
            }
            AuthError::ReadOnly(_) => ErrorCode::AuthReadOnly,
            AuthError::NotAdmin | AuthError::ReadOnlyAdmin => ErrorCode::AuthAdminForbidden,
            AuthError::Unscoped => ErrorCode::AuthJwtUnscoped,
        }
    }
}

/// Why keys, key files or the revocation list could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("cannot get random bytes from the OS: {0}")]
    Random(String),
}

impl KeyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> KeyError {
        KeyError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> KeyError {
        KeyError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
