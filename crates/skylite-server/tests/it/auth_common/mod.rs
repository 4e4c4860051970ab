//! Shared by the security matrix (`auth_matrix.rs`, `auth_ws.rs`): a server with auth on, tokens
//! of every kind (minted with the `skylite-auth` API, or forged by hand for the attacks), every
//! SQL endpoint behind one function that normalises its answer, and a small Hrana WebSocket
//! client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use skylite_auth::{mint, Claims, SigningKey, TokenSpec};
use skylite_proto::ws::{ClientMsg, Request, Response, ServerMsg};
use skylite_proto::{protobuf, PipelineReqBody, PipelineRespBody, Stmt, StreamRequest};
use skylite_server::ServerConfig;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{plain, request_with, Resp, TestServer};

/// A server with auth on (the harness turns it off by default), the key it trusts, and the
/// databases `app` and `other` (made through the admin API with an admin token), each with a
/// table `t(x)` holding the rows 1 and 2.
pub struct AuthServer {
    pub server: TestServer,
    pub key: SigningKey,
}

impl AuthServer {
    pub async fn start() -> AuthServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> AuthServer {
        let server = TestServer::start_with(|c| {
            c.auth.disabled = false;
            tweak(c);
        })
        .await;
        let key = server
            .app
            .auth
            .keypair()
            .expect("auth is on: the data folder has a key pair")
            .signing
            .clone();
        let s = AuthServer { server, key };
        let admin = s.admin();
        for db in ["app", "other"] {
            let r = request_with(
                s.addr(),
                "POST",
                "/v1/admin/databases",
                &[("authorization", &bearer(&admin))],
                Some(serde_json::to_vec(&json!({ "name": db })).unwrap()),
            )
            .await;
            assert_eq!(r.status, 201, "create {db}: {}", r.text());
            let full = s.token(&[db], false);
            for sql in ["CREATE TABLE t(x)", "INSERT INTO t VALUES (1), (2)"] {
                match run_sql(s.addr(), Ep::V3, Some(db), Some(&bearer(&full)), sql).await {
                    Outcome::Rows(_) => {}
                    other => panic!("{db}: {sql}: {other:?}"),
                }
            }
        }
        s
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn data_dir(&self) -> PathBuf {
        self.server.data_dir()
    }

    /// A token minted by `skylite token create --db ... [--read-only]`, without expiry.
    pub fn token(&self, dbs: &[&str], read_only: bool) -> String {
        mint(
            &self.key,
            &TokenSpec {
                databases: dbs.iter().map(|d| d.to_string()).collect(),
                read_only,
                admin: false,
                lifetime: None,
            },
        )
        .expect("mint")
        .0
    }

    /// An admin token (`skylite token create --admin`).
    pub fn admin(&self) -> String {
        mint(
            &self.key,
            &TokenSpec {
                admin: true,
                ..TokenSpec::default()
            },
        )
        .expect("mint")
        .0
    }

    /// A token with exactly these claims, signed with the server's key.
    pub fn signed(&self, claims: Value) -> String {
        sign_claims(&self.key, claims)
    }
}

/// Signs arbitrary claims (they must parse as [`Claims`]) with `key`.
pub fn sign_claims(key: &SigningKey, claims: Value) -> String {
    let claims: Claims = serde_json::from_value(claims).expect("claims parse");
    skylite_auth::sign(key, &claims)
}

/// A token whose header says `alg` and whose signature is `signature` (already base64url).
pub fn forged(header: Value, claims: &Value, signature: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The classic algorithm-confusion forgery: HS256 with the server's *public* key as the HMAC
/// secret.
pub fn hs256_with(secret: &[u8], claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    let sig = mac.finalize().into_bytes();
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn now() -> i64 {
    skylite_auth::now_unix()
}

/// An HTTP endpoint that runs SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ep {
    /// `POST /` with `{"statements": [...]}`.
    Legacy,
    V1Execute,
    V1Batch,
    V2,
    V3,
    Cursor,
    Protobuf,
}

pub const HTTP_EPS: [Ep; 7] = [
    Ep::Legacy,
    Ep::V1Execute,
    Ep::V1Batch,
    Ep::V2,
    Ep::V3,
    Ep::Cursor,
    Ep::Protobuf,
];

impl Ep {
    pub fn path(self) -> &'static str {
        match self {
            Ep::Legacy => "/",
            Ep::V1Execute => "/v1/execute",
            Ep::V1Batch => "/v1/batch",
            Ep::V2 => "/v2/pipeline",
            Ep::V3 => "/v3/pipeline",
            Ep::Cursor => "/v3/cursor",
            Ep::Protobuf => "/v3-protobuf/pipeline",
        }
    }

    /// The body that runs `sql` once.
    pub fn body(self, sql: &str) -> Vec<u8> {
        let stmt = json!({ "sql": sql });
        let v = match self {
            Ep::Legacy => json!({ "statements": [sql] }),
            Ep::V1Execute => json!({ "stmt": stmt }),
            Ep::V1Batch => json!({ "batch": { "steps": [{ "stmt": stmt }] } }),
            Ep::V2 | Ep::V3 => json!({
                "baton": null,
                "requests": [{ "type": "execute", "stmt": stmt }, { "type": "close" }],
            }),
            Ep::Cursor => json!({ "baton": null, "batch": { "steps": [{ "stmt": stmt }] } }),
            Ep::Protobuf => {
                return protobuf::encode(PipelineReqBody {
                    baton: None,
                    requests: vec![
                        StreamRequest::Execute {
                            stmt: Stmt::new(sql),
                        },
                        StreamRequest::Close,
                    ],
                })
            }
        };
        serde_json::to_vec(&v).unwrap()
    }
}

/// What running one statement through an endpoint gave, whatever the endpoint's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Refused at the HTTP level (checked: `application/json` body with `message` and `code`).
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The statement ran; its rows as plain JSON values.
    Rows(Vec<Vec<Value>>),
    /// The statement failed (legacy `POST /` gives no code).
    SqlError {
        code: Option<String>,
        message: String,
    },
}

