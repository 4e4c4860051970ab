//! The write side of continuous backup against an in-memory object store: every committed
//! transaction reaches the store (snapshot + segments rebuild the live database), few PUTs at
//! load and none when idle, sync acknowledgements, fencing of a second server, outages.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use object_store::ObjectStore;
use skylite_backup::{Backup, BackupConfig, BackupMode};
use skylite_engine::{Database, EngineConfig, Session};

fn config(mode: BackupMode) -> BackupConfig {
    BackupConfig {
        mode,
        segment_interval: Duration::from_millis(200),
        sync_timeout: Duration::from_millis(800),
        ..BackupConfig::default()
    }
}

struct Server {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    db: Database,
    backup: Arc<Backup>,
}

fn server(rt: &tokio::runtime::Runtime, store: Arc<dyn ObjectStore>, cfg: BackupConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    ok(&mut s, "INSERT INTO t VALUES (0, x'00')");
    let _guard = rt.enter();
    let backup = Backup::new(store, cfg, dir.path()).unwrap();
    backup.database_opened("db", &db).unwrap();
    Server {
        _dir: dir,
        path,
        db,
        backup,
    }
}

fn caught_up(backup: &Backup) -> bool {
    backup.status("db").is_some_and(|st| {
        st.state == "ok" && st.backed_up_txn == st.captured_txn && st.spool_bytes == 0
    })
}

