//! Restore: a database file rebuilt from the backup (see `format.rs` for the objects), as of
//! the newest backed-up transaction or as of a point in time.
//!
//! For one database: list its objects, pick the generation (the newest one, or the newest that
//! started at or before `at`), refuse a deleted database (a tombstone for that generation)
//! unless asked, pick the newest snapshot at or before the target, stream it into the file,
//! then apply the generation's segments in order along the chain (a segment's successor is the
//! object at its last transaction + 1; the chain ends at a gap or a seal), whole transactions
//! only, stopping before the first transaction committed after `at`. The file is then fsynced,
//! checked (`PRAGMA integrity_check`) and switched to WAL mode
//! (`skylite_engine::import::check_and_prepare`).
//!
//! Speed: the snapshot is fetched with parallel ranged GETs and segments are prefetched in
//! parallel (decoded and checksummed on blocking threads); one blocking writer thread hashes
//! and writes the file, fed through a bounded channel, so memory stays bounded (about
//! `parallelism × 4 MiB` plus the segments in flight) whatever the database size. No file
//! I/O or hashing runs on async worker threads.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use skylite_engine::fs_durable;
use skylite_engine::import::{self, ImportError};

use crate::format::{
    self, FormatError, GenerationId, ObjectHeader, ObjectKey, ObjectKind, Segment, SnapshotHead,
    HEADER_PREFIX_LEN, SNAPSHOT_HEAD_LEN,
};
use crate::time::format_ms;

/// Bytes per ranged GET of a snapshot.
const SNAPSHOT_CHUNK: u64 = 4 * 1024 * 1024;
/// Bytes fetched first from a snapshot: its header and body head, and the first pages.
const FIRST_CHUNK: u64 = 256 * 1024;

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Restore as of this time (unix milliseconds): every transaction committed at or before
    /// it, none after. `None`: everything backed up.
    pub at_ms: Option<u64>,
    /// Restore a database even if it was deleted (its tombstone is ignored).
    pub include_deleted: bool,
    /// GET requests in flight at once.
    pub parallelism: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            at_ms: None,
            include_deleted: false,
            parallelism: 8,
        }
    }
}

/// What a restore produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The database.
    pub name: String,
    /// The generation restored from.
    pub generation: GenerationId,
    /// The last transaction of that generation in the file (0: only its starting snapshot).
    pub txn: u64,
    /// When that transaction committed (unix ms), if it came from a segment.
    pub last_commit_ms: Option<u64>,
    /// The snapshot the restore started from.
    pub snapshot_txn: u64,
    /// Transactions applied from segments.
    pub txns_applied: u64,
    /// Pages in the restored file, and their size.
    pub db_pages: u64,
    /// Bytes per page.
    pub page_size: u64,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
}

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The store holds nothing for this database.
    #[error("the backup holds no database {0:?}")]
    NotFound(String),
    /// The database was deleted (a tombstone) and deleted databases were not asked for.
    #[error(
        "database {name:?} was deleted at {}; restore it anyway with --include-deleted",
        format_ms(*.deleted_ms)
    )]
    Deleted {
        /// The database.
        name: String,
        /// When it was deleted (unix ms).
        deleted_ms: u64,
    },
    /// No snapshot of the database is old enough (or none was uploaded yet).
    #[error("the backup of database {name:?} has no snapshot{}", at_text(*.at_ms))]
    NoSnapshot {
        /// The database.
        name: String,
        /// The time asked for.
        at_ms: Option<u64>,
    },
    /// The target is not a valid database name (a foreign object in the bucket, or bad input).
    #[error("invalid database name {0:?}")]
    InvalidName(String),
    /// The database file to restore into exists already.
    #[error("{} exists already: restore into an empty data folder or remove it", .0.display())]
    Exists(PathBuf),
    /// An object is corrupt, truncated or not what its key says.
    #[error("backup object {key}: {source}")]
    Format {
        /// The object's key.
        key: String,
        /// What is wrong with it.
        source: FormatError,
    },
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The local disk failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The rebuilt file failed its check (`integrity_check`).
    #[error("the restored database {name:?} failed its check: {message}")]
    Check {
        /// The database.
        name: String,
        /// What the check said.
        message: String,
    },
}

