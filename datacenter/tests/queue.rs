//! One contract, two backends: every case in `cases` runs against the embedded (SQLite)
//! queue and against a real etcd started by the test.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datacenter::queue::{
    Claimed, EmbeddedQueue, Enqueued, EtcdQueue, NewTask, QueueDepth, QueueError, QueueOptions,
    TaskQueue,
};
use serde_json::json;
use support::EtcdServer;
use tempfile::TempDir;

const TOPIC: &str = "jobs";
/// Leases the tests let run out: etcd (started with a short election timeout) allows 1 s.
const SHORT: Duration = Duration::from_secs(1);
/// Leases that must not run out during a test.
const LONG: Duration = Duration::from_secs(60);

/// Something that can open fresh, independent queues of one backend.
#[async_trait::async_trait]
trait Backend: Send + Sync + Sized + 'static {
    async fn start() -> Self;
    async fn queue(&self, opts: QueueOptions) -> Arc<dyn TaskQueue>;
}

struct Embedded {
    dir: TempDir,
    opened: AtomicUsize,
}

#[async_trait::async_trait]
impl Backend for Embedded {
    async fn start() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            opened: AtomicUsize::new(0),
        }
    }

    async fn queue(&self, opts: QueueOptions) -> Arc<dyn TaskQueue> {
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("queue-{n}.db"));
        Arc::new(
            EmbeddedQueue::open(&path, opts)
                .await
                .expect("open embedded queue"),
        )
    }
}

struct Etcd {
    server: EtcdServer,
    opened: AtomicUsize,
}

#[async_trait::async_trait]
impl Backend for Etcd {
    async fn start() -> Self {
        Self {
            server: EtcdServer::start().await,
            opened: AtomicUsize::new(0),
        }
    }

    async fn queue(&self, opts: QueueOptions) -> Arc<dyn TaskQueue> {
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("/test/q{n}");
        Arc::new(
            EtcdQueue::connect(&[self.server.endpoint()], &prefix, opts)
                .await
                .expect("connect etcd queue"),
        )
    }
}

/// Failed tasks are ready again at once unless a case asks for a retry delay.
fn opts() -> QueueOptions {
    QueueOptions {
        poll_interval: Duration::from_millis(250),
        retry_delay: Duration::ZERO,
        ..Default::default()
    }
}

async fn claim(
    q: &dyn TaskQueue,
    worker: &str,
    lease: Duration,
    wait: Duration,
) -> Option<Claimed> {
    q.claim(TOPIC, worker, lease, wait).await.expect("claim")
}

/// (ready, in flight, dead), for cases where nothing waits for a retry delay.
async fn depth(q: &dyn TaskQueue) -> (u64, u64, u64) {
    let QueueDepth {
        ready,
        delayed,
        in_flight,
        dead,
    } = q.depth(TOPIC).await.expect("depth");
    assert_eq!(delayed, 0, "no retry delays in this case");
    (ready, in_flight, dead)
}

/// A topic no other test (in this process) uses, for the process-wide queue metrics.
fn unique_topic(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", N.fetch_add(1, Ordering::Relaxed))
}

/// The value of the sample `name{labels}` in Prometheus text.
fn sample(text: &str, name: &str, labels: &str) -> Option<u64> {
    let head = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&head))
        .map(|v| v.trim().parse().expect("a number"))
}

fn is_lease_lost<T: std::fmt::Debug>(r: Result<T, QueueError>) -> bool {
    matches!(r, Err(QueueError::LeaseLost { .. }))
}

mod cases {
    use super::*;

