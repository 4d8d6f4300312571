//! Where each component's ready replicas listen. The runtime publishes a
//! component's replica addresses here whenever they change (a rolling deploy
//! swaps the whole list in one step); the gateway's routes hold the same
//! `Upstream`, so traffic follows at once without rebuilding any route table.
//!
//! Balancing lives here too: the state it needs (connections in flight,
//! ejection, idle upstream connections) belongs to the replica and must
//! survive both replica-list changes and route-table swaps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::pool::{Pool, Sender, UpConn};
use crate::api::Balance;

/// First ejection after a refused connection; doubles per consecutive failure.
const EJECT_BASE_MS: u64 = 2_000;
const EJECT_MAX_MS: u64 = 30_000;

/// One replica as the gateway sees it, with the balancing state that must
/// survive a change of the replica list (connections in flight, ejection).
#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    /// Requests or connections in flight, for least-connections.
    pub active: AtomicUsize,
    /// Unix ms until which the backend is skipped after refusing a connection.
    pub ejected_until: AtomicU64,
    /// Consecutive refused connections, for the ejection backoff.
    failures: AtomicU32,
    /// Idle keep-alive connections to this replica: hyper's (for requests
    /// that came over HTTP/2) and the fast path's.
    pub(crate) pool: Pool<Sender>,
    pub(crate) raw: Pool<UpConn>,
}

impl Backend {
    fn new(addr: SocketAddr) -> Self {
        Backend {
            addr,
            active: AtomicUsize::new(0),
            ejected_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            pool: Pool::default(),
            raw: Pool::default(),
        }
    }

    /// Whether the backend is in its ejection period. `now` is read lazily:
    /// most backends were never ejected and cost no clock read.
    fn is_ejected(&self, now: &mut Option<u64>) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        until > *now.get_or_insert_with(now_ms)
    }

    /// Records a refused (or timed-out) connection: skip this backend for a
    /// while, longer each time it fails again right after coming back.
    pub(crate) fn eject(&self) {
        let now = now_ms();
        // Concurrent failures during one ejection count once.
        if self.ejected_until.load(Ordering::Relaxed) > now {
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed).min(10);
        let ms = (EJECT_BASE_MS << n).min(EJECT_MAX_MS);
        self.ejected_until.store(now + ms, Ordering::Relaxed);
        self.pool.clear();
        self.raw.clear();
        tracing::debug!(backend = %self.addr, ms, "backend ejected");
    }

    /// Records a successful connection, ending the backoff.
    pub(crate) fn succeeded(&self) {
        // Read first: the hot path should not write a shared cache line.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.ejected_until.store(0, Ordering::Relaxed);
        }
    }
}

/// Counts a request or connection as in flight on a backend until dropped.
#[derive(Debug)]
pub(crate) struct ActiveGuard(pub(crate) Arc<Backend>);

impl ActiveGuard {
    pub(crate) fn new(backend: Arc<Backend>) -> Self {
        backend.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(backend)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The ready replicas of one component.
#[derive(Debug, Default)]
pub struct Upstream {
    backends: RwLock<Arc<Vec<Arc<Backend>>>>,
    /// Round-robin cursor.
    pub next: AtomicUsize,
}

impl Upstream {
    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.backends
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the replica list, keeping the state of replicas that stay.
    pub fn set(&self, addrs: &[SocketAddr]) {
        let mut guard = self.backends.write().unwrap_or_else(|e| e.into_inner());
        let fresh = addrs
            .iter()
            .map(|a| {
                guard
                    .iter()
                    .find(|b| b.addr == *a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Backend::new(*a)))
            })
            .collect();
        *guard = Arc::new(fresh);
    }

    /// Chooses a backend for a new request or connection, never `exclude`
    /// (the one that just refused). Ejected backends are skipped while
    /// another is available; when all are ejected they are tried anyway,
    /// since ejection is only a hint.
    pub(crate) fn pick(&self, balance: Balance, exclude: Option<&Backend>) -> Option<Arc<Backend>> {
        let list = self.backends();
        let n = list.len();
        if n == 0 {
            return None;
        }
        let excluded = |b: &Backend| exclude.is_some_and(|x| std::ptr::eq(x, b));
        if n == 1 {
            let b = &list[0];
            return (!excluded(b)).then(|| b.clone());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut now = None;
        let mut fallback = None;
        match balance {
            Balance::RoundRobin => {
                for i in 0..n {
                    let b = &list[(start + i) % n];
                    if excluded(b) {
                        continue;
                    }
                    if !b.is_ejected(&mut now) {
                        return Some(b.clone());
                    }
                    fallback.get_or_insert(b);
                }
            }
            Balance::LeastConnections => {
                let mut best: Option<(&Arc<Backend>, usize)> = None;
                for i in 0..n {
                    let b = &list[(start + i) % n];
                    if excluded(b) {
                        continue;
                    }
                    if b.is_ejected(&mut now) {
                        fallback.get_or_insert(b);
                        continue;
                    }
                    let active = b.active.load(Ordering::Relaxed);
                    if best.is_none_or(|(_, a)| active < a) {
                        best = Some((b, active));
                    }
                }
                if let Some((b, _)) = best {
                    return Some(b.clone());
                }
            }
        }
        fallback.cloned()
    }
}

/// All components' upstreams, by `team/app/component`.
#[derive(Debug, Default)]
pub struct Upstreams {
    map: RwLock<HashMap<String, Arc<Upstream>>>,
}

impl Upstreams {
    pub fn key(team: &str, app: &str, component: &str) -> String {
        format!("{team}/{app}/{component}")
    }

    /// The upstream of `key`, created empty when the component has not run yet.
    pub fn get(&self, key: &str) -> Arc<Upstream> {
        if let Some(u) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return u.clone();
        }
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    pub fn set(&self, key: &str, addrs: &[SocketAddr]) {
        self.get(key).set(addrs);
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
