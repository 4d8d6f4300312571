//! The compiled route table: built once per `apply`, read by every request.
//! Lookup is a hash probe on the host (then on each of its parent domains
//! for wildcards) and a short scan of that host's rules, most specific first.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::HeaderMap;

use super::metrics::{Registry, RouteMetrics};
use super::upstream::{Upstream, Upstreams};
use super::HttpRule;
use crate::api::Balance;

/// Longest weighted-round-robin schedule; larger weight sums are scaled down.
const MAX_SCHEDULE: u64 = 1000;

#[derive(Default)]
pub(crate) struct Table {
    exact: HashMap<Box<str>, Vec<Route>, Fnv>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<Box<str>, Vec<Route>, Fnv>,
}

pub(crate) struct Route {
    pub(crate) id: Box<str>,
    prefix: Box<str>,
    /// Lowercase header name and the exact value wanted.
    header: Option<(Box<str>, Box<str>)>,
    cookie: Option<(Box<str>, Box<str>)>,
    pub(crate) targets: Vec<Target>,
    /// Target indexes in smooth weighted round-robin order.
    schedule: Vec<u16>,
    cursor: AtomicUsize,
    pub(crate) balance: Balance,
    pub(crate) https_redirect: bool,
    pub(crate) metrics: Arc<RouteMetrics>,
}

pub(crate) struct Target {
    /// `app/component`, for messages.
    pub(crate) label: Box<str>,
    pub(crate) upstream: Arc<Upstream>,
}

impl Table {
    pub(crate) fn compile(rules: &[HttpRule], upstreams: &Upstreams, metrics: &Registry) -> Table {
        let mut table = Table::default();
        for rule in rules {
            let Some(route) = Route::compile(rule, upstreams, metrics) else {
                continue;
            };
            let domain = normalize_host(&rule.spec.domain).into_owned();
            let (map, key) = match domain.strip_prefix("*.") {
                Some(suffix) => (&mut table.wildcard, suffix.to_string()),
                None => (&mut table.exact, domain),
            };
            if key.is_empty() {
                tracing::warn!(route = %rule.id, domain = %rule.spec.domain, "route skipped: empty domain");
                continue;
            }
            map.entry(key.into_boxed_str()).or_default().push(route);
        }
        for list in table.exact.values_mut().chain(table.wildcard.values_mut()) {
            // Stable: among equals, the rule order decides.
            list.sort_by_key(|r| {
                std::cmp::Reverse((
                    r.prefix.len(),
                    r.header.is_some() as u8 + r.cookie.is_some() as u8,
                ))
            });
        }
        table
    }

    /// The rule for a request. `host` must be normalized (see
    /// `normalize_host`). An exact domain wins over wildcards, the longest
    /// wildcard suffix over shorter ones; when no rule of a domain matches
    /// the path and headers, the next less specific domain is tried.
    pub(crate) fn find<H: Headers + ?Sized>(
        &self,
        host: &str,
        path: &str,
        headers: &H,
    ) -> Option<&Route> {
        if let Some(r) = self.exact.get(host).and_then(|l| first(l, path, headers)) {
            return Some(r);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(r) = self
                .wildcard
                .get(rest)
                .and_then(|l| first(l, path, headers))
            {
                return Some(r);
            }
        }
        None
    }

    pub(crate) fn ids(&self) -> HashSet<&str> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .flatten()
            .map(|r| &*r.id)
            .collect()
    }
}

fn first<'a, H: Headers + ?Sized>(list: &'a [Route], path: &str, headers: &H) -> Option<&'a Route> {
    list.iter().find(|r| r.matches(path, headers))
}

impl Route {
    fn compile(rule: &HttpRule, upstreams: &Upstreams, metrics: &Registry) -> Option<Route> {
        let spec = &rule.spec;
        let header = match &spec.header {
            Some(m) => match http::HeaderName::from_bytes(m.name.trim().as_bytes()) {
                Ok(name) => Some((name.as_str().into(), m.value.as_str().into())),
                Err(_) => {
                    tracing::warn!(route = %rule.id, header = %m.name, "route skipped: invalid header name");
                    return None;
                }
            },
            None => None,
        };
        let cookie = spec
            .cookie
            .as_ref()
            .map(|m| (m.name.trim().into(), m.value.as_str().into()));
        let targets: Vec<Target> = spec
            .targets
            .iter()
            .map(|t| Target {
                label: format!("{}/{}", t.app, t.component).into_boxed_str(),
                upstream: upstreams.get(&Upstreams::key(&rule.team, &t.app, &t.component)),
            })
            .collect();
        let weights: Vec<u64> = spec.targets.iter().map(|t| t.weight as u64).collect();
        Some(Route {
            id: rule.id.as_str().into(),
            prefix: normalize_prefix(&spec.path_prefix).into_boxed_str(),
            header,
            cookie,
            targets,
            schedule: schedule(&weights),
            cursor: AtomicUsize::new(0),
            balance: spec.balance,
            https_redirect: spec.https_redirect,
            metrics: metrics.get(&rule.id),
        })
    }

