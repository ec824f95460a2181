//! What the web pages need beyond the index: sessions, stars and listings.

use sqlx::Row;

use super::packages::{package_row, PACKAGE_COLUMNS};
use super::{now, Db, PackageRow};
use crate::error::HubResult;

impl Db {
    pub async fn add_session(&self, id_hash: &str, user: &str, expires_at: i64) -> HubResult<()> {
        sqlx::query("INSERT INTO sessions (id_hash, user_name, expires_at) VALUES ($1, $2, $3)")
            .bind(id_hash)
            .bind(user)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn session_user(&self, id_hash: &str) -> HubResult<Option<String>> {
        let row = sqlx::query(
            "SELECT s.user_name FROM sessions s JOIN users u ON u.name = s.user_name \
                 WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
        )
        .bind(id_hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    pub async fn delete_session(&self, id_hash: &str) -> HubResult<()> {
        self.exec("DELETE FROM sessions WHERE id_hash = $1", &[id_hash])
            .await
            .map(|_| ())
    }

    /// Stars or unstars `repo` for `user`; returns whether it is starred now.
    pub async fn toggle_star(&self, user: &str, repo: &str) -> HubResult<bool> {
        if self
            .exec(
                "DELETE FROM stars WHERE user_name = $1 AND repo = $2",
                &[user, repo],
            )
            .await?
            > 0
        {
            self.refresh_package_flags(repo).await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO stars (user_name, repo, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(user)
            .bind(repo)
            .bind(now())
            .execute(&self.pool)
            .await
            ?;
        // Search sorts by the count on the package row.
        self.refresh_package_flags(repo).await?;
        Ok(true)
    }

    pub async fn is_starred(&self, user: &str, repo: &str) -> HubResult<bool> {
        Ok(!self
            .strings(
                "SELECT repo FROM stars WHERE user_name = $1 AND repo = $2",
                &[user, repo],
            )
            .await?
            .is_empty())
    }

    pub async fn star_count(&self, repo: &str) -> HubResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM stars WHERE repo = $1")
            .bind(repo)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    pub async fn starred_by(&self, user: &str) -> HubResult<Vec<PackageRow>> {
        let cols = PACKAGE_COLUMNS
            .replace(", ", ", p.")
            .replacen("repo", "p.repo", 1);
        let rows = sqlx::query(&format!(
            "SELECT {cols} FROM packages p JOIN stars s ON s.repo = p.repo \
             WHERE s.user_name = $1 ORDER BY s.created_at DESC"
        ))
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(package_row).collect()
    }
}
