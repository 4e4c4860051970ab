//! `skylite db ...` and `skylite shell`, run as the real binary against a real `skylite serve`
//! child with authentication on: imports (files with odd page sizes and journal modes, a WAL
//! file under an active writer, SQL dumps with triggers and the word "attach" in data), refusals
//! that leave nothing behind, export/dump/re-import round trips, `db env` values that a client
//! connects with, create/list/destroy, and the shell from stdin and from a pseudo-terminal
//! (tmux, when installed).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::Connection;

/// A running `skylite serve` with auth on, and an admin token for it.
struct Server {
    child: Child,
    url: String,
    admin: String,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let admin = ok(&skylite(
            dir.path(),
            &[
                "token",
                "create",
                "--data-dir",
                data.to_str().unwrap(),
                "--admin",
            ],
            None,
        ))
        .trim()
        .to_owned();
        let mut child = Command::new(env!("CARGO_BIN_EXE_skylite"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("NO_COLOR", "1")
            .env("SKYLITE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("skylite serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its address");
        Server {
            child,
            url: format!("http://{addr}"),
            admin,
            data,
            _dir: dir,
        }
    }

    /// `skylite <args> --url <server> --token <admin>` in `cwd`.
    fn db(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--url", &self.url, "--token", &self.admin]);
        skylite(cwd, &all, None)
    }

    fn databases(&self, cwd: &Path) -> Vec<String> {
        let out = ok(&self.db(cwd, &["db", "list", "--json"]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["databases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary in `cwd` with no SKYLITE_/TURSO_/LIBSQL_ variables, optionally feeding stdin.
fn skylite(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skylite"));
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("SKYLITE_") || k.starts_with("TURSO_") || k.starts_with("LIBSQL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", cwd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run skylite");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.unwrap_or("").to_owned();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("skylite finishes");
    let _ = writer.join();
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should have failed:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every user table's schema and rows, in a comparable form.
fn contents(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut out = Vec::new();
    let tables: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE \
             'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, sql) in tables {
        out.push(sql);
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY 1"))
            .unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let vals: Vec<rusqlite::types::Value> =
                    (0..n).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                Ok(format!("{vals:?}"))
            })
            .unwrap();
        for row in rows {
            out.push(row.unwrap());
        }
    }
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
    out
}

/// A database with several tables, blobs, unicode, i64 extremes, floats, NULLs; rollback
/// journal and the given page size.
fn generate(path: &Path, page_size: u32) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size}; PRAGMA journal_mode = DELETE;
         CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, avatar BLOB);
         CREATE TABLE extremes (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         CREATE INDEX users_name ON users(name);
         CREATE VIEW top AS SELECT name FROM users WHERE score > 0.5;"
    ))
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..2000i64 {
        let blob: Vec<u8> = (0..(i % 300)).map(|b| (b * 7 + i) as u8).collect();
        tx.execute(
            "INSERT INTO users (name, score, avatar) VALUES (?, ?, ?)",
            rusqlite::params![
                format!("名前 {i} ünïcödé 🚀 'quote' \"dq\" attach;"),
                (i as f64) / 2000.0,
                if i % 10 == 0 { None } else { Some(blob) }
            ],
        )
        .unwrap();
    }
    tx.execute_batch(
        "INSERT INTO extremes VALUES ('max', 9223372036854775807), ('min', -9223372036854775808),
         ('zero', 0), ('tiny', 4.9e-324), ('null', NULL), ('empty', ''), ('eblob', x'');",
    )
    .unwrap();
    tx.commit().unwrap();
}

#[test]
fn import_export_dump_and_reimport_round_trip() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let src = cwd.join("app.db");
    generate(&src, 1024);
    let want = contents(&src);

    let out = ok(&server.db(cwd, &["db", "import", "app.db", "--name", "app"]));
    assert!(out.contains("imported app.db into database `app`"), "{out}");
    assert!(out.contains("of 1024 bytes"), "{out}");

    // Export twice: identical rows, and the same bytes while nothing changed.
    ok(&server.db(cwd, &["db", "export", "app", "-o", "a.db"]));
    ok(&server.db(cwd, &["db", "export", "app", "-o", "b.db"]));
    assert_eq!(contents(&cwd.join("a.db")), want);
    assert_eq!(
        std::fs::read(cwd.join("a.db")).unwrap(),
        std::fs::read(cwd.join("b.db")).unwrap()
    );
    // No overwrite without --force.
    fails(&server.db(cwd, &["db", "export", "app", "-o", "a.db"]));
    ok(&server.db(cwd, &["db", "export", "app", "-o", "a.db", "--force"]));

    // Dump: restores into a plain SQLite database with the same rows.
    let sql = ok(&server.db(cwd, &["db", "dump", "app"]));
    assert!(sql.trim_end().ends_with("COMMIT;"));
    let restored = cwd.join("restored.db");
    Connection::open(&restored)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    assert_eq!(contents(&restored), want);

    // Re-import of the dump (SQL text), and of the export (a file): same rows again.
    std::fs::write(cwd.join("app.sql"), &sql).unwrap();
    ok(&server.db(cwd, &["db", "import", "app.sql", "--name", "from-sql"]));
    ok(&server.db(cwd, &["db", "import", "a.db", "--name", "from-file"]));
    for name in ["from-sql", "from-file"] {
        let file = format!("{name}.db");
        ok(&server.db(cwd, &["db", "export", name, "-o", &file]));
        assert_eq!(contents(&cwd.join(&file)), want, "{name}");
    }

    // An existing name is refused before anything is sent.
    let err = fails(&server.db(cwd, &["db", "import", "app.db", "--name", "app"]));
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn wal_source_with_an_active_writer_gives_a_consistent_copy() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let src = cwd.join("live.db");
    {
        let conn = Connection::open(&src).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA page_size = 4096;
             CREATE TABLE a (n INTEGER, pad BLOB); CREATE TABLE b (n INTEGER, pad BLOB);",
        )
        .unwrap();
    }
    // A writer that keeps both tables at the same count in every transaction.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, src) = (stop.clone(), src.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&src).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) || n < 200 {
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; INSERT INTO a VALUES ({n}, randomblob(2000));
                     INSERT INTO b VALUES ({n}, randomblob(2000)); COMMIT;"
                ))
                .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let out = ok(&server.db(cwd, &["db", "import", "live.db", "--name", "live"]));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(out.contains("`live`"), "{out}");
    ok(&server.db(cwd, &["db", "export", "live", "-o", "copy.db"]));
    let conn = Connection::open(cwd.join("copy.db")).unwrap();
    let (a, b): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(a, b, "one committed state");
    assert!(a > 0 && a <= written, "{a} of {written}");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn refusals_leave_nothing_behind() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();

    // Not SQLite: refused before uploading.
    std::fs::write(cwd.join("photo.db"), b"\x89PNG\r\n\x1a\n\0\0\0binary").unwrap();
    let err = fails(&server.db(cwd, &["db", "import", "photo.db", "--name", "photo"]));
    assert!(err.contains("not an SQLite database"), "{err}");
    std::fs::write(cwd.join("notes.txt"), "just some notes, not SQL\n").unwrap();
    let err = fails(&server.db(cwd, &["db", "import", "notes.txt", "--name", "notes"]));
    assert!(err.contains("not an SQLite database"), "{err}");

    // Truncated: half of a real file.
    generate(&cwd.join("full.db"), 4096);
    let bytes = std::fs::read(cwd.join("full.db")).unwrap();
    std::fs::write(cwd.join("half.db"), &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&server.db(cwd, &["db", "import", "half.db", "--name", "half"]));
    assert!(err.contains("truncated"), "{err}");
    // Truncated with a header that does not vouch for its size: the server's checks refuse it.
    let mut lying = bytes[..bytes.len() / 2].to_vec();
    lying[92..96].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    std::fs::write(cwd.join("lying.db"), &lying).unwrap();
    let err = fails(&server.db(cwd, &["db", "import", "lying.db", "--name", "lying"]));
    assert!(!err.is_empty());

    // A dump that fails halfway: the half-made database is removed again.
    std::fs::write(
        cwd.join("bad.sql"),
        "BEGIN TRANSACTION;\nCREATE TABLE t(x);\nINSERT INTO t VALUES(1);\nINSERT INTO nope VALUES(2);\nCOMMIT;\n",
    )
    .unwrap();
    let err = fails(&server.db(cwd, &["db", "import", "bad.sql", "--name", "bad"]));
    assert!(
        err.contains("no such table: nope") && err.contains("removed"),
        "{err}"
    );

    assert_eq!(server.databases(cwd), vec!["default".to_owned()]);
    // No import leftovers in the data folder.
    let leftovers: Vec<_> = std::fs::read_dir(&server.data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".import"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Without a token, or with a non-admin one: clear errors.
    let out = skylite(cwd, &["db", "list", "--url", &server.url], None);
    assert!(fails(&out).contains("401"));
}

