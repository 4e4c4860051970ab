//! Import, export and dump of whole databases through the admin API
//! (`PUT .../import`, `GET .../export`, `GET .../dump`): a database with every kind of object and
//! value survives each path unchanged; refused uploads (not SQLite, truncated, damaged, wrong
//! checksum or page count, too large, interrupted) leave nothing behind; an export and a dump
//! are consistent while a writer keeps committing; a 50 MB import runs in bounded memory.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rusqlite::{params, Connection, OpenFlags};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// The memory test measures the whole process: it runs alone, the others share.
static MEMORY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

// ---- building source databases ----

/// A database with tables of every shape, indexes, a view, a trigger, AUTOINCREMENT, generated
/// columns, WITHOUT ROWID, FTS5, (optionally) a libSQL vector index, statistics, and values at
/// the edges (i64 extremes, floats that need every digit, blobs with zero bytes, quotes, line
/// breaks, unicode).
fn make_source(path: &Path, page_size: u32, journal: &str, with_vector: bool) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode={journal};"
    ))
    .unwrap();
    conn.execute_batch(
        r#"
        CREATE TABLE users(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
                           email TEXT UNIQUE, score REAL, avatar BLOB);
        CREATE TABLE events(at INTEGER, kind TEXT, payload TEXT);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
        CREATE TABLE calc(a INTEGER, b INTEGER, s INTEGER GENERATED ALWAYS AS (a + b) VIRTUAL,
                          p INTEGER GENERATED ALWAYS AS (a * b) STORED);
        CREATE TABLE "odd ""name"""("the col" TEXT);
        CREATE TABLE audit(msg TEXT);
        CREATE INDEX users_name ON users(name);
        CREATE INDEX events_kind ON events(kind, at DESC);
        CREATE VIEW user_names AS SELECT name FROM users ORDER BY id;
        CREATE TRIGGER users_audit AFTER INSERT ON users
          BEGIN INSERT INTO audit VALUES ('new ' || NEW.name); END;
        CREATE VIRTUAL TABLE docs USING fts5(title, body);
        "#,
    )
    .unwrap();
    let names = [
        "alice",
        "o'brien",
        "two\nlines\r\nthree",
        "ünïcödé 🎉 \u{7f}",
        "back\\nslash\nand newline",
        "",
    ];
    let scores: [Option<f64>; 6] = [
        Some(0.1),
        Some(1e300),
        Some(-5e-324),
        Some(1.0 / 3.0),
        Some(9007199254740993.0),
        None,
    ];
    let blobs: [Option<Vec<u8>>; 6] = [
        Some(vec![0, 255, 0, 1]),
        Some(vec![]),
        None,
        Some(vec![0; 300]),
        Some((0..=255).collect()),
        Some(b"'quoted'".to_vec()),
    ];
    for i in 0..names.len() {
        let email = (i % 2 == 0).then(|| format!("u{i}@example.com"));
        conn.execute(
            "INSERT INTO users(name, email, score, avatar) VALUES (?1, ?2, ?3, ?4)",
            params![names[i], email, scores[i], blobs[i]],
        )
        .unwrap();
    }
    // A gap in the AUTOINCREMENT counter, and rowid gaps in a table without INTEGER PRIMARY KEY.
    conn.execute_batch("DELETE FROM users WHERE id = 6;")
        .unwrap();
    for i in 0..50i64 {
        conn.execute(
            "INSERT INTO events VALUES (?1, ?2, ?3)",
            params![
                i * 1000,
                ["a", "b", "c"][(i % 3) as usize],
                format!("{{\"n\":{i}}}")
            ],
        )
        .unwrap();
    }
    conn.execute_batch("DELETE FROM events WHERE at % 7000 = 0;")
        .unwrap();
    conn.execute(
        "INSERT INTO kv VALUES ('min', ?1), ('max', ?2), ('float', ?3), ('blob', ?4), ('null', NULL)",
        params![i64::MIN, i64::MAX, f64::MAX, vec![0u8, 0, 7]],
    )
    .unwrap();
    conn.execute_batch(
        r#"INSERT INTO calc(a, b) VALUES (2, 3), (-4, 5);
           INSERT INTO "odd ""name""" VALUES ('x"y');
           INSERT INTO docs VALUES ('first', 'the quick brown fox'),
                                   ('second', 'jumps over the lazy dog'),
                                   ('third', 'ünïcödé text with '' quote');
           DELETE FROM docs WHERE title = 'second';
           INSERT INTO docs(rowid, title, body) VALUES (10, 'tenth', 'lazy fox');
           CREATE VIRTUAL TABLE events_fts USING fts5(payload, content='events');
           INSERT INTO events_fts(events_fts) VALUES ('rebuild');
           PRAGMA user_version = 7;
           ANALYZE;"#,
    )
    .unwrap();
    if with_vector {
        conn.execute_batch(
            "CREATE TABLE vecs(id INTEGER PRIMARY KEY, label TEXT, emb F32_BLOB(3));
             CREATE INDEX vecs_idx ON vecs(libsql_vector_idx(emb));
             INSERT INTO vecs VALUES (1, 'x', vector('[1,0,0]')), (2, 'y', vector('[0,1,0]')),
                                     (3, 'z', vector('[0,0,1]')), (4, 'xy', vector('[1,1,0]'));",
        )
        .unwrap();
    }
    if journal.eq_ignore_ascii_case("wal") {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
}

