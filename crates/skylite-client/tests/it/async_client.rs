//! The async client against a local file and a real skylite server (auth on), the same
//! scenarios on both: value types, positional and named parameters, atomic batches,
//! transactions (commit, rollback, rollback on drop), execute_multiple, serde rows, SQLite error
//! codes, a libSQL vector query, 10,000 rows and 20 concurrent tasks.

use crate::common;

use std::time::{Duration, Instant};

use common::{table, targets};
use serde::Deserialize;
use skylite_client::{named_params, params, Client, Error, Statement, Value};

async fn clients() -> Vec<(&'static str, Client)> {
    let mut out = Vec::new();
    for (name, url, token) in targets() {
        out.push((name, Client::connect(&url, &token).await.expect("connect")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip() {
    for (target, db) in clients().await {
        let t = table("vals");
        db.execute(&format!("CREATE TABLE {t} (i, f, s, b, n)"), ())
            .await
            .unwrap();
        let blob = vec![0u8, 1, 0, 255, 0];
        let text = "héllo wörld 🌍 \u{0} end";
        for i in [i64::MAX, i64::MIN, 0, -1] {
            db.execute(
                &format!("INSERT INTO {t} VALUES (?, ?, ?, ?, ?)"),
                params![i, 0.1f64, text, blob.clone(), None::<i64>],
            )
            .await
            .unwrap();
        }
        let rows = db
            .execute(&format!("SELECT i, f, s, b, n FROM {t} ORDER BY rowid"), ())
            .await
            .unwrap();
        assert_eq!(rows.len(), 4, "{target}");
        assert_eq!(rows.columns(), ["i", "f", "s", "b", "n"]);
        let first = rows.first().unwrap();
        assert_eq!(first.get::<i64>(0).unwrap(), i64::MAX, "{target}");
        assert_eq!(rows.get(1).unwrap().get::<i64>("i").unwrap(), i64::MIN);
        assert_eq!(first.get::<f64>("f").unwrap().to_bits(), 0.1f64.to_bits());
        assert_eq!(first.get::<&str>("s").unwrap(), text, "{target}");
        assert_eq!(first.get::<Vec<u8>>("b").unwrap(), blob, "{target}");
        assert_eq!(first.get::<Option<i64>>("n").unwrap(), None);
        assert_eq!(first.get_value(4).unwrap(), &Value::Null);
        assert!(first.get::<i64>("s").is_err());
        assert!(matches!(
            first.get::<i64>("nope"),
            Err(Error::NoSuchColumn(_))
        ));
        // Conversions of smaller types.
        let r = db
            .execute("SELECT ?, ?, ?, ?", (7i32, 8u32, true, "x".to_string()))
            .await
            .unwrap();
        let row = r.first().unwrap();
        assert_eq!(row.get::<i32>(0).unwrap(), 7);
        assert_eq!(row.get::<u32>(1).unwrap(), 8);
        assert!(row.get::<bool>(2).unwrap());
        assert_eq!(row.get::<String>(3).unwrap(), "x");
        let ins = db
            .execute(&format!("INSERT INTO {t} (i) VALUES (1)"), ())
            .await
            .unwrap();
        assert_eq!(ins.rows_affected(), 1);
        assert_eq!(ins.last_insert_rowid(), Some(5), "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positional_and_named_params() {
    for (target, db) in clients().await {
        let r = db.execute("SELECT ?2, ?1", [1, 2]).await.unwrap();
        assert_eq!(
            r.first().unwrap().values(),
            [Value::Integer(2), Value::Integer(1)]
        );
        let r = db
            .execute(
                "SELECT :a, @b, $c",
                named_params! { ":a" => 1, "@b" => "two", "$c" => 3.5 },
            )
            .await
            .unwrap();
        assert_eq!(
            r.first().unwrap().values(),
            [
                Value::Integer(1),
                Value::Text("two".into()),
                Value::Float(3.5)
            ],
            "{target}"
        );
        // Names without their prefix, as an array of pairs.
        let r = db
            .execute("SELECT :a + :b", [("a", 40), ("b", 2)])
            .await
            .unwrap();
        assert_eq!(r.first().unwrap().get::<i64>(0).unwrap(), 42, "{target}");
        let r = db.execute("SELECT ?", params![]).await.unwrap();
        assert_eq!(r.first().unwrap().get_value(0).unwrap(), &Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_atomic() {
    for (target, db) in clients().await {
        let t = table("batch");
        db.execute(&format!("CREATE TABLE {t} (x INTEGER UNIQUE)"), ())
            .await
            .unwrap();
        let ok = db
            .batch([
                Statement::with_params(format!("INSERT INTO {t} VALUES (?)"), [1]),
                Statement::with_params(format!("INSERT INTO {t} VALUES (?)"), [2]),
                Statement::new(format!("SELECT count(*) AS n FROM {t}")),
            ])
            .await
            .unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[1].last_insert_rowid(), Some(2), "{target}");
        assert_eq!(ok[2].first().unwrap().get::<i64>("n").unwrap(), 2);
        let err = db
            .batch([
                format!("INSERT INTO {t} VALUES (3)"),
                format!("INSERT INTO {t} VALUES (4)"),
                format!("INSERT INTO {t} VALUES (1)"),
                format!("INSERT INTO {t} VALUES (5)"),
            ])
            .await
            .unwrap_err();
        assert_eq!(
            err.sqlite_code(),
            Some("SQLITE_CONSTRAINT_UNIQUE"),
            "{target}: {err}"
        );
        let n = db
            .execute(&format!("SELECT count(*) FROM {t}"), ())
            .await
            .unwrap();
        assert_eq!(
            n.first().unwrap().get::<i64>(0).unwrap(),
            2,
            "{target}: rolled back"
        );
        // The connection is usable afterwards (no transaction left open).
        db.execute(&format!("INSERT INTO {t} VALUES (9)"), ())
            .await
            .unwrap();
    }
}

async fn count(db: &Client, t: &str) -> i64 {
    db.execute(&format!("SELECT count(*) FROM {t}"), ())
        .await
        .unwrap()
        .first()
        .unwrap()
        .get(0)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_rollback_and_drop() {
    for (target, db) in clients().await {
        let t = table("tx");
        db.execute(&format!("CREATE TABLE {t} (x)"), ())
            .await
            .unwrap();
        // Commit.
        let tx = db.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES (1)"), ())
            .await
            .unwrap();
        assert_eq!(
            count(&db, &t).await,
            0,
            "{target}: not visible before commit"
        );
        let inside = tx
            .execute(&format!("SELECT count(*) FROM {t}"), ())
            .await
            .unwrap();
        assert_eq!(inside.first().unwrap().get::<i64>(0).unwrap(), 1);
        tx.batch([
            format!("INSERT INTO {t} VALUES (2)"),
            format!("INSERT INTO {t} VALUES (3)"),
        ])
        .await
        .unwrap();
        tx.execute_multiple(&format!(
            "INSERT INTO {t} VALUES (4); INSERT INTO {t} VALUES (5);"
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&db, &t).await, 5, "{target}");
        // Rollback.
        let tx = db.transaction().await.unwrap();
        tx.execute(&format!("DELETE FROM {t}"), ()).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&db, &t).await, 5, "{target}");
        // Drop: rolled back, and the write lock is free for another connection at once.
        let other = Client::connect(db.url(), &common::server().token)
            .await
            .unwrap();
        {
            let tx = db.transaction().await.unwrap();
            tx.execute(&format!("INSERT INTO {t} VALUES (100)"), ())
                .await
                .unwrap();
            assert_eq!(count(&other, &t).await, 5);
        }
        let start = Instant::now();
        other
            .execute(&format!("INSERT INTO {t} VALUES (6)"), ())
            .await
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{target}: the dropped transaction released the lock ({:?})",
            start.elapsed()
        );
        assert_eq!(
            count(&other, &t).await,
            6,
            "{target}: the dropped insert is gone"
        );
        // An error inside a transaction leaves it usable; its code is SQLite's.
        let tx = db.transaction().await.unwrap();
        let err = tx
            .execute("SELECT * FROM no_such_table", ())
            .await
            .unwrap_err();
        assert_eq!(err.sqlite_code(), Some("SQLITE_ERROR"));
        tx.execute(&format!("INSERT INTO {t} VALUES (7)"), ())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&db, &t).await, 7, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_multiple_runs_a_script() {
    for (target, db) in clients().await {
        let t = table("script");
        db.execute_multiple(&format!(
            "CREATE TABLE {t} (x); -- a comment
             INSERT INTO {t} VALUES (1); INSERT INTO {t} VALUES ('a;b');"
        ))
        .await
        .unwrap();
        assert_eq!(count(&db, &t).await, 2, "{target}");
        let err = db
            .execute_multiple(&format!("INSERT INTO {t} VALUES (2); INSERT INTO nope VALUES (1); INSERT INTO {t} VALUES (3)"))
            .await
            .unwrap_err();
        assert_eq!(err.sqlite_code(), Some("SQLITE_ERROR"), "{target}: {err}");
        assert_eq!(count(&db, &t).await, 3, "{target}: stopped at the error");
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Small,
    Large,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Item {
    id: i64,
    name: String,
    price: f64,
    note: Option<String>,
    active: bool,
    data: Vec<u8>,
    kind: Kind,
    #[serde(default)]
    missing: Option<i32>,
}

#[derive(Debug, Deserialize)]
struct Borrowed<'a> {
    name: &'a str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_deserialize_with_serde() {
    for (target, db) in clients().await {
        let t = table("serde");
        db.execute(
            &format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT, price REAL, note TEXT, active INTEGER, data BLOB, kind TEXT, extra TEXT)"),
            (),
        )
        .await
        .unwrap();
        db.execute(
            &format!("INSERT INTO {t} VALUES (1, 'pen', 2, NULL, 1, x'00ff', 'small', 'ignored'), (2, 'desk', 99.5, 'oak', 0, x'', 'large', NULL)"),
            (),
        )
        .await
        .unwrap();
        let rows = db
            .execute(&format!("SELECT * FROM {t} ORDER BY id"), ())
            .await
            .unwrap();
        let items: Vec<Item> = rows.deserialize().unwrap();
        assert_eq!(
            items[0],
            Item {
                id: 1,
                name: "pen".into(),
                price: 2.0,
                note: None,
                active: true,
                data: vec![0, 255],
                kind: Kind::Small,
                missing: None
            },
            "{target}"
        );
        assert_eq!(items[1].note.as_deref(), Some("oak"));
        assert_eq!(items[1].kind, Kind::Large);
        let b: Borrowed = rows.first().unwrap().deserialize().unwrap();
        assert_eq!(b.name, "pen");
        let tuple: (i64, String) = db
            .execute(&format!("SELECT id, name FROM {t} WHERE id = 2"), ())
            .await
            .unwrap()
            .first()
            .unwrap()
            .deserialize()
            .unwrap();
        assert_eq!(tuple, (2, "desk".to_string()));
        let ids: Vec<i64> = db
            .execute(&format!("SELECT id FROM {t} ORDER BY id"), ())
            .await
            .unwrap()
            .deserialize()
            .unwrap();
        assert_eq!(ids, [1, 2]);
        let err = db
            .execute(&format!("SELECT name AS id FROM {t}"), ())
            .await
            .unwrap()
            .deserialize::<(i64,)>()
            .unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_carry_sqlite_codes() {
    for (target, db) in clients().await {
        let t = table("errs");
        db.execute(&format!("CREATE TABLE {t} (x PRIMARY KEY, y NOT NULL)"), ())
            .await
            .unwrap();
        db.execute(&format!("INSERT INTO {t} VALUES (1, 1)"), ())
            .await
            .unwrap();
        let e = db
            .execute(&format!("INSERT INTO {t} VALUES (1, 1)"), ())
            .await
            .unwrap_err();
        assert_eq!(
            e.sqlite_code(),
            Some("SQLITE_CONSTRAINT_PRIMARYKEY"),
            "{target}: {e}"
        );
        let e = db
            .execute(&format!("INSERT INTO {t} VALUES (2, NULL)"), ())
            .await
            .unwrap_err();
        assert_eq!(
            e.sqlite_code(),
            Some("SQLITE_CONSTRAINT_NOTNULL"),
            "{target}: {e}"
        );
        let e = db.execute("SELEC 1", ()).await.unwrap_err();
        match &e {
            Error::Sqlite { code, message } => {
                assert_eq!(code, "SQLITE_ERROR");
                assert!(message.contains("syntax error"), "{message}");
            }
            other => panic!("{target}: {other:?}"),
        }
        let e = db.execute("SELECT 1; SELECT 2", ()).await.unwrap_err();
        assert!(e.code().is_some(), "{target}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libsql_vector_query() {
    for (target, db) in clients().await {
        let t = table("vec");
        db.execute(
            &format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, e F32_BLOB(3))"),
            (),
        )
        .await
        .unwrap();
        db.batch([
            format!("INSERT INTO {t} VALUES (1, vector32('[1,2,3]'))"),
            format!("INSERT INTO {t} VALUES (2, vector32('[1,2,4]'))"),
            format!("INSERT INTO {t} VALUES (3, vector32('[-1,-2,-3]'))"),
        ])
        .await
        .unwrap();
        let rows = db
            .execute(
                &format!("SELECT id, vector_distance_cos(e, vector32(?)) AS d, vector_extract(e) AS txt FROM {t} ORDER BY d"),
                ["[1,2,3]"],
            )
            .await
            .unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.get("id").unwrap()).collect();
        assert_eq!(ids, [1, 2, 3], "{target}");
        assert!(rows.first().unwrap().get::<f64>("d").unwrap().abs() < 1e-6);
        assert_eq!(rows.first().unwrap().get::<&str>("txt").unwrap(), "[1,2,3]");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rows() {
    for (target, db) in clients().await {
        let t = table("big");
        db.execute(
            &format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, s TEXT)"),
            (),
        )
        .await
        .unwrap();
        let ins = db
            .execute(
                &format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) INSERT INTO {t} SELECT x, 'row ' || x FROM c"),
                (),
            )
            .await
            .unwrap();
        assert_eq!(ins.rows_affected(), 10_000);
        let rows = db
            .execute(&format!("SELECT id, s FROM {t} ORDER BY id"), ())
            .await
            .unwrap();
        assert_eq!(rows.len(), 10_000, "{target}");
        let sum: i64 = rows.iter().map(|r| r.get::<i64>(0).unwrap()).sum();
        assert_eq!(sum, 10_000 * 10_001 / 2);
        assert_eq!(
            rows.get(9_999).unwrap().get::<&str>("s").unwrap(),
            "row 10000"
        );
        // And a batch of 1,000 parameterized inserts, atomically.
        let stmts: Vec<Statement> = (0..1000)
            .map(|i| Statement::with_params(format!("INSERT INTO {t} (s) VALUES (?)"), [i]))
            .collect();
        assert_eq!(db.batch(stmts).await.unwrap().len(), 1000);
        assert_eq!(count(&db, &t).await, 11_000, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_tasks() {
    for (target, db) in clients().await {
        let t = table("conc");
        db.execute(&format!("CREATE TABLE {t} (task, i)"), ())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for task in 0..20 {
            let db = db.clone();
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..5 {
                    db.execute(&format!("INSERT INTO {t} VALUES (?, ?)"), (task, i))
                        .await
                        .unwrap();
                }
                let tx = db.transaction().await.unwrap();
                tx.execute(&format!("INSERT INTO {t} VALUES (?, 99)"), [task])
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                let mine = db
                    .execute(&format!("SELECT count(*) FROM {t} WHERE task = ?"), [task])
                    .await
                    .unwrap();
                mine.first().unwrap().get::<i64>(0).unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 6, "{target}");
        }
        assert_eq!(count(&db, &t).await, 120, "{target}");
    }
}
