//! The `skylite` command's exit codes and error chains, as scripts see them: 2 for a usage
//! error, 3 when the server cannot be reached, 4 when it refuses the token, 5 when the database
//! does not exist, 1 for anything else (an SQL error in a shell script too); errors print as
//! `error: what was done: why`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Runs the binary in `cwd` with no SKYLITE_/TURSO_/LIBSQL_ variables.
fn skylite(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skylite"));
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("SKYLITE_") || k.starts_with("TURSO_") || k.starts_with("LIBSQL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", cwd)
        .stdin(Stdio::null())
        .output()
        .expect("skylite runs")
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `skylite serve` on a free port (auth on) and an admin token for it.
fn start(dir: &Path) -> (Server, String, String) {
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let out = skylite(dir, &["token", "create", "--data-dir", data, "--admin"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skylite"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data])
        .env("NO_COLOR", "1")
        .env("SKYLITE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skylite serve starts");
    let log = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(log).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        }
    });
    let server = Server(child);
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address");
    (server, format!("http://{addr}"), admin)
}

#[test]
fn exit_codes_tell_scripts_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (_server, url, admin) = start(cwd);

    // 2: usage.
    let out = skylite(cwd, &["db", "frobnicate"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));

    // 3: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = skylite(
        cwd,
        &["db", "list", "--url", &closed_url, "--token", &admin],
    );
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: cannot list the databases: "),
        "{}",
        stderr(&out)
    );

    // 4: the token is refused.
    let out = skylite(
        cwd,
        &["db", "list", "--url", &url, "--token", "not-a-token"],
    );
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    // 5: no such database; the chain names what was being done and what the server said.
    let out = skylite(
        cwd,
        &["db", "export", "nope", "--url", &url, "--token", &admin],
    );
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: cannot export `nope`: the server http://") && err.contains("404"),
        "{err}"
    );

    // 1: anything else (the database exists already: 409).
    let out = skylite(
        cwd,
        &["db", "create", "dup", "--url", &url, "--token", &admin],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = skylite(
        cwd,
        &["db", "create", "dup", "--url", &url, "--token", &admin],
    );
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("409"), "{}", stderr(&out));

    // A local failure keeps its cause: an unreadable key file.
    let out = skylite(
        cwd,
        &[
            "token",
            "create",
            "--key-file",
            "/nonexistent/jwt.key",
            "--db",
            "x",
        ],
    );
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
}

/// `skylite shell` reading `script` from standard input.
fn shell(cwd: &Path, args: &[&str], script: &str) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skylite"));
    cmd.arg("shell")
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("SKYLITE_") || k.starts_with("TURSO_") || k.starts_with("LIBSQL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("HOME", cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skylite shell runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().expect("skylite shell finishes")
}

#[test]
fn a_shell_script_exits_with_the_kind_of_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (_server, url, admin) = start(cwd);
    let db_url = format!("{url}/db/default/");
    let out = shell(cwd, &[&db_url, "--token", &admin], "SELECT 1;\n");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = shell(cwd, &[&db_url, "--token", "not-a-token"], "SELECT 1;\n");
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/db/default/", closed.local_addr().unwrap());
    drop(closed);
    let out = shell(cwd, &[&closed_url], "SELECT 1;\n");
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    // An SQL error is a plain failure.
    let out = shell(cwd, &[&db_url, "--token", &admin], "SELECT * FROM nope;\n");
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such table"), "{}", stderr(&out));
}

#[test]
fn bench_runs_the_separate_binary_or_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let bench = Path::new(env!("CARGO_BIN_EXE_skylite"))
        .with_file_name(format!("skylite-bench{}", std::env::consts::EXE_SUFFIX));
    let out = skylite(dir.path(), &["bench", "--help"]);
    if bench.is_file() {
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--duration-secs"), "{help}");
    } else {
        assert_eq!(code(&out), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("cargo build --release -p skylite-bench"),
            "{}",
            stderr(&out)
        );
    }
}
