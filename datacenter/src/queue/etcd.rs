//! The queue on etcd, for datacenters served by several processes.
//!
//! Keys, all under the queue's prefix `P` (task ids sort in enqueue order, so a plain
//! key-ordered range is FIFO):
//!
//! | key                 | value                                   | lives                      |
//! |---------------------|-----------------------------------------|----------------------------|
//! | `P/t/{topic}/{id}`  | task: payload, dedupe key, enqueue time | enqueue → ack / dead       |
//! | `P/c/{topic}/{id}`  | claim token, attached to an etcd lease  | claim → ack / fail / expiry|
//! | `P/a/{topic}/{id}`  | last worker; its *version* = attempts    | first claim → ack / dead   |
//! | `P/k/{topic}/{key}` | id of the task holding the dedupe key   | enqueue → ack / dead       |
//! | `P/x/{topic}/{id}`  | dead task                               | dead → forever             |
//!
//! A task is ready when it has no claim key. Claiming is one transaction that creates the
//! claim key only if it does not exist yet, so two workers can never both hold a task; a
//! dead worker's claim key is deleted by etcd when its lease runs out, which makes the task
//! ready again. Every other change compares the claim token, so a worker whose lease ran
//! out cannot ack or fail a task that is now someone else's.
//!
//! etcd's write rate is what limits throughput, so a task costs three writes (enqueue,
//! claim, ack) and nothing else: claims made within half a second of each other with the
//! same lease share one etcd lease, granted half a second longer and never kept alive (a
//! claim lasts between `lease` and `lease` + 1.5 s: whole-second TTLs, and etcd checks
//! expiries every 500 ms), so no grant or revoke is paid per task; and the ready tasks
//! found by one scan (a local, serializable read) are handed to this process's claimers one
//! by one until a release (fail, lease expiry) seen on the watch makes them stale.

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

use super::{
    check_lease, check_topic, check_worker, claim_loop, clip_reason, encode_task, new_task_id,
    new_token, now_ms, Attempt, Claimed, DeadTask, Enqueued, NewTask, QueueDepth, QueueError,
    QueueOptions, TaskQueue, Wakers,
};

/// One request to etcd; past it the request counts as failed and is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Tasks looked at per claim scan, beyond the ones known to be in flight.
const SCAN_WINDOW: i64 = 64;
/// Lost compare-and-swaps one claim attempt accepts before it lets the caller wait.
const MAX_LOST_RACES: usize = 8;
/// How long the candidates of a scan are trusted. Releases we hear of (fail, lease expiry)
/// clear them at once; this bounds what we might not hear of (a lost watch).
const CANDIDATES_TTL: Duration = Duration::from_secs(1);

/// Claims this close together (with the same lease) share one etcd lease.
const LEASE_SHARING: Duration = Duration::from_millis(500);

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
    /// Per topic: ready task ids from the last scan, oldest first, handed out to this
    /// process's claimers one by one. etcd 3.4 walks the whole key range for a limited
    /// range request, so a scan costs as much as the backlog is long: do it rarely.
    candidates: Mutex<HashMap<String, (VecDeque<String>, Instant)>>,
    /// One scan per topic at a time; the claimers that queue behind it use its result.
    scan_gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Claim keys (`topic/id`) this process deletes as done (ack, dead letter): their
    /// deletion on the watch is no release and must not throw the candidates away.
    finishing: Mutex<HashMap<String, Instant>>,
}

#[derive(Serialize, Deserialize)]
struct TaskRecord {
    payload: Value,
    dedupe_key: Option<String>,
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
        if opts.max_attempts == 0 {
            return Err(QueueError::Invalid {
                what: "max_attempts",
                reason: "must be at least 1".into(),
            });
        }
        let prefix = prefix.trim_end_matches('/').to_owned();
        if prefix.is_empty() {
            // An empty prefix would make the queue's ranges cover the whole keyspace.
            return Err(QueueError::Invalid {
                what: "etcd prefix",
                reason: "must not be empty".into(),
            });
        }
        let client = new_client(endpoints).await?;
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
        Ok(Self {
            inner: Arc::new(Inner { shared, watcher }),
        })
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

    fn scan_gate(&self, topic: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.scan_gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.entry(topic.to_owned()).or_default().clone()
    }

    /// The next cached candidate that no claimer of this process holds, reserved.
    fn next_candidate(&self, topic: &str) -> Option<(String, Reservation<'_>)> {
        let mut all = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        let (ids, fetched) = all.get_mut(topic)?;
        if fetched.elapsed() > CANDIDATES_TTL {
            all.remove(topic);
            return None;
        }
        while let Some(id) = ids.pop_front() {
            if let Some(reservation) = self.reserve(topic, &id) {
                return Some((id, reservation));
            }
        }
        None
    }

