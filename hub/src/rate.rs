//! A fixed-window rate limiter held in memory, per hub process: enough to slow password
//! guessing, sign-up floods and publish storms from one address or account. (Behind a load
//! balancer each process counts on its own, so the effective limit scales with processes.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    window: Duration,
    max: u32,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            window,
            max,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt by `key`; false when `key` is over its limit for this window.
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() > 100_000 {
            hits.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = hits.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.max
    }
}

/// The limits the hub applies.
pub struct Limits {
    /// Login and token-minting attempts per client address.
    pub login: RateLimiter,
    /// Registrations per client address.
    pub register: RateLimiter,
    /// Manifest pushes per user.
    pub publish: RateLimiter,
}

impl Default for Limits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Limits {
            login: RateLimiter::new(20, minute),
            register: RateLimiter::new(10, minute),
            publish: RateLimiter::new(120, minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_window() {
        let r = RateLimiter::new(2, Duration::from_millis(50));
        assert!(r.allow("a") && r.allow("a"));
        assert!(!r.allow("a"));
        assert!(r.allow("b"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(r.allow("a"));
    }
}