    pub async fn fifo_order<B: Backend>(b: &B) {
        let q = b.queue(opts()).await;
        for n in 0..20 {
            q.enqueue(TOPIC, NewTask::new(json!({ "n": n })))
                .await
                .unwrap();
            if n % 4 == 0 {
                q.enqueue("other", NewTask::new(json!({ "other": n })))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(depth(&*q).await, (20, 0, 0));
        // Claimed tasks are not acked yet: the next claim must skip them, not stall on them.
        let mut held = Vec::new();
        for n in 0..20 {
            let task = claim(&*q, "w", LONG, Duration::from_secs(2))
                .await
                .expect("a task");
            assert_eq!(task.payload, json!({ "n": n }), "FIFO order");
            assert_eq!(task.attempt, 1);
            assert_eq!(task.topic, TOPIC);
            held.push(task);
        }
        assert!(claim(&*q, "w", LONG, Duration::from_millis(100))
            .await
            .is_none());
        for task in &held {
            q.ack(task).await.unwrap();
        }
        for n in (0..20).step_by(4) {
            let task = q
                .claim("other", "w", LONG, Duration::from_secs(2))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(task.payload, json!({ "other": n }));
            q.ack(&task).await.unwrap();
        }
        assert_eq!(depth(&*q).await, (0, 0, 0));
    }

    pub async fn concurrent_claimers_never_share<B: Backend>(b: &B) {
        const TASKS: usize = 500;
        const WORKERS: usize = 4;
        let q = b.queue(opts()).await;
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let acked = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let (q, seen, acked) = (q.clone(), seen.clone(), acked.clone());
            // Half the workers ack and claim in one call: both ways must mix safely.
            let combined = w % 2 == 1;
            workers.push(tokio::spawn(async move {
                let name = format!("worker-{w}");
                let wait = Duration::from_millis(300);
                let mut held: Option<Claimed> = None;
                while acked.load(Ordering::SeqCst) < TASKS {
                    let task = match held.take() {
                        Some(task) => task,
                        None => match claim(&*q, &name, LONG, wait).await {
                            Some(task) => task,
                            None => continue,
                        },
                    };
                    seen.lock().unwrap().push(task.id.clone());
                    if combined {
                        held = q
                            .ack_and_claim(&task, &name, LONG, wait)
                            .await
                            .expect("ack of a task we hold, and a claim");
                    } else {
                        q.ack(&task).await.expect("ack of a task we hold");
                    }
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                assert!(
                    held.is_none(),
                    "nothing is left to claim once all are acked"
                );
            }));
        }
        // Workers are already waiting while tasks arrive: wake-ups are under test too.
        let mut enqueued = HashSet::new();
        for n in 0..TASKS {
            let id = q
                .enqueue(TOPIC, NewTask::new(json!({ "n": n })))
                .await
                .unwrap()
                .id;
            assert!(enqueued.insert(id), "ids are unique");
        }
        for worker in workers {
            worker.await.unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), TASKS, "every task delivered exactly once");
        let unique: HashSet<String> = seen.into_iter().collect();
        assert_eq!(unique, enqueued, "no task delivered twice, none lost");
        assert_eq!(depth(&*q).await, (0, 0, 0));
    }

    pub async fn lease_expiry_redelivers<B: Backend>(b: &B) {
        let q = b.queue(opts()).await;
        let id = q
            .enqueue(TOPIC, NewTask::new(json!("work")))
            .await
            .unwrap()
            .id;
        let started = Instant::now();
        let first = claim(&*q, "slow", SHORT, Duration::ZERO)
            .await
            .expect("claimed");
        assert_eq!((first.id.as_str(), first.attempt), (id.as_str(), 1));
        assert!(
            claim(&*q, "other", LONG, Duration::from_millis(300))
                .await
                .is_none(),
            "still leased"
        );
        assert_eq!(depth(&*q).await, (0, 1, 0));

        let second = claim(&*q, "other", LONG, Duration::from_secs(5))
            .await
            .expect("redelivered");
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "not before the lease ran out"
        );
        assert_eq!(second.id, id);
        assert_eq!(second.attempt, 2);
        assert_eq!(second.payload, json!("work"));
        // The first worker lost the task: it can neither finish, fail nor extend it.
        assert!(is_lease_lost(q.ack(&first).await));
        assert!(is_lease_lost(q.fail(&first, "late").await));
        assert!(is_lease_lost(q.renew(&first, LONG).await));
        q.ack(&second).await.unwrap();
        assert_eq!(depth(&*q).await, (0, 0, 0));
    }

    pub async fn renew_keeps_the_lease<B: Backend>(b: &B) {
        let q = b.queue(opts()).await;
        q.enqueue(TOPIC, NewTask::new(json!(1))).await.unwrap();
        let task = claim(&*q, "steady", SHORT, Duration::ZERO).await.unwrap();
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            q.renew(&task, SHORT)
                .await
                .expect("renew while the lease holds");
            assert!(claim(&*q, "thief", LONG, Duration::ZERO).await.is_none());
        }
        // Two seconds in, well past the first lease: still ours.
        q.ack(&task).await.expect("ack after renewals");
        assert!(
            is_lease_lost(q.renew(&task, SHORT).await),
            "nothing to renew after ack"
        );

        // Without heartbeats the lease lapses and renew says so.
        q.enqueue(TOPIC, NewTask::new(json!(2))).await.unwrap();
        let task = claim(&*q, "stalled", SHORT, Duration::ZERO).await.unwrap();
        // etcd claims may outlast their lease by up to 1.5 s (see the etcd backend's docs).
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(is_lease_lost(q.renew(&task, SHORT).await));
        let again = claim(&*q, "next", LONG, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!((again.id, again.attempt), (task.id, 2));
    }

    pub async fn fail_retries_then_dead_letters<B: Backend>(b: &B) {
        let q = b
            .queue(QueueOptions {
                max_attempts: 3,
                ..opts()
            })
            .await;
        let id = q
            .enqueue(
                TOPIC,
                NewTask::new(json!({ "job": "x" })).with_dedupe_key("x"),
            )
            .await
            .unwrap()
            .id;
        q.enqueue(TOPIC, NewTask::new(json!({ "job": "y" })))
            .await
            .unwrap();
        let mut last = None;
        for attempt in 1..=3 {
            // A failed task goes back to its place at the head, ahead of "y".
            let task = claim(&*q, "w", LONG, Duration::from_secs(2)).await.unwrap();
            assert_eq!((task.id.as_str(), task.attempt), (id.as_str(), attempt));
            q.fail(&task, &format!("boom {attempt}")).await.unwrap();
            last = Some(task);
        }
        assert_eq!(depth(&*q).await, (1, 0, 1));
        let dead = q.dead_letters(TOPIC, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, id);
        assert_eq!(dead[0].attempts, 3);
        assert_eq!(dead[0].reason, "boom 3");
        assert_eq!(dead[0].payload, json!({ "job": "x" }));
        assert_eq!(dead[0].dedupe_key.as_deref(), Some("x"));
        assert!(q.dead_letters(TOPIC, 0).await.unwrap().is_empty());
        assert!(
            is_lease_lost(q.ack(&last.unwrap()).await),
            "a failed claim is over"
        );

        let y = claim(&*q, "w", LONG, Duration::from_secs(2)).await.unwrap();
        assert_eq!(y.payload, json!({ "job": "y" }));
        q.ack(&y).await.unwrap();
        // A dead task no longer holds its dedupe key.
        let again = q
            .enqueue(
                TOPIC,
                NewTask::new(json!({ "job": "x" })).with_dedupe_key("x"),
            )
            .await
            .unwrap();
        assert!(!again.deduplicated);
        assert_ne!(again.id, id);
    }

