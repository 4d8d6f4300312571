//! Workers: take action tasks off the queue and carry them out through the
//! runtime, writing the event's log as they go. A task may be delivered more
//! than once (a worker died before acking); handlers are idempotent and a
//! finished event is never run again.

use crate::api::*;
use crate::builder::SourceInput;
use crate::error::{Error, Result};
use crate::logs::EventLog;
use crate::queue::{Claimed, TaskQueue};
use crate::runtime::{Release, RuntimeError, Target};
use crate::service::Datacenter;
use crate::store::components::Key;
use crate::store::versions::{version_id, NewVersion};
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
    /// For `deploy` and `rollback`.
    #[serde(default)]
    pub version: Option<String>,
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
    let _serial = dc.operation_lock(&task.key()).await;
    // It may have been settled while this task waited its turn.
    if dc.events.get(&task.event_id).await?.status.is_final() {
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
            dc.refresh_gateway().await?;
            dc.builder.remove(&key);
            dc.component_logs.remove(&key).await;
            log.info("store", "versions, artifacts, caches and logs removed")
                .await;
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
        ActionKind::Build => build_and_deploy(dc, task, &key, log).await,
        ActionKind::Deploy => {
            let c = dc.components.get(&key).await?;
            let version = match &task.version {
                Some(v) => dc.versions.get(&key, v, None).await?.version.id,
                None => dc
                    .versions
                    .latest(&key, None)
                    .await?
                    .map(|v| v.version.id)
                    .ok_or_else(|| {
                        Error::Invalid(vec!["nothing to deploy: build the component first".into()])
                    })?,
            };
            deploy(dc, &key, &c, &version, log).await
        }
        ActionKind::Rollback => {
            let c = dc.components.get(&key).await?;
            let wanted = task
                .version
                .as_deref()
                .ok_or_else(|| Error::Invalid(vec!["rollback needs a version".into()]))?;
            let v = dc.versions.get(&key, wanted, None).await?;
            log.info(
                "rollback",
                format!(
                    "restoring {} exactly as it was built: its artifact, environment and configuration",
                    v.version.id
                ),
            )
            .await;
            dc.components.restore(&key, &v.spec, &v.secrets).await?;
            deploy(dc, &key, &c, &v.version.id, log).await
        }
    }
}

/// Fetches and builds the component's source into a new version, then
/// deploys it; the event succeeds only once the version runs healthy.
async fn build_and_deploy(
    dc: &Arc<Datacenter>,
    task: &ActionTask,
    key: &Key,
    log: &EventLog,
) -> Result<String> {
    let c = dc.components.get(key).await?;
    let source = match &c.source {
        Source::Git { url, reference } => SourceInput::Git {
            url: url.clone(),
            reference: reference.clone(),
        },
        Source::Upload if dc.builder.has_upload(key) => SourceInput::Upload,
        Source::Upload => {
            return Err(Error::Invalid(vec![
                "no source uploaded yet: upload an archive (or use `cloudport push`)".into(),
            ]))
        }
        Source::Image { image } => {
            return Err(Error::Invalid(vec![format!(
                "image {image} needs the kubernetes runtime (cloudport datacenter --runtime kubernetes); this datacenter runs local processes"
            )]))
        }
        Source::Dockerfile { .. } => {
            return Err(Error::Invalid(vec![
                "a Dockerfile needs the kubernetes runtime (cloudport datacenter --runtime kubernetes); this datacenter runs local processes".into(),
            ]))
        }
    };
    let was_running = c.status == ComponentStatus::Running;
    if !was_running {
        dc.components
            .set_state(key, ComponentStatus::Building, None)
            .await?;
    }
    let number = dc.versions.next_number(key).await?;
    let version = version_id(number);
    log.info("build", format!("building {version}")).await;
    let started = std::time::Instant::now();
    let out = match dc
        .builder
        .build(key, &version, &source, &c.build, log)
        .await
    {
        Ok(out) => out,
        Err(e) => {
            if !was_running {
                let _ = dc
                    .components
                    .set_state(key, ComponentStatus::BuildFailed, Some(&e.to_string()))
                    .await;
            }
            return Err(e);
        }
    };
    let build_ms = started.elapsed().as_millis() as i64;
    let secrets = dc.components.secret_values(key).await?;
    let component_id = dc.components.id(key).await?;
    dc.versions
        .create(
            component_id,
            NewVersion {
                number,
                event_id: &task.event_id,
                source: &out.source,
                language: &out.plan.language,
                run_command: &out.plan.run_command,
                build_ms,
                artifact: &out.artifact,
                path_prepend: &out.path_prepend,
                spec: &crate::store::components::spec_of(&c),
                secrets: &secrets,
                health_path: out.plan.health_path.as_deref(),
            },
        )
        .await?;
    log.info(
        "build",
        format!(
            "{version} built in {:.1}s ({}{})",
            build_ms as f64 / 1000.0,
            out.plan.language,
            if out.cache_hit {
                ", dependencies from cache"
            } else {
                ""
            }
        ),
    )
    .await;
    deploy(dc, key, &c, &version, log).await
}

