//! The zero-config queue: one SQLite file of its own, in WAL mode.
//!
//! A claim is a row whose `lease_until` lies in the future; a lapsed lease needs no
//! clean-up, the row simply matches the "ready" query again. Every claim is a single
//! `UPDATE … WHERE seq = (oldest ready) RETURNING …`, and SQLite runs one writer at a time,
//! so two claimers can never take the same row.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tracing::Instrument;

use super::{
    check_lease, check_topic, check_worker, claim_loop, clip_reason, encode_task, new_task_id,
    new_token, now_ms, Attempt, Claimed, DeadTask, Enqueued, NewTask, QueueDepth, QueueError,
    QueueOptions, TaskQueue, Wakers,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queue_tasks (
    seq         INTEGER PRIMARY KEY,
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
    died_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_dead_topic ON queue_dead (topic, id);
PRAGMA user_version = 1;
"#;

/// The SQLite-backed [`TaskQueue`]. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// A single connection: writes queue up in-process in arrival order instead of racing
    /// for SQLite's write lock, whose busy handler backs off in steps of up to 100 ms.
    writer: SqlitePool,
    /// Counting and listing never wait behind the writer (WAL readers do not block).
    reader: SqlitePool,
    opts: QueueOptions,
    wakers: Wakers,
}

impl EmbeddedQueue {
    /// Opens (creating if needed) the queue database at `path`. Tasks left in it by an
    /// earlier process are still there: ready ones at once, leased ones when their lease
    /// runs out.
    pub async fn open(path: &Path, opts: QueueOptions) -> Result<Self, QueueError> {
        if opts.max_attempts == 0 {
            return Err(QueueError::Invalid {
                what: "max_attempts",
                reason: "must be at least 1".into(),
            });
        }
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(opts.backend_timeout)
            // A local file does not drop connections; the default ping before every
            // statement would double the hand-offs to SQLite's thread.
            .test_before_acquire(false)
            // The one writer lives as long as the queue: reconnecting costs more than it saves.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.clone())
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(2)
            .acquire_timeout(opts.backend_timeout)
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                reader,
                opts,
                wakers: Wakers::default(),
            }),
        })
    }

    /// Closes the connections; queued work stays in the file.
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.reader.close().await;
    }

    async fn try_claim(
        &self,
        topic: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Attempt, QueueError> {
        let max = self.inner.opts.max_attempts;
        loop {
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
            .fetch_optional(&self.inner.writer)
            .await?;
            let Some(row) = row else {
                return Ok(Attempt::Empty {
                    retry_in: self.next_expiry(topic).await?,
                });
            };
            let id: String = row.try_get("id")?;
            let attempt = row.try_get::<i64, _>("attempt")? as u32;
            if attempt > max {
                // Its last allowed attempt ended with a lapsed lease (the worker died or hung):
                // handing it out again would let one poisonous task kill workers forever.
                let reason = format!(
                    "lease expired on attempt {} of {max} without an ack",
                    attempt - 1
                );
                self.bury(&id, &token, &reason, Some(attempt - 1)).await?;
                continue;
            }
            let payload: String = row.try_get("payload")?;
            let payload = serde_json::from_str(&payload).map_err(|e| QueueError::Corrupt {
                key: id.clone(),
                reason: e.to_string(),
            })?;
            return Ok(Attempt::Claimed(Claimed {
                id,
                topic: topic.to_owned(),
                payload,
                attempt,
                worker: worker.to_owned(),
                dedupe_key: row.try_get("dedupe_key")?,
                enqueued_at_ms: row.try_get("enqueued_at")?,
                token,
            }));
        }
    }

    /// When the earliest lease of the topic runs out, so a waiting claimer wakes for it
    /// instead of at the next poll.
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
        let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await?;
        let moved = sqlx::query(
            "INSERT INTO queue_dead (id, topic, payload, dedupe_key, attempts, reason, enqueued_at, died_at)
             SELECT id, topic, payload, dedupe_key, COALESCE(?3, attempt), ?4, enqueued_at, ?5
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
                let inserted = sqlx::query(
                    "INSERT INTO queue_tasks (id, topic, payload, dedupe_key, enqueued_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (topic, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
                )
                .bind(&id)
                .bind(topic)
                .bind(&payload)
                .bind(&task.dedupe_key)
                .bind(now_ms())
                .execute(&self.inner.writer)
                .await?
                .rows_affected();
                let result = if inserted == 1 {
                    self.inner.wakers.wake_one(topic);
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
                    .fetch_optional(&self.inner.writer)
                    .await?;
                    // None: the twin was acked in between, so the key is free again.
                    let Some(id) = existing else { continue };
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
                topic,
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
        .execute(&self.inner.writer)
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
        .execute(&self.inner.writer)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(QueueError::LeaseLost {
                id: task.id.clone(),
            });
        }
        Ok(())
    }

    async fn fail(&self, task: &Claimed, reason: &str) -> Result<(), QueueError> {
        let requeued = sqlx::query(
            "UPDATE queue_tasks SET lease_until = 0, worker = NULL, token = NULL
              WHERE id = ?1 AND token = ?2 AND attempt < ?3 AND lease_until > ?4",
        )
        .bind(&task.id)
        .bind(&task.token)
        .bind(i64::from(self.inner.opts.max_attempts))
        .bind(now_ms())
        .execute(&self.inner.writer)
        .await?
        .rows_affected();
        if requeued == 1 {
            self.inner.wakers.wake_one(&task.topic);
            return Ok(());
        }
        if self
            .bury(&task.id, &task.token, &clip_reason(reason), None)
            .await?
        {
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

    async fn depth(&self, topic: &str) -> Result<QueueDepth, QueueError> {
        check_topic(topic)?;
        let row = sqlx::query(
            "SELECT
                (SELECT COUNT(*) FROM queue_tasks WHERE topic = ?1 AND lease_until <= ?2) AS ready,
                (SELECT COUNT(*) FROM queue_tasks WHERE topic = ?1 AND lease_until > ?2) AS in_flight,
                (SELECT COUNT(*) FROM queue_dead WHERE topic = ?1) AS dead",
        )
        .bind(topic)
        .bind(now_ms())
        .fetch_one(&self.inner.reader)
        .await?;
        Ok(QueueDepth {
            ready: row.try_get::<i64, _>("ready")? as u64,
            in_flight: row.try_get::<i64, _>("in_flight")? as u64,
            dead: row.try_get::<i64, _>("dead")? as u64,
        })
    }
}
