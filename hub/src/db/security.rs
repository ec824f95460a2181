//! Tables that defend the hub (migration 0011): shared rate-limit counters, shared secrets,
//! which blobs accepted manifests reference (what may be served, what is garbage), the
//! objects extracted from layers at push, and per-user storage use.

use sqlx::Row;

use super::{now, Db};
use crate::error::HubResult;

impl Db {
    /// Counts one hit on `key` (which names its window) and returns the window's total.
    /// One atomic upsert, so hub processes sharing the database share the count.
    pub async fn rate_hit(&self, key: &str, expires_at: i64) -> HubResult<i64> {
        let row = sqlx::query(
            "INSERT INTO rate_hits (key, hits, expires_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET hits = rate_hits.hits + 1 RETURNING hits",
        )
        .bind(key)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Drops counters of windows that are over.
    pub async fn expire_rate_hits(&self) -> HubResult<u64> {
        let done = sqlx::query("DELETE FROM rate_hits WHERE expires_at < $1")
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The shared secret `name`, created as `fresh` by the first process that asks.
    pub async fn secret(&self, name: &str, fresh: &str) -> HubResult<String> {
        self.exec(
            "INSERT INTO hub_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[name, fresh],
        )
        .await?;
        let mut v = self
            .strings("SELECT value FROM hub_secrets WHERE name = $1", &[name])
            .await?;
        Ok(v.pop().unwrap_or_else(|| fresh.to_string()))
    }

    /// Records the blobs manifest `manifest` of `repo` references.
    pub async fn add_manifest_blobs(
        &self,
        repo: &str,
        manifest: &str,
        digests: &[String],
    ) -> HubResult<()> {
        for d in digests {
            self.exec(
                "INSERT INTO manifest_blobs (repo, manifest, digest) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[repo, manifest, d],
            )
            .await?;
        }
        Ok(())
    }

    pub async fn remove_manifest_blobs(&self, repo: &str, manifest: &str) -> HubResult<()> {
        self.exec(
            "DELETE FROM manifest_blobs WHERE repo = $1 AND manifest = $2",
            &[repo, manifest],
        )
        .await
        .map(|_| ())
    }

    /// Whether an accepted manifest of `repo` references blob `digest`.
    pub async fn blob_referenced(&self, repo: &str, digest: &str) -> HubResult<bool> {
        Ok(!self
            .strings(
                "SELECT digest FROM manifest_blobs WHERE repo = $1 AND digest = $2 LIMIT 1",
                &[repo, digest],
            )
            .await?
            .is_empty())
    }

    /// `(repo, digest, content)` of every stored manifest, for the one-time backfill.
    pub async fn all_manifests(&self) -> HubResult<Vec<(String, String, Vec<u8>)>> {
        let rows = sqlx::query("SELECT repo, digest, content FROM manifests")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        Ok(out)
    }

    /// Bytes of distinct blobs linked into `user`'s repositories.
    pub async fn storage_used(&self, user: &str) -> HubResult<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs WHERE digest IN \
             (SELECT digest FROM repo_blobs WHERE repo LIKE $1)",
        )
        // User names are `[a-z0-9-]`: nothing to escape in the pattern.
        .bind(format!("{user}/%"))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Unlinks blobs from repositories where no manifest references them and the link is
    /// older than `before` (a push in progress uploads blobs before its manifest).
    pub async fn unlink_unreferenced(&self, before: i64) -> HubResult<u64> {
        let done = sqlx::query(
            "DELETE FROM repo_blobs WHERE NOT EXISTS (SELECT 1 FROM manifest_blobs m \
             WHERE m.repo = repo_blobs.repo AND m.digest = repo_blobs.digest) \
             AND linked_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// `(digest, size)` of blobs that no repository links any more and no object row names.
    pub async fn orphan_blobs(&self, before: i64) -> HubResult<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT digest, size FROM blobs b WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM repo_blobs r WHERE r.digest = b.digest) \
             AND NOT EXISTS (SELECT 1 FROM layer_objects o WHERE o.object_digest = b.digest)",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((r.try_get(0)?, r.try_get::<i64, _>(1)?.max(0) as u64));
        }
        Ok(out)
    }

    /// Whether any manifest reference is recorded (the backfill ran or pushes happened).
    pub async fn any_manifest_blobs(&self) -> HubResult<bool> {
        Ok(!self
            .strings("SELECT digest FROM manifest_blobs LIMIT 1", &[])
            .await?
            .is_empty())
    }

    /// Drops a collected blob's row, and the object extracted from it (collected next).
    pub async fn forget_blob(&self, digest: &str) -> HubResult<()> {
        self.exec(
            "DELETE FROM layer_objects WHERE layer_digest = $1",
            &[digest],
        )
        .await?;
        self.exec("DELETE FROM blobs WHERE digest = $1", &[digest])
            .await
            .map(|_| ())
    }

    /// Records the object extracted from a layer (stored as blob `object_digest`).
    pub async fn add_layer_object(
        &self,
        layer: &str,
        object: &str,
        object_digest: &str,
        size: i64,
    ) -> HubResult<()> {
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(object_digest)
        .bind(size)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.exec(
            "INSERT INTO layer_objects (layer_digest, object, object_digest) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[layer, object, object_digest],
        )
        .await
        .map(|_| ())
    }

    pub async fn layer_object(&self, layer: &str, object: &str) -> HubResult<Option<String>> {
        Ok(self
            .strings(
                "SELECT object_digest FROM layer_objects WHERE layer_digest = $1 AND object = $2",
                &[layer, object],
            )
            .await?
            .pop())
    }
}
