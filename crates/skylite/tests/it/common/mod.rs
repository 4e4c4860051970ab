//! The skylite binary as a child process (`skylite serve` on a free loopback port), so tests
//! can kill it with SIGKILL and restart it on the same data folder; plus the HTTP client
//! helpers shared with the in-process server tests.

#![allow(dead_code)]

#[path = "../../../../skylite-server/tests/it/common/client.rs"]
pub mod client;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub use client::*;

/// A running `skylite serve`.
pub struct ChildServer {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ChildServer {
    /// Starts `skylite serve --listen 127.0.0.1:0 --data-dir <dir> <extra...>` and waits until
    /// it logs the address it listens on.
    pub fn start(data_dir: &Path, extra: &[&str]) -> ChildServer {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Like [`start`](Self::start), with extra environment variables (e.g. `AWS_*`).
    pub fn start_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(String, String)],
    ) -> ChildServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skylite"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            // These tests are about durability and restarts, not tokens.
            .arg("--no-auth")
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .env("SKYLITE_LOG", "info")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the skylite binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    if let (Ok(addr), Some(tx)) = (addr.parse(), tx.take()) {
                        let _ = tx.send(addr);
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                panic!("server did not start; log:\n{}", log.lock().unwrap());
            }
        };
        ChildServer {
            child,
            addr,
            log,
            reader: Some(reader),
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then waits for the process to be gone.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill the server");
        self.child.wait().expect("reap the server");
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Asserts that the server never panicked.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
