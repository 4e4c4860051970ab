//! Retention (`--backup-retention`): deletes what no restore inside the window can need.
//!
//! A restore to a time `t` starts from the newest generation started at or before `t` that has
//! a snapshot. So with `cutoff = now - retention`, every generation older than the newest one
//! that started at or before the cutoff (and has its snapshot) is never needed again, nor is
//! a deleted database whose tombstone is older than the cutoff (nothing of it is restorable by
//! default, and nothing newer was written under its name). Nothing of a newer generation is
//! deleted, so a server that still writes one is never disturbed.

use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::ObjectStore;

use crate::format::{self, GenerationId};

/// What one pass of retention deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Generations whose objects were deleted.
    pub generations: usize,
    /// Objects deleted.
    pub objects: usize,
}

async fn delete_prefix(store: &dyn ObjectStore, prefix: &str) -> Result<usize, String> {
    let prefix = StorePath::from(prefix);
    let keys: Vec<StorePath> = store
        .list(Some(&prefix))
        .map(|m| m.map(|m| m.location))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("LIST {prefix}: {e}"))?;
    for key in &keys {
        match store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(format!("DELETE {key}: {e}")),
        }
    }
    Ok(keys.len())
}

/// Applies retention to database `name`: deletes the generations no restore at or after
/// `cutoff_ms` needs, or everything if it was deleted before `cutoff_ms`.
pub async fn apply_to_database(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    cutoff_ms: u64,
) -> Result<RetentionReport, String> {
    let prefix = StorePath::from(format::db_prefix(name));
    let listing = store
        .list_with_delimiter(Some(&prefix))
        .await
        .map_err(|e| format!("LIST {prefix}: {e}"))?;
    let mut generations: Vec<GenerationId> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().and_then(|f| GenerationId::parse(f).ok()))
        .collect();
    generations.sort();
    let tombstones: Vec<GenerationId> = listing
        .objects
        .iter()
        .filter_map(|m| match format::ObjectKey::parse(m.location.as_ref()) {
            Some(format::ObjectKey::Tombstone { generation, .. }) => Some(generation),
            _ => None,
        })
        .collect();
    let mut report = RetentionReport::default();

    // Deleted for longer than the window, and nothing written under the name since.
    if let Some(newest_tomb) = tombstones.iter().max() {
        let newest_gen = generations.last();
        if newest_gen.is_none_or(|g| g <= newest_tomb) {
            let key = format::tombstone_key(name, newest_tomb);
            let deleted_ms = match store.get(&StorePath::from(key.as_str())).await {
                Ok(got) => {
                    let bytes = got.bytes().await.map_err(|e| format!("GET {key}: {e}"))?;
                    format::decode_object(&bytes)
                        .ok()
                        .and_then(|(_, body)| format::decode_tombstone(body).ok())
                }
                Err(e) => return Err(format!("GET {key}: {e}")),
            };
            if deleted_ms.is_some_and(|t| t < cutoff_ms) {
                report.generations = generations.len();
                report.objects = delete_prefix(store.as_ref(), &format::db_prefix(name)).await?;
                return Ok(report);
            }
        }
    }

    // The newest generation that started at or before the cutoff and has its first snapshot:
    // every older one can go.
    let mut keep_from = None;
    for (i, generation) in generations.iter().enumerate().rev() {
        if generation.unix_millis() > cutoff_ms {
            continue;
        }
        let snapshot = StorePath::from(format::snapshot_key(name, generation, 0));
        match store.head(&snapshot).await {
            Ok(_) => {
                keep_from = Some(i);
                break;
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(format!("HEAD {snapshot}: {e}")),
        }
    }
    let Some(keep_from) = keep_from else {
        return Ok(report);
    };
    for generation in generations.iter().take(keep_from) {
        report.objects +=
            delete_prefix(store.as_ref(), &format::generation_prefix(name, generation)).await?;
        report.generations += 1;
    }
    // Tombstones of generations that are gone.
    for generation in tombstones
        .iter()
        .filter(|g| generations.get(keep_from).is_some_and(|k| *g < k))
    {
        let key = StorePath::from(format::tombstone_key(name, generation));
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => report.objects += 1,
            Err(e) => return Err(format!("DELETE {key}: {e}")),
        }
    }
    Ok(report)
}

/// Applies retention to every database in the store.
pub async fn apply(
    store: &Arc<dyn ObjectStore>,
    cutoff_ms: u64,
) -> Result<RetentionReport, String> {
    let listing = store
        .list_with_delimiter(Some(&StorePath::from("dbs")))
        .await
        .map_err(|e| format!("LIST dbs/: {e}"))?;
    let mut total = RetentionReport::default();
    for prefix in &listing.common_prefixes {
        let Some(name) = prefix.filename() else {
            continue;
        };
        let report = apply_to_database(store, name, cutoff_ms).await?;
        if report.objects > 0 {
            tracing::info!(
                database = name,
                generations = report.generations,
                objects = report.objects,
                "backup retention: deleted what the window no longer needs"
            );
        }
        total.generations += report.generations;
        total.objects += report.objects;
    }
    Ok(total)
}
