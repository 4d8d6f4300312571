//! The seam between the datacenter and whatever runs components: the local
//! process supervisor on one machine, or Kubernetes. Handlers and the
//! reconciler only ever talk to this trait.

use crate::api::{Capacity, Component, ComponentStatus, ReplicaInfo, ReplicaUsage};
use crate::logs::EventLog;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A built version, ready to run.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    /// The artifact: replicas run with this as their working directory.
    pub dir: PathBuf,
    pub run_command: String,
    pub path_prepend: Vec<PathBuf>,
    /// From the app's own `cloudport.yaml`, used when the component sets no probe.
    pub health_path: Option<String>,
}

/// Everything a runtime needs to run one component as the user wants it.
#[derive(Debug, Clone)]
pub struct Target {
    pub component: Component,
    pub secrets: BTreeMap<String, String>,
    pub running: bool,
    /// Replace running replicas even if nothing changed (restart).
    pub restart: bool,
    /// What to run; without one, the component's own run command runs in an
    /// empty working directory.
    pub release: Option<Release>,
    /// Connection variables of the components this one depends on.
    pub links: Vec<(String, String)>,
}

/// What is actually running, and why when it is not well.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub status: ComponentStatus,
    pub message: Option<String>,
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
    /// A new release replaces running replicas only once its own are healthy.
    async fn converge(&self, target: &Target, log: &EventLog) -> Result<Observed, RuntimeError>;
    /// Stops and forgets everything of the component.
    async fn remove(&self, component: &Component, log: &EventLog) -> Result<(), RuntimeError>;
    /// What is actually running, for the reconciler.
    async fn observe(&self, component: &Component) -> Observed;
    async fn replicas(&self, component: &Component) -> Vec<ReplicaInfo>;
    /// CPU and memory of each replica now; CPU is averaged since the
    /// previous call for the same component.
    async fn usage(&self, component: &Component) -> Vec<ReplicaUsage>;
    /// The component's stable address, once it has run.
    fn address(&self, component: &Component) -> Option<SocketAddr>;
    /// The datacenter is stopping: end what this runtime started on this
    /// machine, so nothing outlives it. Desired state is kept; the next
    /// start converges back to it.
    async fn shutdown(&self) {}
}

pub mod local;