/// Opens a database file without creating it.
fn open(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap()
}

/// Everything a database holds that a restore must reproduce: the schema (statistics and
/// index shadow tables aside), every row of every table and virtual table (with rowids),
/// the AUTOINCREMENT counters and `user_version`.
fn contents(path: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = open(path);
    let mut out = BTreeMap::new();
    let mut schema: Vec<String> = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema \
             WHERE name NOT LIKE 'sqlite_stat%'",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{:?}",
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?
                )
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    schema.sort();
    out.insert("(schema)".to_owned(), schema);
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' \
             AND type IN ('table', 'virtual') AND (name NOT LIKE 'sqlite\\_%' ESCAPE '\\' OR name = 'sqlite_sequence') \
             AND name NOT LIKE '%\\_shadow' ESCAPE '\\'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for table in tables {
        let q = format!("\"{}\"", table.replace('"', "\"\""));
        let mut stmt = conn
            .prepare(&format!("SELECT rowid, * FROM {q}"))
            .or_else(|_| conn.prepare(&format!("SELECT * FROM {q}")))
            .unwrap();
        let width = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let values: Vec<rusqlite::types::Value> =
                    (0..width).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                Ok(format!("{values:?}"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        out.insert(table, rows);
    }
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    out.insert("(user_version)".to_owned(), vec![user_version.to_string()]);
    out
}

fn integrity(path: &Path) -> String {
    open(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---- HTTP helpers ----

/// `PUT /v1/admin/databases/{name}/import` with `body` and extra headers.
async fn import(server: &TestServer, name: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
    let mut all = vec![("content-type", "application/octet-stream")];
    all.extend_from_slice(headers);
    import_raw(server.addr, name, Full::new(Bytes::from(body)), &all).await
}

type Full = http_body_util::Full<Bytes>;

async fn import_raw<B>(
    addr: std::net::SocketAddr,
    name: &str,
    body: B,
    headers: &[(&str, &str)],
) -> Resp
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    try_import_raw(addr, name, body, headers)
        .await
        .expect("import request")
}

async fn try_import_raw<B>(
    addr: std::net::SocketAddr,
    name: &str,
    body: B,
    headers: &[(&str, &str)],
) -> Result<Resp, hyper::Error>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = hyper::Request::builder()
        .method("PUT")
        .uri(format!("/v1/admin/databases/{name}/import"))
        .header("host", addr.to_string());
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(120),
        sender.send_request(builder.body(body).unwrap()),
    )
    .await
    .expect("import answered in time")?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok(Resp {
        status,
        content_type,
        body,
    })
}

/// A GET that also returns the response headers.
async fn get_with_headers(addr: std::net::SocketAddr, path: &str) -> (Resp, hyper::HeaderMap) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::builder()
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        Resp {
            status,
            content_type,
            body,
        },
        headers,
    )
}

/// The hidden temporary folders left in the data folder.
fn leftovers(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".import-") || n.starts_with(".export-"))
        .collect()
}

