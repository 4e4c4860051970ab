//! The read side against what the write side really ships, on a real S3 server (SeaweedFS on
//! loopback): a database written by concurrent sessions (with WAL checkpoints along the way)
//! and backed up by `Backup`, restored whole and at points in time by `restore`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{ok, wait_until};
use skylite_backup::restore::{restore_database, RestoreOptions};
use skylite_backup::testing::{fingerprint, SeaweedFs};
use skylite_backup::time::now_ms;
use skylite_backup::{Backup, BackupConfig, BackupMode};
use skylite_engine::{Database, EngineConfig, Session};

/// Waits until a new wall-clock second starts and returns that second (unix ms), as an RFC 3339
/// `--at` without fraction gives it: point-in-time restore is exact there (segments never
/// straddle a second; inside one it stops at a segment's end).
fn end_of_second() -> u64 {
    let now = now_ms();
    std::thread::sleep(Duration::from_millis(1000 - now % 1000 + 5));
    (now / 1000 + 1) * 1000
}

fn caught_up(backup: &Backup, name: &str) -> bool {
    backup.status(name).is_some_and(|st| {
        st.state == "ok" && st.backed_up_txn == st.captured_txn && st.spool_bytes == 0
    })
}

/// Four sessions insert `count` rows each, ids from `base`.
fn write_batch(db: &Database, base: i64, count: i64) {
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut s = Session::new(db);
                for i in 0..count {
                    ok(
                        &mut s,
                        &format!(
                            "INSERT INTO t VALUES ({}, randomblob(700))",
                            base + w * 10_000 + i
                        ),
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
}

#[test]
fn shipped_history_restores_whole_and_to_points_in_time() {
    let Some(s3) = SeaweedFs::start_or_skip("shipped_history_restores_whole_and_to_points_in_time")
    else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = s3.store("shipped");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    let backup = {
        let _guard = rt.enter();
        let config = BackupConfig {
            mode: BackupMode::Async,
            segment_interval: Duration::from_millis(200),
            ..BackupConfig::default()
        };
        Backup::new(store.clone(), config, dir.path()).unwrap()
    };
    backup.database_opened("app", &db).unwrap();

    // Batch A, then a point in time, then batch B (enough pages for WAL checkpoints), another
    // point, then updates and deletes.
    write_batch(&db, 0, 150);
    let fingerprint_a = fingerprint(&path);
    let after_a = end_of_second();
    write_batch(&db, 100_000, 400);
    let fingerprint_b = fingerprint(&path);
    let after_b = end_of_second();
    ok(&mut s, "UPDATE t SET v = x'01' WHERE id % 3 = 0");
    ok(&mut s, "DELETE FROM t WHERE id % 7 = 0");
    assert!(
        wait_until(15, || caught_up(&backup, "app")),
        "{:?}",
        backup.status("app")
    );
    let status = backup.status("app").unwrap();
    let fingerprint_now = fingerprint(&path);

    let out = tempfile::tempdir().unwrap();
    let restore = |at_ms: Option<u64>, file: &str| {
        let dest = out.path().join(file);
        let options = RestoreOptions {
            at_ms,
            ..RestoreOptions::default()
        };
        let store: Arc<dyn object_store::ObjectStore> = store.clone();
        let r = rt
            .block_on(restore_database(&store, "app", &options, &dest))
            .unwrap();
        (r, fingerprint(&dest))
    };
    let (r, fp) = restore(None, "now.db");
    assert_eq!(r.txn, status.captured_txn);
    assert_eq!(Some(r.generation.to_string()), status.generation);
    assert_eq!(fp, fingerprint_now);
    let (r, fp) = restore(Some(after_b), "b.db");
    assert_eq!(r.txn, 600 + 1600, "{r:?}");
    assert_eq!(fp, fingerprint_b);
    let (r, fp) = restore(Some(after_a), "a.db");
    assert_eq!(r.txn, 600, "{r:?}");
    assert_eq!(fp, fingerprint_a);
    rt.block_on(backup.shutdown(Duration::from_secs(5)));
}
