//! The backup's contract: where objects live (keys relative to the backup prefix) and the binary
//! encoding of every object (segments, snapshots, seals, tombstones), with encode and decode.
//!
//! Writers and readers (backup, restore, fork at a time) share nothing else, so this file only
//! ever changes additively: a new object kind, a new field appended to a header or a body
//! head (older readers skip what they do not know, bounded by the stored lengths). Anything
//! else needs a new [`FORMAT_VERSION`].
//!
//! # Keys
//!
//! ```text
//! dbs/NAME/GEN/snapshots/TXN.snap    a full database image as of transaction TXN
//! dbs/NAME/GEN/segments/FIRST.seg    transactions FIRST..=LAST (LAST is in the object), or a seal
//! dbs/NAME/tombstone-GEN             the database was deleted while GEN was its generation
//! ```
//!
//! `TXN` and `FIRST` are 20-digit zero-padded decimals and `GEN` is 24 lowercase hex digits
//! (16 of unix milliseconds, 8 random), so a lexicographic listing is in numeric and time order.
//!
//! A segment's key holds only its FIRST transaction, on purpose: it is the fence. Every segment
//! is written create-only (`If-None-Match: *`), and the key of the next segment of a history is
//! predictable (the last one's LAST + 1), so two servers continuing one history race for the
//! same key and exactly one wins; the loser reads the winner's header (another writer id) and
//! stops. A server that starts a new generation over a generation it did not write first puts a
//! *seal* at that generation's next key, which fences any server still writing there.
//!
//! # Objects
//!
//! Every object is a header followed by a body. The header (all integers little-endian):
//!
//! ```text
//! magic "SKYLBAK\0" (8) | version u16 | kind u8 | reserved u8 | header_len u32
//! | db name (u16 len + UTF-8) | generation (u16 len + ASCII) | writer id (u16 len + UTF-8)
//! | body_len u64 | body SHA-256 (32) | ...fields added later... | SHA-256 of all the above (32)
//! ```
//!
//! `header_len` counts the whole header including its checksum, so a reader that knows fewer
//! fields skips to the body. The body checksum lets a restore detect corruption; the name and
//! generation in the header detect objects copied to the wrong place.
//!
//! Bodies (little-endian):
//! - segment: `page_size u32 | txn_count u32 | first_txn u64 | last_txn u64 | first_commit_ms u64
//!   | last_commit_ms u64` then per transaction `txn u64 | commit_ms u64 | db_pages u32 |
//!   page_count u32` and `page_count` times `page_no u32 | page bytes (page_size)`. Transactions
//!   are consecutive; a page appears at most once per transaction; `db_pages` is the database
//!   size in pages after the commit (the file is truncated to it). An optional trailer
//!   `flags u32` follows the last transaction; bit 0 (`SEGMENT_DEDUPLICATED`) says each page
//!   appears at most once in the whole segment, under the last transaction that wrote it
//!   (earlier versions dropped), so the segment can only be applied whole: a restore stops
//!   before it or after its last transaction, never inside. Writers cut segments so that they
//!   never straddle a wall-clock second, which keeps "restore to second T" exact. A segment
//!   without the trailer (as written before) can be applied transaction by transaction; a
//!   reader that predates the trailer refuses a deduplicated segment ("bytes after the last
//!   transaction") instead of restoring it wrongly.
//! - snapshot: `page_size u32 | db_pages u32 | txn u64 | taken_ms u64` then the database file,
//!   `db_pages * page_size` bytes (page 1 first). It holds transactions 1..=txn of the generation
//!   (a generation's first snapshot is txn 0: the state it started from).
//! - seal: `next_generation (u16 len + ASCII) | sealed_ms u64`. The generation has no transaction
//!   at or after the seal's key; its history continues in `next_generation` (maybe empty when
//!   the database was only closed for good).
//! - tombstone: `deleted_ms u64`.

use sha2::{Digest, Sha256};

