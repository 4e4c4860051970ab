//! Shared by the client's integration tests: one skylite server per test binary (in-process,
//! auth on, on 127.0.0.1, with a database `app` and a read-write token for it), one local
//! database file per test binary, the two targets the scenarios run against, and unique table
//! names so tests can run in parallel on the same databases.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use skylite_auth::{mint, SigningKey, TokenSpec};
use skylite_server::{serve, App, ServerConfig, TlsConfig};

pub struct Server {
    pub addr: SocketAddr,
    pub key: SigningKey,
    /// A read-write token for `app`.
    pub token: String,
    /// `http://127.0.0.1:PORT/db/app/`.
    pub url: String,
}

/// Starts a server on its own thread and runtime, so both async and blocking tests can use it.
fn start(tls: Option<TlsConfig>) -> Server {
    start_with(tls, |_| {})
}

/// A server of its own, its configuration adjusted by `adjust` (e.g. a small response limit).
pub fn start_with(
    tls: Option<TlsConfig>,
    adjust: impl FnOnce(&mut ServerConfig) + Send + 'static,
) -> Server {
    let dir: &'static tempfile::TempDir =
        Box::leak(Box::new(tempfile::tempdir().expect("tempdir")));
    let (tx, rx) = std::sync::mpsc::channel();
    let scheme = if tls.is_some() { "https" } else { "http" };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut config = ServerConfig::new(dir.path());
            config.auth.disabled = false;
            config.tls = tls;
            config.engine.durability = skylite_engine::Durability::Normal;
            adjust(&mut config);
            let app = App::open(config).expect("server opens");
            app.databases.create("app").expect("create app");
            let key = app
                .auth
                .keypair()
                .expect("auth is on: a key pair")
                .signing
                .clone();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tx.send((addr, key)).expect("send");
            serve(app, listener, std::future::pending()).await
        })
    });
    let (addr, key) = rx.recv().expect("the server started");
    let token = mint(
        &key,
        &TokenSpec {
            databases: vec!["app".into()],
            ..TokenSpec::default()
        },
    )
    .expect("mint")
    .0;
    let host = if scheme == "https" {
        "localhost"
    } else {
        "127.0.0.1"
    };
    Server {
        url: format!("{scheme}://{host}:{}/db/app/", addr.port()),
        addr,
        key,
        token,
    }
}

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start(None))
}

/// The server's TLS test fixtures (a root CA, an intermediate, a leaf for localhost).
pub fn tls_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../skylite-server/tests/fixtures/tls")
        .join(name)
}

pub fn tls_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let tls = TlsConfig::load(&tls_fixture("chain.pem"), &tls_fixture("key-pkcs8.pem"))
            .expect("TLS fixtures load");
        start(Some(tls))
    })
}

/// A local database file for this test binary.
pub fn local_url() -> String {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir: &'static tempfile::TempDir =
            Box::leak(Box::new(tempfile::tempdir().expect("tempdir")));
        format!("file:{}", dir.path().join("local.db").display())
    })
    .clone()
}

/// (name, url, token) of each target the scenarios run against: the local file only when the
/// client is built with its `local` feature.
pub fn targets() -> Vec<(&'static str, String, String)> {
    let s = server();
    let mut out = Vec::new();
    if cfg!(feature = "local") {
        out.push(("local", local_url(), String::new()));
    }
    out.push(("remote", s.url.clone(), s.token.clone()));
    out
}

/// A table name not used by any other test of this binary.
pub fn table(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed))
}
