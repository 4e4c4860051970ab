//! The wire side of a Hrana socket: subprotocol negotiation, close reasons, the socket
//! wrapper whose writes have a deadline, and encoding/decoding of frames (JSON text or
//! Protobuf binary) to and from `ClientMsg`/`ServerMsg`.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::HeaderValue;
use prost::Message as _;
use serde::Deserialize;
use skylite_engine::ErrorCode;
use skylite_proto::pb::hrana::ws as pbws;
use skylite_proto::protobuf::{self, FromProto};
use skylite_proto::ws::{ClientMsg, ServerMsg};
use skylite_proto::Error as ProtoError;

/// A WebSocket subprotocol of Hrana.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subprotocol {
    /// `hrana1`: version 1, JSON.
    Hrana1,
    /// `hrana2`: version 2, JSON.
    Hrana2,
    /// `hrana3`: version 3, JSON.
    Hrana3,
    /// `hrana3-protobuf`: version 3, Protobuf.
    Hrana3Protobuf,
}

impl Subprotocol {
    /// From newest to oldest; when a client offers several, the first one it offers in this
    /// order wins (for version 3, Protobuf before JSON: a client that offers it can read it).
    pub const PREFERENCE: [Subprotocol; 4] = [
        Subprotocol::Hrana3Protobuf,
        Subprotocol::Hrana3,
        Subprotocol::Hrana2,
        Subprotocol::Hrana1,
    ];

    /// The token in `Sec-WebSocket-Protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Subprotocol::Hrana1 => "hrana1",
            Subprotocol::Hrana2 => "hrana2",
            Subprotocol::Hrana3 => "hrana3",
            Subprotocol::Hrana3Protobuf => "hrana3-protobuf",
        }
    }

    /// The Hrana version.
    pub fn version(self) -> u8 {
        match self {
            Subprotocol::Hrana1 => 1,
            Subprotocol::Hrana2 => 2,
            Subprotocol::Hrana3 | Subprotocol::Hrana3Protobuf => 3,
        }
    }

    /// True for the Protobuf encoding.
    pub fn is_protobuf(self) -> bool {
        self == Subprotocol::Hrana3Protobuf
    }
}

/// Picks the subprotocol from the `Sec-WebSocket-Protocol` header values a client sent.
///
/// - no header (or only empty ones): `Ok(None)`, meaning `hrana1` without answering the header
///   (what Hrana 1 clients that predate the header expect);
/// - some Hrana subprotocol offered: the newest one;
/// - only unknown subprotocols: `Err` with the offered list, refused with 400.
pub fn negotiate<'a>(
    offered: impl IntoIterator<Item = &'a HeaderValue>,
) -> Result<Option<Subprotocol>, String> {
    let tokens: Vec<String> = offered
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Ok(None);
    }
    for proto in Subprotocol::PREFERENCE {
        if tokens.iter().any(|t| t == proto.name()) {
            return Ok(Some(proto));
        }
    }
    Err(tokens.join(", "))
}

/// Why the server closes a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The WebSocket close code.
    pub code: u16,
    /// A human-readable reason (cut to the 123 bytes a close frame allows).
    pub reason: String,
}

impl CloseReason {
    /// 1002 (RFC 6455 "protocol error"): a message that breaks the Hrana protocol: unknown or
    /// missing message type, a request before `hello`, a malformed `hello` or `request`
    /// envelope.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003 ("unsupported data"): a frame of the wrong type for the negotiated encoding
    /// (binary on JSON, text on Protobuf).
    pub const WRONG_FRAME_TYPE: u16 = 1003;
    /// 1007 ("invalid frame payload data"): a payload that is not valid JSON or Protobuf.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1009 ("message too big"): a message beyond the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Going away: the database the connection is bound to was deleted.
    pub const GOING_AWAY: u16 = 1001;
    /// 1008 ("policy violation"): the `hello` token was refused (after `hello_error`).
    pub const POLICY_VIOLATION: u16 = 1008;

    pub(super) fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseReason {
            code,
            reason: reason.into(),
        }
    }

    pub(super) fn frame(&self) -> CloseFrame {
        let mut reason = self.reason.clone();
        if reason.len() > 123 {
            let mut cut = 120;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push_str("...");
        }
        CloseFrame {
            code: self.code,
            reason: reason.into(),
        }
    }
}

/// A WebSocket whose every write has a deadline.
pub(super) struct TimedSocket {
    pub(super) inner: WebSocket,
    pub(super) send_timeout: Duration,
}

impl TimedSocket {
    /// Writes a message; a client that does not take it within the send timeout (plus time
    /// for a large message at [`MIN_DRAIN_RATE`], so a slow but reading client is not cut off)
    /// is an error, and the connection then ends.
    pub(super) async fn send(&mut self, msg: Message) -> Result<(), axum::Error> {
        let transfer = Duration::from_secs_f64(message_len(&msg) as f64 / MIN_DRAIN_RATE);
        let deadline = self.send_timeout.saturating_add(transfer);
        match tokio::time::timeout(deadline, self.inner.send(msg)).await {
            Ok(result) => result,
            Err(_) => Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {} s",
                    self.send_timeout.as_secs_f64()
                ),
            ))),
        }
    }

    /// Reads the next message.
    pub(super) async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        self.inner.recv().await
    }
}

