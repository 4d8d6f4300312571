//! Per-route traffic figures: counters by status class and a fixed-bucket
//! latency histogram, all atomics so the request path takes no lock.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::RouteStats;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
const BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Removed routes with traffic are kept for their history, up to this many.
const MAX_RETIRED: usize = 1024;
/// Label of requests that matched no route.
pub(crate) const UNMATCHED: &str = "_unmatched";

#[derive(Default)]
pub(crate) struct RouteMetrics {
    classes: [AtomicU64; 5],
    /// Not cumulative; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl RouteMetrics {
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn requests(&self) -> u64 {
        self.classes.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn bucket_counts(&self) -> [u64; BUCKETS.len() + 1] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    fn stats(&self, route: &str) -> RouteStats {
        let c: [u64; 5] = std::array::from_fn(|i| self.classes[i].load(Ordering::Relaxed));
        let buckets = self.bucket_counts();
        RouteStats {
            route: route.to_string(),
            requests: c.iter().sum(),
            // Switching protocols (WebSocket) is a success.
            status_2xx: c[0] + c[1],
            status_3xx: c[2],
            status_4xx: c[3],
            status_5xx: c[4],
            p50_ms: quantile(&buckets, 0.50) * 1000.0,
            p99_ms: quantile(&buckets, 0.99) * 1000.0,
        }
    }
}

/// Estimates a quantile by linear interpolation inside its bucket.
fn quantile(buckets: &[u64; BUCKETS.len() + 1], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            let Some(upper) = BUCKETS.get(i) else {
                return lower;
            };
            let within = ((rank - seen as f64) / *n as f64).clamp(0.0, 1.0);
            return lower + (upper - lower) * within;
        }
        seen += n;
    }
    BUCKETS[BUCKETS.len() - 1]
}

/// Metrics by rule id; they outlive route-table swaps so a changed route
/// keeps its history.
#[derive(Default)]
pub(crate) struct Registry {
    routes: Mutex<BTreeMap<String, Entry>>,
}

struct Entry {
    metrics: Arc<RouteMetrics>,
    /// Whether the current rule set has this id.
    live: bool,
}

impl Registry {
    pub(crate) fn get(&self, id: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let entry = routes.entry(id.to_string()).or_insert_with(|| Entry {
            metrics: Arc::default(),
            live: true,
        });
        entry.live = true;
        entry.metrics.clone()
    }

    /// After an apply: forgets removed routes that never saw traffic, and the
    /// oldest removed ones beyond the bound.
    pub(crate) fn retain(&self, live: &HashSet<&str>) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.retain(|id, e| {
            e.live = id == UNMATCHED || live.contains(id.as_str());
            e.live || e.metrics.requests() > 0
        });
        let retired = routes.values().filter(|e| !e.live).count();
        if retired > MAX_RETIRED {
            let drop: Vec<String> = routes
                .iter()
                .filter(|(_, e)| !e.live)
                .take(retired - MAX_RETIRED)
                .map(|(id, _)| id.clone())
                .collect();
            for id in drop {
                routes.remove(&id);
            }
        }
    }

    pub(crate) fn stats(&self) -> Vec<RouteStats> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes
            .iter()
            .filter(|(id, _)| id.as_str() != UNMATCHED)
            .map(|(id, e)| e.metrics.stats(id))
            .collect()
    }

    pub(crate) fn render(&self, out: &mut String) {
        let routes: Vec<(String, Arc<RouteMetrics>)> = {
            let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            routes
                .iter()
                .map(|(id, e)| (escape(id), e.metrics.clone()))
                .collect()
        };
        out.push_str(
            "# HELP cloudport_gateway_requests_total Requests answered by the gateway, by route and status class.\n\
             # TYPE cloudport_gateway_requests_total counter\n",
        );
        for (route, m) in &routes {
            for (i, class) in CLASSES.iter().enumerate() {
                let n = m.classes[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "cloudport_gateway_requests_total{{route=\"{route}\",class=\"{class}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP cloudport_gateway_request_duration_seconds Time from request to upstream response headers, by route.\n\
             # TYPE cloudport_gateway_request_duration_seconds histogram\n",
        );
        for (route, m) in &routes {
            let counts = m.bucket_counts();
            let mut cumulative = 0u64;
            for (i, n) in counts.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS
                    .get(i)
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "+Inf".into());
                let _ = writeln!(
                    out,
                    "cloudport_gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = m.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "cloudport_gateway_request_duration_seconds_sum{{route=\"{route}\"}} {sum}\n\
                 cloudport_gateway_request_duration_seconds_count{{route=\"{route}\"}} {cumulative}"
            );
        }
    }
}

fn escape(label: &str) -> String {
    let mut s = String::with_capacity(label.len());
    for c in label.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}
