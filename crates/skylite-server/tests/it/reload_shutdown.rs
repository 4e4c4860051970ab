//! Running it like a service: `POST /v1/admin/reload` (what SIGHUP does) reads a renewed TLS
//! certificate and rotated token keys without a restart, and a bad new certificate or key file
//! keeps the old ones and reports `RELOAD_FAILED`, and a revocation written by another process
//! applies at once; graceful shutdown lets a request in flight
//! finish, rolls back an open transaction, and leaves the data checkpointed in the database
//! file.

use crate::auth_common;
use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use auth_common::*;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use skylite_auth::{generate_keypair, mint, raw_public_key, TokenSpec};
use skylite_server::TlsConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn connector() -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(fixture("ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// One HTTPS request on a fresh connection -> (the server's leaf certificate, status, body).
async fn https(addr: SocketAddr, method: &str, path: &str) -> (Vec<u8>, u16, Value) {
    let fut = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = connector()
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (
            leaf,
            status,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("https answers")
}

fn leaf_of(chain: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(chain)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_a_renewed_certificate_and_keeps_the_old_one_when_the_new_is_bad() {
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::copy(fixture("chain.pem"), &cert).unwrap();
    std::fs::copy(fixture("key-pkcs8.pem"), &key).unwrap();
    let tls = TlsConfig::load(&cert, &key).unwrap();
    let server = TestServer::start_with(move |c| c.tls = Some(tls)).await;
    let (leaf, status, _) = https(server.addr, "GET", "/health").await;
    assert_eq!(status, 200);
    assert_eq!(leaf, leaf_of(&fixture("chain.pem")));

    // Renewed: another certificate and key in the same files.
    std::fs::copy(fixture("rsa-chain.pem"), &cert).unwrap();
    std::fs::copy(fixture("rsa-key-pkcs1.pem"), &key).unwrap();
    let (_, status, body) = https(server.addr, "POST", "/v1/admin/reload").await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["tls"], true);
    let (leaf, status, _) = https(server.addr, "GET", "/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        leaf,
        leaf_of(&fixture("rsa-chain.pem")),
        "the new certificate"
    );

    // A broken renewal (a key that does not match) is reported, and the last good pair stays.
    std::fs::copy(fixture("other-key.pem"), &key).unwrap();
    let (_, status, body) = https(server.addr, "POST", "/v1/admin/reload").await;
    assert_eq!(status, 500, "{body:#}");
    assert_eq!(body["code"], "RELOAD_FAILED", "{body:#}");
    assert!(
        body["message"].as_str().unwrap().contains("key.pem"),
        "{body:#}"
    );
    let (leaf, status, _) = https(server.addr, "GET", "/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        leaf,
        leaf_of(&fixture("rsa-chain.pem")),
        "still the last good one"
    );
    assert_eq!(server_panics(), 0);
}

async fn select_with(addr: SocketAddr, token: &str) -> u16 {
    request_with(
        addr,
        "POST",
        "/db/app/v3/pipeline",
        &[("authorization", &bearer(token))],
        Some(
            serde_json::to_vec(&json!({"baton": null, "requests": [execute("SELECT 1"), close()]}))
                .unwrap(),
        ),
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rotates_trusted_keys() {
    let keys = tempfile::tempdir().unwrap();
    let old = generate_keypair(&keys.path().join("old")).unwrap();
    let new = generate_keypair(&keys.path().join("new")).unwrap();
    let key_file = keys.path().join("trusted.pub");
    std::fs::write(&key_file, raw_public_key(&old.verifying())).unwrap();
    let kf = key_file.clone();
    let s = AuthServer::start_with(move |c| c.auth.key_files = vec![kf]).await;
    let token = |key: &skylite_auth::SigningKey| {
        mint(
            key,
            &TokenSpec {
                databases: vec!["app".into()],
                ..TokenSpec::default()
            },
        )
        .unwrap()
        .0
    };
    let (old_token, new_token) = (token(&old.signing), token(&new.signing));
    let admin = s.admin();
    let reload = || async {
        let r = request_with(
            s.addr(),
            "POST",
            "/v1/admin/reload",
            &[("authorization", &bearer(&admin))],
            None,
        )
        .await;
        (r.status, r.json())
    };
    assert_eq!(select_with(s.addr(), &old_token).await, 200);
    assert_eq!(select_with(s.addr(), &new_token).await, 401);

    // Rotation, step 1: both keys are trusted while tokens of the old one are still out.
    std::fs::write(
        &key_file,
        format!(
            "{}\n{}\n",
            raw_public_key(&old.verifying()),
            raw_public_key(&new.verifying())
        ),
    )
    .unwrap();
    let (status, body) = reload().await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["keys"], 3, "the data folder's key plus both: {body:#}");
    assert_eq!(select_with(s.addr(), &old_token).await, 200);
    assert_eq!(select_with(s.addr(), &new_token).await, 200);

    // Step 2: the old key is dropped; its tokens stop working at once (cached ones too).
    std::fs::write(&key_file, raw_public_key(&new.verifying())).unwrap();
    let (status, _) = reload().await;
    assert_eq!(status, 200);
    assert_eq!(select_with(s.addr(), &old_token).await, 401);
    assert_eq!(select_with(s.addr(), &new_token).await, 200);

    // A broken key file is reported and changes nothing.
    std::fs::write(&key_file, "not a key").unwrap();
    let (status, body) = reload().await;
    assert_eq!(status, 500, "{body:#}");
    assert_eq!(body["code"], "RELOAD_FAILED");
    assert_eq!(select_with(s.addr(), &new_token).await, 200);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_rolls_back_and_checkpoints() {
    let server = TestServer::start_with(|c| {
        c.shutdown_timeout = Duration::from_secs(15);
    })
    .await;
    let addr = server.addr;
    let data = server.data_dir().join("default/data.db");
    let mut s = Stream::new(addr);
    s.ok("CREATE TABLE t(x)").await;
    s.ok("INSERT INTO t VALUES ('committed')").await;
    let mut open = Stream::new(addr);
    open.ok("BEGIN IMMEDIATE").await;
    open.ok("INSERT INTO t VALUES ('uncommitted')").await;

    // A request in flight when the shutdown begins.
    let in_flight = tokio::spawn(async move {
        pipeline(
            addr,
            None,
            json!([execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 5000000) \
                 SELECT count(*) FROM c"
            ), close()]),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Keep the data folder past the server.
    let mut server = server;
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    server.stop().await;
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(
        exec_result(&body, 0)["rows"][0][0]["value"],
        "5000000",
        "{body:#}"
    );

    // Everything committed is in the database file itself: the WAL is empty.
    let wal = data.with_file_name("data.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "WAL left behind"
    );
    let conn = rusqlite::Connection::open(&data).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT x FROM t")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec!["committed".to_owned()],
        "the open transaction was rolled back"
    );
    drop(conn);
    drop(dir);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_revocation_made_by_another_process_at_once() {
    let s = AuthServer::start().await;
    let token = s.token(&["app"], false);
    assert_eq!(select_with(s.addr(), &token).await, 200);
    // `skylite token revoke` in another process writes the list in the data folder.
    let (_, claims) = skylite_auth::decode_unverified(&token).unwrap();
    let jti = claims["jti"].as_str().unwrap().to_owned();
    let other = skylite_auth::RevocationList::for_data_dir(&s.data_dir()).unwrap();
    assert!(other.revoke(&jti, None).unwrap());
    let admin = s.admin();
    let r = request_with(
        s.addr(),
        "POST",
        "/v1/admin/reload",
        &[("authorization", &bearer(&admin))],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(select_with(s.addr(), &token).await, 401);
    assert_eq!(server_panics(), 0);
}
