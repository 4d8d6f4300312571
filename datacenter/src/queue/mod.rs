//! The datacenter's durable task queue: the seam between API handlers, which enqueue work
//! (builds, deploys, scale operations), and the workers that carry it out.
//!
//! Delivery is at-least-once. A claim is a lease: a worker that dies without acking loses
//! its lease and the task is handed out again with `attempt + 1`, so handlers must be
//! idempotent (see `docs/queue.md`). Two backends implement the same [`TaskQueue`]
//! contract and pass the same test suite:
//!
//! - [`EmbeddedQueue`]: a SQLite file, the zero-config default for a single process.
//! - [`EtcdQueue`]: etcd, for datacenters that run several `cloudport datacenter` processes.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

pub mod embedded;
pub mod etcd;
pub mod stats;

pub use embedded::EmbeddedQueue;
pub use etcd::EtcdQueue;

/// Attempts before a task goes to the dead-letter list, unless configured otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Largest accepted payload (its JSON text), unless configured otherwise.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Delay before a failed task's first retry, unless configured otherwise; it doubles with
/// every further failure.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest delay between retries, unless configured otherwise.
pub const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
/// Longest lease a claim may ask for; a longer one would hide a dead worker for too long.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);
const MAX_TOPIC_LEN: usize = 128;
const MAX_DEDUPE_KEY_LEN: usize = 512;
const MAX_WORKER_LEN: usize = 256;
const MAX_REASON_LEN: usize = 8 * 1024;

#[async_trait::async_trait]
pub trait TaskQueue: Send + Sync + 'static {
    /// Adds a task; with a dedupe key, a task with the same key still pending or in flight
    /// on that topic is returned instead of a new one.
    async fn enqueue(&self, topic: &str, task: NewTask) -> Result<Enqueued, QueueError>;

    /// Waits up to `wait` for the oldest ready task of `topic` (FIFO per topic) and leases
    /// it to `worker` for `lease`. `Ok(None)` when nothing became ready in time.
    async fn claim(
        &self,
        topic: &str,
        worker: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claimed>, QueueError>;

    /// Heartbeat: the lease now ends `lease` from now.
    ///
    /// `renew`, `ack` and `fail` all answer [`QueueError::LeaseLost`] once the lease has run
    /// out: the task is (or will be) handed to another worker, so stop working on it.
    async fn renew(&self, task: &Claimed, lease: Duration) -> Result<(), QueueError>;

    /// Done: the task is removed and never delivered again.
    async fn ack(&self, task: &Claimed) -> Result<(), QueueError>;

    /// Failed attempt: back to the queue at its original place once its retry delay has
    /// passed ([`QueueOptions::retry_delay_for`]: `retry_delay` × 2^(attempt-1), at most
    /// `max_retry_delay`), or to the dead-letter list once attempts reach the queue's
    /// `max_attempts`.
    async fn fail(&self, task: &Claimed, reason: &str) -> Result<(), QueueError>;

    /// `ack(done)`, then `claim` on `done`'s topic, in as few round trips as the backend
    /// allows (etcd: the ack and the claim of the next cached ready task are one
    /// transaction). The ack is durable before anything is returned; if it fails (say with
    /// [`QueueError::LeaseLost`]) nothing is claimed and the error is returned.
    async fn ack_and_claim(
        &self,
        done: &Claimed,
        worker: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claimed>, QueueError> {
        self.ack(done).await?;
        self.claim(&done.topic, worker, lease, wait).await
    }

    /// Dead tasks of `topic`, oldest enqueued first.
    async fn dead_letters(&self, topic: &str, limit: usize) -> Result<Vec<DeadTask>, QueueError>;

    /// Puts a dead task back in the queue: ready at once, at its original place (it keeps its
    /// id, payload and dedupe key), with its attempts reset to zero.
    ///
    /// If another task now holds its dedupe key, that task is returned with
    /// `deduplicated: true` and the dead letter stays where it is. A dead task that does not
    /// exist (any more) is [`QueueError::NotFound`].
    async fn requeue_dead(&self, topic: &str, id: &str) -> Result<Enqueued, QueueError>;

    /// Deletes one dead task (`Some(id)`) or all of the topic's; returns how many went.
    async fn purge_dead(&self, topic: &str, id: Option<&str>) -> Result<u64, QueueError>;

    async fn depth(&self, topic: &str) -> Result<QueueDepth, QueueError>;
}

/// Settings shared by both backends.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Attempts (claims) a task gets before it is dead-lettered.
    pub max_attempts: u32,
    /// Limit on the payload's JSON text, in bytes.
    pub max_payload_bytes: usize,
    /// How often a waiting claimer looks again without being woken. Wake-ups on enqueue
    /// make this a fallback, so it can be slow.
    pub poll_interval: Duration,
    /// How long one operation keeps retrying a busy or unreachable backend before it gives
    /// up (SQLite busy timeout; etcd reconnect budget).
    pub backend_timeout: Duration,
    /// Embedded only: fsync every commit (`synchronous=FULL`) instead of at WAL checkpoints
    /// (`NORMAL`). `NORMAL` loses nothing when the process dies, only on power loss.
    pub sync_every_commit: bool,
    /// How long a task that failed its first attempt waits before it is ready again; the
    /// delay doubles with every further failed attempt. Zero: failed tasks are ready at once.
    pub retry_delay: Duration,
    /// The longest retry delay.
    pub max_retry_delay: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            poll_interval: Duration::from_secs(1),
            backend_timeout: Duration::from_secs(10),
            sync_every_commit: false,
            retry_delay: DEFAULT_RETRY_DELAY,
            max_retry_delay: DEFAULT_MAX_RETRY_DELAY,
        }
    }
}

