//! Registry metadata: repositories, blob links, uploads, manifests and tags.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{first_column, now, Db};
use crate::error::HubResult;

/// A stored manifest, its bytes exactly as pushed.
pub struct ManifestRow {
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub content: Vec<u8>,
}

/// What the registry records about a manifest it accepted.
pub struct NewManifest<'a> {
    pub repo: &'a str,
    pub digest: &'a str,
    pub media_type: &'a str,
    pub artifact_type: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub content: &'a [u8],
}

impl Db {
    // ---- repositories and blobs --------------------------------------------------------------

    pub async fn ensure_repo(&self, repo: &str) -> HubResult<()> {
        sqlx::query(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(repo)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn repo_exists(&self, repo: &str) -> HubResult<bool> {
        Ok(!self
            .strings("SELECT name FROM repositories WHERE name = $1", &[repo])
            .await?
            .is_empty())
    }

    /// Records a verified blob and makes it visible in `repo`.
    pub async fn add_blob(&self, repo: &str, digest: &str, size: i64) -> HubResult<()> {
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(size)
        .bind(now())
        .execute(&self.pool)
        .await
        ?;
        self.link_blob(repo, digest).await
    }

    pub async fn link_blob(&self, repo: &str, digest: &str) -> HubResult<()> {
        self.ensure_repo(repo).await?;
        sqlx::query(
            "INSERT INTO repo_blobs (repo, digest, linked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (repo, digest) DO UPDATE SET linked_at = excluded.linked_at",
        )
        .bind(repo)
        .bind(digest)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn unlink_blob(&self, repo: &str, digest: &str) -> HubResult<bool> {
        Ok(self
            .exec(
                "DELETE FROM repo_blobs WHERE repo = $1 AND digest = $2",
                &[repo, digest],
            )
            .await?
            > 0)
    }

    /// The size of `digest` if `repo` may serve it.
    pub async fn blob_in_repo(&self, repo: &str, digest: &str) -> HubResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT b.size FROM blobs b JOIN repo_blobs r ON r.digest = b.digest \
             WHERE r.repo = $1 AND b.digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?)
    }

    // ---- uploads -----------------------------------------------------------------------------

    pub async fn add_upload(&self, id: &str, repo: &str) -> HubResult<()> {
        self.ensure_repo(repo).await?;
        sqlx::query("INSERT INTO uploads (id, repo, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(repo)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn upload_exists(&self, id: &str, repo: &str) -> HubResult<bool> {
        Ok(!self
            .strings(
                "SELECT id FROM uploads WHERE id = $1 AND repo = $2",
                &[id, repo],
            )
            .await?
            .is_empty())
    }

    /// Uploads started before `before` (Unix seconds): abandoned, for the sweeper.
    pub async fn stale_uploads(&self, before: i64) -> HubResult<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE created_at < $1")
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        first_column(&rows)
    }

    /// Removes upload `id` and its bytes.
    pub async fn remove_upload(&self, id: &str) -> HubResult<()> {
        self.exec("DELETE FROM upload_chunks WHERE upload_id = $1", &[id])
            .await?;
        self.exec("DELETE FROM uploads WHERE id = $1", &[id])
            .await
            .map(|_| ())
    }

    /// Bytes received for upload `id`; None when there is no such upload.
    pub async fn upload_size(&self, id: &str) -> HubResult<Option<i64>> {
        let row = sqlx::query("SELECT size FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?)
    }

    /// Stores `data` at byte `offset` of upload `id` and moves its size past it, in one
    /// transaction; false when the upload's size is no longer `offset` (another writer).
    pub async fn add_upload_piece(&self, id: &str, offset: i64, data: Vec<u8>) -> HubResult<bool> {
        let end = offset + data.len() as i64;
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query("UPDATE uploads SET size = $1 WHERE id = $2 AND size = $3")
            .bind(end)
            .bind(id)
            .bind(offset)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO upload_chunks (upload_id, offset_bytes, data) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(offset)
        .bind(data)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The piece of upload `id` that starts at byte `offset`, if any.
    pub async fn upload_piece(&self, id: &str, offset: i64) -> HubResult<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT data FROM upload_chunks WHERE upload_id = $1 AND offset_bytes = $2",
        )
        .bind(id)
        .bind(offset)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose()?)
    }

    // ---- manifests and tags ------------------------------------------------------------------

