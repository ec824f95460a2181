//! Kernel matrices the hub verified (see [`crate::attestations`]): stored per tested
//! manifest, read for version pages and the "loads on kernel ≥ X" search filter.

use sqlx::Row;

use super::{now, Db};
use crate::error::HubResult;

/// A verified matrix: its JSON, the key that signed it, and the series it loads from.
#[derive(Debug, Clone)]
pub struct MatrixRow {
    pub subject_digest: String,
    pub fingerprint: String,
    pub key_owner: String,
    pub matrix: String,
    pub loads_from: Option<i64>,
}

impl Db {
    pub async fn record_kernel_matrix(&self, repo: &str, m: &MatrixRow) -> HubResult<()> {
        sqlx::query("DELETE FROM kernel_matrices WHERE repo = $1 AND subject_digest = $2")
            .bind(repo)
            .bind(&m.subject_digest)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO kernel_matrices (repo, subject_digest, fingerprint, key_owner, matrix, \
             loads_from, verified_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(repo)
        .bind(&m.subject_digest)
        .bind(&m.fingerprint)
        .bind(&m.key_owner)
        .bind(&m.matrix)
        .bind(m.loads_from)
        .bind(now())
        .execute(&self.pool)
        .await?;
        // The "loads on kernel ≥ X" search filter reads it from the package row.
        self.refresh_package_flags(repo).await
    }

    /// The verified matrix of one of `digests` (a version's manifest or index), if any.
    pub async fn kernel_matrix(&self, repo: &str, digest: &str) -> HubResult<Option<MatrixRow>> {
        let row = sqlx::query(
            "SELECT subject_digest, fingerprint, key_owner, matrix, loads_from \
             FROM kernel_matrices WHERE repo = $1 AND subject_digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(MatrixRow {
                subject_digest: r.try_get(0)?,
                fingerprint: r.try_get(1)?,
                key_owner: r.try_get(2)?,
                matrix: r.try_get(3)?,
                loads_from: r.try_get(4)?,
            }),
            None => None,
        })
    }
}
