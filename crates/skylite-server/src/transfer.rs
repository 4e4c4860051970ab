//! Moving whole databases in and out: import an SQLite file, export a consistent copy as a
//! file, dump as SQL text. Admin API endpoints, all streamed in bounded memory.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `PUT /v1/admin/databases/{name}/import` | the raw database file | 201 `{"name", "created": true, "size_bytes", "page_count", "page_size", "tables", "sha256"}` |
//! | `GET /v1/admin/databases/{name}/export` | | 200, the database file (`application/vnd.sqlite3`, `content-length`) |
//! | `GET /v1/admin/databases/{name}/dump` | | 200, SQL text like `sqlite3 .dump` (`application/sql`) |
//!
//! **Import.** The body is written chunk by chunk (never held whole) to
//! `<data-dir>/.import-<name>-<random>/data.db` while its SHA-256 is computed (fsynced once,
//! after the check).
//! It is not bound by `--max-body-size` but by [`ServerConfig::max_import_bytes`] (413
//! `IMPORT_TOO_LARGE`). On the worker pool, [`skylite_engine::import::check_and_prepare`] checks
//! the header, opens it, runs `quick_check` (`integrity_check` with `x-skylite-check: full`), compares the page count of
//! `x-skylite-page-count` and switches it to WAL mode; the `x-skylite-sha256` header, if sent, is
//! compared before that. Only then is the folder renamed into place
//! ([`crate::databases::Databases::install`]), so a database appears whole or not at all. Every
//! failure (a refused file, a client that disconnects mid-upload, a full disk) removes the
//! temporary folder; one left by a crash is removed at the next start.
//!
//! **Export.** `VACUUM INTO` ([`skylite_engine::maintenance::copy_consistent`]) writes one
//! consistent snapshot into `<data-dir>/.export-*/`, while writers keep committing. The file is
//! opened and its folder removed at once (the open file keeps the data until the response
//! ends), then streamed in chunks with its `content-length`.
//!
//! **Dump.** [`skylite_engine::dump::Dump`] reads one snapshot on a worker and writes statements
//! into a bounded channel that the response body drains; a slow client slows the dump, and no
//! response-size limit applies. A dump that fails midway ends the response abruptly (no final
//! `COMMIT;`), so it cannot be mistaken for a complete one.
//!
//! [`ServerConfig::max_import_bytes`]: crate::ServerConfig::max_import_bytes

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use skylite_engine::dump::{Dump, DumpError};
use skylite_engine::import::{check_and_prepare_with, ImportCheck, ImportError};
use skylite_engine::{maintenance, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::admin::{json_response, on_worker, path_name};
use crate::app::App;
use crate::databases::{exists_error, not_found, validate_name, DbHandle};
use crate::error::ApiError;
use crate::routing::AdminAuth;

/// Header with the hex SHA-256 of the whole uploaded file.
pub const SHA256_HEADER: &str = "x-skylite-sha256";
/// Header with the number of pages of the uploaded file (or of the exported one).
pub const PAGE_COUNT_HEADER: &str = "x-skylite-page-count";
/// Header with the page size of the exported file.
pub const PAGE_SIZE_HEADER: &str = "x-skylite-page-size";

/// Bytes gathered before one write to disk during an import.
const IMPORT_WRITE_CHUNK: usize = 1024 * 1024;
/// Bytes per chunk of an export.
const EXPORT_CHUNK: usize = 256 * 1024;
/// Bytes per chunk of a dump, and chunks queued between the dump and the client.
const DUMP_CHUNK: usize = 64 * 1024;
const DUMP_QUEUE: usize = 8;

fn bad(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Removes a temporary folder when dropped, unless disarmed (the folder was moved into place).
struct TempFolder {
    path: Option<PathBuf>,
}

impl TempFolder {
    fn new(path: PathBuf) -> Self {
        TempFolder { path: Some(path) }
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else {
            return;
        };
        let remove = move || {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(
                        "cannot remove {}: {e} (it is removed at the next start)",
                        path.display()
                    );
                }
            }
        };
        // Off the async threads when there are some.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(remove);
            }
            Err(_) => remove(),
        }
    }
}

/// Finds an existing database (opening it if needed) or answers 404.
async fn existing(app: &App, name: String) -> Result<std::sync::Arc<DbHandle>, ApiError> {
    on_worker(app, move |app| {
        app.databases
            .open_existing(&name)?
            .ok_or_else(|| not_found(&name))
    })
    .await
}

fn io_failure(what: &str, e: std::io::Error) -> ApiError {
    if e.raw_os_error() == Some(28) {
        // ENOSPC
        return ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::NoSpace,
            format!("cannot {what}: the server's disk is full"),
        );
    }
    ApiError::internal(format!("cannot {what}: {e}"))
}

/// The optional `x-skylite-sha256` header, lowercased.
fn expected_sha256(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(SHA256_HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            ErrorCode::Protocol,
            format!("{SHA256_HEADER} must be 64 hexadecimal digits (the SHA-256 of the file)"),
        ));
    }
    Ok(Some(text))
}

