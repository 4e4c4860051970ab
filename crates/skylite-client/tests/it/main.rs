//! The integration tests of this crate as one test binary (one link of the crate and its
//! dependencies instead of one per file); each former `tests/<name>.rs` is module `<name>`,
//! so `cargo test -p skylite-client --test it <name>::` runs one of them.

mod common;

mod admin;
mod async_client;
mod blocking_client;
mod connection;
mod env_config;
mod features;
mod remote;
