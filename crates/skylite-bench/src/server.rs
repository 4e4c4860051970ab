//! The server under test, as a child process: a scratch folder for the run ([`ScratchDir`]),
//! starting `skylite serve` on a free port (optionally pinned to a CPU with `taskset`), with
//! auth on unless told otherwise (a token for `default` is minted on its data folder first),
//! waiting for `GET /health`, and killing it when the benchmark ends, fails or unwinds
//! ([`ServerProcess`] kills on drop). [`Target`] is what the load generators need to reach it.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::header::HeaderValue;
use skylite_auth::{load_or_create_keypair, mint, TokenSpec};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::http;

/// How long the server may take to answer `GET /health`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A folder for one run's databases, removed (with its contents) on drop.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a new, uniquely named folder inside `parent`.
    pub fn create(parent: &Path) -> Result<ScratchDir, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!("skylite-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(ScratchDir { path })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// How to start the server.
pub struct ServerOptions<'a> {
    /// The `skylite` binary to run.
    pub binary: PathBuf,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// `full` or `normal`.
    pub durability: &'a str,
    /// Pin the server to this CPU with `taskset -c`, if set and `taskset` exists.
    pub cpu: Option<usize>,
    /// Authentication on (the server's default); `false` starts it with `--no-auth`.
    pub auth: bool,
}

/// Where the load generators connect and how they authenticate; built once per run, so each
/// request only clones a reference-counted header value or message.
#[derive(Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// `Bearer <token>` for every HTTP request (`None` when auth is off).
    pub authorization: Option<HeaderValue>,
    /// The WebSocket `hello` message, carrying the token in `jwt` (`null` when auth is off).
    pub hello: Utf8Bytes,
}

impl Target {
    fn new(addr: SocketAddr, token: Option<&str>) -> Result<Target, String> {
        let authorization = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .map_err(|e| format!("the minted token is not a valid header value: {e}"))?;
        let jwt = serde_json::to_string(&token).map_err(|e| format!("cannot encode hello: {e}"))?;
        Ok(Target {
            addr,
            authorization,
            hello: Utf8Bytes::from(format!(r#"{{"type":"hello","jwt":{jwt}}}"#)),
        })
    }
}

/// Mints a read-write token for the `default` database with the data folder's key pair (made
/// here if missing; the server loads the same one), valid for a day: what an app would use.
fn mint_default_token(data_dir: &Path) -> Result<String, String> {
    let pair = load_or_create_keypair(data_dir)
        .map_err(|e| format!("cannot make the server's key pair: {e}"))?;
    let spec = TokenSpec {
        databases: vec!["default".to_owned()],
        read_only: false,
        admin: false,
        lifetime: Some(Duration::from_secs(24 * 3600)),
    };
    let (token, _claims) = mint(&pair.signing, &spec)?;
    Ok(token)
}

/// A running `skylite serve`, killed on drop.
pub struct ServerProcess {
    child: Child,
    /// The CPU it is pinned to, if it is.
    pub pinned_cpu: Option<usize>,
    /// How to reach it (address and credentials).
    pub target: Target,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts the server and waits until it answers `GET /health`. With auth on, first mints
    /// the token the load generators send. Its output goes to `server.log` in the data folder.
    pub async fn start(opts: ServerOptions<'_>) -> Result<ServerProcess, String> {
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        std::fs::create_dir_all(&opts.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", opts.data_dir.display()))?;
        let token = if opts.auth {
            Some(mint_default_token(&opts.data_dir)?)
        } else {
            None
        };
        let target = Target::new(addr, token.as_deref())?;
        let log_path = opts.data_dir.join("server.log");
        let log = File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot reuse {}: {e}", log_path.display()))?;

        let taskset = opts.cpu.and_then(|cpu| match find_in_path("taskset") {
            Some(path) => Some((path, cpu)),
            None => {
                eprintln!("warning: --server-cpu ignored: taskset is not installed");
                None
            }
        });
        let mut cmd = match &taskset {
            Some((taskset, cpu)) => {
                let mut c = Command::new(taskset);
                c.arg("-c").arg(cpu.to_string()).arg(&opts.binary);
                c
            }
            None => Command::new(&opts.binary),
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&opts.data_dir)
            .arg("--durability")
            .arg(opts.durability);
        if !opts.auth {
            cmd.arg("--no-auth");
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", opts.binary.display()))?;
        let mut server = ServerProcess {
            child,
            pinned_cpu: taskset.map(|(_, cpu)| cpu),
            target,
            log_path,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let began = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the server exited ({status}) before it was ready; its log:\n{}",
                    self.log_tail()
                ));
            }
            if http::is_healthy(&self.target).await {
                return Ok(());
            }
            if began.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "the server did not answer GET /health within {} s; its log:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server is still running (it did not crash during the benchmark).
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "the server exited ({status}) during the benchmark; its log:\n{}",
                self.log_tail()
            )),
            Err(e) => Err(format!("cannot check on the server: {e}")),
        }
    }

    /// The last lines of the server's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (the OS picks it; another process could take it before
/// the server binds it, which then fails loudly).
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// The first executable file called `name` in `PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
