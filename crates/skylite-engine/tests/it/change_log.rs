//! The change log: every committed transaction reaches the attached sink, in order, across
//! checkpoints and WAL restarts, so the snapshot taken at attachment plus the captured pages
//! rebuild the live database exactly.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use skylite_engine::change_log::{CapturedTxn, ChangeSink};
use skylite_engine::{Budget, Database, EngineConfig, ErrorCode, ExecError, Session};
use skylite_proto::{Stmt, StmtResult, Value};

#[derive(Default)]
struct Collect {
    txns: Mutex<Vec<CapturedTxn>>,
    gaps: Mutex<Vec<String>>,
    refuse: std::sync::atomic::AtomicBool,
    waited: Mutex<Vec<u64>>,
}

impl ChangeSink for Collect {
    fn admit_write(&self) -> Result<(), ExecError> {
        if self.refuse.load(std::sync::atomic::Ordering::Acquire) {
            return Err(ExecError::new(ErrorCode::Internal, "refused by the sink"));
        }
        Ok(())
    }
    fn committed(&self, txn: CapturedTxn) -> u64 {
        let mut txns = self.txns.lock().unwrap();
        txns.push(txn);
        txns.len() as u64
    }
    fn gap(&self, reason: &str) {
        self.gaps.lock().unwrap().push(reason.to_owned());
    }
    fn wait_durable(&self, token: u64) -> Result<(), ExecError> {
        self.waited.lock().unwrap().push(token);
        Ok(())
    }
}

fn exec(s: &mut Session, sql: &str) -> Result<StmtResult, ExecError> {
    let r = s.execute(&Stmt::new(sql), &mut Budget::new(1 << 24));
    let durable = s.finish_pipeline();
    let r = r?;
    durable?;
    Ok(r)
}

