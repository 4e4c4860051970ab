//! Authorization at the router, with a real server on 127.0.0.1:0 and auth on: no header lets a
//! request skip authentication (a spoofed `Upgrade: websocket` least of all); without a valid
//! token, or with a token for another database, nothing tells an existing database from a
//! missing one and nothing is opened; a WebSocket upgrade without a token binds its database
//! only when `hello` brings a token that opens it; the admin API wants an admin token on every
//! route; 401/403 bodies carry `error` and `code`, never `message`.

use crate::auth_common;
use crate::common;

use std::net::SocketAddr;

use auth_common::*;
use common::{request_with, server_panics, Resp};
use serde_json::{json, Value};
use skylite_proto::ws::ServerMsg;
use skylite_proto::{protobuf, Batch, BatchStep, CursorReqBody, Stmt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The headers of a WebSocket upgrade, sent on a plain HTTP request to fool the router.
const SPOOFED_UPGRADE: [(&str, &str); 4] = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// An AuthServer plus `cold`: a database on disk that the server has never opened (a fork of
/// `app` is written to disk without being opened).
async fn server_with_cold_database() -> AuthServer {
    let s = AuthServer::start().await;
    let r = admin_call(
        &s,
        "POST",
        "/v1/admin/databases/app/fork",
        json!({"to": "cold"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(is_open(&s, "cold").await, Some(false));
    s
}

async fn admin_call(s: &AuthServer, method: &str, path: &str, body: Value) -> Resp {
    let admin = bearer(&s.admin());
    let body = (!body.is_null()).then(|| serde_json::to_vec(&body).unwrap());
    request_with(s.addr(), method, path, &[("authorization", &admin)], body).await
}

/// Whether the server has `name` open (the admin API's `open`); `None` if it does not exist.
async fn is_open(s: &AuthServer, name: &str) -> Option<bool> {
    let r = admin_call(
        s,
        "GET",
        &format!("/v1/admin/databases/{name}"),
        Value::Null,
    )
    .await;
    match r.status {
        200 => Some(r.json()["open"].as_bool().expect("`open` in the info")),
        404 => None,
        other => panic!("info {name}: {other} {}", r.text()),
    }
}

/// Every SQL endpoint: its path and a body that reads `t` (the Protobuf cursor included).
fn sql_endpoints() -> Vec<(&'static str, Vec<u8>)> {
    let mut eps: Vec<(&'static str, Vec<u8>)> = HTTP_EPS
        .iter()
        .map(|ep| (ep.path(), ep.body("SELECT x FROM t")))
        .collect();
    let cursor = protobuf::encode(CursorReqBody {
        baton: None,
        batch: Batch {
            steps: vec![BatchStep {
                condition: None,
                stmt: Stmt::new("SELECT x FROM t"),
            }],
        },
    });
    eps.push(("/v3-protobuf/cursor", cursor));
    eps
}

/// Checks an auth refusal: `status`, `code`, the JSON shape without `message`, and no rows.
#[track_caller]
fn assert_refused(r: &Resp, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/json"),
        "{what}"
    );
    let v = r.json();
    assert_eq!(v["code"], code, "{what}: {v}");
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {v}"
    );
    assert!(v.get("message").is_none(), "{what}: {v}");
    assert!(
        v.get("results").is_none() && v.get("result").is_none(),
        "{what}: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_upgrade_header_never_skips_authentication() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let garbage = bearer("garbage");
    let other = bearer(&s.token(&["other"], false));
    for (path, body) in sql_endpoints() {
        for prefix in ["", "/db/app", "/dev/app"] {
            let full = format!("{prefix}{path}");
            for (auth, status, code) in [
                (None, 401, "AUTH_JWT_MISSING"),
                (Some(garbage.as_str()), 401, "AUTH_JWT_INVALID"),
            ] {
                let mut headers = SPOOFED_UPGRADE.to_vec();
                if let Some(a) = auth {
                    headers.push(("authorization", a));
                }
                let r = request_with(addr, "POST", &full, &headers, Some(body.clone())).await;
                assert_refused(&r, status, code, &format!("{full} with {auth:?}"));
            }
            // A token for another database is refused too, upgrade header or not.
            if !prefix.is_empty() {
                let mut headers = SPOOFED_UPGRADE.to_vec();
                headers.push(("authorization", &other));
                let r = request_with(addr, "POST", &full, &headers, Some(body.clone())).await;
                assert_refused(&r, 403, "AUTH_DATABASE_FORBIDDEN", &full);
            }
        }
        // Through the x-namespace header as well.
        let mut headers = SPOOFED_UPGRADE.to_vec();
        headers.push(("x-namespace", "app"));
        let r = request_with(addr, "POST", path, &headers, Some(body.clone())).await;
        assert_refused(&r, 401, "AUTH_JWT_MISSING", &format!("{path} x-namespace"));
    }
    // The right token still works on every endpoint.
    let token = bearer(&s.token(&["app"], false));
    for ep in HTTP_EPS {
        let rows = run_sql(
            addr,
            ep,
            Some("app"),
            Some(&token),
            "SELECT x FROM t ORDER BY x",
        )
        .await;
        assert_eq!(rows.rows().len(), 2, "{ep:?}");
    }
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_without_the_right_token_learn_nothing_and_open_nothing() {
    let s = server_with_cold_database().await;
    let addr = s.addr();
    let for_app = bearer(&s.token(&["app"], false));
    for (path, body) in sql_endpoints() {
        // No token: the same 401 for an open, a never-opened and a missing database.
        let mut answers = Vec::new();
        for db in ["app", "cold", "nope"] {
            let r = request_with(
                addr,
                "POST",
                &format!("/db/{db}{path}"),
                &[],
                Some(body.clone()),
            )
            .await;
            assert_refused(&r, 401, "AUTH_JWT_MISSING", &format!("{db}{path}"));
            answers.push(r.body);
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "{path}: answers differ"
        );
        // A token for `app`: the same 403 for `cold` and for `nope` (only the name differs).
        for db in ["cold", "nope"] {
            let r = request_with(
                addr,
                "POST",
                &format!("/db/{db}{path}"),
                &[("authorization", &for_app)],
                Some(body.clone()),
            )
            .await;
            assert_refused(&r, 403, "AUTH_DATABASE_FORBIDDEN", &format!("{db}{path}"));
        }
    }
    assert_eq!(is_open(&s, "cold").await, Some(false), "cold was opened");
    assert_eq!(is_open(&s, "nope").await, None);
    // A token that opens `nope` learns it is missing; one that opens `cold` opens it.
    let for_nope = bearer(&s.token(&["nope"], false));
    run_sql(addr, Ep::V3, Some("nope"), Some(&for_nope), "SELECT 1")
        .await
        .refused(404, "DATABASE_NOT_FOUND");
    let for_cold = bearer(&s.token(&["cold"], true));
    let rows = run_sql(
        addr,
        Ep::V3,
        Some("cold"),
        Some(&for_cold),
        "SELECT x FROM t ORDER BY x",
    )
    .await;
    assert_eq!(rows.rows(), &vec![vec![json!(1)], vec![json!(2)]]);
    assert_eq!(is_open(&s, "cold").await, Some(true));
    assert!(!s.data_dir().join("nope").exists());
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subdomain_the_token_does_not_open_is_never_looked_up() {
    let s = server_with_cold_database().await;
    let addr = s.addr();
    let body = Ep::V3.body("SELECT count(*) FROM sqlite_schema WHERE name = 't'");
    let ask = |token: String| {
        let body = body.clone();
        async move {
            let auth = bearer(&token);
            let r = request_with(
                addr,
                "POST",
                "/v3/pipeline",
                &[("host", "cold.localhost"), ("authorization", &auth)],
                Some(body),
            )
            .await;
            outcome(Ep::V3, &r)
        }
    };
    // A token for `default` only: the label is not looked up; the request goes to `default`
    // (which has no table `t`), and `cold` stays closed.
    let rows = ask(s.token(&["default"], false)).await;
    assert_eq!(rows.rows(), &vec![vec![json!(0)]]);
    assert_eq!(is_open(&s, "cold").await, Some(false));
    // A token for `app`: refused on `default`, `cold` still closed.
    ask(s.token(&["app"], false))
        .await
        .refused(403, "AUTH_DATABASE_FORBIDDEN");
    assert_eq!(is_open(&s, "cold").await, Some(false));
    // A token that opens `cold`: served from `cold`.
    let rows = ask(s.token(&["cold"], false)).await;
    assert_eq!(rows.rows(), &vec![vec![json!(1)]]);
    assert_eq!(is_open(&s, "cold").await, Some(true));
    assert_eq!(server_panics(), 0);
}

/// Upgrades to `path` without a token; the status and the chosen subprotocol.
async fn upgrade(addr: SocketAddr, path: &str) -> Result<(u16, Option<String>), u16> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("hrana3"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((_ws, resp)) => Ok((
            resp.status().as_u16(),
            resp.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned()),
        )),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{path}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_without_a_token_learns_nothing_and_opens_nothing() {
    let s = server_with_cold_database().await;
    let addr = s.addr();
    for db in ["app", "cold", "nope"] {
        for path in [format!("/db/{db}"), format!("/dev/{db}/")] {
            assert_eq!(
                upgrade(addr, &path).await,
                Ok((101, Some("hrana3".to_owned()))),
                "{path}"
            );
        }
        // The same over the x-namespace header.
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        req.headers_mut()
            .insert("x-namespace", HeaderValue::from_str(db).unwrap());
        let (_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), 101, "{db}");
    }
    // And the refusals after the upgrade are the same whatever the database.
    let for_app = s.token(&["app"], false);
    for db in ["cold", "nope"] {
        let path = format!("/db/{db}");
        let mut c = WsClient::connect(addr, &path, "hrana3").await;
        match c.hello(None).await {
            ServerMsg::HelloError { error } => {
                assert_eq!(error.code.as_deref(), Some("AUTH_JWT_MISSING"), "{db}")
            }
            other => panic!("{db}: {other:?}"),
        }
        assert_eq!(c.expect_close().await.0, 1008);
        let mut c = WsClient::connect(addr, &path, "hrana3").await;
        match c.hello(Some(&for_app)).await {
            ServerMsg::HelloError { error } => {
                assert_eq!(
                    error.code.as_deref(),
                    Some("AUTH_DATABASE_FORBIDDEN"),
                    "{db}"
                );
                assert!(error.message.contains(db), "{error:?}");
            }
            other => panic!("{db}: {other:?}"),
        }
        assert_eq!(c.expect_close().await.0, 1008);
        // A request before hello closes the socket, the same way for both.
        let mut c = WsClient::connect(addr, &path, "hrana3").await;
        c.send(skylite_proto::ws::ClientMsg::Request {
            request_id: 1,
            request: ws_exec(1, "SELECT 1"),
        })
        .await;
        assert_eq!(c.expect_close().await.0, 1002, "{db}");
    }
    assert_eq!(is_open(&s, "cold").await, Some(false), "cold was opened");
    assert_eq!(is_open(&s, "nope").await, None);
    assert!(!s.data_dir().join("nope").exists());
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_binds_the_database_only_with_a_token_that_opens_it() {
    let s = server_with_cold_database().await;
    let addr = s.addr();
    for proto in ["hrana3", "hrana3-protobuf"] {
        // A valid token for a missing database: DATABASE_NOT_FOUND as a hello error.
        let mut c = WsClient::connect(addr, "/db/nope", proto).await;
        match c.hello(Some(&s.token(&["nope"], false))).await {
            ServerMsg::HelloError { error } => {
                assert_eq!(
                    error.code.as_deref(),
                    Some("DATABASE_NOT_FOUND"),
                    "{error:?}"
                );
                assert!(error.message.contains("nope"), "{error:?}");
            }
            other => panic!("{other:?}"),
        }
        let (code, reason) = c.expect_close().await;
        assert_eq!(code, 1008, "{reason}");
    }
    assert!(!s.data_dir().join("nope").exists());
    assert_eq!(is_open(&s, "cold").await, Some(false));
    // A token for `cold`: the database is opened at hello, and the socket works; a new hello
    // with a token for another database is refused.
    let mut c = WsClient::connect(addr, "/db/cold", "hrana3").await;
    assert_eq!(
        c.hello(Some(&s.token(&["cold"], false))).await,
        ServerMsg::HelloOk
    );
    assert_eq!(is_open(&s, "cold").await, Some(true));
    c.ok(1, skylite_proto::ws::Request::OpenStream { stream_id: 1 })
        .await;
    assert_eq!(
        c.query(2, 1, "SELECT x FROM t ORDER BY x").await,
        vec![vec![json!(1)], vec![json!(2)]]
    );
    match c.hello(Some(&s.token(&["app"], false))).await {
        ServerMsg::HelloError { error } => {
            assert_eq!(error.code.as_deref(), Some("AUTH_DATABASE_FORBIDDEN"))
        }
        other => panic!("{other:?}"),
    }
    // The default database (no prefix) binds at hello too.
    let mut c = WsClient::connect(addr, "/", "hrana3").await;
    assert_eq!(
        c.hello(Some(&s.token(&["default"], true))).await,
        ServerMsg::HelloOk
    );
    c.ok(1, skylite_proto::ws::Request::OpenStream { stream_id: 1 })
        .await;
    assert_eq!(c.query(2, 1, "SELECT 42").await, vec![vec![json!(42)]]);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_with_a_bearer_header_is_checked_up_front() {
    let s = server_with_cold_database().await;
    let addr = s.addr();
    let attempt = |path: &'static str, auth: String| async move {
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", HeaderValue::from_str(&auth).unwrap());
        req.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("hrana3"));
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("{path}: {e}"),
        }
    };
    assert_eq!(attempt("/db/app", bearer("garbage")).await, 401);
    assert_eq!(attempt("/db/app", "Basic eDp5".to_owned()).await, 401);
    assert_eq!(
        attempt("/db/cold", bearer(&s.token(&["app"], false))).await,
        403
    );
    assert_eq!(
        attempt("/db/nope", bearer(&s.token(&["app"], false))).await,
        403
    );
    assert_eq!(
        attempt("/db/nope", bearer(&s.token(&["nope"], false))).await,
        404
    );
    assert_eq!(
        attempt("/db/app", bearer(&s.token(&["app"], false))).await,
        101
    );
    assert_eq!(is_open(&s, "cold").await, Some(false));
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_get_of_the_websocket_route_tells_nothing() {
    let s = server_with_cold_database().await;
    let mut answers = Vec::new();
    for path in ["/", "/db/app/", "/db/cold/", "/db/nope/"] {
        let r = request_with(s.addr(), "GET", path, &[], None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.text().contains("WebSocket"), "{path}: {}", r.text());
        answers.push(r.body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "answers differ");
    assert_eq!(is_open(&s, "cold").await, Some(false));
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_wants_an_admin_token_before_anything_else() {
    let s = server_with_cold_database().await;
    let addr = s.addr();
    let db_token = bearer(&s.token(&["app"], false));
    let routes: [(&str, &str, Option<Value>); 10] = [
        ("GET", "/v1/admin/databases", None),
        ("POST", "/v1/admin/databases", Some(json!({"name": "made"}))),
        ("GET", "/v1/admin/databases/cold", None),
        ("DELETE", "/v1/admin/databases/app", None),
        (
            "POST",
            "/v1/admin/databases/app/fork",
            Some(json!({"to": "made"})),
        ),
        (
            "PUT",
            "/v1/admin/databases/made/import",
            Some(json!("not a database")),
        ),
        ("GET", "/v1/admin/databases/cold/export", None),
        ("GET", "/v1/admin/databases/cold/dump", None),
        ("POST", "/v1/admin/tokens", Some(json!({"db": "app"}))),
        // An invalid name is still a 401/403 first.
        ("GET", "/v1/admin/databases/..%2f..", None),
    ];
    for (method, path, body) in routes {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        let r = request_with(addr, method, path, &[], body.clone()).await;
        assert_refused(&r, 401, "AUTH_JWT_MISSING", &format!("{method} {path}"));
        let r = request_with(addr, method, path, &[("authorization", &db_token)], body).await;
        assert_refused(&r, 403, "AUTH_ADMIN_FORBIDDEN", &format!("{method} {path}"));
    }
    assert!(!s.data_dir().join("made").exists());
    assert_eq!(is_open(&s, "app").await, Some(true), "app was deleted");
    assert_eq!(is_open(&s, "cold").await, Some(false));
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_upgraded_without_a_token_must_say_hello_in_time() {
    let s = AuthServer::start().await;
    let mut c = WsClient::connect(s.addr(), "/db/app", "hrana3").await;
    let started = std::time::Instant::now();
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("hello"), "{reason}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(server_panics(), 0);
}