fn at_text(at_ms: Option<u64>) -> String {
    match at_ms {
        Some(at) => format!(" at or before {}", format_ms(at)),
        None => String::new(),
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> RestoreError {
    move |source| RestoreError::Io { what, source }
}

fn format_err(key: &Path) -> impl FnOnce(FormatError) -> RestoreError + '_ {
    move |source| RestoreError::Format {
        key: key.to_string(),
        source,
    }
}

/// The same rule as the server's database names (1 to 63 lowercase letters, digits, `-`, `_`,
/// starting with a letter or digit): a name read from a bucket becomes a folder name only if
/// it passes.
pub fn is_valid_db_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The names of the databases that have objects in the backup (deleted ones included), sorted.
pub async fn list_databases(store: &dyn ObjectStore) -> Result<Vec<String>, RestoreError> {
    let listing = store.list_with_delimiter(Some(&Path::from("dbs"))).await?;
    let mut names: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_owned))
        .filter(|name| is_valid_db_name(name))
        .collect();
    names.sort();
    Ok(names)
}

/// One generation's objects, by transaction.
#[derive(Debug, Default)]
struct GenerationObjects {
    snapshots: BTreeMap<u64, Path>,
    segments: BTreeMap<u64, Path>,
}

/// Everything the backup holds for one database.
#[derive(Debug, Default)]
struct Catalog {
    generations: BTreeMap<GenerationId, GenerationObjects>,
    tombstones: BTreeMap<GenerationId, Path>,
}

async fn catalog(store: &dyn ObjectStore, name: &str) -> Result<Catalog, RestoreError> {
    let mut catalog = Catalog::default();
    let prefix = Path::from(format!("dbs/{name}"));
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.try_next().await? {
        match ObjectKey::parse(meta.location.as_ref()) {
            Some(ObjectKey::Snapshot {
                name: n,
                generation,
                txn,
            }) if n == name => {
                catalog
                    .generations
                    .entry(generation)
                    .or_default()
                    .snapshots
                    .insert(txn, meta.location);
            }
            Some(ObjectKey::Segment {
                name: n,
                generation,
                first,
            }) if n == name => {
                catalog
                    .generations
                    .entry(generation)
                    .or_default()
                    .segments
                    .insert(first, meta.location);
            }
            Some(ObjectKey::Tombstone {
                name: n,
                generation,
            }) if n == name => {
                catalog.tombstones.insert(generation, meta.location);
            }
            _ => {}
        }
    }
    Ok(catalog)
}

/// Reads a whole small object and checks its header against what its key promises.
async fn get_checked(
    store: &dyn ObjectStore,
    key: &Path,
    name: &str,
    generation: &GenerationId,
) -> Result<(ObjectHeader, Bytes, usize), RestoreError> {
    let bytes = store.get(key).await?.bytes().await?;
    let (header, _) = format::decode_object(&bytes).map_err(format_err(key))?;
    let header_len = bytes.len() - header.body_len as usize;
    if header.db_name != name || &header.generation != generation {
        return Err(RestoreError::Format {
            key: key.to_string(),
            source: FormatError::Mismatch(format!(
                "object of {}/{} at a key of {name}/{generation}",
                header.db_name, header.generation
            )),
        });
    }
    Ok((header, bytes, header_len))
}

async fn tombstone_time(
    store: &dyn ObjectStore,
    key: &Path,
    name: &str,
    generation: &GenerationId,
) -> Result<u64, RestoreError> {
    let (header, bytes, header_len) = get_checked(store, key, name, generation).await?;
    header
        .expect(ObjectKind::Tombstone, name, generation)
        .map_err(format_err(key))?;
    format::decode_tombstone(bytes.get(header_len..).unwrap_or_default()).map_err(format_err(key))
}

