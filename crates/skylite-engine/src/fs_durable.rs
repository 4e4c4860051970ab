//! Durable changes to the data folder: every create, rename and delete of a file or folder the
//! server relies on is followed by an fsync of the folder that holds the changed entry, and every
//! file written whole is fsynced before it is renamed or linked into place.
//!
//! Why: a file's contents can be on disk while its directory entry is not. Without the folder
//! fsync, a database acknowledged as created can vanish after a power loss, and a deleted one
//! (renamed to `.trash-*`) can come back.
//!
//! This file depends on `std` alone, so crates that cannot depend on the engine (`skylite-auth`)
//! include the very same source instead of carrying a copy.

#![allow(dead_code)] // Each including crate uses a different subset.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// fsyncs a folder, so the entries created, renamed or removed in it are on disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Folders cannot be opened for syncing elsewhere; NTFS journals its metadata.
        let _ = dir;
        Ok(())
    }
}

/// fsyncs the folder that holds `path` (the current folder for a bare name).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// fsyncs a file's contents and metadata.
pub fn sync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates `dir` and any missing parents; each new entry is made durable in its parent.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_dir_all(parent)?;
        }
    }
    match std::fs::create_dir(dir) {
        Ok(()) => sync_parent(dir),
        // Another thread or process made it meanwhile; it made it durable too.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the folder `dir` (its parent must exist; fails if `dir` exists) durably.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir(dir)?;
    sync_parent(dir)
}

/// Renames `from` to `to` durably: the entry leaves one folder and appears in the other, so
/// both folders are fsynced (once if they are the same). When `from` is a folder, its own
/// entries are fsynced first, so the renamed folder arrives complete.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    if from.is_dir() {
        sync_dir(from)?;
    }
    std::fs::rename(from, to)?;
    sync_parent(to)?;
    if from.parent() != to.parent() {
        sync_parent(from)?;
    }
    Ok(())
}

/// Removes the folder `dir` with everything in it, durably.
pub fn remove_dir_all(dir: &Path) -> io::Result<()> {
    std::fs::remove_dir_all(dir)?;
    sync_parent(dir)
}

/// Removes the file `path` durably.
pub fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    sync_parent(path)
}

/// A temporary name next to `path` (same folder, so renames stay atomic).
fn temp_sibling(path: &Path) -> std::path::PathBuf {
    // Unique within the process (counter) and across processes (pid); `create_new` catches
    // whatever is left over from a crashed run.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let hex = format!("{:x}-{n:x}-{nanos:x}", std::process::id());
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{hex}"));
    path.with_file_name(name)
}

/// Writes a fresh temporary file next to `path` holding `bytes` (fsynced), with `mode` on Unix.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<std::path::PathBuf> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces (or creates) `path` with `bytes` atomically and durably: a temporary file is
/// written and fsynced, renamed over `path`, and the folder is fsynced. Readers see the old
/// contents or the new ones, never a mix.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// Creates `path` holding `bytes` only if it does not exist yet, atomically and durably (the
/// fsynced temporary file is hard-linked into place, which fails if another process won the
/// race). Returns `Ok(false)` if `path` already existed.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    let tmp = write_temp(path, bytes, mode)?;
    let linked = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&tmp);
    let created = linked?;
    // Also makes the removal of the temporary name durable.
    sync_parent(path)?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_write_rename_remove() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        create_dir_all(&nested).unwrap();
        create_dir_all(&nested).unwrap();
        let file = nested.join("f");
        assert!(write_new_file(&file, b"one", 0o600).unwrap());
        assert!(!write_new_file(&file, b"two", 0o600).unwrap());
        assert_eq!(std::fs::read(&file).unwrap(), b"one");
        write_file(&file, b"three", 0o600).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"three");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(&nested).unwrap().count(), 1);
        let moved = dir.path().join("moved");
        rename(&dir.path().join("a"), &moved).unwrap();
        assert!(moved.join("b/c/f").is_file());
        remove_file(&moved.join("b/c/f")).unwrap();
        remove_dir_all(&moved).unwrap();
        assert!(!moved.exists());
        assert!(create_dir(&dir.path().join("x/y")).is_err());
    }
}