/// The object header's magic bytes.
pub const MAGIC: [u8; 8] = *b"SKYLBAK\0";
/// The version this code writes; readers accept it and older ones.
pub const FORMAT_VERSION: u16 = 1;
/// Segment trailer flag: each page appears once in the segment (apply it whole only).
pub const SEGMENT_DEDUPLICATED: u32 = 1;
/// The fixed part of a header before its variable fields: magic, version, kind, reserved and
/// `header_len`. Read this many bytes to learn the full header's length.
pub const HEADER_PREFIX_LEN: usize = 16;
/// A header longer than this is refused (protects a reader from a corrupt length).
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// Length of the fixed head of a snapshot body.
pub const SNAPSHOT_HEAD_LEN: usize = 24;
/// Length of the fixed head of a segment body.
pub const SEGMENT_HEAD_LEN: usize = 40;
/// Length of a transaction's head inside a segment body.
pub const TXN_HEAD_LEN: usize = 24;
/// The smallest and largest SQLite page sizes.
pub const PAGE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 512..=65536;

/// Why an object or a key could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// The bytes do not start with [`MAGIC`].
    #[error("not a skylite backup object (bad magic)")]
    BadMagic,
    /// Written by a newer skylite.
    #[error("backup format version {0} is newer than this skylite understands ({FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    /// The object ends early.
    #[error("backup object truncated: {0}")]
    Truncated(&'static str),
    /// A checksum does not match: the object is corrupt.
    #[error("backup object corrupt: {0} checksum mismatch")]
    Checksum(&'static str),
    /// A field holds an impossible value.
    #[error("backup object invalid: {0}")]
    Invalid(String),
    /// The object is not the kind, database or generation its key says.
    #[error("backup object mismatch: {0}")]
    Mismatch(String),
}

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    /// Consecutive committed transactions.
    Segment = 1,
    /// A full database image.
    Snapshot = 2,
    /// The end of a generation, at a segment key.
    Seal = 3,
    /// The database was deleted.
    Tombstone = 4,
}

impl ObjectKind {
    fn from_u8(v: u8) -> Result<Self, FormatError> {
        Ok(match v {
            1 => Self::Segment,
            2 => Self::Snapshot,
            3 => Self::Seal,
            4 => Self::Tombstone,
            other => return Err(FormatError::Invalid(format!("unknown object kind {other}"))),
        })
    }
}

/// A generation id: 16 hex digits of unix milliseconds then 8 random hex digits, lowercase.
/// Ordering of the strings is ordering by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenerationId(String);

impl GenerationId {
    /// The number of characters of an id.
    pub const LEN: usize = 24;

    /// A new id for a generation started at `unix_ms`, with a random suffix.
    pub fn new_at(unix_ms: u64) -> Self {
        let mut random = [0u8; 4];
        // Without OS randomness the suffix is zeros; the millisecond part still orders ids and
        // a clash only makes a create-only PUT fail, which the writer handles.
        let _ = getrandom::getrandom(&mut random);
        Self(format!("{unix_ms:016x}{:08x}", u32::from_le_bytes(random)))
    }

