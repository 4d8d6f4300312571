//! One contract, two backends: every case in `cases` runs against the embedded (SQLite)
//! queue and against a real etcd started by the test.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datacenter::queue::{
    Claimed, EmbeddedQueue, EtcdQueue, NewTask, QueueDepth, QueueError, QueueOptions, TaskQueue,
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

fn opts() -> QueueOptions {
    QueueOptions {
        poll_interval: Duration::from_millis(250),
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

async fn depth(q: &dyn TaskQueue) -> (u64, u64, u64) {
    let QueueDepth {
        ready,
        in_flight,
        dead,
    } = q.depth(TOPIC).await.expect("depth");
    (ready, in_flight, dead)
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
            workers.push(tokio::spawn(async move {
                let name = format!("worker-{w}");
                while acked.load(Ordering::SeqCst) < TASKS {
                    let Some(task) = claim(&*q, &name, LONG, Duration::from_millis(300)).await
                    else {
                        continue;
                    };
                    seen.lock().unwrap().push(task.id.clone());
                    q.ack(&task).await.expect("ack of a task we hold");
                    acked.fetch_add(1, Ordering::SeqCst);
                }
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
        lapsed_final_attempt_dead_letters,
        dedupe_keys,
        payload_is_bounded,
        depth_counts,
        killed_worker_loses_nothing,
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
        lapsed_final_attempt_dead_letters,
        dedupe_keys,
        payload_is_bounded,
        depth_counts,
        killed_worker_loses_nothing,
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
