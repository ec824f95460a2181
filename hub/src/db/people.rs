//! People: profiles (display name, bio, links), follows and the feed of new versions from
//! the people one follows, and the admin role (admins feature and hide packages and
//! disable users; a disabled user cannot log in or publish).

use sqlx::Row;

use super::packages::package_row;
use super::search::prefixed_columns;
use super::{now, Db, PackageRow};
use crate::error::HubResult;

/// What a user says about themselves, and their role.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub name: String,
    pub display_name: String,
    pub bio: String,
    /// http(s) URLs only (checked when saved).
    pub links: Vec<String>,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// A version published by someone a user follows.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub repo: String,
    pub version: String,
    pub pushed_at: i64,
}

impl Db {
    pub async fn profile(&self, name: &str) -> HubResult<Option<Profile>> {
        let row = sqlx::query(
            "SELECT name, display_name, bio, links, is_admin, disabled, created_at \
             FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let links: String = r.try_get(3)?;
        Ok(Some(Profile {
            name: r.try_get(0)?,
            display_name: r.try_get(1)?,
            bio: r.try_get(2)?,
            links: serde_json::from_str(&links).unwrap_or_default(),
            is_admin: r.try_get::<i64, _>(4)? != 0,
            disabled: r.try_get::<i64, _>(5)? != 0,
            created_at: r.try_get(6)?,
        }))
    }

    pub async fn save_profile(
        &self,
        name: &str,
        display_name: &str,
        bio: &str,
        links: &[String],
    ) -> HubResult<()> {
        let links = serde_json::to_string(links).expect("strings serialize");
        self.exec(
            "UPDATE users SET display_name = $2, bio = $3, links = $4 WHERE name = $1",
            &[name, display_name, bio, &links],
        )
        .await
        .map(|_| ())
    }

    /// Sets `is_admin` or `disabled` (fixed column names, never user input); false when
    /// there is no such user.
    pub async fn set_user_flag(&self, name: &str, column: &str, on: bool) -> HubResult<bool> {
        debug_assert!(["is_admin", "disabled"].contains(&column));
        let value = i64::from(on);
        let changed = self
            .exec(
                &format!("UPDATE users SET {column} = {value} WHERE name = $1"),
                &[name],
            )
            .await?;
        if on && column == "disabled" {
            self.exec("DELETE FROM sessions WHERE user_name = $1", &[name])
                .await?;
        }
        Ok(changed > 0)
    }

    pub async fn set_password_hash(&self, name: &str, hash: &str) -> HubResult<()> {
        self.exec(
            "UPDATE users SET password_hash = $2 WHERE name = $1",
            &[name, hash],
        )
        .await
        .map(|_| ())
    }

    /// `follower` follows `followee` (or stops, with `on` false).
    pub async fn set_follow(&self, follower: &str, followee: &str, on: bool) -> HubResult<()> {
        if !on {
            self.exec(
                "DELETE FROM follows WHERE follower = $1 AND followee = $2",
                &[follower, followee],
            )
            .await?;
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO follows (follower, followee, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(follower)
        .bind(followee)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn follows(&self, follower: &str, followee: &str) -> HubResult<bool> {
        Ok(!self
            .strings(
                "SELECT follower FROM follows WHERE follower = $1 AND followee = $2",
                &[follower, followee],
            )
            .await?
            .is_empty())
    }

    /// Who follows `name`, newest first.
    pub async fn followers(&self, name: &str) -> HubResult<Vec<String>> {
        self.strings(
            "SELECT follower FROM follows WHERE followee = $1 ORDER BY created_at DESC, follower",
            &[name],
        )
        .await
    }

    /// Whom `name` follows, newest first.
    pub async fn following(&self, name: &str) -> HubResult<Vec<String>> {
        self.strings(
            "SELECT followee FROM follows WHERE follower = $1 ORDER BY created_at DESC, followee",
            &[name],
        )
        .await
    }

    /// The latest versions (not yanked, of packages not hidden) published by the people
    /// `name` follows.
    pub async fn feed(&self, name: &str, limit: i64) -> HubResult<Vec<FeedItem>> {
        let rows = sqlx::query(&format!(
            "SELECT v.repo, v.version, v.pushed_at FROM versions v \
             JOIN packages p ON p.repo = v.repo \
             JOIN follows f ON f.followee = p.owner \
             WHERE f.follower = $1 AND v.yanked = 0 AND p.hidden = 0 \
             ORDER BY v.pushed_at DESC, v.repo LIMIT {limit}"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FeedItem {
                    repo: r.try_get(0)?,
                    version: r.try_get(1)?,
                    pushed_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Every package of `owner`, hidden or not, every version yanked or not (their
    /// dashboard).
    pub async fn packages_of(&self, owner: &str) -> HubResult<Vec<PackageRow>> {
        let cols = prefixed_columns();
        let rows = sqlx::query(&format!(
            "SELECT {cols} FROM packages p WHERE p.owner = $1 ORDER BY p.repo"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(package_row).collect()
    }

    /// Listed packages ordered by their star count, most first.
    pub async fn most_starred(&self, limit: i64) -> HubResult<Vec<(PackageRow, i64)>> {
        let cols = prefixed_columns();
        let n = cols.split(", ").count();
        let rows = sqlx::query(&format!(
            "SELECT {cols}, COUNT(s.repo) AS stars FROM packages p \
             JOIN stars s ON s.repo = p.repo \
             WHERE p.latest_version <> '' AND p.hidden = 0 \
             GROUP BY {cols} ORDER BY stars DESC, p.repo LIMIT {limit}"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((package_row(r)?, r.try_get::<i64, _>(n)?)))
            .collect()
    }

    /// Every package with its `featured` and `hidden` flags (the admin page).
    pub async fn all_packages_for_admin(&self) -> HubResult<Vec<(String, bool, bool)>> {
        let rows =
            sqlx::query("SELECT repo, featured, hidden FROM packages ORDER BY repo LIMIT 1000")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get::<i64, _>(1)? != 0,
                    r.try_get::<i64, _>(2)? != 0,
                ))
            })
            .collect()
    }

    /// Every user with the `is_admin` and `disabled` flags (the admin page).
    pub async fn all_users_for_admin(&self) -> HubResult<Vec<(String, bool, bool)>> {
        let rows =
            sqlx::query("SELECT name, is_admin, disabled FROM users ORDER BY name LIMIT 1000")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get::<i64, _>(1)? != 0,
                    r.try_get::<i64, _>(2)? != 0,
                ))
            })
            .collect()
    }
}