    fn matches<H: Headers + ?Sized>(&self, path: &str, headers: &H) -> bool {
        if !prefix_matches(&self.prefix, path) {
            return false;
        }
        if let Some((name, value)) = &self.header {
            if !headers.any(name, |v| v == value.as_bytes()) {
                return false;
            }
        }
        if let Some((name, value)) = &self.cookie {
            if !has_cookie(headers, name, value) {
                return false;
            }
        }
        true
    }

    /// The target for the next request, in proportion to the weights; `None`
    /// when every weight is 0.
    pub(crate) fn pick(&self) -> Option<&Target> {
        let i = match self.schedule.len() {
            0 => return None,
            1 => self.schedule[0],
            n => self.schedule[self.cursor.fetch_add(1, Ordering::Relaxed) % n],
        };
        self.targets.get(i as usize)
    }
}

/// `/api` matches `/api` and `/api/x`, not `/apix`; `/` matches everything.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn normalize_prefix(p: &str) -> String {
    let p = p.trim();
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    if trimmed.starts_with('/') {
        trimmed.into()
    } else {
        format!("/{trimmed}")
    }
}

fn has_cookie<H: Headers + ?Sized>(headers: &H, name: &str, value: &str) -> bool {
    headers.any("cookie", |h| {
        let Ok(s) = std::str::from_utf8(h) else {
            return false;
        };
        s.split(';').any(|pair| match pair.trim().split_once('=') {
            Some((n, v)) => n.trim() == name && unquote(v.trim()) == value,
            None => false,
        })
    })
}

/// Request headers as either HTTP path sees them: hyper's map, or the fast
/// path's parsed slice. `name` is lowercase.
pub(crate) trait Headers {
    fn any(&self, name: &str, pred: impl FnMut(&[u8]) -> bool) -> bool;
}

impl Headers for HeaderMap {
    fn any(&self, name: &str, mut pred: impl FnMut(&[u8]) -> bool) -> bool {
        self.get_all(name).iter().any(|v| pred(v.as_bytes()))
    }
}

impl Headers for [httparse::Header<'_>] {
    fn any(&self, name: &str, mut pred: impl FnMut(&[u8]) -> bool) -> bool {
        self.iter()
            .any(|h| h.name.eq_ignore_ascii_case(name) && pred(h.value))
    }
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// Lowercase, without port or trailing dot. Borrows when already normal,
/// which is the common case.
pub(crate) fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let host = if host.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Smooth weighted round-robin order (nginx's): spreads each target's turns
/// evenly instead of in bursts. Weights are reduced by their gcd, and scaled
/// down when their sum is large, to keep the schedule short.
fn schedule(weights: &[u64]) -> Vec<u16> {
    let g = weights.iter().copied().fold(0, gcd);
    if g == 0 {
        return Vec::new();
    }
    let mut w: Vec<u64> = weights.iter().map(|w| w / g).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_SCHEDULE {
        for x in w.iter_mut().filter(|x| **x > 0) {
            *x = (*x * MAX_SCHEDULE / total).max(1);
        }
    }
    let total: i64 = w.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i] as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u16);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// FNV-1a: host names are short, and SipHash's DoS resistance buys nothing
/// for lookups in a table whose keys the operator chose.
#[derive(Default)]
pub(crate) struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf29ce484222325
        } else {
            self.0
        };
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        self.0 = h;
    }
}

type Fnv = BuildHasherDefault<FnvHasher>;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/x"));
        assert!(!prefix_matches("/api", "/apix"));
        assert_eq!(normalize_prefix("api/"), "/api");
        assert_eq!(normalize_prefix(""), "/");
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("Shop.Example.COM.:8080"), "shop.example.com");
        assert_eq!(normalize_host("a.b"), "a.b");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
    }

    #[test]
    fn schedule_follows_weights() {
        let s = schedule(&[80, 20]);
        assert_eq!(s.len(), 5);
        assert_eq!(s.iter().filter(|i| **i == 0).count(), 4);
        assert!(schedule(&[0, 0]).is_empty());
        assert_eq!(schedule(&[0, 3]), vec![1]);
        let big = schedule(&[u32::MAX as u64, 1]);
        assert!(big.len() <= 1001 && big.contains(&1));
    }
}
