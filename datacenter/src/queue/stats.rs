//! What the queues of this process did, per topic, for the datacenter's `/metrics`.
//!
//! Every queue handle (both backends) counts its own operations per topic: tasks enqueued
//! (and deduplicated), claimed, acked, failed, dead-lettered, requeued from and purged
//! from the dead letters. Counters only ever grow while the queue is open, and count what
//! *this process* did: with several datacenter processes on one etcd, sum them.
//!
//! Depth (ready, delayed, in flight, dead) is the backend's, not the process's: it is read
//! with [`TaskQueue::depth`](super::TaskQueue::depth) for every topic this process has
//! used, when [`refresh_depths`] runs — the datacenter's `/metrics` handler calls it on
//! every scrape, so a scrape shows the depth of that moment (at the price of one count per
//! topic per scrape). Queues register here when they are opened and drop out when the last
//! handle is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use super::{QueueDepth, QueueError};

type DepthFuture = Pin<Box<dyn Future<Output = Result<QueueDepth, QueueError>> + Send>>;
/// Reads a topic's depth from the queue, if the queue still exists.
type DepthSource = Box<dyn Fn(String) -> Option<DepthFuture> + Send + Sync>;

/// The counters of one queue (shared by its clones).
pub(crate) struct QueueStats {
    /// `embedded:<file>` or `etcd:<prefix>`: two handles on the same backend report its
    /// depth once.
    location: String,
    topics: RwLock<HashMap<String, Arc<TopicStats>>>,
    depth_source: OnceLock<DepthSource>,
}

#[derive(Default)]
pub(crate) struct TopicStats {
    enqueued: AtomicU64,
    deduplicated: AtomicU64,
    claimed: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    requeued: AtomicU64,
    purged: AtomicU64,
    /// The last depth read by `refresh_depths`; `None` before the first, or if it failed.
    depth: Mutex<Option<QueueDepth>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Enqueued,
    Deduplicated,
    Claimed,
    Acked,
    /// A failed attempt reported with `fail` (retried later, or dead-lettered).
    Failed,
    /// Moved to the dead letters: by `fail` on the last attempt, or after a lapsed lease on
    /// the last attempt.
    DeadLettered,
    Requeued,
    Purged,
}

fn live() -> &'static Mutex<Vec<Weak<QueueStats>>> {
    static LIVE: OnceLock<Mutex<Vec<Weak<QueueStats>>>> = OnceLock::new();
    LIVE.get_or_init(Mutex::default)
}

impl QueueStats {
    /// Counters for a queue being opened; it shows up in [`snapshot`] until dropped.
    pub(crate) fn register(location: String) -> Arc<Self> {
        let stats = Arc::new(Self {
            location,
            topics: RwLock::default(),
            depth_source: OnceLock::new(),
        });
        let mut all = live().lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&stats));
        stats
    }

    /// How to read the depth of a topic; set once, right after the queue is built.
    pub(crate) fn set_depth_source<F>(&self, source: F)
    where
        F: Fn(String) -> Option<DepthFuture> + Send + Sync + 'static,
    {
        let _ = self.depth_source.set(Box::new(source));
    }

    fn topic(&self, topic: &str) -> Arc<TopicStats> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            return t.clone();
        }
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(topic.to_owned())
            .or_default()
            .clone()
    }

    pub(crate) fn add(&self, topic: &str, event: Event, n: u64) {
        if n == 0 {
            return;
        }
        let t = self.topic(topic);
        let counter = match event {
            Event::Enqueued => &t.enqueued,
            Event::Deduplicated => &t.deduplicated,
            Event::Claimed => &t.claimed,
            Event::Acked => &t.acked,
            Event::Failed => &t.failed,
            Event::DeadLettered => &t.dead_lettered,
            Event::Requeued => &t.requeued,
            Event::Purged => &t.purged,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count(&self, topic: &str, event: Event) {
        self.add(topic, event, 1);
    }
}

/// One topic as `/metrics` shows it: counters summed over this process's queues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicSnapshot {
    pub topic: String,
    pub enqueued: u64,
    pub deduplicated: u64,
    pub claimed: u64,
    pub acked: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub requeued: u64,
    pub purged: u64,
    /// As of the last [`refresh_depths`]; `None` if it has not run or could not read it.
    pub depth: Option<QueueDepth>,
}

fn live_stats() -> Vec<Arc<QueueStats>> {
    live()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}

/// Every topic this process's open queues have used, sorted by name.
pub fn snapshot() -> Vec<TopicSnapshot> {
    let mut topics: BTreeMap<String, TopicSnapshot> = BTreeMap::new();
    let mut locations = HashSet::new();
    for stats in live_stats() {
        let first_at_location = locations.insert(stats.location.clone());
        let map = stats.topics.read().unwrap_or_else(|e| e.into_inner());
        for (name, t) in map.iter() {
            let s = topics.entry(name.clone()).or_insert_with(|| TopicSnapshot {
                topic: name.clone(),
                ..Default::default()
            });
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            s.enqueued += get(&t.enqueued);
            s.deduplicated += get(&t.deduplicated);
            s.claimed += get(&t.claimed);
            s.acked += get(&t.acked);
            s.failed += get(&t.failed);
            s.dead_lettered += get(&t.dead_lettered);
            s.requeued += get(&t.requeued);
            s.purged += get(&t.purged);
            if !first_at_location {
                continue; // same backend as a handle already counted
            }
            if let Some(d) = *t.depth.lock().unwrap_or_else(|e| e.into_inner()) {
                let sum = s.depth.get_or_insert_with(QueueDepth::default);
                sum.ready += d.ready;
                sum.delayed += d.delayed;
                sum.in_flight += d.in_flight;
                sum.dead += d.dead;
            }
        }
    }
    topics.into_values().collect()
}

/// Reads the depth of every topic the process's queues have used (each backend once),
/// giving up on what is not answered within `timeout`.
pub async fn refresh_depths(timeout: Duration) {
    let mut locations = HashSet::new();
    let mut reads = Vec::new();
    for stats in live_stats() {
        if !locations.insert(stats.location.clone()) {
            continue;
        }
        let Some(source) = stats.depth_source.get() else {
            continue;
        };
        let topics: Vec<(String, Arc<TopicStats>)> = stats
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, t)| (name.clone(), t.clone()))
            .collect();
        for (name, t) in topics {
            if let Some(read) = source(name.clone()) {
                reads.push(async move {
                    let depth = match tokio::time::timeout(timeout, read).await {
                        Ok(Ok(depth)) => Some(depth),
                        Ok(Err(e)) => {
                            tracing::debug!(topic = %name, error = %e, "queue depth unavailable");
                            None
                        }
                        Err(_) => {
                            tracing::debug!(topic = %name, "queue depth timed out");
                            None
                        }
                    };
                    *t.depth.lock().unwrap_or_else(|e| e.into_inner()) = depth;
                });
            }
        }
    }
    futures_util::future::join_all(reads).await;
}

/// [`refresh_depths`] for synchronous callers (the `/metrics` handler renders the text
/// synchronously). On a multi-threaded tokio runtime it blocks this worker thread (handing
/// its other tasks to the rest) for at most `timeout`; elsewhere it starts the refresh in
/// the background, so the depths shown are those of the previous call.
pub fn refresh_depths_blocking(timeout: Duration) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let Ok(handle) = Handle::try_current() else {
        return;
    };
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(refresh_depths(timeout)));
    } else {
        handle.spawn(refresh_depths(timeout));
    }
}
