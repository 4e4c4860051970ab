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
