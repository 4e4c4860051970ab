//! Hrana 3 over HTTP as a client sees it: every stream request on /v2 and /v3 pipelines,
//! values, parameters, result fields, SQL errors, cursors, the legacy API and the small GET
//! endpoints. Each test runs against a real in-process server on a loopback port.

use crate::common;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

fn b64_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| B64.decode(s))
        .unwrap_or_else(|e| panic!("bad base64 {s:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_request_on_v2_and_v3() {
    let server = TestServer::start().await;
    for (n, path) in ["/v2/pipeline", "/v3/pipeline"].iter().enumerate() {
        let table = format!("t{n}");
        let requests = json!([
            execute(&format!("CREATE TABLE {table}(a INTEGER PRIMARY KEY, b TEXT)")),
            {"type": "store_sql", "sql_id": 7, "sql": format!("INSERT INTO {table}(b) VALUES (?)")},
            {"type": "execute", "stmt": {"sql_id": 7, "args": [text("one")]}},
            {"type": "batch", "batch": {"steps": [
                {"stmt": {"sql_id": 7, "args": [text("two")]}},
                {"stmt": {"sql": format!("SELECT b FROM {table} ORDER BY a")}},
            ]}},
            {"type": "describe", "sql": format!("SELECT a, b FROM {table} WHERE a = ?")},
            {"type": "describe", "sql_id": 7},
            {"type": "sequence", "sql": format!("INSERT INTO {table}(b) VALUES ('three'); INSERT INTO {table}(b) VALUES ('four');")},
            {"type": "store_sql", "sql_id": 8, "sql": format!("UPDATE {table} SET b = upper(b) WHERE a = 4")},
            {"type": "sequence", "sql_id": 8},
            {"type": "get_autocommit"},
            {"type": "close_sql", "sql_id": 7},
            {"type": "execute", "stmt": {"sql_id": 7, "args": [text("gone")]}},
            execute(&format!("SELECT count(*) FROM {table}")),
        ]);
        let (status, body) = pipeline_at(server.addr, path, None, requests).await;
        assert_eq!(status, 200, "{body:#}");
        assert!(
            body["baton"].is_string(),
            "open stream has a baton: {body:#}"
        );
        assert!(body["base_url"].is_null());
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 13);
        assert_eq!(ok_at(&body, 0)["type"], "execute");
        assert_eq!(ok_at(&body, 1), &json!({"type": "store_sql"}));
        assert_eq!(exec_result(&body, 2)["affected_row_count"], 1);
        assert_eq!(exec_result(&body, 2)["last_insert_rowid"], "1");
        let batch = ok_at(&body, 3);
        assert_eq!(batch["type"], "batch");
        assert_eq!(batch["result"]["step_errors"], json!([null, null]));
        assert_eq!(
            rows(&batch["result"]["step_results"][1]),
            vec![vec![json!("one")], vec![json!("two")]]
        );
        let d = ok_at(&body, 4);
        assert_eq!(d["type"], "describe");
        assert_eq!(d["result"]["params"], json!([{"name": null}]));
        assert_eq!(
            d["result"]["cols"],
            json!([{"name": "a", "decltype": "INTEGER"}, {"name": "b", "decltype": "TEXT"}])
        );
        let d = ok_at(&body, 5);
        assert_eq!(d["result"]["is_readonly"], false);
        assert_eq!(d["result"]["cols"], json!([]));
        assert_eq!(ok_at(&body, 6), &json!({"type": "sequence"}));
        assert_eq!(ok_at(&body, 7), &json!({"type": "store_sql"}));
        assert_eq!(ok_at(&body, 8), &json!({"type": "sequence"}));
        assert_eq!(
            ok_at(&body, 9),
            &json!({"type": "get_autocommit", "is_autocommit": true})
        );
        assert_eq!(ok_at(&body, 10), &json!({"type": "close_sql"}));
        let e = err_at(&body, 11);
        assert!(e["message"].as_str().unwrap().contains('7'), "{e}");
        assert!(e["code"].is_string());
        assert_eq!(rows(exec_result(&body, 12)), vec![vec![json!(4)]]);

        // Close, then a request after the close in the same pipeline.
        let baton = body["baton"].as_str().unwrap();
        let (status, body) = pipeline_at(
            server.addr,
            path,
            Some(baton),
            json!([
                execute(&format!("SELECT b FROM {table} WHERE a = 4")),
                close(),
                execute("SELECT 1")
            ]),
        )
        .await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(rows(exec_result(&body, 0)), vec![vec![json!("FOUR")]]);
        assert_eq!(ok_at(&body, 1), &json!({"type": "close"}));
        let e = err_at(&body, 2);
        assert!(e["message"].as_str().unwrap().contains("closed"), "{e}");
        assert!(
            body["baton"].is_null(),
            "closed stream has no baton: {body:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_conditions_of_every_kind() {
    let server = TestServer::start().await;
    let ok = |step: u32| json!({"type": "ok", "step": step});
    let error = |step: u32| json!({"type": "error", "step": step});
    let steps = json!([
        /* 0 */ {"stmt": stmt("SELECT 1")},
        /* 1 */ {"stmt": stmt("SELECT * FROM no_such_table")},
        /* 2 */ {"condition": ok(0), "stmt": stmt("SELECT 2")},
        /* 3 */ {"condition": ok(1), "stmt": stmt("SELECT 3")},
        /* 4 */ {"condition": error(1), "stmt": stmt("SELECT 4")},
        /* 5 */ {"condition": error(0), "stmt": stmt("SELECT 5")},
        /* 6 */ {"condition": {"type": "not", "cond": ok(1)}, "stmt": stmt("SELECT 6")},
        /* 7 */ {"condition": {"type": "and", "conds": [ok(0), error(1)]}, "stmt": stmt("SELECT 7")},
        /* 8 */ {"condition": {"type": "and", "conds": [ok(0), ok(1)]}, "stmt": stmt("SELECT 8")},
        /* 9 */ {"condition": {"type": "or", "conds": [ok(1), error(1)]}, "stmt": stmt("SELECT 9")},
        /* 10 */ {"condition": {"type": "or", "conds": [ok(1), error(0)]}, "stmt": stmt("SELECT 10")},
        /* 11 */ {"condition": {"type": "is_autocommit"}, "stmt": stmt("BEGIN")},
        /* 12 */ {"condition": {"type": "is_autocommit"}, "stmt": stmt("SELECT 12")},
        /* 13 */ {"condition": {"type": "not", "cond": {"type": "is_autocommit"}}, "stmt": stmt("ROLLBACK")},
        /* 14 */ {"condition": ok(3), "stmt": stmt("SELECT 14")},
        /* 15 */ {"condition": error(3), "stmt": stmt("SELECT 15")},
        /* 16 */ {"condition": {"type": "not", "cond": ok(3)}, "stmt": stmt("SELECT 16")},
    ]);
    for path in ["/v2/pipeline", "/v3/pipeline"] {
        let (status, body) = pipeline_at(
            server.addr,
            path,
            None,
            json!([{"type": "batch", "batch": {"steps": steps.clone()}}, {"type": "get_autocommit"}, close()]),
        )
        .await;
        assert_eq!(status, 200, "{body:#}");
        let result = &ok_at(&body, 0)["result"];
        let results = result["step_results"].as_array().unwrap();
        let errors = result["step_errors"].as_array().unwrap();
        assert_eq!(results.len(), 17);
        assert_eq!(errors.len(), 17);
        let ran_ok: Vec<usize> = (0..17).filter(|&i| !results[i].is_null()).collect();
        let failed: Vec<usize> = (0..17).filter(|&i| !errors[i].is_null()).collect();
        assert_eq!(ran_ok, vec![0, 2, 4, 6, 7, 9, 11, 13, 16], "{result:#}");
        assert_eq!(failed, vec![1], "{result:#}");
        assert_eq!(errors[1]["code"], "SQLITE_ERROR");
        assert!(errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("no such table: no_such_table"));
        assert_eq!(rows(&results[16]), vec![vec![json!(16)]]);
        assert_eq!(ok_at(&body, 1)["is_autocommit"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_reports_params_columns_and_flags() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE d(a INTEGER, b TEXT, c)").await;
    let body = s
        .send(json!([
            {"type": "describe", "sql": "SELECT a, b AS bee, a + 1, c FROM d WHERE a = :x OR b = @y OR c = $z OR a = ? OR a = ?5"},
            {"type": "describe", "sql": "EXPLAIN SELECT * FROM d"},
            {"type": "describe", "sql": "EXPLAIN QUERY PLAN SELECT * FROM d"},
            {"type": "describe", "sql": "INSERT INTO d VALUES (?1, ?2, ?3)"},
            {"type": "describe", "sql": "SELEC 1"},
            {"type": "describe", "sql": "CREATE TABLE e(x)"},
        ]))
        .await;
    let d = &ok_at(&body, 0)["result"];
    assert_eq!(
        d,
        &json!({
            "params": [{"name": ":x"}, {"name": "@y"}, {"name": "$z"}, {"name": null}, {"name": "?5"}],
            "cols": [
                {"name": "a", "decltype": "INTEGER"},
                {"name": "bee", "decltype": "TEXT"},
                {"name": "a + 1", "decltype": null},
                {"name": "c", "decltype": null},
            ],
            "is_explain": false,
            "is_readonly": true,
        })
    );
    let d = &ok_at(&body, 1)["result"];
    assert_eq!(d["is_explain"], true);
    assert_eq!(d["is_readonly"], true);
    assert!(!d["cols"].as_array().unwrap().is_empty());
    assert_eq!(ok_at(&body, 2)["result"]["is_explain"], true);
    let d = &ok_at(&body, 3)["result"];
    assert_eq!(
        d["params"],
        json!([{"name": "?1"}, {"name": "?2"}, {"name": "?3"}])
    );
    assert_eq!(d["is_readonly"], false);
    assert_eq!(d["cols"], json!([]));
    let e = err_at(&body, 4);
    assert_eq!(e["code"], "SQLITE_ERROR");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("near \"SELEC\": syntax error"));
    assert_eq!(ok_at(&body, 5)["result"]["is_readonly"], false);
    // Describing does not run anything.
    assert_eq!(
        s.exec("SELECT * FROM e").await.unwrap_err()["message"],
        "no such table: e"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_exactly() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE v(id INTEGER PRIMARY KEY, x)").await;
    let blob: Vec<u8> = vec![0, 0, 1, 0, 255, 0, 0];
    let values = vec![
        nul(),
        int(i64::MIN),
        int(i64::MAX),
        int(-42),
        int(0),
        float(0.1),
        float(f64::from_bits(1)), // smallest subnormal, 5e-324
        float(f64::from_bits(0x000f_ffff_ffff_ffff)), // largest subnormal
        float(-1.5e300),
        float(f64::MAX),
        text(""),
        text("héllo wörld — 日本語 🦀 \"quoted\" \\ back\nslash\ttab"),
        json!({"type": "blob", "base64": B64.encode(&blob)}),
        json!({"type": "blob", "base64": ""}),
    ];
    for (i, v) in values.iter().enumerate() {
        s.exec_args("INSERT INTO v VALUES (?, ?)", json!([int(i as i64), v]))
            .await
            .unwrap_or_else(|e| panic!("insert {v}: {e:#}"));
    }
    let stored = s.ok("SELECT x, typeof(x) FROM v ORDER BY id").await;
    let out = stored["rows"].as_array().unwrap();
    assert_eq!(out.len(), values.len());
    let types = [
        "null", "integer", "integer", "integer", "integer", "real", "real", "real", "real", "real",
        "text", "text", "blob", "blob",
    ];
    for (i, (sent, row)) in values.iter().zip(out).enumerate() {
        let got = &row[0];
        assert_eq!(row[1]["value"], types[i], "typeof row {i}");
        match sent["type"].as_str().unwrap() {
            "float" => {
                assert_eq!(got["type"], "float");
                let a = sent["value"].as_f64().unwrap();
                let b = got["value"].as_f64().unwrap();
                assert_eq!(a.to_bits(), b.to_bits(), "float {a:e} came back as {b:e}");
            }
            "blob" => {
                assert_eq!(got["type"], "blob");
                assert_eq!(
                    b64_decode(got["base64"].as_str().unwrap()),
                    b64_decode(sent["base64"].as_str().unwrap())
                );
            }
            _ => assert_eq!(got, sent, "row {i}"),
        }
    }
    // Integer values come back as JSON strings, exactly.
    assert_eq!(
        out[1][0],
        json!({"type": "integer", "value": "-9223372036854775808"})
    );
    assert_eq!(
        out[2][0],
        json!({"type": "integer", "value": "9223372036854775807"})
    );
    assert_eq!(out[0][0], json!({"type": "null"}));
    // 0.1 is bit-exact on the wire too.
    let r = s.exec_args("SELECT ?", json!([float(0.1)])).await.unwrap();
    assert_eq!(
        r["rows"][0][0]["value"].as_f64().unwrap().to_bits(),
        0.1f64.to_bits()
    );
    // A float written like an integer (what JavaScript numbers look like) stays a float.
    let r = s
        .exec_args(
            "SELECT ?, typeof(?1)",
            json!([{"type": "float", "value": 42}]),
        )
        .await
        .unwrap();
    assert_eq!(r["rows"][0][0]["type"], "float");
    assert_eq!(r["rows"][0][0]["value"].as_f64(), Some(42.0));
    assert_eq!(r["rows"][0][1]["value"], "real");
    // SQL literals at the extremes.
    let r = s
        .ok("SELECT -9223372036854775808, 9223372036854775807, x'00ff00', 'ü'")
        .await;
    assert_eq!(r["rows"][0][0]["value"], "-9223372036854775808");
    assert_eq!(r["rows"][0][1]["value"], "9223372036854775807");
    assert_eq!(
        b64_decode(r["rows"][0][2]["base64"].as_str().unwrap()),
        vec![0, 255, 0]
    );
    assert_eq!(r["rows"][0][3]["value"], "ü");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_and_positional_parameters() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    let named = |names: [&str; 3]| {
        json!({"type": "execute", "stmt": {
            "sql": "SELECT :a, @b, $c",
            "named_args": [
                {"name": names[0], "value": int(1)},
                {"name": names[1], "value": text("two")},
                {"name": names[2], "value": float(3.5)},
            ]
        }})
    };
    let body = s
        .send(json!([
            named(["a", "b", "c"]),
            named([":a", "@b", "$c"]),
            {"type": "execute", "stmt": {"sql": "SELECT ?2, ?1, ?3", "args": [int(1), int(2), int(3)]}},
            {"type": "execute", "stmt": {"sql": "SELECT ?, ?", "args": [text("x"), nul()]}},
            {"type": "execute", "stmt": {"sql": "SELECT :a + :a", "named_args": [{"name": "a", "value": int(21)}]}},
            {"type": "execute", "stmt": {"sql": "SELECT :a", "named_args": [{"name": "nope", "value": int(1)}]}},
            {"type": "execute", "stmt": {"sql": "SELECT ?", "args": [int(1), int(2)]}},
            {"type": "execute", "stmt": {"sql": "SELECT :a", "named_args": [{"name": "@a", "value": int(1)}]}},
            {"type": "execute", "stmt": {"sql": "SELECT ?, :b", "args": [int(5)], "named_args": [{"name": "b", "value": int(6)}]}},
        ]))
        .await;
    let expect = vec![vec![json!(1), json!("two"), json!(3.5)]];
    assert_eq!(rows(exec_result(&body, 0)), expect);
    assert_eq!(rows(exec_result(&body, 1)), expect);
    assert_eq!(
        rows(exec_result(&body, 2)),
        vec![vec![json!(2), json!(1), json!(3)]]
    );
    assert_eq!(
        rows(exec_result(&body, 3)),
        vec![vec![json!("x"), Value::Null]]
    );
    assert_eq!(rows(exec_result(&body, 4)), vec![vec![json!(42)]]);
    assert_eq!(err_at(&body, 5)["code"], "ARGS_INVALID");
    assert!(err_at(&body, 5)["message"]
        .as_str()
        .unwrap()
        .contains("nope"));
    assert_eq!(err_at(&body, 6)["code"], "ARGS_INVALID");
    // An explicit prefix must match: `@a` is not `:a`.
    assert_eq!(err_at(&body, 7)["code"], "ARGS_INVALID");
    assert_eq!(rows(exec_result(&body, 8)), vec![vec![json!(5), json!(6)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_result_fields() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE r(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")
        .await;
    let ins = s
        .ok("INSERT INTO r(name, score) VALUES ('a', 1.0), ('b', 2.0), ('c', 3.0)")
        .await;
    assert_eq!(ins["affected_row_count"], 3);
    assert_eq!(ins["last_insert_rowid"], "3");
    assert_eq!(ins["cols"], json!([]));
    assert_eq!(ins["rows"], json!([]));
    assert!(ins["rows_written"].as_u64().unwrap() >= 3, "{ins:#}");
    assert!(ins["query_duration_ms"].as_f64().unwrap() >= 0.0);

    let upd = s.ok("UPDATE r SET score = score * 2 WHERE id >= 2").await;
    assert_eq!(upd["affected_row_count"], 2);
    assert!(upd["rows_written"].as_u64().unwrap() >= 2, "{upd:#}");

    let sel = s
        .ok("SELECT id, name, score * 1 AS s FROM r ORDER BY id")
        .await;
    assert_eq!(
        sel["cols"],
        json!([
            {"name": "id", "decltype": "INTEGER"},
            {"name": "name", "decltype": "TEXT"},
            {"name": "s", "decltype": null},
        ])
    );
    assert_eq!(sel["affected_row_count"], 0);
    assert!(sel["last_insert_rowid"].is_null(), "{sel:#}");
    assert_eq!(sel["rows_read"].as_u64().unwrap(), 3, "{sel:#}");
    assert_eq!(sel["rows_written"], 0);
    assert!(sel["query_duration_ms"].is_number());
    assert_eq!(
        rows(&sel),
        vec![
            vec![json!(1), json!("a"), json!(1.0)],
            vec![json!(2), json!("b"), json!(4.0)],
            vec![json!(3), json!("c"), json!(6.0)],
        ]
    );
    // want_rows: false runs the statement but returns no rows.
    let body = s
        .send(json!([{"type": "execute", "stmt": {"sql": "SELECT * FROM r", "want_rows": false}}]))
        .await;
    let r = exec_result(&body, 0);
    assert_eq!(r["rows"], json!([]));
    assert_eq!(r["cols"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_carry_sqlite_codes_and_messages() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE u(id INTEGER PRIMARY KEY, k TEXT UNIQUE, n TEXT NOT NULL)")
        .await;
    s.ok("CREATE TABLE p(k TEXT PRIMARY KEY, v INTEGER CHECK (v > 0))")
        .await;
    s.ok("INSERT INTO u VALUES (1, 'x', 'n')").await;
    s.ok("INSERT INTO p VALUES ('a', 1)").await;
    let cases = [
        (
            "INSERT INTO u VALUES (2, 'x', 'n')",
            "SQLITE_CONSTRAINT_UNIQUE",
            "UNIQUE constraint failed: u.k",
        ),
        (
            "INSERT INTO u VALUES (1, 'y', 'n')",
            "SQLITE_CONSTRAINT_PRIMARYKEY",
            "UNIQUE constraint failed: u.id",
        ),
        (
            "INSERT INTO p VALUES ('a', 2)",
            "SQLITE_CONSTRAINT_PRIMARYKEY",
            "UNIQUE constraint failed: p.k",
        ),
        (
            "INSERT INTO u VALUES (3, 'z', NULL)",
            "SQLITE_CONSTRAINT_NOTNULL",
            "NOT NULL constraint failed: u.n",
        ),
        (
            "INSERT INTO p VALUES ('b', -1)",
            "SQLITE_CONSTRAINT_CHECK",
            "CHECK constraint failed",
        ),
        ("SELEC 1", "SQLITE_ERROR", "near \"SELEC\": syntax error"),
        (
            "SELECT * FROM nowhere",
            "SQLITE_ERROR",
            "no such table: nowhere",
        ),
        (
            "SELECT nocol FROM u",
            "SQLITE_ERROR",
            "no such column: nocol",
        ),
    ];
    for (sql, code, message) in cases {
        let got = s.fails(sql, code).await;
        assert!(got.contains(message), "{sql}: {got:?} lacks {message:?}");
    }
    // The stream is still usable and nothing was written.
    assert_eq!(
        rows(&s.ok("SELECT count(*) FROM u").await),
        vec![vec![json!(1)]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_refuses_several_statements() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE m(x)").await;
    let msg = s
        .fails(
            "INSERT INTO m VALUES (1); INSERT INTO m VALUES (2)",
            "SQLITE_ERROR",
        )
        .await;
    assert!(msg.contains("more than one statement"), "{msg}");
    s.fails("SELECT 1; SELECT 2;", "SQLITE_ERROR").await;
    // Nothing of the refused text ran.
    assert_eq!(
        rows(&s.ok("SELECT count(*) FROM m").await),
        vec![vec![json!(0)]]
    );
    // One statement with a trailing semicolon, comment or a semicolon inside a string is fine.
    s.ok("INSERT INTO m VALUES ('a;b');").await;
    s.ok("INSERT INTO m VALUES (2); -- trailing comment").await;
    s.ok("SELECT 1 /* ; */;  ").await;
    s.ok("CREATE TRIGGER trg AFTER INSERT ON m BEGIN SELECT 1; SELECT 2; END")
        .await;
    assert_eq!(
        rows(&s.ok("SELECT count(*) FROM m").await),
        vec![vec![json!(2)]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_streams_exact_entries() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE big(id INTEGER PRIMARY KEY, name TEXT)")
        .await;
    s.ok(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) \
          INSERT INTO big SELECT i, 'row ' || i FROM c",
    )
    .await;
    let baton = s.baton.clone();
    let (status, lines) = cursor(
        server.addr,
        baton.as_deref(),
        json!({"steps": [
            {"stmt": stmt("SELECT id, name FROM big ORDER BY id")},
            {"stmt": stmt("INSERT INTO big(name) VALUES ('new')")},
            {"stmt": stmt("SELECT * FROM nowhere")},
            {"condition": {"type": "ok", "step": 2}, "stmt": stmt("SELECT 1")},
            {"condition": {"type": "error", "step": 2}, "stmt": stmt("SELECT 42 AS answer")},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{lines:?}");
    let first = &lines[0];
    assert_eq!(first.as_object().unwrap().len(), 2, "{first}");
    assert!(first["baton"].is_string(), "{first}");
    assert!(first["base_url"].is_null(), "{first}");
    assert_eq!(
        lines[1],
        json!({"type": "step_begin", "step": 0, "cols": [
            {"name": "id", "decltype": "INTEGER"},
            {"name": "name", "decltype": "TEXT"},
        ]})
    );
    for i in 0..20000usize {
        let id = (i + 1) as i64;
        assert_eq!(
            lines[2 + i],
            json!({"type": "row", "row": [int(id), text(&format!("row {id}"))]}),
            "row {i}"
        );
    }
    let mut rest = lines[20002..].iter();
    assert_eq!(
        rest.next().unwrap(),
        &json!({"type": "step_end", "affected_row_count": 0, "last_insert_rowid": null})
    );
    assert_eq!(
        rest.next().unwrap(),
        &json!({"type": "step_begin", "step": 1, "cols": []})
    );
    assert_eq!(
        rest.next().unwrap(),
        &json!({"type": "step_end", "affected_row_count": 1, "last_insert_rowid": "20001"})
    );
    let err = rest.next().unwrap();
    assert_eq!(err["type"], "step_error");
    assert_eq!(err["step"], 2);
    assert_eq!(
        err["error"],
        json!({"message": "no such table: nowhere", "code": "SQLITE_ERROR"})
    );
    assert_eq!(
        rest.next().unwrap(),
        &json!({"type": "step_begin", "step": 4, "cols": [{"name": "answer", "decltype": null}]})
    );
    assert_eq!(
        rest.next().unwrap(),
        &json!({"type": "row", "row": [int(42)]})
    );
    assert_eq!(
        rest.next().unwrap(),
        &json!({"type": "step_end", "affected_row_count": 0, "last_insert_rowid": null})
    );
    assert!(rest.next().is_none());

    // The cursor's baton continues the stream.
    let next = first["baton"].as_str().unwrap();
    let (status, body) = pipeline(
        server.addr,
        Some(next),
        json!([execute("SELECT count(*) FROM big"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(rows(exec_result(&body, 0)), vec![vec![json!(20001)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_statements_endpoint() {
    let server = TestServer::start().await;
    let r = post_json(
        server.addr,
        "/",
        &json!({"statements": [
            "CREATE TABLE l(a INTEGER, b TEXT, c BLOB)",
            {"q": "INSERT INTO l VALUES (?, ?, ?)", "params": [1, "one", {"base64": "AAEA/w=="}]},
            {"q": "INSERT INTO l VALUES (:a, @b, $c)", "params": {":a": 2, "b": "two", "$c": null}},
            {"q": "INSERT INTO l(a, c) VALUES (?, ?)", "params": [3.5, true]},
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let out = r.json();
    assert_eq!(out.as_array().unwrap().len(), 4);
    for item in out.as_array().unwrap() {
        assert!(item["results"].is_object(), "{out:#}");
    }
    let r = post_json(
        server.addr,
        "/",
        &json!({"statements": ["SELECT a, b, c FROM l ORDER BY a"]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let out = r.json();
    let results = &out[0]["results"];
    assert_eq!(results["columns"], json!(["a", "b", "c"]));
    let got_rows = results["rows"].as_array().unwrap();
    assert_eq!(got_rows.len(), 3);
    assert_eq!(got_rows[0][0], 1);
    assert_eq!(got_rows[0][1], "one");
    assert_eq!(
        b64_decode(got_rows[0][2]["base64"].as_str().unwrap()),
        vec![0, 1, 0, 255]
    );
    assert_eq!(got_rows[1], json!([2, "two", null]));
    // `true` is bound as the integer 1 (column c has no affinity, so it stays an integer).
    assert_eq!(got_rows[2], json!([3.5, null, 1]));

    // An error rolls the whole request back and skips the rest.
    let r = post_json(
        server.addr,
        "/",
        &json!({"statements": [
            "INSERT INTO l(a) VALUES (100)",
            "INSERT INTO nowhere VALUES (1)",
            "INSERT INTO l(a) VALUES (101)",
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert!(out[0]["results"].is_object(), "{out:#}");
    assert!(
        out[1]["error"].as_str().unwrap().contains("no such table"),
        "{out:#}"
    );
    assert!(out[2].is_null(), "{out:#}");
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM l").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_execute_and_batch() {
    let server = TestServer::start().await;
    let r = post_json(
        server.addr,
        "/v1/execute",
        &json!({"stmt": {"sql": "CREATE TABLE k(id INTEGER PRIMARY KEY, v TEXT UNIQUE)", "args": [], "named_args": [], "want_rows": true}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(
        server.addr,
        "/v1/execute",
        &json!({"stmt": {"sql": "INSERT INTO k(v) VALUES (:v)", "named_args": [{"name": "v", "value": text("a")}]}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(out["result"]["affected_row_count"], 1);
    assert_eq!(out["result"]["last_insert_rowid"], "1");

    // An SQL error is an HTTP 400 with exactly `application/json` and {message, code}.
    let r = post_json(
        server.addr,
        "/v1/execute",
        &json!({"stmt": {"sql": "INSERT INTO k(v) VALUES ('a')"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let out = r.json();
    assert_eq!(out["code"], "SQLITE_CONSTRAINT_UNIQUE");
    assert!(out["message"]
        .as_str()
        .unwrap()
        .contains("UNIQUE constraint failed: k.v"));

    // The batch a Python client sends: BEGIN, steps, COMMIT, ROLLBACK-if-commit-failed.
    let batch = |value: &str| {
        json!({"batch": {"steps": [
            {"stmt": {"sql": "BEGIN", "want_rows": false}},
            {"condition": {"type": "ok", "step": 0}, "stmt": {"sql": "INSERT INTO k(v) VALUES (?)", "args": [text(value)]}},
            {"condition": {"type": "ok", "step": 1}, "stmt": {"sql": "SELECT count(*) FROM k"}},
            {"condition": {"type": "ok", "step": 2}, "stmt": {"sql": "COMMIT", "want_rows": false}},
            {"condition": {"type": "not", "cond": {"type": "ok", "step": 3}}, "stmt": {"sql": "ROLLBACK", "want_rows": false}},
        ]}})
    };
    let r = post_json(server.addr, "/v1/batch", &batch("b")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    let res = &out["result"];
    assert_eq!(res["step_errors"], json!([null, null, null, null, null]));
    assert_eq!(rows(&res["step_results"][2]), vec![vec![json!(2)]]);
    assert!(res["step_results"][4].is_null());
    // A failing step: its error is reported, the ROLLBACK runs.
    let r = post_json(server.addr, "/v1/batch", &batch("a")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let res = r.json()["result"].clone();
    assert_eq!(res["step_errors"][1]["code"], "SQLITE_CONSTRAINT_UNIQUE");
    assert!(res["step_results"][2].is_null());
    assert!(res["step_results"][3].is_null());
    assert!(res["step_results"][4].is_object(), "{res:#}");
    assert_eq!(scalar_i64(server.addr, "SELECT count(*) FROM k").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_endpoints_and_unknown_paths() {
    let server = TestServer::start().await;
    let r = get(server.addr, "/health").await;
    assert_eq!(r.status, 200);
    let r = get(server.addr, "/version").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("skylite"), "{}", r.text());
    for path in ["/v2", "/v3"] {
        let r = get(server.addr, path).await;
        assert_eq!(r.status, 200, "GET {path}");
    }
    for (method, path) in [
        ("GET", "/nope"),
        ("POST", "/v9/pipeline"),
        ("GET", "/v3/pipeline/x"),
    ] {
        let r = request(server.addr, method, path, Some(b"{}".to_vec())).await;
        assert_eq!(r.status, 404, "{method} {path}");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        let out = r.json();
        assert!(out["message"].as_str().unwrap().contains(path), "{out}");
        assert!(out["code"].is_string(), "{out}");
    }
    // GET on a POST endpoint is refused, not served.
    let r = get(server.addr, "/v3/pipeline").await;
    assert_eq!(r.status, 405);
}
