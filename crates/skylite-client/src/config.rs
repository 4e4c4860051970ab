//! Where to connect and how: [`Config`] (URL, token, timeouts, retries, extra CA certificates),
//! built explicitly or read from the environment and a `.env` file, and the parsing of URLs into
//! a local file or a remote server.
//!
//! # From the environment
//!
//! [`Config::from_env`] reads the process environment and `./.env` (if present). A variable set
//! in the process environment wins over the same variable in the file. The URL is the first set
//! of:
//!
//! 1. `SKYLITE_URL`
//! 2. `TURSO_DATABASE_URL`
//! 3. `LIBSQL_URL`
//!
//! and the token is the one that goes with it (`SKYLITE_AUTH_TOKEN`, `TURSO_AUTH_TOKEN`,
//! `LIBSQL_AUTH_TOKEN` respectively), or `SKYLITE_AUTH_TOKEN` if that one is unset; a token is
//! never taken from another family, so a Turso token is not sent to a server named by
//! `SKYLITE_URL`. `SKYLITE_CA_FILE` names a PEM file of extra trusted CA certificates.
//!
//! # `.env` syntax
//!
//! One `KEY=VALUE` per line; blank lines and lines starting with `#` are ignored; an optional
//! `export ` prefix is allowed; values may be `'single quoted'` (taken literally),
//! `"double quoted"` (with `\n`, `\t`, `\"`, `\\` escapes) or bare (trimmed, and a ` #` starts a
//! comment).
//!
//! # URLs
//!
//! | URL | target |
//! |---|---|
//! | `file:app.db`, `file:///abs/app.db`, `app.db`, `/abs/app.db` | the local file, on the engine in this process |
//! | `:memory:`, `file::memory:` | a new private database that lives as long as the client (and its clones) |
//! | `http://host:8080`, `http://host:8080/db/app` | Hrana v3 over HTTP |
//! | `https://...`, `libsql://...`, `wss://...` | the same over TLS (`libsql://host?tls=0` and `ws://` mean plain HTTP) |
//!
//! A query parameter `authToken=...` on a remote URL is used as the token when none is given.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Default time allowed to open a TCP connection and finish the TLS handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for one HTTP request, from sending to the end of the response.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of retries of a request that is safe to repeat.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// How to connect. Build it with [`Config::new`] and the setters, or [`Config::from_env`].
///
/// ```
/// use std::time::Duration;
/// let config = skylite_client::Config::new("http://127.0.0.1:8080/db/app")
///     .auth_token("eyJ...")
///     .connect_timeout(Duration::from_secs(3))
///     .request_timeout(Duration::from_secs(30))
///     .max_retries(1);
/// ```
#[derive(Clone, PartialEq)]
pub struct Config {
    /// The database URL (see the module docs).
    pub url: String,
    /// The bearer token (ignored for local files).
    pub auth_token: Option<String>,
    /// Time allowed to connect (TCP + TLS).
    pub connect_timeout: Duration,
    /// Time allowed for one request.
    pub request_timeout: Duration,
    /// Retries of requests that are safe to repeat (see [`crate`] docs, "Retries").
    pub max_retries: u32,
    /// A PEM file of extra CA certificates to trust for `https://` (self-signed servers).
    pub ca_file: Option<PathBuf>,
    /// Use Hrana's Protobuf encoding where the server offers it (the default; JSON otherwise).
    /// JSON cannot carry ±infinity: servers send `null` for it, which reads back as an error.
    pub protobuf: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("ca_file", &self.ca_file)
            .field("protobuf", &self.protobuf)
            .finish()
    }
}

