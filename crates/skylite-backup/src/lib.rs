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
//! - **Shipping** (`shipper.rs`, `service.rs`). A database's first open after the server
//!   starts (or after its file was replaced, or after a gap) starts a generation: under the
//!   write lock the change log is attached, then the database is copied from a read
//!   transaction (snapshot 0) and uploaded first. Captured transactions wait in a bounded
//!   in-memory spool (the local database keeps them durably anyway); one uploader task per
//!   database cuts them into segments: async mode one PUT per `--backup-interval-ms` (or 16 MiB),
//!   none when idle; sync mode as soon as possible, grouping the commits that arrive during a
//!   PUT, and a write is acknowledged only once its segment is stored. A database closed for
//!   being idle and opened again continues its generation.
//! - **Outages.** Store errors are retried with backoff; writes go on locally. A full spool in
//!   async mode is a gap: the spool is dropped and a new generation (fresh snapshot) starts once
//!   the store answers. Sync mode refuses writes (`BACKUP_UNAVAILABLE`) when the spool is full
//!   or the store has failed for `--backup-sync-timeout`, and answers a write whose segment is
//!   not stored within that time with the same code (it is committed locally, not acknowledged).
//! - **Fencing.** The segment key is the segment's first transaction and every segment is
//!   created with `If-None-Match: *`, so two servers continuing one history race for one key
//!   and exactly one wins; the loser (the key holds another writer id, or a seal) stops
//!   shipping, logs an error, shows `fenced` in the admin API and, in sync mode, refuses writes.
//!   A server starting a new generation first *seals* the newest older generation at its next
//!   key, which fences a server still writing there. The writer id is kept in the data folder
//!   (`.skylite/backup/writer-id`).
//! - **Retention** (`retention.rs`). A generation is deleted once a newer one that started
//!   before the window (and has its snapshot) covers the whole window; a database whose
//!   tombstone is older than the window is deleted entirely.
//! - **Segments keep each page once.** A segment holds every transaction's number, commit time
//!   and size, but each page only in its last version (under the last transaction of the segment
//!   that wrote it): hot pages repeat in nearly every commit, so this divides the bytes hashed,
//!   uploaded and restored. The price is point-in-time granularity: a segment is restorable only
//!   at its end. Segments never straddle a wall-clock second (seconds are (T-1, T]: a commit
//!   in a new second cuts the pending segment), so a restore to a second T is exact: every
//!   transaction committed at or before T, none after. A target inside a second applies a
//!   segment only if its last commit is at or before it.
//! - **Restore.** Generation → newest snapshot at or before the target → segments in order,
//!   whole transactions only (whole segments for deduplicated ones).
//!
//! [`store`] builds the object store from `s3://BUCKET/PREFIX` and the `AWS_*` variables and
//! checks that it honours create-only writes; `testing` (feature `test-support`) runs a real
//! S3 server (SeaweedFS) for the test suites.

pub mod config;
pub mod format;
pub mod restore;
pub mod retention;
mod service;
mod shipper;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod time;

pub use config::{BackupConfig, BackupMode};
pub use service::{Backup, BackupError};
pub use shipper::BackupStatus;
