//! [`Connection`]: the persistent stream (state lives between statements), lazy `BEGIN`
//! (a write transaction is two round trips, a rollback of nothing is none), exact
//! `in_transaction`, ±infinity through Protobuf, the JSON fallback, `:memory:` and a cancelled
//! call that leaves the connection usable.

use crate::common;

use std::time::Duration;

use skylite_client::{Config, Connection, Error, Statement, TransactionBehavior, Value};

/// A server whose responses may not exceed 64 KiB, shared by the streaming tests.
fn small_limit_server() -> &'static common::Server {
    static SERVER: std::sync::OnceLock<common::Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        common::start_with(None, |config| config.engine.max_response_bytes = 64 * 1024)
    })
}

async fn remote() -> Connection {
    let s = common::server();
    Connection::connect(&s.url, &s.token).await.unwrap()
}

async fn targets() -> Vec<(&'static str, Connection)> {
    let mut out = Vec::new();
    for (name, url, token) in common::targets() {
        out.push((name, Connection::connect(&url, &token).await.unwrap()));
    }
    if cfg!(feature = "local") {
        out.push(("memory", Connection::connect(":memory:", "").await.unwrap()));
    }
    out
}

#[tokio::test]
async fn a_write_transaction_costs_two_round_trips_and_an_empty_rollback_none() {
    let db = remote().await;
    let t = common::table("rt");
    db.execute(&format!("CREATE TABLE {t} (x)"), ())
        .await
        .unwrap();
    let start = db.round_trips();
    db.rollback().await.unwrap();
    db.commit().await.unwrap();
    assert_eq!(db.round_trips(), start, "nothing open: no request");
    db.begin(TransactionBehavior::Deferred).await.unwrap();
    assert!(db.in_transaction().await);
    assert_eq!(
        db.round_trips(),
        start,
        "BEGIN waits for the first statement"
    );
    db.execute(&format!("INSERT INTO {t} VALUES (1)"), ())
        .await
        .unwrap();
    db.commit().await.unwrap();
    assert_eq!(db.round_trips(), start + 2);
    assert!(!db.in_transaction().await);
    // Begun but never used: rollback sends nothing.
    db.begin(TransactionBehavior::Immediate).await.unwrap();
    db.rollback().await.unwrap();
    assert_eq!(db.round_trips(), start + 2);
    let rows = db
        .execute(&format!("SELECT count(*) FROM {t}"), ())
        .await
        .unwrap();
    assert_eq!(rows.first().unwrap().get::<i64>(0).unwrap(), 1);
}

#[tokio::test]
async fn state_lives_between_statements_and_transactions_roll_back() {
    for (name, db) in targets().await {
        db.execute("CREATE TEMP TABLE scratch (x)", ())
            .await
            .unwrap();
        db.execute("INSERT INTO scratch VALUES (1), (2)", ())
            .await
            .unwrap();
        let r = db
            .execute("SELECT count(*) FROM scratch", ())
            .await
            .unwrap();
        assert_eq!(r.first().unwrap().get::<i64>(0).unwrap(), 2, "{name}");
        db.begin(TransactionBehavior::Deferred).await.unwrap();
        db.execute("INSERT INTO scratch VALUES (3)", ())
            .await
            .unwrap();
        assert!(db.in_transaction().await, "{name}");
        db.rollback().await.unwrap();
        let r = db
            .execute("SELECT count(*) FROM scratch", ())
            .await
            .unwrap();
        assert_eq!(r.first().unwrap().get::<i64>(0).unwrap(), 2, "{name}");
        // BEGIN written as SQL is seen too.
        db.execute("BEGIN", ()).await.unwrap();
        assert!(db.in_transaction().await, "{name}");
        let e = db.begin(TransactionBehavior::Deferred).await.unwrap_err();
        assert_eq!(e.sqlite_code(), Some("SQLITE_ERROR"), "{name}");
        db.execute("COMMIT", ()).await.unwrap();
        assert!(!db.in_transaction().await, "{name}");
        // A batch inside a lazily begun transaction, with a failing step.
        db.begin(TransactionBehavior::Deferred).await.unwrap();
        let e = db
            .execute_batch(vec![
                Statement::with_params("INSERT INTO scratch VALUES (?)", [10]),
                Statement::new("INSERT INTO nope VALUES (1)"),
            ])
            .await
            .unwrap_err();
        assert_eq!(e.sqlite_code(), Some("SQLITE_ERROR"), "{name}");
        assert!(db.in_transaction().await, "{name}");
        db.rollback().await.unwrap();
        let rows = db
            .execute_batch(vec![
                Statement::with_params("INSERT INTO scratch VALUES (?)", [4]),
                Statement::new("SELECT count(*) FROM scratch"),
            ])
            .await
            .unwrap();
        assert_eq!(rows[0].rows_affected(), 1, "{name}");
        assert_eq!(rows[1].first().unwrap().get::<i64>(0).unwrap(), 3, "{name}");
        db.close().await.unwrap();
        assert!(db.execute("SELECT 1", ()).await.is_err(), "{name}");
    }
}

