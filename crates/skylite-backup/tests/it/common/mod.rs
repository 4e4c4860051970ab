//! Helpers of the backup tests: a store that fails on demand, running SQL through the engine,
//! and a minimal rebuild of a database from the store (snapshot + segments) to compare with the
//! live one.

#![allow(dead_code)]

use std::fmt;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use skylite_backup::format::{self, GenerationId, ObjectKey, ObjectKind};
use skylite_engine::{Budget, ExecError, Session};
use skylite_proto::{Stmt, StmtResult};

/// An in-memory store that fails every request while `down` is set, and counts PUTs.
#[derive(Debug, Default)]
pub struct Flaky {
    pub inner: InMemory,
    pub down: AtomicBool,
    pub puts: AtomicU64,
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky")
    }
}

impl Flaky {
    fn check(&self) -> object_store::Result<()> {
        if self.down.load(Ordering::Acquire) {
            return Err(object_store::Error::Generic {
                store: "flaky",
                source: "the store is down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }
    async fn get_range(
        &self,
        location: &StorePath,
        range: Range<u64>,
    ) -> object_store::Result<bytes::Bytes> {
        self.check()?;
        self.inner.get_range(location, range).await
    }
    async fn delete(&self, location: &StorePath) -> object_store::Result<()> {
        self.check()?;
        self.inner.delete(location).await
    }
    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Err(e) = self.check() {
            return futures_util::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &StorePath, to: &StorePath) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(
        &self,
        from: &StorePath,
        to: &StorePath,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_if_not_exists(from, to).await
    }
}

pub fn exec(s: &mut Session, sql: &str) -> Result<StmtResult, ExecError> {
    let r = s.execute(&Stmt::new(sql), &mut Budget::new(1 << 24));
    let durable = s.finish_pipeline();
    let r = r?;
    durable?;
    Ok(r)
}

pub fn ok(s: &mut Session, sql: &str) -> StmtResult {
    exec(s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every row of `t` (id, hex(v)) in order.
pub fn fingerprint(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, hex(v) FROM t ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(format!(
            "{}:{}",
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub async fn get(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    store
        .get(&StorePath::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

pub async fn keys(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list(Some(&StorePath::from(prefix)))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    keys.sort();
    keys
}

/// The generations of `name`, oldest first.
pub async fn generations(store: &dyn ObjectStore, name: &str) -> Vec<GenerationId> {
    let listing = store
        .list_with_delimiter(Some(&StorePath::from(format::db_prefix(name))))
        .await
        .unwrap();
    let mut gens: Vec<GenerationId> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().and_then(|f| GenerationId::parse(f).ok()))
        .collect();
    gens.sort();
    gens
}

/// What a rebuild found.
pub struct Rebuilt {
    pub path: PathBuf,
    /// Last transaction applied.
    pub last_txn: u64,
    /// Whether the generation ends with a seal.
    pub sealed: bool,
    /// Writer ids of the segments applied.
    pub writers: Vec<String>,
}

/// Rebuilds `generation` of `name` into `dir/rebuilt-GEN.db`: snapshot 0, then every segment
/// in order, checking that transactions are consecutive.
pub async fn rebuild(
    store: &dyn ObjectStore,
    name: &str,
    generation: &GenerationId,
    dir: &Path,
) -> Rebuilt {
    let path = dir.join(format!("rebuilt-{generation}.db"));
    let snap = get(store, &format::snapshot_key(name, generation, 0)).await;
    let (header, body) = format::decode_object(&snap).unwrap();
    header
        .expect(ObjectKind::Snapshot, name, generation)
        .unwrap();
    let head = format::SnapshotHead::decode(body).unwrap();
    std::fs::write(&path, &body[format::SNAPSHOT_HEAD_LEN..]).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut next = head.txn + 1;
    let mut sealed = false;
    let mut writers = Vec::new();
    for key in keys(store, &format::segments_prefix(name, generation)).await {
        let Some(ObjectKey::Segment { first, .. }) = ObjectKey::parse(&key) else {
            panic!("unexpected key {key}");
        };
        assert_eq!(first, next, "segments are contiguous");
        let bytes = get(store, &key).await;
        let (header, body) = format::decode_object(&bytes).unwrap();
        if header.kind == ObjectKind::Seal {
            sealed = true;
            break;
        }
        header
            .expect(ObjectKind::Segment, name, generation)
            .unwrap();
        writers.push(header.writer_id.clone());
        let seg = format::Segment::decode(body).unwrap();
        for t in &seg.txns {
            assert_eq!(t.txn, next);
            for p in &t.pages {
                file.write_all_at(&p.data, u64::from(p.number - 1) * u64::from(seg.page_size))
                    .unwrap();
            }
            file.set_len(u64::from(t.db_pages) * u64::from(seg.page_size))
                .unwrap();
            next += 1;
        }
    }
    file.sync_all().unwrap();
    let check: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    Rebuilt {
        path,
        last_txn: next - 1,
        sealed,
        writers,
    }
}

/// Polls `f` every 20 ms until it holds or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

pub fn flaky() -> Arc<Flaky> {
    Arc::new(Flaky::default())
}
