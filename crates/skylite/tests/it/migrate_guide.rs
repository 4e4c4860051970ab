//! docs/migrate.md, run for real: a local SQLite file goes to a `skylite serve` child (auth on)
//! with `skylite db import`, `skylite db env --write` writes `.env`, and the guide's Rust apps
//! (async and blocking, in `tests/migrate_guide/`) run against it. Also checks that every code
//! block of the guide marked `<!-- file: PATH -->` is that file, verbatim (the Python and Node
//! apps run in tests/clients).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod async_app {
    include!("../migrate_guide/async_app.rs");
    pub fn run() -> skylite_client::Result<()> {
        main()
    }
}

mod blocking_app {
    include!("../migrate_guide/blocking_app.rs");
    pub fn run() -> skylite_client::Result<()> {
        main()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn skylite(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_skylite"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SKYLITE_URL")
        .env_remove("SKYLITE_AUTH_TOKEN")
        .output()
        .expect("run skylite");
    assert!(
        out.status.success(),
        "skylite {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_guides_rust_apps_read_the_imported_rows() {
    for var in [
        "SKYLITE_URL",
        "SKYLITE_AUTH_TOKEN",
        "TURSO_DATABASE_URL",
        "TURSO_AUTH_TOKEN",
        "LIBSQL_URL",
        "LIBSQL_AUTH_TOKEN",
    ] {
        std::env::remove_var(var);
    }
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let data = cwd.join("data");
    let admin = skylite(
        cwd,
        &[
            "token",
            "create",
            "--data-dir",
            data.to_str().unwrap(),
            "--admin",
        ],
    )
    .trim()
    .to_owned();
    let mut server = Command::new(env!("CARGO_BIN_EXE_skylite"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let url = format!(
        "http://{}",
        rx.recv_timeout(Duration::from_secs(30)).unwrap()
    );

    {
        let conn = rusqlite::Connection::open(cwd.join("app.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO users VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Ünïcødé 🚀');",
        )
        .unwrap();
    }
    let server_args = ["--url", url.as_str(), "--token", admin.as_str()];
    let mut args = vec!["db", "import", "app.db", "--name", "app"];
    args.extend_from_slice(&server_args);
    skylite(cwd, &args);
    let mut args = vec!["db", "env", "app", "--write"];
    args.extend_from_slice(&server_args);
    skylite(cwd, &args);

    // The apps read ./.env: run them from the folder the guide's commands ran in.
    std::env::set_current_dir(cwd).unwrap();
    let result = async_app::run().and_then(|_| blocking_app::run());
    // And the rows are there, read the same way.
    let db = skylite_client::blocking::Client::from_env().unwrap();
    let names: Vec<String> = db
        .execute("SELECT name FROM users ORDER BY id", ())
        .unwrap()
        .iter()
        .map(|r| r.get::<String>(0).unwrap())
        .collect();
    std::env::set_current_dir(repo_root()).unwrap();
    let _ = server.kill();
    let _ = server.wait();
    result.unwrap();
    assert_eq!(names, ["Ada", "Grace", "Ünïcødé 🚀"]);
}

#[test]
fn the_guides_code_blocks_are_the_tested_files() {
    let root = repo_root();
    let guide = std::fs::read_to_string(root.join("docs/migrate.md")).unwrap();
    let mut checked = 0;
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- file: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or("");
        assert!(fence.starts_with("```"), "a code block follows {path}");
        let mut block = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            block.push_str(l);
            block.push('\n');
        }
        let file =
            std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            block, file,
            "docs/migrate.md's block for {path} differs from the file"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 5,
        "the sync and async SQLAlchemy, TypeScript and two Rust apps"
    );
}
