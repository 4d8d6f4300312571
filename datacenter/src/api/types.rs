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
    /// Tasks waiting (including those waiting to retry) or running in the
    /// datacenter's queue.
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

/// Overrides of what the builder detects; also the query parameters of the
/// archive previews (`POST /v1/detect/archive` and the console's route).
#[cfg_attr(feature = "service", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "service", into_params(parameter_in = Query))]
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
    /// Why the component is in its status (an exit reason, a failed probe).
    #[serde(default)]
    pub status_message: Option<String>,
    /// Where the component answers inside the datacenter (a stable address
    /// in front of its healthy replicas), once it has run.
    #[serde(default)]
    pub url: Option<String>,
    /// Where users reach the component through the gateway: its default
    /// domain (for an outer HTTP port) and the routes that target it.
    #[serde(default)]
    pub urls: Vec<String>,
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
    /// Channels: `event:<id>` (an operation's log),
    /// `logs:<team>/<app>/<component>` (a component's output, live) or
    /// `metrics:<team>/<app>/<component>` (resource use every 2 s).
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
    /// A sample of a component's resource use (`metrics:` channels).
    Metrics {
        channel: String,
        sample: MetricsSample,
    },
}

/// Resource use of a component's replicas at one moment.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    /// Unix ms.
    pub time: i64,
    pub replicas: Vec<ReplicaUsage>,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaUsage {
    pub index: u32,
    /// Of one core, over the time since the previous sample (100 = one core busy).
    pub cpu_percent: f64,
    /// Resident memory of the replica's processes.
    pub memory_mb: f64,
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

/// One immutable build of a component: its artifact and the configuration it
/// was deployed with. Rolling back deploys one of these exactly as it ran.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// `v1`, `v2`, … per component.
    pub id: String,
    pub number: i64,
    pub created_at: i64,
    /// The build event that produced it.
    pub event_id: String,
    /// Where the code came from, e.g. `git https://… @ main (3f2a9c1)` or `upload (12 KB)`.
    pub source: String,
    pub language: String,
    pub run_command: String,
    pub build_ms: i64,
    /// Whether it is the version deployed now.
    pub current: bool,
}

/// One named step of a build.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStep {
    pub name: String,
    pub command: String,
}

/// What the builder found in a source tree and how it will build and run it.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedPlan {
    /// `static`, `node`, `python`, `rust`, `maven`, `go`, `procfile`,
    /// `dockerfile` or `image`.
    pub language: String,
    /// The evidence, e.g. `package.json with a start script`.
    pub reason: String,
    pub steps: Vec<BuildStep>,
    pub run_command: String,
    /// The port the app listens on when it does not read `$PORT`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub health_path: Option<String>,
    /// False when this datacenter's runtime cannot run it (a Dockerfile on
    /// the local runtime); `message` says why.
    pub runnable: bool,
    #[serde(default)]
    pub message: Option<String>,
}

/// Asks the builder what it would do with a source, before any build.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectRequest {
    pub source: Source,
    #[serde(default)]
    pub build: BuildSettings,
}

/// One running copy of a component.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// From 1.
    pub index: u32,
    pub port: u16,
    pub pid: Option<u32>,
    pub version: Option<String>,
    pub alive: bool,
    pub restarts: u32,
    /// How the process ended last time, e.g. `exit code 1` or `killed by signal 9`.
    pub last_exit: Option<String>,
    /// Unix ms of the current process's start.
    pub started_at: Option<i64>,
}

/// A search through a component's stored output (`step` of each line is
/// `<replica>/<version>`, level `info` for stdout and `error` for stderr).
#[cfg_attr(feature = "service", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "service", into_params(parameter_in = Query))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LogQuery {
    /// Substring to look for (case-sensitive).
    pub q: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    /// At most this many lines, the newest matching ones (default 500, max 5000).
    pub limit: Option<usize>,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// Oldest first.
    pub lines: Vec<LogLine>,
    /// More lines matched than `limit`; the oldest were left out.
    pub truncated: bool,
}

/// The push webhook of a component: point a GitHub, GitLab or Gitea push
/// hook at the console's hook URL with this secret.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookInfo {
    pub secret: String,
}

/// What a webhook delivery did.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    /// The build started, if the push was for the component's branch.
    pub event_id: Option<String>,
    pub message: String,
}