impl Config {
    /// A configuration for `url` with default timeouts and no token.
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            auth_token: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            ca_file: None,
            protobuf: true,
        }
    }

    /// Sets the token (an empty string means none).
    pub fn auth_token(mut self, token: impl Into<String>) -> Config {
        let token = token.into();
        self.auth_token = (!token.is_empty()).then_some(token);
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Config {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Config {
        self.request_timeout = timeout;
        self
    }

    /// Sets how often a request that is safe to repeat is retried (0: never).
    pub fn max_retries(mut self, retries: u32) -> Config {
        self.max_retries = retries;
        self
    }

    /// Trusts the CA certificates in this PEM file too (for `https://`).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Config {
        self.ca_file = Some(path.into());
        self
    }

    /// Whether to use the Protobuf encoding where the server offers it (default `true`).
    pub fn protobuf(mut self, on: bool) -> Config {
        self.protobuf = on;
        self
    }

    /// Reads the process environment and `./.env` (if it exists). See the module docs.
    pub fn from_env() -> Result<Config> {
        Config::from_env_with(|k| std::env::var(k).ok(), Some(Path::new(".env")))
    }

    /// Reads the process environment and the given `.env` file, which must exist.
    pub fn from_env_file(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::Config(format!("no such file: {}", path.display())));
        }
        Config::from_env_with(|k| std::env::var(k).ok(), Some(path))
    }

    /// Like [`Config::from_env`], with the environment given as a lookup function and an
    /// optional `.env` file (ignored if it does not exist). Useful in tests.
    pub fn from_env_with(
        env: impl Fn(&str) -> Option<String>,
        dotenv: Option<&Path>,
    ) -> Result<Config> {
        let file: HashMap<String, String> = match dotenv {
            Some(path) if path.is_file() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
                parse_dotenv(&text)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
                    .into_iter()
                    .collect()
            }
            _ => HashMap::new(),
        };
        let get = |key: &str| {
            env(key)
                .or_else(|| file.get(key).cloned())
                .filter(|v| !v.is_empty())
        };
        const FAMILIES: [(&str, &str); 3] = [
            ("SKYLITE_URL", "SKYLITE_AUTH_TOKEN"),
            ("TURSO_DATABASE_URL", "TURSO_AUTH_TOKEN"),
            ("LIBSQL_URL", "LIBSQL_AUTH_TOKEN"),
        ];
        let (url, token_var) = FAMILIES
            .iter()
            .find_map(|(u, t)| get(u).map(|url| (url, *t)))
            .ok_or_else(|| {
                Error::Config(
                    "no database URL: set SKYLITE_URL (or TURSO_DATABASE_URL, LIBSQL_URL) in \
                     the environment or in .env"
                        .into(),
                )
            })?;
        let mut config = Config::new(url);
        config.auth_token = get(token_var).or_else(|| get("SKYLITE_AUTH_TOKEN"));
        config.ca_file = get("SKYLITE_CA_FILE").map(PathBuf::from);
        Ok(config)
    }
}

/// Parses the text of a `.env` file into its `(key, value)` pairs, in order.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, rest)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", n + 1));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("line {}: invalid variable name {key:?}", n + 1));
        }
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('\'') {
            let end = body
                .find('\'')
                .ok_or_else(|| format!("line {}: unterminated single quote", n + 1))?;
            body[..end].to_owned()
        } else if let Some(body) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = body.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some('r') => value.push('\r'),
                        Some(other) => value.push(other),
                        None => value.push('\\'),
                    },
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("line {}: unterminated double quote", n + 1));
            }
            value
        } else {
            let end = rest.find(" #").or_else(|| rest.find("\t#"));
            rest[..end.unwrap_or(rest.len())].trim_end().to_owned()
        };
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// What a URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A file on this machine.
    Local(PathBuf),
    /// `:memory:`: a private database of this client, gone when its last clone is dropped.
    Memory,
    /// A Hrana server.
    Remote(RemoteUrl),
}