    /// Parses an id as found in a key.
    pub fn parse(s: &str) -> Result<Self, FormatError> {
        if s.len() == Self::LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(FormatError::Invalid(format!("bad generation id {s:?}")))
        }
    }

    /// When the generation started (unix milliseconds).
    pub fn unix_millis(&self) -> u64 {
        self.0
            .get(..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    }

    /// The id as it appears in keys.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GenerationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `dbs/NAME/`: everything of one database.
pub fn db_prefix(name: &str) -> String {
    format!("dbs/{name}/")
}

/// `dbs/NAME/GEN/`: everything of one generation.
pub fn generation_prefix(name: &str, generation: &GenerationId) -> String {
    format!("dbs/{name}/{generation}/")
}

/// `dbs/NAME/GEN/segments/`: the segments (and seal) of one generation.
pub fn segments_prefix(name: &str, generation: &GenerationId) -> String {
    format!("dbs/{name}/{generation}/segments/")
}

/// `dbs/NAME/GEN/snapshots/`: the snapshots of one generation.
pub fn snapshots_prefix(name: &str, generation: &GenerationId) -> String {
    format!("dbs/{name}/{generation}/snapshots/")
}

/// The key of the segment (or seal) whose first transaction is `first`.
pub fn segment_key(name: &str, generation: &GenerationId, first: u64) -> String {
    format!("dbs/{name}/{generation}/segments/{first:020}.seg")
}

/// The key of the snapshot as of transaction `txn`.
pub fn snapshot_key(name: &str, generation: &GenerationId, txn: u64) -> String {
    format!("dbs/{name}/{generation}/snapshots/{txn:020}.snap")
}

/// The key of the tombstone left when the database was deleted in `generation`.
pub fn tombstone_key(name: &str, generation: &GenerationId) -> String {
    format!("dbs/{name}/tombstone-{generation}")
}

/// A key of the backup, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKey {
    /// `dbs/NAME/GEN/segments/FIRST.seg`
    Segment {
        /// Database name.
        name: String,
        /// Generation.
        generation: GenerationId,
        /// First transaction in the object.
        first: u64,
    },
    /// `dbs/NAME/GEN/snapshots/TXN.snap`
    Snapshot {
        /// Database name.
        name: String,
        /// Generation.
        generation: GenerationId,
        /// The snapshot holds transactions up to this one.
        txn: u64,
    },
    /// `dbs/NAME/tombstone-GEN`
    Tombstone {
        /// Database name.
        name: String,
        /// Generation that was current when the database was deleted.
        generation: GenerationId,
    },
}

fn parse_number(s: &str) -> Option<u64> {
    (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl ObjectKey {
    /// Parses a key relative to the backup prefix; `None` for keys that are not ours (other
    /// files in the bucket are ignored, not errors).
    pub fn parse(key: &str) -> Option<Self> {
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            ["dbs", name, tomb] => {
                let generation = GenerationId::parse(tomb.strip_prefix("tombstone-")?).ok()?;
                Some(Self::Tombstone {
                    name: (*name).to_owned(),
                    generation,
                })
            }
            ["dbs", name, generation, "segments", file] => Some(Self::Segment {
                name: (*name).to_owned(),
                generation: GenerationId::parse(generation).ok()?,
                first: parse_number(file.strip_suffix(".seg")?)?,
            }),
            ["dbs", name, generation, "snapshots", file] => Some(Self::Snapshot {
                name: (*name).to_owned(),
                generation: GenerationId::parse(generation).ok()?,
                txn: parse_number(file.strip_suffix(".snap")?)?,
            }),
            _ => None,
        }
    }
}

/// The header every object starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHeader {
    /// What the body is.
    pub kind: ObjectKind,
    /// The database.
    pub db_name: String,
    /// Its generation.
    pub generation: GenerationId,
    /// The server (data folder) that wrote the object; a different one at a key we meant to
    /// create means another server writes this history (fencing).
    pub writer_id: String,
    /// Length of the body in bytes.
    pub body_len: u64,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
}

/// Appends little-endian integers and length-prefixed strings.
struct Writer(Vec<u8>);

impl Writer {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        // Names, ids and generations are short; a longer string is cut rather than wrapped.
        let bytes = s.as_bytes();
        let len = bytes.len().min(u16::MAX as usize);
        self.u16(len as u16);
        self.0.extend_from_slice(&bytes[..len]);
    }
}

