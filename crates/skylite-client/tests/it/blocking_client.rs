//! The blocking client against a local file and a real skylite server (auth on): the same
//! scenarios as the async tests (values, parameters, atomic batches, transactions with
//! rollback on drop, execute_multiple, serde rows, error codes, vectors, 10,000 rows, 20
//! concurrent threads), plus the refusal to block inside a tokio runtime.

use crate::common;

use std::time::{Duration, Instant};

use common::{table, targets};
use serde::Deserialize;
use skylite_client::blocking::Client;
use skylite_client::{named_params, params, Error, Statement, Value};

fn clients() -> Vec<(&'static str, Client)> {
    targets()
        .into_iter()
        .map(|(name, url, token)| (name, Client::connect(&url, &token).expect("connect")))
        .collect()
}

fn count(db: &Client, t: &str) -> i64 {
    db.execute(&format!("SELECT count(*) FROM {t}"), ())
        .unwrap()
        .first()
        .unwrap()
        .get(0)
        .unwrap()
}

#[test]
fn values_and_params() {
    for (target, db) in clients() {
        let t = table("bvals");
        db.execute(&format!("CREATE TABLE {t} (i, f, s, b, n)"), ())
            .unwrap();
        let blob = vec![0u8, 0, 7, 0];
        for i in [i64::MAX, i64::MIN] {
            db.execute(
                &format!("INSERT INTO {t} VALUES (:i, :f, :s, :b, :n)"),
                named_params! { ":i" => i, ":f" => -2.5, ":s" => "ünï 🚀", ":b" => blob.clone(), ":n" => None::<String> },
            )
            .unwrap();
        }
        let rows = db
            .execute(&format!("SELECT * FROM {t} ORDER BY rowid"), ())
            .unwrap();
        let r = rows.first().unwrap();
        assert_eq!(r.get::<i64>("i").unwrap(), i64::MAX, "{target}");
        assert_eq!(rows.get(1).unwrap().get::<i64>("i").unwrap(), i64::MIN);
        assert_eq!(r.get::<f64>("f").unwrap(), -2.5);
        assert_eq!(r.get::<String>("s").unwrap(), "ünï 🚀");
        assert_eq!(r.get::<&[u8]>("b").unwrap(), &blob[..]);
        assert_eq!(r.get::<Option<String>>("n").unwrap(), None);
        let r = db
            .execute("SELECT ?, ?3, ?2", params![1, "b", 3.0])
            .unwrap();
        assert_eq!(
            r.first().unwrap().values(),
            [
                Value::Integer(1),
                Value::Float(3.0),
                Value::Text("b".into())
            ]
        );
        let r = db
            .execute("SELECT @x || $y", [("@x", "a"), ("$y", "b")])
            .unwrap();
        assert_eq!(r.first().unwrap().get::<&str>(0).unwrap(), "ab", "{target}");
    }
}

#[test]
fn batch_atomicity_and_script() {
    for (target, db) in clients() {
        let t = table("bbatch");
        db.execute_multiple(&format!(
            "CREATE TABLE {t} (x UNIQUE); INSERT INTO {t} VALUES (1);"
        ))
        .unwrap();
        let err = db
            .batch([
                Statement::with_params(format!("INSERT INTO {t} VALUES (?)"), [2]),
                Statement::with_params(format!("INSERT INTO {t} VALUES (?)"), [1]),
            ])
            .unwrap_err();
        assert_eq!(
            err.sqlite_code(),
            Some("SQLITE_CONSTRAINT_UNIQUE"),
            "{target}"
        );
        assert_eq!(count(&db, &t), 1, "{target}: the batch rolled back");
        let ok = db
            .batch([
                format!("INSERT INTO {t} VALUES (2)"),
                format!("SELECT max(x) FROM {t}"),
            ])
            .unwrap();
        assert_eq!(ok[1].first().unwrap().get::<i64>(0).unwrap(), 2);
    }
}

