//! Users and API tokens. Hashing happens in `crate::accounts`; this file only stores.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now, Db};
use crate::error::HubResult;

pub struct UserRow {
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
}

pub struct TokenRow {
    pub id: String,
    pub user_name: String,
    pub label: String,
    pub can_pull: bool,
    pub can_push: bool,
    pub namespaces: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

const TOKEN_COLUMNS: &str =
    "id, user_name, label, can_pull, can_push, namespaces, expires_at, created_at";

impl Db {
    /// Creates a user; false if the name is taken.
    pub async fn add_user(&self, name: &str, email: &str, password_hash: &str) -> HubResult<bool> {
        let done = sqlx::query(
            "INSERT INTO users (name, email, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(email)
        .bind(password_hash)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn user(&self, name: &str) -> HubResult<Option<UserRow>> {
        let row =
            sqlx::query("SELECT name, email, password_hash, created_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| -> HubResult<UserRow> {
            Ok(UserRow {
                name: r.try_get(0)?,
                email: r.try_get(1)?,
                password_hash: r.try_get(2)?,
                created_at: r.try_get(3)?,
            })
        })
        .transpose()
    }

    pub async fn add_token(&self, t: &TokenRow, token_hash: &str) -> HubResult<()> {
        let namespaces = serde_json::to_string(&t.namespaces).expect("strings serialize");
        sqlx::query(
            "INSERT INTO api_tokens (id, user_name, label, token_hash, can_pull, can_push, \
             namespaces, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&t.id)
        .bind(&t.user_name)
        .bind(&t.label)
        .bind(token_hash)
        .bind(t.can_pull as i64)
        .bind(t.can_push as i64)
        .bind(namespaces)
        .bind(t.expires_at)
        .bind(t.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn token_by_hash(&self, token_hash: &str) -> HubResult<Option<TokenRow>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 \
             AND user_name NOT IN (SELECT name FROM users WHERE disabled = 1)"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token_row(&r)).transpose()
    }

    pub async fn tokens_of(&self, user: &str) -> HubResult<Vec<TokenRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_name = $1 ORDER BY created_at, id"
        ))
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_row).collect()
    }

    pub async fn delete_token(&self, user: &str, id: &str) -> HubResult<bool> {
        Ok(self
            .exec(
                "DELETE FROM api_tokens WHERE user_name = $1 AND id = $2",
                &[user, id],
            )
            .await?
            > 0)
    }
}

fn token_row(r: &AnyRow) -> HubResult<TokenRow> {
    let namespaces: String = r.try_get(5)?;
    Ok(TokenRow {
        id: r.try_get(0)?,
        user_name: r.try_get(1)?,
        label: r.try_get(2)?,
        can_pull: r.try_get::<i64, _>(3)? != 0,
        can_push: r.try_get::<i64, _>(4)? != 0,
        namespaces: serde_json::from_str(&namespaces).unwrap_or_default(),
        expires_at: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}
