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
//!    `localhost`. The label counts only if the token opens that database and it exists;
//!    otherwise the request goes on to the next rule, so a server reached as
//!    `db.example.com` keeps serving `default` with no setup. A label the token does not open
//!    is never looked up.
//! 4. **`default`.**
//!
//! A name given by path or header must be valid (400 `INVALID_DATABASE_NAME`) and must exist
//! (404 `DATABASE_NOT_FOUND`); databases are created only through the admin API.
//!
//! Authorization is carried by the extractor types, checked in this order: the token (401),
//! the name's syntax (400), the token's claims on that name (403), and only then the lookup
//! and opening of the database (404). A caller without a valid token, or with a token for
//! another database, learns nothing about which databases exist, and nothing is opened for it.
//!
//! - [`Authorized`]: every SQL endpoint. Always authenticates (an `Upgrade` header changes
//!   nothing) and carries a grant, never an optional one.
//! - [`UpgradeTarget`]: only the WebSocket upgrade (`GET /`), whose token comes in `hello`:
//!   without a token it carries only the validated name ([`DbSelector`]); `ws/` binds the
//!   database with [`open_authorized`] once `hello` brings a token.
//! - [`AdminAuth`]: the admin API.

use skylite_engine::ErrorCode;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};

use skylite_auth::{Access, AuthError, Grant, Principal};

use crate::app::App;
use crate::databases::{is_valid_name, not_found, validate_name, DbHandle, DEFAULT_DATABASE};
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

/// How a request names its database, read from the request alone: no lookup, no I/O. Names
/// given by path or header are validated here (400), which reveals nothing about what exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSelector {
    /// Named by the path prefix or the `x-namespace` header (a valid name).
    Named {
        /// The database name.
        name: String,
        /// Named by the path prefix (then a 403 or 404 may carry the trailing-slash hint).
        from_path: bool,
    },
    /// A valid name carried by the `Host` subdomain. It counts only if the token opens that
    /// database and the database exists; otherwise the request goes to `default`.
    Host(String),
    /// Nothing named: `default`.
    Default,
}

impl DbSelector {
    /// Reads the rules of the module documentation off the request: 400
    /// `INVALID_DATABASE_NAME` for an invalid name given by path or header.
    pub fn from_parts(parts: &Parts) -> Result<DbSelector, ApiError> {
        if let Some(PathDatabase(name)) = parts.extensions.get::<PathDatabase>() {
            validate_name(name)?;
            return Ok(DbSelector::Named {
                name: name.clone(),
                from_path: true,
            });
        }
        if let Some(value) = parts.headers.get(NAMESPACE_HEADER) {
            let name = value.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidDatabaseName,
                    "the x-namespace header is not valid ASCII",
                )
            })?;
            let name = name.trim();
            validate_name(name)?;
            return Ok(DbSelector::Named {
                name: name.to_owned(),
                from_path: false,
            });
        }
        if let Some(label) = request_host(&parts.uri, &parts.headers).and_then(host_label) {
            if is_valid_name(&label) {
                return Ok(DbSelector::Host(label));
            }
        }
        Ok(DbSelector::Default)
    }
}

/// Finds an existing database by a valid name: already open, or opened now on a worker
/// thread (and kept open). `None` if it does not exist. Call it only for a principal whose
/// claims open `name`: it is the step that reveals existence and opens files.
async fn existing(app: &App, name: &str) -> Result<Option<Arc<DbHandle>>, ApiError> {
    if let Some(db) = app.databases.get_open(name) {
        return Ok(Some(db));
    }
    let worker_app = app.clone();
    let owned = name.to_owned();
    crate::blocking::run(&app.workers, move || {
        worker_app.databases.open_existing(&owned)
    })
    .await
    .map_err(|e| ApiError::internal(format!("database lookup failed: {e}")))?
}

/// What `principal`'s claims allow on the database called `name` (checked on the name alone,
/// before any lookup): 403 for a token that does not open it. `hint` is appended to the
/// refusal (the trailing-slash hint for names that look like endpoints).
fn grant_on(principal: &Principal, name: &str, hint: Option<&str>) -> Result<Grant, ApiError> {
    let grant = principal.authorize(name, Access::Read).map_err(|e| {
        let mut err = auth_error(e);
        if let Some(hint) = hint {
            err.message.push_str(hint);
        }
        err
    })?;
    if let Some(jti) = principal.jti() {
        tracing::debug!(jti, database = name, ?grant, "authorized");
    }
    Ok(grant)
}

/// Binds an authenticated `principal` to the database `selector` names, in the order that
/// reveals nothing to a caller who may not open it: the claims are checked on the name first
/// (403), and only then is the database looked up and opened (404 `DATABASE_NOT_FOUND` if
/// missing). A subdomain label that the token does not open is never looked up.
pub async fn open_authorized(
    app: &App,
    selector: &DbSelector,
    principal: &Principal,
) -> Result<(Arc<DbHandle>, Grant), ApiError> {
    match selector {
        DbSelector::Named { name, from_path } => {
            let hint = trailing_slash_hint(name).filter(|_| *from_path);
            let grant = grant_on(principal, name, hint)?;
            let db = existing(app, name).await?.ok_or_else(|| {
                let mut err = not_found(name);
                if let Some(hint) = hint {
                    err.message.push_str(hint);
                }
                err
            })?;
            return Ok((db, grant));
        }
        DbSelector::Host(label) => {
            if let Ok(grant) = principal.authorize(label, Access::Read) {
                let db = match app.databases.get_open(label) {
                    Some(db) => Some(db),
                    // A label looked up recently and missing (`db` of `db.example.com`) is
                    // not looked up again on every request.
                    None if app.databases.known_absent(label) => None,
                    None => existing(app, label).await?,
                };
                if let Some(db) = db {
                    return Ok((db, grant));
                }
            }
        }
        DbSelector::Default => {}
    }
    let grant = grant_on(principal, DEFAULT_DATABASE, None)?;
    let db = app
        .databases
        .default_db()
        .ok_or_else(|| ApiError::internal("the default database is not open"))?;
    Ok((db, grant))
}

