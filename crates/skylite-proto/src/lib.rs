//! Hrana wire types: the requests, responses, values, errors and batch conditions that
//! Turso/libSQL clients exchange with a server, and their JSON encoding.
//!
//! Pure data, no I/O. The types are the protocol's own (named as in the Hrana 3 spec) and do not
//! assume JSON: the JSON encoding lives in their serde impls, and a Protobuf encoding can be
//! added beside it without touching the engine or the server logic.

mod hrana;
pub mod legacy;
mod value;

pub use hrana::*;
pub use value::{decode_base64, encode_base64, Value};