/// The head of a snapshot, from one ranged GET (header + body head).
async fn snapshot_head(
    store: &dyn ObjectStore,
    key: &Path,
    name: &str,
    generation: &GenerationId,
) -> Result<(ObjectHeader, usize, SnapshotHead, u64), RestoreError> {
    let size = store.head(key).await?.size;
    let first = store.get_range(key, 0..size.min(FIRST_CHUNK)).await?;
    let header_len = ObjectHeader::header_len(first.get(..HEADER_PREFIX_LEN).unwrap_or_default())
        .map_err(format_err(key))?;
    let (header, _) = ObjectHeader::decode(&first).map_err(format_err(key))?;
    header
        .expect(ObjectKind::Snapshot, name, generation)
        .map_err(format_err(key))?;
    let body_start = first.get(header_len..).unwrap_or_default();
    let head = SnapshotHead::decode(body_start).map_err(format_err(key))?;
    if head.body_len() != header.body_len || header_len as u64 + header.body_len != size {
        return Err(RestoreError::Format {
            key: key.to_string(),
            source: FormatError::Invalid(format!(
                "snapshot of {} pages of {} bytes in an object of {size} bytes",
                head.db_pages, head.page_size
            )),
        });
    }
    Ok((header, header_len, head, size))
}

/// The commit time of transaction `txn` of a generation, read from the segment holding it.
async fn commit_time_of(
    store: &dyn ObjectStore,
    objects: &GenerationObjects,
    name: &str,
    generation: &GenerationId,
    txn: u64,
) -> Result<Option<u64>, RestoreError> {
    let Some((_, key)) = objects.segments.range(..=txn).next_back() else {
        return Ok(None);
    };
    let (header, bytes, header_len) = get_checked(store, key, name, generation).await?;
    if header.kind != ObjectKind::Segment {
        return Ok(None);
    }
    let body = bytes.slice(header_len..);
    let segment = tokio::task::spawn_blocking(move || Segment::decode(&body))
        .await
        .map_err(|e| RestoreError::Io {
            what: "decode a segment",
            source: io::Error::other(e.to_string()),
        })?
        .map_err(format_err(key))?;
    Ok(segment
        .txns
        .iter()
        .find(|t| t.txn == txn)
        .map(|t| t.commit_ms))
}

/// The starting point of a restore.
struct Plan {
    generation: GenerationId,
    snapshot_key: Path,
    snapshot_txn: u64,
}

async fn plan(
    store: &dyn ObjectStore,
    name: &str,
    catalog: &Catalog,
    options: &RestoreOptions,
) -> Result<Plan, RestoreError> {
    let at = options.at_ms;
    let mut first_candidate = true;
    for (generation, objects) in catalog.generations.iter().rev() {
        if at.is_some_and(|at| generation.unix_millis() > at) {
            continue;
        }
        if first_candidate && !options.include_deleted {
            // The database's state at the target is this generation's, unless it was deleted
            // in it (before the target).
            if let Some(key) = catalog.tombstones.get(generation) {
                let deleted_ms = tombstone_time(store, key, name, generation).await?;
                if !matches!(at, Some(at) if deleted_ms > at) {
                    return Err(RestoreError::Deleted {
                        name: name.to_owned(),
                        deleted_ms,
                    });
                }
            }
        }
        first_candidate = false;
        for (&txn, key) in objects.snapshots.iter().rev() {
            let Some(at) = at else {
                return Ok(Plan {
                    generation: generation.clone(),
                    snapshot_key: key.clone(),
                    snapshot_txn: txn,
                });
            };
            // A generation's first snapshot is its state when it started (and it started by
            // `at`, checked above), however late it was uploaded.
            let usable = txn == 0
                || snapshot_head(store, key, name, generation).await?.2.taken_ms <= at
                // Built later than `at` (e.g. in the background), but it may hold only
                // transactions committed before `at`.
                || commit_time_of(store, objects, name, generation, txn)
                    .await?
                    .is_some_and(|commit| commit <= at);
            if usable {
                return Ok(Plan {
                    generation: generation.clone(),
                    snapshot_key: key.clone(),
                    snapshot_txn: txn,
                });
            }
        }
        tracing::warn!(
            database = name,
            %generation,
            "backup generation has no usable snapshot{}; trying an older one",
            at_text(at)
        );
    }
    if catalog.generations.is_empty() && catalog.tombstones.is_empty() {
        return Err(RestoreError::NotFound(name.to_owned()));
    }
    Err(RestoreError::NoSnapshot {
        name: name.to_owned(),
        at_ms: at,
    })
}

