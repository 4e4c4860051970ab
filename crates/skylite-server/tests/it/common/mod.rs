//! The in-process test server: `App::open` + `serve` on a free loopback port of the test's
//! tokio runtime, with a shutdown channel, plus the HTTP client helpers of `client.rs`.

#![allow(dead_code)]

pub mod client;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

pub use client::*;
use skylite_server::{App, ServerConfig};
use tokio::sync::oneshot;

static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Counts panics on tokio worker/blocking threads (named "tokio-rt-worker" or similar), where
/// server code runs; test threads are named after the tests, so failing assertions are not
/// counted.
fn install_panic_counter() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().map(str::to_owned);
            if name.as_deref().is_some_and(|n| n.starts_with("tokio-")) {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// Panics seen on server threads so far (in this test binary): tokio worker and blocking
/// threads (counted by the hook above) plus jobs of the SQL worker pools, whose panics the pool
/// catches so the worker goes on (counted by the engine; those threads are not named `tokio-`,
/// so nothing is counted twice).
pub fn server_panics() -> usize {
    SERVER_PANICS.load(Ordering::SeqCst) + skylite_engine::workers::job_panics()
}

/// A running in-process server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub app: App,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with default settings in a fresh temporary data folder.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server, letting `tweak` change the config first.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        install_panic_counter();
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(dir.path().join("data"));
        // Most tests are about the protocol, not tokens; the auth tests switch it back on.
        config.auth.disabled = true;
        tweak(&mut config);
        let app = App::open(config).expect("server opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(skylite_server::serve(app.clone(), listener, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            dir,
            app,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The data folder.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
