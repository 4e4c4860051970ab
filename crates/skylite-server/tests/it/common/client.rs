//! A tiny real HTTP/1.1 client for the integration tests (hyper 1, one connection per request),
//! plus helpers that build Hrana requests and pick apart responses.
//!
//! Shared by the in-process server tests (`crates/skylite-server/tests`) and the child-process
//! tests (`crates/skylite/tests`, which include this file with `#[path]`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// A whole HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body parsed as JSON (panics with the body text if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response (status {}) is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a fresh connection and reads the whole response.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Resp, String> {
    try_request_with(addr, method, path, &[], body).await
}

/// Like [`try_request`] with extra headers (a `host` given here replaces the default one).
pub async fn try_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Resp, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = hyper::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        builder = builder.header("host", addr.to_string());
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let req = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("build: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Resp {
        status,
        content_type,
        body,
    })
}

/// Like [`try_request`] but panics on transport errors, with a generous overall timeout.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<Vec<u8>>) -> Resp {
    match tokio::time::timeout(
        Duration::from_secs(30),
        try_request(addr, method, path, body),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{method} {path}: {e}"),
        Err(_) => panic!("{method} {path}: no response within 30 s"),
    }
}

/// Like [`request`] with extra headers.
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Resp {
    match tokio::time::timeout(
        Duration::from_secs(30),
        try_request_with(addr, method, path, headers, body),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{method} {path}: {e}"),
        Err(_) => panic!("{method} {path}: no response within 30 s"),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, None).await
}

pub async fn post_raw(addr: SocketAddr, path: &str, body: impl Into<Vec<u8>>) -> Resp {
    request(addr, "POST", path, Some(body.into())).await
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    post_raw(addr, path, serde_json::to_vec(body).unwrap()).await
}

/// `POST {path}` (`/v2/pipeline` or `/v3/pipeline`) -> (status, body).
pub async fn pipeline_at(
    addr: SocketAddr,
    path: &str,
    baton: Option<&str>,
    requests: Value,
) -> (u16, Value) {
    let r = post_json(addr, path, &json!({"baton": baton, "requests": requests})).await;
    let status = r.status;
    (status, r.json())
}

/// `POST /v3/pipeline` -> (status, body).
pub async fn pipeline(addr: SocketAddr, baton: Option<&str>, requests: Value) -> (u16, Value) {
    pipeline_at(addr, "/v3/pipeline", baton, requests).await
}

/// `POST /v3/cursor` -> (status, content type, NDJSON lines parsed).
pub async fn cursor(addr: SocketAddr, baton: Option<&str>, batch: Value) -> (u16, Vec<Value>) {
    let r = post_json(addr, "/v3/cursor", &json!({"baton": baton, "batch": batch})).await;
    if r.status != 200 {
        return (r.status, vec![r.json()]);
    }
    let text = r.text();
    assert!(
        text.ends_with('\n'),
        "cursor output must end with a newline"
    );
    let lines = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("cursor line {l:?} is not JSON: {e}"))
        })
        .collect();
    (r.status, lines)
}

// ---- building requests ----

pub fn stmt(sql: &str) -> Value {
    json!({"sql": sql})
}

pub fn stmt_args(sql: &str, args: Value) -> Value {
    json!({"sql": sql, "args": args})
}

pub fn execute(sql: &str) -> Value {
    json!({"type": "execute", "stmt": stmt(sql)})
}

pub fn execute_args(sql: &str, args: Value) -> Value {
    json!({"type": "execute", "stmt": stmt_args(sql, args)})
}

pub fn close() -> Value {
    json!({"type": "close"})
}

pub fn int(i: i64) -> Value {
    json!({"type": "integer", "value": i.to_string()})
}

pub fn text(s: &str) -> Value {
    json!({"type": "text", "value": s})
}

pub fn float(f: f64) -> Value {
    json!({"type": "float", "value": f})
}

pub fn nul() -> Value {
    json!({"type": "null"})
}

// ---- reading responses ----

/// The `response` of result `i`, asserting it is `ok`.
pub fn ok_at(body: &Value, i: usize) -> &Value {
    let r = &body["results"][i];
    assert_eq!(r["type"], "ok", "result {i} is not ok: {body:#}");
    &r["response"]
}

/// The `error` of result `i`, asserting it is an error.
pub fn err_at(body: &Value, i: usize) -> &Value {
    let r = &body["results"][i];
    assert_eq!(r["type"], "error", "result {i} is not an error: {body:#}");
    &r["error"]
}

