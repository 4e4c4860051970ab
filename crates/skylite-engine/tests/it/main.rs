//! The integration tests of this crate as one test binary (one link of the crate and its
//! dependencies instead of one per file); each former `tests/<name>.rs` is module `<name>`,
//! so `cargo test -p skylite-engine --test it <name>::` runs one of them.

mod budgets;
mod change_log;
mod dump_limits;
mod durable;
mod engine;
mod prop_sql_text;
mod read_only;
mod sql_functions;
mod sql_limits;
mod sql_split;