    /// Looks up the oldest ready tasks of `topic` and caches them; false if there are none.
    async fn scan(&self, topic: &str) -> Result<bool, QueueError> {
        let tasks_dir = self.dir("t", topic);
        let claims_dir = self.dir("c", topic);
        let mut window = SCAN_WINDOW;
        let fetched = Instant::now();
        let free = loop {
            // Both ranges in one read transaction: one consistent snapshot. Serializable:
            // answered by the local member without a consensus round; a stale answer only
            // costs a lost compare-and-swap.
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
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_keys_only()
                            .with_serializable(),
                    ),
                ),
            ]);
            let resp = self.txn("claim scan", snapshot).await?;
            let mut gets = gets(&resp);
            let (tasks, claims) = (gets.remove(0), gets.remove(0));
            let held: HashSet<&[u8]> = claims
                .kvs()
                .iter()
                .map(|kv| &kv.key()[claims_dir.len()..])
                .collect();
            let free: VecDeque<String> = tasks
                .kvs()
                .iter()
                .map(|kv| &kv.key()[tasks_dir.len()..])
                .filter(|id| !held.contains(id))
                .map(|id| String::from_utf8_lossy(id).into_owned())
                .collect();
            if free.is_empty() && tasks.more() {
                // Everything in the window is in flight: widen it past the claims.
                window = claims.kvs().len() as i64 + SCAN_WINDOW;
                continue;
            }
            break free;
        };
        let found = !free.is_empty();
        self.candidates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_owned(), (free, fetched));
        Ok(found)
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
            let Some((id, reservation)) = self.next_candidate(topic) else {
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
                    .filter(|(_, fetched)| *fetched >= asked)
                    .map(|(ids, _)| !ids.is_empty());
                // Lease expiries arrive as claim deletions on the watch: no timer needed.
                match fresh {
                    Some(true) => continue,
                    Some(false) => return Ok(Attempt::Empty { retry_in: None }),
                    None if self.scan(topic).await? => continue,
                    None => return Ok(Attempt::Empty { retry_in: None }),
                }
            };
            let lease_id = match lease_id {
                Some(id) => id,
                None => *lease_id.insert(self.lease_for(lease).await?),
            };
            let token = new_token();
            let (t, c, a) = (
                self.key("t", topic, &id),
                self.key("c", topic, &id),
                self.key("a", topic, &id),
            );
            let txn = Txn::new()
                .when([
                    Compare::version(c.clone(), CompareOp::Equal, 0),
                    Compare::version(t.clone(), CompareOp::Greater, 0),
                ])
                .and_then([
                    TxnOp::put(
                        c.clone(),
                        token.clone(),
                        Some(PutOptions::new().with_lease(lease_id)),
                    ),
                    TxnOp::put(a.clone(), worker, None),
                    TxnOp::get(t.clone(), None),
                    TxnOp::get(a.clone(), None),
                ])
                .or_else([TxnOp::get(c.clone(), None)]);
            let (resp, retried) = match self.txn_tracked("claim", txn).await {
                Err(e) if is_lease_not_found(&e) => {
                    self.forget_lease(lease_id);
                    return Ok(Attempt::Empty {
                        retry_in: Some(Duration::ZERO),
                    });
                }
                other => other?,
            };
            let (task, attempts) = if resp.succeeded() {
                let mut gets = gets(&resp);
                (first(gets.remove(0)), first(gets.remove(0)))
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
                let read =
                    Txn::new().and_then([TxnOp::get(t.clone(), None), TxnOp::get(a.clone(), None)]);
                let mut gets = gets(&self.txn("claim", read).await?);
                (first(gets.remove(0)), first(gets.remove(0)))
            };
            let (Some(task), Some(attempts)) = (task, attempts) else {
                continue;
            };
            let record: TaskRecord =
                serde_json::from_slice(task.value()).map_err(|e| QueueError::Corrupt {
                    key: t.clone(),
                    reason: e.to_string(),
                })?;
            let attempt = attempts.version() as u32;
            let claimed = Claimed {
                id: id.clone(),
                topic: topic.to_owned(),
                payload: record.payload,
                attempt,
                worker: worker.to_owned(),
                dedupe_key: record.dedupe_key,
                enqueued_at_ms: record.enqueued_at_ms,
                token,
            };
            if attempt > self.opts.max_attempts {
                // Its last allowed attempt ended with a lapsed lease (the worker died or hung):
                // handing it out again would let one poisonous task kill workers forever.
                let reason = format!(
                    "lease expired on attempt {} of {} without an ack",
                    attempt - 1,
                    self.opts.max_attempts
                );
                self.bury(&claimed, attempt - 1, &reason).await?;
                continue;
            }
            reservation.hold_until(Instant::now() + lease);
            return Ok(Attempt::Claimed(claimed));
        }
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
                // A new task.
                let topic = rest.split(|&b| b == b'/').next().unwrap_or_default();
                shared.wakers.wake_one(&String::from_utf8_lossy(topic));
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
            let record = serde_json::to_vec(&TaskRecord {
                payload: task.payload,
                dedupe_key: task.dedupe_key.clone(),
                enqueued_at_ms: now_ms(),
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
                let resp = s
                    .txn(
                        "enqueue",
                        Txn::new().when(when).and_then(then).or_else(otherwise),
                    )
                    .await?;
                let result = if resp.succeeded() {
                    Enqueued {
                        id,
                        deduplicated: false,
                    }
                } else {
                    let mut gets = gets(&resp);
                    let own = first(gets.remove(0)).is_some();
                    let holder = gets
                        .pop()
                        .and_then(first)
                        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
                    match holder {
                        Some(other) if other != id => Enqueued {
                            id: other,
                            deduplicated: true,
                        },
                        _ if own => Enqueued {
                            id,
                            deduplicated: false,
                        },
                        // The twin was acked in between, so the key is free again.
                        _ => continue,
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
            let claimed = claim_loop(&s.wakers, topic, wait, s.opts.poll_interval, || {
                s.try_claim(topic, worker, lease)
            })
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
        let (t, c) = (
            s.key("t", &task.topic, &task.id),
            s.key("c", &task.topic, &task.id),
        );
        let mut ops = vec![
            TxnOp::delete(t.clone(), None),
            TxnOp::delete(s.key("a", &task.topic, &task.id), None),
            TxnOp::delete(c.clone(), None),
        ];
        if let Some(key) = &task.dedupe_key {
            ops.push(TxnOp::delete(s.key("k", &task.topic, key), None));
        }
        let txn = Txn::new()
            .when([Compare::value(c, CompareOp::Equal, task.token.clone())])
            .and_then(ops)
            .or_else([TxnOp::get(t, Some(GetOptions::new().with_keys_only()))]);
        let marker = s.finishing(task);
        let (resp, retried) = s
            .txn_tracked("ack", txn)
            .await
            .inspect_err(|_| s.not_finishing(&marker))?;
        if resp.succeeded() {
            released.gone = true;
            return Ok(());
        }
        s.not_finishing(&marker);
        // After a lost answer, a task that is gone was removed by our first try.
        if retried && first(gets(&resp).remove(0)).is_none() {
            released.gone = true;
            return Ok(());
        }
        Err(QueueError::LeaseLost {
            id: task.id.clone(),
        })
    }

    async fn fail(&self, task: &Claimed, reason: &str) -> Result<(), QueueError> {
        let s = self.shared();
        let mut released = Released::new(s, task);
        if task.attempt >= s.opts.max_attempts {
            if s.bury(task, task.attempt, reason).await? {
                released.gone = true;
                tracing::warn!(topic = %task.topic, id = %task.id, attempts = task.attempt, reason, "task dead-lettered");
                return Ok(());
            }
            return Err(QueueError::LeaseLost {
                id: task.id.clone(),
            });
        }
        // Dropping the claim key is all it takes: the attempt count lives in `a/`, and the
        // task keeps its place at the head of the topic.
        let c = s.key("c", &task.topic, &task.id);
        let txn = Txn::new()
            .when([Compare::value(
                c.clone(),
                CompareOp::Equal,
                task.token.clone(),
            )])
            .and_then([TxnOp::delete(c, None)]);
        let (resp, retried) = s.txn_tracked("fail", txn).await?;
        // The task is back at the head of the topic, before anything cached.
        s.forget_candidates(&task.topic);
        if resp.succeeded() {
            return Ok(());
        }
        if retried {
            // Our first try (or the lease running out) released the claim either way.
            return Ok(());
        }
        Err(QueueError::LeaseLost {
            id: task.id.clone(),
        })
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

    async fn depth(&self, topic: &str) -> Result<QueueDepth, QueueError> {
        check_topic(topic)?;
        let s = self.shared();
        let count = |kind: &str| {
            TxnOp::get(
                s.dir(kind, topic),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
        };
        let resp = s
            .txn(
                "depth",
                Txn::new().and_then([count("t"), count("c"), count("x")]),
            )
            .await?;
        let counts: Vec<u64> = gets(&resp)
            .iter()
            .map(|g| g.count().max(0) as u64)
            .collect();
        let (tasks, claims, dead) = (counts[0], counts[1], counts[2]);
        Ok(QueueDepth {
            ready: tasks.saturating_sub(claims),
            in_flight: claims,
            dead,
        })
    }
}
