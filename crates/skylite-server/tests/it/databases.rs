//! Many databases on one server: every way of naming a database (path prefixes `/db/<name>`
//! and `/dev/<name>`, the `x-namespace` header, the `Host` subdomain) reaches the right one on
//! every route (Hrana HTTP v2/v3, cursors, Protobuf, legacy `POST /` and `/v1/*`, WebSocket),
//! data stays separate, batons do not cross databases, precedence between the ways, bad names
//! refused without touching the file system, unknown databases answered with 404.

use crate::common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use skylite_proto::protobuf;
use skylite_proto::{PipelineReqBody, PipelineRespBody, Stmt, StreamRequest};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

async fn create_db(server: &TestServer, name: &str) {
    let r = post_json(server.addr, "/v1/admin/databases", &json!({ "name": name })).await;
    assert_eq!(r.status, 201, "create {name}: {}", r.text());
}

/// Runs `requests` as one pipeline at `path` with extra headers.
async fn pipeline_with(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    baton: Option<&str>,
    requests: Value,
) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({ "baton": baton, "requests": requests })).unwrap();
    let r = request_with(server.addr, "POST", path, headers, Some(body)).await;
    (r.status, r.json())
}

/// Inserts `tag` into table `t` through a pipeline at `path` with `headers`.
async fn insert_via(server: &TestServer, path: &str, headers: &[(&str, &str)], tag: &str) {
    let (status, body) = pipeline_with(
        server,
        path,
        headers,
        None,
        json!([
            execute_args("INSERT INTO t(tag) VALUES (?)", json!([text(tag)])),
            close()
        ]),
    )
    .await;
    assert_eq!(status, 200, "{tag} via {path} {headers:?}: {body:#}");
    assert_eq!(body["results"][0]["type"], "ok", "{tag}: {body:#}");
}