/// The optional `x-skylite-page-count` header.
fn expected_pages(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(PAGE_COUNT_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            bad(
                ErrorCode::Protocol,
                format!("{PAGE_COUNT_HEADER} must be a whole number of pages"),
            )
        })
}

/// The header that asks for the full `integrity_check` of an import (`full`) instead of
/// `quick_check` (`quick`, the default).
pub const CHECK_HEADER: &str = "x-skylite-check";

fn import_check(headers: &HeaderMap) -> Result<ImportCheck, ApiError> {
    match headers.get(CHECK_HEADER).map(|v| v.to_str().map(str::trim)) {
        None => Ok(ImportCheck::Quick),
        Some(Ok(v)) if v.eq_ignore_ascii_case("quick") => Ok(ImportCheck::Quick),
        Some(Ok(v)) if v.eq_ignore_ascii_case("full") => Ok(ImportCheck::Full),
        Some(_) => Err(bad(
            ErrorCode::Protocol,
            format!("{CHECK_HEADER} must be `quick` or `full`"),
        )),
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::ImportTooLarge,
        format!("the database file is larger than this server's import limit of {limit} bytes"),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the upload left on disk.
struct Upload {
    bytes: u64,
    sha256: String,
}

/// Writes the request body to `path` in bounded memory, hashing it, then fsyncs it.
async fn receive(body: Body, path: &Path, limit: u64) -> Result<Upload, ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| io_failure("create the import file", e))?;
    let mut stream = body.into_data_stream();
    let mut hasher = Sha256::new();
    let mut pending: Vec<u8> = Vec::with_capacity(IMPORT_WRITE_CHUNK);
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            bad(
                ErrorCode::ImportInterrupted,
                format!("the upload broke off after {total} bytes: {e}"),
            )
        })?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        pending.extend_from_slice(&chunk);
        if pending.len() >= IMPORT_WRITE_CHUNK {
            file.write_all(&pending)
                .await
                .map_err(|e| io_failure("write the import file", e))?;
            pending.clear();
        }
    }
    file.write_all(&pending)
        .await
        .map_err(|e| io_failure("write the import file", e))?;
    file.flush()
        .await
        .map_err(|e| io_failure("write the import file", e))?;
    // No fsync here: the check rewrites the header (the switch to WAL) and fsyncs the whole
    // file once before it is moved into place; nothing is acknowledged before that.
    Ok(Upload {
        bytes: total,
        sha256: hex(&hasher.finalize()),
    })
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::NotADatabase(m) => bad(ErrorCode::NotADatabase, m),
        ImportError::Corrupt(m) => bad(ErrorCode::ImportCorrupt, m),
        ImportError::PageCountMismatch(m) => bad(ErrorCode::ImportPageCountMismatch, m),
        ImportError::Internal(m) => ApiError::internal(m),
    }
}

/// `PUT /v1/admin/databases/{name}/import`: the body is an SQLite database file.
pub async fn import(
    State(app): State<App>,
    _admin: AdminAuth,
    headers: HeaderMap,
    name: Result<UrlPath<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let name = path_name(name)?;
    validate_name(&name)?;
    let want_sha = expected_sha256(&headers)?;
    let want_pages = expected_pages(&headers)?;
    let check = import_check(&headers)?;
    let limit = app.config.max_import_bytes;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let started = Instant::now();
    let (check_name, tmp) = (name.clone(), app.databases.temp_dir("import", &name));
    let tmp_for_worker = tmp.clone();
    on_worker(&app, move |app| {
        if app.databases.exists(&check_name) {
            return Err(exists_error(&check_name));
        }
        std::fs::create_dir(&tmp_for_worker).map_err(|e| io_failure("create a temporary folder", e))
    })
    .await?;
    let mut folder = TempFolder::new(tmp);
    let file = folder.path().join("data.db");
    let upload = receive(body, &file, limit).await?;
    if let Some(want) = &want_sha {
        if *want != upload.sha256 {
            return Err(bad(
                ErrorCode::ImportChecksumMismatch,
                format!(
                    "the SHA-256 of the {} bytes received is {}, but {SHA256_HEADER} says \
                     {want}: the file changed or was damaged on the way",
                    upload.bytes, upload.sha256
                ),
            ));
        }
    }
    let install_name = name.clone();
    // The folder moves into the job: if the client goes away now, the job still finishes and
    // cleans up after itself.
    let checked = on_worker(&app, move |app| {
        let file = folder.path().join("data.db");
        let checked = check_and_prepare_with(&file, want_pages, check).map_err(import_error)?;
        std::fs::File::open(folder.path())
            .and_then(|d| d.sync_all())
            .map_err(|e| io_failure("fsync the temporary folder", e))?;
        app.databases.install(&install_name, folder.path())?;
        folder.disarm();
        Ok(checked)
    })
    .await?;
    tracing::info!(
        database = %name,
        bytes = upload.bytes,
        pages = checked.page_count,
        page_size = checked.page_size,
        seconds = started.elapsed().as_secs_f64(),
        "imported database"
    );
    Ok(json_response(
        StatusCode::CREATED,
        json!({
            "name": name,
            "created": true,
            "size_bytes": upload.bytes,
            "page_count": checked.page_count,
            "page_size": checked.page_size,
            "tables": checked.tables,
            "sha256": upload.sha256,
        }),
    ))
}