/// The extractor of every SQL endpoint: a request that proved who it is, bound to the database
/// it names, with what it may do there. It always authenticates (an `Upgrade` header changes
/// nothing), in this order: token (401) → name (400) → claims on that name (403) → lookup and
/// open (404). So a caller without a token, or with a token for another database, learns
/// nothing about which databases exist, and nothing is opened for it.
#[derive(Clone)]
pub struct Authorized {
    /// The database, open.
    pub db: Arc<DbHandle>,
    /// What the token allows on it.
    pub grant: Grant,
}

impl Authorized {
    /// Whether the request may only read.
    pub fn read_only(&self) -> bool {
        !self.grant.can_write()
    }
}

impl FromRequestParts<App> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let principal = authenticate(app, parts)?;
        let selector = DbSelector::from_parts(parts)?;
        let (db, grant) = open_authorized(app, &selector, &principal).await?;
        Ok(Authorized { db, grant })
    }
}

/// The extractor of the WebSocket upgrade route (`GET /`) only. A Hrana client sends its token
/// in `hello`, after the upgrade, so an upgrade without a token cannot be bound to a database
/// yet: it gets only the validated name, and `ws/` resolves and opens the database once
/// `hello` carries a token that opens it. An upgrade request that does carry a token
/// (`Authorization: Bearer`) is checked up front like any SQL request.
#[derive(Clone)]
pub enum UpgradeTarget {
    /// The upgrade proved who it is (a valid bearer token, or auth is off): bound like
    /// [`Authorized`]. `hello` is still checked against this database.
    Bound(Authorized),
    /// No token yet: nothing looked up or opened. An existing, a missing and a never-opened
    /// database all look the same until `hello`.
    Pending(DbSelector),
}

impl FromRequestParts<App> for UpgradeTarget {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let has_token = parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION);
        if app.auth.is_disabled() || has_token {
            return Authorized::from_request_parts(parts, app)
                .await
                .map(UpgradeTarget::Bound);
        }
        Ok(UpgradeTarget::Pending(DbSelector::from_parts(parts)?))
    }
}

/// The extractor of the admin API (`/v1/admin/*`, including import, export, dump and token
/// minting): an admin token (`Authorization: Bearer` with the `skylite_admin` claim). 401
/// without a valid token, 403 for a token that is not an admin's; with `--no-auth` everything
/// is allowed. Handlers take it first, so nothing else about the request is looked at before.
#[derive(Debug, Clone)]
pub struct AdminAuth;

impl FromRequestParts<App> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let principal = authenticate(app, parts)?;
        principal.authorize_admin().map_err(auth_error)?;
        tracing::info!(jti = principal.jti().unwrap_or("-"), "admin request");
        Ok(AdminAuth)
    }
}

/// Turns an authentication or authorization failure into its 401/403 answer.
pub fn auth_error(e: AuthError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    ApiError::new(status, e.code(), e.to_string())
}

/// Authenticates the request: the `Authorization: Bearer` JWT (signature, `exp`/`nbf`,
/// revocation); 401 without a valid token. With `--no-auth`, a principal that may do
/// everything. No header makes an exception (an `Upgrade` header least of all).
pub fn authenticate(app: &App, parts: &Parts) -> Result<Principal, ApiError> {
    if app.auth.is_disabled() {
        return Ok(Principal::unrestricted());
    }
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.auth.authenticate_header(header).map_err(auth_error)
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

    /// The selector of a request to `path` with `headers`, after the prefix is stripped.
    fn select(path: &str, headers: &[(&str, &str)]) -> Result<DbSelector, u16> {
        let mut builder = Request::builder().uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = strip_database_prefix(builder.body(axum::body::Body::empty()).unwrap());
        let (parts, _) = req.into_parts();
        DbSelector::from_parts(&parts).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn selectors_need_no_lookup() {
        let named = |name: &str, from_path| {
            Ok(DbSelector::Named {
                name: name.to_owned(),
                from_path,
            })
        };
        assert_eq!(select("/db/app/v2/pipeline", &[]), named("app", true));
        assert_eq!(
            select("/dev/app/", &[("x-namespace", "other")]),
            named("app", true)
        );
        assert_eq!(
            select("/v2/pipeline", &[("x-namespace", " app ")]),
            named("app", false)
        );
        assert_eq!(
            select("/", &[("host", "app.db.example.com")]),
            Ok(DbSelector::Host("app".to_owned()))
        );
        // A valid label is only a candidate: it counts at lookup time if the token opens it
        // and it exists (`db` of `db.example.com` usually does not).
        assert_eq!(
            select("/", &[("host", "db.example.com")]),
            Ok(DbSelector::Host("db".to_owned()))
        );
        assert_eq!(
            select("/", &[("host", "example.com")]),
            Ok(DbSelector::Default)
        );
        assert_eq!(
            select("/", &[("host", "-x.localhost")]),
            Ok(DbSelector::Default)
        );
        assert_eq!(select("/", &[]), Ok(DbSelector::Default));
        // Invalid names given explicitly are 400, whatever exists.
        assert_eq!(select("/db/../v2/pipeline", &[]), Err(400));
        assert_eq!(select("/db/", &[]), Err(400));
        assert_eq!(select("/", &[("x-namespace", ".skylite")]), Err(400));
        assert_eq!(select("/", &[("x-namespace", "APP")]), Err(400));
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
