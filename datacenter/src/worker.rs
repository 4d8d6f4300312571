//! Workers: take action tasks off the queue and carry them out through the
//! runtime, writing the event's log as they go. A task may be delivered more
//! than once (a worker died before acking); handlers are idempotent and a
//! finished event is never run again.

use crate::api::*;
use crate::error::{Error, Result};
use crate::logs::EventLog;
use crate::queue::{Claimed, TaskQueue};
use crate::runtime::{RuntimeError, Target};
use crate::service::Datacenter;
use crate::store::components::Key;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

pub const TOPIC: &str = "actions";
const LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionTask {
    pub event_id: String,
    pub team: String,
    pub app: String,
    pub component: String,
    pub action: ActionKind,
    #[serde(default)]
    pub replicas: Option<u32>,
}

impl ActionTask {
    fn key(&self) -> Key {
        Key {
            team: self.team.clone(),
            app: self.app.clone(),
            name: self.component.clone(),
        }
    }
}

pub fn spawn(dc: Arc<Datacenter>, count: usize) {
    for n in 0..count {
        let dc = dc.clone();
        let worker = format!("{}-worker-{n}", dc.name);
        tokio::spawn(async move {
            loop {
                match dc
                    .queue
                    .claim(TOPIC, &worker, LEASE, Duration::from_secs(1))
                    .await
                {
                    Ok(Some(task)) => {
                        let span =
                            tracing::info_span!("task", id = %task.id, attempt = task.attempt);
                        handle(&dc, &worker, task).instrument(span).await;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim tasks; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

async fn handle(dc: &Arc<Datacenter>, worker: &str, claimed: Claimed) {
    let task: ActionTask = match serde_json::from_value(claimed.payload.clone()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "malformed task dropped");
            let _ = dc.queue.ack(&claimed).await;
            return;
        }
    };
    // Keep the claim alive while the work runs.
    let heartbeat = {
        let queue: Arc<dyn TaskQueue> = dc.queue.clone();
        let claimed = claimed.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if queue.renew(&claimed, LEASE).await.is_err() {
                    break;
                }
            }
        })
    };
    let outcome = run(dc, worker, &task, claimed.attempt).await;
    heartbeat.abort();
    match outcome {
        Ok(()) => {
            let _ = dc.queue.ack(&claimed).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "task failed; it will be retried");
            let _ = dc.queue.fail(&claimed, &e.to_string()).await;
        }
    }
}

/// `Err` means "try again later"; outcomes the user must see (including
/// failures that retrying cannot fix) close the event and return `Ok`.
async fn run(dc: &Arc<Datacenter>, worker: &str, task: &ActionTask, attempt: u32) -> Result<()> {
    let event = dc.events.get(&task.event_id).await?;
    if event.status.is_final() {
        return Ok(());
    }
    let log = EventLog::open(&task.event_id, dc.events.clone(), dc.hub.clone()).await?;
    dc.events
        .set_status(&task.event_id, EventStatus::Running, None)
        .await?;
    log.info(
        "accepted",
        format!(
            "{} picked up by {worker} (attempt {attempt})",
            task.action.as_str()
        ),
    )
    .await;
    match perform(dc, task, &log).await {
        Ok(message) => log.close(EventStatus::Succeeded, &message).await,
        Err(Error::Unavailable(m)) | Err(Error::Internal(m)) if attempt < 3 => {
            log.warn("retry", format!("attempt {attempt} failed: {m}; retrying"))
                .await;
            Err(Error::Unavailable(m))
        }
        Err(e) => log.close(EventStatus::Failed, &e.to_string()).await,
    }
}

async fn perform(dc: &Arc<Datacenter>, task: &ActionTask, log: &EventLog) -> Result<String> {
    let key = task.key();
    match task.action {
        ActionKind::Create => {
            let c = dc.components.get(&key).await?;
            log.info(
                "store",
                format!(
                    "component {key} stored with {} port(s), {} replica(s)",
                    c.ports.len(),
                    c.replicas
                ),
            )
            .await;
            log.info("store", "nothing runs until the component is started")
                .await;
            Ok(format!("component {} created", key.name))
        }
        ActionKind::Update => {
            let c = dc.components.get(&key).await?;
            log.info("store", "configuration saved").await;
            if c.desired_running {
                log.info(
                    "apply",
                    "the component is running: replacing its replicas with the new configuration",
                )
                .await;
                converge(dc, &key, true, log).await?;
            }
            Ok("configuration updated".into())
        }
        ActionKind::Delete => {
            let c = match dc.components.get(&key).await {
                Ok(c) => c,
                // Already gone: a redelivered delete has nothing left to do.
                Err(Error::NotFound(_)) => return Ok(format!("component {} deleted", key.name)),
                Err(e) => return Err(e),
            };
            dc.runtime.remove(&c, log).await.map_err(runtime_error)?;
            dc.components.delete(&key).await?;
            Ok(format!("component {} deleted", key.name))
        }
        ActionKind::Start => {
            dc.components.set_desired_running(&key, true).await?;
            dc.components
                .set_status(&key, ComponentStatus::Starting)
                .await?;
            let status = converge(dc, &key, false, log).await?;
            Ok(format!("component {} is {}", key.name, status.as_str()))
        }
        ActionKind::Stop => {
            dc.components.set_desired_running(&key, false).await?;
            dc.components
                .set_status(&key, ComponentStatus::Stopping)
                .await?;
            converge(dc, &key, false, log).await?;
            Ok(format!("component {} stopped", key.name))
        }
        ActionKind::Restart => {
            dc.components.set_desired_running(&key, true).await?;
            let status = converge(dc, &key, true, log).await?;
            Ok(format!(
                "component {} restarted and {}",
                key.name,
                status.as_str()
            ))
        }
        ActionKind::Scale => {
            let replicas = task
                .replicas
                .ok_or_else(|| Error::Invalid(vec!["scale needs a replica count".into()]))?;
            dc.components.set_replicas(&key, replicas).await?;
            log.info("scale", format!("desired replicas: {replicas}"))
                .await;
            let c = dc.components.get(&key).await?;
            if c.desired_running {
                converge(dc, &key, false, log).await?;
            }
            Ok(format!("component {} scaled to {replicas}", key.name))
        }
        ActionKind::Build | ActionKind::Deploy | ActionKind::Rollback => {
            Err(Error::Invalid(vec![format!(
                "{} is not available in this datacenter",
                task.action.as_str()
            )]))
        }
    }
}

async fn converge(
    dc: &Arc<Datacenter>,
    key: &Key,
    restart: bool,
    log: &EventLog,
) -> Result<ComponentStatus> {
    let component = dc.components.get(key).await?;
    let secrets = dc.components.secret_values(key).await?;
    let running = component.desired_running;
    let target = Target {
        component,
        secrets,
        running,
        restart,
    };
    match dc.runtime.converge(&target, log).await {
        Ok(status) => {
            dc.components.set_status(key, status).await?;
            Ok(status)
        }
        Err(e) => {
            let _ = dc
                .components
                .set_status(key, ComponentStatus::Abnormal)
                .await;
            Err(runtime_error(e))
        }
    }
}

fn runtime_error(e: RuntimeError) -> Error {
    match e {
        RuntimeError::Unsupported(m) => Error::Invalid(vec![m]),
        RuntimeError::Failed(m) => Error::Unavailable(m),
    }
}