#[tokio::test]
async fn infinities_survive_in_results_and_parameters() {
    for (name, db) in targets().await {
        let r = db
            .execute("SELECT 1e999, -1e999, ?", [f64::INFINITY])
            .await
            .unwrap();
        let row = r.first().unwrap();
        assert_eq!(row.get::<f64>(0).unwrap(), f64::INFINITY, "{name}");
        assert_eq!(row.get::<f64>(1).unwrap(), f64::NEG_INFINITY, "{name}");
        assert_eq!(row.get::<f64>(2).unwrap(), f64::INFINITY, "{name}");
    }
    let db = remote().await;
    db.execute("SELECT 1", ()).await.unwrap();
    assert_eq!(db.uses_protobuf(), Some(true));
}

#[tokio::test]
async fn json_still_works_when_protobuf_is_off() {
    let s = common::server();
    let db = Connection::open(Config::new(&s.url).auth_token(&s.token).protobuf(false))
        .await
        .unwrap();
    let r = db.execute("SELECT 1.5, 'x', x'00ff'", ()).await.unwrap();
    let row = r.first().unwrap();
    assert_eq!(row.get::<f64>(0).unwrap(), 1.5);
    assert_eq!(row.get_value(2).unwrap(), &Value::Blob(vec![0, 255]));
    assert_eq!(db.uses_protobuf(), Some(false));
}

#[cfg(feature = "local")]
#[tokio::test]
async fn memory_databases_are_private() {
    let a = Connection::connect(":memory:", "").await.unwrap();
    let b = Connection::connect(":memory:", "").await.unwrap();
    a.execute("CREATE TABLE t (x)", ()).await.unwrap();
    let e = b.execute("SELECT * FROM t", ()).await.unwrap_err();
    assert!(e.to_string().contains("no such table"), "{e}");
}

#[tokio::test]
async fn a_cancelled_call_leaves_the_connection_usable() {
    for (name, db) in targets().await {
        let t = common::table("cancel");
        db.execute(&format!("CREATE TABLE {t} (x)"), ())
            .await
            .unwrap();
        db.begin(TransactionBehavior::Deferred).await.unwrap();
        // Cancel at once: the request still completes in the background.
        let cancelled = tokio::time::timeout(
            Duration::from_nanos(1),
            db.execute(&format!("INSERT INTO {t} VALUES (1)"), ()),
        )
        .await;
        if let Ok(r) = cancelled {
            r.unwrap();
        }
        // The next call waits for it and sees its transaction.
        let r = db
            .execute(&format!("SELECT count(*) FROM {t}"), ())
            .await
            .unwrap();
        assert_eq!(r.first().unwrap().get::<i64>(0).unwrap(), 1, "{name}");
        db.commit().await.unwrap();
        assert!(!db.in_transaction().await, "{name}");
    }
}

#[tokio::test]
async fn query_stream_reads_results_larger_than_the_response_limit() {
    let s = small_limit_server();
    for protobuf in [true, false] {
        let db = Connection::open(Config::new(&s.url).auth_token(&s.token).protobuf(protobuf))
            .await
            .unwrap();
        let big =
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
                   SELECT i, printf('%0100d', i) AS pad FROM n";
        // The whole result does not fit one response.
        let e = db.execute(big, ()).await.unwrap_err();
        assert_eq!(e.code(), Some("RESPONSE_TOO_LARGE"), "{e}");
        let mut rows = db.query_stream(Statement::new(big)).await.unwrap();
        assert_eq!(rows.columns(), ["i", "pad"]);
        let mut n = 0i64;
        while let Some(row) = rows.next().await {
            let row = row.unwrap();
            n += 1;
            assert_eq!(row[0], Value::Integer(n));
        }
        assert_eq!(n, 20000, "protobuf={protobuf}");
        // The connection goes on; a SQL error comes back from query_stream itself.
        let e = db
            .query_stream(Statement::new("SELECT * FROM no_such_table"))
            .await
            .unwrap_err();
        assert_eq!(e.sqlite_code(), Some("SQLITE_ERROR"));
        db.execute("SELECT 1", ()).await.unwrap();
    }
}

