//! The change log: every committed transaction of a database, as the pages it wrote, handed to
//! a [`ChangeSink`] (continuous backup) in commit order.
//!
//! skylite owns every checkpoint (autocheckpoint is off and `Conn::checkpoint_if_due` runs
//! under the write lock), so the WAL between two checkpoints holds every committed frame in
//! order. Right after each commit, while the committing connection still holds the write lock
//! and before any checkpoint may reset the WAL, [`ChangeLog::capture`] reads the frames written
//! since the last capture straight from the `-wal` file (they are in the OS page cache: a
//! memcpy) and hands them over. A restarted WAL (new salts in its header) starts again from its
//! first frame. No read transaction is held and SQLite's WAL code is not replaced.
//!
//! The engine does not know what a sink does with the pages; `skylite-backup` implements it.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ExecError;

/// Size of the WAL file header.
const WAL_HEADER_LEN: u64 = 32;
/// Size of a WAL frame header.
const FRAME_HEADER_LEN: u64 = 24;

/// One committed transaction, as captured from the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedTxn {
    /// The database's page size.
    pub page_size: u32,
    /// Database size in pages after the commit.
    pub db_pages: u32,
    /// When it was captured (right after the commit), unix milliseconds.
    pub commit_ms: u64,
    /// The pages it wrote, each once (its last version), by page number.
    pub pages: Vec<(u32, Vec<u8>)>,
}

/// Where committed transactions go. Called by the engine on blocking threads.
pub trait ChangeSink: Send + Sync + 'static {
    /// Asked before a connection takes the write lock for a new write: an error refuses the
    /// write (e.g. the backup cannot keep up and must not fall further behind).
    fn admit_write(&self) -> Result<(), ExecError>;

    /// A transaction committed. Called under the write lock, in commit order, never twice for
    /// one transaction. Returns a token for [`ChangeSink::wait_durable`]. Must not block long.
    fn committed(&self, txn: CapturedTxn) -> u64;

    /// The log has a gap: transactions were committed that could not be captured (the reason
    /// says why). The sink must not continue its history across it.
    fn gap(&self, reason: &str);

    /// Blocks until the transaction behind `token` is as durable as the sink promises (sync
    /// backup: in the object store). Called before the write is acknowledged. A sink that
    /// really waits enters `workers::blocking_section` itself.
    fn wait_durable(&self, token: u64) -> Result<(), ExecError>;
}

/// Where the capture stands in the WAL.
struct Cursor {
    sink: Arc<dyn ChangeSink>,
    /// The WAL file, opened once (and again if SQLite replaced it), with its inode.
    wal: Option<(File, u64)>,
    /// Salts of the WAL header the frames were read under.
    salts: [u8; 8],
    /// Frames already captured (the WAL's frame count after the last captured commit).
    frames: u32,
}

/// The change log of one database: the sink, if any, and the capture position.
pub(crate) struct ChangeLog {
    wal_path: PathBuf,
    cursor: Mutex<Option<Cursor>>,
}

