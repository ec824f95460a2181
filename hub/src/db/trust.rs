//! What the hub vouches for: users' registered public keys and the signatures it verified
//! against them (see [`crate::keys`] and [`crate::signatures`]).

use sqlx::Row;

use super::{now, Db};
use crate::error::HubResult;

/// A registered public key.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub user: String,
    pub fingerprint: String,
    pub label: String,
    pub pem: String,
    pub created_at: i64,
}

/// A signature the hub verified: `subject_digest` was signed by `fingerprint`, a key of
/// `key_owner`.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    pub subject_digest: String,
    pub fingerprint: String,
    pub key_owner: String,
    pub key_label: String,
}

impl Db {
    /// Adds a key; false when `user` already has it.
    pub async fn add_key(&self, k: &KeyRow) -> HubResult<bool> {
        let done = sqlx::query(
            "INSERT INTO user_keys (user_name, fingerprint, label, pem, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&k.user)
        .bind(&k.fingerprint)
        .bind(&k.label)
        .bind(&k.pem)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn keys(&self, user: &str) -> HubResult<Vec<KeyRow>> {
        let rows = sqlx::query(
            "SELECT user_name, fingerprint, label, pem, created_at FROM user_keys \
             WHERE user_name = $1 ORDER BY created_at, fingerprint",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        let key = |r: &sqlx::any::AnyRow| -> Result<KeyRow, sqlx::Error> {
            Ok(KeyRow {
                user: r.try_get(0)?,
                fingerprint: r.try_get(1)?,
                label: r.try_get(2)?,
                pem: r.try_get(3)?,
                created_at: r.try_get(4)?,
            })
        };
        Ok(rows.iter().map(key).collect::<Result<_, _>>()?)
    }

    /// Removes a key; false when `user` has no such key. Signatures it verified keep their
    /// badge: they were checked when pushed.
    pub async fn delete_key(&self, user: &str, fingerprint: &str) -> HubResult<bool> {
        Ok(self
            .exec(
                "DELETE FROM user_keys WHERE user_name = $1 AND fingerprint = $2",
                &[user, fingerprint],
            )
            .await?
            > 0)
    }

    pub async fn add_verified_signature(&self, repo: &str, s: &VerifiedSignature) -> HubResult<()> {
        sqlx::query(
            "INSERT INTO verified_signatures (repo, subject_digest, fingerprint, key_owner, \
             key_label, verified_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(repo)
        .bind(&s.subject_digest)
        .bind(&s.fingerprint)
        .bind(&s.key_owner)
        .bind(&s.key_label)
        .bind(now())
        .execute(&self.pool)
        .await?;
        // The signed badge and filter of search read it from the package row.
        self.refresh_package_flags(repo).await
    }

    /// Every verified signature in `repo`.
    pub async fn verified_signatures(&self, repo: &str) -> HubResult<Vec<VerifiedSignature>> {
        let rows = sqlx::query(
            "SELECT subject_digest, fingerprint, key_owner, key_label FROM verified_signatures \
             WHERE repo = $1 ORDER BY verified_at, fingerprint",
        )
        .bind(repo)
        .fetch_all(&self.pool)
        .await?;
        let sig = |r: &sqlx::any::AnyRow| -> Result<VerifiedSignature, sqlx::Error> {
            Ok(VerifiedSignature {
                subject_digest: r.try_get(0)?,
                fingerprint: r.try_get(1)?,
                key_owner: r.try_get(2)?,
                key_label: r.try_get(3)?,
            })
        };
        Ok(rows.iter().map(sig).collect::<Result<_, _>>()?)
    }
}
