//! Restore from objects written with `format.rs` (an in-memory store): the newest state, a
//! point in time, snapshots taken mid-history, gaps, seals, corruption, tombstones and
//! generations. The same code against a real S3 server is in `restore_s3.rs`.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use skylite_backup::format::{
    encode_object, encode_tombstone, segment_key, tombstone_key, GenerationId, ObjectKind, Seal,
};
use skylite_backup::restore::{
    list_databases, restore_all, restore_database, RestoreError, RestoreOptions,
};
use skylite_backup::testing::{fingerprint, History};

const T0: u64 = 1_765_000_000_000;

async fn put(store: &Arc<dyn ObjectStore>, (key, bytes): (String, Vec<u8>)) {
    store
        .put(&Path::from(key), PutPayload::from(Bytes::from(bytes)))
        .await
        .expect("put");
}

/// A history of 12 transactions on `name`, one second apart from T0 + 1 s: snapshot 0, then
/// segments 1..=4, 5..=9, 10..=12. Rows are inserted, updated and deleted.
async fn history(store: &Arc<dyn ObjectStore>, name: &str, generation: GenerationId) -> History {
    let mut h = History::new(name, generation, 1024);
    put(store, h.snapshot(T0)).await;
    for i in 1..=12u64 {
        let sql = match i {
            3 => "UPDATE t SET v = 'updated' WHERE id % 2 = 0".to_string(),
            7 => "DELETE FROM t WHERE id < 40".to_string(),
            _ => format!(
                "INSERT INTO t(v, b) SELECT 'row ' || value, randomblob(300) FROM {}",
                series(i * 10, i * 10 + 9)
            ),
        };
        h.commit(&sql, T0 + i * 1000);
    }
    put(store, h.segment(1, 4)).await;
    put(store, h.segment(5, 9)).await;
    put(store, h.segment(10, 12)).await;
    h
}

/// `s(value)` rows from `from` to `to`, as a table expression.
fn series(from: u64, to: u64) -> String {
    format!(
        "(WITH RECURSIVE s(value) AS (SELECT {from} UNION ALL SELECT value + 1 FROM s \
         WHERE value < {to}) SELECT value FROM s)"
    )
}

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn options(at_ms: Option<u64>) -> RestoreOptions {
    RestoreOptions {
        at_ms,
        ..RestoreOptions::default()
    }
}