/// What the writer thread does with the file.
enum Op {
    /// Snapshot bytes: hash `hash` (body bytes, in order), then write `write` at its offset.
    Snapshot {
        hash: Bytes,
        write: Option<(u64, Bytes)>,
    },
    /// The end of the snapshot body: its SHA-256 must be this.
    SnapshotEnd { expected: [u8; 32], key: String },
    /// One whole transaction: its pages, then the file cut to its size.
    Txn { segment: Arc<Segment>, index: usize },
}

/// The blocking side: writes the file, returns its final size in pages.
fn writer(
    file: File,
    page_size: u64,
    mut ops: tokio::sync::mpsc::Receiver<Op>,
) -> Result<u64, RestoreError> {
    let mut hasher = Sha256::new();
    let mut db_pages = 0u64;
    while let Some(op) = ops.blocking_recv() {
        match op {
            Op::Snapshot { hash, write } => {
                hasher.update(&hash);
                if let Some((offset, data)) = write {
                    file.write_all_at(&data, offset)
                        .map_err(io_err("write the restored file"))?;
                }
            }
            Op::SnapshotEnd { expected, key } => {
                let actual: [u8; 32] = std::mem::take(&mut hasher).finalize().into();
                if actual != expected {
                    return Err(RestoreError::Format {
                        key,
                        source: FormatError::Checksum("body"),
                    });
                }
                db_pages = file
                    .metadata()
                    .map_err(io_err("read the restored file"))?
                    .len()
                    / page_size;
            }
            Op::Txn { segment, index } => {
                let Some(txn) = segment.txns.get(index) else {
                    continue;
                };
                for page in &txn.pages {
                    let offset = u64::from(page.number - 1) * page_size;
                    file.write_all_at(&page.data, offset)
                        .map_err(io_err("write the restored file"))?;
                }
                db_pages = u64::from(txn.db_pages);
                file.set_len(db_pages * page_size)
                    .map_err(io_err("size the restored file"))?;
            }
        }
    }
    file.sync_all().map_err(io_err("fsync the restored file"))?;
    Ok(db_pages)
}

/// Restores database `name` into the new file `dest` (its folder must exist; the file must
/// not), checked and in WAL mode. On error `dest` is removed.
pub async fn restore_database(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    options: &RestoreOptions,
    dest: &FsPath,
) -> Result<Restored, RestoreError> {
    if !is_valid_db_name(name) {
        return Err(RestoreError::InvalidName(name.to_owned()));
    }
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                RestoreError::Exists(dest.to_owned())
            } else {
                RestoreError::Io {
                    what: "create the restored file",
                    source: e,
                }
            }
        })?;
    let result = restore_into(store, name, options, dest, file).await;
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
        for suffix in ["-wal", "-shm"] {
            let mut side = dest.as_os_str().to_owned();
            side.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(side));
        }
    }
    result
}

