//! The admin API over the client's one HTTP transport (what `skylite db ...` uses): JSON calls,
//! a streamed upload and streamed downloads on a real server, the server's refusals as typed
//! errors, https with a custom CA, and the database path dropped from a database URL.

use crate::common;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use skylite_auth::{mint, TokenSpec};
use skylite_client::admin::Admin;
use skylite_client::Error;

fn admin_token(s: &common::Server) -> String {
    mint(
        &s.key,
        &TokenSpec {
            admin: true,
            ..TokenSpec::default()
        },
    )
    .expect("mint")
    .0
}

#[tokio::test]
async fn admin_calls_uploads_and_downloads_share_one_transport() {
    let s = common::server();
    let token = admin_token(s);
    // A database URL works: its `/db/app/` is dropped.
    let admin = Admin::new(&s.url, Some(&token), None).unwrap();
    assert_eq!(admin.base(), format!("http://127.0.0.1:{}", s.addr.port()));
    assert_eq!(
        admin.database_url("x"),
        format!("http://127.0.0.1:{}/db/x/", s.addr.port())
    );
    let list = admin
        .json(Method::GET, "/v1/admin/databases", None)
        .await
        .unwrap();
    assert!(list["databases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["name"] == "app"));

    // Streamed download of a database file (`app`, with one table and row written over Hrana).
    let db = skylite_client::Client::connect(&s.url, &s.token)
        .await
        .unwrap();
    let table = common::table("admin_up");
    db.execute(&format!("CREATE TABLE {table} (x)"), ())
        .await
        .unwrap();
    db.execute(&format!("INSERT INTO {table} VALUES (42)"), ())
        .await
        .unwrap();
    let mut export = admin
        .download("/v1/admin/databases/app/export")
        .await
        .unwrap();
    let mut file = Vec::new();
    while let Some(chunk) = export.chunk().await.unwrap() {
        file.extend_from_slice(&chunk);
    }
    assert_eq!(export.content_length(), Some(file.len() as u64));
    assert!(file.starts_with(b"SQLite format 3\0"));

    // Streamed upload of it as a new database, in two chunks.
    let half = file.len() / 2;
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::copy_from_slice(&file[..half]))),
        Ok(Frame::data(Bytes::copy_from_slice(&file[half..]))),
    ];
    let body = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)));
    let len = file.len().to_string();
    let answer = admin
        .call(
            Method::PUT,
            "/v1/admin/databases/uploaded/import",
            &[
                ("content-type", "application/vnd.sqlite3"),
                ("content-length", &len),
            ],
            body,
        )
        .await
        .unwrap();
    assert!(answer["tables"].as_u64() >= Some(1), "{answer}");

    // Streamed download of its dump.
    let mut dump = admin
        .download("/v1/admin/databases/uploaded/dump")
        .await
        .unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = dump.chunk().await.unwrap() {
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(&format!(
            "INSERT INTO \"{table}\"(rowid,\"x\") VALUES(1,42);"
        )),
        "{text}"
    );
    assert!(text.trim_end().ends_with("COMMIT;"), "{text}");

    // Refusals are typed: a missing database, a non-admin token.
    let e = admin
        .download("/v1/admin/databases/nope/export")
        .await
        .err()
        .expect("no such database");
    assert_eq!(e.http_status(), Some(404), "{e}");
    let plain = Admin::new(&s.url, Some(&s.token), None).unwrap();
    let e = plain
        .json(Method::GET, "/v1/admin/databases", None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Auth { status: 403, .. }), "{e:?}");
    admin
        .json(Method::DELETE, "/v1/admin/databases/uploaded", None)
        .await
        .unwrap();
}

#[tokio::test]
async fn admin_over_https_needs_the_ca_file() {
    let s = common::tls_server();
    let token = admin_token(s);
    let with_ca = Admin::new(&s.url, Some(&token), Some(&common::tls_fixture("ca.pem"))).unwrap();
    assert!(with_ca.base().starts_with("https://localhost:"));
    with_ca
        .json(Method::GET, "/v1/admin/databases", None)
        .await
        .unwrap();
    let without = Admin::new(&s.url, Some(&token), None).unwrap();
    let e = without
        .json(Method::GET, "/v1/admin/databases", None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect(_)), "{e:?}");
    assert!(Admin::new("not a url", None, None).is_err());
}
