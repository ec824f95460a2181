//! What the store's pages need beyond search: downloads per day for the chart, the flags an
//! owner or admin sets on a package (deprecated, hidden, featured), and the hub's counts.

use sqlx::Row;

use super::{now, Db};
use crate::error::HubResult;

/// What owners and admins set on a package.
#[derive(Debug, Clone, Default)]
pub struct PackageFlags {
    /// The deprecation message; empty when not deprecated.
    pub deprecated: String,
    pub hidden: bool,
    pub featured: bool,
}

/// How big the hub is, for the home page.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub packages: i64,
    pub publishers: i64,
    pub pulls: i64,
}

impl Db {
    /// Counts one pull of `repo` on today's row (UTC days), for the downloads chart.
    pub async fn count_download_day(&self, repo: &str) -> HubResult<()> {
        sqlx::query(
            "INSERT INTO download_days (repo, day, count) VALUES ($1, $2, 1) \
             ON CONFLICT (repo, day) DO UPDATE SET count = download_days.count + 1",
        )
        .bind(repo)
        .bind(now().div_euclid(86_400))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pulls of `repo` on each of the last `days` days, oldest first (today last).
    pub async fn downloads_by_day(&self, repo: &str, days: i64) -> HubResult<Vec<i64>> {
        let today = now().div_euclid(86_400);
        let first = today - days + 1;
        let rows = sqlx::query(
            "SELECT day, count FROM download_days WHERE repo = $1 AND day >= $2 AND day <= $3",
        )
        .bind(repo)
        .bind(first)
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![0; days.max(0) as usize];
        for r in rows {
            let day: i64 = r.try_get(0)?;
            out[(day - first) as usize] = r.try_get(1)?;
        }
        Ok(out)
    }

    pub async fn package_flags(&self, repo: &str) -> HubResult<PackageFlags> {
        let row = sqlx::query("SELECT deprecated, hidden, featured FROM packages WHERE repo = $1")
            .bind(repo)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else {
            return Ok(PackageFlags::default());
        };
        Ok(PackageFlags {
            deprecated: r.try_get(0)?,
            hidden: r.try_get::<i64, _>(1)? != 0,
            featured: r.try_get::<i64, _>(2)? != 0,
        })
    }

    /// Deprecates `repo` with `message`, or undeprecates it with an empty one.
    pub async fn set_deprecated(&self, repo: &str, message: &str) -> HubResult<()> {
        self.exec(
            "UPDATE packages SET deprecated = $2 WHERE repo = $1",
            &[repo, message],
        )
        .await
        .map(|_| ())
    }

    /// Sets the flag `column` (`hidden` or `featured`, never user input) of `repo`.
    pub async fn set_package_flag(&self, repo: &str, column: &str, on: bool) -> HubResult<bool> {
        debug_assert!(["hidden", "featured"].contains(&column));
        let value = i64::from(on).to_string();
        let changed = self
            .exec(
                &format!("UPDATE packages SET {column} = {value} WHERE repo = $1"),
                &[repo],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Rewrites the description and keywords of `repo` (the owner's edit on the dashboard).
    pub async fn edit_package(
        &self,
        repo: &str,
        description: &str,
        keywords: &[String],
    ) -> HubResult<()> {
        let keywords = serde_json::to_string(keywords).expect("strings serialize");
        self.exec(
            "UPDATE packages SET description = $2, keywords = $3 WHERE repo = $1",
            &[repo, description, &keywords],
        )
        .await?;
        self.refresh_search(repo).await
    }

    pub async fn counts(&self) -> HubResult<Counts> {
        let r = sqlx::query(
            "SELECT COUNT(*), COUNT(DISTINCT owner), CAST(COALESCE(SUM(downloads), 0) AS BIGINT) FROM packages \
             WHERE latest_version <> '' AND hidden = 0",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Counts {
            packages: r.try_get(0)?,
            publishers: r.try_get(1)?,
            pulls: r.try_get(2)?,
        })
    }
}