#[tokio::test]
async fn query_stream_inside_a_transaction_and_dropped_early() {
    let s = small_limit_server();
    let db = Connection::connect(&s.url, &s.token).await.unwrap();
    let t = common::table("stream");
    db.execute(&format!("CREATE TABLE {t} (x)"), ())
        .await
        .unwrap();
    db.begin(TransactionBehavior::Deferred).await.unwrap();
    db.execute(
        &format!(
            "INSERT INTO {t} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
             WHERE i < 5000) SELECT i FROM n"
        ),
        (),
    )
    .await
    .unwrap();
    let mut rows = db
        .query_stream(Statement::new(format!("SELECT x FROM {t}")))
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap();
    drop(rows);
    // The transaction is still there: the rest was read in the background.
    assert!(db.in_transaction().await);
    let r = db
        .execute(&format!("SELECT count(*) FROM {t}"), ())
        .await
        .unwrap();
    assert_eq!(r.first().unwrap().get::<i64>(0).unwrap(), 5000);
    db.rollback().await.unwrap();
    // Outside a transaction an abandoned cursor costs only its stream.
    let mut rows = db
        .query_stream(Statement::new(format!("SELECT count(*) FROM {t}")))
        .await
        .unwrap();
    assert_eq!(rows.next().await.unwrap().unwrap(), vec![Value::Integer(0)]);
    drop(rows);
    db.execute("SELECT 1", ()).await.unwrap();
    // A local file streams too (produced whole).
    #[cfg(feature = "local")]
    {
        let local = Connection::connect(":memory:", "").await.unwrap();
        let mut rows = local
            .query_stream(Statement::new("VALUES (1), (2)"))
            .await
            .unwrap();
        assert_eq!(rows.next().await.unwrap().unwrap(), vec![Value::Integer(1)]);
        assert_eq!(rows.next().await.unwrap().unwrap(), vec![Value::Integer(2)]);
        assert!(rows.next().await.is_none());
    }
}

#[tokio::test]
async fn an_expired_stream_loses_its_transaction_once_then_the_connection_goes_on() {
    static SERVER: std::sync::OnceLock<common::Server> = std::sync::OnceLock::new();
    let s = SERVER.get_or_init(|| {
        common::start_with(None, |config| {
            config.stream_idle_timeout = Duration::from_millis(300)
        })
    });
    let db = Connection::connect(&s.url, &s.token).await.unwrap();
    let t = common::table("expire");
    db.execute(&format!("CREATE TABLE {t} (x)"), ())
        .await
        .unwrap();
    // Outside a transaction an expired stream is invisible.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.execute(&format!("INSERT INTO {t} VALUES (1)"), ())
        .await
        .unwrap();
    // Inside one, the loss is reported once.
    db.begin(TransactionBehavior::Deferred).await.unwrap();
    db.execute(&format!("INSERT INTO {t} VALUES (2)"), ())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let e = db
        .execute(&format!("INSERT INTO {t} VALUES (3)"), ())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TransactionLost(_)), "{e:?}");
    assert!(!db.in_transaction().await);
    let r = db
        .execute(&format!("SELECT x FROM {t} ORDER BY x"), ())
        .await
        .unwrap();
    let xs: Vec<i64> = r.iter().map(|row| row.get(0).unwrap()).collect();
    assert_eq!(
        xs,
        [1],
        "the lost transaction's row is gone, nothing ran twice"
    );
}

#[tokio::test]
async fn idle_connections_hold_no_stream_unless_they_made_session_state() {
    static SERVER: std::sync::OnceLock<common::Server> = std::sync::OnceLock::new();
    let s = SERVER
        .get_or_init(|| common::start_with(None, |config| config.max_streams_per_principal = 4));
    let t = common::table("streams");
    let setup = Connection::connect(&s.url, &s.token).await.unwrap();
    setup
        .execute(&format!("CREATE TABLE {t} (x)"), ())
        .await
        .unwrap();
    // Ten connections of one token, all used, none closed: each gave its stream back.
    let mut conns = Vec::new();
    for i in 0..10 {
        let db = Connection::connect(&s.url, &s.token).await.unwrap();
        let mut rows = db
            .query_stream(Statement::new(format!("SELECT count(*) FROM {t}")))
            .await
            .unwrap();
        while rows.next().await.is_some() {}
        db.execute(&format!("INSERT INTO {t} VALUES (?)"), [i])
            .await
            .unwrap();
        db.begin(TransactionBehavior::Deferred).await.unwrap();
        db.execute(&format!("INSERT INTO {t} VALUES (?)"), [i])
            .await
            .unwrap();
        db.commit().await.unwrap();
        conns.push(db);
    }
    let r = setup
        .execute(&format!("SELECT count(*) FROM {t}"), ())
        .await
        .unwrap();
    assert_eq!(r.first().unwrap().get::<i64>(0).unwrap(), 20);
    // A pragma set on a connection holds across its transactions (it keeps its stream).
    let fk = Connection::connect(&s.url, &s.token).await.unwrap();
    fk.execute("PRAGMA foreign_keys = ON", ()).await.unwrap();
    let p = common::table("parent");
    fk.execute(&format!("CREATE TABLE {p} (id INTEGER PRIMARY KEY)"), ())
        .await
        .unwrap();
    fk.execute(
        &format!("CREATE TABLE {p}_child (pid REFERENCES {p}(id))"),
        (),
    )
    .await
    .unwrap();
    fk.begin(TransactionBehavior::Deferred).await.unwrap();
    let e = fk
        .execute(&format!("INSERT INTO {p}_child VALUES (42)"), ())
        .await
        .unwrap_err();
    assert_eq!(e.sqlite_code(), Some("SQLITE_CONSTRAINT_FOREIGNKEY"), "{e}");
    fk.rollback().await.unwrap();
}
