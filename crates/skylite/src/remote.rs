//! Where the CLI's server is and how it talks to it: `--url` and `--token` (or the environment
//! and `.env`, read as skylite-client reads them), and the admin API through skylite-client's
//! [`Admin`] (the one HTTP transport: pooled hyper HTTP/1.1, rustls for `https://`), with the
//! CLI's hints added to the server's errors.
//!
//! URL and token: `--url` wins; else the first of `SKYLITE_URL`, `TURSO_DATABASE_URL`,
//! `LIBSQL_URL` in the environment or `./.env`. `--token` wins; else the token of the same
//! family as the URL (`SKYLITE_AUTH_TOKEN`, `TURSO_AUTH_TOKEN`, `LIBSQL_AUTH_TOKEN`); with an
//! explicit `--url`, the first of those three that is set. `SKYLITE_CA_FILE` adds trusted CA
//! certificates for `https://`.
//!
//! For the admin API the URL is the server's base URL; a database path at its end
//! (`/db/<name>`, `/dev/<name>`) is dropped, so the `SKYLITE_URL` that `skylite db env` writes
//! works too (its token, though, is not an admin's).

use std::path::PathBuf;

use hyper::Method;
use skylite_client::admin::{Admin, Download};
use skylite_client::http::Body;

/// The `--url` and `--token` every command that talks to a server takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServerArgs {
    /// Server URL (for `db` commands its base URL, e.g. http://127.0.0.1:8080). Default:
    /// SKYLITE_URL, TURSO_DATABASE_URL or LIBSQL_URL from the environment or ./.env.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token (an admin token for `db` commands). Default: SKYLITE_AUTH_TOKEN,
    /// TURSO_AUTH_TOKEN or LIBSQL_AUTH_TOKEN from the environment or ./.env.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// A URL and a token, resolved.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Reads one variable from the environment or `./.env` (the environment wins).
fn env_lookup() -> Result<impl Fn(&str) -> Option<String>, ServerError> {
    let path = std::path::Path::new(".env");
    let file: Vec<(String, String)> = if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::other(format!("cannot read .env: {e}")))?;
        skylite_client::config::parse_dotenv(&text)
            .map_err(|e| ServerError::other(format!(".env: {e}")))?
    } else {
        Vec::new()
    };
    Ok(move |key: &str| {
        std::env::var(key)
            .ok()
            .or_else(|| {
                file.iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            })
            .filter(|v| !v.is_empty())
    })
}

impl ServerArgs {
    /// The URL and token to use, from the flags or the environment and `.env`.
    pub fn resolve(&self) -> Result<Target, ServerError> {
        let get = env_lookup()?;
        let ca_file = get("SKYLITE_CA_FILE").map(PathBuf::from);
        let families = [
            ("SKYLITE_URL", "SKYLITE_AUTH_TOKEN"),
            ("TURSO_DATABASE_URL", "TURSO_AUTH_TOKEN"),
            ("LIBSQL_URL", "LIBSQL_AUTH_TOKEN"),
        ];
        let (url, env_token) = match &self.url {
            Some(url) => (url.clone(), families.iter().find_map(|(_, t)| get(t))),
            None => families
                .iter()
                .find_map(|(u, t)| {
                    get(u).map(|url| (url, get(t).or_else(|| get("SKYLITE_AUTH_TOKEN"))))
                })
                .ok_or_else(|| {
                    ServerError::other(
                        "no server URL: pass --url URL, or set SKYLITE_URL (or \
                         TURSO_DATABASE_URL, LIBSQL_URL) in the environment or in .env",
                    )
                })?,
        };
        let token = self.token.clone().filter(|t| !t.is_empty()).or(env_token);
        Ok(Target {
            url,
            token,
            ca_file,
        })
    }
}

/// What kind of failure a server call met: scripts get a distinct exit code for each (see
/// `main.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server could not be reached (refused, DNS, TLS, timeout, broken connection).
    Connect,
    /// The token was refused (HTTP 401 or 403).
    Auth,
    /// The database (or the endpoint) does not exist (HTTP 404).
    NotFound,
    /// Anything else the server refused or answered wrongly.
    Other,
}

impl Failure {
    /// The kind of a client error, if it is one of those scripts can tell apart.
    pub fn of(e: &skylite_client::Error) -> Option<Failure> {
        match e {
            skylite_client::Error::Connect(_) | skylite_client::Error::Timeout { .. } => {
                Some(Failure::Connect)
            }
            skylite_client::Error::Auth { .. } => Some(Failure::Auth),
            skylite_client::Error::Http { status: 404, .. } => Some(Failure::NotFound),
            _ => None,
        }
    }
}

