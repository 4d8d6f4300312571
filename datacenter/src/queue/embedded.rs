//! The zero-config queue: one SQLite file of its own, in WAL mode.
//!
//! A claim is a row whose `lease_until` lies in the future; a lapsed lease needs no
//! clean-up, the row simply matches the "ready" query again. Every claim is a single
//! `UPDATE … WHERE seq = (oldest ready) RETURNING …`, and SQLite runs one writer at a time,
//! so two claimers can never take the same row. A failed task waiting for its retry is a
//! row with `lease_until` in the future and no claim token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tracing::Instrument;

use super::stats::{Event, QueueStats};
use super::{
    check_lease, check_task_id, check_topic, check_worker, claim_loop, clip_reason, encode_task,
    new_task_id, new_token, now_ms, Attempt, Claimed, DeadTask, Enqueued, NewTask, QueueDepth,
    QueueError, QueueOptions, TaskQueue, Waiter, Waiters, Wakers,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queue_tasks (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    topic       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    dedupe_key  TEXT,
    enqueued_at INTEGER NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    worker      TEXT,
    token       TEXT
);
CREATE INDEX IF NOT EXISTS queue_tasks_fifo ON queue_tasks (topic, seq);
CREATE UNIQUE INDEX IF NOT EXISTS queue_tasks_dedupe
    ON queue_tasks (topic, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS queue_dead (
    id          TEXT    PRIMARY KEY,
    topic       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    dedupe_key  TEXT,
    attempts    INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    enqueued_at INTEGER NOT NULL,
    died_at     INTEGER NOT NULL,
    seq         INTEGER
);
CREATE INDEX IF NOT EXISTS queue_dead_topic ON queue_dead (topic, id);
"#;

/// Version 2 keeps a dead task's place in line (`seq`), so that a requeued dead task goes
/// back where it was; for that, places are never reused (`AUTOINCREMENT`: without it SQLite
/// hands the highest number out again once its row is gone).
const SCHEMA_VERSION: i64 = 2;
const SET_SCHEMA_VERSION: &str = "PRAGMA user_version = 2";
/// Run before `SCHEMA`, which then recreates the indexes of the rebuilt table.
const MIGRATE_1_TO_2: &str = r#"
CREATE TABLE queue_tasks_v2 (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    topic       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    dedupe_key  TEXT,
    enqueued_at INTEGER NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    worker      TEXT,
    token       TEXT
);
INSERT INTO queue_tasks_v2 (seq, id, topic, payload, dedupe_key, enqueued_at, attempt, lease_until, worker, token)
    SELECT seq, id, topic, payload, dedupe_key, enqueued_at, attempt, lease_until, worker, token
      FROM queue_tasks;
DROP TABLE queue_tasks;
ALTER TABLE queue_tasks_v2 RENAME TO queue_tasks;
ALTER TABLE queue_dead ADD COLUMN seq INTEGER;
"#;

fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').filter(|s| !s.trim().is_empty())
}

/// The SQLite-backed [`TaskQueue`]. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// A single connection: writes queue up in-process in arrival order (a fair lock)
    /// instead of racing for SQLite's write lock, whose busy handler backs off in steps of
    /// up to 100 ms. A plain connection rather than a pool of one: a pool spawns a task to
    /// take every connection back, one more thread wake-up per statement.
    writer: Mutex<Option<SqliteConnection>>,
    /// Counting and listing never wait behind the writer (WAL readers do not block).
    reader: SqlitePool,
    opts: QueueOptions,
    wakers: Wakers,
    /// Claimers of this process waiting for a task: an enqueue hands its task to the first.
    waiters: Waiters,
    stats: Arc<QueueStats>,
}

