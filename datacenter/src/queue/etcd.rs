//! The queue on etcd, for datacenters served by several processes.
//!
//! Keys, all under the queue's prefix `P` (task ids sort in enqueue order, so a plain
//! key-ordered range is FIFO):
//!
//! | key                 | value                                   | lives                      |
//! |---------------------|-----------------------------------------|----------------------------|
//! | `P/t/{topic}/{id}`  | task: payload, dedupe key, enqueue time | enqueue → ack / dead       |
//! | `P/c/{topic}/{id}`  | claim token, attached to an etcd lease;  | claim → ack / fail / expiry|
//! |                     | or `retry@{ms}`, no lease: failed, ready | fail → next claim          |
//! |                     | again at that time                       |                            |
//! | `P/a/{topic}/{id}`  | last worker; its *version* = attempts    | first claim → ack / dead   |
//! | `P/k/{topic}/{key}` | id of the task holding the dedupe key   | enqueue → ack / dead       |
//! | `P/x/{topic}/{id}`  | dead task                               | dead → requeue / purge     |
//!
//! A task is ready when it has no claim key, or a retry mark whose time has come. Claiming
//! is one transaction that creates the claim key only if it is still what the claimer saw
//! (absent, or that retry mark), so two workers can never both hold a task; a dead worker's
//! claim key is deleted by etcd when its lease runs out, which makes the task ready again.
//! Every other change compares the claim token, so a worker whose lease ran out cannot ack
//! or fail a task that is now someone else's.
//!
//! etcd's write rate is what limits throughput, so a task costs at most three writes
//! (enqueue, claim, ack) and nothing else: claims made within half a second of each other
//! with the same lease share one etcd lease, granted half a second longer and never kept
//! alive (a claim lasts between `lease` and `lease` + 1.5 s: whole-second TTLs, and etcd
//! checks expiries every 500 ms), so no grant or revoke is paid per task; the ready tasks
//! found by one scan (a local, serializable read) are handed to this process's claimers one
//! by one until a release (fail, lease expiry) seen on the watch makes them stale, and when
//! that scan reached the end of the topic, tasks enqueued since are added as they are
//! enqueued (or seen on the watch), so an idle worker claims a new task without scanning.
//! Two writes are saved where they can be: an enqueue that finds a claimer of this process
//! waiting (and nothing older ready) claims the task for it in the enqueue's own
//! transaction (the hand-over), and `ack_and_claim` acks a task and claims the next one in
//! a single transaction (a nested one for the claim), so a busy worker pays one write per
//! task instead of two.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, GetResponse, KeyValue, PutOptions, Txn,
    TxnOp, TxnOpResponse, TxnResponse, WatchFilterType, WatchOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::stats::{Event, QueueStats};
use super::{
    check_lease, check_task_id, check_topic, check_worker, claim_loop, clip_reason, encode_task,
    new_task_id, new_token, now_ms, Attempt, Claimed, DeadTask, Enqueued, NewTask, QueueDepth,
    QueueError, QueueOptions, TaskQueue, Waiter, Waiters, Wakers,
};

/// One request to etcd; past it the request counts as failed and is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Tasks looked at per claim scan, beyond the ones known to be in flight.
const SCAN_WINDOW: i64 = 64;
/// Tasks the watch may add to a topic's candidates between two scans.
const MAX_CANDIDATES: usize = 1024;
/// Lost compare-and-swaps one claim attempt accepts before it lets the caller wait.
const MAX_LOST_RACES: usize = 8;
/// How long the candidates of a scan are trusted. Releases we hear of (fail, lease expiry)
/// clear them at once; this bounds what we might not hear of (a lost watch).
const CANDIDATES_TTL: Duration = Duration::from_secs(1);

/// Claims this close together (with the same lease) share one etcd lease.
const LEASE_SHARING: Duration = Duration::from_millis(500);

/// The value of a failed task's claim key while it waits for its retry: `retry@{unix ms}`.
/// Claim tokens are hex, so the two never look alike.
const RETRY_MARK: &str = "retry@";

fn retry_mark(ready_at_ms: i64) -> String {
    format!("{RETRY_MARK}{ready_at_ms}")
}

