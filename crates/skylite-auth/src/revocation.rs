//! Revoked tokens, by `jti`: a JSON file in the data folder (`.skylite/revoked.json`, replaced
//! atomically on every change) mirrored in memory as a hash set. A lookup is one atomic load and
//! one hash probe; at most once a second a lookup also `stat`s the file and reloads it if another
//! process (`skylite token revoke`) changed it.
//!
//! File format: `{"revoked": [{"jti": "…", "revoked_at": 1760000000, "exp": 1762592000}]}`
//! (`exp`, when known, lets entries be dropped once the token has expired anyway).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::KeyError;
use crate::keys::secrets_dir;
use crate::time::now_unix;

/// File name in `<data-dir>/.skylite/`.
pub const REVOKED_FILE: &str = "revoked.json";

/// How often a lookup looks at the file for changes made by other processes.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// An entry is kept this long past its token's `exp` (more than any leeway), then dropped.
const PRUNE_AFTER_EXP: i64 = 3600;

/// One revoked token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The token's `jti`.
    pub jti: String,
    /// When it was revoked (seconds since 1970).
    pub revoked_at: i64,
    /// The token's `exp`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RevokedFile {
    #[serde(default)]
    revoked: Vec<Revoked>,
}

/// What identifies one version of the file, to notice changes cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    ino: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            ino: std::os::unix::fs::MetadataExt::ino(meta),
        }
    }
}

/// The revocation list of one data folder. `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct RevocationList {
    path: PathBuf,
    set: RwLock<Arc<HashSet<String>>>,
    stamp: Mutex<Option<Stamp>>,
    base: Instant,
    last_check_ms: AtomicU64,
    write: Mutex<()>,
}

fn read_file(path: &Path) -> Result<(RevokedFile, Option<Stamp>), KeyError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((RevokedFile::default(), None))
        }
        Err(e) => return Err(KeyError::io(path, e)),
    };
    let bytes = std::fs::read(path).map_err(|e| KeyError::io(path, e))?;
    let file: RevokedFile = serde_json::from_slice(&bytes)
        .map_err(|e| KeyError::invalid(path, format!("not a revocation list: {e}")))?;
    Ok((file, Some(Stamp::of(&meta))))
}

impl RevocationList {
    /// Loads the list at `path` (a missing file is an empty list; a malformed one is an error).
    pub fn open(path: impl Into<PathBuf>) -> Result<RevocationList, KeyError> {
        let path = path.into();
        let (file, stamp) = read_file(&path)?;
        Ok(RevocationList {
            set: RwLock::new(Arc::new(file.revoked.into_iter().map(|r| r.jti).collect())),
            stamp: Mutex::new(stamp),
            base: Instant::now(),
            last_check_ms: AtomicU64::new(0),
            write: Mutex::new(()),
            path,
        })
    }

    /// The list of a data folder: `<data-dir>/.skylite/revoked.json`.
    pub fn for_data_dir(data_dir: &Path) -> Result<RevocationList, KeyError> {
        RevocationList::open(secrets_dir(data_dir).join(REVOKED_FILE))
    }

