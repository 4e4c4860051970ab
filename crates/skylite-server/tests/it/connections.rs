//! Connection hygiene against an in-process server, with raw sockets as the misbehaving
//! clients: the header timeout (silent sockets, half a header, a trickled header), the
//! keep-alive idle timeout, the body timeout (a stalled body, a trickled body, and a fast large
//! body that must not be cut; the same for the streamed import, which must leave nothing
//! behind), a peer that stops reading, the connection cap (plain HTTP, WebSocket, TLS
//! handshakes), and graceful shutdown with such sockets open.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A server with short connection timeouts, `tweak` applied last.
async fn start(tweak: impl FnOnce(&mut skylite_server::ServerConfig)) -> TestServer {
    TestServer::start_with(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(3);
        c.body_timeout = Duration::from_secs(1);
        tweak(c);
    })
    .await
}

/// Reads until the server closes the connection (EOF or reset), giving up after `limit`.
/// Returns what was read and how long it took.
async fn read_until_closed(sock: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, sock.read(&mut buf)).await {
            Err(_) => panic!(
                "the server did not close the connection within {limit:?} (read so far: {:?})",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, started.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP response with a `content-length` from a keep-alive connection.
async fn read_response(sock: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = sock.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed before a whole response");
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().unwrap())
                    })
                    .expect("content-length");
                if out.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    })
    .await
    .expect("a response within 10 s")
}

fn health_request(addr: SocketAddr) -> String {
    format!("GET /health HTTP/1.1\r\nhost: {addr}\r\n\r\n")
}

/// `POST /v2/pipeline` running `SELECT 1`, padded with `padding` spaces (valid JSON).
fn pipeline_body(padding: usize) -> Vec<u8> {
    let mut body = serde_json::to_vec(
        &json!({"requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}]}),
    )
    .unwrap();
    body.splice(1..1, std::iter::repeat_n(b' ', padding));
    body
}

fn pipeline_head(addr: SocketAddr, length: usize) -> String {
    format!(
        "POST /v2/pipeline HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n\r\n"
    )
}

/// Whether a plain request on a new connection is served.
async fn served(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(5),
            common::try_request(addr, "GET", "/health", None)
        )
        .await,
        Ok(Ok(resp)) if resp.status == 200
    )
}

/// Waits (up to 5 s) until a request is served again.
async fn served_soon(addr: SocketAddr) -> bool {
    served_within(addr, Duration::from_secs(5)).await
}