    pub async fn fail_backs_off<B: Backend>(b: &B) {
        const BASE: Duration = Duration::from_millis(400);
        // Delays: 400 ms after attempt 1, 800 ms after attempt 2, then capped at 800 ms.
        let q = b
            .queue(QueueOptions {
                max_attempts: 4,
                retry_delay: BASE,
                max_retry_delay: BASE * 2,
                ..opts()
            })
            .await;
        let id = q
            .enqueue(TOPIC, NewTask::new(json!("flaky")))
            .await
            .unwrap()
            .id;
        q.enqueue(TOPIC, NewTask::new(json!("steady")))
            .await
            .unwrap();
        let mut task = claim(&*q, "w", LONG, Duration::from_secs(2)).await.unwrap();
        for (attempt, delay) in [(1, BASE), (2, BASE * 2), (3, BASE * 2)] {
            assert_eq!((task.id.as_str(), task.attempt), (id.as_str(), attempt));
            let failed_at = Instant::now();
            q.fail(&task, "try later").await.unwrap();
            if attempt == 1 {
                // A task waiting for its retry does not hold up the ones behind it.
                let steady = claim(&*q, "w", LONG, Duration::ZERO)
                    .await
                    .expect("the next task is ready");
                assert_eq!(steady.payload, json!("steady"));
                q.ack(&steady).await.unwrap();
            }
            let d = q.depth(TOPIC).await.unwrap();
            assert_eq!((d.ready, d.delayed, d.in_flight), (0, 1, 0), "{d:?}");
            // Not before its delay...
            let early = delay.saturating_sub(failed_at.elapsed() + Duration::from_millis(60));
            assert!(
                claim(&*q, "w", LONG, early).await.is_none(),
                "claimed before its {delay:?} retry delay"
            );
            // ...and soon after it, by a claimer that was already waiting.
            task = claim(&*q, "w", LONG, Duration::from_secs(5))
                .await
                .expect("ready again after its delay");
            let waited = failed_at.elapsed();
            assert!(
                waited >= delay,
                "retried after {waited:?}, before {delay:?}"
            );
            assert!(
                waited < delay + Duration::from_millis(1500),
                "retried only after {waited:?}, the delay is {delay:?}"
            );
        }
        // The last allowed attempt fails: dead at once, no delay.
        assert_eq!(task.attempt, 4);
        q.fail(&task, "gave up").await.unwrap();
        let dead = q.dead_letters(TOPIC, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].id.as_str(), dead[0].attempts), (id.as_str(), 4));
        assert_eq!(
            q.depth(TOPIC).await.unwrap(),
            QueueDepth {
                dead: 1,
                ..Default::default()
            }
        );
    }

    pub async fn dead_letters_requeue_and_purge<B: Backend>(b: &B) {
        let q = b
            .queue(QueueOptions {
                max_attempts: 1,
                ..opts()
            })
            .await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let task = NewTask::new(json!({ "n": n })).with_dedupe_key(format!("k{n}"));
            ids.push(q.enqueue(TOPIC, task).await.unwrap().id);
        }
        for _ in 0..3 {
            let task = claim(&*q, "w", LONG, Duration::from_secs(2)).await.unwrap();
            q.fail(&task, "broken").await.unwrap();
        }
        let later = q
            .enqueue(TOPIC, NewTask::new(json!("later")))
            .await
            .unwrap()
            .id;
        assert_eq!(depth(&*q).await, (1, 0, 3));
        let dead: Vec<String> = q
            .dead_letters(TOPIC, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(dead, ids);

        // Back in the queue: same task, at its old place (before "later"), attempts reset.
        let requeued = q.requeue_dead(TOPIC, &ids[1]).await.unwrap();
        assert_eq!(
            requeued,
            Enqueued {
                id: ids[1].clone(),
                deduplicated: false
            }
        );
        assert_eq!(depth(&*q).await, (2, 0, 2));
        let again = claim(&*q, "w", LONG, Duration::from_secs(2)).await.unwrap();
        assert_eq!(again.id, ids[1]);
        assert_eq!(again.attempt, 1);
        assert_eq!(again.payload, json!({ "n": 1 }));
        assert_eq!(again.dedupe_key.as_deref(), Some("k1"));
        // Live again, it holds its dedupe key again.
        let twin = q
            .enqueue(TOPIC, NewTask::new(json!("twin")).with_dedupe_key("k1"))
            .await
            .unwrap();
        assert_eq!(
            (twin.id.as_str(), twin.deduplicated),
            (ids[1].as_str(), true)
        );
        q.ack(&again).await.unwrap();
        let next = claim(&*q, "w", LONG, Duration::from_secs(2)).await.unwrap();
        assert_eq!(next.id, later);
        q.ack(&next).await.unwrap();

        // Only dead tasks of that topic can be requeued.
        assert!(matches!(
            q.requeue_dead(TOPIC, &ids[1]).await,
            Err(QueueError::NotFound { .. })
        ));
        assert!(matches!(
            q.requeue_dead("other", &ids[0]).await,
            Err(QueueError::NotFound { .. })
        ));
        assert!(matches!(
            q.requeue_dead(TOPIC, "../x").await,
            Err(QueueError::Invalid { .. })
        ));

        // Its dedupe key taken by a newer task: that task is named, the dead letter stays.
        let holder = q
            .enqueue(TOPIC, NewTask::new(json!("new k0")).with_dedupe_key("k0"))
            .await
            .unwrap();
        assert!(!holder.deduplicated);
        assert_eq!(
            q.requeue_dead(TOPIC, &ids[0]).await.unwrap(),
            Enqueued {
                id: holder.id.clone(),
                deduplicated: true
            }
        );
        assert_eq!(depth(&*q).await, (1, 0, 2));

        // Purge one (twice: the second finds nothing), another topic's (none), then all.
        assert_eq!(q.purge_dead(TOPIC, Some(&ids[2])).await.unwrap(), 1);
        assert_eq!(q.purge_dead(TOPIC, Some(&ids[2])).await.unwrap(), 0);
        assert_eq!(q.purge_dead("other", None).await.unwrap(), 0);
        assert!(matches!(
            q.purge_dead(TOPIC, Some("*")).await,
            Err(QueueError::Invalid { .. })
        ));
        assert_eq!(q.purge_dead(TOPIC, None).await.unwrap(), 1);
        assert!(q.dead_letters(TOPIC, 10).await.unwrap().is_empty());
        assert!(matches!(
            q.requeue_dead(TOPIC, &ids[0]).await,
            Err(QueueError::NotFound { .. })
        ));
        assert_eq!(depth(&*q).await, (1, 0, 0));
    }

    pub async fn ack_and_claim_in_one_call<B: Backend>(b: &B) {
        let q = b.queue(opts()).await;
        for n in 0..3 {
            q.enqueue(TOPIC, NewTask::new(json!({ "n": n })))
                .await
                .unwrap();
        }
        let first = claim(&*q, "w", LONG, Duration::from_secs(2)).await.unwrap();
        assert_eq!(first.payload, json!({ "n": 0 }));
        let second = q
            .ack_and_claim(&first, "w", LONG, Duration::from_secs(2))
            .await
            .unwrap()
            .expect("the next task");
        assert_eq!(
            (second.payload.clone(), second.attempt),
            (json!({ "n": 1 }), 1)
        );
        assert_eq!(depth(&*q).await, (1, 1, 0));
        // A claim that is over: the ack fails, and nothing is claimed.
        assert!(is_lease_lost(
            q.ack_and_claim(&first, "w", LONG, Duration::ZERO).await
        ));
        assert_eq!(depth(&*q).await, (1, 1, 0));
        let third = q
            .ack_and_claim(&second, "w", LONG, Duration::from_secs(2))
            .await
            .unwrap()
            .expect("the last task");
        assert_eq!(third.payload, json!({ "n": 2 }));
        // Nothing left: the ack happens, and the call waits for a task like `claim`.
        let late = {
            let q = q.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                q.enqueue(TOPIC, NewTask::new(json!("late")))
                    .await
                    .unwrap()
                    .id
            })
        };
        let started = Instant::now();
        let fourth = q
            .ack_and_claim(&third, "w", LONG, Duration::from_secs(5))
            .await
            .unwrap()
            .expect("the task enqueued while waiting");
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(fourth.id, late.await.unwrap());
        assert!(q
            .ack_and_claim(&fourth, "w", LONG, Duration::from_millis(200))
            .await
            .unwrap()
            .is_none());
        assert_eq!(depth(&*q).await, (0, 0, 0));
    }

    pub async fn metrics_per_topic<B: Backend>(b: &B) {
        let q = b
            .queue(QueueOptions {
                max_attempts: 2,
                ..opts()
            })
            .await;
        let topic = unique_topic("metrics");
        let t = topic.as_str();
        for n in 0..3 {
            q.enqueue(t, NewTask::new(json!(n)).with_dedupe_key(format!("k{n}")))
                .await
                .unwrap();
        }
        q.enqueue(t, NewTask::new(json!("twin")).with_dedupe_key("k0"))
            .await
            .unwrap();
        let a = q
            .claim(t, "w", LONG, Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        q.ack(&a).await.unwrap();
        let b1 = q
            .claim(t, "w", LONG, Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        q.fail(&b1, "once").await.unwrap();
        let b2 = q
            .claim(t, "w", LONG, Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((b2.id.as_str(), b2.attempt), (b1.id.as_str(), 2));
        q.fail(&b2, "twice").await.unwrap();
        let _held = q
            .claim(t, "w", LONG, Duration::ZERO)
            .await
            .unwrap()
            .unwrap();

        let text = datacenter::api::metrics::Metrics::default().render();
        let labels = format!("topic=\"{t}\"");
        let count = |name: &str| {
            sample(&text, name, &labels).unwrap_or_else(|| panic!("no {name} for {t} in\n{text}"))
        };
        assert_eq!(count("cloudport_datacenter_queue_enqueued_total"), 3);
        assert_eq!(count("cloudport_datacenter_queue_deduplicated_total"), 1);
        assert_eq!(count("cloudport_datacenter_queue_claimed_total"), 4);
        assert_eq!(count("cloudport_datacenter_queue_acked_total"), 1);
        assert_eq!(count("cloudport_datacenter_queue_failed_total"), 2);
        assert_eq!(count("cloudport_datacenter_queue_dead_lettered_total"), 1);
        // Depth is read from the queue at the scrape.
        let depth = |state: &str| {
            sample(
                &text,
                "cloudport_datacenter_queue_depth",
                &format!("{labels},state=\"{state}\""),
            )
            .unwrap_or_else(|| panic!("no {state} depth for {t} in\n{text}"))
        };
        assert_eq!(
            [
                depth("ready"),
                depth("delayed"),
                depth("in_flight"),
                depth("dead")
            ],
            [0, 0, 1, 1]
        );

        q.requeue_dead(t, &b1.id).await.unwrap();
        assert_eq!(q.purge_dead(t, None).await.unwrap(), 0);
        let text = datacenter::api::metrics::Metrics::default().render();
        assert_eq!(
            sample(&text, "cloudport_datacenter_queue_requeued_total", &labels),
            Some(1)
        );
        assert_eq!(
            sample(
                &text,
                "cloudport_datacenter_queue_depth",
                &format!("{labels},state=\"ready\"")
            ),
            Some(1)
        );
    }

    pub async fn lapsed_final_attempt_dead_letters<B: Backend>(b: &B) {
        let q = b
            .queue(QueueOptions {
                max_attempts: 1,
                ..opts()
            })
            .await;
        let id = q
            .enqueue(TOPIC, NewTask::new(json!("poison")))
            .await
            .unwrap()
            .id;
        let task = claim(&*q, "crasher", SHORT, Duration::ZERO).await.unwrap();
        assert_eq!(task.attempt, 1);
        // Its only attempt never ends: once the lease lapses it is buried, not handed out.
        assert!(claim(&*q, "next", LONG, Duration::from_millis(3500))
            .await
            .is_none());
        let dead = q.dead_letters(TOPIC, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, id);
        assert_eq!(dead[0].attempts, 1);
        assert!(
            dead[0].reason.contains("lease expired"),
            "{}",
            dead[0].reason
        );
        assert_eq!(depth(&*q).await, (0, 0, 1));
    }

    pub async fn dedupe_keys<B: Backend>(b: &B) {
        let q = b.queue(opts()).await;
        let key = "deploy:app-1:v7";
        let first = q
            .enqueue(TOPIC, NewTask::new(json!(1)).with_dedupe_key(key))
            .await
            .unwrap();
        assert!(!first.deduplicated);
        let twin = q
            .enqueue(TOPIC, NewTask::new(json!(2)).with_dedupe_key(key))
            .await
            .unwrap();
        assert_eq!(twin.id, first.id);
        assert!(twin.deduplicated);
        // Keys are per topic.
        let elsewhere = q
            .enqueue("other", NewTask::new(json!(3)).with_dedupe_key(key))
            .await
            .unwrap();
        assert!(!elsewhere.deduplicated);
        assert_ne!(elsewhere.id, first.id);
        assert_eq!(depth(&*q).await, (1, 0, 0));

        let task = claim(&*q, "w", LONG, Duration::ZERO).await.unwrap();
        assert_eq!(task.id, first.id);
        assert_eq!(task.payload, json!(1), "the first payload wins");
        let in_flight = q
            .enqueue(TOPIC, NewTask::new(json!(4)).with_dedupe_key(key))
            .await
            .unwrap();
        assert_eq!(
            (in_flight.id.as_str(), in_flight.deduplicated),
            (first.id.as_str(), true)
        );
        q.ack(&task).await.unwrap();

        let after = q
            .enqueue(TOPIC, NewTask::new(json!(5)).with_dedupe_key(key))
            .await
            .unwrap();
        assert!(!after.deduplicated, "the key is free once the task is done");
        assert_ne!(after.id, first.id);
    }

    pub async fn payload_is_bounded<B: Backend>(b: &B) {
        let q = b.queue(opts()).await;
        let big = "x".repeat(200 * 1024);
        q.enqueue(TOPIC, NewTask::new(json!({ "blob": big })))
            .await
            .expect("200 KiB fits");
        let too_big = "x".repeat(300 * 1024);
        match q
            .enqueue(TOPIC, NewTask::new(json!({ "blob": too_big })))
            .await
        {
            Err(e @ QueueError::PayloadTooLarge { size, limit }) => {
                assert_eq!(limit, 256 * 1024);
                assert!(size > limit);
                assert!(e.to_string().contains("limit"), "{e}");
            }
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        let small = b
            .queue(QueueOptions {
                max_payload_bytes: 64,
                ..opts()
            })
            .await;
        assert!(matches!(
            small
                .enqueue(TOPIC, NewTask::new(json!("y".repeat(100))))
                .await,
            Err(QueueError::PayloadTooLarge { limit: 64, .. })
        ));
        assert!(matches!(
            q.enqueue("no/slashes", NewTask::new(json!(1))).await,
            Err(QueueError::Invalid { what: "topic", .. })
        ));
        assert!(matches!(
            q.claim(TOPIC, "", LONG, Duration::ZERO).await,
            Err(QueueError::Invalid { what: "worker", .. })
        ));
        assert_eq!(depth(&*q).await, (1, 0, 0));
        let task = claim(&*q, "w", LONG, Duration::ZERO).await.unwrap();
        assert_eq!(task.payload["blob"].as_str().unwrap().len(), 200 * 1024);
    }

    pub async fn depth_counts<B: Backend>(b: &B) {
        let q = b
            .queue(QueueOptions {
                max_attempts: 1,
                ..opts()
            })
            .await;
        assert_eq!(depth(&*q).await, (0, 0, 0));
        for n in 0..5 {
            q.enqueue(TOPIC, NewTask::new(json!(n))).await.unwrap();
        }
        assert_eq!(depth(&*q).await, (5, 0, 0));
        let a = claim(&*q, "w", LONG, Duration::ZERO).await.unwrap();
        let c = claim(&*q, "w", LONG, Duration::ZERO).await.unwrap();
        assert_eq!(depth(&*q).await, (3, 2, 0));
        q.fail(&a, "no").await.unwrap();
        assert_eq!(depth(&*q).await, (3, 1, 1));
        q.ack(&c).await.unwrap();
        assert_eq!(depth(&*q).await, (3, 0, 1));
        assert_eq!(q.depth("other").await.unwrap(), QueueDepth::default());
    }

    pub async fn killed_worker_loses_nothing<B: Backend>(b: &B) {
        let q = b.queue(opts()).await;
        let id = q
            .enqueue(TOPIC, NewTask::new(json!("survive me")))
            .await
            .unwrap()
            .id;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let doomed = {
            let q = q.clone();
            tokio::spawn(async move {
                let task = claim(&*q, "doomed", SHORT, Duration::from_secs(5))
                    .await
                    .unwrap();
                tx.send(task.id.clone()).unwrap();
                // "Working" forever, never acking.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            })
        };
        assert_eq!(rx.await.unwrap(), id);
        doomed.abort();
        assert!(doomed.await.unwrap_err().is_cancelled());
        let task = claim(&*q, "survivor", LONG, Duration::from_secs(5))
            .await
            .expect("redelivered");
        assert_eq!((task.id.as_str(), task.attempt), (id.as_str(), 2));
        assert_eq!(task.payload, json!("survive me"));
        q.ack(&task).await.unwrap();
        assert_eq!(depth(&*q).await, (0, 0, 0));
    }

    pub async fn cancelled_claim_takes_nothing<B: Backend>(b: &B) {
        // A claimer that gives up while waiting (its task aborted) must not be handed the
        // next task: nobody would work on it until its lease ran out.
        let q = b.queue(opts()).await;
        assert!(claim(&*q, "w", LONG, Duration::ZERO).await.is_none());
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { claim(&*q, "gone", LONG, Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        let id = q
            .enqueue(TOPIC, NewTask::new(json!("for the living")))
            .await
            .unwrap()
            .id;
        let task = claim(&*q, "alive", LONG, Duration::from_secs(2))
            .await
            .expect("ready, not held for the cancelled claimer");
        assert_eq!((task.id.as_str(), task.attempt), (id.as_str(), 1));
        q.ack(&task).await.unwrap();
        assert_eq!(depth(&*q).await, (0, 0, 0));
    }

    pub async fn waiting_claimer_wakes_on_enqueue<B: Backend>(b: &B) {
        // Polling so slow that only a wake-up can explain a quick delivery.
        let q = b
            .queue(QueueOptions {
                poll_interval: Duration::from_secs(30),
                ..opts()
            })
            .await;
        let started = Instant::now();
        assert!(claim(&*q, "w", LONG, Duration::from_millis(300))
            .await
            .is_none());
        assert!(
            started.elapsed() >= Duration::from_millis(280),
            "waits the full time when idle"
        );

        let waiter = {
            let q = q.clone();
            tokio::spawn(async move {
                let task = claim(&*q, "w", LONG, Duration::from_secs(10)).await;
                (task, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let enqueued_at = Instant::now();
        let id = q
            .enqueue(TOPIC, NewTask::new(json!("ping")))
            .await
            .unwrap()
            .id;
        let (task, claimed_at) = waiter.await.unwrap();
        assert_eq!(task.expect("woken with the task").id, id);
        let latency = claimed_at - enqueued_at;
        assert!(
            latency < Duration::from_secs(2),
            "woken promptly, took {latency:?}"
        );
    }
}

macro_rules! suite {
    ($module:ident, $backend:ty, [$($case:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = <$backend as Backend>::start().await;
                    tokio::time::timeout(Duration::from_secs(60), cases::$case(&backend))
                        .await
                        .expect("test timed out");
                }
            )*
        }
    };
}

suite!(
    embedded,
    Embedded,
    [
        fifo_order,
        concurrent_claimers_never_share,
        lease_expiry_redelivers,
        renew_keeps_the_lease,
        fail_retries_then_dead_letters,
        fail_backs_off,
        dead_letters_requeue_and_purge,
        ack_and_claim_in_one_call,
        metrics_per_topic,
        lapsed_final_attempt_dead_letters,
        dedupe_keys,
        payload_is_bounded,
        depth_counts,
        killed_worker_loses_nothing,
        cancelled_claim_takes_nothing,
        waiting_claimer_wakes_on_enqueue,
    ]
);

suite!(
    etcd,
    Etcd,
    [
        fifo_order,
        concurrent_claimers_never_share,
        lease_expiry_redelivers,
        renew_keeps_the_lease,
        fail_retries_then_dead_letters,
        fail_backs_off,
        dead_letters_requeue_and_purge,
        ack_and_claim_in_one_call,
        metrics_per_topic,
        lapsed_final_attempt_dead_letters,
        dedupe_keys,
        payload_is_bounded,
        depth_counts,
        killed_worker_loses_nothing,
        cancelled_claim_takes_nothing,
        waiting_claimer_wakes_on_enqueue,
    ]
);

/// Dropping the queue with tasks ready and in flight, then reopening the file, loses none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let mut ids = Vec::new();
    let (acked, in_flight) = {
        let q = EmbeddedQueue::open(&path, opts()).await.unwrap();
        for n in 0..10 {
            ids.push(q.enqueue(TOPIC, NewTask::new(json!(n))).await.unwrap().id);
        }
        let done = claim(&q, "w", SHORT, Duration::ZERO).await.unwrap();
        q.ack(&done).await.unwrap();
        let a = claim(&q, "w", SHORT, Duration::ZERO).await.unwrap();
        let b = claim(&q, "w", SHORT, Duration::ZERO).await.unwrap();
        // Dropped without close(), as a crash would leave it.
        (done.id, [a.id, b.id])
    };

    let q = EmbeddedQueue::open(&path, opts()).await.unwrap();
    assert_eq!(depth(&q).await.0 + depth(&q).await.1, 9);
    let mut delivered = HashMap::new();
    while delivered.len() < 9 {
        let task = claim(&q, "after", LONG, Duration::from_secs(5))
            .await
            .expect("everything comes back");
        q.ack(&task).await.unwrap();
        assert!(delivered.insert(task.id, task.attempt).is_none());
    }
    assert!(
        !delivered.contains_key(&acked),
        "an acked task never comes back"
    );
    for id in &ids[3..] {
        assert_eq!(delivered[id], 1);
    }
    for id in &in_flight {
        assert_eq!(
            delivered[id], 2,
            "in-flight tasks return once their lease runs out"
        );
    }
    assert!(claim(&q, "after", LONG, Duration::from_millis(200))
        .await
        .is_none());
}

/// etcd is killed and restarted mid-run: every task is still acked once, and an acked task
/// never comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_survives_restart() {
    const TASKS: usize = 300;
    let mut server = EtcdServer::start().await;
    let opts = QueueOptions {
        backend_timeout: Duration::from_secs(20),
        ..opts()
    };
    let q: Arc<dyn TaskQueue> = Arc::new(
        EtcdQueue::connect(&[server.endpoint()], "/restart", opts)
            .await
            .unwrap(),
    );

    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let redelivered_after_ack = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..3 {
        let (q, acked, again, errors) = (
            q.clone(),
            acked.clone(),
            redelivered_after_ack.clone(),
            errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let name = format!("worker-{w}");
            while acked.lock().unwrap().len() < TASKS {
                let task = match q
                    .claim(
                        TOPIC,
                        &name,
                        Duration::from_secs(5),
                        Duration::from_millis(500),
                    )
                    .await
                {
                    Ok(Some(task)) => task,
                    Ok(None) => continue,
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if acked.lock().unwrap().contains(&task.id) {
                    again.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                match q.ack(&task).await {
                    Ok(()) => {
                        acked.lock().unwrap().insert(task.id);
                    }
                    // Lost with the outage: it comes back after its lease, and is done then.
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut ids = HashSet::new();
            for n in 0..TASKS {
                loop {
                    match q.enqueue(TOPIC, NewTask::new(json!({ "n": n }))).await {
                        Ok(done) => {
                            ids.insert(done.id);
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            ids
        })
    };

    let deadline = Instant::now() + Duration::from_secs(45);
    while acked.lock().unwrap().len() < 60 {
        assert!(Instant::now() < deadline, "no progress before the restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = acked.lock().unwrap().len();
    assert!(before < TASKS, "the restart must hit a run in progress");
    server.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;
    eprintln!("etcd restart: killed after {before} acks, back after 1.5 s");

    let enqueued = tokio::time::timeout(Duration::from_secs(45), producer)
        .await
        .expect("producer")
        .unwrap();
    assert_eq!(enqueued.len(), TASKS);
    for worker in workers {
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), worker)
            .await
            .expect("workers finish after the restart")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked, enqueued, "every task done, nothing extra");
    assert_eq!(
        redelivered_after_ack.load(Ordering::SeqCst),
        0,
        "acked tasks never come back"
    );
    assert!(q
        .claim(TOPIC, "late", LONG, Duration::from_millis(500))
        .await
        .unwrap()
        .is_none());
    assert_eq!(depth(&*q).await, (0, 0, 0));
    eprintln!(
        "etcd restart: {} errors seen by workers during the outage",
        errors.load(Ordering::Relaxed)
    );
}

/// The dead-letter routes and the queue metrics of a running datacenter, over HTTP.
#[cfg(feature = "client")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_over_http() {
    use datacenter::api::{DeadLetter, PurgedDead, RequeuedTask};
    use datacenter::service::{start, DatacenterConfig};

    const TOKEN: &str = "queue-test-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let running = start(DatacenterConfig {
        workers: 1,
        ..DatacenterConfig::new(
            "q",
            "127.0.0.1:0".parse().unwrap(),
            dir.path().to_path_buf(),
            TOKEN.into(),
        )
    })
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let queue = running.datacenter.queue.clone();

    // Dead letters as the embedded queue keeps them (its default of five attempts with
    // growing delays would take a while to exhaust): a topic no worker serves.
    let db = dir.path().join("queue.db");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    let ids = ["00000000000000010000000a", "00000000000000020000000b"];
    for (n, id) in ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO queue_dead (id, topic, payload, dedupe_key, attempts, reason, enqueued_at, died_at, seq)
             VALUES (?1, 'ops', ?2, NULL, 5, 'boom', 1, 2, NULL)",
        )
        .bind(id)
        .bind(json!({ "n": n }).to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    }

    let http = reqwest::Client::new();
    let url = |path: &str| format!("{base}{path}");
    let unauthorized = http.get(url("/v1/queue/ops/dead")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);

    let dead: Vec<DeadLetter> = http
        .get(url("/v1/queue/ops/dead?limit=10"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].id, ids[0]);
    assert_eq!(dead[0].topic, "ops");
    assert_eq!(dead[0].attempts, 5);
    assert_eq!(dead[0].reason, "boom");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&dead[0].payload).unwrap(),
        json!({ "n": 0 })
    );
    let bad_topic = http
        .get(url("/v1/queue/no%2Fslash/dead"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_topic.status(), 422);

    let requeued: RequeuedTask = http
        .post(url(&format!("/v1/queue/ops/dead/{}/requeue", ids[0])))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        requeued,
        RequeuedTask {
            id: ids[0].into(),
            deduplicated: false
        }
    );
    let task = queue
        .claim("ops", "test", LONG, Duration::from_secs(2))
        .await
        .unwrap()
        .expect("requeued");
    assert_eq!((task.id.as_str(), task.attempt), (ids[0], 1));
    for (path, status) in [
        (format!("/v1/queue/ops/dead/{}/requeue", ids[0]), 404),
        ("/v1/queue/ops/dead/not-an-id/requeue".to_string(), 422),
    ] {
        let resp = http
            .post(url(&path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
    }

    // The scrape shows the queue: counters of this process, depth read at the scrape.
    let metrics = http
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &metrics,
            "cloudport_datacenter_queue_requeued_total",
            "topic=\"ops\""
        ),
        Some(1)
    );
    assert_eq!(
        sample(
            &metrics,
            "cloudport_datacenter_queue_depth",
            "topic=\"ops\",state=\"in_flight\""
        ),
        Some(1)
    );
    assert_eq!(
        sample(
            &metrics,
            "cloudport_datacenter_queue_depth",
            "topic=\"ops\",state=\"dead\""
        ),
        Some(1)
    );
    queue.ack(&task).await.unwrap();

    let purge = |query: &'static str| {
        let (http, url) = (http.clone(), url(&format!("/v1/queue/ops/dead{query}")));
        async move {
            let purged: PurgedDead = http
                .delete(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            purged.purged
        }
    };
    assert_eq!(purge("?id=00000000000000020000000b").await, 1);
    assert_eq!(purge("?id=00000000000000020000000b").await, 0);
    assert_eq!(purge("").await, 0);
    assert_eq!(queue.depth("ops").await.unwrap(), QueueDepth::default());

    let doc: serde_json::Value = http
        .get(url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = &doc["paths"];
    assert!(paths["/v1/queue/{topic}/dead"]["get"].is_object());
    assert!(paths["/v1/queue/{topic}/dead"]["delete"].is_object());
    assert!(paths["/v1/queue/{topic}/dead/{id}/requeue"]["post"].is_object());
    assert!(doc["components"]["schemas"]["DeadLetter"].is_object());
    running.server.abort();
}
