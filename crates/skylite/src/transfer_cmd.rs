//! `skylite db import`, `skylite db export` and `skylite db dump`: moving whole databases
//! between this machine and a server, streamed in bounded memory.
//!
//! **Import of a database file.** The file is recognised by its 16-byte SQLite header (not by
//! its extension). A consistent snapshot is taken with SQLite's online backup API while holding
//! one read transaction on the source, so a source in WAL mode with an active writer (or in
//! rollback-journal mode, with any page size) gives a copy of one committed state. The snapshot
//! goes to a temporary file (in `$TMPDIR`), its SHA-256 and page count are computed, and it is
//! streamed to `PUT /v1/admin/databases/{name}/import` in 1 MiB chunks with those two values in
//! `x-skylite-sha256` and `x-skylite-page-count`; the server checks both and runs
//! `integrity_check` before the database appears. An interrupted upload leaves nothing.
//!
//! **Import of an SQL dump** (text such as `sqlite3 .dump` writes, recognised by not having the
//! SQLite header and starting with SQL). The database is created through the admin API, then
//! the statements are read one at a time (split by SQLite's `sqlite3_complete`) and sent in
//! batches through the Hrana client inside one transaction; the dump's own `BEGIN`/`COMMIT`
//! and `PRAGMA foreign_keys` lines are skipped (they would be no-ops inside it). On any error,
//! or Ctrl-C, the transaction rolls back and the half-made database is deleted.
//!
//! **Export** streams `GET .../export` into a temporary file next to the output, checks its
//! length and header, fsyncs it and renames it into place. **Dump** streams `GET .../dump` to
//! standard output (or `-o FILE`) and fails if the text does not end with the final `COMMIT;`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::remote::{Server, ServerError, Target};
use crate::sql_split::StatementReader;

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Bytes per upload chunk.
const UPLOAD_CHUNK: usize = 1024 * 1024;
/// Pages copied per backup step.
const BACKUP_STEP_PAGES: i32 = 4096;
/// Statements per batch of a dump import, and the most SQL text per batch.
const DUMP_BATCH_STATEMENTS: usize = 500;
const DUMP_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress(len: u64, message: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(message.to_owned());
    pb
}

/// What a file to import holds.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Database,
    SqlText,
}

/// Looks at the start of `path`: an SQLite database, SQL text, or neither (an error).
fn sniff(path: &Path) -> anyhow::Result<Kind> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let mut head = vec![0u8; 4096];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
    head.truncate(got);
    if head.starts_with(SQLITE_MAGIC) {
        return Ok(Kind::Database);
    }
    let not_db = || {
        anyhow::anyhow!(
            "{} is not an SQLite database (it does not start with the 16-byte header \
             \"SQLite format 3\\0\") nor an SQL text dump; nothing was uploaded",
            path.display()
        )
    };
    if got == 0 {
        return Err(anyhow::anyhow!(
            "{} is empty; nothing was uploaded",
            path.display()
        ));
    }
    if head.contains(&0) {
        return Err(not_db());
    }
    // Text: it must start with an SQL keyword (after comments).
    let text = match std::str::from_utf8(&head) {
        Ok(t) => t,
        // A multi-byte character cut at the end of the sample is fine.
        Err(e) if e.valid_up_to() + 4 >= head.len() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return Err(not_db()),
    };
    let word = skylite_engine::sql_text::first_word(text).to_ascii_uppercase();
    const SQL_STARTS: [&str; 14] = [
        "PRAGMA",
        "BEGIN",
        "CREATE",
        "INSERT",
        "REPLACE",
        "UPDATE",
        "DELETE",
        "DROP",
        "ALTER",
        "WITH",
        "SAVEPOINT",
        "SELECT",
        "ANALYZE",
        "COMMIT",
    ];
    if SQL_STARTS.contains(&word.as_str()) {
        Ok(Kind::SqlText)
    } else {
        Err(not_db())
    }
}

/// `skylite db import FILE [--name NAME] [--full-check]`. With `full_check`, the server runs the
/// full `integrity_check` (every index against its table) instead of `quick_check`.
pub async fn import(
    file: &Path,
    name: &str,
    target: &Target,
    full_check: bool,
) -> anyhow::Result<()> {
    let kind = sniff(file)?;
    let server = Server::new(target)?;
    // Fail fast (before a long snapshot) on a bad token or an existing database.
    match server
        .json(Method::GET, &format!("/v1/admin/databases/{name}"), None)
        .await
    {
        Ok(_) => {
            return Err(anyhow::anyhow!(
                "database `{name}` already exists on {}; pick another --name or remove it \
                 with `skylite db destroy {name}`",
                server.base
            ))
        }
        Err(e) if e.status == Some(404) => {}
        Err(e) => return Err(e.into()),
    }
    match kind {
        Kind::Database => import_database(file, name, &server, full_check).await,
        Kind::SqlText => import_sql(file, name, &server, target).await,
    }
}

