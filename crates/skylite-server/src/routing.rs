//! Which database a request is for.
//!
//! A request names its database in one of four ways; the first that applies wins:
//!
//! 1. **Path prefix**: `/db/<name>/...` (skylite's) or `/dev/<name>/...` (sqld's). The prefix
//!    is stripped before routing ([`strip_database_prefix`]), so every endpoint (`/v2/pipeline`,
//!    `/v3/cursor`, `/v3-protobuf/*`, `/v1/execute`, `POST /`, the WebSocket upgrade on `GET /`)
//!    works under it. Empty segments are collapsed (`/db/app//v3/pipeline` works).
//! 2. **Header** `x-namespace: <name>` (sqld's).
//! 3. **Subdomain**: the first label of the `Host` when the host has at least three labels
//!    (`app.db.example.com`) or is `<name>.localhost`; never an IP address or bare
//!    `localhost`. The label counts only if it is a valid name of an existing database;
//!    otherwise the request goes on to the next rule, so a server reached as
//!    `db.example.com` keeps serving `default` with no setup.
//! 4. **`default`.**
//!
//! A name given by path or header must be valid (400 `INVALID_DATABASE_NAME`) and must exist
//! (404 `DATABASE_NOT_FOUND`); databases are created only through the admin API. With auth on,
//! the token is checked first: a request without a valid token gets its 401 before any name is
//! looked at, so it cannot tell which databases exist.
//!
//! [`TargetDb`] is the extractor every SQL handler takes: the one place where a request is
//! bound to a database, and so the place where authorization is checked.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};

use skylite_auth::{Access, AuthError, Grant, Principal};

use crate::app::App;
use crate::databases::{is_valid_name, not_found, validate_name, DbHandle};
use crate::error::ApiError;

/// The header sqld reads a namespace (database) name from.
pub const NAMESPACE_HEADER: &str = "x-namespace";

/// Our own path prefix: `/db/<name>/...`.
pub const DB_PREFIX: &str = "db";
/// sqld's path prefix: `/dev/<name>/...`.
pub const DEV_PREFIX: &str = "dev";

/// A request extension: the database named by the path prefix (not validated yet).
#[derive(Debug, Clone)]
pub struct PathDatabase(pub String);

/// Strips a `/db/<name>` or `/dev/<name>` prefix off the request path (remembering the name
/// in a [`PathDatabase`] extension) and collapses empty path segments, before the router sees
/// the path.
pub fn strip_database_prefix(mut req: Request) -> Request {
    let uri = req.uri().clone();
    let path = uri.path();
    let mut segments = path.split('/').filter(|s| !s.is_empty()).peekable();
    let named = match segments.peek() {
        Some(&first) if first == DB_PREFIX || first == DEV_PREFIX => {
            segments.next();
            // `/db/` with no name names the empty string, which validation refuses.
            Some(segments.next().unwrap_or("").to_owned())
        }
        _ => None,
    };
    let rest: Vec<&str> = segments.collect();
    let mut new_path = String::with_capacity(path.len());
    for seg in &rest {
        new_path.push('/');
        new_path.push_str(seg);
    }
    if new_path.is_empty() {
        new_path.push('/');
    }
    if named.is_none() && new_path == path {
        return req;
    }
    let path_and_query = match uri.query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let mut parts = uri.into_parts();
    match path_and_query.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        // Cannot happen (the pieces came from a valid URI); leave the request as it was.
        Err(_) => return req,
    }
    if let Ok(new_uri) = Uri::from_parts(parts) {
        *req.uri_mut() = new_uri;
    }
    if let Some(name) = named {
        req.extensions_mut().insert(PathDatabase(name));
    }
    req
}

/// The database label a `Host` carries, if the host is of a shape that carries one: the first
/// label of a name with at least three labels, or of `<label>.localhost`. IP addresses and bare
/// names never do. The label is lowercased (host names are case-insensitive) but not
/// validated.
pub fn host_label(host: &str) -> Option<String> {
    let host = host.trim();
    if host.starts_with('[') {
        return None; // IPv6 literal
    }
    let name = host.rsplit_once(':').map_or(host, |(h, _port)| h);
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return None;
    }
    let carries = match labels.last() {
        Some(&"localhost") => labels.len() >= 2,
        _ => labels.len() >= 3,
    };
    carries.then(|| labels[0].to_owned())
}

/// The host a request was sent to (the URI authority for HTTP/2, else the `Host` header).
fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| {
        headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
    })
}

/// A hint for a path prefix naming an endpoint instead of a database (`/db/v2/pipeline`): most
/// likely a client URL `http://host/db/app` without its trailing slash, which clients resolve
/// `v2/pipeline` against relatively, dropping `app`.
pub fn trailing_slash_hint(name: &str) -> Option<&'static str> {
    [
        "v1",
        "v2",
        "v3",
        "v3-protobuf",
        "pipeline",
        "execute",
        "batch",
        "cursor",
    ]
    .contains(&name)
    .then_some(
        "; if your client URL ends in /db/<name>, add a trailing slash \
             (http://host/db/<name>/): clients resolve v2/pipeline relative to the URL, \
             which drops the last segment",
    )
}

/// Finds a database by a name the client gave explicitly (path or header): invalid → 400,
/// missing → 404.
async fn named(app: &App, name: &str, from_path: bool) -> Result<Arc<DbHandle>, ApiError> {
    validate_name(name)?;
    if let Some(db) = app.databases.get_open(name) {
        return Ok(db);
    }
    lookup(app, name).await?.ok_or_else(|| {
        let mut err = not_found(name);
        if let Some(hint) = trailing_slash_hint(name).filter(|_| from_path) {
            err.message.push_str(hint);
        }
        err
    })
}