/// When a claim key's value is a retry mark, the time (unix ms) the task is ready again.
fn retry_at(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value.strip_prefix(RETRY_MARK.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

/// The etcd-backed [`TaskQueue`]. Cheap to clone; clones share the connection and watcher.
#[derive(Clone)]
pub struct EtcdQueue {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    watcher: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

struct Shared {
    endpoints: Vec<String>,
    prefix: String,
    opts: QueueOptions,
    /// The client and a generation number, so that of many callers who see the same
    /// broken connection only the first replaces it.
    conn: Mutex<(u64, Client)>,
    wakers: Wakers,
    /// Shared leases by TTL: (lease id, when it was asked for).
    leases: Mutex<HashMap<i64, (i64, Instant)>>,
    /// Tasks (`topic/id`) this process is claiming or holds, and until when: its other
    /// claimers skip them rather than lose a compare-and-swap in etcd, which costs a write
    /// all the same. A scan can predate a claim's commit, so the claims in etcd alone are
    /// not enough to tell.
    local: Mutex<HashMap<String, Instant>>,
    /// Per topic: ready tasks from the last scan, oldest first, handed out to this
    /// process's claimers one by one. etcd 3.4 walks the whole key range for a limited
    /// range request, so a scan costs as much as the backlog is long: do it rarely.
    candidates: Mutex<HashMap<String, Candidates>>,
    /// One scan per topic at a time; the claimers that queue behind it use its result.
    scan_gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Claim keys (`topic/id`) this process deletes as done (ack, dead letter): their
    /// deletion on the watch is no release and must not throw the candidates away.
    finishing: Mutex<HashMap<String, Instant>>,
    stats: Arc<QueueStats>,
    /// This process's claimers waiting for a task: an enqueue of this process that finds
    /// nothing older ready claims its new task for the first of them in its own
    /// transaction (enqueue and claim in one write).
    waiters: Waiters,
}

/// What one scan of a topic found, and what the watch added since.
struct Candidates {
    /// Ready tasks, oldest first.
    ready: VecDeque<Candidate>,
    fetched: Instant,
    /// The scan saw the topic's last task: tasks enqueued after it (seen on the watch, in
    /// id order) can be appended without breaking FIFO order.
    complete: bool,
    /// The revision the scan read at; watch events up to it are already in `ready`.
    revision: i64,
    /// The largest task id the scan saw, held or not.
    last_id: Option<String>,
    /// Tasks offered since the scan (by the enqueue or the watch).
    offered: HashSet<String>,
    /// When the first failed task waiting for its retry becomes ready.
    next_retry: Option<Instant>,
}

struct Candidate {
    id: String,
    /// The retry mark on its claim key, if it failed before: the claim must find it there.
    retry: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct TaskRecord {
    payload: Value,
    dedupe_key: Option<String>,
    enqueued_at_ms: i64,
}

/// A `TaskRecord` as the enqueue writes it, without copying the payload.
#[derive(Serialize)]
struct TaskRecordRef<'a> {
    payload: &'a Value,
    dedupe_key: Option<&'a str>,
    enqueued_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct DeadRecord {
    payload: Value,
    dedupe_key: Option<String>,
    attempts: u32,
    reason: String,
    enqueued_at_ms: i64,
    died_at_ms: i64,
}

impl EtcdQueue {
    /// Connects to etcd at `endpoints` (`http://host:port`) and keeps the queue's keys under
    /// `prefix` (e.g. `/cloudport/dc-eu1/queue`). Fails if etcd does not answer within
    /// `opts.backend_timeout`; after that, lost connections are re-established by themselves.
    pub async fn connect(
        endpoints: &[String],
        prefix: &str,
        opts: QueueOptions,
    ) -> Result<Self, QueueError> {
        if endpoints.is_empty() {
            return Err(QueueError::Invalid {
                what: "etcd endpoints",
                reason: "none given".into(),
            });
        }
        opts.check()?;
        let prefix = prefix.trim_end_matches('/').to_owned();
        if prefix.is_empty() {
            // An empty prefix would make the queue's ranges cover the whole keyspace.
            return Err(QueueError::Invalid {
                what: "etcd prefix",
                reason: "must not be empty".into(),
            });
        }
        let client = new_client(endpoints).await?;
        let stats = QueueStats::register(format!("etcd:{}{prefix}", endpoints.join(",")));
        let shared = Arc::new(Shared {
            endpoints: endpoints.to_vec(),
            prefix,
            opts,
            conn: Mutex::new((0, client)),
            wakers: Wakers::default(),
            leases: Mutex::default(),
            local: Mutex::default(),
            candidates: Mutex::default(),
            scan_gates: Mutex::default(),
            finishing: Mutex::default(),
            stats,
            waiters: Waiters::default(),
        });
        // A wrong address should fail here, not at the first enqueue.
        let probe = format!("{}/", shared.prefix);
        shared
            .call("connect", |mut c| {
                let probe = probe.clone();
                async move {
                    c.get(
                        probe,
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                    .await
                }
            })
            .await?;
        let watcher = tokio::spawn(watch_loop(shared.clone()));
        let inner = Arc::new(Inner { shared, watcher });
        let weak = Arc::downgrade(&inner);
        inner.shared.stats.set_depth_source(move |topic| {
            let queue = EtcdQueue {
                inner: weak.upgrade()?,
            };
            Some(Box::pin(async move { queue.depth(&topic).await }))
        });
        Ok(Self { inner })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }
}

async fn new_client(endpoints: &[String]) -> Result<Client, QueueError> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        // HTTP/2 pings notice a dead server (or a silent network) even between requests.
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    match tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(endpoints, Some(options))).await {
        Ok(client) => Ok(client?),
        Err(_) => Err(QueueError::Unavailable(format!(
            "etcd at {endpoints:?}: connect timed out"
        ))),
    }
}

/// Errors worth another try: the server is down, restarting, electing, or overloaded.
fn is_transient(e: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::TransportError(_) | E::IoError(_) | E::WatchError(_) | E::LeaseKeepAliveError(_) => true,
        E::GRpcStatus(s) => matches!(
            s.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Cancelled
                | Code::Aborted
                | Code::ResourceExhausted
        ),
        _ => false,
    }
}

/// etcd lease TTLs are whole seconds; round up so a claim never ends early, even on a
/// shared lease asked for up to `LEASE_SHARING` before the claim.
fn ttl_secs(lease: Duration) -> i64 {
    ((lease + LEASE_SHARING).as_millis().div_ceil(1000) as i64).max(1)
}

fn is_lease_not_found(e: &QueueError) -> bool {
    match e {
        QueueError::Etcd(etcd_client::Error::GRpcStatus(s)) => {
            s.code() == tonic::Code::NotFound && s.message().contains("lease")
        }
        _ => false,
    }
}

/// Ends this process's hold on a task after an ack or fail, however that ends: a task
/// that is back in the queue may be claimed at once; a finished one is still skipped for a
/// while, because scans from before it finished may still list it.
struct Released<'a> {
    shared: &'a Shared,
    task: &'a Claimed,
    gone: bool,
}

impl<'a> Released<'a> {
    fn new(shared: &'a Shared, task: &'a Claimed) -> Self {
        Self {
            shared,
            task,
            gone: false,
        }
    }
}

impl Drop for Released<'_> {
    fn drop(&mut self) {
        let key = format!("{}/{}", self.task.topic, self.task.id);
        let mut local = self.shared.local.lock().unwrap_or_else(|e| e.into_inner());
        if self.gone {
            local.insert(key, Instant::now() + CANDIDATES_TTL);
        } else {
            local.remove(&key);
        }
    }
}

/// Marks a task as taken by this process while a claim attempt runs; released however the
/// attempt ends (including cancellation) unless the claim succeeded.
struct Reservation<'a> {
    local: &'a Mutex<HashMap<String, Instant>>,
    key: String,
    claimed: bool,
}

impl Reservation<'_> {
    /// The claim went through: keep other claimers away until its lease ends.
    fn hold_until(mut self, until: Instant) {
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(std::mem::take(&mut self.key), until);
        self.claimed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.claimed {
            self.local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.key);
        }
    }
}

impl Shared {
    fn client(&self) -> (u64, Client) {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        (conn.0, conn.1.clone())
    }

    /// Replaces the client after repeated failures. tonic reconnects a channel by itself,
    /// but a balanced channel can keep a dead endpoint around; a fresh client is certain.
    async fn reconnect(&self, seen: u64) {
        if self.client().0 != seen {
            return;
        }
        match new_client(&self.endpoints).await {
            Ok(client) => {
                let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
                if conn.0 == seen {
                    *conn = (seen + 1, client);
                }
            }
            Err(e) => tracing::debug!(error = %e, "etcd reconnect failed"),
        }
    }

