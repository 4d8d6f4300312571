//! `/v1/queue/{topic}/dead`: the task queue's dead letters — tasks that used up their
//! attempts — for operators: list them, put one back in the queue, delete one or all.
//! Behind the datacenter token like the rest of `/v1`.

use super::routes::Path;
use super::{ApiError, DeadLetter, PurgedDead, RequeuedTask};
use crate::error::{Error, Result};
use crate::queue::{DeadTask, QueueError};
use crate::service::Datacenter;
use axum::extract::{Query, State};
use axum::Json;
use std::sync::Arc;

type Dc = State<Arc<Datacenter>>;

/// Dead letters listed when the request names no limit, and the most it may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadListQuery {
    /// At most this many, oldest enqueued first (default 100, at most 1000).
    limit: Option<usize>,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurgeQuery {
    /// Only this dead task; without it, every dead task of the topic.
    id: Option<String>,
}

/// A missing dead task is a 404 and a malformed topic or id a 422; the rest means the
/// queue's backend did not answer (503).
fn queue_error(e: QueueError) -> Error {
    match e {
        QueueError::NotFound { .. } => Error::NotFound(e.to_string()),
        QueueError::Invalid { .. } => Error::Invalid(vec![e.to_string()]),
        other => other.into(),
    }
}

fn dead_letter(d: DeadTask) -> DeadLetter {
    DeadLetter {
        payload: d.payload.to_string(),
        id: d.id,
        topic: d.topic,
        dedupe_key: d.dedupe_key,
        attempts: d.attempts,
        reason: d.reason,
        enqueued_at: d.enqueued_at_ms,
        died_at: d.died_at_ms,
    }
}

/// The topic's dead tasks, oldest enqueued first.
#[utoipa::path(get, path = "/v1/queue/{topic}/dead", params(("topic" = String, Path), DeadListQuery),
    responses((status = 200, body = Vec<DeadLetter>), (status = 401, body = ApiError), (status = 422, body = ApiError), (status = 503, body = ApiError)))]
pub async fn list_dead(
    State(dc): Dc,
    Path(topic): Path<String>,
    Query(q): Query<DeadListQuery>,
) -> Result<Json<Vec<DeadLetter>>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let dead = dc
        .queue
        .dead_letters(&topic, limit)
        .await
        .map_err(queue_error)?;
    Ok(Json(dead.into_iter().map(dead_letter).collect()))
}

/// Puts a dead task back in the queue: ready at once at its old place, with its attempts
/// reset. If a live task now holds its dedupe key, that task is named instead
/// (`deduplicated`) and the dead letter stays.
#[utoipa::path(post, path = "/v1/queue/{topic}/dead/{id}/requeue", params(("topic" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RequeuedTask), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError), (status = 503, body = ApiError)))]
pub async fn requeue_dead(
    State(dc): Dc,
    Path((topic, id)): Path<(String, String)>,
) -> Result<Json<RequeuedTask>> {
    let done = dc
        .queue
        .requeue_dead(&topic, &id)
        .await
        .map_err(queue_error)?;
    tracing::info!(%topic, %id, now = %done.id, deduplicated = done.deduplicated, "dead task requeued");
    Ok(Json(RequeuedTask {
        id: done.id,
        deduplicated: done.deduplicated,
    }))
}

/// Deletes one dead task (`?id=`) or all of the topic's; says how many went (0 when there
/// was nothing to delete).
#[utoipa::path(delete, path = "/v1/queue/{topic}/dead", params(("topic" = String, Path), PurgeQuery),
    responses((status = 200, body = PurgedDead), (status = 401, body = ApiError), (status = 422, body = ApiError), (status = 503, body = ApiError)))]
pub async fn purge_dead(
    State(dc): Dc,
    Path(topic): Path<String>,
    Query(q): Query<PurgeQuery>,
) -> Result<Json<PurgedDead>> {
    let purged = dc
        .queue
        .purge_dead(&topic, q.id.as_deref())
        .await
        .map_err(queue_error)?;
    tracing::info!(%topic, id = q.id.as_deref().unwrap_or("*"), purged, "dead tasks purged");
    Ok(Json(PurgedDead { purged }))
}
