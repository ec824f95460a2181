//! Garbage collection of blobs no accepted manifest references: uploads whose manifest
//! never came (or was refused), and layers of deleted manifests. Run hourly by `hub serve`
//! and on demand by `cargo ebpf hub gc`.
//!
//! Two steps, each safe with several hub processes on one database: unlink blobs from
//! repositories where no manifest references them (after a grace period, since a push
//! uploads its blobs before its manifest), then delete blobs no repository links.

use crate::blobs::BlobStore;
use crate::db::{now, Db};
use crate::error::HubResult;
use crate::oci::{referenced_blobs, ManifestDoc};

/// How long an unreferenced blob may wait for its manifest.
pub const GRACE_SECS: i64 = 24 * 3600;

/// What a collection removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Links from repositories to blobs no manifest there references.
    pub links: u64,
    /// Blobs deleted from storage.
    pub blobs: u64,
    pub bytes: u64,
}

/// Collects what has been unreferenced for longer than `grace_secs`.
pub async fn collect(db: &Db, blobs: &BlobStore, grace_secs: i64) -> HubResult<Collected> {
    let before = now() - grace_secs;
    let mut done = Collected {
        links: db.unlink_unreferenced(before).await?,
        ..Collected::default()
    };
    for (digest, size) in db.orphan_blobs(before).await? {
        blobs.remove(&digest).await?;
        db.forget_blob(&digest).await?;
        done.blobs += 1;
        done.bytes += size;
    }
    Ok(done)
}

/// Fills `manifest_blobs` for manifests stored before it existed (once: it is empty then).
pub async fn backfill_references(db: &Db) -> HubResult<()> {
    if db.any_manifest_blobs().await? {
        return Ok(());
    }
    for (repo, digest, content) in db.all_manifests().await? {
        if let Ok(doc) = serde_json::from_slice::<ManifestDoc>(&content) {
            db.add_manifest_blobs(&repo, &digest, &referenced_blobs(&doc))
                .await?;
        }
    }
    Ok(())
}