    /// The file this list lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Is `jti` revoked? O(1); picks up changes made by other processes within a second.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.maybe_refresh();
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(jti)
    }

    /// How many tokens are revoked.
    pub fn len(&self) -> usize {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// `true` when no token is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn maybe_refresh(&self) {
        // Milliseconds since this list was loaded (the file was read then: no check is due).
        let now_ms = self.base.elapsed().as_millis() as u64;
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < RECHECK_INTERVAL.as_millis() as u64 {
            return;
        }
        // One caller per interval does the check; the others go on with the current set.
        if self
            .last_check_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            if let Err(e) = self.refresh_if_changed() {
                tracing::warn!("keeping the previous revocation list: {e}");
            }
        }
    }

    fn refresh_if_changed(&self) -> Result<(), KeyError> {
        let current = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(Stamp::of(&meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(KeyError::io(&self.path, e)),
        };
        if *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) == current {
            return Ok(());
        }
        self.reload()
    }

    /// Reads the file again now (e.g. from an admin API call).
    pub fn reload(&self) -> Result<(), KeyError> {
        let (file, stamp) = read_file(&self.path)?;
        self.install(&file, stamp);
        Ok(())
    }

    fn install(&self, file: &RevokedFile, stamp: Option<Stamp>) {
        let set: HashSet<String> = file.revoked.iter().map(|r| r.jti.clone()).collect();
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
    }

    /// Every entry of the file, as it is on disk now.
    pub fn entries(&self) -> Result<Vec<Revoked>, KeyError> {
        Ok(read_file(&self.path)?.0.revoked)
    }

    /// Revokes `jti` (with the token's `exp`, if known) and writes the file. Takes effect at once
    /// in this process, within a second in a server reading the same data folder. Returns
    /// `false` if it was already revoked.
    pub fn revoke(&self, jti: &str, exp: Option<i64>) -> Result<bool, KeyError> {
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        // Start from the file, not memory, so a revocation made meanwhile by another process
        // is kept.
        let (mut file, _) = read_file(&self.path)?;
        let now = now_unix();
        file.revoked
            .retain(|r| !matches!(r.exp, Some(exp) if exp + PRUNE_AFTER_EXP <= now));
        let added = !file.revoked.iter().any(|r| r.jti == jti);
        if added {
            file.revoked.push(Revoked {
                jti: jti.to_owned(),
                revoked_at: now,
                exp,
            });
        }
        let stamp = self.write_file(&file)?;
        self.install(&file, Some(stamp));
        Ok(added)
    }

    fn write_file(&self, file: &RevokedFile) -> Result<Stamp, KeyError> {
        let path = &self.path;
        if let Some(dir) = path.parent() {
            crate::fs_durable::create_dir_all(dir).map_err(|e| KeyError::io(dir, e))?;
        }
        let mut json = serde_json::to_vec_pretty(file).expect("the list always serializes");
        json.push(b'\n');
        // Atomic and durable: readers see the old list or the new one, and the new one
        // survives a power loss once this returns.
        let result = crate::fs_durable::write_file(path, &json, 0o644)
            .and_then(|()| std::fs::metadata(path));
        result
            .map(|m| Stamp::of(&m))
            .map_err(|e| KeyError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_persists_and_is_seen_by_another_instance() {
        let dir = tempfile::tempdir().unwrap();
        let a = RevocationList::for_data_dir(dir.path()).unwrap();
        let b = RevocationList::for_data_dir(dir.path()).unwrap();
        assert!(!a.is_revoked("t1"));
        assert!(!b.is_revoked("t1"));
        assert!(a.revoke("t1", None).unwrap());
        assert!(!a.revoke("t1", None).unwrap());
        assert!(a.is_revoked("t1"));
        assert!(!a.is_revoked("t2"));
        // b checks the file at most once a second; reload() makes it look now.
        b.reload().unwrap();
        assert!(b.is_revoked("t1"));
        // b revokes another one; a's entry survives (b merged with the file).
        assert!(b.revoke("t2", Some(now_unix() + 100)).unwrap());
        let c = RevocationList::for_data_dir(dir.path()).unwrap();
        assert!(c.is_revoked("t1") && c.is_revoked("t2"));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn lookups_notice_file_changes_after_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let a = RevocationList::for_data_dir(dir.path()).unwrap();
        assert!(!a.is_revoked("x"));
        RevocationList::for_data_dir(dir.path())
            .unwrap()
            .revoke("x", None)
            .unwrap();
        std::thread::sleep(RECHECK_INTERVAL + Duration::from_millis(50));
        assert!(a.is_revoked("x"));
    }

    #[test]
    fn prunes_long_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let a = RevocationList::for_data_dir(dir.path()).unwrap();
        a.revoke("old", Some(now_unix() - 2 * PRUNE_AFTER_EXP))
            .unwrap();
        a.revoke("new", None).unwrap();
        let jtis: Vec<String> = a.entries().unwrap().into_iter().map(|r| r.jti).collect();
        assert_eq!(jtis, ["new"]);
    }

    #[test]
    fn malformed_file_is_an_error_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(secrets_dir(dir.path())).unwrap();
        std::fs::write(secrets_dir(dir.path()).join(REVOKED_FILE), "nope").unwrap();
        assert!(RevocationList::for_data_dir(dir.path()).is_err());
    }
}