async fn restore_into(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    options: &RestoreOptions,
    dest: &FsPath,
    file: File,
) -> Result<Restored, RestoreError> {
    let parallelism = options.parallelism.max(1);
    let catalog = catalog(store.as_ref(), name).await?;
    let plan = plan(store.as_ref(), name, &catalog, options).await?;
    let generation = plan.generation.clone();
    let objects = catalog
        .generations
        .get(&generation)
        .ok_or_else(|| RestoreError::NotFound(name.to_owned()))?;

    let key = &plan.snapshot_key;
    let (header, header_len, head, size) =
        snapshot_head(store.as_ref(), key, name, &generation).await?;
    if head.txn != plan.snapshot_txn {
        return Err(RestoreError::Format {
            key: key.to_string(),
            source: FormatError::Mismatch(format!(
                "snapshot of transaction {} at the key of {}",
                head.txn, plan.snapshot_txn
            )),
        });
    }
    let page_size = u64::from(head.page_size);
    let (tx, rx) = tokio::sync::mpsc::channel::<Op>(parallelism);
    let writer_task = tokio::task::spawn_blocking(move || writer(file, page_size, rx));

    let fed = feed(
        store,
        name,
        options,
        &plan,
        objects,
        FeedSnapshot {
            header_len: header_len as u64,
            size,
            expected: header.body_sha256,
            page_size: head.page_size,
        },
        &tx,
    )
    .await;
    drop(tx);
    let written = writer_task.await.map_err(|e| RestoreError::Io {
        what: "write the restored file",
        source: io::Error::other(e.to_string()),
    });
    // The writer's own error explains a failed send best; otherwise the feeder's.
    let db_pages = written??;
    let mut restored = fed?;
    restored.db_pages = db_pages;

    let path = dest.to_owned();
    let checked = tokio::task::spawn_blocking(move || import::check_and_prepare(&path, None))
        .await
        .map_err(|e| RestoreError::Io {
            what: "check the restored file",
            source: io::Error::other(e.to_string()),
        })?;
    match checked {
        Ok(file) => {
            restored.db_pages = file.page_count;
            restored.page_size = file.page_size;
        }
        Err(ImportError::Internal(message)) => {
            return Err(RestoreError::Io {
                what: "check the restored file",
                source: io::Error::other(message),
            })
        }
        Err(
            ImportError::Corrupt(message)
            | ImportError::NotADatabase(message)
            | ImportError::PageCountMismatch(message),
        ) => {
            return Err(RestoreError::Check {
                name: name.to_owned(),
                message,
            })
        }
    }
    tracing::info!(
        database = name,
        %generation,
        txn = restored.txn,
        pages = restored.db_pages,
        "restored database from the backup"
    );
    Ok(restored)
}

struct FeedSnapshot {
    header_len: u64,
    size: u64,
    expected: [u8; 32],
    page_size: u32,
}