#[test]
fn async_backup_ships_every_transaction_in_few_puts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = flaky();
    let srv = server(&rt, store.clone(), config(BackupMode::Async));
    let tmp = tempfile::tempdir().unwrap();

    // 4 writers, 250 commits each, with WAL checkpoints along the way.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = srv.db.clone();
            std::thread::spawn(move || {
                let mut s = Session::new(db);
                for i in 0..250 {
                    ok(
                        &mut s,
                        &format!(
                            "INSERT INTO t VALUES ({}, randomblob(300))",
                            1 + w * 1000 + i
                        ),
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert!(
        wait_until(10, || caught_up(&srv.backup)),
        "{:?}",
        srv.backup.status("db")
    );
    let st = srv.backup.status("db").unwrap();
    assert_eq!(st.captured_txn, 1000);
    assert_eq!(st.commits, 1000);
    assert_eq!(st.lag_ms, 0);
    assert!(st.backed_up_commit_ms.is_some());
    // One snapshot + one segment per 200 ms interval at most, not one per commit.
    let puts = store.puts.load(Ordering::Relaxed);
    assert!(puts < 60, "{puts} PUTs for 1000 commits");
    assert_eq!(st.puts, puts);

    // Idle: no request at all.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(store.puts.load(Ordering::Relaxed), puts, "PUTs while idle");

    let gens = rt.block_on(generations(&*store, "db"));
    assert_eq!(gens.len(), 1);
    let rebuilt = rt.block_on(rebuild(&*store, "db", &gens[0], tmp.path()));
    assert_eq!(rebuilt.last_txn, 1000);
    assert!(!rebuilt.sealed);
    assert!(rebuilt.writers.iter().all(|w| w == srv.backup.writer_id()));
    assert_eq!(fingerprint(&rebuilt.path), fingerprint(&srv.path));
    assert_eq!(fingerprint(&rebuilt.path).len(), 1001);
}

#[test]
fn sync_backup_acknowledges_only_stored_writes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = flaky();
    let srv = server(&rt, store.clone(), config(BackupMode::Sync));
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Session::new(srv.db.clone());
    for i in 1..=20 {
        ok(
            &mut s,
            &format!("INSERT INTO t VALUES ({i}, randomblob(100))"),
        );
        // Acknowledged means stored: the status says so at once.
        let st = srv.backup.status("db").unwrap();
        assert_eq!(st.backed_up_txn, i as u64, "{st:?}");
    }
    let gens = rt.block_on(generations(&*store, "db"));
    let rebuilt = rt.block_on(rebuild(&*store, "db", &gens[0], tmp.path()));
    assert_eq!(fingerprint(&rebuilt.path), fingerprint(&srv.path));

    // The store goes down: a write is not acknowledged (committed locally, not stored), and
    // once the store has failed for the sync timeout new writes are refused before they run.
    store.down.store(true, Ordering::Release);
    let err = exec(&mut s, "INSERT INTO t VALUES (100, x'01')").unwrap_err();
    assert_eq!(err.code, "BACKUP_UNAVAILABLE", "{err}");
    assert!(wait_until(5, || srv.backup.status("db").unwrap().state == "retrying"));
    std::thread::sleep(Duration::from_millis(900));
    let err = exec(&mut s, "INSERT INTO t VALUES (101, x'01')").unwrap_err();
    assert_eq!(err.code, "BACKUP_UNAVAILABLE", "{err}");
    assert!(err.message.contains("refused"), "{}", err.message);
    // Reads go on.
    ok(&mut s, "SELECT count(*) FROM t");

    // The store is back: the backlog is shipped and writes are acknowledged again.
    store.down.store(false, Ordering::Release);
    assert!(
        wait_until(10, || caught_up(&srv.backup)),
        "{:?}",
        srv.backup.status("db")
    );
    ok(&mut s, "INSERT INTO t VALUES (102, x'02')");
    let tmp2 = tempfile::tempdir().unwrap();
    let rebuilt = rt.block_on(rebuild(&*store, "db", &gens[0], tmp2.path()));
    assert_eq!(fingerprint(&rebuilt.path), fingerprint(&srv.path));
}

#[test]
fn async_backup_rides_out_an_outage_and_catches_up() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = flaky();
    let srv = server(&rt, store.clone(), config(BackupMode::Async));
    assert!(wait_until(10, || caught_up(&srv.backup)));
    store.down.store(true, Ordering::Release);
    let mut s = Session::new(srv.db.clone());
    // Writes go on locally while the store is down.
    for i in 1..=200 {
        ok(
            &mut s,
            &format!("INSERT INTO t VALUES ({i}, randomblob(200))"),
        );
    }
    assert!(wait_until(5, || srv.backup.status("db").unwrap().state == "retrying"));
    let st = srv.backup.status("db").unwrap();
    assert_eq!(st.captured_txn, 200);
    assert_eq!(st.backed_up_txn, 0);
    assert!(st.error.is_some());
    assert!(st.spool_bytes > 0);
    store.down.store(false, Ordering::Release);
    assert!(
        wait_until(15, || caught_up(&srv.backup)),
        "{:?}",
        srv.backup.status("db")
    );
    let tmp = tempfile::tempdir().unwrap();
    let gens = rt.block_on(generations(&*store, "db"));
    assert_eq!(gens.len(), 1, "the same history went on");
    let rebuilt = rt.block_on(rebuild(&*store, "db", &gens[0], tmp.path()));
    assert_eq!(rebuilt.last_txn, 200);
    assert_eq!(fingerprint(&rebuilt.path), fingerprint(&srv.path));
}

#[test]
fn a_full_spool_in_async_mode_starts_a_new_generation() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = flaky();
    let cfg = BackupConfig {
        spool_limit: 64 * 1024,
        ..config(BackupMode::Async)
    };
    let srv = server(&rt, store.clone(), cfg);
    assert!(wait_until(10, || caught_up(&srv.backup)));
    let first = rt.block_on(generations(&*store, "db"));
    store.down.store(true, Ordering::Release);
    let mut s = Session::new(srv.db.clone());
    for i in 1..=100 {
        // Never refused in async mode.
        ok(
            &mut s,
            &format!("INSERT INTO t VALUES ({i}, randomblob(2000))"),
        );
    }
    let state = srv.backup.status("db").unwrap().state;
    assert!(state == "gap" || state == "retrying", "{state}");
    store.down.store(false, Ordering::Release);
    assert!(
        wait_until(15, || caught_up(&srv.backup)),
        "{:?}",
        srv.backup.status("db")
    );
    let gens = rt.block_on(generations(&*store, "db"));
    assert_eq!(gens.len(), 2, "{gens:?}");
    assert_eq!(gens[0], first[0]);
    let tmp = tempfile::tempdir().unwrap();
    // The old generation is sealed; the new one holds everything.
    let old = rt.block_on(rebuild(&*store, "db", &gens[0], tmp.path()));
    assert!(old.sealed);
    let new = rt.block_on(rebuild(&*store, "db", &gens[1], tmp.path()));
    assert_eq!(fingerprint(&new.path), fingerprint(&srv.path));
}