/// The state of a WAL file as read from its header.
struct WalHead {
    page_size: u32,
    salts: [u8; 8],
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

fn read_head(file: &File) -> std::io::Result<Option<WalHead>> {
    let mut head = [0u8; WAL_HEADER_LEN as usize];
    match read_exact_at(file, &mut head, 0) {
        Ok(()) => {}
        // An empty WAL (nothing written since it was created or truncated).
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let magic = word(0);
    if magic != 0x377f_0682 && magic != 0x377f_0683 {
        return Err(std::io::Error::other(
            "the WAL header has a bad magic number",
        ));
    }
    let page_size = match word(8) {
        1 => 65536,
        n => n,
    };
    let mut salts = [0u8; 8];
    salts.copy_from_slice(&head[16..24]);
    Ok(Some(WalHead { page_size, salts }))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ChangeLog {
    pub(crate) fn new(db_path: &Path) -> Self {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        ChangeLog {
            wal_path: PathBuf::from(wal),
            cursor: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cursor>> {
        self.cursor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sink, if one is attached.
    pub(crate) fn sink(&self) -> Option<Arc<dyn ChangeSink>> {
        self.lock().as_ref().map(|c| c.sink.clone())
    }

    /// Attaches `sink` at the WAL's current end (`frames` committed frames): only transactions
    /// committed from now on are captured. Call under the write lock.
    pub(crate) fn attach(&self, sink: Arc<dyn ChangeSink>, frames: u32) -> std::io::Result<()> {
        let wal = match File::open(&self.wal_path) {
            Ok(f) => {
                let ino = f.metadata()?.ino();
                Some((f, ino))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let salts = match &wal {
            Some((f, _)) => read_head(f)?.map_or([0; 8], |h| h.salts),
            None => [0; 8],
        };
        *self.lock() = Some(Cursor {
            sink,
            wal,
            salts,
            frames,
        });
        Ok(())
    }

    /// Detaches the sink (nothing is captured any more).
    pub(crate) fn detach(&self) {
        *self.lock() = None;
    }

    /// Captures the transactions committed since the last capture; the WAL now holds `frames`
    /// committed frames (from the WAL hook). Called right after a commit under the write lock.
    /// Returns the sink's durability token, if a sink is attached.
    pub(crate) fn capture(&self, frames: u32) -> Option<(Arc<dyn ChangeSink>, u64)> {
        let mut guard = self.lock();
        let cursor = guard.as_mut()?;
        match read_new_frames(&self.wal_path, cursor, frames) {
            Ok(txns) => {
                let mut token = None;
                for txn in txns {
                    token = Some(cursor.sink.committed(txn));
                }
                cursor.frames = frames;
                token.map(|t| (cursor.sink.clone(), t))
            }
            Err(e) => {
                tracing::error!(wal = %self.wal_path.display(), error = %e,
                    "cannot capture a committed transaction for the backup");
                cursor.sink.gap(&format!("capture failed: {e}"));
                cursor.frames = frames;
                None
            }
        }
    }
}

/// Reads frames `cursor.frames + 1 ..= frames` (or `1 ..= frames` after a WAL restart) and
/// groups them into transactions at commit frames.
fn read_new_frames(
    wal_path: &Path,
    cursor: &mut Cursor,
    frames: u32,
) -> std::io::Result<Vec<CapturedTxn>> {
    // SQLite deletes the WAL file when its last user closes and creates a new one later (a
    // fresh database's first connections come and go, eviction closes them all): read the
    // file that is there now, never a deleted one (whose old frames could look current).
    let ino = std::fs::metadata(wal_path)?.ino();
    if let Some((wal, open_ino)) = cursor.wal.as_ref() {
        if *open_ino == ino {
            if let Some((txns, salts)) = read_frames(wal, cursor, frames)? {
                cursor.salts = salts;
                return Ok(txns);
            }
        }
    }
    let wal = File::open(wal_path)?;
    let ino = wal.metadata()?.ino();
    let read = read_frames(&wal, cursor, frames)?;
    cursor.wal = Some((wal, ino));
    let (txns, salts) =
        read.ok_or_else(|| std::io::Error::other("the WAL is empty where a commit was reported"))?;
    cursor.salts = salts;
    Ok(txns)
}

/// The transactions in frames after the cursor, and the WAL's salts; `None` for an empty file.
/// One read of all the new frames (this runs under the write lock: keep it short).
fn read_frames(
    wal: &File,
    cursor: &Cursor,
    frames: u32,
) -> std::io::Result<Option<(Vec<CapturedTxn>, [u8; 8])>> {
    let Some(head) = read_head(wal)? else {
        return Ok(None);
    };
    let mut from = cursor.frames;
    if head.salts != cursor.salts || frames < from {
        // SQLite restarted the WAL (after a checkpoint): its frames start again at 1. Every
        // frame of the old WAL was captured before the restart, since captures follow each
        // commit and a restart happens only at the start of a later write.
        from = 0;
    }
    let page_size = head.page_size as usize;
    let frame_len = FRAME_HEADER_LEN as usize + page_size;
    let count = (frames - from) as usize;
    let mut buf = vec![0u8; count * frame_len];
    read_exact_at(
        wal,
        &mut buf,
        WAL_HEADER_LEN + u64::from(from) * frame_len as u64,
    )?;
    let mut txns = Vec::new();
    let mut pages: Vec<(u32, Vec<u8>)> = Vec::new();
    // Where each page of the transaction being read sits in `pages`.
    let mut slots: HashMap<u32, usize> = HashMap::new();
    let commit_ms = now_ms();
    for (i, frame) in buf.chunks_exact(frame_len).enumerate() {
        let (header, data) = frame.split_at(FRAME_HEADER_LEN as usize);
        let word = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(header.get(at..at + 4).unwrap_or(&[0; 4]));
            u32::from_be_bytes(w)
        };
        if header.get(8..16) != Some(&head.salts[..]) {
            return Err(std::io::Error::other(format!(
                "WAL frame {} does not belong to the current WAL",
                from as usize + i + 1
            )));
        }
        let (page_no, db_pages) = (word(0), word(4));
        // A transaction that spilled its cache may write one page twice: keep the last.
        match slots.get(&page_no).and_then(|&i| pages.get_mut(i)) {
            Some(slot) => slot.1 = data.to_vec(),
            None => {
                slots.insert(page_no, pages.len());
                pages.push((page_no, data.to_vec()));
            }
        }
        if db_pages != 0 {
            slots.clear();
            let mut txn_pages = std::mem::take(&mut pages);
            txn_pages.sort_unstable_by_key(|(n, _)| *n);
            txns.push(CapturedTxn {
                page_size: head.page_size,
                db_pages,
                commit_ms,
                pages: txn_pages,
            });
        }
    }
    if !pages.is_empty() {
        return Err(std::io::Error::other(
            "the WAL ends inside a transaction where a commit was reported",
        ));
    }
    Ok(Some((txns, head.salts)))
}
