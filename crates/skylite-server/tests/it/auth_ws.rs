//! The security matrix over Hrana WebSocket, with a real server on 127.0.0.1:0 and auth on: the
//! token comes in `hello`; a refused one gets `hello_error` (with the code) and then a close
//! frame 1008; a read-only token reads and cannot write; every request re-checks the token, so
//! one that expires or is revoked while the socket is open stops working, and a new `hello`
//! with a fresh token recovers.

use crate::auth_common;
use crate::common;

use std::time::{Duration, Instant};

use auth_common::*;
use common::server_panics;
use serde_json::json;
use skylite_auth::{generate_keypair, RevocationList};
use skylite_proto::ws::{Request, Response, ServerMsg};
use skylite_proto::{Batch, BatchStep, CursorEntry, Stmt};

const PROTOS: [&str; 2] = ["hrana3", "hrana3-protobuf"];

/// Expects `hello_error` with `code` (and `words` in its message), then a close frame 1008.
async fn refused_hello(c: &mut WsClient, jwt: Option<&str>, code: &str, words: &[&str]) {
    match c.hello(jwt).await {
        ServerMsg::HelloError { error } => {
            assert_eq!(error.code.as_deref(), Some(code), "{error:?}");
            for w in words {
                assert!(error.message.contains(w), "{:?} lacks {w:?}", error.message);
            }
        }
        other => panic!("hello with a bad token ({code}) got {other:?}"),
    }
    let (close, reason) = c.expect_close().await;
    assert_eq!(close, 1008, "{reason}");
    assert!(!reason.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_every_token_rightly() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let other_key = generate_keypair(&s.server.dir.path().join("other-key"))
        .unwrap()
        .signing;
    let app_claims = json!({"id": "app"});
    let revoked = s.token(&["app"], false);
    let (_, rc) = skylite_auth::decode_unverified(&revoked).unwrap();
    s.server
        .app
        .auth
        .revoke(rc["jti"].as_str().unwrap(), None)
        .unwrap();
    let public = s.key.verifying_key();
    let cases: Vec<(&str, Option<String>, &str, &[&str])> = vec![
        (
            "no token",
            None,
            "AUTH_JWT_MISSING",
            &["authentication required"],
        ),
        (
            "empty token",
            Some(String::new()),
            "AUTH_JWT_MISSING",
            &["authentication required"],
        ),
        (
            "garbage",
            Some("garbage".into()),
            "AUTH_JWT_INVALID",
            &["malformed token"],
        ),
        (
            "a.b.c",
            Some("a.b.c".into()),
            "AUTH_JWT_INVALID",
            &["malformed token"],
        ),
        (
            "None",
            Some("None".into()),
            "AUTH_JWT_INVALID",
            &["malformed token"],
        ),
        (
            "wrong signature",
            Some(sign_claims(&other_key, app_claims.clone())),
            "AUTH_JWT_INVALID",
            &["signature"],
        ),
        (
            "alg none",
            Some(forged(json!({"alg": "none"}), &app_claims, b"")),
            "AUTH_JWT_ALGORITHM",
            &["`none`", "EdDSA"],
        ),
        (
            "HS256 public key",
            Some(hs256_with(public.as_bytes(), &app_claims)),
            "AUTH_JWT_ALGORITHM",
            &["`HS256`"],
        ),
        (
            "expired",
            Some(s.signed(json!({"id": "app", "exp": now() - 3600}))),
            "AUTH_JWT_EXPIRED",
            &["expired"],
        ),
        (
            "not yet valid",
            Some(s.signed(json!({"id": "app", "nbf": now() + 3600}))),
            "AUTH_JWT_IMMATURE",
            &["not valid before"],
        ),
        ("revoked", Some(revoked), "AUTH_JWT_REVOKED", &["revoked"]),
        (
            "wrong database",
            Some(s.token(&["other"], false)),
            "AUTH_DATABASE_FORBIDDEN",
            &["`other`", "not `app`"],
        ),
        (
            "no scope claims",
            Some(s.signed(json!({"a": "rw"}))),
            "AUTH_JWT_UNSCOPED",
            &["grants nothing"],
        ),
    ];
    let mut table = Vec::new();
    for (name, jwt, code, words) in &cases {
        for proto in PROTOS {
            let mut c = WsClient::connect(addr, "/db/app", proto).await;
            refused_hello(&mut c, jwt.as_deref(), code, words).await;
        }
        table.push(format!("| {name} | hello_error {code} + close 1008 |"));
    }
    // A token for `app` on a socket to `default` (no database named).
    let mut c = WsClient::connect(addr, "/", "hrana3").await;
    refused_hello(
        &mut c,
        Some(&s.token(&["app"], false)),
        "AUTH_DATABASE_FORBIDDEN",
        &["`default`"],
    )
    .await;

    // The good ones: full access, admin, sqld's `{id}`.
    for (name, jwt) in [
        ("full access", s.token(&["app"], false)),
        ("admin", s.admin()),
        ("{id: app}", s.signed(json!({"id": "app"}))),
    ] {
        for proto in PROTOS {
            let mut c = WsClient::connect(addr, "/db/app", proto).await;
            assert_eq!(c.hello(Some(&jwt)).await, ServerMsg::HelloOk, "{name}");
            c.ok(1, Request::OpenStream { stream_id: 1 }).await;
            c.query(2, 1, "INSERT INTO t VALUES (10)").await;
            let rows = c.query(3, 1, "SELECT count(*) FROM t WHERE x = 10").await;
            assert!(rows[0][0].as_i64().unwrap() >= 1);
        }
        table.push(format!("| {name} | hello_ok, read and write ok |"));
    }
    println!(
        "\nWebSocket hello x tokens (/db/app, hrana3 and hrana3-protobuf)\n| case | answer |\n|---|---|\n{}",
        table.join("\n")
    );
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_reads_and_cannot_write_over_websocket() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let ro = s.token(&["app"], true);
    for proto in PROTOS {
        let mut c = WsClient::connect(addr, "/db/app", proto).await;
        assert_eq!(c.hello(Some(&ro)).await, ServerMsg::HelloOk);
        c.ok(1, Request::OpenStream { stream_id: 1 }).await;
        assert_eq!(
            c.query(2, 1, "SELECT x FROM t ORDER BY x").await,
            vec![vec![json!(1)], vec![json!(2)]]
        );
        c.query(3, 1, "PRAGMA read_uncommitted").await;
        c.query(4, 1, "PRAGMA table_info(t)").await;
        let mut id = 10;
        for sql in [
            "INSERT INTO t VALUES (3)",
            "INSERT INTO t VALUES (3) RETURNING x",
            "UPDATE t SET x = 0",
            "DELETE FROM t",
            "CREATE TABLE u(y)",
            "DROP TABLE t",
            "ALTER TABLE t ADD COLUMN y",
            "PRAGMA user_version = 5",
            "BEGIN IMMEDIATE",
        ] {
            id += 1;
            let e = c.err(id, ws_exec(1, sql)).await;
            assert!(
                e.message.contains("read-only")
                    && matches!(e.code.as_deref(), Some("SQLITE_READONLY" | "SQLITE_AUTH")),
                "{proto}: {sql}: {e:?}"
            );
        }
        // Inside a transaction.
        c.query(30, 1, "BEGIN").await;
        let e = c.err(31, ws_exec(1, "INSERT INTO t VALUES (3)")).await;
        assert!(e.message.contains("read-only"), "{e:?}");
        c.query(32, 1, "COMMIT").await;
        // A batch with a write step.
        let step = |sql: &str| BatchStep {
            condition: None,
            stmt: Stmt::new(sql),
        };
        match c
            .ok(
                33,
                Request::Batch {
                    stream_id: 1,
                    batch: Batch {
                        steps: vec![step("SELECT 1"), step("DELETE FROM t")],
                    },
                },
            )
            .await
        {
            Response::Batch { result } => {
                assert!(result.step_errors[0].is_none());
                let e = result.step_errors[1]
                    .as_ref()
                    .expect("the write step fails");
                assert!(e.message.contains("read-only"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        // A sequence with a write.
        let e = c
            .err(
                34,
                Request::Sequence {
                    stream_id: 1,
                    sql: Some("SELECT 1; UPDATE t SET x = 5;".into()),
                    sql_id: None,
                },
            )
            .await;
        assert!(e.message.contains("read-only"), "{e:?}");
        // A cursor with a write step.
        c.ok(
            35,
            Request::OpenCursor {
                stream_id: 1,
                cursor_id: 1,
                batch: Batch {
                    steps: vec![step("SELECT x FROM t"), step("INSERT INTO t VALUES (4)")],
                },
            },
        )
        .await;
        let mut errors = Vec::new();
        let mut n = 36;
        loop {
            n += 1;
            match c
                .ok(
                    n,
                    Request::FetchCursor {
                        cursor_id: 1,
                        max_count: 100,
                    },
                )
                .await
            {
                Response::FetchCursor { entries, done } => {
                    for e in entries {
                        if let CursorEntry::StepError { error, .. } = e {
                            errors.push(error);
                        }
                    }
                    if done {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("read-only"));
        c.ok(99, Request::CloseCursor { cursor_id: 1 }).await;
        // Still a working stream.
        assert_eq!(
            c.query(100, 1, "SELECT count(*) FROM t").await,
            vec![vec![json!(2)]]
        );
    }
    // Nothing was written.
    let full = bearer(&s.token(&["app"], false));
    for (sql, want) in [
        ("SELECT group_concat(x) FROM t", json!("1,2")),
        ("PRAGMA user_version", json!(0)),
        ("SELECT count(*) FROM sqlite_schema", json!(1)),
    ] {
        assert_eq!(
            run_sql(addr, Ep::V3, Some("app"), Some(&full), sql)
                .await
                .rows(),
            &vec![vec![want]],
            "{sql}"
        );
    }
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_on_an_open_socket_stops_working_and_a_new_hello_recovers() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    // The server allows 30 s of clock skew (`DEFAULT_LEEWAY_SECS`; `ServerConfig` cannot
    // change it), so a token that the server sees expire 3 s from now says `exp = now - 27`.
    let leeway = skylite_auth::DEFAULT_LEEWAY_SECS;
    let exp = now() - leeway + 3;
    let short = s.signed(json!({"id": "app", "exp": exp, "jti": "short-lived"}));
    let mut c = WsClient::connect(addr, "/db/app", "hrana3").await;
    assert_eq!(c.hello(Some(&short)).await, ServerMsg::HelloOk);
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    c.query(2, 1, "BEGIN").await;
    c.query(3, 1, "INSERT INTO t VALUES (3)").await;
    // Wait until the server's clock is past exp + leeway.
    while now() - leeway < exp + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = c.err(4, ws_exec(1, "SELECT count(*) FROM t")).await;
    assert_eq!(e.code.as_deref(), Some("AUTH_JWT_EXPIRED"), "{e:?}");
    assert!(e.message.contains("expired"), "{e:?}");
    // Connection-level requests too, and the socket stays open.
    let e = c.err(5, Request::OpenStream { stream_id: 2 }).await;
    assert_eq!(e.code.as_deref(), Some("AUTH_JWT_EXPIRED"), "{e:?}");
    // A fresh token recovers, and the stream (with its transaction) is still there.
    assert_eq!(
        c.hello(Some(&s.token(&["app"], false))).await,
        ServerMsg::HelloOk
    );
    assert_eq!(
        c.query(6, 1, "SELECT count(*) FROM t").await,
        vec![vec![json!(3)]]
    );
    c.query(7, 1, "COMMIT").await;
    // A re-hello with a read-only token makes the socket read-only.
    assert_eq!(
        c.hello(Some(&s.token(&["app"], true))).await,
        ServerMsg::HelloOk
    );
    let e = c.err(8, ws_exec(1, "DELETE FROM t")).await;
    assert!(e.message.contains("read-only"), "{e:?}");
    // A re-hello with a token for another database is refused and ends the socket.
    refused_hello(
        &mut c,
        Some(&s.token(&["other"], false)),
        "AUTH_DATABASE_FORBIDDEN",
        &["`other`"],
    )
    .await;
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_an_open_socket_stops_working_within_a_second() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let (token, claims) = skylite_auth::mint(
        &s.key,
        &skylite_auth::TokenSpec {
            databases: vec!["app".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let mut c = WsClient::connect(addr, "/db/app", "hrana3-protobuf").await;
    assert_eq!(c.hello(Some(&token)).await, ServerMsg::HelloOk);
    c.ok(1, Request::OpenStream { stream_id: 1 }).await;
    c.query(2, 1, "SELECT 1").await;
    // Revoked by another process (`skylite token revoke`): the server notices through the file.
    let list = RevocationList::for_data_dir(&s.data_dir()).unwrap();
    let revoked_at = Instant::now();
    list.revoke(claims.jti.as_deref().unwrap(), None).unwrap();
    let mut id = 3;
    let error = loop {
        id += 1;
        match c.call(id, ws_exec(1, "SELECT 1")).await {
            ServerMsg::ResponseOk { .. } => {
                assert!(
                    revoked_at.elapsed() < Duration::from_secs(2),
                    "a token revoked {:?} ago still works",
                    revoked_at.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ServerMsg::ResponseError { error, .. } => break error,
            other => panic!("{other:?}"),
        }
    };
    println!(
        "revocation noticed on the socket after {:?}",
        revoked_at.elapsed()
    );
    assert_eq!(error.code.as_deref(), Some("AUTH_JWT_REVOKED"), "{error:?}");
    assert!(error.message.contains("revoked"));
    // A fresh token recovers on the same socket and stream.
    assert_eq!(
        c.hello(Some(&s.token(&["app"], false))).await,
        ServerMsg::HelloOk
    );
    assert_eq!(c.query(100, 1, "SELECT 7").await, vec![vec![json!(7)]]);
    // The revoked token cannot say hello again.
    let mut c2 = WsClient::connect(addr, "/db/app", "hrana3").await;
    refused_hello(&mut c2, Some(&token), "AUTH_JWT_REVOKED", &["revoked"]).await;
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_database_names_are_checked_before_the_upgrade() {
    let s = AuthServer::start().await;
    // Invalid names are refused before the upgrade (that reveals nothing); whether a valid name
    // exists is only told after `hello` brings a token that opens it (see auth_router.rs).
    for (path, status) in [
        ("/db/..", 400),
        ("/db/%2e%2e", 400),
        ("/dev/..%2f..", 400),
        ("/db/.skylite", 400),
    ] {
        let url = format!("ws://{}{path}", s.addr());
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), status, "{path}");
            }
            Err(e) => panic!("{path}: {e}"),
            Ok(_) => panic!("{path}: upgraded"),
        }
    }
    assert!(!s.data_dir().join("nope").exists());
}
