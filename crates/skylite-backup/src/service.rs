//! The backup of a whole server: one shipper per database, started when the database is
//! opened, told when its file is replaced or deleted; the writer id of this data folder; the
//! status the admin API shows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use skylite_engine::{Database, ExecError};

use crate::format::{self, ObjectKind};
use crate::shipper::{now_ms, BackupStatus, Shipper};
use crate::BackupConfig;

/// Why the backup could not start.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The data folder's backup files could not be read or written.
    #[error("backup: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Continuous backup of every database of one server.
pub struct Backup {
    store: Arc<dyn ObjectStore>,
    config: BackupConfig,
    writer_id: String,
    /// `.skylite/backup/` in the data folder: the writer id and the local spool.
    dir: PathBuf,
    runtime: tokio::runtime::Handle,
    shippers: Mutex<HashMap<String, Arc<Shipper>>>,
}

/// The writer id of a data folder: made once, kept in `.skylite/backup/writer-id`, so a
/// restarted server recognizes its own objects and two data folders never share one.
fn load_writer_id(dir: &Path) -> Result<String, BackupError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| BackupError::Io { what, source }
    };
    let path = dir.join("writer-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read the writer id")(e)),
    }
    let mut random = [0u8; 8];
    getrandom::getrandom(&mut random)
        .map_err(|e| io("make a writer id")(std::io::Error::other(e.to_string())))?;
    let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
    skylite_engine::fs_durable::create_dir_all(dir).map_err(io("create the backup folder"))?;
    let tmp = dir.join("writer-id.tmp");
    std::fs::write(&tmp, &id).map_err(io("write the writer id"))?;
    skylite_engine::fs_durable::sync_file(&tmp).map_err(io("write the writer id"))?;
    skylite_engine::fs_durable::rename(&tmp, &path).map_err(io("write the writer id"))?;
    Ok(id)
}

impl Backup {
    /// The backup of the server whose data folder is `data_dir`, shipping to `store`. Must be
    /// called inside a tokio runtime (uploaders run on it).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        config: BackupConfig,
        data_dir: &Path,
    ) -> Result<Arc<Self>, BackupError> {
        let dir = data_dir.join(".skylite").join("backup");
        let writer_id = load_writer_id(&dir)?;
        // Snapshot copies left by an interrupted run are useless (a new run starts new
        // generations).
        if let Ok(entries) = std::fs::read_dir(dir.join("spool")) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| BackupError::Io {
            what: "start the uploaders".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        tracing::info!(writer_id = %writer_id, mode = ?config.mode, "continuous backup on");
        let backup = Arc::new(Backup {
            store,
            config,
            writer_id,
            dir,
            runtime,
            shippers: Mutex::new(HashMap::new()),
        });
        if !backup.config.retention.is_zero() {
            backup
                .runtime
                .spawn(retention_loop(Arc::downgrade(&backup)));
        }
        Ok(backup)
    }

    /// This server's writer id (in every object it writes).
    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }

    /// The settings.
    pub fn config(&self) -> &BackupConfig {
        &self.config
    }

    fn shipper(&self, name: &str) -> Arc<Shipper> {
        let mut shippers = self.shippers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = shippers.get(name) {
            return s.clone();
        }
        let shipper = Shipper::new(
            name,
            &self.writer_id,
            self.store.clone(),
            self.config.clone(),
            self.dir.join("spool"),
        );
        self.runtime.spawn(shipper.clone().run());
        shippers.insert(name.to_owned(), shipper.clone());
        shipper
    }

    /// A database was opened: its committed transactions are shipped from now on (a new
    /// generation with a snapshot the first time, or after its file was replaced). Blocking:
    /// call it from a worker thread.
    pub fn database_opened(&self, name: &str, db: &Database) -> Result<(), ExecError> {
        self.shipper(name).attach(db)
    }

    /// The database's file was replaced (import, restore): its history ends; the next open
    /// starts a new generation.
    pub fn database_replaced(&self, name: &str) {
        let shipper = self
            .shippers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        if let Some(shipper) = shipper {
            shipper.end_generation("the database file was replaced");
        }
    }

    /// The database was deleted: its history ends and a tombstone is written (restore leaves
    /// it out unless asked).
    pub fn database_deleted(&self, name: &str) {
        let shipper = self
            .shippers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let Some(shipper) = shipper else { return };
        let generation = shipper.status().generation;
        shipper.end_generation("the database was deleted");
        shipper.stop();
        let Some(generation) = generation.and_then(|g| format::GenerationId::parse(&g).ok()) else {
            return;
        };
        let (store, name, writer) = (self.store.clone(), name.to_owned(), self.writer_id.clone());
        self.runtime.spawn(async move {
            let key = format::tombstone_key(&name, &generation);
            let body = format::encode_tombstone(now_ms());
            let object =
                format::encode_object(ObjectKind::Tombstone, &name, &generation, &writer, &body);
            if let Err(e) = store
                .put(&StorePath::from(key.as_str()), PutPayload::from(object))
                .await
            {
                tracing::error!(database = %name, error = %e, "backup: cannot write the tombstone");
            }
        });
    }

    /// PUT requests made by this server's uploaders so far.
    pub fn puts(&self) -> u64 {
        let shippers: Vec<Arc<Shipper>> = self
            .shippers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        shippers.iter().map(|s| s.status().puts).sum()
    }

    /// Where the backup of `name` stands (`None`: not backed up since the server started).
    pub fn status(&self, name: &str) -> Option<BackupStatus> {
        let shipper = self
            .shippers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        shipper.map(|s| s.status())
    }

    /// Ships what is spooled and stops every uploader (graceful shutdown); gives up after
    /// `timeout` (the local files keep everything).
    pub async fn shutdown(&self, timeout: std::time::Duration) {
        let shippers: Vec<Arc<Shipper>> = self
            .shippers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for s in &shippers {
            s.stop();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        for s in &shippers {
            while !s.is_done() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// Applies retention a minute after the start, then every hour, as long as the backup lives;
/// an hour in which this server uploaded nothing is skipped (an idle server sends no request).
async fn retention_loop(backup: std::sync::Weak<Backup>) {
    let mut delay = std::time::Duration::from_secs(60);
    let mut puts_at_last_pass = None;
    loop {
        tokio::time::sleep(delay).await;
        delay = std::time::Duration::from_secs(3600);
        let Some(backup) = backup.upgrade() else {
            return;
        };
        let puts = backup.puts();
        if puts_at_last_pass == Some(puts) {
            continue;
        }
        let cutoff = now_ms().saturating_sub(backup.config.retention.as_millis() as u64);
        match crate::retention::apply(&backup.store, cutoff).await {
            Ok(_) => puts_at_last_pass = Some(puts),
            Err(e) => {
                tracing::warn!(error = %e, "backup retention failed; it runs again in an hour")
            }
        }
    }
}