/// The slowest reading (bytes per second) a socket write allows for beyond the send timeout.
pub(super) const MIN_DRAIN_RATE: f64 = 256.0 * 1024.0;

/// How long the server waits for the client's answering Close frame.
pub(super) const CLOSE_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends a Close frame and then reads (and drops) what the client still sends until its own
/// Close arrives. Dropping the socket right after our Close would make the kernel answer the
/// client's in-flight frames with a TCP reset, and the client would lose the frames we sent
/// just before (a `hello_error`, the close reason) and see only "connection reset".
pub(super) async fn close_gracefully(
    socket: &mut TimedSocket,
    frame: axum::extract::ws::CloseFrame,
) {
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let drain = async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, drain).await;
}

/// A message for the client, already encoded.
pub(super) type Outgoing = Message;

/// Bytes of a message's payload.
pub(super) fn message_len(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

pub(super) fn encode_msg(proto: Subprotocol, msg: ServerMsg) -> Outgoing {
    if proto.is_protobuf() {
        Message::Binary(protobuf::encode(msg).into())
    } else {
        match serde_json::to_string(&msg) {
            Ok(text) => Message::Text(text.into()),
            Err(e) => {
                // Only non-string map keys or failing serializers could get here; none exist in
                // these types. Answer with an error rather than dropping the response.
                let fallback = match msg {
                    ServerMsg::ResponseOk { request_id, .. }
                    | ServerMsg::ResponseError { request_id, .. } => ServerMsg::ResponseError {
                        request_id,
                        error: ProtoError::new(
                            ErrorCode::Internal,
                            format!("cannot encode the response: {e}"),
                        ),
                    },
                    other => other,
                };
                Message::Text(serde_json::to_string(&fallback).unwrap_or_default().into())
            }
        }
    }
}

pub(super) fn error_msg(request_id: i32, code: ErrorCode, message: impl Into<String>) -> ServerMsg {
    ServerMsg::ResponseError {
        request_id,
        error: ProtoError::new(code, message),
    }
}

/// What one incoming frame turned out to be.
pub(super) enum Incoming {
    Msg(ClientMsg),
    /// A `request` envelope whose request could not be decoded.
    BadRequest {
        request_id: i32,
        message: String,
    },
    Violation(CloseReason),
    Ignore,
    Closed,
}

pub(super) fn decode_json(text: &str) -> Incoming {
    let err = match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => return Incoming::Msg(msg),
        Err(e) => e,
    };
    if err.is_syntax() || err.is_eof() {
        return Incoming::Violation(CloseReason::new(
            CloseReason::INVALID_PAYLOAD,
            format!("invalid JSON: {err}"),
        ));
    }
    /// The envelope alone, to tell a bad request from a bad message.
    #[derive(Deserialize)]
    pub(super) struct Probe {
        #[serde(rename = "type")]
        ty: Option<String>,
        request_id: Option<i32>,
    }
    match serde_json::from_str::<Probe>(text) {
        Ok(Probe {
            ty: Some(ty),
            request_id: Some(request_id),
        }) if ty == "request" => Incoming::BadRequest {
            request_id,
            message: format!("invalid request: {err}"),
        },
        Ok(Probe { ty: Some(ty), .. }) if ty != "request" && ty != "hello" => {
            Incoming::Violation(CloseReason::new(
                CloseReason::PROTOCOL_ERROR,
                format!("unknown message type `{ty}` (expected `hello` or `request`)"),
            ))
        }
        Ok(Probe { ty: None, .. }) => Incoming::Violation(CloseReason::new(
            CloseReason::PROTOCOL_ERROR,
            "message without a `type` (expected `hello` or `request`)",
        )),
        _ => Incoming::Violation(CloseReason::new(
            CloseReason::PROTOCOL_ERROR,
            format!("invalid message: {err}"),
        )),
    }
}

pub(super) fn decode_protobuf(bytes: &[u8]) -> Incoming {
    let raw = match pbws::ClientMsg::decode(bytes) {
        Ok(raw) => raw,
        Err(e) => {
            return Incoming::Violation(CloseReason::new(
                CloseReason::INVALID_PAYLOAD,
                format!("invalid Protobuf ClientMsg: {e}"),
            ))
        }
    };
    let request_id = match &raw.msg {
        None => {
            return Incoming::Violation(CloseReason::new(
                CloseReason::PROTOCOL_ERROR,
                "unknown or missing ClientMsg type (expected hello or request)",
            ))
        }
        Some(pbws::client_msg::Msg::Request(r)) => {
            if r.request.is_none() {
                return Incoming::BadRequest {
                    request_id: r.request_id,
                    message: "unknown or missing request type".to_owned(),
                };
            }
            Some(r.request_id)
        }
        Some(pbws::client_msg::Msg::Hello(_)) => None,
    };
    match ClientMsg::from_proto(raw) {
        Ok(msg) => Incoming::Msg(msg),
        Err(e) => match request_id {
            Some(request_id) => Incoming::BadRequest {
                request_id,
                message: e.to_string(),
            },
            None => {
                Incoming::Violation(CloseReason::new(CloseReason::PROTOCOL_ERROR, e.to_string()))
            }
        },
    }
}
