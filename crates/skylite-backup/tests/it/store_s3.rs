//! The object store against a real S3 server (SeaweedFS): credentials and endpoint from the
//! `AWS_*` settings, and the probe that create-only writes have exactly one winner.

use bytes::Bytes;
use object_store::path::Path;
use skylite_backup::store::{self, put_create_only, AwsEnv, BackupUrl, Created};
use skylite_backup::testing::{self, SeaweedFs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_gives_one_winner_to_concurrent_creates() {
    let Some(s3) = SeaweedFs::start_or_skip("seaweedfs_gives_one_winner_to_concurrent_creates")
    else {
        return;
    };
    let store = s3.store("probe-test");
    store::probe(store.as_ref()).await.expect("probe");
    // Rounds of 4 concurrent creates of one key: exactly one wins each time, and the
    // object holds the winner's bytes.
    for round in 0..3 {
        let key = Path::from(format!("race/{round}"));
        let attempts = (0..4u8).map(|i| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let outcome = put_create_only(store.as_ref(), &key, Bytes::from(vec![i; 64]))
                    .await
                    .expect("create-only put");
                (i, outcome)
            })
        });
        let mut winners = Vec::new();
        for attempt in attempts.collect::<Vec<_>>() {
            let (i, outcome) = attempt.await.expect("task");
            if outcome == Created::Yes {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let body = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(body, Bytes::from(vec![winners[0]; 64]));
    }
}

#[tokio::test]
async fn prefix_isolates_keys_and_wrong_credentials_fail() {
    let Some(s3) = SeaweedFs::start_or_skip("prefix_isolates_keys_and_wrong_credentials_fail")
    else {
        return;
    };
    let a = s3.store("tenant-a/backups");
    let b = s3.store("tenant-b");
    put_create_only(a.as_ref(), &Path::from("k"), Bytes::from_static(b"a"))
        .await
        .unwrap();
    // The same key under another prefix is another object.
    assert_eq!(
        put_create_only(b.as_ref(), &Path::from("k"), Bytes::from_static(b"b"))
            .await
            .unwrap(),
        Created::Yes
    );
    let root = s3.store("");
    let body = root
        .get(&Path::from("tenant-a/backups/k"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"a");

    let url = BackupUrl::parse(&s3.url("tenant-a/backups")).unwrap();
    let wrong = s3.aws_env().set("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let store = store::open(&url, &wrong, &testing::test_options()).unwrap();
    let err = store::probe(store.as_ref()).await.unwrap_err();
    assert!(
        matches!(err, store::StoreError::Request(_)),
        "unexpected: {err}"
    );
}

#[test]
fn plain_http_to_a_remote_endpoint_is_refused() {
    let url = BackupUrl::parse("s3://bucket/p").unwrap();
    let env = AwsEnv::default().set("AWS_ENDPOINT_URL", "http://192.0.2.1:9000");
    let err = match store::open(&url, &env, &testing::test_options()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    assert!(matches!(err, store::StoreError::InvalidEndpoint { .. }));
}
