//! Who is asking, and may they? Registry clients send `Authorization: Basic user:secret`
//! where the secret is an API token or the password (oci-client falls back to Basic when
//! the `/v2/` challenge is `Basic`, and skopeo speaks Basic natively); a bare
//! `Authorization: Bearer <token>` is accepted too.

use axum::http::{header, HeaderMap};
use base64::Engine;

use crate::accounts::{self, TOKEN_PREFIX};
use crate::db::{now, Db};
use crate::error::HubResult;

/// An authenticated caller and what their credential allows.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub can_pull: bool,
    pub can_push: bool,
    /// Repository prefixes a token is limited to; empty = the user's whole namespace.
    pub namespaces: Vec<String>,
}

/// The result of reading a request's credentials.
pub enum Caller {
    Anonymous,
    User(Principal),
    /// Credentials were sent but are wrong or expired.
    Invalid,
}

pub async fn caller(db: &Db, headers: &HeaderMap) -> HubResult<Caller> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Caller::Anonymous);
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((user, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Ok(Caller::Invalid);
            };
            // Clients without credentials may still send an empty Basic header.
            if user.is_empty() && secret.is_empty() {
                return Ok(Caller::Anonymous);
            }
            basic(db, user, secret).await
        }
        "bearer" => token(db, None, rest.trim()).await,
        _ => Ok(Caller::Invalid),
    }
}

async fn basic(db: &Db, user: &str, secret: &str) -> HubResult<Caller> {
    if secret.starts_with(TOKEN_PREFIX) {
        return token(db, Some(user), secret).await;
    }
    Ok(match accounts::login(db, user, secret).await? {
        Some(user) => Caller::User(Principal {
            user,
            can_pull: true,
            can_push: true,
            namespaces: vec![],
        }),
        None => Caller::Invalid,
    })
}

async fn token(db: &Db, user: Option<&str>, secret: &str) -> HubResult<Caller> {
    let Some(t) = db.token_by_hash(&accounts::token_hash(secret)).await? else {
        return Ok(Caller::Invalid);
    };
    let expired = t.expires_at.is_some_and(|e| e <= now());
    if expired || user.is_some_and(|u| u != t.user_name) {
        return Ok(Caller::Invalid);
    }
    Ok(Caller::User(Principal {
        user: t.user_name,
        can_pull: t.can_pull,
        can_push: t.can_push,
        namespaces: t.namespaces,
    }))
}

impl Principal {
    /// Whether this caller may push into repository `repo`: it must be in their namespace
    /// (`user/…`) and inside the token's namespaces, if limited.
    pub fn may_push(&self, repo: &str) -> std::result::Result<(), String> {
        if !self.can_push {
            return Err("this token has no push scope".into());
        }
        let owner = repo.split('/').next().unwrap_or("");
        if owner != self.user || !repo.contains('/') {
            return Err(format!(
                "{repo} is not in your namespace; push to {}/{}",
                self.user,
                repo.rsplit('/').next().unwrap_or(repo)
            ));
        }
        let allowed = self.namespaces.is_empty()
            || self.namespaces.iter().any(|ns| {
                repo == ns || repo.starts_with(&format!("{}/", ns.trim_end_matches('/')))
            });
        if !allowed {
            return Err(format!(
                "this token is limited to {}",
                self.namespaces.join(", ")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Principal;

    fn p(namespaces: &[&str]) -> Principal {
        Principal {
            user: "alice".into(),
            can_pull: true,
            can_push: true,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn pushes_stay_in_the_users_namespace() {
        assert!(p(&[]).may_push("alice/snoop").is_ok());
        assert!(p(&[]).may_push("bob/snoop").is_err());
        assert!(p(&[]).may_push("alice").is_err());
        assert!(p(&[]).may_push("alicex/snoop").is_err());
        assert!(p(&["alice/snoop"]).may_push("alice/snoop").is_ok());
        assert!(p(&["alice/snoop"]).may_push("alice/other").is_err());
        assert!(p(&["alice/"]).may_push("alice/other").is_ok());
    }
}
