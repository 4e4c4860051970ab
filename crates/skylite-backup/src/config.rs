//! Settings of the write side of continuous backup (the server's `--backup-*` flags).

use std::time::Duration;

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
            segment_interval: Duration::from_millis(500),
            segment_bytes: 16 * 1024 * 1024,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