/// Waits (up to `limit`) until a request is served again.
async fn served_within(addr: SocketAddr, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if served(addr).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn silent_sockets_and_half_headers_are_closed_after_the_header_timeout() {
    let server = start(|_| {}).await;
    let addr = server.addr;

    // Nothing at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Half a request head, then nothing.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /v2/pipeline HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // A head trickled one byte every 200 ms: each byte comes well within any per-read
    // timeout, but the whole head never arrives within the header timeout.
    let mut trickled = TcpStream::connect(addr).await.unwrap();
    let trickle = tokio::spawn(async move {
        for byte in b"GET /health HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n" {
            if trickled.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        read_until_closed(&mut trickled, Duration::from_secs(10)).await
    });

    let (got, took) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "a silent socket got no answer"
    );
    assert!(
        took >= Duration::from_millis(500),
        "not closed before the timeout ({took:?})"
    );
    let (got, _) = read_until_closed(&mut half, Duration::from_secs(5)).await;
    assert!(!got.starts_with(b"HTTP/1.1 200"));
    let (got, took) = trickle.await.unwrap();
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "a trickled head was served: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(took < Duration::from_secs(10));

    // Meanwhile and afterwards, everyone else is served.
    assert!(served(addr).await);
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start(|_| {}).await;
    let addr = server.addr;
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(health_request(addr).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut sock).await.starts_with("HTTP/1.1 200"));

    // Idle for longer than the header timeout (1 s) but less than the idle timeout (3 s): the
    // connection is still usable.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    sock.write_all(health_request(addr).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut sock).await.starts_with("HTTP/1.1 200"));

    // Then idle for good: closed after the idle timeout.
    let (got, took) = read_until_closed(&mut sock, Duration::from_secs(8)).await;
    assert!(got.is_empty(), "nothing more is sent: {got:?}");
    assert!(
        took >= Duration::from_secs(2),
        "closed too early ({took:?})"
    );
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_the_connection_closes() {
    let server = start(|_| {}).await;
    let addr = server.addr;
    let body = pipeline_body(0);
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(pipeline_head(addr, body.len()).as_bytes())
        .await
        .unwrap();
    sock.write_all(&body[..10]).await.unwrap();
    let (got, _) = read_until_closed(&mut sock, Duration::from_secs(6)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"BODY_TIMEOUT\""), "{text}");
    assert!(served(addr).await);
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test]
async fn a_trickled_body_is_cut_by_the_rate_rule() {
    let server = start(|_| {}).await;
    let addr = server.addr;
    let body = pipeline_body(4000);
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(pipeline_head(addr, body.len()).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = sock.into_split();
    // One byte every 300 ms: never a gap of 1 s, but far below 1024 bytes/s.
    let trickle = tokio::spawn(async move {
        for byte in body {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), reader.read_to_end(&mut got)).await;
    trickle.abort();
    assert!(read.is_ok(), "the trickled body was not cut within 8 s");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(served(addr).await);
}

#[tokio::test]
async fn a_large_body_sent_steadily_is_not_cut() {
    // 3 MiB in 64 KiB pieces every 40 ms: ~2 s in all, twice the body timeout, but each wait is
    // short and the rate far above the minimum.
    let server = start(|c| c.max_body_bytes = 8 * 1024 * 1024).await;
    let addr = server.addr;
    let body = pipeline_body(3 * 1024 * 1024);
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(pipeline_head(addr, body.len()).as_bytes())
        .await
        .unwrap();
    for piece in body.chunks(64 * 1024) {
        sock.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let text = read_response(&mut sock).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\"rows\":[[{\"type\":\"integer\",\"value\":\"1\"}]]"),
        "{text}"
    );
}

#[tokio::test]
async fn a_peer_that_stops_reading_loses_its_connection() {
    // One connection allowed: a client that asks for a large response and never reads it
    // would hold it forever without the write stall timeout.
    let server = start(|c| {
        c.max_connections = 1;
        c.engine.max_response_bytes = 64 * 1024 * 1024;
    })
    .await;
    let addr = server.addr;
    let body = serde_json::to_vec(&json!({"requests": [{"type": "execute", "stmt": {
        "sql": "SELECT randomblob(16000000)"
    }}]}))
    .unwrap();
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(pipeline_head(addr, body.len()).as_bytes())
        .await
        .unwrap();
    sock.write_all(&body).await.unwrap();
    // The slot frees up once the server gives up on the write (1 s without progress), after
    // making the response (slow in a debug build on a busy machine).
    assert!(
        served_within(addr, Duration::from_secs(15)).await,
        "the non-reading peer still holds the only connection slot"
    );
    drop(sock);
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_until_others_close() {
    let server = start(|c| c.max_connections = 3).await;
    let addr = server.addr;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The fourth is accepted and closed at once, with a 503.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let (got, _) = read_until_closed(&mut extra, Duration::from_secs(1)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{text}"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["code"], "TOO_MANY_CONNECTIONS");
    assert!(!served(addr).await, "a request got through beyond the cap");

    // The idle sockets time out (header timeout 1 s): service comes back by itself.
    assert!(served_soon(addr).await, "service did not come back");
    for mut sock in idle.drain(..) {
        let (got, _) = read_until_closed(&mut sock, Duration::from_secs(3)).await;
        assert!(got.is_empty());
    }

    // Sockets closed by their client free their slot too.
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!served(addr).await);
    idle.clear();
    assert!(served_soon(addr).await);
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test]
async fn a_websocket_holds_its_slot_for_its_whole_life() {
    let server = start(|c| c.max_connections = 1).await;
    let addr = server.addr;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("the WebSocket connects");
    ws.send(Message::text(r#"{"type":"hello","jwt":null}"#))
        .await
        .unwrap();
    // Longer than the header timeout: the upgraded socket is not timed like HTTP, and it still
    // holds the only slot.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!served(addr).await, "a request got through beyond the cap");
    ws.send(Message::text(
        r#"{"type":"request","request_id":1,"request":{"type":"open_stream","stream_id":1}}"#,
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.contains("\"response") => {
                    return text.to_string()
                }
                Some(Ok(_)) => continue,
                other => panic!("the WebSocket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a reply");
    assert!(reply.contains("response_ok"), "{reply}");

    ws.close(None).await.unwrap();
    drop(ws);
    assert!(
        served_soon(addr).await,
        "closing the WebSocket frees its slot"
    );
    assert_eq!(common::server_panics(), 0);
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_while_idle_sockets_are_open() {
    let server = start(|c| {
        c.header_timeout = Duration::from_secs(30);
        c.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = server.addr;
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(health_request(addr).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let slow_sql =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
                    SELECT count(*) FROM c";
    let slow = tokio::spawn(async move {
        common::post_json(
            addr,
            "/v2/pipeline",
            &json!({"requests": [{"type": "execute", "stmt": {"sql": slow_sql}}]}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown does not wait for idle sockets");
    assert!(started.elapsed() < Duration::from_secs(10));
    let resp = slow.await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("\"3000000\""), "{}", resp.text());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    drop((silent, idle));
}

#[tokio::test]
async fn a_tls_handshake_in_progress_counts_toward_the_cap() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let mut tls = skylite_server::TlsConfig::load(
        &fixtures.join("chain.pem"),
        &fixtures.join("key-pkcs8.pem"),
    )
    .unwrap();
    tls.handshake_timeout = Duration::from_millis(1500);
    let server = start(|c| {
        c.max_connections = 1;
        c.tls = Some(tls);
    })
    .await;
    let addr = server.addr;
    // Silent in its handshake: holds the only slot until the handshake timeout.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let (got, took) = read_until_closed(&mut refused, Duration::from_secs(1)).await;
    assert!(
        got.is_empty(),
        "a TLS port writes nothing in clear: {got:?}"
    );
    assert!(took < Duration::from_secs(1));
    // Once the silent one is dropped after its handshake timeout, a new connection is kept
    // (waiting for its handshake) rather than closed at once.
    read_until_closed(&mut silent, Duration::from_secs(5)).await;
    // The slot is given back just after the socket closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let kept = tokio::time::timeout(Duration::from_millis(500), next.read(&mut buf)).await;
    assert!(
        kept.is_err(),
        "the connection after the timeout was refused too"
    );
    assert_eq!(common::server_panics(), 0);
}

/// An SQLite file of about 2 MiB, as bytes.
fn database_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t(x BLOB);
         WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 500)
         INSERT INTO t SELECT randomblob(4000) FROM c;",
    )
    .unwrap();
    drop(conn);
    std::fs::read(path).unwrap()
}

fn import_head(addr: SocketAddr, name: &str, length: usize) -> String {
    format!(
        "PUT /v1/admin/databases/{name}/import HTTP/1.1\r\nhost: {addr}\r\n\
         content-type: application/octet-stream\r\ncontent-length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn an_import_sent_steadily_succeeds_and_a_stalled_one_leaves_nothing() {
    let server = start(|_| {}).await;
    let addr = server.addr;
    let file = database_file();

    // Steady: ~2 s in all (twice the body timeout), never a long wait.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(import_head(addr, "steady", file.len()).as_bytes())
        .await
        .unwrap();
    for piece in file.chunks(file.len() / 40 + 1) {
        sock.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = read_response(&mut sock).await;
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");

    // Stalled halfway: 408, the database does not appear, the temporary folder goes.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(import_head(addr, "stalled", file.len()).as_bytes())
        .await
        .unwrap();
    sock.write_all(&file[..file.len() / 2]).await.unwrap();
    let (got, _) = read_until_closed(&mut sock, Duration::from_secs(6)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let list = common::get(addr, "/v1/admin/databases").await.text();
    assert!(list.contains("\"steady\""), "{list}");
    assert!(!list.contains("\"stalled\""), "{list}");
    let leftovers = || {
        std::fs::read_dir(server.data_dir())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".import-"))
            .count()
    };
    let started = Instant::now();
    while leftovers() > 0 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(leftovers(), 0, "the stalled import left its folder behind");
    assert_eq!(common::server_panics(), 0);
}
