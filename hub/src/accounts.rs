//! Accounts: user names, argon2id password hashes, and API tokens (random secrets shown
//! once, stored as SHA-256, scoped to pull/push and namespaces, with an expiry).
//!
//! argon2 is slow on purpose (~tens of ms of CPU), so it never runs on the async workers:
//! [`hash_password`] and [`verify_password`] run on Tokio's blocking pool, at most one per
//! core at a time, so a flood of wrong passwords queues there instead of stalling pulls.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::blobs::random_id;
use crate::db::{now, Db, TokenRow};
use crate::error::{HubError, HubResult};

/// Every API token starts with this, so it is recognisable in a password field and in leaks.
pub const TOKEN_PREFIX: &str = "cehub_";

/// Names that would impersonate the hub or collide with its paths (`/api`, `/v2`, `/u/…`).
pub const RESERVED_NAMES: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "api",
    "v1",
    "v2",
    "hub",
    "www",
    "web",
    "static",
    "assets",
    "login",
    "logout",
    "register",
    "signup",
    "tokens",
    "search",
    "about",
    "help",
    "support",
    "security",
    "official",
    "system",
    "staff",
    "moderator",
    "owner",
    "null",
    "undefined",
    "anonymous",
    "cargo-ebpf",
    "ebpf",
    "library",
    "docs",
    "status",
    "mail",
];

/// A user name is one repository path component: `[a-z0-9]+(-[a-z0-9]+)*`, 2 to 39 chars.
pub fn valid_user_name(name: &str) -> bool {
    (2..=39).contains(&name.len())
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// At most one argon2 computation per core at a time.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
static HASHING_READY: std::sync::Once = std::sync::Once::new();

/// Runs `work` (an argon2 computation) on the blocking pool, bounded by [`HASHING`].
async fn on_hash_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> HubResult<T> {
    HASHING_READY.call_once(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        HASHING.add_permits(cores);
    });
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| HubError::internal(format!("the hashing pool closed: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(HubError::internal)
}

pub async fn hash_password(password: &str) -> HubResult<String> {
    let password = password.to_string();
    on_hash_pool(move || hash_password_now(&password)).await?
}

pub async fn verify_password(password: &str, hash: &str) -> HubResult<bool> {
    let (password, hash) = (password.to_string(), hash.to_string());
    on_hash_pool(move || verify_password_now(&password, &hash)).await
}

fn hash_password_now(password: &str) -> HubResult<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes of salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HubError::internal(format!("password hashing failed: {e}")))
}

fn verify_password_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

pub fn token_hash(secret: &str) -> String {
    ebpf_package::digest::sha256(secret.as_bytes())
}

/// Creates an account; a refusal (400) says why in words for the user.
pub async fn register(db: &Db, name: &str, email: &str, password: &str) -> HubResult<()> {
    if !valid_user_name(name) {
        return Err(HubError::refused(
            "user names are 2-39 lowercase letters, digits and single dashes",
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(HubError::refused(format!(
            "the name {name} is reserved; pick another"
        )));
    }
    if password.len() < 8 {
        return Err(HubError::refused("passwords need at least 8 characters"));
    }
    let hash = hash_password(password).await?;
    match db.add_user(name, email, &hash).await? {
        true => Ok(()),
        false => Err(HubError::refused(format!("the name {name} is taken"))),
    }
}

/// Checks a user's password; returns the user's name when it matches.
pub async fn login(db: &Db, name: &str, password: &str) -> HubResult<Option<String>> {
    let Some(user) = db.user(name).await? else {
        // Spend the same time as a real check so timing does not reveal which names exist.
        let _ = verify_password(password, DUMMY_HASH).await?;
        return Ok(None);
    };
    let matches = verify_password(password, &user.password_hash).await?;
    if matches && db.profile(name).await?.is_some_and(|p| p.disabled) {
        return Err(HubError::denied(
            "this account is disabled by the hub's admins; ask them (see /about)",
        ));
    }
    Ok(matches.then_some(user.name))
}

/// Changes `name`'s password after checking the current one.
pub async fn change_password(db: &Db, name: &str, current: &str, new: &str) -> HubResult<()> {
    if login(db, name, current).await?.is_none() {
        return Err(HubError::refused("the current password is wrong"));
    }
    if new.len() < 8 {
        return Err(HubError::refused("passwords need at least 8 characters"));
    }
    db.set_password_hash(name, &hash_password(new).await?).await
}

const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZnVzEhBTEJiqS8ZD1EKcNQwlg9qtr5gpNO/oCZIhrKM";

/// What a new token may do.
pub struct TokenRequest {
    pub label: String,
    pub can_pull: bool,
    pub can_push: bool,
    /// Repository prefixes inside the user's namespace; empty means all of it.
    pub namespaces: Vec<String>,
    pub expires_in_days: Option<i64>,
}

/// Creates a token for `user`; returns the row and the secret, which is never stored. A
/// refusal (400) says why in words for the user.
pub async fn create_token(db: &Db, user: &str, req: TokenRequest) -> HubResult<(TokenRow, String)> {
    for ns in &req.namespaces {
        let inside = ns == user || ns.starts_with(&format!("{user}/"));
        if !inside {
            return Err(HubError::refused(format!(
                "namespace {ns} is not inside your namespace {user}/"
            )));
        }
    }
    if !req.can_pull && !req.can_push {
        return Err(HubError::refused(
            "a token needs the pull or the push scope",
        ));
    }
    let days = req.expires_in_days.unwrap_or(90);
    if !(1..=3650).contains(&days) {
        return Err(HubError::refused("tokens expire after 1 to 3650 days"));
    }
    let secret = format!("{TOKEN_PREFIX}{}{}", random_id(), random_id());
    let row = TokenRow {
        id: random_id()[..12].to_string(),
        user_name: user.to_string(),
        label: req.label,
        can_pull: req.can_pull,
        can_push: req.can_push,
        namespaces: req.namespaces,
        expires_at: Some(now() + days * 86_400),
        created_at: now(),
    };
    db.add_token(&row, &token_hash(&secret)).await?;
    Ok((row, secret))
}