/// A finished snapshot, opened, whose folder is already gone.
struct Snapshot {
    file: std::fs::File,
    len: u64,
    page_size: u64,
    page_count: u64,
}

fn snapshot(source: &Path, folder: &TempFolder) -> Result<Snapshot, ApiError> {
    std::fs::create_dir(folder.path()).map_err(|e| io_failure("create a temporary folder", e))?;
    let path = folder.path().join("data.db");
    maintenance::copy_consistent(source, &path).map_err(|e| {
        ApiError::internal(format!(
            "cannot copy the database: {}: {}",
            e.code, e.message
        ))
    })?;
    let mut file = std::fs::File::open(&path).map_err(|e| io_failure("open the copy", e))?;
    let len = file
        .metadata()
        .map_err(|e| io_failure("read the copy", e))?
        .len();
    let mut head = [0u8; 32];
    file.read_exact(&mut head)
        .map_err(|e| io_failure("read the copy", e))?;
    let raw = u16::from_be_bytes([head[16], head[17]]) as u64;
    let page_size = if raw == 1 { 65536 } else { raw };
    let page_count = len / page_size.max(1);
    // Rewind for streaming.
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))
        .map_err(|e| io_failure("read the copy", e))?;
    Ok(Snapshot {
        file,
        len,
        page_size,
        page_count,
    })
}

/// `GET /v1/admin/databases/{name}/export`: a consistent copy of the live database, as a file.
pub async fn export(
    State(app): State<App>,
    _admin: AdminAuth,
    name: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path_name(name)?;
    let handle = existing(&app, name.clone()).await?;
    let folder = TempFolder::new(app.databases.temp_dir("export", &name));
    let snap = on_worker(&app, move |_| {
        let snap = snapshot(handle.database().path(), &folder);
        // The open file keeps the data; the folder goes now, whatever happened.
        drop(folder);
        snap
    })
    .await?;
    let len = snap.len;
    let file = tokio::fs::File::from_std(snap.file);
    let stream = futures_util::stream::unfold((file, 0u64), move |(mut file, sent)| async move {
        if sent >= len {
            return None;
        }
        let want = (len - sent).min(EXPORT_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        match file.read_exact(&mut buf).await {
            Ok(_) => Some((
                Ok::<_, std::io::Error>(Bytes::from(buf)),
                (file, sent + want as u64),
            )),
            Err(e) => Some((Err(e), (file, len))),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(PAGE_SIZE_HEADER, HeaderValue::from(snap.page_size));
    h.insert(PAGE_COUNT_HEADER, HeaderValue::from(snap.page_count));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.db\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Feeds a dump into the response channel from a worker thread.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if crate::blocking::send(&self.tx, Ok(Bytes::copy_from_slice(buf))) {
            Ok(buf.len())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client stopped reading the dump",
            ))
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /v1/admin/databases/{name}/dump`: the database as SQL text, streamed.
pub async fn dump(
    State(app): State<App>,
    _admin: AdminAuth,
    name: Result<UrlPath<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path_name(name)?;
    let handle = existing(&app, name.clone()).await?;
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(DUMP_QUEUE);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let log_name = name.clone();
    let span = tracing::Span::current();
    app.workers.execute(move || {
        let _entered = span.enter();
        let dump = match Dump::begin_with_timeout(
            handle.database().path(),
            handle.database().statement_timeout(),
        ) {
            Ok(d) => d,
            Err(e) => {
                let _ = ready_tx.send(Err(ApiError::internal(format!(
                    "cannot start the dump: {}: {}",
                    e.code, e.message
                ))));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let error_tx = tx.clone();
        let mut out = std::io::BufWriter::with_capacity(DUMP_CHUNK, ChannelWriter { tx });
        match dump.write_to(&mut out) {
            Ok(stats) => tracing::info!(
                database = %log_name,
                tables = stats.tables,
                rows = stats.rows,
                "dumped database"
            ),
            Err(DumpError::Write(e)) => {
                tracing::info!(database = %log_name, "dump stopped: {e}")
            }
            Err(DumpError::Sqlite(e)) => {
                tracing::error!(database = %log_name, "dump failed: {}: {}", e.code, e.message);
                // Whatever is buffered goes first, then the error ends the response abruptly.
                drop(out);
                let _ = crate::blocking::send(
                    &error_tx,
                    Err(std::io::Error::other(format!(
                        "the dump failed: {}: {}",
                        e.code, e.message
                    ))),
                );
            }
        }
    });
    ready_rx
        .await
        .map_err(|_| ApiError::internal("the dump worker failed"))??;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sql; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.sql\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
