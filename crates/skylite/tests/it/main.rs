//! The integration tests of this crate as one test binary (one link of the crate and its
//! dependencies instead of one per file); each former `tests/<name>.rs` is module `<name>`,
//! so `cargo test -p skylite --test it <name>::` runs one of them.

mod common;

mod backup_crash;
mod backup_kill;
mod db_cli;
mod durability;
mod exit_codes;
mod migrate_guide;
mod ops;
mod restart;
mod restore_cli;
mod token_cli;
