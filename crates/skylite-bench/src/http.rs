//! The HTTP side of the benchmark: a minimal keep-alive HTTP/1.1 client ([`Client`], one hyper
//! connection over one TCP stream, sending the run's `Authorization` header on every request
//! when auth is on), the table setup over Hrana, and the load of one cell ([`run_cell`]): one
//! tokio task per connection, each sending pipelines back to back until the cell's time is up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use skylite_proto::{PipelineReqBody, PipelineRespBody};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::server::Target;
use super::stats::{CellStats, WorkerRecord};
use super::workload::{self, Draw, Rng, Workload};

/// Longest wait for one response; a request that takes longer counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a TCP connection and HTTP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One keep-alive HTTP/1.1 connection to the server.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    /// `Bearer <token>`, sent on every request (`None`: auth is off).
    authorization: Option<HeaderValue>,
    driver: JoinHandle<()>,
}

impl Client {
    /// Opens a connection to `target` (TCP_NODELAY, like any latency-minded client).
    pub async fn connect(target: &Target) -> Result<Client, String> {
        let addr = target.addr;
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            tcp.set_nodelay(true)
                .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
            hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| format!("HTTP handshake with {addr} failed: {e}"))
        };
        let (sender, conn) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))??;
        let driver = tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it; the
            // request that was in flight then reports the error.
            let _ = conn.await;
        });
        let host = HeaderValue::from_str(&addr.to_string())
            .map_err(|e| format!("bad host header {addr}: {e}"))?;
        Ok(Client {
            sender,
            host,
            authorization: target.authorization.clone(),
            driver,
        })
    }

    /// Sends one request and reads the whole response body. Errors are transport failures
    /// (the connection is then unusable) or a timeout.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(headers) = req.headers_mut() {
            headers.insert(HOST, self.host.clone());
            if let Some(auth) = &self.authorization {
                headers.insert(AUTHORIZATION, auth.clone());
            }
            if !body.is_empty() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| format!("connection lost: {e}"))?;
            let resp = self
                .sender
                .send_request(req)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the response failed: {e}"))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no response within {} s", REQUEST_TIMEOUT.as_secs()))?
    }

    /// `POST /v2/pipeline` with `body`; returns the parsed response of a 200, an error
    /// otherwise.
    pub async fn pipeline(&mut self, body: Bytes) -> Result<PipelineRespBody, String> {
        let (status, bytes) = self.send(Method::POST, "/v2/pipeline", body).await?;
        parse_pipeline_response(status, &bytes)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Accepts only a 200 whose body is a pipeline response.
fn parse_pipeline_response(status: StatusCode, body: &[u8]) -> Result<PipelineRespBody, String> {
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("HTTP {status}: {text}"));
    }
    serde_json::from_slice(body).map_err(|e| format!("malformed pipeline response: {e}"))
}

/// True once `GET /health` answers 200.
pub async fn is_healthy(target: &Target) -> bool {
    let Ok(mut client) = Client::connect(target).await else {
        return false;
    };
    matches!(
        client.send(Method::GET, "/health", Bytes::new()).await,
        Ok((StatusCode::OK, _))
    )
}

/// Creates and fills the tables on the server.
pub async fn setup(target: &Target, rows: u64) -> Result<(), String> {
    let body = serde_json::to_vec(&PipelineReqBody {
        baton: None,
        requests: workload::setup_requests(rows),
    })
    .map_err(|e| format!("cannot encode the setup request: {e}"))?;
    let mut client = Client::connect(target).await?;
    let resp = client.pipeline(Bytes::from(body)).await?;
    workload::check_setup(&resp.results, rows)
}

/// Loads the server with `workload` over `conns` connections for `duration`.
pub async fn run_cell(
    target: &Target,
    workload: Workload,
    conns: usize,
    duration: Duration,
    rows: u64,
    seed: u64,
) -> Result<CellStats, String> {
    // Connect everybody before the clock starts.
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(Client::connect(target).await?);
    }
    let start = Arc::new(tokio::sync::Barrier::new(conns + 1));
    let mut tasks = Vec::with_capacity(conns);
    for (i, client) in clients.into_iter().enumerate() {
        let start = start.clone();
        let target = target.clone();
        let rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            worker(target, client, workload, duration, rows, rng).await
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut records = Vec::with_capacity(conns);
    for task in tasks {
        records.push(task.await.map_err(|e| format!("HTTP worker failed: {e}"))?);
    }
    Ok(CellStats::from_records(records, began.elapsed()))
}

/// One connection's loop: a pipeline at a time until `duration` has passed.
async fn worker(
    target: Target,
    client: Client,
    workload: Workload,
    duration: Duration,
    rows: u64,
    mut rng: Rng,
) -> WorkerRecord {
    let deadline = Instant::now() + duration;
    let mut record = WorkerRecord::with_capacity(1 << 14);
    let mut client = Some(client);
    let mut buf = Vec::with_capacity(256);
    while Instant::now() < deadline {
        let conn = match client.as_mut() {
            Some(c) => c,
            None => match Client::connect(&target).await {
                Ok(c) => client.insert(c),
                Err(e) => {
                    record.failure(|| e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        buf.clear();
        Draw::new(workload, &mut rng, rows).write_json(&mut buf);
        let body = Bytes::copy_from_slice(&buf);
        let began = Instant::now();
        let outcome = conn.pipeline(body).await;
        let took = began.elapsed();
        match outcome {
            Ok(resp) => match check_response(workload, &resp) {
                Ok(()) => record.success(took),
                Err(e) => record.failure(|| e),
            },
            Err(e) => {
                if conn.sender.is_closed() || e.starts_with("no response") {
                    // The connection is gone or in an unknown state: open a new one.
                    client = None;
                }
                record.failure(|| e);
            }
        }
    }
    record
}

/// The pipeline closed its stream (so the server keeps nothing) and its results are right.
fn check_response(workload: Workload, resp: &PipelineRespBody) -> Result<(), String> {
    if resp.baton.is_some() {
        return Err("the stream was not closed (a baton came back)".into());
    }
    workload::check(workload, &resp.results)
}
