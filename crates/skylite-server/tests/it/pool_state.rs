//! Pooled connections carry no state from one stream to another: a closing stream hands its
//! SQLite connection back to the pool only when it is clean (autocommit, no temp objects), and
//! a pooled connection forgets its `last_insert_rowid` (`Database::release`,
//! `Conn::reset_for_pool`).

use crate::common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_stream_inherits_nothing_from_a_pooled_connection() {
    let server = TestServer::start().await;
    let mut setup = Stream::new(server.addr);
    setup.ok("CREATE TABLE t(x INTEGER)").await;
    setup.send(json!([close()])).await;

    // Streams that leave state behind when they close: an insert (last_insert_rowid), a temp
    // table, and an open transaction with an uncommitted row.
    let (status, body) = pipeline(
        server.addr,
        None,
        json!([execute("INSERT INTO t VALUES (1)"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(exec_result(&body, 0)["last_insert_rowid"], "1");
    let (status, body) = pipeline(
        server.addr,
        None,
        json!([execute("CREATE TEMP TABLE scratch(y)"), close()]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    let (status, body) = pipeline(
        server.addr,
        None,
        json!([
            execute("BEGIN"),
            execute("INSERT INTO t VALUES (2)"),
            close()
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");

    // Every later stream, whichever pooled connection it gets, sees none of it.
    for _ in 0..6 {
        let (status, body) = pipeline(
            server.addr,
            None,
            json!([
                execute("SELECT last_insert_rowid()"),
                execute("SELECT count(*) FROM temp.sqlite_master"),
                execute("SELECT count(*) FROM t"),
                {"type": "get_autocommit"},
                close()
            ]),
        )
        .await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(
            rows(exec_result(&body, 0)),
            vec![vec![json!(0)]],
            "{body:#}"
        );
        assert_eq!(
            rows(exec_result(&body, 1)),
            vec![vec![json!(0)]],
            "{body:#}"
        );
        assert_eq!(
            rows(exec_result(&body, 2)),
            vec![vec![json!(1)]],
            "{body:#}"
        );
        assert_eq!(ok_at(&body, 3)["is_autocommit"], true, "{body:#}");
    }
    assert_eq!(server_panics(), 0);
    server.stop().await;
}
