//! Read-only access (what a read-only token gets): the engine refuses every write, whether it
//! comes as plain DML, DDL, a pragma that writes, `RETURNING`, a statement another session left
//! in the connection's statement cache, or `BEGIN IMMEDIATE`; reads and the harmless pragmas
//! ORMs send on connect keep working.

use skylite_engine::{Budget, Database, EngineConfig, ExecError, Session};
use skylite_proto::{Stmt, StmtResult, Value};

fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        // One pooled connection, so the read-only session reuses the writer's connection and
        // its statement cache.
        pool_size: 1,
        ..EngineConfig::default()
    };
    let db = Database::open(&dir.path().join("db/data.db"), config).unwrap();
    (dir, db)
}

fn exec(s: &mut Session, sql: &str) -> Result<StmtResult, ExecError> {
    let r = s.execute(&Stmt::new(sql), &mut Budget::new(1 << 20));
    s.finish_pipeline().unwrap();
    r
}

fn count(db: &Database) -> i64 {
    let mut s = Session::new(db.clone());
    match exec(&mut s, "SELECT count(*) FROM t").unwrap().rows[0][0] {
        Value::Integer(i) => i,
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn read_only_sessions_cannot_write_by_any_route() {
    let (_dir, db) = open();
    let mut writer = Session::new(db.clone());
    for sql in [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
        "CREATE TABLE log(msg TEXT)",
        "CREATE TRIGGER t_log AFTER INSERT ON t BEGIN INSERT INTO log VALUES ('x'); END",
        // Leaves this exact statement in the pooled connection's cache.
        "INSERT INTO t(v) VALUES ('from the writer')",
    ] {
        exec(&mut writer, sql).unwrap();
    }
    drop(writer);

    let mut reader = Session::new(db.clone());
    reader.set_read_only(true);
    assert!(reader.is_read_only());
    // Reads and connect-time pragmas work.
    assert_eq!(exec(&mut reader, "SELECT v FROM t").unwrap().rows.len(), 1);
    exec(&mut reader, "PRAGMA read_uncommitted").unwrap();
    exec(&mut reader, "PRAGMA table_info(t)").unwrap();
    exec(&mut reader, "BEGIN").unwrap();
    exec(&mut reader, "SELECT count(*) FROM t").unwrap();
    exec(&mut reader, "COMMIT").unwrap();

    for sql in [
        // The cached statement from the writer.
        "INSERT INTO t(v) VALUES ('from the writer')",
        "INSERT INTO t(v) VALUES ('x') RETURNING id",
        "UPDATE t SET v = 'y'",
        "DELETE FROM t",
        "REPLACE INTO t(id, v) VALUES (1, 'z')",
        "CREATE TABLE u(a)",
        "CREATE TEMP TABLE tmp(a)",
        "DROP TABLE t",
        "ALTER TABLE t ADD COLUMN w",
        "CREATE INDEX t_v ON t(v)",
        "PRAGMA user_version = 7",
        "ANALYZE",
        "VACUUM",
        "BEGIN IMMEDIATE",
        "BEGIN EXCLUSIVE",
    ] {
        let err = exec(&mut reader, sql).expect_err(sql);
        assert_eq!(err.code, "SQLITE_READONLY", "{sql}: {err}");
        assert!(err.message.contains("read-only"), "{sql}: {err}");
    }
    assert_eq!(count(&db), 1);
    let mut s = Session::new(db.clone());
    let log = exec(&mut s, "SELECT count(*) FROM log").unwrap();
    assert_eq!(log.rows[0][0], Value::Integer(1), "no trigger fired");
    assert_eq!(
        exec(&mut s, "PRAGMA user_version").unwrap().rows[0][0],
        Value::Integer(0)
    );

    // The same connection writes again for a read-write session.
    drop(reader);
    let mut writer = Session::new(db.clone());
    exec(&mut writer, "INSERT INTO t(v) VALUES ('again')").unwrap();
    assert_eq!(count(&db), 2);
}

#[test]
fn vacuum_is_refused_with_a_reason_and_leaves_vector_indexes_intact() {
    let (_dir, db) = open();
    let mut s = Session::new(db.clone());
    for sql in [
        "CREATE TABLE v (id INTEGER PRIMARY KEY, e F32_BLOB(3))",
        "CREATE INDEX v_idx ON v (libsql_vector_idx(e))",
        "INSERT INTO v(e) VALUES (vector32('[1,2,3]'))",
    ] {
        exec(&mut s, sql).unwrap();
    }
    let err = exec(&mut s, "VACUUM").unwrap_err();
    assert_eq!(err.code, "SQLITE_AUTH");
    assert!(err.message.contains("VACUUM is not available"), "{err}");
    let check = exec(&mut s, "PRAGMA integrity_check").unwrap();
    assert_eq!(check.rows[0][0], Value::Text("ok".into()));
    let hits = exec(
        &mut s,
        "SELECT id FROM vector_top_k('v_idx', vector32('[1,2,3]'), 1)",
    )
    .unwrap();
    assert_eq!(hits.rows.len(), 1);
}

/// What an observer outside the engine sees of the database: its files' bytes (the database and
/// its WAL) and SQLite's `data_version` on a connection of its own.
struct Observer {
    conn: rusqlite::Connection,
    path: std::path::PathBuf,
}

impl Observer {
    fn new(db: &Database) -> Self {
        Observer {
            conn: rusqlite::Connection::open(db.path()).unwrap(),
            path: db.path().to_path_buf(),
        }
    }

    fn snapshot(&self) -> (i64, Vec<u8>, Vec<u8>) {
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap();
        let file = std::fs::read(&self.path).unwrap();
        let wal = std::fs::read(self.path.with_extension("db-wal")).unwrap_or_default();
        (version, file, wal)
    }
}

#[test]
fn read_only_sessions_cannot_write_through_maintenance_statements_or_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/data.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        // Incremental auto-vacuum can only be chosen before the first table.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL")
            .unwrap();
    }
    let config = EngineConfig {
        pool_size: 1,
        ..EngineConfig::default()
    };
    let db = Database::open(&path, config).unwrap();
    let mut writer = Session::new(db.clone());
    for sql in [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
        "CREATE INDEX t_v ON t(v)",
        "CREATE VIRTUAL TABLE f3 USING fts3(x)",
        "CREATE VIRTUAL TABLE f4 USING fts4(x)",
        "CREATE VIRTUAL TABLE f5 USING fts5(x)",
        "CREATE TABLE vec(id INTEGER PRIMARY KEY, e F32_BLOB(3))",
        "CREATE INDEX vec_idx ON vec(libsql_vector_idx(e))",
        "INSERT INTO vec(e) VALUES (vector32('[1,2,3]'))",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 500) \
         INSERT INTO t(v) SELECT hex(randomblob(200)) FROM c",
        "DELETE FROM t WHERE id > 100",
        // The writer warms the pooled connection: FTS keeps its internal statements prepared.
        "SELECT optimize(f3) FROM f3 LIMIT 1",
        "INSERT INTO f4(f4) VALUES ('optimize')",
        "INSERT INTO f5(f5) VALUES ('optimize')",
    ] {
        exec(&mut writer, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // Several segments per full-text index, so that optimize and merge have work to do.
    for i in 0..6 {
        for table in ["f3", "f4", "f5"] {
            exec(
                &mut writer,
                &format!("INSERT INTO {table}(x) VALUES ('word{i} shared text')"),
            )
            .unwrap();
        }
    }
    drop(writer);

    let observer = Observer::new(&db);
    let before = observer.snapshot();
    let freelist = |db: &Database| {
        let mut s = Session::new(db.clone());
        exec(&mut s, "PRAGMA freelist_count").unwrap().rows[0][0].clone()
    };
    let free_before = freelist(&db);
    assert_ne!(free_before, Value::Integer(0), "the test needs free pages");

    let mut reader = Session::new(db.clone());
    reader.set_read_only(true);
    for sql in [
        "REINDEX",
        "REINDEX t",
        "REINDEX t_v",
        "ANALYZE",
        "ANALYZE t",
        "PRAGMA optimize",
        "PRAGMA optimize(0x10002)",
        "PRAGMA incremental_vacuum",
        "PRAGMA incremental_vacuum(5)",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "SELECT optimize(f3) FROM f3 LIMIT 1",
        "SELECT optimize(f4) FROM f4 LIMIT 1",
        "INSERT INTO f3(f3) VALUES ('optimize')",
        "INSERT INTO f4(f4) VALUES ('merge=1,2')",
        "INSERT INTO f4(f4) VALUES ('rebuild')",
        "INSERT INTO f5(f5) VALUES ('optimize')",
        "INSERT INTO f5(f5) VALUES ('rebuild')",
        "INSERT INTO f5(f5, rank) VALUES ('merge', 1)",
        "INSERT INTO f5(f5, rank) VALUES ('automerge', 2)",
        "PRAGMA query_only = 0",
    ] {
        // Each trick is refused, and nothing changed.
        let err = exec(&mut reader, sql).expect_err(sql);
        assert!(
            err.code == "SQLITE_READONLY" || err.code == "SQLITE_AUTH",
            "{sql}: {err}"
        );
        assert_eq!(observer.snapshot(), before, "{sql} changed the database");
    }
    // Reads, full-text queries and vector searches still work.
    for sql in [
        "SELECT count(*) FROM t",
        "SELECT * FROM f3 WHERE f3 MATCH 'shared'",
        "SELECT * FROM f4 WHERE f4 MATCH 'word1'",
        "SELECT * FROM f5 WHERE f5 MATCH 'shared'",
        "SELECT id FROM vector_top_k('vec_idx', vector32('[1,2,3]'), 1)",
        "PRAGMA integrity_check",
    ] {
        exec(&mut reader, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // SQLite itself refuses the reader's writes: its connection runs with query_only on, and
    // the same pooled connection is writable again for the next writer.
    let q = exec(&mut reader, "PRAGMA query_only").unwrap();
    assert_eq!(q.rows[0][0], Value::Integer(1));
    drop(reader);
    assert_eq!(observer.snapshot(), before);
    let mut w = Session::new(db.clone());
    let q = exec(&mut w, "PRAGMA query_only").unwrap();
    assert_eq!(q.rows[0][0], Value::Integer(0));
    drop(w);
    assert_eq!(freelist(&db), free_before);
    let mut s = Session::new(db.clone());
    let stat = exec(
        &mut s,
        "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'",
    )
    .unwrap();
    assert_eq!(
        stat.rows[0][0],
        Value::Integer(0),
        "ANALYZE left statistics"
    );
}

/// With nothing to rebuild, SQLite reports REINDEX, ANALYZE and `PRAGMA optimize` as reading
/// and runs them as no-ops; a read-only caller is refused them anyway (as sqld does), so the
/// answer never depends on what the database holds.
#[test]
fn maintenance_is_refused_to_a_read_only_caller_even_with_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("data.db"), EngineConfig::default()).unwrap();
    let mut reader = Session::new(db.clone());
    reader.set_read_only(true);
    for sql in [
        "REINDEX",
        "reindex nocase",
        "ANALYZE",
        "/* c */ analyze main",
        "PRAGMA optimize",
        "PRAGMA main.optimize",
        "PRAGMA incremental_vacuum",
        "PRAGMA user_version = 3",
    ] {
        let err = exec(&mut reader, sql).expect_err(sql);
        assert_eq!(err.code, "SQLITE_READONLY", "{sql}: {err}");
    }
    // Reading the same pragmas stays allowed.
    exec(&mut reader, "PRAGMA user_version").unwrap();
}
