//! The write side against a real S3-compatible server (SeaweedFS on loopback), read back by
//! the restore: in sync mode every acknowledged write survives losing the local disk; an
//! outage of the store under load loses nothing and uploads catch up; point-in-time restore of
//! shipped segments gives exactly the transactions committed up to the chosen time.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use skylite_backup::restore::{restore_database, RestoreOptions};
use skylite_backup::testing::SeaweedFs;
use skylite_backup::{Backup, BackupConfig, BackupMode};
use skylite_engine::{Database, EngineConfig, Session};

fn config(mode: BackupMode) -> BackupConfig {
    BackupConfig {
        mode,
        segment_interval: Duration::from_millis(200),
        sync_timeout: Duration::from_secs(5),
        ..BackupConfig::default()
    }
}

/// Waits until a new wall-clock second starts and returns that second (unix ms), as an RFC 3339
/// `--at` without fraction gives it: point-in-time restore is exact there (segments never
/// straddle a second; inside one it stops at a segment's end).
fn end_of_second() -> u64 {
    let now = skylite_backup::time::now_ms();
    std::thread::sleep(Duration::from_millis(1000 - now % 1000 + 5));
    (now / 1000 + 1) * 1000
}

fn count(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sync_mode_keeps_every_acknowledged_write_when_the_disk_is_lost() {
    let Some(weed) = SeaweedFs::start_or_skip("sync_mode_keeps_every_acknowledged_write") else {
        return;
    };
    let store = weed.store("sync");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("db/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let backup = {
        let _guard = rt.enter();
        Backup::new(store.clone(), config(BackupMode::Sync), data.path()).unwrap()
    };
    backup.database_opened("db", &db).unwrap();
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");

    // 8 concurrent writers; each remembers how many of its writes were acknowledged.
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..8).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let (db, acked) = (db.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut s = Session::new(db);
                for i in 0..40u64 {
                    let sql = format!("INSERT INTO t VALUES ({}, randomblob(500))", w * 1000 + i);
                    if exec(&mut s, &sql).is_ok() {
                        acked[w as usize].fetch_add(1, Ordering::Release);
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let acknowledged: u64 = acked.iter().map(|a| a.load(Ordering::Acquire)).sum();
    assert_eq!(
        acknowledged, 320,
        "the store was up: every write is acknowledged"
    );
    let live = fingerprint(&path);

    // The machine is gone: no shutdown, the data folder wiped.
    drop(s);
    drop(db);
    drop(backup);
    drop(rt);
    drop(data);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("restored.db");
    let restored = rt
        .block_on(restore_database(
            &store,
            "db",
            &RestoreOptions::default(),
            &dest,
        ))
        .unwrap();
    assert_eq!(restored.txn, 321, "{restored:?}");
    assert_eq!(fingerprint(&dest), live);
    assert_eq!(count(&dest), 320);
}

#[test]
fn an_outage_under_load_loses_nothing_and_catches_up() {
    let Some(mut weed) = SeaweedFs::start_or_skip("an_outage_under_load_loses_nothing") else {
        return;
    };
    let store = weed.store("outage");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("db/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let backup = {
        let _guard = rt.enter();
        Backup::new(store.clone(), config(BackupMode::Async), data.path()).unwrap()
    };
    backup.database_opened("db", &db).unwrap();
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    assert!(wait_until(20, || backup
        .status("db")
        .is_some_and(|st| st.state == "ok" && st.backed_up_txn == 1)));

    weed.stop();
    for i in 0..300 {
        ok(
            &mut s,
            &format!("INSERT INTO t VALUES ({i}, randomblob(300))"),
        );
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert!(wait_until(20, || backup.status("db").unwrap().state == "retrying"));
    weed.restart();
    assert!(
        wait_until(60, || backup
            .status("db")
            .is_some_and(|st| st.state == "ok"
                && st.backed_up_txn == 301
                && st.spool_bytes == 0)),
        "{:?}",
        backup.status("db")
    );

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("restored.db");
    let restored = rt
        .block_on(restore_database(
            &store,
            "db",
            &RestoreOptions::default(),
            &dest,
        ))
        .unwrap();
    assert_eq!(restored.txn, 301);
    assert_eq!(fingerprint(&dest), fingerprint(&path));
}

#[test]
fn point_in_time_restore_of_shipped_segments() {
    let Some(weed) = SeaweedFs::start_or_skip("point_in_time_restore_of_shipped_segments") else {
        return;
    };
    let store = weed.store("pitr");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("db/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let backup = {
        let _guard = rt.enter();
        Backup::new(store.clone(), config(BackupMode::Async), data.path()).unwrap()
    };
    backup.database_opened("db", &db).unwrap();
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for i in 0..10 {
        ok(&mut s, &format!("INSERT INTO t VALUES ({i}, x'01')"));
    }
    let cut = end_of_second();
    let mut inside = 0;
    for i in 10..20 {
        ok(&mut s, &format!("INSERT INTO t VALUES ({i}, x'02')"));
        if i == 14 {
            std::thread::sleep(Duration::from_millis(2));
            inside = skylite_backup::time::now_ms();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert!(wait_until(20, || backup
        .status("db")
        .is_some_and(|st| st.backed_up_txn == 21)));
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("at.db");
    let options = RestoreOptions {
        at_ms: Some(cut),
        ..RestoreOptions::default()
    };
    let restored = rt
        .block_on(restore_database(&store, "db", &options, &dest))
        .unwrap();
    assert_eq!(restored.txn, 11);
    assert_eq!(count(&dest), 10);

    // A time inside a second: restore stops at the end of a (deduplicated) segment, never
    // inside one, so the rows are exactly those of the transactions it reports.
    let dest = out.path().join("inside.db");
    let options = RestoreOptions {
        at_ms: Some(inside),
        ..RestoreOptions::default()
    };
    let restored = rt
        .block_on(restore_database(&store, "db", &options, &dest))
        .unwrap();
    assert!(restored.txn <= 16, "{restored:?}");
    assert_eq!(count(&dest), restored.txn as i64 - 1, "{restored:?}");
}