impl QueueOptions {
    /// How long a task waits after failing attempt `attempt` (1 for its first delivery):
    /// `retry_delay` × 2^(attempt-1), at most `max_retry_delay`.
    pub fn retry_delay_for(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.retry_delay
            .checked_mul(1u32 << doublings)
            .unwrap_or(Duration::MAX)
            .min(self.max_retry_delay)
    }

    pub(crate) fn check(&self) -> Result<(), QueueError> {
        if self.max_attempts == 0 {
            return Err(QueueError::Invalid {
                what: "max_attempts",
                reason: "must be at least 1".into(),
            });
        }
        if self.max_retry_delay > MAX_LEASE {
            return Err(QueueError::Invalid {
                what: "max_retry_delay",
                reason: format!("must be at most {MAX_LEASE:?}"),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub payload: Value,
    pub dedupe_key: Option<String>,
}

impl NewTask {
    pub fn new(payload: Value) -> Self {
        Self {
            payload,
            dedupe_key: None,
        }
    }

    pub fn with_dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    /// True when an existing task with the same dedupe key was returned.
    pub deduplicated: bool,
}

/// A leased task. Keep it to `renew`, `ack` or `fail` the claim.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub topic: String,
    pub payload: Value,
    /// 1 on the first delivery, then +1 for every redelivery (failure or lost lease).
    pub attempt: u32,
    pub worker: String,
    pub dedupe_key: Option<String>,
    /// Unix milliseconds.
    pub enqueued_at_ms: i64,
    /// Proves this claim (and not a later one of the same task) to the backend.
    pub(crate) token: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadTask {
    pub id: String,
    pub topic: String,
    pub payload: Value,
    pub dedupe_key: Option<String>,
    pub attempts: u32,
    /// The last failure: the worker's reason, or a note that its lease expired.
    pub reason: String,
    pub enqueued_at_ms: i64,
    pub died_at_ms: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Claimable now.
    pub ready: u64,
    /// Failed, waiting for their retry delay to pass.
    pub delayed: u64,
    /// Claimed, their lease running.
    pub in_flight: u64,
    pub dead: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("task payload is {size} bytes, over the {limit}-byte limit")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("the lease on task {id} was lost (expired, or the task was claimed again)")]
    LeaseLost { id: String },
    #[error("no {what} {id}")]
    NotFound { what: &'static str, id: String },
    #[error("queue backend unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt queue record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("sqlite: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("payload encoding: {0}")]
    Json(#[from] serde_json::Error),
}

// ---- helpers shared by the backends ----

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Task ids sort in enqueue order (they are etcd keys, and etcd ranges come back sorted by
/// key): microseconds since the epoch, forced strictly increasing within the process, then
/// random bits so that two processes never mint the same id.
pub(crate) fn new_task_id() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    let stamp = loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => prev = seen,
        }
    };
    format!("{stamp:016x}{:08x}", rand::random::<u32>())
}

pub(crate) fn new_token() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Topics become etcd key segments, so they stay a plain, slash-free alphabet.
pub(crate) fn check_topic(topic: &str) -> Result<(), QueueError> {
    let ok = !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(QueueError::Invalid {
            what: "topic",
            reason: format!("{topic:?}: use 1-{MAX_TOPIC_LEN} characters from A-Z a-z 0-9 - _ . :"),
        })
    }
}

pub(crate) fn check_worker(worker: &str) -> Result<(), QueueError> {
    if worker.is_empty() || worker.len() > MAX_WORKER_LEN {
        return Err(QueueError::Invalid {
            what: "worker",
            reason: format!("worker names have 1-{MAX_WORKER_LEN} bytes"),
        });
    }
    Ok(())
}

/// Task ids are what `new_task_id` makes; checked where callers name one (dead letters).
pub(crate) fn check_task_id(id: &str) -> Result<(), QueueError> {
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(QueueError::Invalid {
            what: "task id",
            reason: format!("{id:?} is not a task id (24 hex digits)"),
        })
    }
}

pub(crate) fn check_lease(lease: Duration) -> Result<(), QueueError> {
    if lease < Duration::from_millis(100) || lease > MAX_LEASE {
        return Err(QueueError::Invalid {
            what: "lease",
            reason: format!("{lease:?} is outside 100ms..{MAX_LEASE:?}"),
        });
    }
    Ok(())
}

/// Validates the task and returns its payload as JSON text.
pub(crate) fn encode_task(task: &NewTask, opts: &QueueOptions) -> Result<String, QueueError> {
    if let Some(key) = &task.dedupe_key {
        if key.is_empty() || key.len() > MAX_DEDUPE_KEY_LEN {
            return Err(QueueError::Invalid {
                what: "dedupe key",
                reason: format!("dedupe keys have 1-{MAX_DEDUPE_KEY_LEN} bytes"),
            });
        }
    }
    let text = serde_json::to_string(&task.payload)?;
    if text.len() > opts.max_payload_bytes {
        return Err(QueueError::PayloadTooLarge {
            size: text.len(),
            limit: opts.max_payload_bytes,
        });
    }
    Ok(text)
}

/// Reasons are stored; a handler that dumps a huge error must not bloat the store.
pub(crate) fn clip_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON_LEN {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &reason[..end], reason.len() - end)
}