/// Reads what [`Writer`] wrote, never past the end.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.buf.len() < n {
            return Err(FormatError::Truncated(self.what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn str(&mut self) -> Result<String, FormatError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| FormatError::Invalid(format!("{}: string is not UTF-8", self.what)))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl ObjectHeader {
    /// A header for `body`.
    pub fn for_body(
        kind: ObjectKind,
        db_name: &str,
        generation: &GenerationId,
        writer_id: &str,
        body: &[u8],
    ) -> Self {
        Self {
            kind,
            db_name: db_name.to_owned(),
            generation: generation.clone(),
            writer_id: writer_id.to_owned(),
            body_len: body.len() as u64,
            body_sha256: sha256(body),
        }
    }

    /// The header's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(128));
        w.0.extend_from_slice(&MAGIC);
        w.u16(FORMAT_VERSION);
        w.0.push(self.kind as u8);
        w.0.push(0);
        w.u32(0); // header_len, patched below
        w.str(&self.db_name);
        w.str(self.generation.as_str());
        w.str(&self.writer_id);
        w.u64(self.body_len);
        w.0.extend_from_slice(&self.body_sha256);
        let header_len = (w.0.len() + 32) as u32;
        w.0[12..16].copy_from_slice(&header_len.to_le_bytes());
        let checksum = sha256(&w.0);
        w.0.extend_from_slice(&checksum);
        w.0
    }

    /// The full header length announced by the first [`HEADER_PREFIX_LEN`] bytes of an object
    /// (checks magic and version), so a streaming reader knows how much to read.
    pub fn header_len(prefix: &[u8]) -> Result<usize, FormatError> {
        let mut r = Reader {
            buf: prefix,
            what: "header",
        };
        if r.array::<8>()? != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = r.u16()?;
        if version == 0 || version > FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let _kind = r.u8()?;
        let _reserved = r.u8()?;
        let len = r.u32()? as usize;
        if !(HEADER_PREFIX_LEN + 32..=MAX_HEADER_LEN).contains(&len) {
            return Err(FormatError::Invalid(format!("header length {len}")));
        }
        Ok(len)
    }

    /// Decodes the header at the start of `bytes` (which may hold more: the body) and returns it
    /// with its length. Checks magic, version and the header checksum; not the body.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), FormatError> {
        let len = Self::header_len(bytes)?;
        let header = bytes.get(..len).ok_or(FormatError::Truncated("header"))?;
        let (fields, checksum) = header.split_at(len - 32);
        if sha256(fields) != checksum {
            return Err(FormatError::Checksum("header"));
        }
        let mut r = Reader {
            buf: fields.get(HEADER_PREFIX_LEN..).unwrap_or_default(),
            what: "header",
        };
        let kind = ObjectKind::from_u8(*fields.get(10).ok_or(FormatError::Truncated("header"))?)?;
        let db_name = r.str()?;
        let generation = GenerationId::parse(&r.str()?)?;
        let writer_id = r.str()?;
        let body_len = r.u64()?;
        let body_sha256 = r.array::<32>()?;
        // Whatever follows (fields of a later version of this format) is skipped.
        Ok((
            Self {
                kind,
                db_name,
                generation,
                writer_id,
                body_len,
                body_sha256,
            },
            len,
        ))
    }

    /// Checks that the header is the `kind`, database and generation its key promises.
    pub fn expect(
        &self,
        kind: ObjectKind,
        db_name: &str,
        generation: &GenerationId,
    ) -> Result<(), FormatError> {
        if self.kind != kind || self.db_name != db_name || &self.generation != generation {
            return Err(FormatError::Mismatch(format!(
                "expected {kind:?} of {db_name}/{generation}, found {:?} of {}/{}",
                self.kind, self.db_name, self.generation
            )));
        }
        Ok(())
    }
}

/// A whole object: header + body.
pub fn encode_object(
    kind: ObjectKind,
    db_name: &str,
    generation: &GenerationId,
    writer_id: &str,
    body: &[u8],
) -> Vec<u8> {
    let header = ObjectHeader::for_body(kind, db_name, generation, writer_id, body).encode();
    let mut out = Vec::with_capacity(header.len() + body.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

/// Splits a whole object into its header and body, checking both checksums and the length.
pub fn decode_object(bytes: &[u8]) -> Result<(ObjectHeader, &[u8]), FormatError> {
    let (header, len) = ObjectHeader::decode(bytes)?;
    let body = bytes.get(len..).unwrap_or_default();
    if body.len() as u64 != header.body_len {
        return Err(if (body.len() as u64) < header.body_len {
            FormatError::Truncated("body")
        } else {
            FormatError::Invalid("bytes after the body".into())
        });
    }
    if sha256(body) != header.body_sha256 {
        return Err(FormatError::Checksum("body"));
    }
    Ok((header, body))
}

/// One page as changed by a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Page number (1-based, as in SQLite).
    pub number: u32,
    /// Its bytes (exactly the segment's page size).
    pub data: Vec<u8>,
}

/// One committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// Its number in the generation (1, 2, 3...).
    pub txn: u64,
    /// When it committed (unix milliseconds).
    pub commit_ms: u64,
    /// Database size in pages after it.
    pub db_pages: u32,
    /// The pages it wrote (last version of each).
    pub pages: Vec<Page>,
}