/// The statement result of an `execute` at `i`.
pub fn exec_result(body: &Value, i: usize) -> &Value {
    let resp = ok_at(body, i);
    assert_eq!(resp["type"], "execute", "{body:#}");
    &resp["result"]
}

/// Decodes a Hrana value to a plain JSON value (integers become numbers, blobs strings).
pub fn plain(v: &Value) -> Value {
    match v["type"].as_str().unwrap() {
        "null" => Value::Null,
        "integer" => json!(v["value"].as_str().unwrap().parse::<i64>().unwrap()),
        "float" => v["value"].clone(),
        "text" => v["value"].clone(),
        "blob" => v["base64"].clone(),
        other => panic!("unknown value type {other}"),
    }
}

/// The rows of a statement result as plain values.
pub fn rows(result: &Value) -> Vec<Vec<Value>> {
    result["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {result:#}"))
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(plain).collect())
        .collect()
}

/// A Hrana stream seen from the client: remembers the baton between pipelines.
pub struct Stream {
    pub addr: SocketAddr,
    pub path: String,
    pub baton: Option<String>,
}

impl Stream {
    pub fn new(addr: SocketAddr) -> Self {
        Stream {
            addr,
            path: "/v3/pipeline".into(),
            baton: None,
        }
    }

    pub fn v2(addr: SocketAddr) -> Self {
        Stream {
            addr,
            path: "/v2/pipeline".into(),
            baton: None,
        }
    }

    /// Sends a pipeline, asserts HTTP 200 and keeps the new baton.
    pub async fn send(&mut self, requests: Value) -> Value {
        let (status, body) =
            pipeline_at(self.addr, &self.path, self.baton.as_deref(), requests).await;
        assert_eq!(status, 200, "pipeline failed: {body:#}");
        self.baton = body["baton"].as_str().map(str::to_owned);
        body
    }

    /// Executes one statement; Ok(result) or Err(error object).
    pub async fn exec(&mut self, sql: &str) -> Result<Value, Value> {
        self.exec_args(sql, json!([])).await
    }

    pub async fn exec_args(&mut self, sql: &str, args: Value) -> Result<Value, Value> {
        let body = self.send(json!([execute_args(sql, args)])).await;
        let r = &body["results"][0];
        if r["type"] == "ok" {
            Ok(r["response"]["result"].clone())
        } else {
            Err(r["error"].clone())
        }
    }

    /// Executes and asserts success.
    pub async fn ok(&mut self, sql: &str) -> Value {
        match self.exec(sql).await {
            Ok(r) => r,
            Err(e) => panic!("{sql}: {e:#}"),
        }
    }

    /// Executes and asserts failure with `code`; returns the message.
    pub async fn fails(&mut self, sql: &str, code: &str) -> String {
        match self.exec(sql).await {
            Ok(r) => panic!("{sql} should fail with {code}, got {r:#}"),
            Err(e) => {
                assert_eq!(e["code"], code, "{sql}: {e:#}");
                e["message"].as_str().unwrap().to_owned()
            }
        }
    }
}

/// Runs one statement on a fresh stream (execute + close) and returns its result.
pub async fn query(addr: SocketAddr, sql: &str) -> Value {
    let (status, body) = pipeline(addr, None, json!([execute(sql), close()])).await;
    assert_eq!(status, 200, "{sql}: {body:#}");
    exec_result(&body, 0).clone()
}

/// `SELECT count(*)`-style single integer.
pub async fn scalar_i64(addr: SocketAddr, sql: &str) -> i64 {
    let r = query(addr, sql).await;
    rows(&r)[0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("{sql}: {r:#}"))
}

/// An admin API call with an optional JSON body: the status and the JSON answer.
pub async fn admin_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let r = request(
        addr,
        method,
        path,
        body.map(|b| serde_json::to_vec(&b).unwrap()),
    )
    .await;
    (r.status, r.json())
}

/// Runs one statement on database `db` in a fresh stream (`execute` + `close`) and returns its
/// result entry; the pipeline itself must answer 200.
pub async fn run_on(addr: SocketAddr, db: &str, sql: &str) -> Value {
    let (status, body) = pipeline_at(
        addr,
        &format!("/db/{db}/v3/pipeline"),
        None,
        serde_json::json!([execute(sql), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["results"][0].clone()
}
