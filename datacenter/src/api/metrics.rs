//! Prometheus metrics of the datacenter API, labelled by route pattern, and of its task
//! queue, labelled by topic.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub stream_lines: Counter,
    pub stream_skipped: Counter,
    /// Whether `render` shows the task queues (and reads their depth first).
    queues: bool,
}

impl Default for Metrics {
    /// The datacenter's metrics: HTTP and the task queue.
    fn default() -> Self {
        Metrics::new("cloudport_datacenter").with_queues()
    }
}

/// How long a scrape waits for the queue's depth before showing what it has.
const DEPTH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepthLabels {
    topic: String,
    state: &'static str,
}

/// The task queues of this process (`crate::queue::stats`), read at every scrape:
/// counters per topic of what this process did, and the depth per topic and state.
#[derive(Debug)]
struct QueueCollector;

impl Collector for QueueCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let topics = crate::queue::stats::snapshot();
        type Pick = fn(&crate::queue::stats::TopicSnapshot) -> u64;
        let counters: [(&str, &str, Pick); 8] = [
            (
                "queue_enqueued",
                "Tasks enqueued (new, not deduplicated)",
                |t| t.enqueued,
            ),
            (
                "queue_deduplicated",
                "Enqueues answered with an existing task (same dedupe key)",
                |t| t.deduplicated,
            ),
            (
                "queue_claimed",
                "Tasks handed to a worker (every attempt)",
                |t| t.claimed,
            ),
            ("queue_acked", "Tasks acked (done)", |t| t.acked),
            (
                "queue_failed",
                "Attempts reported failed (retried after a delay, or dead-lettered)",
                |t| t.failed,
            ),
            (
                "queue_dead_lettered",
                "Tasks moved to the dead letters (failed or lease lapsed on their last attempt)",
                |t| t.dead_lettered,
            ),
            ("queue_requeued", "Dead tasks put back in the queue", |t| {
                t.requeued
            }),
            ("queue_purged", "Dead tasks deleted", |t| t.purged),
        ];
        for (name, help, pick) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for t in &topics {
                let labels = TopicLabels {
                    topic: t.topic.clone(),
                };
                ConstCounter::new(pick(t)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut depth = encoder.encode_descriptor(
            "queue_depth",
            "Tasks per topic and state (ready, delayed for a retry, in flight, dead), read at this scrape",
            None,
            MetricType::Gauge,
        )?;
        for t in &topics {
            let Some(d) = t.depth else { continue };
            for (state, value) in [
                ("ready", d.ready),
                ("delayed", d.delayed),
                ("in_flight", d.in_flight),
                ("dead", d.dead),
            ] {
                let labels = DepthLabels {
                    topic: t.topic.clone(),
                    state,
                };
                ConstGauge::new(value as i64).encode(depth.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// HTTP request metrics under `prefix`; the console uses `cloudport`.
    pub fn new(prefix: &str) -> Self {
        let mut registry = Registry::with_prefix(prefix);
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))) as fn() -> Histogram,
        );
        let stream_lines = Counter::default();
        let stream_skipped = Counter::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register(
            "stream_lines",
            "Log lines sent to stream subscribers",
            stream_lines.clone(),
        );
        registry.register(
            "stream_skipped_lines",
            "Log lines dropped for slow subscribers",
            stream_skipped.clone(),
        );
        let build = Family::<BuildLabels, prometheus_client::metrics::gauge::Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register("build_info", "Cloudport version", build);
        Metrics {
            registry,
            requests,
            latency,
            stream_lines,
            stream_skipped,
            queues: false,
        }
    }

    /// Adds the task queues of this process: `queue_*_total{topic}` counters and the
    /// `queue_depth{topic,state}` gauge, whose values are read from the queue at every
    /// `render` (so a scrape shows the depth of that moment).
    pub fn with_queues(mut self) -> Self {
        if !self.queues {
            self.registry.register_collector(Box::new(QueueCollector));
            self.queues = true;
        }
        self
    }

    pub fn render(&self) -> String {
        if self.queues {
            crate::queue::stats::refresh_depths_blocking(DEPTH_TIMEOUT);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