/// A segment: consecutive transactions, all of one page size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The database's page size.
    pub page_size: u32,
    /// The transactions, consecutive numbers, at least one.
    pub txns: Vec<Txn>,
    /// Each page is kept only under the last transaction of the segment that wrote it, so the
    /// state between its transactions is not recoverable: a restore applies it whole or not at
    /// all. [`Segment::encode`] drops the earlier page versions itself when this is set; the
    /// transactions (numbers, commit times, sizes) are all kept.
    pub deduplicated: bool,
}

/// The head of a segment body, readable without decoding the pages (for planning a
/// point-in-time restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHead {
    /// Page size.
    pub page_size: u32,
    /// Number of transactions.
    pub txn_count: u32,
    /// First transaction.
    pub first_txn: u64,
    /// Last transaction.
    pub last_txn: u64,
    /// Commit time of the first transaction (unix ms).
    pub first_commit_ms: u64,
    /// Commit time of the last transaction (unix ms).
    pub last_commit_ms: u64,
}

fn check_page_size(page_size: u32) -> Result<(), FormatError> {
    if PAGE_SIZE_RANGE.contains(&page_size) && page_size.is_power_of_two() {
        Ok(())
    } else {
        Err(FormatError::Invalid(format!("page size {page_size}")))
    }
}

impl Segment {
    /// The first and last transaction numbers.
    pub fn range(&self) -> Option<(u64, u64)> {
        Some((self.txns.first()?.txn, self.txns.last()?.txn))
    }

