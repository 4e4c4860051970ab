//! Continuous backup of skylite databases to S3-compatible object storage, and restore
//! (issue 11).
//!
//! The model (the object layout and encodings are in [`format`], the contract between the
//! write side and the read side):
//!
//! - **Capture.** skylite owns every checkpoint (autocheckpoint off, RESTART checkpoints under
//!   its write lock), so the WAL between two checkpoints holds every committed frame in order.
//!   The engine reads the frames of each committed transaction from the WAL right after the
//!   commit, while the committing session still holds the write lock, and before every
//!   checkpoint resets the WAL, and hands them to a `skylite_engine::change_log::ChangeSink`.
//!   No long read transaction, no virtual WAL.
//! - **Positions.** A database's history is a sequence of generations (a new one whenever the
//!   file is replaced or a gap cannot be bridged); inside one, transactions are numbered
//!   1, 2, 3... A position is (generation, txn); a generation starts with a snapshot at txn 0.
//! - **Shipping.** Captured transactions go to a bounded local spool; an uploader cuts
//!   segments (a group of transactions per PUT), written create-only at predictable keys.
//! - **Fencing.** The segment key is the segment's first transaction, so two servers continuing
//!   one history race for one key and exactly one wins; the loser stops and reports it.
//! - **Restore.** Generation → newest snapshot at or before the target → segments in order,
//!   whole transactions only.
//!
//! [`store`] builds the object store from `s3://BUCKET/PREFIX` and the `AWS_*` variables and
//! checks that it honours create-only writes; `testing` (feature `test-support`) runs a real
//! S3 server (SeaweedFS) for the test suites.

pub mod config;
pub mod format;
pub mod restore;
mod service;
mod shipper;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod time;

pub use config::{BackupConfig, BackupMode};
pub use service::{Backup, BackupError};
pub use shipper::BackupStatus;