/// A task of the datacenter's queue that used up its attempts
/// (`GET /v1/queue/{topic}/dead`).
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub topic: String,
    /// The task's payload, as JSON text.
    pub payload: String,
    pub dedupe_key: Option<String>,
    /// Attempts it was given.
    pub attempts: u32,
    /// Why the last one failed: the worker's reason, or that its lease lapsed.
    pub reason: String,
    /// Unix ms.
    pub enqueued_at: i64,
    /// Unix ms.
    pub died_at: i64,
}

/// What requeueing a dead task did
/// (`POST /v1/queue/{topic}/dead/{id}/requeue`).
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequeuedTask {
    /// The task that will run: the dead task itself (same id, ready at once, attempts
    /// reset), or, when `deduplicated`, the live task that now holds its dedupe key; the
    /// dead letter then stays.
    pub id: String,
    pub deduplicated: bool,
}

/// How many dead tasks a purge deleted (`DELETE /v1/queue/{topic}/dead`).
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgedDead {
    pub purged: u64,
}

// ---- Gateway: routes and certificates --------------------------------------

/// How a route spreads requests (or TCP connections) over the healthy
/// replicas of a target.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
}

/// One component a route sends traffic to, with its share. Weights are
/// relative: targets weighted 90 and 10 get about 90 % and 10 % (a canary).
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTarget {
    pub app: String,
    pub component: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A request header (or cookie) that must be present with exactly this value.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueMatch {
    pub name: String,
    pub value: String,
}

/// What a user asks for when adding or changing an HTTP route.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRouteSpec {
    /// `shop.example.com`, or a wildcard `*.example.com` (one or more labels
    /// in front of `example.com`).
    pub domain: String,
    /// Requests whose path starts with this (at a `/` boundary); `/` for all.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    #[serde(default)]
    pub header: Option<ValueMatch>,
    #[serde(default)]
    pub cookie: Option<ValueMatch>,
    pub targets: Vec<RouteTarget>,
    #[serde(default)]
    pub balance: Balance,
    /// Answer plain HTTP requests with a redirect to HTTPS.
    #[serde(default)]
    pub https_redirect: bool,
}

fn default_path_prefix() -> String {
    "/".into()
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRoute {
    pub id: String,
    pub team: String,
    #[serde(flatten)]
    pub spec: HttpRouteSpec,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// A gateway port that forwards TCP connections to a component's replicas.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpRouteSpec {
    pub listen_port: u16,
    pub app: String,
    pub component: String,
    #[serde(default)]
    pub balance: Balance,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpRoute {
    pub id: String,
    pub team: String,
    #[serde(flatten)]
    pub spec: TcpRouteSpec,
    /// Unix ms.
    pub created_at: i64,
}

/// A certificate and its private key, PEM encoded, as uploaded. The key is
/// stored encrypted and never returned.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateUpload {
    pub name: String,
    pub cert_pem: String,
    pub key_pem: String,
}

#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub name: String,
    pub team: String,
    /// The names it is valid for (subject alternative names), wildcards included.
    pub domains: Vec<String>,
    /// Unix ms.
    pub not_before: i64,
    /// Unix ms.
    pub not_after: i64,
    /// Unix ms.
    pub created_at: i64,
}

/// Where the datacenter's gateway listens and how default domains are made.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayInfo {
    /// `host:port` of plain HTTP.
    pub http: String,
    /// `host:port` of HTTPS, when enabled.
    pub https: Option<String>,
    /// Every outer HTTP port of a component answers at
    /// `<component>.<app>.<team>.<domain_suffix>`.
    pub domain_suffix: String,
}

/// Per-route traffic figures since the gateway started.
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RouteStats {
    /// The route's id, or `default:<app>/<component>` for a default domain.
    pub route: String,
    pub requests: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Milliseconds, estimated from the latency histogram.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `s` as one URL path segment or query value: percent-encoded UTF-8 with
/// only the unreserved characters left as they are (space is `%20`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn segments_and_query_values_are_percent_encoded() {
        assert_eq!(percent_encode("python3 app.py"), "python3%20app.py");
        assert_eq!(
            percent_encode("a&b=c?d#e/$PORT+é"),
            "a%26b%3Dc%3Fd%23e%2F%24PORT%2B%C3%A9"
        );
        assert_eq!(percent_encode("plain-name_1.0~x"), "plain-name_1.0~x");
        assert_eq!(percent_encode("../x"), "..%2Fx");
    }
}