    /// The body bytes. Panics never; the writer guarantees consecutive transactions and pages
    /// of `page_size` bytes (checked again by [`Segment::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        // For a deduplicated segment, the index of the last transaction writing each page: a
        // page version is written only there. Hot pages (the b-tree root and the pages a
        // sequence of inserts keeps touching) repeat in most transactions, so this cuts both
        // the bytes hashed and uploaded and the restore work.
        let last_writer: std::collections::HashMap<u32, usize> = if self.deduplicated {
            self.txns
                .iter()
                .enumerate()
                .flat_map(|(i, t)| t.pages.iter().map(move |p| (p.number, i)))
                .collect()
        } else {
            std::collections::HashMap::new()
        };
        let kept =
            |i: usize, p: &Page| !self.deduplicated || last_writer.get(&p.number) == Some(&i);
        let pages: usize = self
            .txns
            .iter()
            .enumerate()
            .map(|(i, t)| t.pages.iter().filter(|p| kept(i, p)).count())
            .sum();
        let mut w = Writer(Vec::with_capacity(
            SEGMENT_HEAD_LEN
                + self.txns.len() * TXN_HEAD_LEN
                + pages * (4 + self.page_size as usize)
                + 4,
        ));
        w.u32(self.page_size);
        w.u32(self.txns.len() as u32);
        let first = self.txns.first();
        let last = self.txns.last();
        w.u64(first.map_or(0, |t| t.txn));
        w.u64(last.map_or(0, |t| t.txn));
        w.u64(first.map_or(0, |t| t.commit_ms));
        w.u64(last.map_or(0, |t| t.commit_ms));
        for (i, t) in self.txns.iter().enumerate() {
            w.u64(t.txn);
            w.u64(t.commit_ms);
            w.u32(t.db_pages);
            w.u32(t.pages.iter().filter(|p| kept(i, p)).count() as u32);
            for p in t.pages.iter().filter(|p| kept(i, p)) {
                w.u32(p.number);
                w.0.extend_from_slice(&p.data);
            }
        }
        if self.deduplicated {
            w.u32(SEGMENT_DEDUPLICATED);
        }
        w.0
    }

    /// Reads the head of a segment body.
    pub fn decode_head(body: &[u8]) -> Result<SegmentHead, FormatError> {
        let mut r = Reader {
            buf: body,
            what: "segment head",
        };
        let head = SegmentHead {
            page_size: r.u32()?,
            txn_count: r.u32()?,
            first_txn: r.u64()?,
            last_txn: r.u64()?,
            first_commit_ms: r.u64()?,
            last_commit_ms: r.u64()?,
        };
        check_page_size(head.page_size)?;
        if head.txn_count == 0
            || head.first_txn == 0
            || head.last_txn.checked_sub(head.first_txn) != Some(u64::from(head.txn_count) - 1)
        {
            return Err(FormatError::Invalid(format!(
                "segment of {} transactions from {} to {}",
                head.txn_count, head.first_txn, head.last_txn
            )));
        }
        Ok(head)
    }

    /// Decodes a segment body, checking that transactions are consecutive and pages whole.
    pub fn decode(body: &[u8]) -> Result<Self, FormatError> {
        let head = Self::decode_head(body)?;
        let mut r = Reader {
            buf: body.get(SEGMENT_HEAD_LEN..).unwrap_or_default(),
            what: "segment",
        };
        let page_size = head.page_size as usize;
        let mut txns = Vec::with_capacity(head.txn_count.min(1 << 16) as usize);
        for i in 0..u64::from(head.txn_count) {
            let txn = r.u64()?;
            if txn != head.first_txn + i {
                return Err(FormatError::Invalid(format!(
                    "transaction {txn} where {} was expected",
                    head.first_txn + i
                )));
            }
            let commit_ms = r.u64()?;
            let db_pages = r.u32()?;
            let count = r.u32()? as usize;
            // Bounded by what the body can hold, so a corrupt count cannot allocate much.
            let mut pages = Vec::with_capacity(count.min(r.buf.len() / (page_size + 4)));
            for _ in 0..count {
                let number = r.u32()?;
                if number == 0 {
                    return Err(FormatError::Invalid("page number 0".into()));
                }
                pages.push(Page {
                    number,
                    data: r.take(page_size)?.to_vec(),
                });
            }
            txns.push(Txn {
                txn,
                commit_ms,
                db_pages,
                pages,
            });
        }
        // The optional trailer: flags.
        let deduplicated = match r.buf.len() {
            0 => false,
            4 => match r.u32()? {
                SEGMENT_DEDUPLICATED => true,
                0 => false,
                other => {
                    return Err(FormatError::Invalid(format!(
                        "unknown segment flags {other:#x}"
                    )));
                }
            },
            _ => {
                return Err(FormatError::Invalid(
                    "bytes after the last transaction".into(),
                ));
            }
        };
        Ok(Self {
            page_size: head.page_size,
            txns,
            deduplicated,
        })
    }
}

/// The head of a snapshot body; the database file follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHead {
    /// Page size.
    pub page_size: u32,
    /// Number of pages that follow.
    pub db_pages: u32,
    /// The snapshot holds the generation's transactions up to this one (0: none).
    pub txn: u64,
    /// When it was taken (unix ms).
    pub taken_ms: u64,
}

impl SnapshotHead {
    /// The head's bytes; the file (`db_pages * page_size` bytes) must follow.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(SNAPSHOT_HEAD_LEN));
        w.u32(self.page_size);
        w.u32(self.db_pages);
        w.u64(self.txn);
        w.u64(self.taken_ms);
        w.0
    }

    /// Reads the head at the start of a snapshot body.
    pub fn decode(body: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader {
            buf: body,
            what: "snapshot head",
        };
        let head = Self {
            page_size: r.u32()?,
            db_pages: r.u32()?,
            txn: r.u64()?,
            taken_ms: r.u64()?,
        };
        check_page_size(head.page_size)?;
        Ok(head)
    }

    /// Length of the body this head announces.
    pub fn body_len(&self) -> u64 {
        SNAPSHOT_HEAD_LEN as u64 + u64::from(self.db_pages) * u64::from(self.page_size)
    }
}

/// A seal: the generation ends before the seal's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// Where the history continues (`None`: nowhere yet).
    pub next_generation: Option<GenerationId>,
    /// When it was sealed (unix ms).
    pub sealed_ms: u64,
}