/// A finished snapshot of a database file.
struct Snapshot {
    _dir: tempfile::TempDir,
    path: PathBuf,
    len: u64,
    page_count: u64,
    page_size: u64,
    sha256: String,
}

/// Checks the header of a source file: a truncated file (shorter than the page count its
/// header vouches for, with no WAL beside it) is refused before anything is copied.
fn check_source_header(path: &Path) -> anyhow::Result<()> {
    let mut head = [0u8; 100];
    let mut file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
        .len();
    file.read_exact(&mut head).map_err(|_| {
        anyhow::anyhow!(
            "{} is truncated: {len} bytes, less than an SQLite header; nothing was uploaded",
            path.display()
        )
    })?;
    let raw = u16::from_be_bytes([head[16], head[17]]) as u64;
    let page_size = if raw == 1 { 65536 } else { raw };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(anyhow::anyhow!(
            "{} has an invalid page size ({raw}) in its header: it is damaged; nothing was \
             uploaded",
            path.display()
        ));
    }
    let pages = u32::from_be_bytes([head[28], head[29], head[30], head[31]]) as u64;
    let change = &head[24..28];
    let valid_for = &head[92..96];
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let has_wal = Path::new(&wal).exists();
    if pages > 0 && change == valid_for && !has_wal && len < pages * page_size {
        return Err(anyhow::anyhow!(
            "{} is truncated: its header says {pages} pages of {page_size} bytes ({} bytes) \
             but the file has {len} bytes; nothing was uploaded",
            path.display(),
            pages * page_size
        ));
    }
    Ok(())
}