/// Sends the snapshot and then the segments to the writer.
async fn feed(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    options: &RestoreOptions,
    plan: &Plan,
    objects: &GenerationObjects,
    snapshot: FeedSnapshot,
    tx: &tokio::sync::mpsc::Sender<Op>,
) -> Result<Restored, RestoreError> {
    let parallelism = options.parallelism.max(1);
    let key = plan.snapshot_key.clone();
    let generation = &plan.generation;
    let mut downloaded = 0u64;
    let closed = || RestoreError::Io {
        what: "write the restored file",
        source: io::Error::other("the writer stopped"),
    };

    // 1. The snapshot, in ranged GETs, in order.
    let body_start = snapshot.header_len;
    let file_start = body_start + SNAPSHOT_HEAD_LEN as u64;
    let mut ranges = Vec::new();
    let mut at = 0u64;
    while at < snapshot.size {
        let len = if at == 0 { FIRST_CHUNK } else { SNAPSHOT_CHUNK };
        let end = (at + len).min(snapshot.size);
        ranges.push(at..end);
        at = end;
    }
    let mut chunks = stream::iter(ranges)
        .map(|range| {
            let store = store.clone();
            let key = key.clone();
            async move {
                let bytes = store.get_range(&key, range.clone()).await?;
                if bytes.len() as u64 != range.end - range.start {
                    return Err(RestoreError::Format {
                        key: key.to_string(),
                        source: FormatError::Truncated("snapshot"),
                    });
                }
                Ok::<_, RestoreError>((range.start, bytes))
            }
        })
        .buffered(parallelism);
    while let Some(chunk) = chunks.next().await {
        let (start, bytes) = chunk?;
        downloaded += bytes.len() as u64;
        let end = start + bytes.len() as u64;
        let hash_from = body_start.max(start).min(end);
        let hash = bytes.slice((hash_from - start) as usize..);
        let write_from = file_start.max(start).min(end);
        let write = (write_from < end).then(|| {
            (
                write_from - file_start,
                bytes.slice((write_from - start) as usize..),
            )
        });
        tx.send(Op::Snapshot { hash, write })
            .await
            .map_err(|_| closed())?;
    }
    tx.send(Op::SnapshotEnd {
        expected: snapshot.expected,
        key: key.to_string(),
    })
    .await
    .map_err(|_| closed())?;

    // 2. The segments along the chain from the snapshot's next transaction.
    let mut restored = Restored {
        name: name.to_owned(),
        generation: generation.clone(),
        txn: plan.snapshot_txn,
        last_commit_ms: None,
        snapshot_txn: plan.snapshot_txn,
        txns_applied: 0,
        db_pages: 0,
        page_size: u64::from(snapshot.page_size),
        bytes_downloaded: 0,
    };
    let next = plan.snapshot_txn + 1;
    // The segment holding `next` may start before it (a snapshot built mid-segment).
    let start = objects
        .segments
        .range(..=next)
        .next_back()
        .map_or(next, |(&first, _)| first);
    let candidates: Vec<(u64, Path)> = objects
        .segments
        .range(start..)
        .map(|(&first, key)| (first, key.clone()))
        .collect();
    let mut segments = stream::iter(candidates)
        .map(|(first, key)| {
            let store = store.clone();
            let name = name.to_owned();
            let generation = generation.clone();
            async move {
                let bytes = store.get(&key).await?.bytes().await?;
                let len = bytes.len() as u64;
                let decoded = tokio::task::spawn_blocking(move || decode_chain_object(&bytes))
                    .await
                    .map_err(|e| RestoreError::Io {
                        what: "decode a segment",
                        source: io::Error::other(e.to_string()),
                    })?;
                let (header, object) = decoded.map_err(format_err(&key))?;
                if header.db_name != name || header.generation != generation {
                    return Err(RestoreError::Format {
                        key: key.to_string(),
                        source: FormatError::Mismatch(format!(
                            "object of {}/{} at a key of {name}/{generation}",
                            header.db_name, header.generation
                        )),
                    });
                }
                Ok::<_, RestoreError>((first, key, len, object))
            }
        })
        .buffered(parallelism);
    let mut expected = next;
    'chain: while let Some(item) = segments.next().await {
        let (first, key, len, object) = item?;
        downloaded += len;
        let segment = match object {
            ChainObject::Seal => {
                if first <= expected {
                    break 'chain;
                }
                continue;
            }
            ChainObject::Segment(segment) => Arc::new(segment),
        };
        let Some((seg_first, seg_last)) = segment.range() else {
            continue;
        };
        if seg_first != first {
            return Err(RestoreError::Format {
                key: key.to_string(),
                source: FormatError::Mismatch(format!(
                    "segment starting at transaction {seg_first} at the key of {first}"
                )),
            });
        }
        if seg_last < expected {
            // Entirely before the restore point (or a stray overlapping object): not needed.
            continue;
        }
        if seg_first > expected {
            tracing::warn!(
                database = name,
                %generation,
                "the backup's history has a gap after transaction {}: restored up to it",
                expected - 1
            );
            break;
        }
        if u64::from(segment.page_size) != restored.page_size {
            return Err(RestoreError::Format {
                key: key.to_string(),
                source: FormatError::Invalid(format!(
                    "segment of page size {} after a snapshot of page size {}",
                    segment.page_size, restored.page_size
                )),
            });
        }
        // A deduplicated segment is only restorable at its end: apply it whole if its last
        // commit is at or before the target, else stop before it (segments never straddle a
        // second, so a target at a second boundary stays exact).
        if segment.deduplicated
            && options
                .at_ms
                .is_some_and(|at| segment.txns.last().is_some_and(|last| last.commit_ms > at))
        {
            break 'chain;
        }
        for (index, txn) in segment.txns.iter().enumerate() {
            if txn.txn < expected {
                continue;
            }
            if options.at_ms.is_some_and(|at| txn.commit_ms > at) {
                break 'chain;
            }
            tx.send(Op::Txn {
                segment: segment.clone(),
                index,
            })
            .await
            .map_err(|_| closed())?;
            restored.txn = txn.txn;
            restored.last_commit_ms = Some(txn.commit_ms);
            restored.txns_applied += 1;
            expected = txn.txn + 1;
        }
    }
    restored.bytes_downloaded = downloaded;
    Ok(restored)
}

