//! Hrana wire types: the requests, responses, values, errors and batch conditions that
//! Turso/libSQL clients exchange with a server, and their JSON encoding.
//!
//! Pure data, no I/O. The types are the protocol's own (named as in the Hrana 3 spec) and do not
//! assume an encoding: the JSON encoding lives in their serde impls, the Protobuf encoding in
//! [`protobuf`] (conversions to and from the messages generated into [`pb`]).
//!
//! - [`ws`]: the messages of Hrana over WebSocket.
//! - [`legacy`]: the pre-Hrana HTTP bodies.
//! - [`ErrorCode`]: every error code a client can see, and which of them are the server's fault.
//! - [`sql_text`]: pure looks at SQL text (where a statement ends, leading keywords, blanks and
//!   comments), the one splitter of the server, the engine, the CLI and the remote-only client.

mod code;
mod hrana;
pub mod legacy;
pub mod pb;
pub mod protobuf;
pub mod sql_text;
mod value;
pub mod ws;

pub use code::{sqlite_code_name, ErrorCode};
pub use hrana::*;
pub use value::{decode_base64, encode_base64, Value};