    pub async fn put_manifest(&self, m: &NewManifest<'_>) -> HubResult<()> {
        self.ensure_repo(m.repo).await?;
        sqlx::query(
            "INSERT INTO manifests (repo, digest, media_type, artifact_type, subject, size, \
             content, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(m.repo)
        .bind(m.digest)
        .bind(m.media_type)
        .bind(m.artifact_type.map(str::to_string))
        .bind(m.subject.map(str::to_string))
        .bind(m.content.len() as i64)
        .bind(m.content.to_vec())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Points `tag` at `digest`; returns the digest it pointed at before, if any.
    pub async fn set_tag(&self, repo: &str, tag: &str, digest: &str) -> HubResult<()> {
        sqlx::query(
            "INSERT INTO tags (repo, name, digest, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repo, name) DO UPDATE SET digest = excluded.digest, \
             updated_at = excluded.updated_at",
        )
        .bind(repo)
        .bind(tag)
        .bind(digest)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn tag_digest(&self, repo: &str, tag: &str) -> HubResult<Option<String>> {
        Ok(self
            .strings(
                "SELECT digest FROM tags WHERE repo = $1 AND name = $2",
                &[repo, tag],
            )
            .await?
            .pop())
    }

    pub async fn manifest(&self, repo: &str, digest: &str) -> HubResult<Option<ManifestRow>> {
        let row = sqlx::query(
            "SELECT digest, media_type, artifact_type, content FROM manifests \
             WHERE repo = $1 AND digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| manifest_row(&r)).transpose()
    }

    /// What a pull's manifest GET needs, in one statement: the manifest `reference` (a tag
    /// or a digest) names in `repo`, and whether the version it is was yanked (every
    /// version row it is, yanked; see [`Db::is_yanked`]).
    pub async fn manifest_for_pull(
        &self,
        repo: &str,
        reference: &str,
        by_digest: bool,
    ) -> HubResult<Option<(ManifestRow, bool)>> {
        let sql = if by_digest {
            "SELECT m.digest, m.media_type, m.artifact_type, m.content, \
             (SELECT MIN(v.yanked) FROM versions v WHERE v.repo = m.repo AND v.digest = m.digest) \
             FROM manifests m WHERE m.repo = $1 AND m.digest = $2"
        } else {
            "SELECT m.digest, m.media_type, m.artifact_type, m.content, \
             (SELECT MIN(v.yanked) FROM versions v WHERE v.repo = t.repo AND v.version = t.name) \
             FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest \
             WHERE t.repo = $1 AND t.name = $2"
        };
        let row = sqlx::query(sql)
            .bind(repo)
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let yanked: Option<i64> = r.try_get(4)?;
        Ok(Some((manifest_row(&r)?, yanked == Some(1))))
    }

    pub async fn manifest_exists(&self, repo: &str, digest: &str) -> HubResult<bool> {
        Ok(!self
            .strings(
                "SELECT digest FROM manifests WHERE repo = $1 AND digest = $2",
                &[repo, digest],
            )
            .await?
            .is_empty())
    }

    /// Deletes a manifest and every tag pointing at it; false if there was none.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> HubResult<bool> {
        self.exec(
            "DELETE FROM tags WHERE repo = $1 AND digest = $2",
            &[repo, digest],
        )
        .await?;
        Ok(self
            .exec(
                "DELETE FROM manifests WHERE repo = $1 AND digest = $2",
                &[repo, digest],
            )
            .await?
            > 0)
    }

    /// `(tag, digest)` of every version tag of `repo` (see [`crate::versions`]).
    pub async fn version_tags(&self, repo: &str) -> HubResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, digest FROM tags WHERE repo = $1")
            .bind(repo)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let tag: String = r.try_get(0)?;
            if crate::versions::is_version_tag(&tag) {
                out.push((tag, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    pub async fn delete_tag(&self, repo: &str, tag: &str) -> HubResult<bool> {
        Ok(self
            .exec(
                "DELETE FROM tags WHERE repo = $1 AND name = $2",
                &[repo, tag],
            )
            .await?
            > 0)
    }

    /// Up to `n` tag names of `repo` sorted after `last`.
    pub async fn tags(&self, repo: &str, last: &str, n: i64) -> HubResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT name FROM tags WHERE repo = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repo)
        .bind(last)
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        first_column(&rows)
    }

    /// Up to `n` repository names sorted after `last`.
    pub async fn repositories(&self, last: &str, n: i64) -> HubResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(last)
                .bind(n)
                .fetch_all(&self.pool)
                .await?;
        first_column(&rows)
    }

    /// Manifests of `repo` whose `subject` is `digest`.
    pub async fn referrers(&self, repo: &str, digest: &str) -> HubResult<Vec<ManifestRow>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, artifact_type, content FROM manifests \
             WHERE repo = $1 AND subject = $2 ORDER BY digest",
        )
        .bind(repo)
        .bind(digest)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(manifest_row).collect()
    }
}

fn manifest_row(r: &AnyRow) -> HubResult<ManifestRow> {
    Ok(ManifestRow {
        digest: r.try_get(0)?,
        media_type: r.try_get(1)?,
        artifact_type: r.try_get(2)?,
        content: r.try_get(3)?,
    })
}
