//! The datacenter API contract: the one definition of every request and
//! response the console, the UI and the datacenter exchange. Plain serde
//! types, so they compile for WASM too.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a datacenter says about itself (`GET /v1/info`).
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatacenterInfo {
    pub name: String,
    pub version: String,
    /// `local` (process supervisor on this machine) or `kubernetes`.
    pub runtime: String,
    pub capacity: Capacity,
    /// Unix ms.
    pub started_at: i64,
    pub components: i64,
    /// Tasks waiting or running in the datacenter's queue.
    pub queue_depth: i64,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Capacity {
    pub cpu_millicores: i64,
    pub memory_mb: i64,
}

/// Where a component's code comes from.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Git {
        url: String,
        #[serde(default = "default_ref")]
        reference: String,
    },
    Upload,
    Image {
        image: String,
    },
    Dockerfile {
        url: String,
        #[serde(default = "default_ref")]
        reference: String,
    },
}

fn default_ref() -> String {
    "main".into()
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Tcp,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub port: u16,
    pub protocol: Protocol,
    /// Reachable by other components of the datacenter.
    #[serde(default)]
    pub inner: bool,
    /// Exposed through the datacenter's gateway.
    #[serde(default)]
    pub outer: bool,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    /// Offered to components that depend on this one.
    #[serde(default)]
    pub outer: bool,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub mount_path: String,
    pub size_mb: i64,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// `app/component` in the same team.
    pub app: String,
    pub component: String,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HealthProbe {
    Http { port: u16, path: String },
    Tcp { port: u16 },
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millicores: i64,
    pub memory_mb: i64,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu_millicores: 500,
            memory_mb: 256,
        }
    }
}

/// What a user sets on a component. Secrets are write-only: they are sent
/// here in clear, stored encrypted, and only their names ever come back.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    pub name: String,
    pub source: Source,
    #[serde(default)]
    pub build: BuildSettings,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Secret name → value. On update, a secret absent here is kept; an
    /// empty value deletes it.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub health: Option<HealthProbe>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default = "one")]
    pub replicas: u32,
}

fn one() -> u32 {
    1
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BuildSettings {
    /// Overrides language detection, e.g. `node`, `python`, `static`.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub build_command: Option<String>,
    #[serde(default)]
    pub run_command: Option<String>,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Undeployed,
    Building,
    BuildFailed,
    Starting,
    Running,
    Abnormal,
    Stopping,
    Stopped,
    Upgrading,
}

impl ComponentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Undeployed => "undeployed",
            ComponentStatus::Building => "building",
            ComponentStatus::BuildFailed => "build_failed",
            ComponentStatus::Starting => "starting",
            ComponentStatus::Running => "running",
            ComponentStatus::Abnormal => "abnormal",
            ComponentStatus::Stopping => "stopping",
            ComponentStatus::Stopped => "stopped",
            ComponentStatus::Upgrading => "upgrading",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use ComponentStatus::*;
        [
            Undeployed,
            Building,
            BuildFailed,
            Starting,
            Running,
            Abnormal,
            Stopping,
            Stopped,
            Upgrading,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A component as the datacenter reports it.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub team: String,
    pub app: String,
    pub name: String,
    pub source: Source,
    pub build: BuildSettings,
    pub ports: Vec<Port>,
    pub env: Vec<EnvVar>,
    /// Names only; values never leave the datacenter.
    pub secret_names: Vec<String>,
    pub volumes: Vec<Volume>,
    pub dependencies: Vec<Dependency>,
    pub health: Option<HealthProbe>,
    pub resources: Resources,
    pub replicas: u32,
    pub status: ComponentStatus,
    /// Whether the user wants it running (the reconciler's target).
    pub desired_running: bool,
    pub version: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Create,
    Update,
    Delete,
    Build,
    Deploy,
    Start,
    Stop,
    Restart,
    Scale,
    Rollback,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::Delete => "delete",
            ActionKind::Build => "build",
            ActionKind::Deploy => "deploy",
            ActionKind::Start => "start",
            ActionKind::Stop => "stop",
            ActionKind::Restart => "restart",
            ActionKind::Scale => "scale",
            ActionKind::Rollback => "rollback",
        }
    }
}

/// A request to act on a component; answered at once with the event that
/// will follow the work.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub action: ActionKind,
    /// Who asked, as the console knows them (for the event).
    pub actor: String,
    /// For `scale`.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// For `rollback` / `deploy`: the version to run.
    #[serde(default)]
    pub version: Option<String>,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Queued => "queued",
            EventStatus::Running => "running",
            EventStatus::Succeeded => "succeeded",
            EventStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            EventStatus::Queued,
            EventStatus::Running,
            EventStatus::Succeeded,
            EventStatus::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
    pub fn is_final(self) -> bool {
        matches!(self, EventStatus::Succeeded | EventStatus::Failed)
    }
}

/// One operation on a component.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub team: String,
    pub app: String,
    pub component: String,
    pub action: ActionKind,
    pub actor: String,
    pub status: EventStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// The last line's message once the event is closed.
    pub message: String,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of an event's log or a component's output.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Position in its channel, from 1; lets a client stitch history and live lines.
    pub seq: i64,
    /// Unix ms.
    pub time: i64,
    pub level: Level,
    pub step: String,
    pub message: String,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventWithLines {
    pub event: Event,
    pub lines: Vec<LogLine>,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub event_id: String,
}

/// Messages a client sends on `/v1/stream`.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum StreamRequest {
    /// Channels: `event:<id>`.
    Subscribe {
        channel: String,
    },
    Unsubscribe {
        channel: String,
    },
}

/// Messages the datacenter sends on `/v1/stream`.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamMessage {
    Line {
        channel: String,
        line: LogLine,
    },
    /// The client was too slow; this many lines were dropped for it.
    Skipped {
        channel: String,
        count: u64,
    },
    /// The channel ended (an event reached its final status).
    Closed {
        channel: String,
        status: String,
    },
    Error {
        channel: String,
        message: String,
    },
}

/// JSON error body of every failed request.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub message: String,
}

/// A created or updated component and the event that records it.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentCreated {
    pub component: Component,
    pub event_id: String,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "service", into_params(parameter_in = Query))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EventQuery {
    pub app: Option<String>,
    pub component: Option<String>,
    pub limit: Option<i64>,
}