/// Opens a database that exists on disk but is not open yet (on a worker thread).
async fn lookup(app: &App, name: &str) -> Result<Option<Arc<DbHandle>>, ApiError> {
    let worker_app = app.clone();
    let owned = name.to_owned();
    crate::blocking::run(&app.workers, move || {
        worker_app.databases.open_existing(&owned)
    })
    .await
    .map_err(|e| ApiError::internal(format!("database lookup failed: {e}")))?
}

/// Resolves the database of a request (see the module documentation for the rules).
pub async fn resolve(app: &App, parts: &Parts) -> Result<Arc<DbHandle>, ApiError> {
    if let Some(PathDatabase(name)) = parts.extensions.get::<PathDatabase>() {
        return named(app, name, true).await;
    }
    if let Some(value) = parts.headers.get(NAMESPACE_HEADER) {
        let name = value.to_str().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_DATABASE_NAME",
                "the x-namespace header is not valid ASCII",
            )
        })?;
        return named(app, name.trim(), false).await;
    }
    if let Some(label) = request_host(&parts.uri, &parts.headers).and_then(host_label) {
        if is_valid_name(&label) {
            if let Some(db) = app.databases.get_open(&label) {
                return Ok(db);
            }
            if !app.databases.known_absent(&label) {
                if let Some(db) = lookup(app, &label).await? {
                    return Ok(db);
                }
            }
        }
    }
    app.databases
        .default_db()
        .ok_or_else(|| ApiError::internal("the default database is not open"))
}

/// The database a request is for, resolved and authorized, with what the request may do
/// there. The grant is `None` only for a WebSocket upgrade, whose token arrives later in
/// `hello` (`ws.rs` checks it there against this database).
pub struct TargetDb(pub Arc<DbHandle>, pub Option<Grant>);

impl TargetDb {
    /// Whether the request may only read (also when no grant was made yet).
    pub fn read_only(&self) -> bool {
        !self.1.is_some_and(Grant::can_write)
    }
}

impl FromRequestParts<App> for TargetDb {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        // The token is checked before the database is looked up, so that a request without a
        // valid token learns nothing (not even whether a name is valid or a database exists):
        // 401 comes before 400 and 404.
        let principal = authenticate(app, parts)?;
        let db = resolve(app, parts).await?;
        let grant = authorize(principal.as_ref(), &db)?;
        Ok(TargetDb(db, grant))
    }
}

/// Turns an authentication or authorization failure into its 401/403 answer.
pub fn auth_error(e: AuthError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    ApiError::new(status, e.code(), e.to_string())
}

/// True for a WebSocket upgrade request.
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Authenticates the request: the `Authorization: Bearer` JWT (signature, `exp`/`nbf`,
/// revocation). 401 without a valid token. `None` for a WebSocket upgrade, whose token comes in
/// `hello`; with `--no-auth`, a principal that may do everything.
pub fn authenticate(app: &App, parts: &Parts) -> Result<Option<Principal>, ApiError> {
    if app.auth.is_disabled() {
        return Ok(Some(Principal::unrestricted()));
    }
    if is_websocket_upgrade(&parts.headers) {
        return Ok(None);
    }
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.auth
        .authenticate_header(header)
        .map(Some)
        .map_err(auth_error)
}

/// Checks that the authenticated `principal` may use `db` (the `id`/`p` claims naming `db`,
/// `a` = `ro`/`rw`): 403 for a token that does not open `db`. A WebSocket upgrade (no
/// principal yet) passes with no grant: its token comes in `hello`.
pub fn authorize(principal: Option<&Principal>, db: &DbHandle) -> Result<Option<Grant>, ApiError> {
    let Some(principal) = principal else {
        return Ok(None);
    };
    let grant = principal
        .authorize(db.name(), Access::Read)
        .map_err(auth_error)?;
    if let Some(jti) = principal.jti() {
        tracing::debug!(jti, database = db.name(), ?grant, "authorized");
    }
    Ok(Some(grant))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(path: &str) -> (String, Option<String>) {
        let req = Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let req = strip_database_prefix(req);
        (
            req.uri().to_string(),
            req.extensions().get::<PathDatabase>().map(|p| p.0.clone()),
        )
    }

    #[test]
    fn prefixes() {
        assert_eq!(strip("/v2/pipeline"), ("/v2/pipeline".into(), None));
        assert_eq!(
            strip("/db/app/v2/pipeline"),
            ("/v2/pipeline".into(), Some("app".into()))
        );
        assert_eq!(strip("/dev/app"), ("/".into(), Some("app".into())));
        assert_eq!(strip("/db/app/"), ("/".into(), Some("app".into())));
        assert_eq!(
            strip("/db/app//v3/cursor?x=1"),
            ("/v3/cursor?x=1".into(), Some("app".into()))
        );
        assert_eq!(strip("/db/"), ("/".into(), Some("".into())));
        assert_eq!(
            strip("/db/%2e%2e/v2/pipeline"),
            ("/v2/pipeline".into(), Some("%2e%2e".into()))
        );
        assert_eq!(strip("//v2/pipeline"), ("/v2/pipeline".into(), None));
        assert_eq!(strip("/dbx/v2"), ("/dbx/v2".into(), None));
    }

    #[test]
    fn hosts() {
        assert_eq!(host_label("app.example.com"), Some("app".into()));
        assert_eq!(host_label("App.Example.com:8080"), Some("app".into()));
        assert_eq!(host_label("app.localhost:8080"), Some("app".into()));
        assert_eq!(host_label("localhost:8080"), None);
        assert_eq!(host_label("example.com"), None);
        assert_eq!(host_label("127.0.0.1:8080"), None);
        assert_eq!(host_label("[::1]:8080"), None);
        assert_eq!(host_label("a..b.c"), None);
    }
}
