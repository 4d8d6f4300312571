//! Drives what runs toward what is stored. After a restart (even kill -9)
//! nothing is running; the reconciler sees components that should run and
//! queues their start, so the datacenter converges instead of forgetting.

use crate::api::{ActionKind, ComponentStatus};
use crate::service::Datacenter;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

pub fn spawn(dc: Arc<Datacenter>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut retention_at = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            if let Err(e) = pass(&dc)
                .instrument(tracing::debug_span!("reconcile"))
                .await
            {
                tracing::warn!(error = %e, "reconcile pass failed");
            }
            // Also retries TCP routes whose port was taken at the last try.
            if let Err(e) = dc.refresh_gateway().await {
                tracing::warn!(error = %e, "gateway refresh failed");
            }
            dc.hub.sweep();
            if retention_at.elapsed() > Duration::from_secs(60) {
                dc.component_logs.enforce_retention().await;
                retention_at = tokio::time::Instant::now();
            }
        }
    });
}

pub async fn pass(dc: &Datacenter) -> crate::error::Result<()> {
    for key in dc.components.all_keys().await? {
        let Ok(c) = dc.components.get(&key).await else {
            continue;
        };
        // An operation is under way; its task (redelivered if its worker
        // died) settles the status.
        if matches!(
            c.status,
            ComponentStatus::Building
                | ComponentStatus::Starting
                | ComponentStatus::Upgrading
                | ComponentStatus::Stopping
        ) {
            continue;
        }
        let observed = dc.runtime.observe(&c).await;
        let fix = match (c.desired_running, observed.status) {
            (true, _) if c.replicas == 0 => None,
            // Abnormal: the supervisor is already restarting the replicas.
            (true, ComponentStatus::Running | ComponentStatus::Abnormal) => None,
            (true, _) => Some(ActionKind::Start),
            (false, ComponentStatus::Running | ComponentStatus::Abnormal) => Some(ActionKind::Stop),
            (false, _) => None,
        };
        // Back off from a component whose last fix failed a moment ago.
        let recent_failure = dc
            .events
            .list(&key.team, Some(&key.app), Some(&key.name), 1)
            .await?
            .first()
            .is_some_and(|e| {
                e.status == crate::api::EventStatus::Failed
                    && e.finished_at.unwrap_or(0) > crate::store::now_ms() - 60_000
            });
        if let (Some(action), false) = (fix, recent_failure) {
            // One pending fix per component, however many passes see the drift.
            let dedupe = Some(format!("reconcile:{key}"));
            dc.submit_task(&key, action, "reconciler", None, None, dedupe)
                .await?;
        } else if fix.is_none()
            && (observed.status != c.status || observed.message != c.status_message)
            && !matches!(
                (c.status, observed.status),
                (
                    ComponentStatus::Undeployed | ComponentStatus::BuildFailed,
                    ComponentStatus::Stopped
                )
            )
        {
            dc.components
                .set_state(&key, observed.status, observed.message.as_deref())
                .await?;
        }
    }
    Ok(())
}