#[test]
fn sql_dump_with_triggers_and_attach_in_data() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let dump = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
        CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);\n\
        INSERT INTO notes VALUES(1,'please attach the file; then ATTACH DATABASE ''x'' AS y;');\n\
        INSERT INTO notes VALUES(2,'two\nlines -- not a comment');\n\
        CREATE TABLE log(n INTEGER);\n\
        CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN\n  INSERT INTO log VALUES (new.id);\n  INSERT INTO log VALUES (-new.id);\nEND;\n\
        /* trailing; comment */\nCOMMIT;\n";
    std::fs::write(cwd.join("dump.db"), dump).unwrap(); // the extension does not decide
    let out = ok(&server.db(cwd, &["db", "import", "dump.db", "--name", "notes"]));
    assert!(out.contains("statements applied"), "{out}");

    let db = skylite_client::blocking::Client::connect(
        &format!("{}/db/notes", server.url),
        &server.admin,
    )
    .unwrap();
    let rows = db
        .execute("SELECT body FROM notes ORDER BY id", ())
        .unwrap();
    assert_eq!(
        rows.get(0).unwrap().get::<String>(0).unwrap(),
        "please attach the file; then ATTACH DATABASE 'x' AS y;"
    );
    assert_eq!(
        rows.get(1).unwrap().get::<String>(0).unwrap(),
        "two\nlines -- not a comment"
    );
    db.execute("INSERT INTO notes (id, body) VALUES (3, 'x')", ())
        .unwrap();
    let n: i64 = db
        .execute("SELECT count(*) FROM log WHERE abs(n) = 3", ())
        .unwrap()
        .first()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(n, 2, "the trigger came through whole");
    // Real ATTACH is still refused by the server.
    assert!(db.execute("ATTACH DATABASE 'x' AS y", ()).is_err());
}

