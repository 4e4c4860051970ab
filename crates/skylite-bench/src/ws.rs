//! The WebSocket side of the benchmark: a minimal Hrana over WebSocket client ([`Client`]: one
//! socket with subprotocol `hrana3` in JSON, `hello` with the run's token when auth is on, one
//! stream opened once) and the load of
//! one cell ([`run_cell`]): one tokio task per socket, each sending one request on its stream
//! and waiting for its response before the next, until the cell's time is up.
//!
//! Unlike the HTTP side, a request here is not a pipeline on a new stream: the stream lives as
//! long as the socket, so a request is one `execute` or `batch` message and its response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use skylite_proto::ws::{Response, ServerMsg};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::http::REQUEST_TIMEOUT;
use super::server::Target;
use super::stats::{CellStats, WorkerRecord};
use super::workload::{self, Draw, Rng, Workload};

/// The subprotocol the client asks for: Hrana 3 in JSON text frames.
const SUBPROTOCOL: &str = "hrana3";
/// The id of the one stream each socket opens.
const STREAM_ID: i32 = 1;
/// Longest wait for TCP, the upgrade, `hello_ok` and the opened stream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the closing handshake when a worker is done.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// One Hrana over WebSocket connection with one open stream.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    /// The id of the next request (ids of answered requests are reused after wrapping).
    next_id: i32,
}

impl Client {
    /// Connects to `target` (TCP_NODELAY), upgrades with subprotocol `hrana3`, says `hello`
    /// (with the token, if any) and opens stream [`STREAM_ID`].
    pub async fn connect(target: &Target) -> Result<Client, String> {
        let addr = target.addr;
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            tcp.set_nodelay(true)
                .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
            let mut req = format!("ws://{addr}/")
                .into_client_request()
                .map_err(|e| format!("bad WebSocket URL for {addr}: {e}"))?;
            req.headers_mut().insert(
                SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(SUBPROTOCOL),
            );
            let (ws, resp) = tokio_tungstenite::client_async(req, tcp)
                .await
                .map_err(|e| format!("WebSocket upgrade with {addr} failed: {e}"))?;
            let chosen = resp.headers().get(SEC_WEBSOCKET_PROTOCOL);
            if chosen.map(|v| v.as_bytes()) != Some(SUBPROTOCOL.as_bytes()) {
                return Err(format!(
                    "the server chose subprotocol {chosen:?}, not {SUBPROTOCOL}"
                ));
            }
            let mut client = Client { ws, next_id: 1 };
            client.send(target.hello.clone()).await?;
            match client.recv().await? {
                ServerMsg::HelloOk => {}
                other => return Err(format!("hello refused: {other:?}")),
            }
            let id = client.take_id();
            client
                .send(Utf8Bytes::from(format!(
                    r#"{{"type":"request","request_id":{id},"request":{{"type":"open_stream","stream_id":{STREAM_ID}}}}}"#
                )))
                .await?;
            match client.recv().await? {
                ServerMsg::ResponseOk {
                    request_id,
                    response: Response::OpenStream,
                } if request_id == id => Ok(client),
                other => Err(format!("open_stream failed: {other:?}")),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| format!("connecting to {addr} over WebSocket timed out"))?
    }