#[test]
fn transactions_commit_rollback_and_drop() {
    for (target, db) in clients() {
        let t = table("btx");
        db.execute(&format!("CREATE TABLE {t} (x)"), ()).unwrap();
        let tx = db.transaction().unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES (1)"), ())
            .unwrap();
        assert_eq!(count(&db, &t), 0, "{target}");
        tx.commit().unwrap();
        assert_eq!(count(&db, &t), 1, "{target}");
        let tx = db.transaction().unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES (2)"), ())
            .unwrap();
        tx.rollback().unwrap();
        assert_eq!(count(&db, &t), 1, "{target}");
        let other = Client::connect(db.url(), &common::server().token).unwrap();
        {
            let tx = db.transaction().unwrap();
            tx.execute(&format!("INSERT INTO {t} VALUES (3)"), ())
                .unwrap();
            assert_eq!(
                count(&other, &t),
                1,
                "{target}: uncommitted rows are invisible"
            );
        }
        let start = Instant::now();
        other
            .execute(&format!("INSERT INTO {t} VALUES (4)"), ())
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{target}: lock released"
        );
        let rows: Vec<i64> = other
            .execute(&format!("SELECT x FROM {t} ORDER BY x"), ())
            .unwrap()
            .deserialize()
            .unwrap();
        assert_eq!(rows, [1, 4], "{target}");
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct User {
    id: i64,
    email: String,
    age: Option<u8>,
}

#[test]
fn serde_rows_errors_and_vectors() {
    for (target, db) in clients() {
        let t = table("busers");
        db.execute(&format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, email TEXT UNIQUE, age INTEGER, e F32_BLOB(2))"), ())
            .unwrap();
        db.execute(
            &format!("INSERT INTO {t} VALUES (1, 'a@x', 30, vector32('[1,0]')), (2, 'b@x', NULL, vector32('[0,1]'))"),
            (),
        )
        .unwrap();
        let users: Vec<User> = db
            .execute(&format!("SELECT id, email, age FROM {t} ORDER BY id"), ())
            .unwrap()
            .deserialize()
            .unwrap();
        assert_eq!(
            users[0],
            User {
                id: 1,
                email: "a@x".into(),
                age: Some(30)
            },
            "{target}"
        );
        assert_eq!(users[1].age, None);
        let e = db
            .execute(&format!("INSERT INTO {t} (email) VALUES ('a@x')"), ())
            .unwrap_err();
        assert_eq!(
            e.sqlite_code(),
            Some("SQLITE_CONSTRAINT_UNIQUE"),
            "{target}: {e}"
        );
        assert!(e.to_string().contains("UNIQUE constraint failed"), "{e}");
        let nearest: i64 = db
            .execute(
                &format!("SELECT id FROM {t} ORDER BY vector_distance_cos(e, vector32('[0.1,0.9]')) LIMIT 1"),
                (),
            )
            .unwrap()
            .first()
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(nearest, 2, "{target}");
    }
}

#[test]
fn ten_thousand_rows_and_twenty_threads() {
    for (target, db) in clients() {
        let t = table("bbig");
        db.execute(&format!("CREATE TABLE {t} (n INTEGER, who INTEGER)"), ())
            .unwrap();
        db.execute(
            &format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) INSERT INTO {t} SELECT x, -1 FROM c"),
            (),
        )
        .unwrap();
        let rows = db.execute(&format!("SELECT n FROM {t}"), ()).unwrap();
        assert_eq!(rows.len(), 10_000, "{target}");
        std::thread::scope(|s| {
            for who in 0..20 {
                let db = db.clone();
                let t = &t;
                s.spawn(move || {
                    for _ in 0..3 {
                        db.execute(&format!("INSERT INTO {t} VALUES (0, ?)"), [who])
                            .unwrap();
                    }
                    let tx = db.transaction().unwrap();
                    tx.execute(&format!("INSERT INTO {t} VALUES (1, ?)"), [who])
                        .unwrap();
                    tx.commit().unwrap();
                });
            }
        });
        assert_eq!(count(&db, &t), 10_080, "{target}");
    }
}

#[tokio::test]
async fn blocking_calls_inside_a_runtime_are_refused_not_panics() {
    // The first target: the local file, or the server in a remote-only build.
    let (_, url, token) = common::targets().remove(0);
    let err = Client::connect(&url, &token).unwrap_err();
    assert!(matches!(err, Error::InsideRuntime), "{err}");
    // A client made outside the runtime, used and dropped inside it.
    let db = std::thread::spawn(move || Client::connect(&url, &token).unwrap())
        .join()
        .unwrap();
    let err = db.execute("SELECT 1", ()).unwrap_err();
    assert!(matches!(err, Error::InsideRuntime), "{err}");
    assert!(err.to_string().contains("async"), "{err}");
    drop(db);
}
