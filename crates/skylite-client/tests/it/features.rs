//! The client's features: a build without `local` (remote only, no libSQL C) refuses local
//! URLs with a configuration error that names the feature, and still reaches servers.

use crate::common;

#[cfg(not(feature = "local"))]
#[tokio::test]
async fn local_urls_need_the_local_feature() {
    for url in ["file:app.db", "app.db", ":memory:"] {
        let e = skylite_client::Client::connect(url, "").await.unwrap_err();
        assert!(
            matches!(e, skylite_client::Error::Config(_)),
            "{url}: {e:?}"
        );
        assert!(e.to_string().contains("`local` feature"), "{url}: {e}");
    }
}

#[tokio::test]
async fn remote_urls_work_in_every_build() {
    let s = common::server();
    let db = skylite_client::Client::connect(&s.url, &s.token)
        .await
        .unwrap();
    let rows = db.execute("SELECT 41 + 1", ()).await.unwrap();
    assert_eq!(rows.first().unwrap().get::<i64>(0).unwrap(), 42);
}