#[test]
fn create_list_env_destroy() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    ok(&server.db(cwd, &["db", "create", "shop"]));
    assert!(fails(&server.db(cwd, &["db", "create", "shop"])).contains("409"));
    assert_eq!(server.databases(cwd), vec!["default", "shop"]);
    let table = ok(&server.db(cwd, &["db", "list"]));
    assert!(table.contains("shop"), "{table}");

    // `db env`: lines an app pastes, with a token that works on `shop` only.
    let text = ok(&server.db(cwd, &["db", "env", "shop"]));
    let vars: Vec<(String, String)> = skylite_client::config::parse_dotenv(&text).unwrap();
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(
        get("TURSO_DATABASE_URL"),
        format!("{}/db/shop/", server.url)
    );
    for (u, t) in [
        ("SKYLITE_URL", "SKYLITE_AUTH_TOKEN"),
        ("LIBSQL_URL", "LIBSQL_AUTH_TOKEN"),
    ] {
        assert_eq!(get(u), get("TURSO_DATABASE_URL"));
        assert_eq!(get(t), get("TURSO_AUTH_TOKEN"));
    }
    let db = skylite_client::blocking::Client::connect(
        &get("TURSO_DATABASE_URL"),
        &get("TURSO_AUTH_TOKEN"),
    )
    .unwrap();
    db.execute("CREATE TABLE t (x)", ()).unwrap();
    let other = skylite_client::blocking::Client::connect(
        &format!("{}/db/default", server.url),
        &get("TURSO_AUTH_TOKEN"),
    )
    .unwrap();
    assert!(other.execute("SELECT 1", ()).is_err(), "scoped to shop");

    // --write: into .env (replacing earlier values), which the client then reads.
    std::fs::write(cwd.join(".env"), "OTHER=1\nTURSO_AUTH_TOKEN=old\n").unwrap();
    ok(&server.db(cwd, &["db", "env", "shop", "--write", "--read-only"]));
    let env_text = std::fs::read_to_string(cwd.join(".env")).unwrap();
    assert!(
        env_text.starts_with("OTHER=1\n") && !env_text.contains("=old"),
        "{env_text}"
    );
    let config = skylite_client::Config::from_env_with(|_| None, Some(&cwd.join(".env"))).unwrap();
    let ro = skylite_client::blocking::Client::open(config).unwrap();
    assert!(ro.execute("SELECT count(*) FROM t", ()).is_ok());
    assert!(
        ro.execute("INSERT INTO t VALUES (1)", ()).is_err(),
        "read-only"
    );
    // The CLI itself reads .env: `db list` with no --url finds the server (its token is not an
    // admin's, and the error says so).
    let err = fails(&skylite(cwd, &["db", "list"], None));
    assert!(err.contains("403") && err.contains("admin token"), "{err}");

    // Minted locally with the data folder's key.
    let text = ok(&server.db(
        cwd,
        &[
            "db",
            "env",
            "shop",
            "--data-dir",
            server.data.to_str().unwrap(),
        ],
    ));
    assert!(text.contains("TURSO_AUTH_TOKEN=ey"), "{text}");

    ok(&server.db(cwd, &["db", "destroy", "shop", "--yes"]));
    assert_eq!(server.databases(cwd), vec!["default"]);
    assert!(fails(&server.db(cwd, &["db", "destroy", "shop", "--yes"])).contains("404"));
}

