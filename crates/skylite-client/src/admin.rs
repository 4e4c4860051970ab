//! A skylite server's admin API (`/v1/admin/...`) over the shared HTTP transport
//! ([`crate::http`]): JSON calls, streamed uploads (database import) and streamed downloads
//! (export, dump). The `skylite db ...` commands are built on it.
//!
//! The URL is the server's base URL; a database path at its end (`/db/<name>`, `/dev/<name>`)
//! is dropped, so a database URL (what `skylite db env` writes) works too. Non-2xx answers
//! become [`Error::Auth`] (401, 403) or [`Error::Http`] with the server's status, code and
//! message; nothing here is retried (admin calls are not all safe to repeat).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::Method;

use crate::config::{RemoteUrl, Target, DEFAULT_CONNECT_TIMEOUT};
use crate::error::{Error, Result};
use crate::http::{empty_body, full_body, http_error, Body, HttpClient};

/// A skylite server's admin API: base URL, token, TLS settings and a connection pool.
pub struct Admin {
    http: HttpClient,
    /// The path before `/v1/...`, without a trailing slash.
    prefix: String,
    base: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("base", &self.base).finish()
    }
}

/// A streamed response body (an export or a dump), read chunk by chunk.
pub struct Download {
    body: Incoming,
    content_length: Option<u64>,
}

impl Download {
    /// The length the server announced (`Content-Length`), if it did.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The next chunk of the body, `None` at its end, or an error if the connection broke.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Error::Connect(format!("the answer broke off: {e}")));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

impl Admin {
    /// The admin API of the server at `url` (`http://`, `https://`, `libsql://`; a trailing
    /// `/db/<name>` is dropped), sending `token` if given and trusting the CA certificates in
    /// `ca_file` too for `https://`.
    pub fn new(url: &str, token: Option<&str>, ca_file: Option<&Path>) -> Result<Admin> {
        let url = match Target::parse(url)? {
            Target::Remote(url) => url,
            _ => {
                return Err(Error::Config(format!(
                    "{url:?} is not a server URL (expected http://host:port or https://...)"
                )))
            }
        };
        let prefix = base_prefix(&url.base_path);
        let base = format!(
            "{}://{}{prefix}",
            if url.tls { "https" } else { "http" },
            url.authority
        );
        let http = HttpClient::new(
            &RemoteUrl {
                base_path: prefix.clone(),
                ..url
            },
            token.filter(|t| !t.is_empty()),
            ca_file,
            DEFAULT_CONNECT_TIMEOUT,
            concat!("skylite-cli/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Admin { http, prefix, base })
    }

    /// The base URL as shown in messages (`http://host:port` plus any proxy prefix).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of database `name` for Hrana clients (with the trailing slash they need).
    pub fn database_url(&self, name: &str) -> String {
        format!("{}/db/{name}/", self.base)
    }

    /// Whether a token is sent.
    pub fn has_token(&self) -> bool {
        self.http.has_token()
    }

    /// Sends a request to `<base><path>` and returns the whole answer of a 2xx as JSON
    /// (`null` for an empty body), or the server's error.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let (headers, body): (&[(&str, &str)], Body) = match body {
            Some(v) => (
                &[(CONTENT_TYPE.as_str(), "application/json")],
                full_body(v.to_string()),
            ),
            None => (&[], empty_body()),
        };
        self.call(method, path, headers, body).await
    }

    /// Sends a request with a (streamed) body and returns the JSON answer of a 2xx, or the
    /// server's error. For uploads: build `body` with `http_body_util::StreamBody`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<serde_json::Value> {
        let request =
            self.http
                .request(method, &format!("{}{path}", self.prefix), headers, body)?;
        let (resp, sender) = self.http.send(request).await.map_err(|a| a.into_error())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Connect(format!("the server's answer broke off: {e}")))?
            .to_bytes();
        self.http.put_idle(sender);
        if !status.is_success() {
            return Err(http_error(status, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Protocol(format!(
                "the server {} answered something that is not JSON ({e}): {}",
                self.base,
                String::from_utf8_lossy(bytes.get(..200).unwrap_or(&bytes))
            ))
        })
    }

    /// `GET <base><path>` and the answer of a 2xx as a stream, or the server's error. The
    /// connection is not reused after a download.
    pub async fn download(&self, path: &str) -> Result<Download> {
        let request = self.http.request(
            Method::GET,
            &format!("{}{path}", self.prefix),
            &[],
            empty_body(),
        )?;
        let (resp, sender) = self.http.send(request).await.map_err(|a| a.into_error())?;
        let status = resp.status();
        if !status.is_success() {
            // An error answer is small; do not wait forever for a broken one.
            let bytes = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            self.http.put_idle(sender);
            return Err(http_error(status, &bytes));
        }
        let content_length = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok(Download {
            body: resp.into_body(),
            content_length,
        })
    }
}

/// The base path of a server URL: no trailing slash, no trailing `/db/<name>` or `/dev/<name>`.
fn base_prefix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let mut parts: Vec<&str> = trimmed.split('/').collect();
    if let [.., kind, name] = parts.as_slice() {
        if matches!(*kind, "db" | "dev") && !name.is_empty() && parts.len() >= 3 {
            parts.truncate(parts.len() - 2);
        }
    }
    parts.join("/").trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::base_prefix;

    #[test]
    fn database_paths_are_dropped_from_the_base() {
        assert_eq!(base_prefix(""), "");
        assert_eq!(base_prefix("/"), "");
        assert_eq!(base_prefix("/db/app/"), "");
        assert_eq!(base_prefix("/db/app"), "");
        assert_eq!(base_prefix("/dev/app"), "");
        assert_eq!(base_prefix("/proxy/db/app/"), "/proxy");
        assert_eq!(base_prefix("/proxy/"), "/proxy");
    }
}
