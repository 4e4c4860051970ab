//! `skylite serve` run like a service, as the real binary: `--log-format json` lines carry the
//! request id (the client's `x-request-id`, echoed in the response, or a fresh one), a slow
//! statement is logged with its database, duration and SQL but never its arguments, SIGHUP
//! reloads, and SIGTERM shuts down cleanly with exit code 0; `skylite db import app.db --env-file .env`
//! finds the local server through its data folder (no `--url`, no copied token) and writes a
//! working `.env`; `db create`/`db set` set per-database limits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn serve(data: &std::path::Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skylite"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .env("SKYLITE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the skylite binary starts");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let (tx, rx) = mpsc::channel::<SocketAddr>();
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
            sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no address logged: {:?}", log.lock().unwrap()));
    Served {
        child,
        addr,
        log,
        reader: Some(reader),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 POST -> (status, lower-cased headers, body).
fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Vec<(String, String)>, Value) {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        // Enough for these small answers: the first chunk is the whole body.
        rest.split_once("\r\n")
            .map_or("", |(_, b)| b)
            .rsplit_once("\r\n0")
            .map_or("", |(b, _)| b)
            .to_owned()
    } else {
        rest.to_owned()
    };
    (
        status,
        headers,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const SECRET: &str = "SECRET-ARGUMENT-VALUE";

#[test]
fn json_logs_carry_request_ids_slow_statements_skip_arguments_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        &dir.path().join("data"),
        &[
            "--no-auth",
            "--log-format",
            "json",
            "--slow-statement-threshold",
            "1",
        ],
    );
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 200000) \
                SELECT count(*), length(?) FROM c";
    let pipeline = json!({"baton": null, "requests": [
        {"type": "execute", "stmt": {"sql": slow, "args": [{"type": "text", "value": SECRET}]}},
        {"type": "close"}
    ]});
    let (status, headers, body) = post(
        server.addr,
        "/v3/pipeline",
        &[("x-request-id", "ops-test-42")],
        &pipeline,
    );
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(header(&headers, "x-request-id"), Some("ops-test-42"));
    // No id (or an unusable one): a fresh one is made and echoed.
    let (_, headers, _) = post(
        server.addr,
        "/v3/pipeline",
        &[("x-request-id", "has a space")],
        &pipeline,
    );
    let fresh = header(&headers, "x-request-id")
        .expect("a fresh id")
        .to_owned();
    assert_eq!(fresh.len(), 16, "{fresh}");
    assert!(fresh.bytes().all(|b| b.is_ascii_hexdigit()), "{fresh}");

    // The slow statement's line: JSON, in the request's span, with database, duration and SQL.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let found = server.log.lock().unwrap().iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["fields"]["message"] == "slow statement" && v["span"]["id"] == "ops-test-42")
                .then_some(v)
        });
        if let Some(v) = found {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no slow-statement line: {:?}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(line["level"], "WARN", "{line:#}");
    assert_eq!(line["fields"]["database"], "default", "{line:#}");
    assert!(
        line["fields"]["duration_ms"].as_f64().unwrap() >= 1.0,
        "{line:#}"
    );
    assert!(
        line["fields"]["sql"]
            .as_str()
            .unwrap()
            .starts_with("WITH RECURSIVE"),
        "{line:#}"
    );

    // SIGHUP reloads (certificates, keys, revocations) and the server goes on.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("\"reloaded\""))
    {
        assert!(Instant::now() < deadline, "no reload logged after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _, _) = post(server.addr, "/v3/pipeline", &[], &pipeline);
    assert_eq!(status, 200);

    // SIGTERM: a clean exit.
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Some(r) = server.reader.take() {
        let _ = r.join();
    }
    assert_eq!(status.code(), Some(0));
    let log = server.log.lock().unwrap().clone();
    for l in &log {
        assert!(serde_json::from_str::<Value>(l).is_ok(), "not JSON: {l}");
        assert!(!l.contains(SECRET), "an argument value was logged: {l}");
        assert!(!l.contains("panicked"), "{l}");
    }
    assert!(log.iter().any(|l| l.contains("shut down")), "{log:?}");
}

/// `skylite <args>` in `cwd`, with no server URL or token in the environment.
fn skylite(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skylite"));
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for var in [
        "SKYLITE_URL",
        "SKYLITE_AUTH_TOKEN",
        "TURSO_DATABASE_URL",
        "TURSO_AUTH_TOKEN",
        "LIBSQL_URL",
        "LIBSQL_AUTH_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().expect("the skylite binary runs")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn env_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_owned()
}

#[test]
fn db_import_finds_the_local_server_and_writes_env_in_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("skylite-data");
    let mut server = serve(&data, &[]);
    assert!(data.join(".skylite/server.json").is_file());

    // The app's database, next to the app (the working folder).
    let work = dir.path().join("app");
    std::fs::create_dir(&work).unwrap();
    make_app_db(&work.join("My App.db"));

    // One command: no --url, no token; the database is named after the file.
    let out = skylite(
        &work,
        &[
            "db",
            "import",
            "My App.db",
            "--data-dir",
            data.to_str().unwrap(),
            "--env-file",
            ".env",
        ],
    );
    ok(&out);
    let env = std::fs::read_to_string(work.join(".env")).unwrap();
    let url = env_value(&env, "TURSO_DATABASE_URL");
    let token = env_value(&env, "TURSO_AUTH_TOKEN");
    assert!(url.contains("my-app"), "{url}");
    // The written token reads the imported rows.
    let (status, _, body) = post(
        server.addr,
        "/db/my-app/v3/pipeline",
        &[("authorization", &format!("Bearer {token}"))],
        &json!({"baton": null, "requests": [
            {"type": "execute", "stmt": {"sql": "SELECT count(*) FROM notes"}},
            {"type": "close"}
        ]}),
    );
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(
        body["results"][0]["response"]["result"]["rows"][0][0]["value"], "3",
        "{body:#}"
    );

    // Limits from the CLI (a remote-style call with --url and an admin token).
    let admin = ok(&skylite(
        &work,
        &[
            "token",
            "create",
            "--admin",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    ))
    .trim()
    .to_owned();
    let base = format!("http://{}", server.addr);
    let remote = ["--url", base.as_str(), "--token", admin.as_str()];
    let mut create = vec!["db", "create", "small", "--max-size-bytes", "262144"];
    create.extend(remote);
    ok(&skylite(&work, &create));
    let mut set = vec![
        "db",
        "set",
        "small",
        "--txn-timeout-ms",
        "700",
        "--max-size-bytes",
        "none",
    ];
    set.extend(remote);
    let said = ok(&skylite(&work, &set));
    assert!(said.contains("\"txn_timeout_ms\":700"), "{said}");
    assert!(said.contains("\"max_size_bytes\":null"), "{said}");

    // The discovery file goes away with the server.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!data.join(".skylite/server.json").exists());
}

/// A small SQLite database file with a table `notes` of three rows.
fn make_app_db(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO notes(body) VALUES ('a'), ('b'), ('c');",
    )
    .unwrap();
}