#[test]
fn shell_scripts_from_stdin() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(cwd.join("more.sql"), "INSERT INTO t VALUES (3, 'c');\n").unwrap();
    let script = "CREATE TABLE t (\n  id INTEGER PRIMARY KEY,\n  name TEXT\n);\n\
        INSERT INTO t VALUES (1, 'a,b'); INSERT INTO t VALUES (2, 'say \"hi\"; ok');\n\
        .read more.sql\n\
        .mode csv\nSELECT id, name\n  FROM t\n  ORDER BY id;\n\
        .mode json\nSELECT id, name FROM t WHERE id = 1;\n\
        .mode line\nSELECT 7 AS seven;\n\
        .tables\n.schema t\n\
        BEGIN;\nINSERT INTO t VALUES (4, 'gone');\nROLLBACK;\n\
        .mode table\nSELECT count(*) AS n FROM t;\n";
    for url in [
        format!("{}/db/default", server.url),
        format!("file:{}", cwd.join("local.db").display()),
    ] {
        let out = ok(&skylite(
            cwd,
            &["shell", &url, "--token", &server.admin],
            Some(script),
        ));
        assert!(
            out.contains("id,name\r\n1,\"a,b\"\r\n2,\"say \"\"hi\"\"; ok\"\r\n3,c\r\n"),
            "{out}"
        );
        assert!(out.contains("[{\"id\":1,\"name\":\"a,b\"}]"), "{out}");
        assert!(out.contains("seven = 7"), "{out}");
        assert!(out.contains("\nt\n"), "{out}");
        assert!(out.contains("CREATE TABLE t ("), "{out}");
        assert!(out.contains("| 3 |"), "{out}");
        // .dump restores elsewhere.
        let dump = ok(&skylite(
            cwd,
            &["shell", &url, "--token", &server.admin],
            Some(".dump\n"),
        ));
        let copy = tempfile::tempdir().unwrap();
        let path = copy.path().join("x.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(&dump)
            .unwrap();
        assert_eq!(contents(&path).len(), 4, "{dump}");
        ok(&skylite(
            cwd,
            &["shell", &url, "--token", &server.admin],
            Some("DROP TABLE t;"),
        ));
    }
    // The first error stops a script with a non-zero status.
    let out = skylite(
        cwd,
        &[
            "shell",
            &format!("{}/db/default", server.url),
            "--token",
            &server.admin,
        ],
        Some("SELECT 1;\nSELECT nope;\nSELECT 'after';\n"),
    );
    let err = fails(&out);
    assert!(
        err.contains("line 2") && err.contains("no such column"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("after"));
    // `db shell NAME` reaches the same server.
    let out = ok(&server.db(cwd, &["db", "shell", "default"]));
    assert!(out.is_empty());
}

/// The interactive shell through a pseudo-terminal (tmux): multi-line input, continuation
/// prompt, dot-commands, history.
#[test]
fn shell_in_a_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("tmux is not installed: skipping the terminal test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("skylite-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs")
    };
    let command = format!(
        "env HOME={home} SKYLITE_HISTORY={home}/hist {bin} shell file:{home}/t.db",
        home = dir.path().display(),
        bin = env!("CARGO_BIN_EXE_skylite")
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        "sh",
        "-x",
        "150",
        "-y",
        "40",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let screen =
        || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "sh"]).stdout).into_owned();
    let wait_for = |what: &str| {
        for _ in 0..200 {
            if screen().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{what:?} never appeared:\n{}", screen());
    };
    wait_for("skylite>");
    // Type a line only once the shell shows its next prompt (typeahead sent while the line
    // editor sets up the terminal may be dropped).
    let prompts = || {
        screen()
            .lines()
            .filter(|l| l.starts_with("skylite>") || l.starts_with("   ...>"))
            .count()
    };
    for (i, line) in [
        "CREATE TABLE pets (",
        "  name TEXT,",
        "  legs INTEGER);",
        "INSERT INTO pets VALUES ('cat', 4), ('bird', 2);",
        ".tables",
        ".mode csv",
        "SELECT name, legs",
        "FROM pets ORDER BY legs;",
    ]
    .into_iter()
    .enumerate()
    {
        for _ in 0..200 {
            if prompts() > i {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // tmux takes an argument ending in ';' as a command separator: send that one as hex.
        match line.strip_suffix(';') {
            Some(head) => {
                tmux(&["send-keys", "-t", "sh", "-l", head]);
                tmux(&["send-keys", "-t", "sh", "-H", "3b"]);
            }
            None => {
                tmux(&["send-keys", "-t", "sh", "-l", line]);
            }
        }
        tmux(&["send-keys", "-t", "sh", "Enter"]);
    }
    wait_for("bird,2");
    let text = screen();
    assert!(text.contains("...>"), "continuation prompt:\n{text}");
    assert!(text.contains("cat,4"), "{text}");
    assert!(text.contains("\npets"), "{text}");
    tmux(&["send-keys", "-t", "sh", "-l", ".quit"]);
    tmux(&["send-keys", "-t", "sh", "Enter"]);
    for _ in 0..200 {
        if !tmux(&["has-session", "-t", "sh"]).status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = tmux(&["kill-server"]);
    let history = std::fs::read_to_string(dir.path().join("hist")).unwrap_or_default();
    assert!(history.contains(".tables"), "history: {history}");
}
