//! `skylite restore` against a real S3 server (SeaweedFS on loopback): every database, one
//! database, a point in time, the refusal to overwrite, and a server that then serves the
//! restored data. The backup is written with `format.rs` (`testing::History`), so this test
//! does not depend on the write side.

use crate::common;

use std::process::{Command, Output};

use bytes::Bytes;
use common::*;
use object_store::path::Path;
use object_store::PutPayload;
use serde_json::json;
use skylite_backup::format::GenerationId;
use skylite_backup::testing::{fingerprint, History, SeaweedFs};

const T0: u64 = 1_765_000_000_000;

fn restore(s3: &SeaweedFs, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skylite"))
        .arg("restore")
        .args(args)
        .envs(s3.env_vars())
        .env("NO_COLOR", "1")
        .output()
        .expect("run skylite restore")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_cli_rebuilds_databases_a_server_then_serves() {
    let Some(s3) = SeaweedFs::start_or_skip("restore_cli_rebuilds_databases_a_server_then_serves")
    else {
        return;
    };
    let store = s3.store("backups/prod");
    let mut histories = Vec::new();
    for name in ["app", "default"] {
        let mut h = History::new(name, GenerationId::new_at(T0), 4096);
        let mut objects = vec![h.snapshot(T0)];
        for i in 1..=6u64 {
            h.commit(
                &format!("INSERT INTO t(v) VALUES ('{name} {i}')"),
                T0 + i * 1000,
            );
        }
        objects.push(h.segment(1, 3));
        objects.push(h.segment(4, 6));
        for (key, bytes) in objects {
            store
                .put(&Path::from(key), PutPayload::from(Bytes::from(bytes)))
                .await
                .unwrap();
        }
        histories.push(h);
    }
    let url = s3.url("backups/prod");
    let dir = tempfile::tempdir().unwrap();

    // Every database, newest state.
    let data = dir.path().join("all");
    let out = restore(&s3, &["--from", &url, "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("restored app:") && stdout.contains("transaction 6"),
        "{stdout}"
    );
    for h in &histories {
        let path = data.join(&h.name).join("data.db");
        assert_eq!(fingerprint(&path), h.fingerprints[6], "{}", h.name);
    }

    // Again into the same folder: refused, nothing touched.
    let out = restore(&s3, &["--from", &url, "--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("exists already"), "{}", text(&out));

    // One database at a point in time (an offset time zone, to the second).
    let at_data = dir.path().join("at");
    let out = restore(
        &s3,
        &[
            "--from",
            &url,
            "--data-dir",
            at_data.to_str().unwrap(),
            "--db",
            "app",
            "--at",
            // T0 + 4.5 s = 2025-12-06T05:46:44.500Z, written in +01:00.
            "2025-12-06T06:46:44.5+01:00",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fingerprint(&at_data.join("app/data.db")),
        histories[0].fingerprints[4]
    );
    assert!(!at_data.join("default").exists());

    // Bad input: a clear error, no panic.
    for args in [
        vec!["--from", "http://x/y", "--data-dir", "d"],
        vec!["--from", &url, "--data-dir", "d", "--at", "yesterday"],
        vec!["--from", &url, "--data-dir", "d", "--db", "../etc"],
    ] {
        let out = restore(&s3, &args);
        assert!(!out.status.success(), "{args:?}");
        let all = text(&out);
        assert!(all.contains("error:") && !all.contains("panicked"), "{all}");
    }
    let out = restore(&s3, &["--from", &url, "--data-dir", "d", "--db", "nope"]);
    assert!(
        text(&out).contains("no database \"nope\""),
        "{}",
        text(&out)
    );

    // The restored folder serves.
    let server = ChildServer::start(&data, &[]);
    let r = query(server.addr, "SELECT v FROM t ORDER BY id").await;
    assert_eq!(rows(&r).len(), 6, "{r:#}");
    let (status, body) = pipeline_at(
        server.addr,
        "/db/app/v3/pipeline",
        None,
        json!([execute("SELECT count(*) FROM t"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(rows(exec_result(&body, 0))[0][0], json!(6));
    server.assert_no_panic();
}
