//! The integration tests of this crate as one test binary (one link of the crate and its
//! dependencies instead of one per file); each former `tests/<name>.rs` is module `<name>`,
//! so `cargo test -p skylite-proto --test it <name>::` runs one of them.

mod pb_generated;
mod prop_decoders;