#[test]
fn a_second_server_on_the_prefix_fences_the_first() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = flaky();
    let a = server(&rt, store.clone(), config(BackupMode::Sync));
    let mut sa = Session::new(a.db.clone());
    for i in 1..=5 {
        ok(&mut sa, &format!("INSERT INTO t VALUES ({i}, x'0a')"));
    }
    // Server B (its own data folder and writer id) starts on the same prefix: it starts a new
    // generation and seals A's.
    let b = server(&rt, store.clone(), config(BackupMode::Sync));
    assert_ne!(a.backup.writer_id(), b.backup.writer_id());
    assert!(
        wait_until(10, || caught_up(&b.backup)),
        "{:?}",
        b.backup.status("db")
    );
    let mut sb = Session::new(b.db.clone());
    ok(&mut sb, "INSERT INTO t VALUES (50, x'0b')");

    // A's next write hits the seal: A is fenced, its write is not acknowledged, and later
    // writes are refused.
    let err = exec(&mut sa, "INSERT INTO t VALUES (6, x'0a')").unwrap_err();
    assert_eq!(err.code, "BACKUP_UNAVAILABLE", "{err}");
    let st = a.backup.status("db").unwrap();
    assert_eq!(st.state, "fenced", "{st:?}");
    assert!(st.error.unwrap().contains("another server"));
    let err = exec(&mut sa, "INSERT INTO t VALUES (7, x'0a')").unwrap_err();
    assert_eq!(err.code, "BACKUP_UNAVAILABLE", "{err}");

    // No history interleaves: A's generation holds only A's transactions, then the seal;
    // B's only B's.
    let gens = rt.block_on(generations(&*store, "db"));
    assert_eq!(gens.len(), 2);
    let tmp = tempfile::tempdir().unwrap();
    let old = rt.block_on(rebuild(&*store, "db", &gens[0], tmp.path()));
    assert!(old.sealed);
    assert_eq!(old.last_txn, 5);
    assert!(old.writers.iter().all(|w| w == a.backup.writer_id()));
    let new = rt.block_on(rebuild(&*store, "db", &gens[1], tmp.path()));
    assert!(new.writers.iter().all(|w| w == b.backup.writer_id()));
    assert_eq!(fingerprint(&new.path), fingerprint(&b.path));
}

#[test]
fn async_fencing_keeps_local_writes_and_reports_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = flaky();
    let a = server(&rt, store.clone(), config(BackupMode::Async));
    assert!(wait_until(10, || caught_up(&a.backup)));
    let b = server(&rt, store.clone(), config(BackupMode::Async));
    assert!(wait_until(10, || caught_up(&b.backup)));
    let mut sa = Session::new(a.db.clone());
    ok(&mut sa, "INSERT INTO t VALUES (1, x'0a')");
    assert!(wait_until(10, || a.backup.status("db").unwrap().state == "fenced"));
    // Async mode: the write stays acknowledged locally; the status says the backup stopped.
    ok(&mut sa, "INSERT INTO t VALUES (2, x'0a')");
    let before = store.puts.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        store.puts.load(Ordering::Relaxed),
        before,
        "a fenced server writes nothing"
    );
}
