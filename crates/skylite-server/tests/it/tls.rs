//! TLS end to end against an in-process server serving the committed test certificates
//! (`tests/fixtures/tls`, made by `make.sh` there: a root CA, an intermediate, EC and RSA leaves
//! for `localhost`/`127.0.0.1`). Clients are rustls clients that trust only the root, so every
//! test also checks that the server sends its intermediate.
//!
//! Covers: loading PKCS#8, SEC1 and PKCS#1 keys and the startup errors (missing file, no
//! certificate, no key, swapped files, mismatched key); `/v2/pipeline` over https (ALPN
//! `http/1.1`); Hrana `hrana3` over wss; plain HTTP to the TLS port failing while the server
//! keeps serving; silent clients neither blocking others nor living past the handshake timeout;
//! graceful shutdown finishing a request in flight.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use skylite_server::{App, ServerConfig, TlsConfig, TlsError};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn ec_config() -> TlsConfig {
    TlsConfig::load(&fixture("chain.pem"), &fixture("key-pkcs8.pem")).expect("EC fixture loads")
}

async fn start_tls(tls: TlsConfig) -> TestServer {
    TestServer::start_with(move |c| c.tls = Some(tls)).await
}

/// A rustls client that trusts only the test root CA and offers ALPN `http/1.1`.
fn connector() -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(fixture("ca.pem")).expect("ca.pem");
    roots.add(ca).expect("root CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(addr: SocketAddr, name: &str) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    connector()
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// One HTTPS request on a fresh connection -> (status, body).
async fn https(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
    let fut = async {
        let tls = tls_connect(addr, "localhost").await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("localhost:{}", addr.port()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok::<_, String>((status, body))
    };
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("https {method} {path}: {e}"),
        Err(_) => panic!("https {method} {path}: no response within 30 s"),
    }
}

async fn https_pipeline(addr: SocketAddr, requests: Value) -> Value {
    let (status, body) = https(
        addr,
        "POST",
        "/v2/pipeline",
        Some(json!({"baton": null, "requests": requests})),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("JSON body")
}

/// The value of row 0, column 0 of result `i` of a pipeline response.
fn cell(resp: &Value, i: usize) -> Value {
    resp["results"][i]["response"]["result"]["rows"][0][0].clone()
}

#[test]
fn every_key_format_loads_and_errors_name_the_file() {
    // PKCS#8, SEC1 (same EC key) and PKCS#1 RSA.
    TlsConfig::load(&fixture("chain.pem"), &fixture("key-pkcs8.pem")).expect("PKCS#8");
    TlsConfig::load(&fixture("chain.pem"), &fixture("key-sec1.pem")).expect("SEC1");
    TlsConfig::load(&fixture("rsa-chain.pem"), &fixture("rsa-key-pkcs1.pem")).expect("PKCS#1");

    let missing = fixture("no-such-cert.pem");
    let e = TlsConfig::load(&missing, &fixture("key-pkcs8.pem")).unwrap_err();
    assert!(
        matches!(
            e,
            TlsError::Read {
                what: "certificate",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("no-such-cert.pem"), "{e}");
    let e = TlsConfig::load(&fixture("chain.pem"), &fixture("no-such-key.pem")).unwrap_err();
    assert!(matches!(e, TlsError::Read { what: "key", .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-key.pem"), "{e}");

    // A key where the certificate should be, and the other way round.
    let e = TlsConfig::load(&fixture("key-pkcs8.pem"), &fixture("key-pkcs8.pem")).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains("key-pkcs8.pem"), "{e}");
    let e = TlsConfig::load(&fixture("chain.pem"), &fixture("chain.pem")).unwrap_err();
    assert!(matches!(e, TlsError::NoKey { .. }), "{e:?}");
    assert!(e.to_string().contains("swapped"), "{e}");

    // The wrong key for the certificate (same type, and another type).
    for key in ["other-key.pem", "rsa-key-pkcs1.pem"] {
        let e = TlsConfig::load(&fixture("chain.pem"), &fixture(key)).unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{key}: {e:?}");
        assert!(e.to_string().contains(key), "{e}");
    }

    // Not PEM at all, and broken PEM.
    let e = TlsConfig::from_pem(b"hello", b"world").unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
    let e = TlsConfig::from_pem(broken, b"").unwrap_err();
    assert!(matches!(e, TlsError::Pem { .. }), "{e:?}");
    let encrypted =
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let cert = std::fs::read(fixture("chain.pem")).unwrap();
    let e = TlsConfig::from_pem(&cert, encrypted).unwrap_err();
    assert!(e.to_string().contains("encrypted"), "{e}");
}

#[tokio::test]
async fn pipeline_over_https_with_ec_and_rsa_chains() {
    let rsa = TlsConfig::load(&fixture("rsa-chain.pem"), &fixture("rsa-key-pkcs1.pem")).unwrap();
    for config in [ec_config(), rsa] {
        let server = start_tls(config).await;
        let addr = server.addr;
        let resp = https_pipeline(
            addr,
            json!([
                {"type": "execute", "stmt": {"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}},
                {"type": "execute", "stmt": {"sql": "INSERT INTO t (v) VALUES (?)", "args": [{"type": "text", "value": "over tls"}]}},
                {"type": "execute", "stmt": {"sql": "SELECT v FROM t"}},
                {"type": "close"}
            ]),
        )
        .await;
        assert_eq!(cell(&resp, 2), json!({"type": "text", "value": "over tls"}));

        // Health, and the negotiated protocol is HTTP/1.1 over TLS 1.3.
        assert_eq!(https(addr, "GET", "/health", None).await.0, 200);
        let tls = tls_connect(addr, "localhost").await.unwrap();
        let (_, session) = tls.get_ref();
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(
            session.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );

        // The certificate is for localhost/127.0.0.1, not for other names.
        let e = tls_connect(addr, "example.com").await.unwrap_err();
        assert!(e.contains("TLS handshake"), "{e}");
        assert_eq!(https(addr, "GET", "/health", None).await.0, 200);
        assert_eq!(common::server_panics(), 0);
        server.stop().await;
    }
}

type Wss = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

/// Sends one JSON message and returns the next JSON message.
async fn ws_call(ws: &mut Wss, msg: Value) -> Value {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an answer within 20 s")
            .expect("socket open")
            .expect("frame");
        match frame {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[tokio::test]
async fn hrana3_over_wss() {
    let server = start_tls(ec_config()).await;
    let addr = server.addr;
    let tls = tls_connect(addr, "localhost").await.unwrap();
    let mut req = format!("wss://localhost:{}/", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("hrana3"));
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls)
        .await
        .expect("WebSocket upgrade over TLS");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("hrana3")
    );
    assert_eq!(
        ws_call(&mut ws, json!({"type": "hello", "jwt": null})).await["type"],
        "hello_ok"
    );
    let open = ws_call(
        &mut ws,
        json!({"type": "request", "request_id": 1,
        "request": {"type": "open_stream", "stream_id": 7}}),
    )
    .await;
    assert_eq!(open["type"], "response_ok", "{open}");
    for (id, sql) in [
        (2, "CREATE TABLE w (v INTEGER)"),
        (3, "INSERT INTO w VALUES (41), (1)"),
    ] {
        let r = ws_call(
            &mut ws,
            json!({"type": "request", "request_id": id,
            "request": {"type": "execute", "stream_id": 7, "stmt": {"sql": sql}}}),
        )
        .await;
        assert_eq!(r["type"], "response_ok", "{r}");
    }
    let r = ws_call(
        &mut ws,
        json!({"type": "request", "request_id": 4,
        "request": {"type": "execute", "stream_id": 7, "stmt": {"sql": "SELECT sum(v) FROM w"}}}),
    )
    .await;
    assert_eq!(r["request_id"], 4);
    assert_eq!(
        r["response"]["result"]["rows"][0][0],
        json!({"type": "integer", "value": "42"}),
        "{r}"
    );
    let _ = ws.close(None).await;
    assert_eq!(common::server_panics(), 0);
    server.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails_and_the_server_keeps_serving() {
    let server = start_tls(ec_config()).await;
    let addr = server.addr;
    for _ in 0..3 {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            common::try_request(addr, "GET", "/health", None),
        )
        .await
        .expect("plain HTTP gets an answer or a close, not a hang");
        assert!(r.is_err(), "plain HTTP must not be served: {r:?}");
    }
    // Raw garbage, then a TLS record header that promises more than it sends.
    for bytes in [
        &b"\x00\x01garbage\r\n\r\n"[..],
        &b"\x16\x03\x01\xff\xff"[..],
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut tcp, bytes)
            .await
            .unwrap();
        assert_eq!(https(addr, "GET", "/health", None).await.0, 200);
    }
    let resp = https_pipeline(
        addr,
        json!([{"type": "execute", "stmt": {"sql": "SELECT 1"}}]),
    )
    .await;
    assert_eq!(cell(&resp, 0), json!({"type": "integer", "value": "1"}));
    assert_eq!(common::server_panics(), 0);
    server.stop().await;
}

#[tokio::test]
async fn silent_clients_do_not_block_others_and_are_dropped_after_the_handshake_timeout() {
    let mut tls = ec_config();
    tls.handshake_timeout = Duration::from_millis(500);
    let server = start_tls(tls).await;
    let addr = server.addr;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(https(addr, "GET", "/health", None).await.0, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "silent clients slowed others down: {:?}",
        started.elapsed()
    );
    // The server closes each silent connection once its handshake time is up.
    for mut tcp in silent {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("the server closes a silent connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert_eq!(https(addr, "GET", "/health", None).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path().join("data"));
    config.auth.disabled = true;
    config.tls = Some(ec_config());
    let app = App::open(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(skylite_server::serve(app, listener, async move {
        let _ = stop_rx.await;
    }));

    // An idle keep-alive connection, a silent TCP connection and a slow request in flight.
    let idle = tls_connect(addr, "localhost").await.unwrap();
    let silent = TcpStream::connect(addr).await.unwrap();
    let slow_sql =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000) \
                    SELECT count(*) FROM c";
    let slow = tokio::spawn(async move {
        https_pipeline(
            addr,
            json!([{"type": "execute", "stmt": {"sql": slow_sql}}]),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !slow.is_finished(),
        "the slow request should still be running"
    );
    let _ = stop_tx.send(());

    let resp = tokio::time::timeout(Duration::from_secs(30), slow)
        .await
        .expect("the request in flight is answered")
        .expect("no panic");
    assert_eq!(
        cell(&resp, 0),
        json!({"type": "integer", "value": "4000000"})
    );
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve() returns once connections are done")
        .expect("no panic");
    result.expect("serve() ends without error");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    drop((idle, silent));
}
