//! Who is asking, and may they? Registry clients send `Authorization: Basic user:secret`
//! where the secret is an API token or the password (oci-client falls back to Basic when
//! the `/v2/` challenge is `Basic`, and skopeo speaks Basic natively); a bare
//! `Authorization: Bearer <token>` is accepted too.
//!
//! A password costs an argon2 check, so password checks are rate limited per account and
//! per client address ([`crate::rate`]) and a verified password is remembered for a few
//! minutes ([`VerifiedCache`]): a client that sends its password on every request of a
//! pull pays argon2 once, not per request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine;

use crate::accounts::{self, TOKEN_PREFIX};
use crate::db::{now, Db};
use crate::error::{HubError, HubResult};
use crate::AppState;

/// The client's address, when the request came over a socket (in-process calls have none).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(peer(&parts.extensions, &parts.headers)))
    }
}

/// The socket's address, or, when that is a proxy on this host (loopback), the address the
/// proxy appended last to `X-Forwarded-For`: behind a local load balancer every client would
/// otherwise share its address and its rate limits.
pub fn peer(ext: &axum::http::Extensions, headers: &HeaderMap) -> Option<IpAddr> {
    let socket = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    if !socket.is_loopback() {
        return Some(socket);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back();
    Some(forwarded.unwrap_or(socket))
}

/// Passwords verified recently, keyed by a salted hash of user, password and the account's
/// stored password hash (the password itself is never kept), so repeated requests skip
/// argon2 — and a password change (on any replica: the stored hash is in the shared
/// database) makes the old entries useless at once.
pub struct VerifiedCache {
    salt: [u8; 32],
    entries: Mutex<HashMap<String, Instant>>,
}

/// How long a verified password is trusted without a new argon2 check.
const VERIFIED_FOR: Duration = Duration::from_secs(300);
const VERIFIED_MAX_ENTRIES: usize = 10_000;

impl Default for VerifiedCache {
    fn default() -> Self {
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).expect("the OS random source");
        VerifiedCache {
            salt,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl VerifiedCache {
    fn key(&self, user: &str, password: &str, stored: &str) -> String {
        let mut data = self.salt.to_vec();
        for part in [user, password, stored] {
            data.extend_from_slice(part.as_bytes());
            data.push(0);
        }
        ebpf_package::digest::sha256(&data)
    }

    fn contains(&self, user: &str, password: &str, stored: &str) -> bool {
        let key = self.key(user, password, stored);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&key)
            .is_some_and(|t| t.elapsed() < VERIFIED_FOR)
    }

    fn insert(&self, user: &str, password: &str, stored: &str) {
        let key = self.key(user, password, stored);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= VERIFIED_MAX_ENTRIES {
            entries.retain(|_, t| t.elapsed() < VERIFIED_FOR);
            if entries.len() >= VERIFIED_MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Instant::now());
    }
}

/// Checks `user`'s password, through the cache and the rate limits; Ok(None) if it is wrong,
/// a 429 when this account or address has guessed too often.
pub async fn check_password(
    app: &AppState,
    peer: Option<IpAddr>,
    user: &str,
    password: &str,
) -> HubResult<Option<String>> {
    // The stored hash ties a cached check to the current password; a disabled account is
    // refused even with a cached one.
    let stored = app
        .db
        .user(user)
        .await?
        .map(|u| u.password_hash)
        .unwrap_or_default();
    if !stored.is_empty() && app.verified.contains(user, password, &stored) {
        if app.db.profile(user).await?.is_some_and(|p| p.disabled) {
            return Err(HubError::denied(
                "this account is disabled by the hub's admins; ask them (see /about)",
            ));
        }
        return Ok(Some(user.to_string()));
    }
    if !crate::rate::allow_password_check(&app.limits, &app.db, user, peer).await? {
        return Err(HubError::too_many_requests(
            "too many password attempts for this account or from this address; wait a few \
             minutes, or use an API token (tokens are not limited)",
        ));
    }
    let found = accounts::login(&app.db, user, password).await?;
    if found.is_some() && !stored.is_empty() {
        app.verified.insert(user, password, &stored);
    }
    Ok(found)
}

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

pub async fn caller(
    app: &AppState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> HubResult<Caller> {
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
            basic(app, peer, user, secret).await
        }
        "bearer" => token(&app.db, None, rest.trim()).await,
        _ => Ok(Caller::Invalid),
    }
}

async fn basic(
    app: &AppState,
    peer: Option<IpAddr>,
    user: &str,
    secret: &str,
) -> HubResult<Caller> {
    if secret.starts_with(TOKEN_PREFIX) {
        return token(&app.db, Some(user), secret).await;
    }
    Ok(match check_password(app, peer, user, secret).await? {
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
