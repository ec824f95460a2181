//! What the web pages need beyond the index: sessions, stars, listings and search.

use sqlx::Row;

use super::packages::{package_row, PACKAGE_COLUMNS};
use super::{now, Backend, Db, PackageRow};
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
        let row =
            sqlx::query("SELECT user_name FROM sessions WHERE id_hash = $1 AND expires_at > $2")
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
            return Ok(false);
        }
        sqlx::query("INSERT INTO stars (user_name, repo, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(user)
            .bind(repo)
            .bind(now())
            .execute(&self.pool)
            .await
            ?;
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

    /// Keeps the SQLite search table in step with a package row (Postgres derives its
    /// search column from the row itself).
    pub async fn reindex_search(&self, p: &PackageRow) -> HubResult<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        self.exec("DELETE FROM packages_fts WHERE repo = $1", &[&p.repo])
            .await?;
        let keywords = p.keywords.join(" ");
        self.exec(
            "INSERT INTO packages_fts (repo, name, description, keywords) VALUES ($1, $2, $3, $4)",
            &[&p.repo, &p.name, &p.description, &keywords],
        )
        .await?;
        Ok(())
    }

    /// Packages matching every word of `query` (prefixes count), best first: name matches
    /// outrank keyword matches, which outrank description matches.
    pub async fn search(&self, query: &str, limit: i64, offset: i64) -> HubResult<Vec<PackageRow>> {
        let words = search_words(query);
        if words.is_empty() {
            return Ok(vec![]);
        }
        let (sql, arg) = match self.backend {
            Backend::Sqlite => {
                let cols = PACKAGE_COLUMNS
                    .replace(", ", ", p.")
                    .replacen("repo", "p.repo", 1);
                let matcher = words
                    .iter()
                    .map(|w| format!("\"{w}\"*"))
                    .collect::<Vec<_>>()
                    .join(" ");
                (
                    format!(
                        "SELECT {cols} FROM packages_fts f JOIN packages p ON p.repo = f.repo \
                         WHERE packages_fts MATCH $1 AND p.latest_version <> '' \
                         ORDER BY bm25(packages_fts, 0.0, 10.0, 1.0, 4.0), p.downloads DESC \
                         LIMIT {limit} OFFSET {offset}"
                    ),
                    matcher,
                )
            }
            Backend::Postgres => {
                let matcher = words
                    .iter()
                    .map(|w| format!("{w}:*"))
                    .collect::<Vec<_>>()
                    .join(" & ");
                (
                    format!(
                        "SELECT {PACKAGE_COLUMNS} FROM packages \
                         WHERE search @@ to_tsquery('simple', $1) AND latest_version <> '' \
                         ORDER BY ts_rank(search, to_tsquery('simple', $1)) DESC, downloads DESC \
                         LIMIT {limit} OFFSET {offset}"
                    ),
                    matcher,
                )
            }
        };
        let rows = sqlx::query(&sql).bind(arg).fetch_all(&self.pool).await?;
        rows.iter().map(package_row).collect()
    }
}

/// Lowercase alphanumeric words: anything else could be query syntax, so it is dropped.
pub fn search_words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(|w| w.to_ascii_lowercase())
        .collect()
}
