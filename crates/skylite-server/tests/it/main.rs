//! The integration tests of this crate as one test binary (one link of the crate and its
//! dependencies instead of one per file); each former `tests/<name>.rs` is module `<name>`,
//! so `cargo test -p skylite-server --test it <name>::` runs one of them.

mod common;

mod admin;
mod auth_common;
mod auth_matrix;
mod auth_router;
mod auth_ws;
mod backup_fork;
mod backup_status;
mod bad_input;
mod concurrency;
mod connections;
mod databases;
mod db_limits;
mod durable;
mod governor;
mod import_check;
mod pool_state;
mod prop_server;
mod protobuf_http;
mod protocol;
mod reload_shutdown;
mod security;
mod sql_limits;
mod streams;
mod tls;
mod transactions;
mod transfer;
mod ws;