/// Waits (briefly) until no temporary folder is left; fails the test otherwise.
async fn assert_no_leftovers(server: &TestServer) {
    for _ in 0..100 {
        if leftovers(server).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("temporary folders left behind: {:?}", leftovers(server));
}

async fn database_names(server: &TestServer) -> Vec<String> {
    let r = get(server.addr, "/v1/admin/databases").await;
    assert_eq!(r.status, 200);
    r.json()["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs one statement on `db` and returns its rows as plain JSON values.
async fn select(server: &TestServer, db: &str, sql: &str) -> Vec<Vec<Value>> {
    let (status, body) = pipeline_at(
        server.addr,
        &format!("/db/{db}/v3/pipeline"),
        None,
        json!([execute(sql), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    rows(exec_result(&body, 0))
}

fn db_file(server: &TestServer, name: &str) -> PathBuf {
    server.data_dir().join(name).join("data.db")
}

// ---- import ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_keeps_every_object_and_value() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.db");
    make_source(&src, 4096, "DELETE", true);
    let bytes = std::fs::read(&src).unwrap();
    let sha = sha256_hex(&bytes);
    let pages = (bytes.len() / 4096).to_string();
    let r = import(
        &server,
        "app",
        bytes.clone(),
        &[("x-skylite-sha256", &sha), ("x-skylite-page-count", &pages)],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let body = r.json();
    assert_eq!(body["name"], "app");
    assert_eq!(body["size_bytes"], bytes.len() as u64);
    assert_eq!(body["page_size"], 4096);
    assert_eq!(body["page_count"], (bytes.len() / 4096) as u64);
    assert_eq!(body["sha256"], sha);
    assert!(body["tables"].as_u64().unwrap() >= 8, "{body:#}");
    assert_no_leftovers(&server).await;
    assert!(database_names(&server).await.contains(&"app".to_owned()));

    let imported = db_file(&server, "app");
    let expected = contents(&src);
    for (table, n) in [
        ("users", 5),
        ("events", 42),
        ("kv", 5),
        ("docs", 3),
        ("vecs", 4),
    ] {
        assert_eq!(expected[table].len(), n, "{table}: {:?}", expected[table]);
    }
    assert_eq!(contents(&imported), expected);
    let mode: String = open(&imported)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    // Served like any database: FTS, vector search, the trigger.
    let hits = select(
        &server,
        "app",
        "SELECT title FROM docs WHERE docs MATCH 'fox' ORDER BY rowid",
    )
    .await;
    assert_eq!(hits, vec![vec![json!("first")], vec![json!("tenth")]]);
    let near = select(
        &server,
        "app",
        "SELECT id FROM vector_top_k('vecs_idx', vector('[1,0.1,0]'), 2)",
    )
    .await;
    assert_eq!(near[0][0], json!(1), "{near:?}");
    select(&server, "app", "INSERT INTO users(name) VALUES ('new one')").await;
    let audit = select(&server, "app", "SELECT count(*) FROM audit").await;
    assert_eq!(audit[0][0], json!(7));

    // The name is taken now.
    let again = import(&server, "app", bytes, &[]).await;
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(again.json()["code"], "DATABASE_EXISTS");
    assert_no_leftovers(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_accepts_wal_files_and_any_page_size() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (name, page_size, journal) in [
        ("wal", 4096, "WAL"),
        ("small-pages", 1024, "DELETE"),
        ("big-pages", 65536, "DELETE"),
    ] {
        let src = dir.path().join(format!("{name}.db"));
        make_source(&src, page_size, journal, false);
        let r = import(&server, name, std::fs::read(&src).unwrap(), &[]).await;
        assert_eq!(r.status, 201, "{name}: {}", r.text());
        assert_eq!(r.json()["page_size"], page_size, "{name}");
        assert_eq!(contents(&db_file(&server, name)), contents(&src), "{name}");
        let n = select(&server, name, "SELECT count(*) FROM events").await;
        assert_eq!(n[0][0], json!(42), "{name}");
    }
    assert_no_leftovers(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_bad_files_and_leaves_nothing() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start_with(|c| c.max_import_bytes = 1024 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("good.db");
    make_source(&src, 4096, "DELETE", false);
    let good = std::fs::read(&src).unwrap();

    let refuse = |status: u16, code: &'static str| {
        move |r: Resp| {
            assert_eq!(r.status, status, "{}", r.text());
            let body = r.json();
            assert_eq!(body["code"], code, "{body:#}");
            body["message"].as_str().unwrap().to_owned()
        }
    };

    // Not SQLite at all, and empty.
    let msg = refuse(400, "NOT_A_DATABASE")(
        import(&server, "x", b"id,name\n1,alice\n".to_vec(), &[]).await,
    );
    assert!(msg.contains("not an SQLite database"), "{msg}");
    refuse(400, "NOT_A_DATABASE")(import(&server, "x", Vec::new(), &[]).await);

    // Truncated: half the file, and just the header.
    let msg = refuse(400, "IMPORT_CORRUPT")(
        import(&server, "x", good[..good.len() / 2].to_vec(), &[]).await,
    );
    assert!(msg.contains("truncated"), "{msg}");
    refuse(400, "IMPORT_CORRUPT")(import(&server, "x", good[..100].to_vec(), &[]).await);

    // Damaged in the middle: integrity_check finds it and its words come back.
    let mut damaged = good.clone();
    let pages = damaged.len() / 4096;
    for page in 2..pages {
        let at = page * 4096;
        damaged[at + 8..at + 200].fill(0x5a);
    }
    let msg = refuse(400, "IMPORT_CORRUPT")(import(&server, "x", damaged, &[]).await);
    assert!(
        msg.contains("integrity_check") || msg.contains("SQLITE_CORRUPT"),
        "{msg}"
    );

    // Checksum and page count that do not match.
    let wrong = "0".repeat(64);
    let msg = refuse(400, "IMPORT_CHECKSUM_MISMATCH")(
        import(&server, "x", good.clone(), &[("x-skylite-sha256", &wrong)]).await,
    );
    assert!(msg.contains(&sha256_hex(&good)), "{msg}");
    refuse(400, "PROTOCOL_ERROR")(
        import(&server, "x", good.clone(), &[("x-skylite-sha256", "abc")]).await,
    );
    refuse(400, "IMPORT_PAGE_COUNT_MISMATCH")(
        import(&server, "x", good.clone(), &[("x-skylite-page-count", "1")]).await,
    );

    // Too large (this server allows 1 MiB), announced: refused before any byte of the body.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /v1/admin/databases/x/import HTTP/1.1\r\nhost: {}\r\n\
         content-length: {}\r\n\r\n",
        server.addr,
        2 << 20
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("IMPORT_TOO_LARGE") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("IMPORT_TOO_LARGE"), "{answer}");
    drop(tcp);
    // Not announced (chunked): refused once the limit is crossed. The server answers and
    // closes while the client is still sending, so the client may see a broken pipe instead.
    let chunks = futures_util::stream::iter(
        (0..40).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![0u8; 64 << 10])))),
    );
    if let Ok(r) = try_import_raw(server.addr, "x", StreamBody::new(chunks), &[]).await {
        refuse(413, "IMPORT_TOO_LARGE")(r);
    }

    // Names: invalid, and the default database.
    refuse(400, "INVALID_DATABASE_NAME")(import(&server, "Bad.Name", good.clone(), &[]).await);
    refuse(409, "DATABASE_EXISTS")(import(&server, "default", good.clone(), &[]).await);

    assert!(!server.data_dir().join("x").exists());
    assert!(!database_names(&server).await.contains(&"x".to_owned()));
    assert_no_leftovers(&server).await;

    // After all that, the same name imports fine.
    let r = import(&server, "x", good, &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(contents(&db_file(&server, "x")), contents(&src));
    assert_eq!(server_panics(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_interrupted_by_a_disconnect_leaves_nothing() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("good.db");
    make_source(&src, 4096, "DELETE", false);
    let good = std::fs::read(&src).unwrap();

    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /v1/admin/databases/cut/import HTTP/1.1\r\nhost: {}\r\n\
         content-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        server.addr,
        good.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&good[..good.len() / 2]).await.unwrap();
    tcp.flush().await.unwrap();
    // Let the server write the first half to disk, then hang up.
    for _ in 0..100 {
        if !leftovers(&server).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(leftovers(&server).len(), 1, "the upload is under way");
    drop(tcp);

    assert_no_leftovers(&server).await;
    assert!(!server.data_dir().join("cut").exists());
    assert!(!database_names(&server).await.contains(&"cut".to_owned()));
    assert_eq!(get(server.addr, "/health").await.status, 200);
    let r = import(&server, "cut", good, &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(server_panics(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_temporary_folders_are_removed_at_start() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start().await;
    let data = server.data_dir();
    server.stop().await;
    for name in [".import-app-0011", ".export-app-0022"] {
        std::fs::create_dir_all(data.join(name)).unwrap();
        std::fs::write(data.join(name).join("data.db"), b"half").unwrap();
    }
    let mut config = skylite_server::ServerConfig::new(&data);
    config.auth.disabled = true;
    let _app = skylite_server::App::open(config).unwrap();
    assert!(!data.join(".import-app-0011").exists());
    assert!(!data.join(".export-app-0022").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_needs_an_admin_token() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start_with(|c| c.auth.disabled = false).await;
    let r = import(&server, "app", b"SQLite format 3\0".to_vec(), &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    for path in ["export", "dump"] {
        let r = get(server.addr, &format!("/v1/admin/databases/default/{path}")).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text());
    }
    assert!(!server.data_dir().join("app").exists());
    assert_no_leftovers(&server).await;
    server.stop().await;
}

/// A 50 MB import (beyond the 32 MiB body limit) streamed from disk: the server's peak memory
/// grows by far less than the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_import_streams_in_bounded_memory() {
    let _alone = MEMORY.write().await;
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.db");
    {
        let conn = Connection::open(&src).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=DELETE; CREATE TABLE b(id INTEGER PRIMARY KEY, data BLOB);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 800)
             INSERT INTO b(data) SELECT randomblob(64000) FROM c;",
        )
        .unwrap();
    }
    let len = std::fs::metadata(&src).unwrap().len();
    assert!(len > 50_000_000, "{len}");
    let pages = (len / 4096).to_string();

    // Reset the peak (VmHWM) to the current RSS, where the kernel allows it.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = vm_kb("VmHWM");

    let file = tokio::fs::File::open(&src).await.unwrap();
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(buf))), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let length = len.to_string();
    let started = std::time::Instant::now();
    let r = import_raw(
        server.addr,
        "big",
        StreamBody::new(chunks),
        &[
            ("content-type", "application/octet-stream"),
            ("content-length", &length),
            ("x-skylite-page-count", &pages),
        ],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["size_bytes"], len);
    let after = vm_kb("VmHWM");
    if let (Some(before), Some(after)) = (before, after) {
        let grown_mb = (after.saturating_sub(before)) as f64 / 1024.0;
        eprintln!(
            "50 MB import: peak RSS grew by {grown_mb:.1} MB; {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert!(
            grown_mb < 30.0,
            "peak memory grew by {grown_mb:.1} MB during a {len}-byte import"
        );
    }
    let n = select(&server, "big", "SELECT count(*) FROM b").await;
    assert_eq!(n[0][0], json!(800));
    server.stop().await;
}

fn vm_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---- export ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_a_consistent_file_while_a_writer_runs() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.db");
    make_source(&src, 4096, "DELETE", true);
    let r = import(&server, "app", std::fs::read(&src).unwrap(), &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());

    // An untouched database exports to the same contents.
    let (r, headers) = get_with_headers(server.addr, "/v1/admin/databases/app/export").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type.as_deref(), Some("application/vnd.sqlite3"));
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        r.body.len().to_string()
    );
    assert_eq!(&r.body[..16], b"SQLite format 3\0");
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &r.body).unwrap();
    assert_eq!(integrity(&copy), "ok");
    assert_eq!(contents(&copy), contents(&src));
    let page_size: u64 = headers["x-skylite-page-size"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let page_count: u64 = headers["x-skylite-page-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(page_size * page_count, r.body.len() as u64);

    // While a writer commits rows 1, 2, 3, ... the export holds exactly a prefix of them.
    select(
        &server,
        "app",
        "CREATE TABLE seq(n INTEGER PRIMARY KEY, pad TEXT)",
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, addr) = (stop.clone(), server.addr);
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (status, body) = pipeline_at(
                    addr,
                    "/db/app/v3/pipeline",
                    None,
                    json!([
                        execute_args(
                            "INSERT INTO seq VALUES (?, randomblob(2000))",
                            json!([int(n)])
                        ),
                        close()
                    ]),
                )
                .await;
                assert_eq!(status, 200, "{body:#}");
                assert_eq!(body["results"][0]["type"], "ok", "{body:#}");
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        let (r, _) = get_with_headers(server.addr, "/v1/admin/databases/app/export").await;
        assert_eq!(r.status, 200);
        let snap = dir.path().join(format!("snap{i}.db"));
        std::fs::write(&snap, &r.body).unwrap();
        assert_eq!(integrity(&snap), "ok");
        let (count, max): (i64, i64) = open(&snap)
            .query_row("SELECT count(*), coalesce(max(n), 0) FROM seq", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(count, max, "snapshot {i} is not a prefix");
        assert!(count > 0);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);
    assert_no_leftovers(&server).await;

    let r = get(server.addr, "/v1/admin/databases/nope/export").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "DATABASE_NOT_FOUND");
    server.stop().await;
}

// ---- dump ----

async fn dump_text(server: &TestServer, name: &str) -> String {
    let r = get(server.addr, &format!("/v1/admin/databases/{name}/dump")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/sql; charset=utf-8")
    );
    String::from_utf8(r.body).expect("a dump is UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_restores_through_the_engine() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.db");
    make_source(&src, 4096, "DELETE", true);
    let r = import(&server, "app", std::fs::read(&src).unwrap(), &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let dump = dump_text(&server, "app").await;
    assert!(
        dump.starts_with("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"),
        "{dump}"
    );
    assert!(dump.ends_with("COMMIT;\n"), "{dump}");
    for absent in [
        "sqlite_stat1",
        "vecs_idx_shadow",
        "libsql_vector_meta_shadow",
        "docs_data",
    ] {
        assert!(!dump.contains(absent), "{absent} in the dump:\n{dump}");
    }
    assert!(
        dump.contains("INSERT INTO sqlite_sequence VALUES('users',6);"),
        "{dump}"
    );
    assert!(dump.contains("X'00ff0001'"), "{dump}");
    assert!(dump.contains("-9223372036854775808"), "{dump}");
    // Every statement on one line except where the text itself holds a "\n".
    assert!(dump.contains("replace('two\\nlines\\r\\nthree'"), "{dump}");

    let r = post_json(
        server.addr,
        "/v1/admin/databases",
        &json!({"name": "restored"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (status, body) = pipeline_at(
        server.addr,
        "/db/restored/v3/pipeline",
        None,
        json!([{"type": "sequence", "sql": dump}, close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["results"][0]["type"], "ok", "{body:#}");
    assert_eq!(
        contents(&db_file(&server, "restored")),
        contents(&src),
        "the restored database differs"
    );
    let query = "SELECT id FROM vector_top_k('vecs_idx', vector('[0.9,1,0]'), 4)";
    let near = select(&server, "restored", query).await;
    assert_eq!(near, select(&server, "app", query).await);
    assert_eq!(near.len(), 4);
    assert_eq!(near[0][0], json!(4));
    let hits = select(
        &server,
        "restored",
        "SELECT rowid FROM docs WHERE docs MATCH 'lazy' ORDER BY rowid",
    )
    .await;
    assert_eq!(hits, vec![vec![json!(10)]]);
    // The external-content index was rebuilt from its table.
    assert!(dump.contains("INSERT INTO \"events_fts\"(\"events_fts\") VALUES('rebuild');"));
    let query = "SELECT rowid FROM events_fts WHERE events_fts MATCH '10'";
    let hits = select(&server, "restored", query).await;
    assert_eq!(hits, select(&server, "app", query).await);
    assert_eq!(hits.len(), 1);

    // A dump of the restored database is the same text.
    assert_eq!(dump_text(&server, "restored").await, dump);

    let r = get(server.addr, "/v1/admin/databases/nope/dump").await;
    assert_eq!(r.status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_restores_in_the_sqlite3_shell() {
    let _shared = MEMORY.read().await;
    let Ok(version) = std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
    else {
        eprintln!("sqlite3 is not installed: skipping");
        return;
    };
    assert!(version.status.success());
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.db");
    // Plain sqlite3 knows no libSQL vector index.
    make_source(&src, 4096, "DELETE", false);
    let r = import(&server, "app", std::fs::read(&src).unwrap(), &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let dump = dump_text(&server, "app").await;
    let sql = dir.path().join("dump.sql");
    std::fs::write(&sql, &dump).unwrap();
    let restored = dir.path().join("restored.db");
    let out = std::process::Command::new("sqlite3")
        .arg("-bail")
        .arg(&restored)
        .arg(format!(".read {}", sql.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(contents(&restored), contents(&src));
    assert_eq!(integrity(&restored), "ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_is_one_snapshot_while_a_writer_runs() {
    let _shared = MEMORY.read().await;
    let server = TestServer::start().await;
    select(
        &server,
        "default",
        "CREATE TABLE seq(n INTEGER PRIMARY KEY, pad TEXT)",
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, addr) = (stop.clone(), server.addr);
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (status, _) = pipeline(
                    addr,
                    None,
                    json!([
                        execute_args(
                            "INSERT INTO seq VALUES (?, hex(randomblob(500)))",
                            json!([int(n)])
                        ),
                        close()
                    ]),
                )
                .await;
                assert_eq!(status, 200);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dump = dump_text(&server, "default").await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let numbers: Vec<i64> = dump
        .lines()
        .filter_map(|l| l.strip_prefix("INSERT INTO \"seq\" VALUES("))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(!numbers.is_empty());
    assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>());
    server.stop().await;
}
