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

use std::time::Duration;

pub mod format;
mod service;
mod shipper;

pub use service::{Backup, BackupError};
pub use shipper::BackupStatus;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackupMode {
    /// After the local fsync; at most about `segment_interval` of acknowledged writes are not
    /// in the store yet.
    #[default]
    Async,
    /// Only once the segment holding it is in the object store.
    Sync,
}

/// Settings of the write side.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Async or sync acknowledgements (`--backup-mode`).
    pub mode: BackupMode,
    /// Most bytes of captured transactions waiting for upload, per database
    /// (`--backup-spool-limit`). Beyond it: async mode starts a new generation once the store
    /// is back; sync mode refuses writes.
    pub spool_limit: usize,
    /// In sync mode, how long a write waits for the store before it is answered
    /// `BACKUP_UNAVAILABLE` (`--backup-sync-timeout`); also how long the store may fail before
    /// new writes are refused.
    pub sync_timeout: Duration,
    /// Async mode: how often spooled transactions are cut into a segment.
    pub segment_interval: Duration,
    /// A segment is cut early once this many bytes wait (and segments are at most about this
    /// big, unless one transaction is bigger).
    pub segment_bytes: usize,
    /// Objects older than this are deleted, keeping what a restore to any point in the window
    /// needs (`--backup-retention`; zero keeps everything).
    pub retention: Duration,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            mode: BackupMode::Async,
            spool_limit: 512 * 1024 * 1024,
            sync_timeout: Duration::from_secs(10),
            segment_interval: Duration::from_secs(1),
            segment_bytes: 16 * 1024 * 1024,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
