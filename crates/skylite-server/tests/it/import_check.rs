//! How thoroughly an import is checked: `quick_check` by default (the structure of every page,
//! cell and record: what keeps a damaged file from being served, an order of magnitude faster
//! than `integrity_check` on large files), the full `integrity_check` (every index entry
//! against its table) with `x-skylite-check: full`.

use crate::common;

use common::*;

/// A database whose index `i` disagrees with its table (the schema says it indexes `b`, its
/// entries hold `a`): structurally sound, so only the full check sees it.
fn index_mismatch(path: &std::path::Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=DELETE;
         CREATE TABLE t(a INTEGER, b INTEGER);
         CREATE INDEX i ON t(a);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 200)
         INSERT INTO t SELECT x, 1000 - x FROM c;
         PRAGMA writable_schema=ON;
         UPDATE sqlite_schema SET sql = 'CREATE INDEX i ON t(b)' WHERE name = 'i';
         PRAGMA writable_schema=OFF;",
    )
    .unwrap();
    drop(conn);
    std::fs::read(path).unwrap()
}

async fn put(server: &TestServer, name: &str, body: Vec<u8>, check: Option<&str>) -> Resp {
    let mut headers = vec![("content-type", "application/octet-stream")];
    if let Some(check) = check {
        headers.push(("x-skylite-check", check));
    }
    request_with(
        server.addr,
        "PUT",
        &format!("/v1/admin/databases/{name}/import"),
        &headers,
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_check_by_default_integrity_check_on_request() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = index_mismatch(&dir.path().join("skewed.db"));

    let r = put(&server, "full", bytes.clone(), Some("full")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], "IMPORT_CORRUPT", "{body:#}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("integrity_check"),
        "{body:#}"
    );
    assert!(!server.data_dir().join("full").exists());

    let r = put(&server, "quick", bytes.clone(), None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = put(&server, "quick2", bytes.clone(), Some("quick")).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let r = put(&server, "bad", bytes, Some("thorough")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "PROTOCOL_ERROR");
    assert_eq!(server_panics(), 0);
}