impl EmbeddedQueue {
    /// Opens (creating if needed) the queue database at `path`. Tasks left in it by an
    /// earlier process are still there: ready ones at once, leased ones when their lease
    /// runs out.
    pub async fn open(path: &Path, opts: QueueOptions) -> Result<Self, QueueError> {
        opts.check()?;
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if opts.sync_every_commit {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(opts.backend_timeout)
            .pragma("temp_store", "memory");
        let mut writer = connect.connect().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        // One statement at a time: `raw_sql` on a connection makes this future lose `Send`
        // (a higher-ranked lifetime the compiler cannot prove, rust-lang/rust#102211).
        let mut steps: Vec<&str> = Vec::new();
        if version == 1 {
            steps.extend(statements(MIGRATE_1_TO_2));
        }
        steps.extend(statements(SCHEMA));
        if version < SCHEMA_VERSION {
            steps.push(SET_SCHEMA_VERSION);
        }
        for step in steps {
            sqlx::query(step).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(2)
            .acquire_timeout(opts.backend_timeout)
            // A local file does not drop connections; the default ping before every
            // statement would double the hand-offs to SQLite's thread.
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        let stats = QueueStats::register(format!("embedded:{}", path.display()));
        let inner = Arc::new(Inner {
            writer: Mutex::new(Some(writer)),
            reader,
            opts,
            wakers: Wakers::default(),
            waiters: Waiters::default(),
            stats,
        });
        let weak = Arc::downgrade(&inner);
        inner.stats.set_depth_source(move |topic| {
            let queue = EmbeddedQueue {
                inner: weak.upgrade()?,
            };
            Some(Box::pin(async move { queue.depth(&topic).await }))
        });
        Ok(Self { inner })
    }

    /// Closes the connections; queued work stays in the file. Later calls fail with
    /// [`QueueError::Unavailable`].
    pub async fn close(&self) {
        if let Some(writer) = self.inner.writer.lock().await.take() {
            let _ = writer.close().await;
        }
        self.inner.reader.close().await;
    }

    /// The one writing connection, in turn.
    async fn writer(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>, QueueError> {
        let guard = tokio::time::timeout(self.inner.opts.backend_timeout, self.inner.writer.lock())
            .await
            .map_err(|_| {
                QueueError::Unavailable(format!(
                    "the queue's database stayed busy for {:?}",
                    self.inner.opts.backend_timeout
                ))
            })?;
        MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| QueueError::Unavailable("the queue is closed".into()))
    }

    fn stats(&self) -> &QueueStats {
        &self.inner.stats
    }

    /// Claims the oldest ready task of `topic`, if there is one.
    async fn claim_once(
        &self,
        topic: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, QueueError> {
        let now = now_ms();
        let token = new_token();
        let row = sqlx::query(
            "UPDATE queue_tasks
                SET attempt = attempt + 1, lease_until = ?1, worker = ?2, token = ?3
              WHERE seq = (SELECT seq FROM queue_tasks
                            WHERE topic = ?4 AND lease_until <= ?5
                            ORDER BY seq LIMIT 1)
          RETURNING id, payload, attempt, dedupe_key, enqueued_at",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(worker)
        .bind(&token)
        .bind(topic)
        .bind(now)
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let attempt = row.try_get::<i64, _>("attempt")? as u32;
        let payload: String = row.try_get("payload")?;
        let payload = serde_json::from_str(&payload).map_err(|e| QueueError::Corrupt {
            key: id.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(Claimed {
            id,
            topic: topic.to_owned(),
            payload,
            attempt,
            worker: worker.to_owned(),
            dedupe_key: row.try_get("dedupe_key")?,
            enqueued_at_ms: row.try_get("enqueued_at")?,
            token,
        }))
    }

    /// What a claim found, once checked: a task whose last allowed attempt ended with a
    /// lapsed lease (its worker died or hung) is buried instead of handed out, or one
    /// poisonous task would kill workers forever. `None`: buried, look again.
    async fn checked(&self, claimed: Claimed) -> Result<Option<Claimed>, QueueError> {
        let max = self.inner.opts.max_attempts;
        if claimed.attempt <= max {
            self.stats().count(&claimed.topic, Event::Claimed);
            return Ok(Some(claimed));
        }
        let reason = format!(
            "lease expired on attempt {} of {max} without an ack",
            claimed.attempt - 1
        );
        if self
            .bury(
                &claimed.id,
                &claimed.token,
                &reason,
                Some(claimed.attempt - 1),
            )
            .await?
        {
            self.stats().count(&claimed.topic, Event::DeadLettered);
            tracing::warn!(topic = %claimed.topic, id = %claimed.id, attempts = claimed.attempt - 1, "task dead-lettered after its lease lapsed");
        }
        Ok(None)
    }

    /// Gives a task its enqueue claimed for a waiting claimer to that claimer; if the
    /// claimer is gone (its claim was cancelled), undoes the claim, as if never claimed.
    async fn hand_over(&self, waiter: Waiter, claimed: Claimed) -> Result<(), QueueError> {
        self.stats().count(&claimed.topic, Event::Claimed);
        let Err(claimed) = waiter.deliver(claimed) else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE queue_tasks SET attempt = 0, lease_until = 0, worker = NULL, token = NULL
              WHERE id = ?1 AND token = ?2",
        )
        .bind(&claimed.id)
        .bind(&claimed.token)
        .execute(&mut *self.writer().await?)
        .await?;
        self.inner.wakers.wake_one(&claimed.topic);
        Ok(())
    }

    async fn try_claim(
        &self,
        topic: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Attempt, QueueError> {
        loop {
            let Some(claimed) = self.claim_once(topic, worker, lease).await? else {
                return Ok(Attempt::Empty {
                    retry_in: self.next_expiry(topic).await?,
                });
            };
            if let Some(claimed) = self.checked(claimed).await? {
                return Ok(Attempt::Claimed(claimed));
            }
        }
    }

    /// When the earliest lease or retry delay of the topic runs out, so a waiting claimer
    /// wakes for it instead of at the next poll.
    async fn next_expiry(&self, topic: &str) -> Result<Option<Duration>, QueueError> {
        let now = now_ms();
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(lease_until) FROM queue_tasks WHERE topic = ?1 AND lease_until > ?2",
        )
        .bind(topic)
        .bind(now)
        .fetch_one(&self.inner.reader)
        .await?;
        Ok(next.map(|at| Duration::from_millis((at - now).max(0) as u64 + 5)))
    }

    /// Moves a claimed task to the dead-letter table, provided `token` still holds its lease.
    async fn bury(
        &self,
        id: &str,
        token: &str,
        reason: &str,
        attempts: Option<u32>,
    ) -> Result<bool, QueueError> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        let moved = sqlx::query(
            "INSERT INTO queue_dead (id, topic, payload, dedupe_key, attempts, reason, enqueued_at, died_at, seq)
             SELECT id, topic, payload, dedupe_key, COALESCE(?3, attempt), ?4, enqueued_at, ?5, seq
               FROM queue_tasks WHERE id = ?1 AND token = ?2 AND lease_until > ?5",
        )
        .bind(id)
        .bind(token)
        .bind(attempts.map(i64::from))
        .bind(reason)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM queue_tasks WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl TaskQueue for EmbeddedQueue {
    async fn enqueue(&self, topic: &str, task: NewTask) -> Result<Enqueued, QueueError> {
        let span = tracing::info_span!(
            "queue.enqueue",
            backend = "embedded",
            topic,
            id = tracing::field::Empty,
            deduplicated = tracing::field::Empty
        );
        async {
            check_topic(topic)?;
            let payload = encode_task(&task, &self.inner.opts)?;
            loop {
                let id = new_task_id();
                let now = now_ms();
                // A claimer of this process waiting for work gets the task claimed for it
                // in this same statement (first attempt, its lease), unless an older task
                // of the topic is ready (FIFO): no wake-up and second statement.
                let waiter = self.inner.waiters.take(topic);
                let token = waiter.as_ref().map(|_| new_token());
                let (lease_until, worker) = match &waiter {
                    Some(w) => (now + w.lease.as_millis() as i64, Some(w.worker.clone())),
                    None => (0, None),
                };
                let mut writer = self.writer().await?;
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO queue_tasks
                            (id, topic, payload, dedupe_key, enqueued_at, attempt, lease_until, worker, token)
                     SELECT ?1, ?2, ?3, ?4, ?5, handed,
                            CASE WHEN handed THEN ?6 ELSE 0 END,
                            CASE WHEN handed THEN ?7 END,
                            CASE WHEN handed THEN ?8 END
                       FROM (SELECT ?8 IS NOT NULL AND NOT EXISTS (
                                    SELECT 1 FROM queue_tasks WHERE topic = ?2 AND lease_until <= ?5
                                ) AS handed)
                      WHERE true
                     ON CONFLICT (topic, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
                     RETURNING attempt",
                )
                .bind(&id)
                .bind(topic)
                .bind(&payload)
                .bind(&task.dedupe_key)
                .bind(now)
                .bind(lease_until)
                .bind(worker)
                .bind(&token)
                .fetch_optional(&mut *writer)
                .await?;
                let result = if let Some(attempt) = inserted {
                    drop(writer);
                    self.stats().count(topic, Event::Enqueued);
                    match (waiter, token) {
                        (Some(waiter), Some(token)) if attempt == 1 => {
                            let claimed = Claimed {
                                id: id.clone(),
                                topic: topic.to_owned(),
                                payload: task.payload,
                                attempt: 1,
                                worker: waiter.worker.clone(),
                                dedupe_key: task.dedupe_key,
                                enqueued_at_ms: now,
                                token,
                            };
                            self.hand_over(waiter, claimed).await?;
                        }
                        _ => self.inner.wakers.wake_one(topic),
                    }
                    Enqueued {
                        id,
                        deduplicated: false,
                    }
                } else {
                    let existing: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM queue_tasks WHERE topic = ?1 AND dedupe_key = ?2",
                    )
                    .bind(topic)
                    .bind(&task.dedupe_key)
                    .fetch_optional(&mut *writer)
                    .await?;
                    // None: the twin was acked in between, so the key is free again.
                    let Some(id) = existing else { continue };
                    self.stats().count(topic, Event::Deduplicated);
                    Enqueued {
                        id,
                        deduplicated: true,
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
            backend = "embedded",
            topic,
            worker,
            id = tracing::field::Empty,
            attempt = tracing::field::Empty
        );
        async {
            check_topic(topic)?;
            check_worker(worker)?;
            check_lease(lease)?;
            let claimed = claim_loop(
                &self.inner.wakers,
                &self.inner.waiters,
                topic,
                worker,
                lease,
                wait,
                self.inner.opts.poll_interval,
                || self.try_claim(topic, worker, lease),
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
        let now = now_ms();
        let renewed = sqlx::query(
            "UPDATE queue_tasks SET lease_until = ?1
              WHERE id = ?2 AND token = ?3 AND lease_until > ?4",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(&task.id)
        .bind(&task.token)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if renewed == 0 {
            return Err(QueueError::LeaseLost {
                id: task.id.clone(),
            });
        }
        Ok(())
    }

    async fn ack(&self, task: &Claimed) -> Result<(), QueueError> {
        // Strict on the lease, like etcd where the claim key vanishes with it: once the
        // lease has lapsed, another worker may already be redoing the task.
        let deleted = sqlx::query(
            "DELETE FROM queue_tasks WHERE id = ?1 AND token = ?2 AND lease_until > ?3",
        )
        .bind(&task.id)
        .bind(&task.token)
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(QueueError::LeaseLost {
                id: task.id.clone(),
            });
        }
        self.stats().count(&task.topic, Event::Acked);
        Ok(())
    }

    async fn fail(&self, task: &Claimed, reason: &str) -> Result<(), QueueError> {
        let now = now_ms();
        let delay = self.inner.opts.retry_delay_for(task.attempt);
        // Back in line at its old place, but not claimable before the delay has passed:
        // `lease_until` is when a row becomes ready, the missing token tells it from a claim.
        let requeued = sqlx::query(
            "UPDATE queue_tasks SET lease_until = ?5, worker = NULL, token = NULL
              WHERE id = ?1 AND token = ?2 AND attempt < ?3 AND lease_until > ?4",
        )
        .bind(&task.id)
        .bind(&task.token)
        .bind(i64::from(self.inner.opts.max_attempts))
        .bind(now)
        .bind(now + delay.as_millis() as i64)
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected();
        if requeued == 1 {
            self.stats().count(&task.topic, Event::Failed);
            // A waiting claimer looks again and sleeps until the delay has passed.
            self.inner.wakers.wake_one(&task.topic);
            return Ok(());
        }
        if self
            .bury(&task.id, &task.token, &clip_reason(reason), None)
            .await?
        {
            self.stats().count(&task.topic, Event::Failed);
            self.stats().count(&task.topic, Event::DeadLettered);
            tracing::warn!(topic = %task.topic, id = %task.id, attempts = task.attempt, reason, "task dead-lettered");
            return Ok(());
        }
        Err(QueueError::LeaseLost {
            id: task.id.clone(),
        })
    }

    async fn dead_letters(&self, topic: &str, limit: usize) -> Result<Vec<DeadTask>, QueueError> {
        check_topic(topic)?;
        let rows = sqlx::query(
            "SELECT id, payload, dedupe_key, attempts, reason, enqueued_at, died_at
               FROM queue_dead WHERE topic = ?1 ORDER BY id LIMIT ?2",
        )
        .bind(topic)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.inner.reader)
        .await?;
        rows.into_iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let payload: String = row.try_get("payload")?;
                let payload = serde_json::from_str(&payload).map_err(|e| QueueError::Corrupt {
                    key: id.clone(),
                    reason: e.to_string(),
                })?;
                Ok(DeadTask {
                    id,
                    topic: topic.to_owned(),
                    payload,
                    dedupe_key: row.try_get("dedupe_key")?,
                    attempts: row.try_get::<i64, _>("attempts")? as u32,
                    reason: row.try_get("reason")?,
                    enqueued_at_ms: row.try_get("enqueued_at")?,
                    died_at_ms: row.try_get("died_at")?,
                })
            })
            .collect()
    }

    async fn requeue_dead(&self, topic: &str, id: &str) -> Result<Enqueued, QueueError> {
        check_topic(topic)?;
        check_task_id(id)?;
        let mut writer = self.writer().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        let dead = sqlx::query("SELECT dedupe_key FROM queue_dead WHERE topic = ?1 AND id = ?2")
            .bind(topic)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(dead) = dead else {
            return Err(QueueError::NotFound {
                what: "dead task",
                id: id.to_owned(),
            });
        };
        let key: Option<String> = dead.try_get("dedupe_key")?;
        if let Some(key) = &key {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT id FROM queue_tasks WHERE topic = ?1 AND dedupe_key = ?2",
            )
            .bind(topic)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(holder) = holder {
                return Ok(Enqueued {
                    id: holder,
                    deduplicated: true,
                });
            }
        }
        // Its old place in line (places are never reused); a task that died before places
        // were kept (schema version 1) goes to the end.
        sqlx::query(
            "INSERT INTO queue_tasks (seq, id, topic, payload, dedupe_key, enqueued_at)
             SELECT CASE WHEN seq IS NULL OR EXISTS (SELECT 1 FROM queue_tasks t WHERE t.seq = d.seq)
                         THEN NULL ELSE seq END,
                    id, topic, payload, dedupe_key, enqueued_at
               FROM queue_dead d WHERE id = ?1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM queue_dead WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        drop(writer);
        self.inner.wakers.wake_one(topic);
        self.stats().count(topic, Event::Requeued);
        Ok(Enqueued {
            id: id.to_owned(),
            deduplicated: false,
        })
    }

    async fn purge_dead(&self, topic: &str, id: Option<&str>) -> Result<u64, QueueError> {
        check_topic(topic)?;
        if let Some(id) = id {
            check_task_id(id)?;
        }
        let purged =
            sqlx::query("DELETE FROM queue_dead WHERE topic = ?1 AND (?2 IS NULL OR id = ?2)")
                .bind(topic)
                .bind(id)
                .execute(&mut *self.writer().await?)
                .await?
                .rows_affected();
        self.stats().add(topic, Event::Purged, purged);
        Ok(purged)
    }

    async fn depth(&self, topic: &str) -> Result<QueueDepth, QueueError> {
        check_topic(topic)?;
        let row = sqlx::query(
            "SELECT
                (SELECT COUNT(*) FROM queue_tasks WHERE topic = ?1 AND lease_until <= ?2) AS ready,
                (SELECT COUNT(*) FROM queue_tasks
                  WHERE topic = ?1 AND lease_until > ?2 AND token IS NULL) AS delayed,
                (SELECT COUNT(*) FROM queue_tasks
                  WHERE topic = ?1 AND lease_until > ?2 AND token IS NOT NULL) AS in_flight,
                (SELECT COUNT(*) FROM queue_dead WHERE topic = ?1) AS dead",
        )
        .bind(topic)
        .bind(now_ms())
        .fetch_one(&self.inner.reader)
        .await?;
        Ok(QueueDepth {
            ready: row.try_get::<i64, _>("ready")? as u64,
            delayed: row.try_get::<i64, _>("delayed")? as u64,
            in_flight: row.try_get::<i64, _>("in_flight")? as u64,
            dead: row.try_get::<i64, _>("dead")? as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The schema as version 1 wrote it.
    const V1: &str = r#"
CREATE TABLE queue_tasks (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL, payload TEXT NOT NULL,
    dedupe_key TEXT, enqueued_at INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0, worker TEXT, token TEXT
);
CREATE INDEX queue_tasks_fifo ON queue_tasks (topic, seq);
CREATE UNIQUE INDEX queue_tasks_dedupe ON queue_tasks (topic, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE TABLE queue_dead (
    id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL, dedupe_key TEXT,
    attempts INTEGER NOT NULL, reason TEXT NOT NULL, enqueued_at INTEGER NOT NULL, died_at INTEGER NOT NULL
);
CREATE INDEX queue_dead_topic ON queue_dead (topic, id);
INSERT INTO queue_tasks (seq, id, topic, payload, enqueued_at) VALUES (7, '00000000000000070000000a', 'jobs', '"old"', 1);
INSERT INTO queue_dead (id, topic, payload, attempts, reason, enqueued_at, died_at)
    VALUES ('00000000000000050000000b', 'jobs', '"dead"', 5, 'boom', 1, 2);
PRAGMA user_version = 1;
"#;

    async fn seq_of(q: &EmbeddedQueue, id: &str) -> i64 {
        sqlx::query_scalar("SELECT seq FROM queue_tasks WHERE id = ?1")
            .bind(id)
            .fetch_one(&q.inner.reader)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn opens_a_version_1_database_and_never_reuses_places() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        {
            let mut conn = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .connect()
                .await
                .unwrap();
            for step in statements(V1) {
                sqlx::query(step).execute(&mut conn).await.unwrap();
            }
        }
        let opts = QueueOptions {
            poll_interval: Duration::from_millis(50),
            ..Default::default()
        };
        let q = EmbeddedQueue::open(&path, opts.clone()).await.unwrap();
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&q.inner.reader)
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // The old task kept its place; new ones come after it and never take a used place.
        let a = q
            .enqueue("jobs", NewTask::new(json!("a")))
            .await
            .unwrap()
            .id;
        assert_eq!(seq_of(&q, &a).await, 8);
        let lease = Duration::from_secs(60);
        let old = q
            .claim("jobs", "w", lease, Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.payload, json!("old"));
        q.ack(&old).await.unwrap();
        let first_a = q
            .claim("jobs", "w", lease, Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        q.ack(&first_a).await.unwrap();
        let b = q
            .enqueue("jobs", NewTask::new(json!("b")))
            .await
            .unwrap()
            .id;
        assert_eq!(seq_of(&q, &b).await, 9, "8 was a's: not handed out again");
        // A dead task from version 1 has no place kept: it goes to the end.
        let dead = q
            .requeue_dead("jobs", "00000000000000050000000b")
            .await
            .unwrap();
        assert!(!dead.deduplicated);
        assert_eq!(seq_of(&q, &dead.id).await, 10);
        q.close().await;
        // Reopening a version 2 database changes nothing.
        let q = EmbeddedQueue::open(&path, opts).await.unwrap();
        assert_eq!(q.depth("jobs").await.unwrap().ready, 2);
    }
}