impl Outcome {
    /// Asserts a refusal with `status` and `code`; returns the message.
    #[track_caller]
    pub fn refused(&self, status: u16, code: &str) -> &str {
        match self {
            Outcome::Refused {
                status: s,
                code: c,
                message,
            } if *s == status && c == code => message,
            other => panic!("expected {status} {code}, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn rows(&self) -> &Vec<Vec<Value>> {
        match self {
            Outcome::Rows(r) => r,
            other => panic!("expected rows, got {other:?}"),
        }
    }

    /// Asserts an SQL error that says the token is read-only.
    #[track_caller]
    pub fn read_only_refusal(&self) {
        match self {
            Outcome::SqlError { code, message }
                if message.contains("read-only")
                    && matches!(
                        code.as_deref(),
                        None | Some("SQLITE_READONLY" | "SQLITE_AUTH")
                    ) => {}
            other => panic!("expected a read-only refusal, got {other:?}"),
        }
    }
}

/// Checks that a non-2xx answer is the JSON error shape, and reads it.
#[track_caller]
pub fn http_error(r: &Resp) -> (u16, String, String) {
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/json"),
        "status {} body {}",
        r.status,
        r.text()
    );
    let v = r.json();
    // Auth refusals carry `error`, never `message`: real clients classify a body with
    // `message` as a protocol error and lose the HTTP status.
    let field = if r.status == 401 || r.status == 403 {
        assert!(
            v.get("message").is_none(),
            "auth refusal with `message`: {v}"
        );
        "error"
    } else {
        "message"
    };
    let message = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}: {v}"))
        .to_owned();
    let code = v["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code: {v}"))
        .to_owned();
    assert!(!message.is_empty(), "{v}");
    (r.status, code, message)
}

fn rows_of(result: &Value) -> Vec<Vec<Value>> {
    result["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {result}"))
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(plain).collect())
        .collect()
}