fn journal_mode(path: &FsPath) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn restores_the_newest_state_whole_and_in_wal_mode() {
    let store = mem();
    let h = history(&store, "app", GenerationId::new_at(T0)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.db");
    let restored = restore_database(&store, "app", &options(None), &dest)
        .await
        .unwrap();
    assert_eq!(restored.txn, 12);
    assert_eq!(restored.txns_applied, 12);
    assert_eq!(restored.last_commit_ms, Some(T0 + 12_000));
    assert_eq!(fingerprint(&dest), h.fingerprints[12]);
    assert_eq!(journal_mode(&dest), "wal");
    assert_eq!(list_databases(store.as_ref()).await.unwrap(), vec!["app"]);
}

#[tokio::test]
async fn point_in_time_gives_exactly_the_transactions_committed_up_to_it() {
    let store = mem();
    let h = history(&store, "app", GenerationId::new_at(T0)).await;
    let dir = tempfile::tempdir().unwrap();
    for (i, at) in [
        (0, T0 + 999),
        (1, T0 + 1000),
        (1, T0 + 1999),
        (4, T0 + 4000),
        (5, T0 + 5500),
        (9, T0 + 9000),
        (11, T0 + 11_999),
        (12, T0 + 99_000),
    ] {
        let dest = dir.path().join(format!("at-{at}.db"));
        let restored = restore_database(&store, "app", &options(Some(at)), &dest)
            .await
            .unwrap();
        assert_eq!(restored.txn, i as u64, "at {at}");
        assert_eq!(fingerprint(&dest), h.fingerprints[i], "at {at}");
    }
    // Before the generation started: nothing to restore.
    let err = restore_database(
        &store,
        "app",
        &options(Some(T0 - 1)),
        &dir.path().join("x.db"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RestoreError::NoSnapshot { .. }), "{err}");
    assert!(!dir.path().join("x.db").exists());
}

#[tokio::test]
async fn a_later_snapshot_is_used_and_segments_continue_mid_segment() {
    let store = mem();
    let generation = GenerationId::new_at(T0);
    let mut h = History::new("app", generation.clone(), 4096);
    put(&store, h.snapshot(T0)).await;
    for i in 1..=10u64 {
        h.commit(&format!("INSERT INTO t(v) VALUES ('v{i}')"), T0 + i * 1000);
        if i == 6 {
            // Built "in the background" much later than transaction 6 committed.
            put(&store, h.snapshot(T0 + 50_000)).await;
        }
    }
    put(&store, h.segment(1, 4)).await;
    put(&store, h.segment(5, 10)).await;
    // Drop the first segment as retention would: the snapshot at 6 must be enough.
    store
        .delete(&Path::from(segment_key("app", &generation, 1)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.db");
    let r = restore_database(&store, "app", &options(None), &dest)
        .await
        .unwrap();
    assert_eq!((r.snapshot_txn, r.txn, r.txns_applied), (6, 10, 4));
    assert_eq!(fingerprint(&dest), h.fingerprints[10]);
    // At a time after txn 6 but before the snapshot was taken: the snapshot still serves.
    let dest = dir.path().join("b.db");
    let r = restore_database(&store, "app", &options(Some(T0 + 8000)), &dest)
        .await
        .unwrap();
    assert_eq!((r.snapshot_txn, r.txn), (6, 8));
    assert_eq!(fingerprint(&dest), h.fingerprints[8]);
    // Before txn 6: snapshot 0 and segments 1.. are needed, and segment 1..4 is gone: the
    // restore stops at the gap (transaction 0) rather than inventing anything.
    let dest = dir.path().join("c.db");
    let r = restore_database(&store, "app", &options(Some(T0 + 3000)), &dest)
        .await
        .unwrap();
    assert_eq!(r.txn, 0);
    assert_eq!(fingerprint(&dest), h.fingerprints[0]);
}

#[tokio::test]
async fn a_gap_or_a_seal_ends_the_history() {
    let store = mem();
    let generation = GenerationId::new_at(T0);
    let h = history(&store, "app", generation.clone()).await;
    store
        .delete(&Path::from(segment_key("app", &generation, 5)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("gap.db");
    let r = restore_database(&store, "app", &options(None), &dest)
        .await
        .unwrap();
    assert_eq!(r.txn, 4);
    assert_eq!(fingerprint(&dest), h.fingerprints[4]);

    // A seal at 10: the generation ends at 9 even though a segment 10.. exists elsewhere.
    let store = mem();
    let h = history(&store, "app", generation.clone()).await;
    let key = segment_key("app", &generation, 10);
    let seal = Seal {
        next_generation: None,
        sealed_ms: T0,
    }
    .encode();
    store
        .put(
            &Path::from(key),
            PutPayload::from(encode_object(
                ObjectKind::Seal,
                "app",
                &generation,
                "other",
                &seal,
            )),
        )
        .await
        .unwrap();
    let dest = dir.path().join("seal.db");
    let r = restore_database(&store, "app", &options(None), &dest)
        .await
        .unwrap();
    assert_eq!(r.txn, 9);
    assert_eq!(fingerprint(&dest), h.fingerprints[9]);
}

#[tokio::test]
async fn corruption_is_detected_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    for target in ["snapshot", "segment", "wrong-db"] {
        let store = mem();
        let generation = GenerationId::new_at(T0);
        let h = history(&store, "app", generation.clone()).await;
        match target {
            "snapshot" => {
                let (key, mut bytes) = h.snapshot(T0);
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                put(&store, (key, bytes)).await;
            }
            "segment" => {
                let (key, mut bytes) = h.segment(5, 9);
                let mid = bytes.len() / 2;
                bytes[mid] ^= 1;
                put(&store, (key, bytes)).await;
            }
            _ => {
                // An object of another database copied under this one's key.
                let mut other = History::new("other", generation.clone(), 1024);
                other.commit("INSERT INTO t(v) VALUES (1)", T0 + 5000);
                let (_, bytes) = other.segment(1, 1);
                put(&store, (segment_key("app", &generation, 5), bytes)).await;
            }
        }
        let dest = dir.path().join(format!("{target}.db"));
        let err = restore_database(&store, "app", &options(None), &dest)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RestoreError::Format { .. }),
            "{target}: {err}"
        );
        assert!(!dest.exists(), "{target}: file left behind");
    }
}

#[tokio::test]
async fn shrinking_databases_are_cut_to_size() {
    let store = mem();
    // auto_vacuum = FULL: a commit that frees pages cuts the file.
    let mut h = History::with_setup(
        "app",
        GenerationId::new_at(T0),
        1024,
        "PRAGMA auto_vacuum = FULL",
    );
    put(&store, h.snapshot(T0)).await;
    h.commit(
        &format!(
            "INSERT INTO t(b) SELECT randomblob(2000) FROM {}",
            series(1, 200)
        ),
        T0 + 1000,
    );
    h.commit("DELETE FROM t WHERE id > 10", T0 + 2000);
    h.commit("INSERT INTO t(v) VALUES ('after')", T0 + 3000);
    put(&store, h.segment(1, 3)).await;
    let big = h.txns[0].db_pages;
    let small = h.txns[1].db_pages;
    assert!(small < big / 4, "{small} pages after {big}");
    let dir = tempfile::tempdir().unwrap();
    for (at, txn) in [(T0 + 2000, 2), (T0 + 3000, 3)] {
        let dest = dir.path().join(format!("s{txn}.db"));
        let r = restore_database(&store, "app", &options(Some(at)), &dest)
            .await
            .unwrap();
        assert_eq!(r.txn, txn);
        assert_eq!(r.db_pages, u64::from(h.txns[txn as usize - 1].db_pages));
        assert_eq!(fingerprint(&dest), h.fingerprints[txn as usize]);
    }
}

#[tokio::test]
async fn tombstones_and_generations() {
    let store = mem();
    let old = GenerationId::new_at(T0);
    let h_old = history(&store, "gone", old.clone()).await;
    put(
        &store,
        (
            tombstone_key("gone", &old),
            encode_object(
                ObjectKind::Tombstone,
                "gone",
                &old,
                "w",
                &encode_tombstone(T0 + 20_000),
            ),
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = restore_database(&store, "gone", &options(None), &dir.path().join("a.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, RestoreError::Deleted { .. }), "{err}");
    // Before it was deleted it existed.
    let dest = dir.path().join("b.db");
    restore_database(&store, "gone", &options(Some(T0 + 15_000)), &dest)
        .await
        .unwrap();
    assert_eq!(fingerprint(&dest), h_old.fingerprints[12]);
    // Asked for explicitly.
    let dest = dir.path().join("c.db");
    let include = RestoreOptions {
        include_deleted: true,
        ..RestoreOptions::default()
    };
    restore_database(&store, "gone", &include, &dest)
        .await
        .unwrap();
    assert_eq!(fingerprint(&dest), h_old.fingerprints[12]);

    // Recreated later: a newer generation is the database again.
    let new = GenerationId::new_at(T0 + 30_000);
    let mut h_new = History::new("gone", new.clone(), 1024);
    put(&store, h_new.snapshot(T0 + 30_000)).await;
    h_new.commit("INSERT INTO t(v) VALUES ('reborn')", T0 + 31_000);
    put(&store, h_new.segment(1, 1)).await;
    let dest = dir.path().join("d.db");
    let r = restore_database(&store, "gone", &options(None), &dest)
        .await
        .unwrap();
    assert_eq!(r.generation, new);
    assert_eq!(fingerprint(&dest), h_new.fingerprints[1]);
    // Between deletion and recreation: deleted.
    let err = restore_database(
        &store,
        "gone",
        &options(Some(T0 + 25_000)),
        &dir.path().join("e.db"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RestoreError::Deleted { .. }), "{err}");

    // restore_all skips the deleted one and restores the live one.
    let live = history(&store, "live", GenerationId::new_at(T0)).await;
    let data = tempfile::tempdir().unwrap();
    let all = restore_all(&store, data.path(), None, &options(Some(T0 + 25_000)))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["live"]
    );
    assert_eq!(
        fingerprint(&data.path().join("live/data.db")),
        live.fingerprints[12]
    );
    assert!(!data.path().join("gone").exists());
    // Nothing is overwritten.
    let err = restore_all(&store, data.path(), Some("live"), &options(None))
        .await
        .unwrap_err();
    assert!(matches!(err, RestoreError::Exists(_)), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(leftovers, vec!["live"]);
}

#[tokio::test]
async fn unknown_databases_and_names() {
    let store = mem();
    let dir = tempfile::tempdir().unwrap();
    let err = restore_database(&store, "nothing", &options(None), &dir.path().join("a.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, RestoreError::NotFound(_)), "{err}");
    let err = restore_database(&store, "../x", &options(None), &dir.path().join("b.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, RestoreError::InvalidName(_)), "{err}");
}

#[tokio::test]
async fn restore_if_empty_only_fills_an_empty_data_folder() {
    use skylite_backup::restore::restore_if_empty;
    let store = mem();
    let h = history(&store, "app", GenerationId::new_at(T0)).await;
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join(".skylite")).unwrap();
    let restored = restore_if_empty(&store, data.path(), &options(None))
        .await
        .unwrap()
        .expect("restored");
    assert_eq!(restored.len(), 1);
    assert_eq!(
        fingerprint(&data.path().join("app/data.db")),
        h.fingerprints[12]
    );
    // Second start: the folder has a database, nothing is touched.
    assert!(restore_if_empty(&store, data.path(), &options(None))
        .await
        .unwrap()
        .is_none());
    // A missing folder counts as empty.
    let missing = data.path().join("new-folder");
    let restored = restore_if_empty(&store, &missing, &options(None))
        .await
        .unwrap()
        .expect("restored into a new folder");
    assert_eq!(restored.len(), 1);
    // An empty backup restores nothing and is not an error.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        restore_if_empty(&mem(), empty.path(), &options(None))
            .await
            .unwrap(),
        Some(vec![])
    );
}
