//! Finding a `skylite serve` on this machine, so `skylite db import app.db` needs no `--url` and
//! no copied admin token.
//!
//! `skylite serve` writes `.skylite/server.json` in its data folder once it listens
//! (`{"url": "http://127.0.0.1:8080", "pid": 1234, "version": "..."}`; a wildcard listen address
//! is written as loopback) and removes it when it stops. The CLI reads it from `--data-dir`
//! (default `./skylite-data`, the server's default) and mints a short-lived admin token with the
//! data folder's signing key (`.skylite/jwt.key`): whoever may read that key may act as the
//! server's admin anyway. A server with `--no-auth` has no key; then no token is sent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::remote::Target;

/// The discovery file, in the data folder's private folder.
pub const SERVER_FILE: &str = "server.json";

/// How long the admin token minted for one local command lives.
const LOCAL_ADMIN_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

fn server_file(data_dir: &Path) -> PathBuf {
    data_dir.join(".skylite").join(SERVER_FILE)
}

/// The discovery file of a running server; removed when dropped (at shutdown).
pub struct Announcement {
    path: PathBuf,
}

impl Drop for Announcement {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The URL a client on this machine uses for a server listening on `addr`.
pub fn local_url(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Writes the discovery file of a server listening at `url` on `data_dir` (replacing a stale
/// one). A failure is only logged: discovery is a convenience.
pub fn announce(data_dir: &Path, url: &str) -> Option<Announcement> {
    let path = server_file(data_dir);
    let body = serde_json::json!({
        "url": url,
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let tmp = path.with_extension("json.tmp");
    let written =
        std::fs::write(&tmp, body.to_string()).and_then(|()| std::fs::rename(&tmp, &path));
    match written {
        Ok(()) => Some(Announcement { path }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(
                "cannot write {} (local `skylite db` commands then need --url): {e}",
                path.display()
            );
            None
        }
    }
}

/// The server running on the data folder `data_dir`, with a fresh admin token, or `None` if
/// no server announced itself there.
pub fn discover(data_dir: &Path) -> Result<Option<Target>, String> {
    let path = server_file(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let info: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a server file: {e}", path.display()))?;
    let url = info["url"]
        .as_str()
        .ok_or_else(|| format!("{} names no URL", path.display()))?
        .to_owned();
    let key_path = data_dir.join(".skylite").join("jwt.key");
    let token = if key_path.is_file() {
        let key = skylite_auth::load_signing_key(&key_path).map_err(|e| e.to_string())?;
        let spec = skylite_auth::TokenSpec {
            admin: true,
            lifetime: Some(LOCAL_ADMIN_TOKEN_LIFETIME),
            ..skylite_auth::TokenSpec::default()
        };
        Some(skylite_auth::mint(&key, &spec)?.0)
    } else {
        None
    };
    Ok(Some(Target {
        url,
        token,
        ca_file: std::env::var_os("SKYLITE_CA_FILE").map(PathBuf::from),
    }))
}