/// Takes a consistent snapshot of `source` with the backup API (blocking).
fn snapshot(source: &Path) -> anyhow::Result<Snapshot> {
    check_source_header(source)?;
    let shown = source.display();
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| anyhow::anyhow!("cannot open {shown} as an SQLite database: {e}"))?;
    src.busy_timeout(Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    // One read transaction for the whole copy: every step sees the same committed state, and
    // a writer in another process never makes the backup start over.
    src.execute_batch("BEGIN")
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let schema_objects: i64 = src
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| anyhow::anyhow!("{shown} is not a readable SQLite database: {e}"))?;
    let page_size: i64 = src
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let pages: i64 = src
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("skylite-import-")
        .tempdir()
        .map_err(|e| {
            anyhow::anyhow!("cannot make a temporary folder (set TMPDIR elsewhere?): {e}")
        })?;
    let path = dir.path().join("snapshot.db");
    let mut dst = Connection::open(&path)
        .map_err(|e| anyhow::anyhow!("cannot create the snapshot {}: {e}", path.display()))?;
    dst.execute_batch("PRAGMA synchronous=OFF; PRAGMA journal_mode=OFF;")
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    let pb = progress((pages.max(0) as u64) * page_size.max(0) as u64, "snapshot");
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)
            .map_err(|e| anyhow::anyhow!("cannot start the backup of {shown}: {e}"))?;
        loop {
            let step = backup
                .step(BACKUP_STEP_PAGES)
                .map_err(|e| snapshot_error(source, e))?;
            let p = backup.progress();
            pb.set_length(p.pagecount.max(0) as u64 * page_size as u64);
            pb.set_position((p.pagecount - p.remaining).max(0) as u64 * page_size as u64);
            match step {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    pb.finish_and_clear();
    drop(dst);
    let _ = src.execute_batch("COMMIT");
    drop(src);
    let _ = schema_objects;
    // Hash the snapshot.
    let mut file = std::fs::File::open(&path)
        .map_err(|e| anyhow::anyhow!("cannot read the snapshot {}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| anyhow::anyhow!("cannot read the snapshot: {e}"))?
        .len();
    let pb = progress(len, "checksum");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| anyhow::anyhow!("cannot read the snapshot: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        pb.inc(n as u64);
    }
    pb.finish_and_clear();
    let page_size = page_size.max(512) as u64;
    Ok(Snapshot {
        _dir: dir,
        path,
        len,
        page_count: len / page_size,
        page_size,
        sha256: hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

fn snapshot_error(source: &Path, e: rusqlite::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("malformed") || text.contains("corrupt") || text.contains("not a database") {
        anyhow::anyhow!(
            "{} is damaged (SQLite says: {text}); nothing was uploaded",
            source.display()
        )
    } else {
        anyhow::anyhow!("cannot copy {}: {text}", source.display())
    }
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

async fn import_database(
    file: &Path,
    name: &str,
    server: &Server,
    full_check: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let source = file.to_owned();
    let snap = tokio::task::spawn_blocking(move || snapshot(&source))
        .await
        .map_err(|e| anyhow::anyhow!("the snapshot failed: {e}"))??;
    let snapshot_secs = started.elapsed().as_secs_f64();
    let upload_started = Instant::now();
    let pb = progress(snap.len, "upload");
    let reader = tokio::fs::File::open(&snap.path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the snapshot: {e}"))?;
    let total = snap.len;
    let bar = pb.clone();
    let chunks = futures_util::stream::unfold((reader, 0u64), move |(mut f, sent)| {
        let bar = bar.clone();
        async move {
            use tokio::io::AsyncReadExt;
            if sent >= total {
                return None;
            }
            let want = (total - sent).min(UPLOAD_CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            match f.read_exact(&mut buf).await {
                Ok(_) => {
                    bar.inc(want as u64);
                    Some((
                        Ok::<_, std::io::Error>(Frame::data(Bytes::from(buf))),
                        (f, sent + want as u64),
                    ))
                }
                Err(e) => Some((Err(e), (f, total))),
            }
        }
    });
    let body = BodyExt::boxed(StreamBody::new(chunks));
    let content_length = snap.len.to_string();
    let page_count = snap.page_count.to_string();
    let headers = [
        ("content-type", "application/vnd.sqlite3"),
        ("content-length", content_length.as_str()),
        ("x-skylite-sha256", snap.sha256.as_str()),
        ("x-skylite-page-count", page_count.as_str()),
        ("x-skylite-check", if full_check { "full" } else { "quick" }),
    ];
    let answer = server
        .upload(
            Method::PUT,
            &format!("/v1/admin/databases/{name}/import"),
            &headers,
            body,
        )
        .await
        .map_err(|e| anyhow::anyhow!("importing {} failed: {e}", file.display()))?;
    pb.finish_and_clear();
    let upload_secs = upload_started.elapsed().as_secs_f64();
    let mb = snap.len as f64 / 1e6;
    println!(
        "imported {} into database `{name}` on {}: {}, {} pages of {} bytes, {} tables, sha256 {}",
        file.display(),
        server.base,
        human_bytes(snap.len),
        answer["page_count"].as_u64().unwrap_or(snap.page_count),
        answer["page_size"].as_u64().unwrap_or(snap.page_size),
        answer["tables"].as_u64().unwrap_or(0),
        snap.sha256,
    );
    eprintln!(
        "snapshot {snapshot_secs:.1} s, upload and server checks {upload_secs:.1} s ({:.0} MB/s overall)",
        mb / started.elapsed().as_secs_f64().max(1e-3)
    );
    eprintln!("next: skylite db env {name} --write   (the URL and a token for your app)");
    Ok(())
}

/// What the dump import does with a statement.
enum Action {
    Run,
    Skip,
    Fail(&'static str),
}

fn classify(sql: &str) -> Action {
    let mut words = sql_words(sql);
    let first = words.next().unwrap_or_default();
    match first.as_str() {
        "BEGIN" | "COMMIT" | "END" => Action::Skip,
        "ROLLBACK" => match words.next().as_deref() {
            Some("TO") => Action::Run,
            Some("TRANSACTION") if words.next().as_deref() == Some("TO") => Action::Run,
            _ => Action::Fail(
                "the dump ends its transaction with ROLLBACK (sqlite3 writes that when it met \
                 errors while dumping): it is incomplete",
            ),
        },
        "PRAGMA" => match words.next().as_deref() {
            Some("FOREIGN_KEYS") => Action::Skip,
            _ => Action::Run,
        },
        _ => Action::Run,
    }
}

/// The leading bare words of a statement, uppercased.
fn sql_words(sql: &str) -> impl Iterator<Item = String> + '_ {
    let body = skylite_engine::sql_text::skip_space_and_comments(sql);
    body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_uppercase())
}

async fn import_sql(
    file: &Path,
    name: &str,
    server: &Server,
    target: &Target,
) -> anyhow::Result<()> {
    let started = Instant::now();
    server
        .json(
            Method::POST,
            "/v1/admin/databases",
            Some(serde_json::json!({ "name": name })),
        )
        .await
        .map_err(|e| e.doing(format_args!("cannot create database `{name}`")))?;
    let work = apply_dump(file, name, server, target);
    let outcome = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match outcome {
        Ok((statements, skipped)) => {
            println!(
                "imported {} into database `{name}` on {}: {statements} statements applied \
                 ({skipped} transaction-control lines skipped) in {:.1} s",
                file.display(),
                server.base,
                started.elapsed().as_secs_f64()
            );
            eprintln!("next: skylite db env {name} --write   (the URL and a token for your app)");
            Ok(())
        }
        Err(e) => {
            let cleanup = server
                .json(Method::DELETE, &format!("/v1/admin/databases/{name}"), None)
                .await;
            let note = match cleanup {
                Ok(_) => format!("database `{name}` was removed again, nothing is left"),
                Err(c) => format!(
                    "and removing the half-made database `{name}` failed too ({c}): remove it \
                     with `skylite db destroy {name}`"
                ),
            };
            Err(anyhow::anyhow!(
                "importing {} failed: {e:#}; {note}",
                file.display()
            ))
        }
    }
}

/// Streams the statements of `file` into database `name` in one transaction.
async fn apply_dump(
    file: &Path,
    name: &str,
    server: &Server,
    target: &Target,
) -> anyhow::Result<(u64, u64)> {
    let mut config = skylite_client::Config::new(server.database_url(name))
        .request_timeout(Duration::from_secs(300));
    if let Some(t) = &target.token {
        config = config.auth_token(t.clone());
    }
    if let Some(ca) = &target.ca_file {
        config = config.ca_file(ca.clone());
    }
    let client = skylite_client::Client::open(config)
        .await
        .with_context(|| format!("cannot connect to database `{name}`"))?;
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let input = std::fs::File::open(file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
    let mut reader = StatementReader::new(std::io::BufReader::with_capacity(256 * 1024, input));
    let tx = client
        .transaction_with(skylite_client::TransactionBehavior::Immediate)
        .await
        .context("cannot start the transaction")?;
    let pb = progress(len, "import");
    let (mut applied, mut skipped) = (0u64, 0u64);
    let mut batch: Vec<String> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut batch_line = 1u64;
    loop {
        // Reading is blocking, but a file read of one statement is short.
        let next = reader
            .next_statement()
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let flush = match &next {
            None => !batch.is_empty(),
            Some(_) => batch.len() >= DUMP_BATCH_STATEMENTS || batch_bytes >= DUMP_BATCH_BYTES,
        };
        if flush {
            let n = batch.len() as u64;
            let first_line = batch_line;
            tx.batch(std::mem::take(&mut batch))
                .await
                .with_context(|| format!("in the statements from line {first_line} of the dump"))?;
            applied += n;
            batch_bytes = 0;
            pb.set_position(reader.bytes_read());
        }
        let Some(stmt) = next else { break };
        match classify(&stmt.sql) {
            Action::Skip => skipped += 1,
            Action::Fail(why) => return Err(anyhow::anyhow!("line {}: {why}", stmt.line)),
            Action::Run => {
                if batch.is_empty() {
                    batch_line = stmt.line;
                }
                batch_bytes += stmt.sql.len();
                batch.push(stmt.sql);
            }
        }
    }
    tx.commit().await.context("the final commit failed")?;
    pb.finish_and_clear();
    Ok((applied, skipped))
}

/// `skylite db export NAME -o FILE`.
pub async fn export(name: &str, output: &Path, force: bool, target: &Target) -> anyhow::Result<()> {
    let server = Server::new(target)?;
    if output.exists() && !force {
        return Err(anyhow::anyhow!(
            "{} exists; pass --force to replace it",
            output.display()
        ));
    }
    for suffix in ["-wal", "-journal"] {
        let mut side = output.as_os_str().to_owned();
        side.push(suffix);
        if Path::new(&side).exists() {
            return Err(anyhow::anyhow!(
                "{} exists beside {}: it is a live database; export to another file",
                Path::new(&side).display(),
                output.display()
            ));
        }
    }
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".skylite-export-")
        .tempfile_in(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create a temporary file in {}: {e}", dir.display()))?;
    let mut body = server
        .download(&format!("/v1/admin/databases/{name}/export"))
        .await
        .map_err(|e| e.doing(format_args!("cannot export `{name}`")))?;
    let expected = body.content_length();
    let pb = progress(expected.unwrap_or(0), "export");
    let mut out = std::io::BufWriter::with_capacity(
        1024 * 1024,
        tmp.as_file()
            .try_clone()
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.path().display()))?,
    );
    let mut received = 0u64;
    while let Some(data) = body.chunk().await.map_err(|e| {
        anyhow::anyhow!("the export of `{name}` broke off after {received} bytes: {e}")
    })? {
        out.write_all(&data)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.path().display()))?;
        received += data.len() as u64;
        pb.set_position(received);
    }
    out.flush()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.path().display()))?;
    drop(out);
    pb.finish_and_clear();
    if let Some(n) = expected {
        if n != received {
            return Err(anyhow::anyhow!(
                "the export of `{name}` broke off: {received} of {n} bytes received"
            ));
        }
    }
    let mut head = [0u8; 16];
    std::fs::File::open(tmp.path())
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|_| anyhow::anyhow!("the server sent {received} bytes, not an SQLite database"))?;
    if &head != SQLITE_MAGIC {
        return Err(anyhow::anyhow!(
            "the server's export is not an SQLite database"
        ));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| anyhow::anyhow!("cannot fsync {}: {e}", tmp.path().display()))?;
    tmp.persist(output).map_err(|e| {
        anyhow::anyhow!(
            "cannot move the export to {}: {}",
            output.display(),
            e.error
        )
    })?;
    println!(
        "exported database `{name}` from {} to {} ({})",
        server.base,
        output.display(),
        human_bytes(received)
    );
    Ok(())
}

/// Streams the dump endpoint of database `name` into `out`. Fails if the dump breaks off.
pub async fn dump_to(server: &Server, name: &str, out: &mut dyn Write) -> Result<u64, DumpFailure> {
    let mut body = server
        .download(&format!("/v1/admin/databases/{name}/dump"))
        .await
        .map_err(|e| {
            let e = e.doing(format_args!("cannot dump `{name}`"));
            match e.status {
                Some(status) => DumpFailure::Refused(status, e),
                None => DumpFailure::Other(e.into()),
            }
        })?;
    let mut written = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(data) = body.chunk().await.map_err(|e| {
        DumpFailure::Other(anyhow::anyhow!(
            "the dump of `{name}` broke off after {written} bytes: {e}"
        ))
    })? {
        out.write_all(&data)
            .map_err(|e| DumpFailure::Other(anyhow::anyhow!("cannot write the dump: {e}")))?;
        written += data.len() as u64;
        tail.extend_from_slice(&data);
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
    }
    out.flush()
        .map_err(|e| DumpFailure::Other(anyhow::anyhow!("cannot write the dump: {e}")))?;
    if !String::from_utf8_lossy(&tail)
        .trim_end()
        .ends_with("COMMIT;")
    {
        return Err(DumpFailure::Other(anyhow::anyhow!(
            "the dump of `{name}` is incomplete (it does not end with COMMIT;)"
        )));
    }
    Ok(written)
}

/// Why a dump through the endpoint failed.
pub enum DumpFailure {
    /// The server refused (HTTP status and the error): a caller may fall back to SQL.
    Refused(u16, ServerError),
    /// Anything else.
    Other(anyhow::Error),
}

impl DumpFailure {
    /// The failure as an error with its chain.
    pub fn into_error(self) -> anyhow::Error {
        match self {
            DumpFailure::Refused(_, e) => e.into(),
            DumpFailure::Other(e) => e,
        }
    }
}

/// `skylite db dump NAME [-o FILE]`.
pub async fn dump(name: &str, output: Option<&Path>, target: &Target) -> anyhow::Result<()> {
    let server = Server::new(target)?;
    match output {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            dump_to(&server, name, &mut out)
                .await
                .map_err(DumpFailure::into_error)?;
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            let tmp = tempfile::Builder::new()
                .prefix(".skylite-dump-")
                .tempfile_in(&dir)
                .map_err(|e| {
                    anyhow::anyhow!("cannot create a temporary file in {}: {e}", dir.display())
                })?;
            let file = tmp
                .as_file()
                .try_clone()
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
            let n = dump_to(&server, name, &mut out)
                .await
                .map_err(DumpFailure::into_error)?;
            drop(out);
            tmp.persist(path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
            eprintln!("dumped `{name}` to {} ({})", path.display(), human_bytes(n));
        }
    }
    Ok(())
}

/// Reads one line from standard input (for confirmations).
pub fn read_answer() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_transaction_control() {
        assert!(matches!(classify("BEGIN TRANSACTION;"), Action::Skip));
        assert!(matches!(classify("/* x */ COMMIT;"), Action::Skip));
        assert!(matches!(classify("PRAGMA foreign_keys=OFF;"), Action::Skip));
        assert!(matches!(
            classify("ROLLBACK; -- due to errors"),
            Action::Fail(_)
        ));
        assert!(matches!(classify("ROLLBACK TO sp;"), Action::Run));
        assert!(matches!(
            classify("INSERT INTO t VALUES('attach');"),
            Action::Run
        ));
        assert!(matches!(
            classify("CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;"),
            Action::Run
        ));
    }
}
