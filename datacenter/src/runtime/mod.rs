//! The seam between the datacenter and whatever runs components: the local
//! process supervisor on one machine, or Kubernetes. Handlers and the
//! reconciler only ever talk to this trait.

use crate::api::{Capacity, Component, ComponentStatus};
use crate::logs::EventLog;
use std::collections::BTreeMap;

/// Everything a runtime needs to run one component as the user wants it.
#[derive(Debug, Clone)]
pub struct Target {
    pub component: Component,
    pub secrets: BTreeMap<String, String>,
    pub running: bool,
    /// Replace running replicas even if nothing changed (restart).
    pub restart: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The component cannot run here as configured; retrying will not help.
    #[error("{0}")]
    Unsupported(String),
    /// Something went wrong that may pass (a crash, a timeout); worth retrying.
    #[error("{0}")]
    Failed(String),
}

#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `local` or `kubernetes`.
    fn kind(&self) -> &'static str;
    fn capacity(&self) -> Capacity;
    /// Brings the component to `target` (idempotent: converging twice to the
    /// same target changes nothing the second time) and reports the result.
    async fn converge(
        &self,
        target: &Target,
        log: &EventLog,
    ) -> Result<ComponentStatus, RuntimeError>;
    /// Stops and forgets everything of the component.
    async fn remove(&self, component: &Component, log: &EventLog) -> Result<(), RuntimeError>;
    /// What is actually running, for the reconciler.
    async fn observe(&self, component: &Component) -> ComponentStatus;
}

pub mod local;