    /// A fresh request id (positive; wraps around long after the earlier ones were answered).
    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = if id == i32::MAX { 1 } else { id + 1 };
        id
    }

    /// Sends one text frame (and flushes it).
    async fn send(&mut self, text: Utf8Bytes) -> Result<(), String> {
        self.ws
            .send(Message::Text(text))
            .await
            .map_err(|e| format!("sending failed: {e}"))
    }

    /// Reads the next server message, skipping pings and pongs.
    async fn recv(&mut self) -> Result<ServerMsg, String> {
        loop {
            let frame = match self.ws.next().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Err(format!("reading failed: {e}")),
                None => return Err("the server closed the socket".into()),
            };
            return match frame {
                Message::Text(text) => serde_json::from_str(text.as_str())
                    .map_err(|e| format!("malformed server message: {e}")),
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(close) => Err(format!("the server closed the socket: {close:?}")),
                other => Err(format!("unexpected frame on a JSON socket: {other:?}")),
            };
        }
    }

    /// Sends the request of `draw` on the stream and waits for its response. `buf` is scratch
    /// space. An error means the socket is no longer usable (transport failure, timeout, or an
    /// answer to another request); an error *response* is returned as a message to judge.
    pub async fn call(&mut self, draw: &Draw, buf: &mut Vec<u8>) -> Result<ServerMsg, String> {
        let id = self.take_id();
        buf.clear();
        draw.write_ws_json(buf, id, STREAM_ID);
        let text = Utf8Bytes::try_from(Bytes::copy_from_slice(buf))
            .map_err(|e| format!("request is not UTF-8: {e}"))?;
        let exchange = async {
            self.send(text).await?;
            let msg = self.recv().await?;
            match &msg {
                ServerMsg::ResponseOk { request_id, .. }
                | ServerMsg::ResponseError { request_id, .. } => {
                    if *request_id != id {
                        return Err(format!(
                            "expected the response to request {id}, got one to {request_id}"
                        ));
                    }
                }
                other => return Err(format!("expected a response, got {other:?}")),
            }
            Ok(msg)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no response within {} s", REQUEST_TIMEOUT.as_secs()))?
    }

    /// Closes the socket politely (the server then closes the stream); gives up quietly after
    /// [`CLOSE_TIMEOUT`].
    async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if self.ws.close(None).await.is_ok() {
                // Wait for the server's close frame (or the end of the socket).
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}

/// Loads the server with `workload` over `conns` sockets for `duration`.
pub async fn run_cell(
    target: &Target,
    workload: Workload,
    conns: usize,
    duration: Duration,
    rows: u64,
    seed: u64,
) -> Result<CellStats, String> {
    // Connect everybody (socket, hello, stream) before the clock starts.
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(Client::connect(target).await?);
    }
    let start = Arc::new(tokio::sync::Barrier::new(conns + 1));
    let mut tasks = Vec::with_capacity(conns);
    for (i, client) in clients.into_iter().enumerate() {
        let start = start.clone();
        let target = target.clone();
        // Another seed than the HTTP side's, so the two do not insert the same rows.
        let rng = Rng::new(!seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            worker(target, client, workload, duration, rows, rng).await
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut results = Vec::with_capacity(conns);
    for task in tasks {
        results.push(
            task.await
                .map_err(|e| format!("WebSocket worker failed: {e}"))?,
        );
    }
    let elapsed = began.elapsed();
    let mut records = Vec::with_capacity(conns);
    let mut closing = Vec::with_capacity(conns);
    for (record, client) in results {
        records.push(record);
        if let Some(client) = client {
            closing.push(tokio::spawn(client.close()));
        }
    }
    for c in closing {
        let _ = c.await;
    }
    Ok(CellStats::from_records(records, elapsed))
}

/// One socket's loop: a request at a time on its stream until `duration` has passed. Gives the
/// socket back (if still usable) so that it is closed after the clock stops.
async fn worker(
    target: Target,
    client: Client,
    workload: Workload,
    duration: Duration,
    rows: u64,
    mut rng: Rng,
) -> (WorkerRecord, Option<Client>) {
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
        let draw = Draw::new(workload, &mut rng, rows);
        let began = Instant::now();
        let outcome = conn.call(&draw, &mut buf).await;
        let took = began.elapsed();
        match outcome {
            Ok(msg) => match workload::check_ws(workload, msg) {
                Ok(()) => record.success(took),
                Err(e) => record.failure(|| e),
            },
            Err(e) => {
                // The socket is gone or in an unknown state: open a new one.
                client = None;
                record.failure(|| e);
            }
        }
    }
    (record, client)
}