/// One `Notify` per topic, so an enqueue wakes a claimer of that topic and no other.
#[derive(Default)]
pub(crate) struct Wakers(Mutex<HashMap<String, Arc<Notify>>>);

impl Wakers {
    fn get(&self, topic: &str) -> Arc<Notify> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(topic.to_owned()).or_default().clone()
    }

    /// One task became ready: wake one claimer. `notify_one` keeps a permit when nobody
    /// waits, and passes the wake-up on if the woken claimer gives up, so none is lost.
    pub(crate) fn wake_one(&self, topic: &str) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = map.get(topic) {
            notify.notify_one();
        }
    }

    /// Something may have been missed (a reconnect): every claimer looks again.
    pub(crate) fn wake_all(&self) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for notify in map.values() {
            notify.notify_waiters();
        }
    }
}

/// Claimers of this process waiting for a task, per topic, first come first served. An
/// enqueue of this process that finds nothing older ready hands its new task straight to
/// the first of them, claimed in the enqueue's own write (one write for enqueue and claim,
/// no wake-up and second look).
#[derive(Default)]
pub(crate) struct Waiters {
    queues: Mutex<HashMap<String, VecDeque<Waiter>>>,
    next: AtomicU64,
}

pub(crate) struct Waiter {
    ticket: u64,
    pub(crate) worker: String,
    pub(crate) lease: Duration,
    tx: oneshot::Sender<Claimed>,
}

impl Waiter {
    /// Gives the claimer its task; `Err` with the task if the claimer is gone (its claim
    /// was cancelled): the caller must undo the claim.
    pub(crate) fn deliver(self, task: Claimed) -> Result<(), Claimed> {
        self.tx.send(task)
    }
}

/// A claimer's place among the waiters; dropping it (however the claim ends, including
/// cancellation) takes the claimer off the list.
struct WaitTicket<'a> {
    waiters: &'a Waiters,
    topic: &'a str,
    ticket: u64,
}

