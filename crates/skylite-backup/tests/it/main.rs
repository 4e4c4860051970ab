//! The integration tests of this crate as one test binary (one link of the crate and its
//! dependencies instead of one per file); each former `tests/<name>.rs` is module `<name>`,
//! so `cargo test -p skylite-backup --test it <name>::` runs one of them.

mod common;

mod restore;
mod restore_shipped;
mod restore_speed;
mod retention;
mod ship;
mod ship_s3;
mod store_s3;
