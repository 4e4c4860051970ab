//! Many clients at once: 64 concurrent clients doing autocommit inserts all succeed (the write
//! lock queues them; nobody sees SQLITE_BUSY) and every row is there.

use crate::common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_writers_all_succeed() {
    let server = TestServer::start().await;
    let mut s = Stream::new(server.addr);
    s.ok("CREATE TABLE t(client INTEGER, n INTEGER, UNIQUE (client, n))")
        .await;

    const CLIENTS: i64 = 64;
    const INSERTS: i64 = 15;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for n in 0..INSERTS {
                // Alternate between one-shot streams (Node's execute) and /v1/execute (Python).
                if n % 2 == 0 {
                    let (status, body) = pipeline_at(
                        addr,
                        "/v2/pipeline",
                        None,
                        json!([
                            execute_args("INSERT INTO t VALUES (?, ?)", json!([int(client), int(n)])),
                            close()
                        ]),
                    )
                    .await;
                    if status != 200 || body["results"][0]["type"] != "ok" {
                        errors.push(format!("{status} {body}"));
                    }
                } else {
                    let r = post_json(
                        addr,
                        "/v1/execute",
                        &json!({"stmt": {"sql": "INSERT INTO t VALUES (?, ?)", "args": [int(client), int(n)]}}),
                    )
                    .await;
                    if r.status != 200 {
                        errors.push(format!("{} {}", r.status, r.text()));
                    }
                }
            }
            errors
        }));
    }
    let mut all_errors = Vec::new();
    for t in tasks {
        all_errors.extend(t.await.unwrap());
    }
    assert!(
        all_errors.is_empty(),
        "{} failed inserts, e.g. {:?}",
        all_errors.len(),
        &all_errors[..all_errors.len().min(3)]
    );
    assert_eq!(
        scalar_i64(server.addr, "SELECT count(*) FROM t").await,
        CLIENTS * INSERTS
    );
    assert_eq!(
        scalar_i64(server.addr, "SELECT count(DISTINCT client) FROM t").await,
        CLIENTS
    );
    assert_eq!(server_panics(), 0);
}
