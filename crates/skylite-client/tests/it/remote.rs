//! What only a remote database has: authentication errors (401, 403) with the server's
//! message, https with a custom CA (and refusal without it), `libsql://` URLs, connection
//! errors, request timeouts, and the retry rule (read-only requests on a fresh stream are
//! retried, writes never; requests that never left are always retried).

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skylite_auth::{mint, TokenSpec};
use skylite_client::{Client, Config, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn bad_tokens_are_auth_errors_with_the_servers_message() {
    let s = common::server();
    let db = Client::connect(&s.url, "not-a-jwt").await.unwrap();
    let e = db.execute("SELECT 1", ()).await.unwrap_err();
    match &e {
        Error::Auth {
            status: 401,
            message,
            ..
        } => assert!(!message.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.http_status(), Some(401));
    let db = Client::connect(&s.url, "").await.unwrap();
    assert_eq!(
        db.execute("SELECT 1", ()).await.unwrap_err().http_status(),
        Some(401)
    );
    // A valid token for another database.
    let other = mint(
        &s.key,
        &TokenSpec {
            databases: vec!["default".into()],
            ..TokenSpec::default()
        },
    )
    .unwrap()
    .0;
    let db = Client::connect(&s.url, &other).await.unwrap();
    let e = db.execute("SELECT 1", ()).await.unwrap_err();
    assert!(matches!(e, Error::Auth { status: 403, .. }), "{e:?}");
    // A read-only token writing: 403 as well, or SQLite's refusal.
    let ro = mint(
        &s.key,
        &TokenSpec {
            databases: vec!["app".into()],
            read_only: true,
            ..TokenSpec::default()
        },
    )
    .unwrap()
    .0;
    let db = Client::connect(&s.url, &ro).await.unwrap();
    db.execute("SELECT 1", ()).await.unwrap();
    assert!(db.execute("CREATE TABLE ro_t (x)", ()).await.is_err());
}

#[tokio::test]
async fn https_with_a_custom_ca_and_libsql_urls() {
    let s = common::tls_server();
    let ca = common::tls_fixture("ca.pem");
    let db = Client::open(Config::new(&s.url).auth_token(&s.token).ca_file(&ca))
        .await
        .unwrap();
    let r = db.execute("SELECT 40 + 2", ()).await.unwrap();
    assert_eq!(r.first().unwrap().get::<i64>(0).unwrap(), 42);
    let libsql = s.url.replace("https://", "libsql://");
    let db = Client::open(Config::new(libsql).auth_token(&s.token).ca_file(&ca))
        .await
        .unwrap();
    db.execute("SELECT 1", ()).await.unwrap();
    // Without the CA the certificate is refused.
    let db = Client::connect(&s.url, &s.token).await.unwrap();
    let e = db.execute("SELECT 1", ()).await.unwrap_err();
    assert!(matches!(e, Error::Connect(_)), "{e:?}");
    assert!(e.to_string().contains("TLS"), "{e}");
    // A missing CA file is a configuration error.
    let e = Client::open(Config::new(&s.url).ca_file("/nonexistent/ca.pem"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let db = Client::open(Config::new(format!("http://127.0.0.1:{port}")).max_retries(1))
        .await
        .unwrap();
    let e = db
        .execute("INSERT INTO t VALUES (1)", ())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect(_)), "{e:?}");
}

/// A server that accepts connections, reads what comes, and never answers.
async fn silent_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn timeouts_retry_reads_on_fresh_streams_but_never_writes() {
    let (url, accepted) = silent_server().await;
    let config = Config::new(&url)
        .request_timeout(Duration::from_millis(150))
        .max_retries(2);
    let db = Client::open(config).await.unwrap();
    let start = Instant::now();
    let e = db
        .execute("INSERT INTO t VALUES (1)", ())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "a write is sent once");
    assert!(start.elapsed() < Duration::from_secs(2));
    let e = db.execute("SELECT * FROM t", ()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "a read on a fresh stream: 1 + 2 retries"
    );
    let e = db.batch(["SELECT 1"]).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        5,
        "batches are never repeated"
    );
}

/// Answers each request with a fixed pipeline response; with `close`, then closes the
/// connection (after one answer), else keeps it alive for the next request.
async fn fake_server(close: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                loop {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Read the head and the body (Content-Length).
                    loop {
                        let Ok(n) = sock.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        req.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&req).to_string();
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let len: usize = text[..head_end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap())
                                })
                                .unwrap_or(0);
                            if req.len() >= head_end + 4 + len {
                                break;
                            }
                        }
                    }
                    let body = r#"{"baton":null,"base_url":null,"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[],"rows":[],"affected_row_count":1,"last_insert_rowid":"1"}}},{"type":"ok","response":{"type":"close"}}]}"#;
                    let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    // Keep-alive was implied, but the server goes away: the client's pooled
                    // connection is dead before its next request is sent.
                    if close {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        return;
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn a_write_on_a_closed_pooled_connection_is_resent_on_a_new_one() {
    let (url, accepted) = fake_server(true).await;
    // The fake server answers JSON on every path, so the client must not try Protobuf.
    let db = Client::open(Config::new(&url).max_retries(0).protobuf(false))
        .await
        .unwrap();
    for _ in 0..3 {
        let r = db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        assert_eq!(r.rows_affected(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let (url, accepted) = fake_server(false).await;
    let db = Client::open(Config::new(&url).protobuf(false))
        .await
        .unwrap();
    for _ in 0..20 {
        db.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "sequential requests share one connection"
    );
    // Against the real server too: many sequential requests on kept-alive connections.
    let s = common::server();
    let db = Client::connect(&s.url, &s.token).await.unwrap();
    for i in 0..100 {
        let r = db.execute("SELECT ?", [i]).await.unwrap();
        assert_eq!(r.first().unwrap().get::<i64>(0).unwrap(), i);
    }
}
