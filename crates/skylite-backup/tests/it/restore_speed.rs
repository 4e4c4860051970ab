//! Restore speed on loopback (ignored by default: it writes ~200 MB; run it with
//! `cargo test --release -p skylite-backup --test it restore_speed:: -- --ignored --nocapture`):
//! a ~200 MB database as one snapshot plus segments in SeaweedFS, restored, MB/s printed.

use std::time::Instant;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use skylite_backup::format::GenerationId;
use skylite_backup::restore::{restore_database, RestoreOptions};
use skylite_backup::testing::{History, SeaweedFs};

async fn put_large(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) {
    let upload = store.put_multipart(&Path::from(key)).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 16 * 1024 * 1024);
    writer.write(&bytes);
    writer.finish().await.unwrap();
}

#[test]
#[ignore]
fn restore_speed_of_a_200_mb_database() {
    let Some(s3) = SeaweedFs::start_or_skip("restore_speed_of_a_200_mb_database") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = s3.store("speed");
    let t0 = 1_765_000_000_000u64;
    let mut h = History::new("big", GenerationId::new_at(t0), 4096);
    h.record_fingerprints = false;
    // 200 MB of rows, then 20 MB of changes in segments.
    for i in 0..20u64 {
        h.commit(
            &format!(
                "INSERT INTO t(b) SELECT randomblob(4000) FROM (WITH RECURSIVE s(x) AS \
                 (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 2500) SELECT x FROM s) \
                 WHERE {i} >= 0"
            ),
            t0,
        );
    }
    let (key, snapshot) = h.snapshot(t0);
    let first = h.txn + 1;
    for i in 0..20u64 {
        h.commit(
            &format!("UPDATE t SET b = randomblob(4000) WHERE id % 200 = {i}"),
            t0 + 1000 + i,
        );
    }
    let snapshot_mb = snapshot.len() as f64 / 1e6;
    rt.block_on(async {
        put_large(store.as_ref(), &key, snapshot).await;
        for start in (first..=h.txn).step_by(5) {
            let (key, bytes) = h.segment(start, (start + 4).min(h.txn));
            store
                .put(&Path::from(key), PutPayload::from(Bytes::from(bytes)))
                .await
                .unwrap();
        }
    });
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("big.db");
    let started = Instant::now();
    let r = rt
        .block_on(restore_database(
            &store,
            "big",
            &RestoreOptions::default(),
            &dest,
        ))
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let mb = r.bytes_downloaded as f64 / 1e6;
    let file_mb = std::fs::metadata(&dest).unwrap().len() as f64 / 1e6;
    println!(
        "restore speed: snapshot {snapshot_mb:.0} MB + segments, {mb:.0} MB downloaded, \
         {file_mb:.0} MB file, {seconds:.2} s incl. integrity_check: {:.0} MB/s",
        mb / seconds
    );
    assert_eq!(r.txn, h.txn);
}