/// A parsed remote URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteUrl {
    pub(crate) tls: bool,
    /// Host name or IP address, without IPv6 brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host:port` as the `Host` header says it.
    pub(crate) authority: String,
    /// The path before `/v3/...`, without a trailing slash (`""` or `/db/app`).
    pub(crate) base_path: String,
    /// `authToken` from the query string.
    pub(crate) query_token: Option<String>,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::Config("the database URL is empty".into()));
        }
        if let Some(rest) = url.strip_prefix("file:") {
            let rest = rest.split(['?', '#']).next().unwrap_or("");
            let path = match rest.strip_prefix("//") {
                // file:///abs/path or file://localhost/abs/path
                Some(after) => match after.find('/') {
                    Some(i) if after[..i].is_empty() || after[..i].eq_ignore_ascii_case("localhost") => {
                        &after[i..]
                    }
                    _ => {
                        return Err(Error::Config(format!(
                            "unsupported file URL {url:?}: use file:relative/path or file:///absolute/path"
                        )))
                    }
                },
                None => rest,
            };
            return local_path(path);
        }
        let Some((scheme, _)) = url.split_once("://") else {
            return local_path(url);
        };
        let scheme = scheme.to_ascii_lowercase();
        let mut tls = match scheme.as_str() {
            "http" | "ws" => false,
            "https" | "wss" | "libsql" => true,
            other => {
                return Err(Error::Config(format!(
                    "unsupported URL scheme {other:?} in {url:?} (expected file:, http://, \
                     https:// or libsql://)"
                )))
            }
        };
        let rewritten = format!("http{}", &url[scheme.len()..]);
        let uri: hyper::Uri = rewritten
            .parse()
            .map_err(|e| Error::Config(format!("invalid URL {url:?}: {e}")))?;
        let mut query_token = None;
        for pair in uri.query().unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("tls", v)) if scheme == "libsql" => tls = !matches!(v, "0" | "false"),
                Some(("authToken", v)) if !v.is_empty() => query_token = Some(v.to_owned()),
                _ => {}
            }
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::Config(format!("the URL {url:?} names no host")))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = match uri.port_u16() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Target::Remote(RemoteUrl {
            tls,
            host: bare_host,
            port,
            authority,
            base_path,
            query_token,
        }))
    }
}

fn local_path(path: &str) -> Result<Target> {
    if path.is_empty() {
        return Err(Error::Config("the file URL names no file".into()));
    }
    if path == ":memory:" {
        return Ok(Target::Memory);
    }
    Ok(Target::Local(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_targets() {
        assert_eq!(
            Target::parse("file:app.db").unwrap(),
            Target::Local("app.db".into())
        );
        assert_eq!(
            Target::parse("file:///tmp/a.db?mode=rwc").unwrap(),
            Target::Local("/tmp/a.db".into())
        );
        assert_eq!(
            Target::parse("data/app.db").unwrap(),
            Target::Local("data/app.db".into())
        );
        let Target::Remote(r) = Target::parse("libsql://db.example.com/db/app/").unwrap() else {
            panic!()
        };
        assert!(r.tls);
        assert_eq!((r.host.as_str(), r.port), ("db.example.com", 443));
        assert_eq!(r.base_path, "/db/app");
        let Target::Remote(r) = Target::parse("libsql://127.0.0.1:9000?tls=0&authToken=t").unwrap()
        else {
            panic!()
        };
        assert!(!r.tls);
        assert_eq!(r.authority, "127.0.0.1:9000");
        assert_eq!(r.query_token.as_deref(), Some("t"));
        let Target::Remote(r) = Target::parse("http://[::1]:8080").unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.host.as_str(), r.port, r.base_path.as_str()),
            ("::1", 8080, "")
        );
        assert!(Target::parse("ftp://x").is_err());
        assert_eq!(Target::parse(":memory:").unwrap(), Target::Memory);
        assert_eq!(Target::parse("file::memory:").unwrap(), Target::Memory);
    }

    #[test]
    fn dotenv_syntax() {
        let text = "# comment\n\nexport A=1\nB = 'lit # not comment' \nC=\"x\\ny \\\"q\\\"\"\nD=bare value # comment\nE=\n";
        let vars = parse_dotenv(text).unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "lit # not comment".into()),
                ("C".into(), "x\ny \"q\"".into()),
                ("D".into(), "bare value".into()),
                ("E".into(), "".into()),
            ]
        );
        assert!(parse_dotenv("NOEQUALS").is_err());
        assert!(parse_dotenv("A=\"open").is_err());
    }
}
