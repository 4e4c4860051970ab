//! The Protobuf messages of Hrana 3 as `prost` generates them from `proto/*.proto`.
//!
//! The `.rs` files beside this one are generated and committed (so building needs no `protoc`);
//! `tests/pb_generated.rs` checks they match the schema. Do not edit them by hand. Use the
//! domain types of this crate and [`crate::protobuf`] to convert; these raw types are public for
//! tests and tools that need to build odd messages on purpose.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Package `hrana`: the shared structures.
pub mod hrana {
    include!("hrana.rs");

    /// Package `hrana.ws`: the messages of Hrana over WebSocket.
    pub mod ws {
        include!("hrana.ws.rs");
    }

    /// Package `hrana.http`: the bodies of Hrana over HTTP.
    pub mod http {
        include!("hrana.http.rs");
    }
}
