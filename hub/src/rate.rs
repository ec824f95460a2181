//! Fixed-window rate limits whose counts live in the database, so several hub processes
//! behind one load balancer share them (a per-process count would multiply the limit by
//! the number of replicas). Each hit is one atomic upsert (`Db::rate_hit`).
//!
//! Password checks are limited per account and per client address, so neither many
//! addresses against one account nor one address against many accounts gets far.
//!
//! A subject that has used up its limit stays refused until its window ends (counts only
//! grow within a window), so each process remembers those ([`Spent`]) and refuses them
//! without the database: a client pulling in a loop costs one upsert a day, not one per
//! pull.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::db::{now, Db};
use crate::error::HubResult;

/// At most `max` hits per `window_secs` for one subject.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Keeps the counters of different limits apart.
    pub name: &'static str,
    pub max: i64,
    pub window_secs: i64,
}

impl Limit {
    /// Counts one hit by `subject`; false when it is over the limit in this window.
    pub async fn allow(&self, db: &Db, subject: &str) -> HubResult<bool> {
        Ok(self.hit(db, subject).await? <= self.max)
    }

    /// Counts one hit by `subject` and returns how many it made in this window.
    pub async fn hit(&self, db: &Db, subject: &str) -> HubResult<i64> {
        let (key, until) = self.window_key(subject);
        db.rate_hit(&key, until).await
    }

    /// The counter's key for `subject` in the current window, and when the window ends.
    fn window_key(&self, subject: &str) -> (String, i64) {
        let window = now().div_euclid(self.window_secs);
        let key = format!("{}:{subject}:{window}", self.name);
        (key, (window + 1) * self.window_secs)
    }
}

/// Counter keys (limit, subject, window) known to be at their limit, with the end of their
/// window: a hit on one of them is refused without asking the database.
#[derive(Debug, Default)]
pub struct Spent {
    keys: Mutex<HashMap<String, i64>>,
}

/// Most keys remembered; past it expired ones are dropped, then all (the database still
/// holds the counts, so forgetting only costs an upsert).
const SPENT_MAX_KEYS: usize = 100_000;

impl Spent {
    fn contains(&self, key: &str) -> bool {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(key).is_some_and(|until| *until > now())
    }

    fn insert(&self, key: String, until: i64) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= SPENT_MAX_KEYS {
            let t = now();
            keys.retain(|_, until| *until > t);
            if keys.len() >= SPENT_MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert(key, until);
    }
}

/// The limits the hub applies.
#[derive(Debug)]
pub struct Limits {
    /// Password checks (argon2) per account: guesses against one user from anywhere.
    pub login_account: Limit,
    /// Password checks per client address: one client guessing many users.
    pub login_address: Limit,
    /// Registrations per client address (web form and API alike).
    pub register: Limit,
    /// Manifest pushes per user.
    pub publish: Limit,
    /// A download is counted once per address, version and window.
    pub download: Limit,
    /// Subjects this process saw use up a limit ([`Limits::allow_once`]).
    pub spent: Spent,
}

impl Limits {
    /// Whether `subject` already used up `limit` in this window, as far as this process
    /// knows (no database access; false means "ask").
    pub fn already_counted(&self, limit: &Limit, subject: &str) -> bool {
        self.spent.contains(&limit.window_key(subject).0)
    }

    /// [`Limit::allow`], remembering a subject that reached the limit so its next hits in
    /// the window are refused by [`Limits::already_counted`] without the database.
    pub async fn allow_once(&self, limit: &Limit, db: &Db, subject: &str) -> HubResult<bool> {
        let (key, until) = limit.window_key(subject);
        if self.spent.contains(&key) {
            return Ok(false);
        }
        let hits = db.rate_hit(&key, until).await?;
        if hits >= limit.max {
            self.spent.insert(key, until);
        }
        Ok(hits <= limit.max)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_account: Limit {
                name: "login-user",
                max: 10,
                window_secs: 300,
            },
            login_address: Limit {
                name: "login-addr",
                max: 20,
                window_secs: 300,
            },
            register: Limit {
                name: "register",
                max: 10,
                window_secs: 3600,
            },
            publish: Limit {
                name: "publish",
                max: 120,
                window_secs: 60,
            },
            download: Limit {
                name: "download",
                max: 1,
                window_secs: 86_400,
            },
            spent: Spent::default(),
        }
    }
}

/// The subject a client address is counted under: IPv6 clients by their /64, since one
/// host usually holds a whole /64.
pub fn address(peer: Option<IpAddr>) -> String {
    match peer {
        Some(IpAddr::V4(a)) => a.to_string(),
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        // In-process callers (tests, tools) without a socket share one bucket.
        None => "local".into(),
    }
}

/// Whether a password check for `user` from `peer` may go ahead (counts one hit on each).
pub async fn allow_password_check(
    limits: &Limits,
    db: &Db,
    user: &str,
    peer: Option<IpAddr>,
) -> HubResult<bool> {
    let by_user = limits.login_account.allow(db, user).await?;
    let by_address = limits.login_address.allow(db, &address(peer)).await?;
    Ok(by_user && by_address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address(Some(a)), address(Some(b)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address(Some(mapped)), "10.0.0.1");
        assert_eq!(address(None), "local");
    }

    #[tokio::test]
    async fn counts_are_shared_through_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let a = Db::open(dir.path(), None).await.unwrap();
        let b = Db::open(dir.path(), None).await.unwrap();
        let limit = Limit {
            name: "t",
            max: 3,
            window_secs: 3600,
        };
        assert!(limit.allow(&a, "x").await.unwrap());
        assert!(limit.allow(&b, "x").await.unwrap());
        assert!(limit.allow(&a, "x").await.unwrap());
        assert!(!limit.allow(&b, "x").await.unwrap());
        assert!(limit.allow(&b, "y").await.unwrap());
    }

    #[tokio::test]
    async fn a_spent_subject_is_refused_without_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), None).await.unwrap();
        let limits = Limits::default();
        let once = limits.download;
        assert!(!limits.already_counted(&once, "x"));
        assert!(limits.allow_once(&once, &db, "x").await.unwrap());
        assert!(limits.already_counted(&once, "x"));
        assert!(!limits.already_counted(&once, "y"));
        // Refused from memory: the database's count stays at the one hit.
        assert!(!limits.allow_once(&once, &db, "x").await.unwrap());
        assert_eq!(once.hit(&db, "x").await.unwrap(), 2);
        // Another process (no memory) still learns it from the database.
        let other = Limits::default();
        assert!(!other.allow_once(&once, &db, "x").await.unwrap());
        assert!(other.already_counted(&once, "x"));
    }
}