impl WaitTicket<'_> {
    /// Off the list; false if an enqueue took it first (and is handing a task over).
    fn leave(&self) -> bool {
        let mut all = self
            .waiters
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(queue) = all.get_mut(self.topic) else {
            return false;
        };
        let before = queue.len();
        queue.retain(|w| w.ticket != self.ticket);
        let left = queue.len() < before;
        if queue.is_empty() {
            all.remove(self.topic);
        }
        left
    }
}

impl Drop for WaitTicket<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Waiters {
    fn add<'a>(
        &'a self,
        topic: &'a str,
        worker: &str,
        lease: Duration,
        tx: oneshot::Sender<Claimed>,
    ) -> WaitTicket<'a> {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(topic.to_owned())
            .or_default()
            .push_back(Waiter {
                ticket,
                worker: worker.to_owned(),
                lease,
                tx,
            });
        WaitTicket {
            waiters: self,
            topic,
            ticket,
        }
    }

    /// The first claimer still waiting on `topic`.
    pub(crate) fn take(&self, topic: &str) -> Option<Waiter> {
        let mut all = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let queue = all.get_mut(topic)?;
        let waiter = loop {
            let waiter = queue.pop_front()?;
            if !waiter.tx.is_closed() {
                break waiter;
            }
        };
        if queue.is_empty() {
            all.remove(topic);
        }
        Some(waiter)
    }
}

/// What one claim attempt found.
pub(crate) enum Attempt {
    Claimed(Claimed),
    /// Nothing ready; `retry_in` is when a lease (or retry delay) is known to run out.
    Empty {
        retry_in: Option<Duration>,
    },
}

/// The waiting part of `claim`, shared by the backends: try, then wait until woken, handed
/// a task by an enqueue of this process, the next known lease expiry, the poll interval or
/// the deadline, whichever comes first.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn claim_loop<F, Fut>(
    wakers: &Wakers,
    waiters: &Waiters,
    topic: &str,
    worker: &str,
    lease: Duration,
    wait: Duration,
    poll_interval: Duration,
    mut try_claim: F,
) -> Result<Option<Claimed>, QueueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt, QueueError>>,
{
    let deadline = Instant::now() + wait;
    let notify = wakers.get(topic);
    loop {
        // Registered before looking, so an enqueue that lands during the attempt still
        // wakes us instead of slipping between the look and the sleep.
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let retry_in = match try_claim().await? {
            Attempt::Claimed(task) => return Ok(Some(task)),
            Attempt::Empty { retry_in } => retry_in,
        };
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let mut nap = poll_interval.min(deadline - now);
        if let Some(retry_in) = retry_in {
            nap = nap.min(retry_in);
        }
        let (tx, mut rx) = oneshot::channel();
        let ticket = waiters.add(topic, worker, lease, tx);
        let handed = tokio::select! {
            handed = &mut rx => Some(handed),
            _ = &mut notified => None,
            _ = tokio::time::sleep(nap) => None,
        };
        match handed {
            Some(Ok(task)) => return Ok(Some(task)),
            // The enqueue that took us could not hand its task over: look again.
            Some(Err(_)) => {}
            None if ticket.leave() => {}
            // An enqueue took us just now: its task is on the way, or the enqueue gives up
            // (dropping the sender) and we look again.
            None => {
                if let Ok(task) = rx.await {
                    return Ok(Some(task));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_task_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|id| id.len() == 24));
    }

    #[test]
    fn topics_are_checked() {
        assert!(check_topic("builds").is_ok());
        assert!(check_topic("team-a.builds:v1").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("a/b").is_err());
        assert!(check_topic(&"x".repeat(129)).is_err());
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let opts = QueueOptions {
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(300),
            ..Default::default()
        };
        let delays: Vec<u64> = (1..=11)
            .map(|attempt| opts.retry_delay_for(attempt).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(opts.retry_delay_for(0), Duration::from_secs(1));
        assert_eq!(opts.retry_delay_for(u32::MAX), Duration::from_secs(300));
        let off = QueueOptions {
            retry_delay: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(off.retry_delay_for(7), Duration::ZERO);
    }

    #[test]
    fn task_ids_are_checked() {
        assert!(check_task_id(&new_task_id()).is_ok());
        assert!(check_task_id("../../x").is_err());
        assert!(check_task_id("").is_err());
    }

    #[test]
    fn reasons_are_clipped_on_char_boundaries() {
        let long = "é".repeat(10_000);
        let clipped = clip_reason(&long);
        assert!(clipped.len() < long.len());
        assert!(clipped.ends_with("bytes cut)"));
    }
}
