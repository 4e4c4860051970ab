//! What a client may not do: reach other files (ATTACH, VACUUM INTO, extensions, file
//! pragmas and modules) or undo the server's durability settings.

use crate::common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_reaching_and_durability_changing_sql_is_refused() {
    let server = TestServer::start().await;
    let outside = tempfile::tempdir().unwrap();
    let target = |name: &str| outside.path().join(name).display().to_string();
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE t(x)").await;
    s.ok("INSERT INTO t VALUES (1)").await;

    let attach = format!("ATTACH DATABASE '{}' AS other", target("attached.db"));
    let vacuum = format!("VACUUM INTO '{}'", target("copy.db"));
    let vacuum_schema = format!("VACUUM main INTO '{}'", target("copy2.db"));
    let ext = format!("SELECT load_extension('{}')", target("evil.so"));
    let cases: Vec<(&str, &str)> = vec![
        (&attach, "ATTACH"),
        ("ATTACH ':memory:' AS mem", "ATTACH"),
        ("DETACH DATABASE other", "DETACH"),
        (&vacuum, "VACUUM INTO"),
        (&vacuum_schema, "VACUUM INTO"),
        (&ext, "load_extension"),
        ("PRAGMA journal_mode=DELETE", "journal_mode"),
        ("PRAGMA journal_mode = OFF", "journal_mode"),
        ("PRAGMA synchronous=OFF", "synchronous"),
        ("PRAGMA main.synchronous = 0", "synchronous"),
        ("PRAGMA locking_mode=EXCLUSIVE", "locking_mode"),
        ("PRAGMA writable_schema=ON", "writable_schema"),
    ];
    for (sql, mention) in &cases {
        let msg = s.fails(sql, "SQLITE_AUTH").await;
        assert!(
            msg.contains(mention)
                && (msg.contains("not allowed") || msg.contains("cannot be changed")),
            "{sql}: unclear message {msg:?}"
        );
    }
    // The same refusals inside a batch and a sequence.
    let body = s
        .send(json!([
            {"type": "batch", "batch": {"steps": [{"stmt": stmt(&attach)}]}},
            {"type": "sequence", "sql": format!("SELECT 1; {vacuum};")},
        ]))
        .await;
    assert_eq!(
        ok_at(&body, 0)["result"]["step_errors"][0]["code"],
        "SQLITE_AUTH"
    );
    assert_eq!(err_at(&body, 1)["code"], "SQLITE_AUTH");
    // And through the legacy endpoints.
    let r = post_json(
        server.addr,
        "/v1/execute",
        &json!({"stmt": {"sql": vacuum}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "SQLITE_AUTH");
    let r = post_json(server.addr, "/", &json!({"statements": [attach]})).await;
    assert!(r.json()[0]["error"].is_string(), "{}", r.text());

    // Nothing was created outside the data folder.
    let created: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
    assert!(
        created.is_empty(),
        "files appeared outside the data dir: {created:?}"
    );

    // The settings are what the server set; reading them is fine.
    let r = s.ok("PRAGMA journal_mode").await;
    assert_eq!(rows(&r), vec![vec![json!("wal")]]);
    // The database is intact and the stream usable.
    assert_eq!(
        rows(&s.ok("SELECT count(*) FROM t").await),
        vec![vec![json!(1)]]
    );
    // Harmless pragmas still work.
    s.ok("PRAGMA foreign_keys = ON").await;
    assert_eq!(server_panics(), 0);
}