/// The tags in table `t` of the database reached by `path`.
async fn tags_at(server: &TestServer, path: &str) -> Vec<String> {
    let (status, body) = pipeline_with(
        server,
        path,
        &[],
        None,
        json!([execute("SELECT tag FROM t ORDER BY tag"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    let result = exec_result(&body, 0);
    rows(result)
        .into_iter()
        .map(|r| r[0].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs one statement over WebSocket (hrana3, JSON) at `path`; returns the response message.
async fn ws_execute(server: &TestServer, path: &str, sql: &str) -> Value {
    let mut req = format!("ws://{}{}", server.addr, path)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("hrana3"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_or_else(|e| panic!("ws connect {path}: {e}"));
    let msgs = [
        json!({"type": "hello", "jwt": null}),
        json!({"type": "request", "request_id": 1, "request": {"type": "open_stream", "stream_id": 1}}),
        json!({"type": "request", "request_id": 2, "request": {"type": "execute", "stream_id": 1, "stmt": {"sql": sql, "want_rows": true}}}),
    ];
    for m in msgs {
        ws.send(Message::Text(m.to_string().into())).await.unwrap();
    }
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message within 20 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["request_id"] == 2 {
                let _ = ws.close(None).await;
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_and_every_route_reaches_the_named_database() {
    let server = TestServer::start().await;
    create_db(&server, "app").await;
    let schema = json!([execute("CREATE TABLE t(tag TEXT)"), close()]);
    for path in ["/v2/pipeline", "/db/app/v2/pipeline"] {
        let (status, body) = pipeline_with(&server, path, &[], None, schema.clone()).await;
        assert_eq!(status, 200, "{body:#}");
    }
    let host_sub = format!("app.localhost:{}", server.addr.port());

    // Hrana over HTTP, JSON, under each prefix and via header and Host.
    insert_via(&server, "/db/app/v2/pipeline", &[], "db-v2").await;
    insert_via(&server, "/db/app/v3/pipeline", &[], "db-v3").await;
    insert_via(&server, "/dev/app/v3/pipeline", &[], "dev-v3").await;
    insert_via(&server, "/db/app//v3/pipeline", &[], "db-double-slash").await;
    insert_via(&server, "/v3/pipeline", &[("x-namespace", "app")], "header").await;
    insert_via(
        &server,
        "/v2/pipeline",
        &[("host", "app.example.com")],
        "host",
    )
    .await;
    insert_via(
        &server,
        "/v2/pipeline",
        &[("host", &host_sub)],
        "localhost-sub",
    )
    .await;

    // Cursor.
    let body = json!({"baton": null, "batch": {"steps": [
        {"stmt": {"sql": "INSERT INTO t(tag) VALUES ('cursor')"}}]}});
    let r = post_json(server.addr, "/db/app/v3/cursor", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("\"error\""), "{}", r.text());

    // Protobuf.
    let pb = PipelineReqBody {
        baton: None,
        requests: vec![
            StreamRequest::Execute {
                stmt: Stmt::new("INSERT INTO t(tag) VALUES ('protobuf')"),
            },
            StreamRequest::Close,
        ],
    };
    let r = post_raw(
        server.addr,
        "/dev/app/v3-protobuf/pipeline",
        protobuf::encode(pb),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let resp: PipelineRespBody = protobuf::decode(&r.body).unwrap();
    assert!(
        matches!(resp.results[0], skylite_proto::StreamResult::Ok { .. }),
        "{:?}",
        resp.results
    );

    // Legacy APIs.
    let r = post_json(
        server.addr,
        "/db/app",
        &json!({"statements": ["INSERT INTO t(tag) VALUES ('legacy-v0')"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(
        server.addr,
        "/db/app/v1/execute",
        &json!({"stmt": {"sql": "INSERT INTO t(tag) VALUES ('legacy-execute')"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(
        server.addr,
        "/dev/app/v1/batch",
        &json!({"batch": {"steps": [{"stmt": {"sql": "INSERT INTO t(tag) VALUES ('legacy-batch')"}}]}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // WebSocket, with and without a trailing slash.
    for (path, tag) in [("/db/app", "ws"), ("/dev/app/", "ws-dev")] {
        let v = ws_execute(
            &server,
            path,
            &format!("INSERT INTO t(tag) VALUES ('{tag}')"),
        )
        .await;
        assert_eq!(v["type"], "response_ok", "{v:#}");
    }

    let mut expected = vec![
        "cursor",
        "db-double-slash",
        "db-v2",
        "db-v3",
        "dev-v3",
        "header",
        "host",
        "legacy-batch",
        "legacy-execute",
        "legacy-v0",
        "localhost-sub",
        "protobuf",
        "ws",
        "ws-dev",
    ];
    expected.sort();
    assert_eq!(tags_at(&server, "/db/app/v3/pipeline").await, expected);
    // The default database got none of it.
    assert!(tags_at(&server, "/v3/pipeline").await.is_empty());
    assert!(tags_at(&server, "/db/default/v3/pipeline").await.is_empty());
    // And its own writes stay there.
    insert_via(&server, "/v2/pipeline", &[], "in-default").await;
    let v = ws_execute(&server, "/", "SELECT count(*) FROM t").await;
    assert_eq!(v["response"]["result"]["rows"][0][0]["value"], "1", "{v:#}");
    assert!(!tags_at(&server, "/db/app/v3/pipeline")
        .await
        .contains(&"in-default".to_owned()));
    assert_eq!(server_panics(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_is_path_then_header_then_host_then_default() {
    let server = TestServer::start().await;
    for name in ["p", "h", "s"] {
        create_db(&server, name).await;
        let (status, _) = pipeline_with(
            &server,
            &format!("/db/{name}/v2/pipeline"),
            &[],
            None,
            json!([execute("CREATE TABLE t(tag TEXT)"), close()]),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = pipeline_with(
        &server,
        "/v2/pipeline",
        &[],
        None,
        json!([execute("CREATE TABLE t(tag TEXT)"), close()]),
    )
    .await;
    assert_eq!(status, 200);
    let all = [("x-namespace", "h"), ("host", "s.example.com")];
    insert_via(&server, "/db/p/v2/pipeline", &all, "path-wins").await;
    insert_via(&server, "/v2/pipeline", &all, "header-wins").await;
    insert_via(&server, "/v2/pipeline", &all[1..], "host-wins").await;
    // A Host label that names no database, or is not a valid name, falls through to default.
    insert_via(
        &server,
        "/v2/pipeline",
        &[("host", "nosuch.example.com")],
        "unknown-host",
    )
    .await;
    insert_via(
        &server,
        "/v2/pipeline",
        &[("host", "Bad_Label!.example.com")],
        "bad-host",
    )
    .await;
    // ... and does not break a request naming its database another way.
    insert_via(
        &server,
        "/v2/pipeline",
        &[("host", "nosuch.example.com"), ("x-namespace", "h")],
        "header-despite-host",
    )
    .await;
    // IP addresses and bare localhost never carry a database.
    insert_via(&server, "/v2/pipeline", &[("host", "127.0.0.1:9")], "ip").await;
    insert_via(
        &server,
        "/v2/pipeline",
        &[("host", "localhost")],
        "localhost",
    )
    .await;

    assert_eq!(tags_at(&server, "/db/p/v2/pipeline").await, ["path-wins"]);
    assert_eq!(
        tags_at(&server, "/db/h/v2/pipeline").await,
        ["header-despite-host", "header-wins"]
    );
    assert_eq!(tags_at(&server, "/db/s/v2/pipeline").await, ["host-wins"]);
    assert_eq!(
        tags_at(&server, "/v2/pipeline").await,
        ["bad-host", "ip", "localhost", "unknown-host"]
    );
    // A database created after a Host lookup missed is found from then on.
    create_db(&server, "nosuch").await;
    let (status, _) = pipeline_with(
        &server,
        "/v2/pipeline",
        &[("host", "nosuch.example.com")],
        None,
        json!([execute("CREATE TABLE t(tag TEXT)"), close()]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(tags_at(&server, "/db/nosuch/v2/pipeline").await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batons_do_not_cross_databases() {
    let server = TestServer::start().await;
    create_db(&server, "one").await;
    let (status, body) = pipeline_with(
        &server,
        "/db/one/v3/pipeline",
        &[],
        None,
        json!([execute("SELECT 1")]),
    )
    .await;
    assert_eq!(status, 200);
    let baton = body["baton"].as_str().unwrap().to_owned();
    for (path, headers) in [
        ("/v3/pipeline", vec![]),
        ("/v3/pipeline", vec![("x-namespace", "default")]),
    ] {
        let (status, body) = pipeline_with(
            &server,
            path,
            &headers,
            Some(&baton),
            json!([execute("SELECT 1")]),
        )
        .await;
        assert_eq!(status, 400, "{body:#}");
        assert_eq!(body["code"], "BATON_INVALID", "{body:#}");
    }
    // Still good on its own database.
    let (status, body) = pipeline_with(
        &server,
        "/v3/pipeline",
        &[("x-namespace", "one")],
        Some(&baton),
        json!([execute("SELECT 1"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    server.stop().await;
}

/// Every file and folder under `root`, relative.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_and_never_touch_the_disk() {
    let server = TestServer::start().await;
    let root = server.dir.path().to_path_buf();
    let outside = root.parent().unwrap().to_path_buf();
    let before = tree(&root);
    let long = "a".repeat(64);
    let bad_paths = [
        "/db/../v2/pipeline".to_owned(),
        "/db/%2e%2e/v2/pipeline".to_owned(),
        "/dev/%2E%2E/v2/pipeline".to_owned(),
        "/db/a%2Fb/v2/pipeline".to_owned(),
        "/db/App/v2/pipeline".to_owned(),
        "/db/.skylite/v2/pipeline".to_owned(),
        format!("/db/{long}/v2/pipeline"),
        "/db/caf%C3%A9/v2/pipeline".to_owned(),
        "/db/".to_owned(),
    ];
    for path in &bad_paths {
        let (status, body) = pipeline_with(
            &server,
            path,
            &[],
            None,
            json!([execute("CREATE TABLE x(a)")]),
        )
        .await;
        assert_eq!(status, 400, "{path}: {body:#}");
        assert_eq!(body["code"], "INVALID_DATABASE_NAME", "{path}: {body:#}");
    }
    for name in [
        "..",
        "a/b",
        "../x",
        "",
        "App",
        "%2e%2e",
        ".skylite",
        long.as_str(),
        "a b",
    ] {
        let (status, body) = pipeline_with(
            &server,
            "/v2/pipeline",
            &[("x-namespace", name)],
            None,
            json!([execute("CREATE TABLE x(a)")]),
        )
        .await;
        assert_eq!(status, 400, "header {name:?}: {body:#}");
        assert_eq!(body["code"], "INVALID_DATABASE_NAME");
        let r = post_json(server.addr, "/v1/admin/databases", &json!({ "name": name })).await;
        assert_eq!(r.status, 400, "create {name:?}: {}", r.text());
        assert_eq!(r.json()["code"], "INVALID_DATABASE_NAME");
    }
    for path in ["%2e%2e", "..%2F..%2Fetc", "App", "a%2Fb"] {
        let r = request(
            server.addr,
            "GET",
            &format!("/v1/admin/databases/{path}"),
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let r = request(
            server.addr,
            "DELETE",
            &format!("/v1/admin/databases/{path}"),
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    let r = post_json(
        server.addr,
        "/v1/admin/databases/default/fork",
        &json!({"to": "../escape"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // A bad WebSocket path is refused before the upgrade.
    let req = format!("ws://{}/db/..", server.addr)
        .into_client_request()
        .unwrap();
    assert!(tokio_tungstenite::connect_async(req).await.is_err());

    assert_eq!(tree(&root), before, "files appeared in the data folder");
    for name in ["x", "escape", "etc", "App", "a"] {
        assert!(
            !outside.join(name).join("data.db").exists(),
            "{name} appeared outside"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_databases_are_404_and_not_created() {
    let server = TestServer::start().await;
    for (path, headers) in [
        ("/db/nope/v2/pipeline", vec![]),
        ("/dev/nope/v3/pipeline", vec![]),
        ("/v2/pipeline", vec![("x-namespace", "nope")]),
        ("/db/nope/v1/execute", vec![]),
    ] {
        let (status, body) =
            pipeline_with(&server, path, &headers, None, json!([execute("SELECT 1")])).await;
        assert_eq!(status, 404, "{path}: {body:#}");
        assert_eq!(body["code"], "DATABASE_NOT_FOUND", "{body:#}");
        assert!(body["message"].as_str().unwrap().contains("nope"));
    }
    let r = post_json(
        server.addr,
        "/db/nope",
        &json!({"statements": ["SELECT 1"]}),
    )
    .await;
    assert_eq!(r.status, 404);
    let req = format!("ws://{}/db/nope", server.addr)
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 404)
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    assert!(!server.data_dir().join("nope").exists());
    server.stop().await;
}