    /// Runs one request, retrying transient failures with backoff (and a fresh connection)
    /// until `backend_timeout`. Returns the result and whether it took more than one try:
    /// after a failed try the request may have been applied anyway, which callers of
    /// non-idempotent requests must allow for.
    async fn call_tracked<T, F, Fut>(
        &self,
        what: &'static str,
        mut op: F,
    ) -> Result<(T, bool), QueueError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut failures = 0u32;
        loop {
            let (generation, client) = self.client();
            let error = match tokio::time::timeout(REQUEST_TIMEOUT, op(client)).await {
                Ok(Ok(value)) => return Ok((value, failures > 0)),
                Ok(Err(e)) if !is_transient(&e) => return Err(e.into()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {REQUEST_TIMEOUT:?}"),
            };
            failures += 1;
            if started.elapsed() + backoff > self.opts.backend_timeout {
                return Err(QueueError::Unavailable(format!(
                    "etcd {what}: {error} (gave up after {failures} tries in {:?})",
                    started.elapsed()
                )));
            }
            tracing::debug!(what, failures, %error, "etcd request failed, retrying");
            if failures >= 2 {
                self.reconnect(generation).await;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, QueueError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        Ok(self.call_tracked(what, op).await?.0)
    }

    async fn txn_tracked(
        &self,
        what: &'static str,
        txn: Txn,
    ) -> Result<(TxnResponse, bool), QueueError> {
        self.call_tracked(what, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    async fn txn(&self, what: &'static str, txn: Txn) -> Result<TxnResponse, QueueError> {
        Ok(self.txn_tracked(what, txn).await?.0)
    }

    fn key(&self, kind: &str, topic: &str, rest: &str) -> String {
        format!("{}/{kind}/{topic}/{rest}", self.prefix)
    }

    fn dir(&self, kind: &str, topic: &str) -> String {
        format!("{}/{kind}/{topic}/", self.prefix)
    }

    /// An etcd lease that outlives `lease` from now: a recent shared one, or a new one.
    async fn lease_for(&self, lease: Duration) -> Result<i64, QueueError> {
        let ttl = ttl_secs(lease);
        if let Some(&(id, asked)) = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ttl)
        {
            if asked.elapsed() < LEASE_SHARING {
                return Ok(id);
            }
        }
        // Timed from before the request, so the lease surely ends no earlier than we think.
        let asked = Instant::now();
        let resp = self
            .call("lease grant", |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ttl, (resp.id(), asked));
        Ok(resp.id())
    }

    /// A shared lease etcd no longer knows (say it was lost with a restored snapshot).
    fn forget_lease(&self, id: i64) {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (lease, _)| *lease != id);
    }

    fn reserve(&self, topic: &str, id: &str) -> Option<Reservation<'_>> {
        let key = format!("{topic}/{id}");
        let now = Instant::now();
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if local.len() > 4096 {
            // Claims whose holder never acked (it died): their leases have run out.
            local.retain(|_, until| *until > now);
        }
        if local.get(&key).is_some_and(|until| *until > now) {
            return None;
        }
        local.insert(
            key.clone(),
            now + REQUEST_TIMEOUT + self.opts.backend_timeout,
        );
        Some(Reservation {
            local: &self.local,
            key,
            claimed: false,
        })
    }

    /// A task was released (failed, or its lease ran out): it goes before the cached
    /// candidates, so they must be looked up again.
    fn forget_candidates(&self, topic: &str) {
        self.candidates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
    }

    /// A task put under `t/` at `revision` (a new task, or a requeued dead one). When the
    /// last scan of its topic saw the topic's end, or the task sorts inside what the scan
    /// saw, it joins the candidates in id order, so a claimer takes it without a scan.
    ///
    /// Both the enqueue (for this process's own tasks) and the watch offer a task; false
    /// when it was offered before, so only the first of the two wakes a claimer.
    fn offer_candidate(&self, topic: &str, id: &str, revision: i64) -> bool {
        let mut all = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = all.get_mut(topic) else {
            return true;
        };
        if c.fetched.elapsed() > CANDIDATES_TTL {
            // Nobody claimed for a while (the workers are busy): no use growing it.
            all.remove(topic);
            return true;
        }
        if revision <= c.revision {
            return true; // the scan has it already
        }
        if !c.offered.insert(id.to_owned()) {
            return false;
        }
        if c.complete && c.ready.len() >= MAX_CANDIDATES {
            // Enough at hand: later tasks are left to the next scan.
            c.complete = false;
            let back = c.ready.back().map(|last| last.id.clone());
            c.last_id = c.last_id.take().max(back);
        }
        if c.complete || c.last_id.as_deref().is_some_and(|last| id < last) {
            let at = c.ready.partition_point(|other| other.id.as_str() < id);
            c.ready.insert(
                at,
                Candidate {
                    id: id.to_owned(),
                    retry: None,
                },
            );
        }
        true
    }

    fn scan_gate(&self, topic: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.scan_gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.entry(topic.to_owned()).or_default().clone()
    }

    /// The next cached candidate that no claimer of this process holds, reserved.
    fn next_candidate(&self, topic: &str) -> Option<(Candidate, Reservation<'_>)> {
        let mut all = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        let c = all.get_mut(topic)?;
        if c.fetched.elapsed() > CANDIDATES_TTL {
            all.remove(topic);
            return None;
        }
        while let Some(candidate) = c.ready.pop_front() {
            if let Some(reservation) = self.reserve(topic, &candidate.id) {
                return Some((candidate, reservation));
            }
        }
        None
    }

    /// When the cached candidates cover the whole topic (the scan saw its end, and is
    /// recent) and all are taken: nothing is ready that the watch would not tell us about.
    /// Then `Some` of how long until the first retry delay ends, if one is waiting.
    fn known_empty(&self, topic: &str) -> Option<Option<Duration>> {
        let mut all = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        let c = all.get(topic)?;
        if !c.complete || !c.ready.is_empty() || c.fetched.elapsed() > CANDIDATES_TTL {
            return None;
        }
        let now = Instant::now();
        match c.next_retry {
            // A failed task's delay is over: it is ready, look it up.
            Some(at) if at <= now => {
                all.remove(topic);
                None
            }
            next_retry => Some(next_retry.map(|at| at - now)),
        }
    }

    /// Looks up the oldest ready tasks of `topic` and caches them. Returns whether there
    /// are any, and if not, how long until a failed task's retry delay has passed.
    async fn scan(&self, topic: &str) -> Result<(bool, Option<Duration>), QueueError> {
        let tasks_dir = self.dir("t", topic);
        let claims_dir = self.dir("c", topic);
        let mut window = SCAN_WINDOW;
        let fetched = Instant::now();
        let found = loop {
            // Both ranges in one read transaction: one consistent snapshot. Serializable:
            // answered by the local member without a consensus round; a stale answer only
            // costs a lost compare-and-swap. Claim keys with their values: a retry mark
            // says when a failed task is ready again.
            let snapshot = Txn::new().and_then([
                TxnOp::get(
                    tasks_dir.clone(),
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_keys_only()
                            .with_limit(window)
                            .with_serializable(),
                    ),
                ),
                TxnOp::get(
                    claims_dir.clone(),
                    Some(GetOptions::new().with_prefix().with_serializable()),
                ),
            ]);
            let resp = self.txn("claim scan", snapshot).await?;
            let revision = resp.header().map_or(0, |h| h.revision());
            let mut gets = gets(&resp);
            let (tasks, claims) = (gets.remove(0), gets.remove(0));
            let now = now_ms();
            let mut next_retry: Option<i64> = None;
            let mut held: HashMap<&[u8], Option<String>> = HashMap::new();
            for kv in claims.kvs() {
                let id = &kv.key()[claims_dir.len()..];
                match retry_at(kv.value()) {
                    // Waiting out its retry delay: not ready yet.
                    Some(at) if at > now => {
                        next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
                        held.insert(id, None);
                    }
                    // Its delay has passed: ready, claimed by replacing the mark.
                    Some(_) => {
                        held.insert(id, Some(String::from_utf8_lossy(kv.value()).into_owned()));
                    }
                    None => {
                        held.insert(id, None);
                    }
                }
            }
            let mut ready = VecDeque::new();
            for kv in tasks.kvs() {
                let id = &kv.key()[tasks_dir.len()..];
                let retry = match held.get(id) {
                    None => None,
                    Some(Some(mark)) => Some(mark.clone()),
                    Some(None) => continue,
                };
                ready.push_back(Candidate {
                    id: String::from_utf8_lossy(id).into_owned(),
                    retry,
                });
            }
            if ready.is_empty() && tasks.more() {
                // Everything in the window is in flight: widen it past the claims.
                window = claims.kvs().len() as i64 + SCAN_WINDOW;
                continue;
            }
            let last_id = tasks
                .kvs()
                .last()
                .map(|kv| String::from_utf8_lossy(&kv.key()[tasks_dir.len()..]).into_owned());
            let next_retry =
                next_retry.map(|at| fetched + Duration::from_millis((at - now).max(0) as u64 + 5));
            let found = !ready.is_empty();
            self.candidates
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    topic.to_owned(),
                    Candidates {
                        ready,
                        fetched,
                        complete: !tasks.more(),
                        revision,
                        last_id,
                        offered: HashSet::new(),
                        next_retry,
                    },
                );
            break (found, next_retry);
        };
        let (found, next_retry) = found;
        Ok((
            found,
            next_retry.map(|at| at.saturating_duration_since(Instant::now())),
        ))
    }

    /// The claim of `candidate` as transaction parts: the compares, what to do if they
    /// hold (claim key with the token on the shared lease, attempt counter, read the task
    /// and its attempts) and what to read if not.
    fn claim_txn(
        &self,
        topic: &str,
        candidate: &Candidate,
        worker: &str,
        token: &str,
        lease_id: i64,
    ) -> Txn {
        let (t, c, a) = (
            self.key("t", topic, &candidate.id),
            self.key("c", topic, &candidate.id),
            self.key("a", topic, &candidate.id),
        );
        let free = match &candidate.retry {
            None => Compare::version(c.clone(), CompareOp::Equal, 0),
            Some(mark) => Compare::value(c.clone(), CompareOp::Equal, mark.clone()),
        };
        Txn::new()
            .when([free, Compare::version(t.clone(), CompareOp::Greater, 0)])
            .and_then([
                TxnOp::put(
                    c.clone(),
                    token,
                    Some(PutOptions::new().with_lease(lease_id)),
                ),
                TxnOp::put(a.clone(), worker, None),
                TxnOp::get(t, None),
                TxnOp::get(a, None),
            ])
            .or_else([TxnOp::get(c, None)])
    }

    /// The task a successful claim transaction read (`None` if it vanished meanwhile).
    fn claimed_from(
        &self,
        topic: &str,
        id: &str,
        worker: &str,
        token: String,
        task: Option<KeyValue>,
        attempts: Option<KeyValue>,
    ) -> Result<Option<Claimed>, QueueError> {
        let (Some(task), Some(attempts)) = (task, attempts) else {
            return Ok(None);
        };
        let record: TaskRecord =
            serde_json::from_slice(task.value()).map_err(|e| QueueError::Corrupt {
                key: self.key("t", topic, id),
                reason: e.to_string(),
            })?;
        Ok(Some(Claimed {
            id: id.to_owned(),
            topic: topic.to_owned(),
            payload: record.payload,
            attempt: attempts.version() as u32,
            worker: worker.to_owned(),
            dedupe_key: record.dedupe_key,
            enqueued_at_ms: record.enqueued_at_ms,
            token,
        }))
    }

    /// After our claim's answer was lost: read what our first try wrote.
    async fn read_claimed(
        &self,
        topic: &str,
        id: &str,
        worker: &str,
        token: String,
    ) -> Result<Option<Claimed>, QueueError> {
        let read = Txn::new().and_then([
            TxnOp::get(self.key("t", topic, id), None),
            TxnOp::get(self.key("a", topic, id), None),
        ]);
        let mut gets = gets(&self.txn("claim", read).await?);
        let (task, attempts) = (first(gets.remove(0)), first(gets.remove(0)));
        self.claimed_from(topic, id, worker, token, task, attempts)
    }

    /// Hands out a task this process just claimed, or buries it: a task whose last allowed
    /// attempt ended with a lapsed lease (its worker died or hung) must not go out again,
    /// or one poisonous task would kill workers forever. `None`: buried, look again.
    async fn hand_out(
        &self,
        claimed: Claimed,
        reservation: Reservation<'_>,
        lease: Duration,
    ) -> Result<Option<Claimed>, QueueError> {
        let max = self.opts.max_attempts;
        if claimed.attempt > max {
            let reason = format!(
                "lease expired on attempt {} of {max} without an ack",
                claimed.attempt - 1
            );
            if self.bury(&claimed, claimed.attempt - 1, &reason).await? {
                self.stats.count(&claimed.topic, Event::DeadLettered);
                tracing::warn!(topic = %claimed.topic, id = %claimed.id, attempts = claimed.attempt - 1, "task dead-lettered after its lease lapsed");
            }
            return Ok(None);
        }
        reservation.hold_until(Instant::now() + lease);
        self.stats.count(&claimed.topic, Event::Claimed);
        Ok(Some(claimed))
    }

    async fn try_claim(
        &self,
        topic: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Attempt, QueueError> {
        let mut lease_id = None;
        let mut scanned = false;
        let mut lost = 0;
        loop {
            let Some((candidate, reservation)) = self.next_candidate(topic) else {
                if let Some(retry_in) = self.known_empty(topic) {
                    // The scan saw the whole topic and what was ready is taken; new tasks
                    // and releases will be heard of (and wake us), retry delays are timed.
                    return Ok(Attempt::Empty { retry_in });
                }
                if scanned {
                    // Other claimers of this process took what the scan found.
                    return Ok(Attempt::Empty {
                        retry_in: Some(Duration::ZERO),
                    });
                }
                scanned = true;
                let gate = self.scan_gate(topic);
                let asked = Instant::now();
                let _scanning = gate.lock().await;
                let fresh = self
                    .candidates
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(topic)
                    .filter(|c| c.fetched >= asked)
                    .map(|c| {
                        let retry_in = c
                            .next_retry
                            .map(|at| at.saturating_duration_since(Instant::now()));
                        (!c.ready.is_empty(), retry_in)
                    });
                // Lease expiries arrive as claim deletions on the watch: no timer needed.
                // Retry delays end without an event: wake up for the first one.
                let (found, retry_in) = match fresh {
                    Some(fresh) => fresh,
                    None => self.scan(topic).await?,
                };
                if found {
                    continue;
                }
                return Ok(Attempt::Empty { retry_in });
            };
            let lease_id = match lease_id {
                Some(id) => id,
                None => *lease_id.insert(self.lease_for(lease).await?),
            };
            let token = new_token();
            let txn = self.claim_txn(topic, &candidate, worker, &token, lease_id);
            let (resp, retried) = match self.txn_tracked("claim", txn).await {
                Err(e) if is_lease_not_found(&e) => {
                    self.forget_lease(lease_id);
                    return Ok(Attempt::Empty {
                        retry_in: Some(Duration::ZERO),
                    });
                }
                other => other?,
            };
            let id = candidate.id;
            let claimed = if resp.succeeded() {
                let mut gets = gets(&resp);
                let (task, attempts) = (first(gets.remove(0)), first(gets.remove(0)));
                self.claimed_from(topic, &id, worker, token, task, attempts)?
            } else {
                let mine =
                    first(gets(&resp).remove(0)).is_some_and(|kv| kv.value() == token.as_bytes());
                if !(retried && mine) {
                    // Another process was faster, or the task is gone: what we cached is
                    // stale, so look again rather than lose more races on it.
                    self.forget_candidates(topic);
                    scanned = false;
                    lost += 1;
                    if lost == MAX_LOST_RACES {
                        return Ok(Attempt::Empty {
                            retry_in: Some(Duration::ZERO),
                        });
                    }
                    continue;
                }
                // Our first try went through but its answer was lost: read what it wrote.
                self.read_claimed(topic, &id, worker, token).await?
            };
            let Some(claimed) = claimed else { continue };
            if let Some(claimed) = self.hand_out(claimed, reservation, lease).await? {
                return Ok(Attempt::Claimed(claimed));
            }
        }
    }

    /// The first claimer waiting on `topic`, if a new task may go straight to it: nothing
    /// else of the topic is known to be ready (FIFO).
    fn take_waiter(&self, topic: &str) -> Option<Waiter> {
        self.known_empty(topic)?;
        self.waiters.take(topic)
    }

    /// A task handed over by its enqueue: keep this process's claimers (and the watch)
    /// from offering it again, then give it to the waiting claimer. If that claimer is
    /// gone, undo the claim (claim key and attempt) so the task is an ordinary ready one.
    async fn hand_over(&self, waiter: Waiter, claimed: Claimed, revision: i64) {
        let topic = claimed.topic.clone();
        if let Some(c) = self
            .candidates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&topic)
        {
            if revision > c.revision {
                c.offered.insert(claimed.id.clone());
            }
        }
        self.local.lock().unwrap_or_else(|e| e.into_inner()).insert(
            format!("{topic}/{}", claimed.id),
            Instant::now() + waiter.lease,
        );
        self.stats.count(&topic, Event::Claimed);
        let Err(claimed) = waiter.deliver(claimed) else {
            return;
        };
        let c = self.key("c", &topic, &claimed.id);
        let undo = Txn::new()
            .when([Compare::value(
                c.clone(),
                CompareOp::Equal,
                claimed.token.clone(),
            )])
            .and_then([
                TxnOp::delete(c, None),
                TxnOp::delete(self.key("a", &topic, &claimed.id), None),
            ]);
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&format!("{topic}/{}", claimed.id));
        // On failure the claim simply runs out with its lease, like a crashed worker's.
        if let Err(e) = self.txn("hand-over undo", undo).await {
            tracing::debug!(error = %e, id = %claimed.id, "could not undo a hand-over");
        }
        self.forget_candidates(&topic);
        self.wakers.wake_one(&topic);
    }

    /// Notes that this process is about to delete the claim key of a finished task.
    fn finishing(&self, task: &Claimed) -> String {
        let key = format!("{}/{}", task.topic, task.id);
        let now = Instant::now();
        let mut finishing = self.finishing.lock().unwrap_or_else(|e| e.into_inner());
        if finishing.len() > 4096 {
            // Entries whose deletion we never saw (the watch was down).
            finishing.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
        }
        finishing.insert(key.clone(), now);
        key
    }

    fn not_finishing(&self, key: &str) {
        self.finishing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The ack of `task` as transaction parts: its claim must still be ours; then the
    /// task, its attempt counter, its claim and its dedupe key go.
    fn ack_ops(&self, task: &Claimed) -> (Compare, Vec<TxnOp>) {
        let c = self.key("c", &task.topic, &task.id);
        let mut ops = vec![
            TxnOp::delete(self.key("t", &task.topic, &task.id), None),
            TxnOp::delete(self.key("a", &task.topic, &task.id), None),
            TxnOp::delete(c.clone(), None),
        ];
        if let Some(key) = &task.dedupe_key {
            ops.push(TxnOp::delete(self.key("k", &task.topic, key), None));
        }
        (Compare::value(c, CompareOp::Equal, task.token.clone()), ops)
    }

    /// Moves a claimed task to the dead letters, provided `task`'s claim still holds.
    async fn bury(&self, task: &Claimed, attempts: u32, reason: &str) -> Result<bool, QueueError> {
        let topic = &task.topic;
        let c = self.key("c", topic, &task.id);
        let t = self.key("t", topic, &task.id);
        let dead = DeadRecord {
            payload: task.payload.clone(),
            dedupe_key: task.dedupe_key.clone(),
            attempts,
            reason: clip_reason(reason),
            enqueued_at_ms: task.enqueued_at_ms,
            died_at_ms: now_ms(),
        };
        let mut ops = vec![
            TxnOp::put(
                self.key("x", topic, &task.id),
                serde_json::to_vec(&dead)?,
                None,
            ),
            TxnOp::delete(t.clone(), None),
            TxnOp::delete(self.key("a", topic, &task.id), None),
            TxnOp::delete(c.clone(), None),
        ];
        if let Some(key) = &task.dedupe_key {
            ops.push(TxnOp::delete(self.key("k", topic, key), None));
        }
        let txn = Txn::new()
            .when([Compare::value(c, CompareOp::Equal, task.token.clone())])
            .and_then(ops)
            .or_else([TxnOp::get(t, Some(GetOptions::new().with_keys_only()))]);
        let marker = self.finishing(task);
        let (resp, retried) = self
            .txn_tracked("dead-letter", txn)
            .await
            .inspect_err(|_| self.not_finishing(&marker))?;
        if resp.succeeded() {
            return Ok(true);
        }
        self.not_finishing(&marker);
        // A retry that finds the task gone: our first try did it.
        Ok(retried && first(gets(&resp).remove(0)).is_none())
    }
}