fn ok(s: &mut Session, sql: &str) -> StmtResult {
    exec(s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Applies captured transactions onto a database file, as a restore does.
fn replay(file: &Path, txns: &[CapturedTxn]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    for t in txns {
        for (n, data) in &t.pages {
            f.write_all_at(data, u64::from(n - 1) * u64::from(t.page_size))
                .unwrap();
        }
        f.set_len(u64::from(t.db_pages) * u64::from(t.page_size))
            .unwrap();
    }
    f.seek(SeekFrom::Start(0)).unwrap();
    f.flush().unwrap();
}

/// Every row of `t` as text, in order (a fingerprint of the content).
fn fingerprint(conn: &rusqlite::Connection) -> Vec<String> {
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

#[test]
fn captured_transactions_rebuild_the_database_across_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let mut s = Session::new(db.clone());
    // History before the sink is attached: in the snapshot, not in the log.
    ok(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    ok(&mut s, "INSERT INTO t VALUES (1, randomblob(3000))");

    let sink = Arc::new(Collect::default());
    let snap = dir.path().join("snap.db");
    let info = db
        .attach_change_sink(sink.clone(), Some(&snap))
        .unwrap()
        .unwrap();
    assert_eq!(info.page_size, 4096);
    assert!(info.db_pages >= 2);

    // Enough writes for several checkpoints (one every ~1000 WAL pages) and WAL restarts,
    // with updates, deletes (the file shrinks after VACUUM-free deletes only in page use),
    // an explicit multi-statement transaction and a rolled-back one.
    let mut expected_txns = 0;
    for i in 0..120 {
        ok(
            &mut s,
            &format!(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20) \
                 INSERT INTO t SELECT x + {}, randomblob(2000) FROM c",
                1000 + i * 100
            ),
        );
        expected_txns += 1;
        if i % 10 == 0 {
            ok(&mut s, "BEGIN");
            ok(
                &mut s,
                &format!("UPDATE t SET v = randomblob(100) WHERE id % 7 = {}", i % 7),
            );
            ok(&mut s, "DELETE FROM t WHERE id % 13 = 0");
            ok(&mut s, "COMMIT");
            expected_txns += 1;
            ok(&mut s, "BEGIN");
            ok(&mut s, "DELETE FROM t");
            ok(&mut s, "ROLLBACK");
        }
    }
    ok(&mut s, "DELETE FROM t WHERE id > 5000");
    expected_txns += 1;
    ok(&mut s, "PRAGMA user_version = 7");
    expected_txns += 1;

    let txns = sink.txns.lock().unwrap().clone();
    assert!(sink.gaps.lock().unwrap().is_empty());
    assert_eq!(
        txns.len(),
        expected_txns,
        "one captured transaction per commit"
    );
    // Every acknowledged write waited on its token.
    assert_eq!(sink.waited.lock().unwrap().len(), expected_txns);
    let total_pages: usize = txns.iter().map(|t| t.pages.len()).sum();
    assert!(
        total_pages > 3000,
        "enough pages for checkpoints: {total_pages}"
    );

    replay(&snap, &txns);
    let replayed = rusqlite::Connection::open(&snap).unwrap();
    let check: String = replayed
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let live = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(fingerprint(&replayed), fingerprint(&live));
    let version: i64 = replayed
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 7);
    drop(live);

    // A sink may refuse new writes; reads go on.
    sink.refuse
        .store(true, std::sync::atomic::Ordering::Release);
    let err = exec(&mut s, "INSERT INTO t VALUES (1, 2)").unwrap_err();
    assert!(err.message.contains("refused by the sink"), "{err}");
    let n = ok(&mut s, "SELECT count(*) FROM t");
    assert!(matches!(n.rows[0][0], Value::Integer(_)));

    // Detached: nothing more is captured.
    sink.refuse
        .store(false, std::sync::atomic::Ordering::Release);
    db.detach_change_sink();
    ok(&mut s, "INSERT INTO t VALUES (99999, x'00')");
    assert_eq!(sink.txns.lock().unwrap().len(), expected_txns);
}

#[test]
fn attaching_mid_wal_captures_only_later_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for i in 0..5 {
        ok(
            &mut s,
            &format!("INSERT INTO t VALUES ({i}, randomblob(10))"),
        );
    }
    let sink = Arc::new(Collect::default());
    let snap = dir.path().join("snap.db");
    db.attach_change_sink(sink.clone(), Some(&snap)).unwrap();
    ok(&mut s, "INSERT INTO t VALUES (100, x'01')");
    let txns = sink.txns.lock().unwrap().clone();
    assert_eq!(txns.len(), 1);
    replay(&snap, &txns);
    let replayed = rusqlite::Connection::open(&snap).unwrap();
    let live = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(fingerprint(&replayed), fingerprint(&live));
    assert_eq!(fingerprint(&replayed).len(), 6);
    // A second attachment needs a new snapshot file.
    assert!(db.attach_change_sink(sink.clone(), Some(&snap)).is_err());
    // Attached again without a snapshot (the sink continues its history): later commits only.
    db.attach_change_sink(sink.clone(), None).unwrap();
    ok(&mut s, "INSERT INTO t VALUES (101, x'02')");
    let txns = sink.txns.lock().unwrap().clone();
    assert_eq!(txns.len(), 2);
    replay(&snap, &txns[1..]);
    let replayed = rusqlite::Connection::open(&snap).unwrap();
    assert_eq!(fingerprint(&replayed), fingerprint(&live));
}

#[test]
fn a_fresh_database_is_captured_from_its_first_write() {
    // Nothing was ever written: the WAL file the attachment sees is deleted when its last user
    // closes, and a new one is created by the first write. The capture follows the new file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/data.db");
    let db = Database::open(&path, EngineConfig::default()).unwrap();
    let sink = Arc::new(Collect::default());
    let snap = dir.path().join("snap.db");
    db.attach_change_sink(sink.clone(), Some(&snap)).unwrap();
    let mut s = Session::new(db.clone());
    ok(&mut s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    ok(&mut s, "INSERT INTO t VALUES (1, x'01')");
    assert!(sink.gaps.lock().unwrap().is_empty());
    let txns = sink.txns.lock().unwrap().clone();
    assert_eq!(txns.len(), 2);
    replay(&snap, &txns);
    let replayed = rusqlite::Connection::open(&snap).unwrap();
    let live = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(fingerprint(&replayed), fingerprint(&live));
}
