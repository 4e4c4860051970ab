//! Retention deletes exactly the generations (and deleted databases) that no restore inside
//! the window needs.

use std::sync::Arc;

use futures_util::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use skylite_backup::format::{self, GenerationId, ObjectKind};
use skylite_backup::retention::apply_to_database;

async fn put(
    store: &Arc<dyn ObjectStore>,
    key: String,
    kind: ObjectKind,
    name: &str,
    g: &GenerationId,
    body: Vec<u8>,
) {
    let object = format::encode_object(kind, name, g, "w", &body);
    store
        .put(&Path::from(key), PutPayload::from(object))
        .await
        .unwrap();
}

/// A generation started at `ms` with a snapshot (if `snapshot`) and two segments.
async fn generation(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    ms: u64,
    snapshot: bool,
) -> GenerationId {
    let g = GenerationId::new_at(ms);
    if snapshot {
        let head = format::SnapshotHead {
            page_size: 512,
            db_pages: 0,
            txn: 0,
            taken_ms: ms,
        };
        put(
            store,
            format::snapshot_key(name, &g, 0),
            ObjectKind::Snapshot,
            name,
            &g,
            head.encode(),
        )
        .await;
    }
    for first in [1, 2] {
        let seg = format::Segment {
            page_size: 512,
            txns: vec![format::Txn {
                txn: first,
                commit_ms: ms + first,
                db_pages: 1,
                pages: vec![],
            }],
            deduplicated: false,
        };
        put(
            store,
            format::segment_key(name, &g, first),
            ObjectKind::Segment,
            name,
            &g,
            seg.encode(),
        )
        .await;
    }
    g
}

async fn keys(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut k: Vec<String> = store
        .list(None)
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    k.sort();
    k
}

#[tokio::test]
async fn old_generations_go_once_a_newer_one_covers_the_window() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = generation(&store, "db", 1_000, true).await;
    let b = generation(&store, "db", 5_000, true).await;
    let c = generation(&store, "db", 9_000, true).await;
    // The window reaches back before b started: a restore may need a.
    assert_eq!(
        apply_to_database(&store, "db", 4_000)
            .await
            .unwrap()
            .objects,
        0
    );
    assert_eq!(keys(&store).await.len(), 9);
    // b covers the whole window: a goes, b and c stay.
    let report = apply_to_database(&store, "db", 6_000).await.unwrap();
    assert_eq!((report.generations, report.objects), (1, 3));
    let left = keys(&store).await;
    assert!(left.iter().all(|k| !k.contains(a.as_str())), "{left:?}");
    assert!(left.iter().any(|k| k.contains(b.as_str())));
    assert!(left.iter().any(|k| k.contains(c.as_str())));
    // Later: only the newest generation is needed.
    apply_to_database(&store, "db", 10_000).await.unwrap();
    let left = keys(&store).await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|k| k.contains(c.as_str())));
}

#[tokio::test]
async fn a_generation_without_its_snapshot_covers_nothing() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    generation(&store, "db", 1_000, true).await;
    generation(&store, "db", 5_000, false).await;
    assert_eq!(
        apply_to_database(&store, "db", 6_000)
            .await
            .unwrap()
            .objects,
        0
    );
    assert_eq!(keys(&store).await.len(), 5);
}

#[tokio::test]
async fn a_database_deleted_before_the_window_goes_entirely() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let g = generation(&store, "gone", 1_000, true).await;
    put(
        &store,
        format::tombstone_key("gone", &g),
        ObjectKind::Tombstone,
        "gone",
        &g,
        format::encode_tombstone(2_000),
    )
    .await;
    generation(&store, "kept", 1_000, true).await;
    // Deleted inside the window: kept (restorable with include_deleted).
    assert_eq!(
        apply_to_database(&store, "gone", 1_500)
            .await
            .unwrap()
            .objects,
        0
    );
    let report = apply_to_database(&store, "gone", 3_000).await.unwrap();
    assert_eq!(report.objects, 4);
    let left = keys(&store).await;
    assert!(left.iter().all(|k| k.starts_with("dbs/kept/")), "{left:?}");

    // Deleted, then created again: the old history follows the generation rule only.
    let old = generation(&store, "again", 1_000, true).await;
    put(
        &store,
        format::tombstone_key("again", &old),
        ObjectKind::Tombstone,
        "again",
        &old,
        format::encode_tombstone(2_000),
    )
    .await;
    let new = generation(&store, "again", 3_000, true).await;
    apply_to_database(&store, "again", 4_000).await.unwrap();
    let left: Vec<String> = keys(&store)
        .await
        .into_iter()
        .filter(|k| k.starts_with("dbs/again/"))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|k| k.contains(new.as_str())));
}