/// Makes `version` the one that runs: new replicas take over once healthy.
/// If they never get healthy the previous version keeps serving and stays
/// the current one.
async fn deploy(
    dc: &Arc<Datacenter>,
    key: &Key,
    before: &Component,
    version: &str,
    log: &EventLog,
) -> Result<String> {
    log.info("deploy", format!("deploying {version}")).await;
    dc.components.set_version(key, version).await?;
    dc.components.set_desired_running(key, true).await?;
    let status = if before.status == ComponentStatus::Running {
        ComponentStatus::Upgrading
    } else {
        ComponentStatus::Starting
    };
    dc.components.set_state(key, status, None).await?;
    match converge(dc, key, false, log).await {
        Ok(ComponentStatus::Running) => {
            let url = dc
                .runtime
                .address(&dc.components.get(key).await?)
                .map(|a| format!(" at http://{a}"))
                .unwrap_or_default();
            Ok(format!("{version} of {} is running{url}", key.name))
        }
        Ok(other) => {
            restore_version(dc, key, before).await;
            Err(Error::Invalid(vec![format!(
                "{version} did not become healthy (status {})",
                other.as_str()
            )]))
        }
        Err(e) => {
            restore_version(dc, key, before).await;
            Err(e)
        }
    }
}

async fn restore_version(dc: &Arc<Datacenter>, key: &Key, before: &Component) {
    if let Some(v) = &before.version {
        let _ = dc.components.set_version(key, v).await;
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
    let release = match &component.version {
        Some(v) => {
            let v = dc.versions.get(key, v, None).await?;
            Some(Release {
                version: v.version.id,
                dir: v.artifact,
                run_command: v.version.run_command,
                path_prepend: v.path_prepend,
                health_path: v.health_path,
            })
        }
        None => None,
    };
    let links = if running {
        links(dc, &component, log).await
    } else {
        Vec::new()
    };
    let target = Target {
        component,
        secrets,
        running,
        restart,
        release,
        links,
    };
    match dc.runtime.converge(&target, log).await {
        Ok(observed) => {
            dc.components
                .set_state(key, observed.status, observed.message.as_deref())
                .await?;
            Ok(observed.status)
        }
        Err(e) => {
            // What runs now is what the user should see, with why the change failed.
            let observed = dc.runtime.observe(&target.component).await;
            let status = match observed.status {
                ComponentStatus::Stopped if target.running => ComponentStatus::Abnormal,
                other => other,
            };
            let _ = dc
                .components
                .set_state(key, status, Some(&e.to_string()))
                .await;
            Err(runtime_error(e))
        }
    }
}

/// The connection variables of the components `c` depends on: for a
/// dependency named `db`, `DB_HOST`, `DB_PORT` and `DB_URL`, plus every
/// variable `db` marks as outer.
async fn links(dc: &Arc<Datacenter>, c: &Component, log: &EventLog) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for dep in &c.dependencies {
        let key = Key {
            team: c.team.clone(),
            app: dep.app.clone(),
            name: dep.component.clone(),
        };
        let Ok(other) = dc.components.get(&key).await else {
            log.warn("link", format!("dependency {key} does not exist; skipped"))
                .await;
            continue;
        };
        let prefix = other.name.to_uppercase().replace('-', "_");
        let mut names = Vec::new();
        match dc.runtime.address(&other) {
            Some(addr) => {
                env.push((format!("{prefix}_HOST"), addr.ip().to_string()));
                env.push((format!("{prefix}_PORT"), addr.port().to_string()));
                env.push((format!("{prefix}_URL"), format!("http://{addr}")));
                names.extend([
                    format!("{prefix}_HOST"),
                    format!("{prefix}_PORT"),
                    format!("{prefix}_URL"),
                ]);
            }
            None => {
                log.warn(
                    "link",
                    format!("{key} has not run yet, so it has no address; start it first"),
                )
                .await
            }
        }
        for var in other.env.iter().filter(|v| v.outer) {
            env.push((var.name.clone(), var.value.clone()));
            names.push(var.name.clone());
        }
        if !names.is_empty() {
            log.info("link", format!("from {key}: {}", names.join(", ")))
                .await;
        }
    }
    env
}

fn runtime_error(e: RuntimeError) -> Error {
    match e {
        RuntimeError::Unsupported(m) => Error::Invalid(vec![m]),
        RuntimeError::Failed(m) => Error::Unavailable(m),
    }
}