impl Seal {
    /// The body bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.str(self.next_generation.as_ref().map_or("", |g| g.as_str()));
        w.u64(self.sealed_ms);
        w.0
    }

    /// Decodes a seal body.
    pub fn decode(body: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader {
            buf: body,
            what: "seal",
        };
        let next = r.str()?;
        let next_generation = if next.is_empty() {
            None
        } else {
            Some(GenerationId::parse(&next)?)
        };
        Ok(Self {
            next_generation,
            sealed_ms: r.u64()?,
        })
    }
}

/// A tombstone body: when the database was deleted (unix ms).
pub fn encode_tombstone(deleted_ms: u64) -> Vec<u8> {
    deleted_ms.to_le_bytes().to_vec()
}

/// Decodes a tombstone body.
pub fn decode_tombstone(body: &[u8]) -> Result<u64, FormatError> {
    Reader {
        buf: body,
        what: "tombstone",
    }
    .u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen() -> GenerationId {
        GenerationId::new_at(1_765_000_000_000)
    }

    fn segment(first: u64, n: u64) -> Segment {
        Segment {
            page_size: 512,
            txns: (first..first + n)
                .map(|txn| Txn {
                    txn,
                    commit_ms: 1000 + txn,
                    db_pages: 3,
                    pages: vec![
                        Page {
                            number: 1,
                            data: vec![txn as u8; 512],
                        },
                        Page {
                            number: 3,
                            data: vec![7; 512],
                        },
                    ],
                })
                .collect(),
            deduplicated: false,
        }
    }

    #[test]
    fn deduplicated_segment_keeps_each_page_once_and_every_txn() {
        let mut seg = segment(5, 3);
        seg.deduplicated = true;
        let plain_len = segment(5, 3).encode().len();
        let body = seg.encode();
        // Pages 1 and 3 of 3 transactions: only the last transaction keeps them, + the trailer.
        assert_eq!(plain_len - body.len(), 4 * (4 + 512) - 4);
        let back = Segment::decode(&body).unwrap();
        assert!(back.deduplicated);
        assert_eq!(back.range(), Some((5, 7)));
        let commit_times: Vec<u64> = back.txns.iter().map(|t| t.commit_ms).collect();
        assert_eq!(commit_times, vec![1005, 1006, 1007]);
        assert!(back.txns[0].pages.is_empty() && back.txns[1].pages.is_empty());
        assert_eq!(back.txns[2].pages, seg.txns[2].pages);
        // A plain segment still decodes as one that can be applied transaction by transaction.
        assert!(
            !Segment::decode(&segment(5, 3).encode())
                .unwrap()
                .deduplicated
        );
        // Unknown flags are refused rather than misread.
        let mut unknown = body.clone();
        let n = unknown.len();
        unknown[n - 4..].copy_from_slice(&2u32.to_le_bytes());
        assert!(Segment::decode(&unknown).is_err());
    }

    #[test]
    fn generation_ids_sort_by_time_and_parse() {
        let a = GenerationId::new_at(1);
        let b = GenerationId::new_at(0x1_0000);
        assert!(a < b);
        assert_eq!(b.unix_millis(), 0x1_0000);
        assert_eq!(GenerationId::parse(b.as_str()).unwrap(), b);
        assert!(GenerationId::parse("xyz").is_err());
        assert!(GenerationId::parse(&"A".repeat(24)).is_err());
    }

    #[test]
    fn keys_round_trip_and_sort_numerically() {
        let g = gen();
        let k9 = segment_key("db", &g, 9);
        let k10 = segment_key("db", &g, 10);
        assert!(k9 < k10);
        assert!(k9.starts_with(&segments_prefix("db", &g)));
        assert_eq!(
            ObjectKey::parse(&k10),
            Some(ObjectKey::Segment {
                name: "db".into(),
                generation: g.clone(),
                first: 10
            })
        );
        assert_eq!(
            ObjectKey::parse(&snapshot_key("db", &g, 0)),
            Some(ObjectKey::Snapshot {
                name: "db".into(),
                generation: g.clone(),
                txn: 0
            })
        );
        assert_eq!(
            ObjectKey::parse(&tombstone_key("db", &g)),
            Some(ObjectKey::Tombstone {
                name: "db".into(),
                generation: g.clone()
            })
        );
        assert_eq!(ObjectKey::parse("dbs/db/other"), None);
        assert_eq!(ObjectKey::parse("dbs/db/x/segments/1.seg"), None);
    }

    #[test]
    fn segment_round_trips() {
        let g = gen();
        let seg = segment(5, 3);
        let body = seg.encode();
        let object = encode_object(ObjectKind::Segment, "db", &g, "w1", &body);
        let (header, body) = decode_object(&object).unwrap();
        header.expect(ObjectKind::Segment, "db", &g).unwrap();
        assert_eq!(header.writer_id, "w1");
        assert!(header.expect(ObjectKind::Segment, "other", &g).is_err());
        let head = Segment::decode_head(body).unwrap();
        assert_eq!((head.first_txn, head.last_txn, head.txn_count), (5, 7, 3));
        assert_eq!((head.first_commit_ms, head.last_commit_ms), (1005, 1007));
        assert_eq!(Segment::decode(body).unwrap(), seg);
    }

    #[test]
    fn corruption_and_truncation_are_detected() {
        let g = gen();
        let object = encode_object(ObjectKind::Segment, "db", &g, "w1", &segment(1, 2).encode());
        for cut in [0, 5, 20, 60, object.len() - 1] {
            assert!(decode_object(&object[..cut]).is_err(), "cut at {cut}");
        }
        for i in (0..object.len()).step_by(97) {
            let mut bad = object.clone();
            bad[i] ^= 0x40;
            assert!(decode_object(&bad).is_err(), "flip at {i}");
        }
        let mut newer = object.clone();
        newer[8..10].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(
            decode_object(&newer).unwrap_err(),
            FormatError::UnsupportedVersion(2)
        );
        assert_eq!(
            decode_object(b"not a backup object at all").unwrap_err(),
            FormatError::BadMagic
        );
    }

    #[test]
    fn inconsistent_segments_are_refused() {
        let mut seg = segment(1, 3);
        seg.txns[1].txn = 9;
        assert!(Segment::decode(&seg.encode()).is_err());
        let empty = Segment {
            page_size: 512,
            txns: vec![],
            deduplicated: false,
        };
        assert!(Segment::decode(&empty.encode()).is_err());
        let mut bad_size = segment(1, 1).encode();
        bad_size[0..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(Segment::decode(&bad_size).is_err());
        // A huge page count in a tiny body fails without allocating it.
        let mut huge = segment(1, 1).encode();
        huge[SEGMENT_HEAD_LEN + 20..SEGMENT_HEAD_LEN + 24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Segment::decode(&huge).is_err());
    }

    #[test]
    fn snapshot_seal_and_tombstone_round_trip() {
        let head = SnapshotHead {
            page_size: 4096,
            db_pages: 2,
            txn: 0,
            taken_ms: 42,
        };
        let mut body = head.encode();
        assert_eq!(body.len(), SNAPSHOT_HEAD_LEN);
        body.extend_from_slice(&[1u8; 8192]);
        assert_eq!(head.body_len(), body.len() as u64);
        assert_eq!(SnapshotHead::decode(&body).unwrap(), head);

        let seal = Seal {
            next_generation: Some(gen()),
            sealed_ms: 7,
        };
        assert_eq!(Seal::decode(&seal.encode()).unwrap(), seal);
        let open_seal = Seal {
            next_generation: None,
            sealed_ms: 8,
        };
        assert_eq!(Seal::decode(&open_seal.encode()).unwrap(), open_seal);
        assert_eq!(decode_tombstone(&encode_tombstone(99)).unwrap(), 99);
    }

    #[test]
    fn header_prefix_announces_the_length() {
        let g = gen();
        let object = encode_object(ObjectKind::Tombstone, "db", &g, "w", &encode_tombstone(1));
        let len = ObjectHeader::header_len(&object[..HEADER_PREFIX_LEN]).unwrap();
        let (header, decoded_len) = ObjectHeader::decode(&object).unwrap();
        assert_eq!(len, decoded_len);
        assert_eq!(header.kind, ObjectKind::Tombstone);
        assert_eq!(header.body_len, 8);
    }
}