fn hrana_error(e: &Value) -> Outcome {
    Outcome::SqlError {
        code: e["code"].as_str().map(str::to_owned),
        message: e["message"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Runs `sql` once through `ep` on database `db` (`None`: no prefix, `default`) with the given
/// `Authorization` header value, and normalises the answer.
pub async fn run_sql(
    addr: SocketAddr,
    ep: Ep,
    db: Option<&str>,
    auth: Option<&str>,
    sql: &str,
) -> Outcome {
    let path = match db {
        Some(db) => format!("/db/{db}{}", ep.path()),
        None => ep.path().to_owned(),
    };
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    let r = request_with(addr, "POST", &path, &headers, Some(ep.body(sql))).await;
    outcome(ep, &r)
}

/// Normalises one endpoint's answer.
pub fn outcome(ep: Ep, r: &Resp) -> Outcome {
    if r.status != 200 {
        let (status, code, message) = http_error(r);
        if ep == Ep::V1Execute && status == 400 && code.starts_with("SQLITE_") {
            return Outcome::SqlError {
                code: Some(code),
                message,
            };
        }
        return Outcome::Refused {
            status,
            code,
            message,
        };
    }
    match ep {
        Ep::Legacy => {
            let v = r.json();
            let first = &v[0];
            if let Some(e) = first["error"].as_str() {
                return Outcome::SqlError {
                    code: None,
                    message: e.to_owned(),
                };
            }
            let rows = first["results"]["rows"]
                .as_array()
                .unwrap_or_else(|| panic!("legacy answer: {v}"))
                .iter()
                .map(|row| row.as_array().unwrap().clone())
                .collect();
            Outcome::Rows(rows)
        }
        Ep::V1Execute => Outcome::Rows(rows_of(&r.json()["result"])),
        Ep::V1Batch => {
            let v = r.json();
            let res = &v["result"];
            if !res["step_errors"][0].is_null() {
                return hrana_error(&res["step_errors"][0]);
            }
            Outcome::Rows(rows_of(&res["step_results"][0]))
        }
        Ep::V2 | Ep::V3 => {
            let v = r.json();
            let first = &v["results"][0];
            match first["type"].as_str() {
                Some("ok") => Outcome::Rows(rows_of(&first["response"]["result"])),
                Some("error") => hrana_error(&first["error"]),
                _ => panic!("pipeline answer: {v}"),
            }
        }
        Ep::Cursor => {
            let text = r.text();
            let mut rows = Vec::new();
            for line in text.lines().skip(1) {
                let e: Value = serde_json::from_str(line).unwrap();
                match e["type"].as_str() {
                    Some("row") => rows.push(
                        e["row"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(plain)
                            .collect::<Vec<_>>(),
                    ),
                    Some("step_error") | Some("error") => return hrana_error(&e["error"]),
                    _ => {}
                }
            }
            Outcome::Rows(rows)
        }
        Ep::Protobuf => {
            assert_eq!(
                r.content_type.as_deref(),
                Some("application/x-protobuf"),
                "protobuf success content type"
            );
            let body: PipelineRespBody = protobuf::decode(&r.body).expect("protobuf answer");
            let first = serde_json::to_value(&body.results[0]).unwrap();
            match first["type"].as_str() {
                Some("ok") => Outcome::Rows(rows_of(&first["response"]["result"])),
                Some("error") => hrana_error(&first["error"]),
                _ => panic!("protobuf answer: {first}"),
            }
        }
    }
}

/// Every file and folder under `root` (relative paths), sorted; WAL/SHM files left out since
/// SQLite makes and removes them as it pleases.
pub fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel.ends_with("-wal") || rel.ends_with("-shm") || rel.ends_with("-journal") {
                continue;
            }
            out.push(rel);
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

// ---- WebSocket ----

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A Hrana WebSocket client.
pub struct WsClient {
    ws: Socket,
    protobuf: bool,
}

/// How a WebSocket exchange ended when it was not a message.
#[derive(Debug, PartialEq)]
pub enum WsEnd {
    Close(u16, String),
    Gone,
}

impl WsClient {
    /// Connects to `path` (`/`, `/db/app`) offering `proto` (`hrana3`, `hrana3-protobuf`).
    pub async fn connect(addr: SocketAddr, path: &str, proto: &str) -> WsClient {
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(proto).unwrap(),
        );
        let (ws, resp) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .expect("connect within 20 s")
        .unwrap_or_else(|e| panic!("connect {path}: {e}"));
        let chosen = resp
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(chosen.as_deref(), Some(proto));
        WsClient {
            ws,
            protobuf: proto == "hrana3-protobuf",
        }
    }

    pub async fn send(&mut self, msg: ClientMsg) {
        let frame = if self.protobuf {
            Message::Binary(protobuf::encode(msg).into())
        } else {
            Message::Text(serde_json::to_string(&msg).unwrap().into())
        };
        self.ws.send(frame).await.expect("send");
    }

    /// The next message, or how the socket ended.
    pub async fn next(&mut self) -> Result<ServerMsg, WsEnd> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("a frame within 20 s");
            return match frame {
                Some(Ok(Message::Text(t))) => {
                    assert!(!self.protobuf, "text frame on protobuf");
                    Ok(serde_json::from_str(t.as_str()).expect("server JSON"))
                }
                Some(Ok(Message::Binary(b))) => {
                    assert!(self.protobuf, "binary frame on JSON");
                    Ok(protobuf::decode(&b).expect("server protobuf"))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(Some(f)))) => {
                    Err(WsEnd::Close(f.code.into(), f.reason.to_string()))
                }
                Some(Ok(Message::Close(None))) | Some(Err(_)) | None => Err(WsEnd::Gone),
            };
        }
    }

    pub async fn recv(&mut self) -> ServerMsg {
        match self.next().await {
            Ok(m) => m,
            Err(end) => panic!("socket ended: {end:?}"),
        }
    }

    pub async fn hello(&mut self, jwt: Option<&str>) -> ServerMsg {
        self.send(ClientMsg::Hello {
            jwt: jwt.map(str::to_owned),
        })
        .await;
        self.recv().await
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&mut self, request_id: i32, request: Request) -> ServerMsg {
        self.send(ClientMsg::Request {
            request_id,
            request,
        })
        .await;
        self.recv().await
    }

    /// `call` that must succeed.
    pub async fn ok(&mut self, request_id: i32, request: Request) -> Response {
        match self.call(request_id, request.clone()).await {
            ServerMsg::ResponseOk {
                request_id: id,
                response,
            } if id == request_id => response,
            other => panic!("{request:?} failed: {other:?}"),
        }
    }

    /// `call` that must fail; returns the error.
    pub async fn err(&mut self, request_id: i32, request: Request) -> skylite_proto::Error {
        match self.call(request_id, request.clone()).await {
            ServerMsg::ResponseError {
                request_id: id,
                error,
            } if id == request_id => error,
            other => panic!("{request:?} should fail: {other:?}"),
        }
    }

    /// Executes on `stream_id`; the rows as plain JSON values.
    pub async fn query(&mut self, request_id: i32, stream_id: i32, sql: &str) -> Vec<Vec<Value>> {
        match self.ok(request_id, ws_exec(stream_id, sql)).await {
            Response::Execute { result } => rows_of(&serde_json::to_value(&result).unwrap()),
            other => panic!("{sql}: {other:?}"),
        }
    }

    /// Waits for the server's close frame.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.next().await {
                Ok(_) => continue,
                Err(WsEnd::Close(code, reason)) => return (code, reason),
                Err(WsEnd::Gone) => panic!("closed without a close frame"),
            }
        }
    }
}

pub fn ws_exec(stream_id: i32, sql: &str) -> Request {
    Request::Execute {
        stream_id,
        stmt: Stmt::new(sql),
    }
}
