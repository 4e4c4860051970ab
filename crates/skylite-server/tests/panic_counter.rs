//! The test panic counter (`common::server_panics`) watches the SQL worker threads too: the
//! pool catches a panicking job so the worker goes on, which used to hide panics reachable from
//! input. This test panics a job on purpose, so it lives in its own test binary (the count is
//! per process and other binaries assert it stays 0).

#[path = "it/common/mod.rs"]
mod common;

use common::{server_panics, TestServer};

#[tokio::test]
async fn a_panic_on_a_sql_worker_is_counted_and_the_server_goes_on() {
    let server = TestServer::start().await;
    let before = server_panics();
    // The same hand-off as the server's `blocking::run`: the job's result goes back through
    // a oneshot, which a panicking job drops.
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    server.app.workers.execute(move || {
        let _keep = tx;
        panic!("deliberate panic on a SQL worker")
    });
    let outcome = rx.await;
    assert!(outcome.is_err(), "the job reports that its worker failed");
    // The count rises once the unwinding is over (the oneshot is dropped during it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while server_panics() == before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(server_panics(), before + 1);
    // The pool still runs SQL: a request after the panic is answered.
    let resp = common::post_raw(
        server.addr,
        "/v2/pipeline",
        r#"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}},{"type":"close"}]}"#,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    server.stop().await;
}