/// Wakes the claimers of a topic when one of its tasks may have become ready: a new task
/// (put under `t/`) or a released claim (delete under `c/`: fail or lease expiry). Keeps
/// re-establishing the watch; claimers also poll, so a gap only costs latency.
async fn watch_loop(shared: Arc<Shared>) {
    loop {
        if let Err(e) = watch_once(&shared).await {
            tracing::debug!(error = %e, "etcd queue watch ended");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn watch_once(shared: &Shared) -> Result<(), etcd_client::Error> {
    let (_, client) = shared.client();
    let tasks = format!("{}/t/", shared.prefix);
    let claims = format!("{}/c/", shared.prefix);
    let mut watch = client.watch_client();
    let start = watch.watch(
        tasks.clone(),
        Some(
            WatchOptions::new()
                .with_prefix()
                .with_filters([WatchFilterType::NoDelete]),
        ),
    );
    let mut stream = match tokio::time::timeout(REQUEST_TIMEOUT, start).await {
        Ok(stream) => stream?,
        Err(_) => return Err(etcd_client::Error::WatchError("watch did not start".into())),
    };
    stream
        .watch(
            claims.clone(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await?;
    // Whatever happened while we were not watching went unseen.
    shared
        .candidates
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    shared.wakers.wake_all();
    while let Some(resp) = stream.message().await? {
        if resp.canceled() {
            return Err(etcd_client::Error::WatchError(format!(
                "watch canceled: {}",
                resp.cancel_reason()
            )));
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = kv.key();
            if let Some(rest) = key.strip_prefix(tasks.as_bytes()) {
                // A new task (or a requeued dead one).
                let rest = String::from_utf8_lossy(rest);
                let (topic, id) = rest.split_once('/').unwrap_or((&rest, ""));
                if shared.offer_candidate(topic, id, kv.mod_revision()) {
                    shared.wakers.wake_one(topic);
                }
            } else if let Some(rest) = key.strip_prefix(claims.as_bytes()) {
                let rest = String::from_utf8_lossy(rest);
                if shared
                    .finishing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(rest.as_ref())
                    .is_some()
                {
                    continue; // our own ack: nothing became ready
                }
                // A released claim (fail, lease expiry, or another process's ack, which
                // we cannot tell apart): the task may be ready again, ahead of the rest.
                let topic = rest.split('/').next().unwrap_or_default();
                shared.forget_candidates(topic);
                shared.wakers.wake_one(topic);
            }
        }
    }
    Ok(())
}

fn gets(resp: &TxnResponse) -> Vec<GetResponse> {
    resp.op_responses()
        .into_iter()
        .filter_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get),
            _ => None,
        })
        .collect()
}

fn first(mut get: GetResponse) -> Option<KeyValue> {
    let mut kvs = get.take_kvs();
    if kvs.is_empty() {
        None
    } else {
        Some(kvs.swap_remove(0))
    }
}

#[async_trait::async_trait]
impl TaskQueue for EtcdQueue {
    async fn enqueue(&self, topic: &str, task: NewTask) -> Result<Enqueued, QueueError> {
        let span = tracing::info_span!(
            "queue.enqueue",
            backend = "etcd",
            topic,
            id = tracing::field::Empty,
            deduplicated = tracing::field::Empty
        );
        async {
            check_topic(topic)?;
            encode_task(&task, &self.shared().opts)?;
            let s = self.shared();
            let enqueued_at_ms = now_ms();
            let record = serde_json::to_vec(&TaskRecordRef {
                payload: &task.payload,
                dedupe_key: task.dedupe_key.as_deref(),
                enqueued_at_ms,
            })?;
            loop {
                let id = new_task_id();
                let t = s.key("t", topic, &id);
                // The id is fixed before the first try, so a retry after a lost answer finds
                // its own task instead of adding a second one.
                let mut when = vec![Compare::version(t.clone(), CompareOp::Equal, 0)];
                let mut then = vec![TxnOp::put(t.clone(), record.clone(), None)];
                let mut otherwise = vec![TxnOp::get(
                    t.clone(),
                    Some(GetOptions::new().with_keys_only()),
                )];
                if let Some(key) = &task.dedupe_key {
                    let k = s.key("k", topic, key);
                    when.push(Compare::version(k.clone(), CompareOp::Equal, 0));
                    then.push(TxnOp::put(k.clone(), id.clone(), None));
                    otherwise.push(TxnOp::get(k, None));
                }
                // A claimer of this process waiting for work gets the task in this same
                // transaction (claim key on its lease, first attempt), when nothing older
                // is ready: one write for enqueue and claim.
                let mut handoff = s.take_waiter(topic);
                let mut lease_id = 0;
                if let Some(waiter) = &handoff {
                    match s.lease_for(waiter.lease).await {
                        Ok(id) => lease_id = id,
                        Err(e) => {
                            tracing::debug!(error = %e, "no lease for a hand-over");
                            handoff = None;
                        }
                    }
                }
                let token = new_token();
                if let Some(waiter) = &handoff {
                    let c = s.key("c", topic, &id);
                    then.push(TxnOp::put(
                        c.clone(),
                        token.clone(),
                        Some(PutOptions::new().with_lease(lease_id)),
                    ));
                    then.push(TxnOp::put(
                        s.key("a", topic, &id),
                        waiter.worker.clone(),
                        None,
                    ));
                    otherwise.push(TxnOp::get(c, None));
                }
                let txn = Txn::new().when(when).and_then(then).or_else(otherwise);
                let resp = match s.txn("enqueue", txn).await {
                    Err(e) if handoff.is_some() && is_lease_not_found(&e) => {
                        // Nothing was written; the waiter looks again by itself.
                        s.forget_lease(lease_id);
                        continue;
                    }
                    other => other?,
                };
                let revision = resp.header().map_or(0, |h| h.revision());
                let (own, holder, handed) = if resp.succeeded() {
                    (true, None, handoff.is_some())
                } else {
                    let mut gets = gets(&resp).into_iter();
                    let own = gets.next().and_then(first).is_some();
                    let holder = match &task.dedupe_key {
                        Some(_) => gets
                            .next()
                            .and_then(first)
                            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                        None => None,
                    };
                    // After a lost answer: our first try wrote it all, the claim included
                    // (unless that claim has run out since).
                    let handed = gets
                        .next()
                        .and_then(first)
                        .is_some_and(|kv| kv.value() == token.as_bytes());
                    (own, holder, handed)
                };
                let result = match holder {
                    Some(other) if other != id => {
                        s.stats.count(topic, Event::Deduplicated);
                        Enqueued {
                            id: other,
                            deduplicated: true,
                        }
                    }
                    // The twin was acked in between, so the key is free again.
                    _ if !own => continue,
                    _ => {
                        s.stats.count(topic, Event::Enqueued);
                        match handoff.filter(|_| handed) {
                            Some(waiter) => {
                                let claimed = Claimed {
                                    id: id.clone(),
                                    topic: topic.to_owned(),
                                    payload: task.payload,
                                    attempt: 1,
                                    worker: waiter.worker.clone(),
                                    dedupe_key: task.dedupe_key,
                                    enqueued_at_ms,
                                    token,
                                };
                                s.hand_over(waiter, claimed, revision).await;
                            }
                            // This process's claimers need not wait for the watch.
                            None => {
                                if s.offer_candidate(topic, &id, revision) {
                                    s.wakers.wake_one(topic);
                                }
                            }
                        }
                        Enqueued {
                            id,
                            deduplicated: false,
                        }
                    }
                };
                let span = tracing::Span::current();
                span.record("id", result.id.as_str());
                span.record("deduplicated", result.deduplicated);
                return Ok(result);
            }
        }
        .instrument(span)
        .await
    }

    async fn claim(
        &self,
        topic: &str,
        worker: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claimed>, QueueError> {
        let span = tracing::info_span!(
            "queue.claim",
            backend = "etcd",
            topic,
            worker,
            id = tracing::field::Empty,
            attempt = tracing::field::Empty
        );
        async {
            check_topic(topic)?;
            check_worker(worker)?;
            check_lease(lease)?;
            let s = self.shared();
            let claimed = claim_loop(
                &s.wakers,
                &s.waiters,
                topic,
                worker,
                lease,
                wait,
                s.opts.poll_interval,
                || s.try_claim(topic, worker, lease),
            )
            .await?;
            if let Some(task) = &claimed {
                let span = tracing::Span::current();
                span.record("id", task.id.as_str());
                span.record("attempt", task.attempt);
            }
            Ok(claimed)
        }
        .instrument(span)
        .await
    }

    async fn renew(&self, task: &Claimed, lease: Duration) -> Result<(), QueueError> {
        check_lease(lease)?;
        let s = self.shared();
        // Moving the claim key to a later lease rather than keeping its lease alive: that
        // lease is shared with other claims, which must not be extended along with ours.
        let lease_id = s.lease_for(lease).await?;
        let c = s.key("c", &task.topic, &task.id);
        let txn = Txn::new()
            .when([Compare::value(
                c.clone(),
                CompareOp::Equal,
                task.token.clone(),
            )])
            .and_then([TxnOp::put(
                c,
                task.token.clone(),
                Some(PutOptions::new().with_lease(lease_id)),
            )]);
        let resp = match s.txn("renew", txn).await {
            Err(e) if is_lease_not_found(&e) => {
                s.forget_lease(lease_id);
                return Err(e);
            }
            other => other?,
        };
        if !resp.succeeded() {
            return Err(QueueError::LeaseLost {
                id: task.id.clone(),
            });
        }
        s.local.lock().unwrap_or_else(|e| e.into_inner()).insert(
            format!("{}/{}", task.topic, task.id),
            Instant::now() + lease,
        );
        Ok(())
    }

    async fn ack(&self, task: &Claimed) -> Result<(), QueueError> {
        let s = self.shared();
        let mut released = Released::new(s, task);
        let (when, ops) = s.ack_ops(task);
        let txn = Txn::new().when([when]).and_then(ops).or_else([TxnOp::get(
            s.key("t", &task.topic, &task.id),
            Some(GetOptions::new().with_keys_only()),
        )]);
        let marker = s.finishing(task);
        let (resp, retried) = s
            .txn_tracked("ack", txn)
            .await
            .inspect_err(|_| s.not_finishing(&marker))?;
        if !resp.succeeded() {
            s.not_finishing(&marker);
            // After a lost answer, a task that is gone was removed by our first try.
            if !(retried && first(gets(&resp).remove(0)).is_none()) {
                return Err(QueueError::LeaseLost {
                    id: task.id.clone(),
                });
            }
        }
        released.gone = true;
        s.stats.count(&task.topic, Event::Acked);
        Ok(())
    }

    async fn ack_and_claim(
        &self,
        done: &Claimed,
        worker: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claimed>, QueueError> {
        check_worker(worker)?;
        check_lease(lease)?;
        let s = self.shared();
        let topic = done.topic.as_str();
        // Only with a candidate at hand: finding one may take a scan, which the ack need
        // not wait for.
        let Some((candidate, reservation)) = s.next_candidate(topic) else {
            self.ack(done).await?;
            return self.claim(topic, worker, lease, wait).await;
        };
        let lease_id = match s.lease_for(lease).await {
            Ok(id) => id,
            Err(e) => {
                drop(reservation);
                s.forget_candidates(topic);
                tracing::debug!(error = %e, "no lease for the next claim; acking alone");
                self.ack(done).await?;
                return self.claim(topic, worker, lease, wait).await;
            }
        };
        let token = new_token();
        // The ack, and inside it the claim of the next task: one write. The claim's own
        // compares decide whether it happens; the ack does not depend on it.
        let mut released = Released::new(s, done);
        let (when, mut ops) = s.ack_ops(done);
        ops.push(TxnOp::txn(
            s.claim_txn(topic, &candidate, worker, &token, lease_id),
        ));
        let next_c = s.key("c", topic, &candidate.id);
        let txn = Txn::new().when([when]).and_then(ops).or_else([
            TxnOp::get(
                s.key("t", topic, &done.id),
                Some(GetOptions::new().with_keys_only()),
            ),
            TxnOp::get(next_c, None),
        ]);
        let marker = s.finishing(done);
        let (resp, retried) = match s.txn_tracked("ack and claim", txn).await {
            Ok(answer) => answer,
            Err(e) => {
                s.not_finishing(&marker);
                drop(reservation);
                // The candidate left the cache but was not claimed: look again.
                s.forget_candidates(topic);
                if is_lease_not_found(&e) {
                    s.forget_lease(lease_id);
                    drop(released);
                    self.ack(done).await?;
                    return self.claim(topic, worker, lease, wait).await;
                }
                return Err(e);
            }
        };
        let id = candidate.id;
        let claimed = if resp.succeeded() {
            released.gone = true;
            s.stats.count(topic, Event::Acked);
            let nested = resp.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Txn(nested) => Some(nested),
                _ => None,
            });
            match nested {
                Some(nested) if nested.succeeded() => {
                    let mut gets = gets(&nested);
                    let (task, attempts) = (first(gets.remove(0)), first(gets.remove(0)));
                    s.claimed_from(topic, &id, worker, token, task, attempts)?
                }
                // Taken by another process, or gone: what we cached is stale.
                _ => {
                    s.forget_candidates(topic);
                    None
                }
            }
        } else {
            s.not_finishing(&marker);
            let mut gets = gets(&resp);
            let (done_task, next_claim) = (first(gets.remove(0)), first(gets.remove(0)));
            // After a lost answer, a task that is gone was removed by our first try, which
            // may have claimed the next one as well.
            if !(retried && done_task.is_none()) {
                // The candidate left the cache but was not claimed: look again.
                s.forget_candidates(topic);
                return Err(QueueError::LeaseLost {
                    id: done.id.clone(),
                });
            }
            released.gone = true;
            s.stats.count(topic, Event::Acked);
            if next_claim.is_some_and(|kv| kv.value() == token.as_bytes()) {
                s.read_claimed(topic, &id, worker, token).await?
            } else {
                s.forget_candidates(topic);
                None
            }
        };
        drop(released);
        if let Some(claimed) = claimed {
            if let Some(claimed) = s.hand_out(claimed, reservation, lease).await? {
                return Ok(Some(claimed));
            }
        } else {
            drop(reservation);
        }
        self.claim(topic, worker, lease, wait).await
    }

    async fn fail(&self, task: &Claimed, reason: &str) -> Result<(), QueueError> {
        let s = self.shared();
        let mut released = Released::new(s, task);
        if task.attempt >= s.opts.max_attempts {
            if s.bury(task, task.attempt, reason).await? {
                released.gone = true;
                s.stats.count(&task.topic, Event::Failed);
                s.stats.count(&task.topic, Event::DeadLettered);
                tracing::warn!(topic = %task.topic, id = %task.id, attempts = task.attempt, reason, "task dead-lettered");
                return Ok(());
            }
            return Err(QueueError::LeaseLost {
                id: task.id.clone(),
            });
        }
        // The attempt count lives in `a/`, and the task keeps its place at the head of the
        // topic. Without a retry delay, dropping the claim key is all it takes; with one,
        // the claim key becomes a retry mark, detached from the lease, that claimers leave
        // alone until its time.
        let c = s.key("c", &task.topic, &task.id);
        let delay = s.opts.retry_delay_for(task.attempt);
        let release = if delay.is_zero() {
            TxnOp::delete(c.clone(), None)
        } else {
            TxnOp::put(
                c.clone(),
                retry_mark(now_ms() + delay.as_millis() as i64),
                None,
            )
        };
        let txn = Txn::new()
            .when([Compare::value(
                c.clone(),
                CompareOp::Equal,
                task.token.clone(),
            )])
            .and_then([release]);
        let (resp, retried) = s.txn_tracked("fail", txn).await?;
        // The task is back at the head of the topic, before anything cached.
        s.forget_candidates(&task.topic);
        // Our first try (or the lease running out) released the claim either way.
        if !(resp.succeeded() || retried) {
            return Err(QueueError::LeaseLost {
                id: task.id.clone(),
            });
        }
        s.stats.count(&task.topic, Event::Failed);
        if !delay.is_zero() {
            // No watch event tells when the delay is over: a claimer of this process
            // looks now, finds the mark, and sleeps until then.
            s.wakers.wake_one(&task.topic);
        }
        Ok(())
    }

    async fn dead_letters(&self, topic: &str, limit: usize) -> Result<Vec<DeadTask>, QueueError> {
        check_topic(topic)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let s = self.shared();
        let dir = s.dir("x", topic);
        let limit = limit.min(i64::MAX as usize) as i64;
        let resp = s
            .call("dead letters", |mut c| {
                let dir = dir.clone();
                async move {
                    c.get(dir, Some(GetOptions::new().with_prefix().with_limit(limit)))
                        .await
                }
            })
            .await?;
        resp.kvs()
            .iter()
            .map(|kv| {
                let id = String::from_utf8_lossy(&kv.key()[dir.len()..]).into_owned();
                let dead: DeadRecord =
                    serde_json::from_slice(kv.value()).map_err(|e| QueueError::Corrupt {
                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                        reason: e.to_string(),
                    })?;
                Ok(DeadTask {
                    id,
                    topic: topic.to_owned(),
                    payload: dead.payload,
                    dedupe_key: dead.dedupe_key,
                    attempts: dead.attempts,
                    reason: dead.reason,
                    enqueued_at_ms: dead.enqueued_at_ms,
                    died_at_ms: dead.died_at_ms,
                })
            })
            .collect()
    }

    async fn requeue_dead(&self, topic: &str, id: &str) -> Result<Enqueued, QueueError> {
        check_topic(topic)?;
        check_task_id(id)?;
        let s = self.shared();
        let (t, x) = (s.key("t", topic, id), s.key("x", topic, id));
        for _ in 0..MAX_LOST_RACES {
            let read = s
                .call("requeue", |mut c| {
                    let x = x.clone();
                    async move { c.get(x, None).await }
                })
                .await?;
            let Some(kv) = read.kvs().first() else {
                return Err(QueueError::NotFound {
                    what: "dead task",
                    id: id.to_owned(),
                });
            };
            let dead: DeadRecord =
                serde_json::from_slice(kv.value()).map_err(|e| QueueError::Corrupt {
                    key: x.clone(),
                    reason: e.to_string(),
                })?;
            let record = serde_json::to_vec(&TaskRecord {
                payload: dead.payload,
                dedupe_key: dead.dedupe_key.clone(),
                enqueued_at_ms: dead.enqueued_at_ms,
            })?;
            // Its attempt counter and claim key went with the dead letter: a fresh start.
            let mut when = vec![
                Compare::mod_revision(x.clone(), CompareOp::Equal, kv.mod_revision()),
                Compare::version(t.clone(), CompareOp::Equal, 0),
            ];
            let mut then = vec![
                TxnOp::put(t.clone(), record, None),
                TxnOp::delete(x.clone(), None),
            ];
            let mut otherwise = vec![
                TxnOp::get(x.clone(), Some(GetOptions::new().with_keys_only())),
                TxnOp::get(t.clone(), Some(GetOptions::new().with_keys_only())),
            ];
            if let Some(key) = &dead.dedupe_key {
                let k = s.key("k", topic, key);
                when.push(Compare::version(k.clone(), CompareOp::Equal, 0));
                then.push(TxnOp::put(k.clone(), id, None));
                otherwise.push(TxnOp::get(k, None));
            }
            let (resp, retried) = s
                .txn_tracked(
                    "requeue",
                    Txn::new().when(when).and_then(then).or_else(otherwise),
                )
                .await?;
            let requeued = if resp.succeeded() {
                true
            } else {
                let mut gets = gets(&resp);
                let dead_left = first(gets.remove(0)).is_some();
                let task_there = first(gets.remove(0)).is_some();
                let holder = gets
                    .pop()
                    .and_then(first)
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
                if retried && !dead_left && task_there {
                    true // our first try did it
                } else if let Some(holder) = holder.filter(|h| h != id) {
                    return Ok(Enqueued {
                        id: holder,
                        deduplicated: true,
                    });
                } else if !dead_left {
                    return Err(QueueError::NotFound {
                        what: "dead task",
                        id: id.to_owned(),
                    });
                } else {
                    continue; // the dead letter changed under us: read it again
                }
            };
            if requeued {
                // A hold from when it was last finished here must not hide it.
                s.local
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&format!("{topic}/{id}"));
                let revision = resp.header().map_or(0, |h| h.revision());
                if s.offer_candidate(topic, id, revision) {
                    s.wakers.wake_one(topic);
                }
                s.stats.count(topic, Event::Requeued);
                return Ok(Enqueued {
                    id: id.to_owned(),
                    deduplicated: false,
                });
            }
        }
        Err(QueueError::Unavailable(format!(
            "dead task {id} kept changing while being requeued"
        )))
    }

    async fn purge_dead(&self, topic: &str, id: Option<&str>) -> Result<u64, QueueError> {
        check_topic(topic)?;
        if let Some(id) = id {
            check_task_id(id)?;
        }
        let s = self.shared();
        let (key, options) = match id {
            Some(id) => (s.key("x", topic, id), None),
            None => (
                s.dir("x", topic),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            ),
        };
        let resp = s
            .call("purge", |mut c| {
                let (key, options) = (key.clone(), options.clone());
                async move { c.delete(key, options).await }
            })
            .await?;
        let purged = resp.deleted().max(0) as u64;
        s.stats.add(topic, Event::Purged, purged);
        Ok(purged)
    }

    async fn depth(&self, topic: &str) -> Result<QueueDepth, QueueError> {
        check_topic(topic)?;
        let s = self.shared();
        let count = |kind: &str| {
            TxnOp::get(
                s.dir(kind, topic),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
        };
        // Claim keys with their values: a claim token is in flight, a retry mark is a
        // failed task waiting (or, once its time has come, ready).
        let claims = TxnOp::get(s.dir("c", topic), Some(GetOptions::new().with_prefix()));
        let resp = s
            .txn(
                "depth",
                Txn::new().and_then([count("t"), claims, count("x")]),
            )
            .await?;
        let gets = gets(&resp);
        let (tasks, dead) = (gets[0].count().max(0) as u64, gets[2].count().max(0) as u64);
        let now = now_ms();
        let (mut in_flight, mut delayed) = (0u64, 0u64);
        for kv in gets[1].kvs() {
            match retry_at(kv.value()) {
                None => in_flight += 1,
                Some(at) if at > now => delayed += 1,
                Some(_) => {}
            }
        }
        Ok(QueueDepth {
            ready: tasks.saturating_sub(in_flight + delayed),
            delayed,
            in_flight,
            dead,
        })
    }
}