/// An object at a segment key.
enum ChainObject {
    Segment(Segment),
    Seal,
}

fn decode_chain_object(bytes: &[u8]) -> Result<(ObjectHeader, ChainObject), FormatError> {
    let (header, body) = format::decode_object(bytes)?;
    let object = match header.kind {
        ObjectKind::Segment => ChainObject::Segment(Segment::decode(body)?),
        ObjectKind::Seal => {
            format::Seal::decode(body)?;
            ChainObject::Seal
        }
        other => {
            return Err(FormatError::Mismatch(format!(
                "a {other:?} at a segment key"
            )))
        }
    };
    Ok((header, object))
}

/// Restores every database of the backup (or only `only`) into `data_dir`, one folder each
/// (`NAME/data.db`, the server's layout), each written in a hidden `.import-*` folder first and
/// renamed into place when complete (the server removes such leftovers at start). Deleted
/// databases are skipped unless `options.include_deleted`. Refuses, before downloading
/// anything, if one of the databases exists in `data_dir` already.
pub async fn restore_all(
    store: &Arc<dyn ObjectStore>,
    data_dir: &FsPath,
    only: Option<&str>,
    options: &RestoreOptions,
) -> Result<Vec<Restored>, RestoreError> {
    let names = match only {
        Some(name) => {
            if !is_valid_db_name(name) {
                return Err(RestoreError::InvalidName(name.to_owned()));
            }
            vec![name.to_owned()]
        }
        None => list_databases(store.as_ref()).await?,
    };
    for name in &names {
        let existing = data_dir.join(name).join("data.db");
        if existing.exists() {
            return Err(RestoreError::Exists(existing));
        }
    }
    fs_durable::create_dir_all(data_dir).map_err(io_err("create the data folder"))?;
    let mut restored = Vec::new();
    for name in &names {
        let tmp = data_dir.join(format!(".import-{name}-restore-{}", random_suffix()));
        fs_durable::create_dir(&tmp).map_err(io_err("create a temporary folder"))?;
        let outcome = restore_database(store, name, options, &tmp.join("data.db")).await;
        let one = match outcome {
            Ok(one) => one,
            Err(RestoreError::Deleted { .. }) if only.is_none() => {
                let _ = std::fs::remove_dir_all(&tmp);
                tracing::info!(database = %name, "not restored: deleted (a tombstone)");
                continue;
            }
            Err(RestoreError::NoSnapshot { .. }) if only.is_none() && options.at_ms.is_some() => {
                // Did not exist yet at that time.
                let _ = std::fs::remove_dir_all(&tmp);
                continue;
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let dest = data_dir.join(name);
        if dest.exists() {
            // A folder without a database file (checked above): not a database.
            let _ = std::fs::remove_dir(&dest);
        }
        fs_durable::rename(&tmp, &dest).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            RestoreError::Io {
                what: "move the restored database into place",
                source: e,
            }
        })?;
        restored.push(one);
    }
    Ok(restored)
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::getrandom(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Restore-on-start: if `data_dir` holds no database yet (missing, empty, or only hidden
/// folders such as `.skylite`), restores every live database of the backup into it and returns
/// what it restored; otherwise does nothing and returns `None`. `skylite serve --backup` calls
/// this before it opens the data folder, so a server started on an empty disk comes back with
/// its databases.
pub async fn restore_if_empty(
    store: &Arc<dyn ObjectStore>,
    data_dir: &FsPath,
    options: &RestoreOptions,
) -> Result<Option<Vec<Restored>>, RestoreError> {
    if has_databases(data_dir).map_err(io_err("read the data folder"))? {
        return Ok(None);
    }
    restore_all(store, data_dir, None, options).await.map(Some)
}

/// True if `data_dir` has a database folder (`NAME/data.db`).
fn has_databases(data_dir: &FsPath) -> io::Result<bool> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with('.') && entry.path().join("data.db").exists() {
            return Ok(true);
        }
    }
    Ok(false)
}