/// A failed server call: a message that names the server and what it said (with a hint for
/// what a CLI user can fix), its kind, and the client's typed error as its source.
#[derive(Debug)]
pub struct ServerError {
    text: String,
    /// The kind, for the exit code.
    pub failure: Failure,
    /// The HTTP status, if the server answered.
    pub status: Option<u16>,
    /// The server's error code (`AUTH_DISABLED`, ...), if it sent one.
    pub code: Option<String>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for ServerError {}

/// For code that still reports errors as text (`Result<_, String>`): the message, chain
/// included. Prefer `anyhow::Result`, which keeps the kind for the exit code.
impl From<ServerError> for String {
    fn from(e: ServerError) -> String {
        e.text
    }
}

impl ServerError {
    /// A failure of the CLI's own (a missing URL, an unreadable `.env`, a bad URL).
    pub fn other(text: impl Into<String>) -> ServerError {
        ServerError::new(text, Failure::Other)
    }

    /// A failure of this kind with this message.
    pub fn new(text: impl Into<String>, failure: Failure) -> ServerError {
        ServerError {
            text: text.into(),
            failure,
            status: None,
            code: None,
        }
    }

    /// The same failure, its message prefixed with what was being done.
    pub fn doing(mut self, what: impl std::fmt::Display) -> ServerError {
        self.text = format!("{what}: {}", self.text);
        self
    }
}

/// A server's admin API, with messages for the CLI.
pub struct Server {
    admin: Admin,
    /// The base URL as shown in messages (`http://host:port` plus any proxy prefix).
    pub base: String,
}

impl Server {
    /// The server of `target` (its base URL: a trailing `/db/<name>` is dropped).
    pub fn new(target: &Target) -> Result<Server, ServerError> {
        let admin = Admin::new(
            &target.url,
            target.token.as_deref(),
            target.ca_file.as_deref(),
        )
        .map_err(|e| match e {
            skylite_client::Error::Config(m) => ServerError::other(m),
            e => ServerError::other(e.to_string()),
        })?;
        Ok(Server {
            base: admin.base().to_owned(),
            admin,
        })
    }

    /// The URL of database `name` for HTTP clients (with the trailing slash they need).
    pub fn database_url(&self, name: &str) -> String {
        self.admin.database_url(name)
    }

    /// Sends a JSON request and returns the JSON answer of a 2xx, or the server's error.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ServerError> {
        self.admin
            .json(method, path, body.as_ref())
            .await
            .map_err(|e| self.error(&e))
    }

    /// Sends a request with a streamed body and returns the JSON answer of a 2xx.
    pub async fn upload(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<serde_json::Value, ServerError> {
        self.admin
            .call(method, path, headers, body)
            .await
            .map_err(|e| self.error(&e))
    }

    /// `GET`s `path` as a stream.
    pub async fn download(&self, path: &str) -> Result<Download, ServerError> {
        self.admin.download(path).await.map_err(|e| self.error(&e))
    }

    /// Turns a client error into a message naming the server and saying what it said, with a
    /// hint for the refusals a CLI user can fix.
    pub fn error(&self, e: &skylite_client::Error) -> ServerError {
        use skylite_client::Error;
        let (status, code, message) = match e {
            Error::Auth {
                status,
                code,
                message,
            }
            | Error::Http {
                status,
                code,
                message,
            } => (*status, code, message),
            Error::Connect(m) => {
                return ServerError {
                    text: format!("cannot reach {}: {m}", self.base),
                    failure: Failure::Connect,
                    status: None,
                    code: None,
                }
            }
            Error::Timeout { .. } => {
                return ServerError {
                    text: format!("{e} ({})", self.base),
                    failure: Failure::Connect,
                    status: None,
                    code: None,
                }
            }
            other => {
                return ServerError {
                    text: format!("{other} ({})", self.base),
                    failure: Failure::Other,
                    status: None,
                    code: None,
                }
            }
        };
        let shown_code = code.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
        let hint = match status {
            401 if !self.admin.has_token() => {
                " (no token given: pass --token, or set SKYLITE_AUTH_TOKEN; mint an admin token \
                 with `skylite token create --data-dir DIR --admin`)"
            }
            401 | 403 => {
                " (this needs an admin token: `skylite token create --data-dir DIR --admin`)"
            }
            404 if message.trim().is_empty() || code.is_none() => {
                " (is this a skylite server with the admin API?)"
            }
            _ => "",
        };
        ServerError {
            text: format!(
                "the server {} answered {status}{shown_code}: {message}{hint}",
                self.base
            ),
            failure: match status {
                401 | 403 => Failure::Auth,
                404 => Failure::NotFound,
                _ => Failure::Other,
            },
            status: Some(status),
            code: code.clone(),
        }
    }
}
