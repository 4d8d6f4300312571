//! Failed-login throttling, per username and per client address, so password
//! guessing is slow whether it aims at one account or sprays many.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_user: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_user: 5,
            per_address: 30,
            window: Duration::from_secs(300),
        }
    }
}

/// Bounds memory when someone sprays usernames or addresses.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug, Default)]
pub struct LoginLimiter {
    limits: Limits,
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> Self {
        LoginLimiter {
            limits,
            windows: Mutex::default(),
        }
    }

    /// `Some(seconds)` to wait when either key is locked out.
    pub fn check(&self, user: &str, address: &str) -> Option<u64> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap();
        let locked = |key: String, max: u32| {
            windows.get(&key).and_then(|w| {
                let end = w.started + self.limits.window;
                (w.failures >= max && end > now).then(|| (end - now).as_secs().max(1))
            })
        };
        let a = locked(user_key(user), self.limits.per_user);
        let b = locked(format!("a:{address}"), self.limits.per_address);
        a.max(b)
    }

    pub fn record_failure(&self, user: &str, address: &str) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap();
        if windows.len() >= MAX_KEYS {
            let window = self.limits.window;
            windows.retain(|_, w| w.started + window > now);
        }
        for key in [user_key(user), format!("a:{address}")] {
            let w = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if w.started + self.limits.window <= now {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures += 1;
        }
    }

    /// A successful login clears the user's count (not the address's: one
    /// good password must not reset a spray from the same address).
    pub fn record_success(&self, user: &str) {
        self.windows.lock().unwrap().remove(&user_key(user));
    }
}

fn user_key(user: &str) -> String {
    format!("u:{}", user.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_a_user_after_the_limit_and_reports_the_wait() {
        let l = LoginLimiter::new(Limits {
            per_user: 3,
            per_address: 100,
            window: Duration::from_secs(60),
        });
        for _ in 0..3 {
            assert_eq!(l.check("bob", "1.2.3.4"), None);
            l.record_failure("bob", "1.2.3.4");
        }
        let wait = l.check("bob", "5.6.7.8").expect("locked");
        assert!(wait > 0 && wait <= 60);
        assert_eq!(l.check("alice", "1.2.3.4"), None);
    }

    #[test]
    fn locks_an_address_spraying_many_users() {
        let l = LoginLimiter::new(Limits {
            per_user: 100,
            per_address: 4,
            window: Duration::from_secs(60),
        });
        for i in 0..4 {
            l.record_failure(&format!("user{i}"), "9.9.9.9");
        }
        assert!(l.check("someone-else", "9.9.9.9").is_some());
        assert!(l.check("someone-else", "1.1.1.1").is_none());
    }

    #[test]
    fn the_window_expires() {
        let l = LoginLimiter::new(Limits {
            per_user: 1,
            per_address: 100,
            window: Duration::from_millis(30),
        });
        l.record_failure("bob", "a");
        assert!(l.check("bob", "a").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(l.check("bob", "a").is_none());
    }
}
