//! The datacenter itself: its stores, queue, runtime and log hub, the
//! operations its API offers, and `start`, which wires them to a listener,
//! the workers and the reconciler.

use crate::api::*;
use crate::builder::{Builder, BuilderConfig, SourceInput};
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use crate::gateway::upstream::Upstreams;
use crate::gateway::Gateway;
use crate::logs::component::{ComponentLogs, Retention};
use crate::logs::hub::Hub;
use crate::queue::{NewTask, TaskQueue};
use crate::runtime::Runtime;
use crate::store::components::{ComponentStore, Key};
use crate::store::events::EventStore;
use crate::store::routes::RouteStore;
use crate::store::versions::VersionStore;
use crate::store::{now_ms, Db, MIGRATIONS};
use crate::worker::{ActionTask, TOPIC};
use crate::{validate, worker};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub enum QueueConfig {
    /// Durable SQLite-backed queue under the data directory.
    Embedded,
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
    },
}

#[derive(Debug, Clone)]
pub struct DatacenterConfig {
    pub name: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// The bearer token clients (the console) must present.
    pub token: String,
    pub queue: QueueConfig,
    pub workers: usize,
    pub reconcile_every: Duration,
    /// The command prefix that serves a static site's directory on `$PORT`
    /// (the `cloudport serve-static` subcommand of this binary).
    pub static_server: String,
    pub build_timeout: Duration,
    /// The gateway in front of components; none runs without it.
    pub gateway: Option<crate::gateway::GatewayConfig>,
    /// Default domains are `<component>.<app>.<team>.<domain_suffix>`.
    pub domain_suffix: String,
}

impl DatacenterConfig {
    /// The zero-config settings under `data_dir`; callers override what they need.
    pub fn new(name: &str, listen: SocketAddr, data_dir: PathBuf, token: String) -> Self {
        let static_server = std::env::current_exe()
            .map(|p| format!("'{}' serve-static", p.display()))
            .unwrap_or_else(|_| "cloudport serve-static".into());
        DatacenterConfig {
            name: name.into(),
            listen,
            data_dir,
            database_url: None,
            token,
            queue: QueueConfig::Embedded,
            workers: 4,
            reconcile_every: Duration::from_secs(2),
            static_server,
            build_timeout: Duration::from_secs(15 * 60),
            gateway: None,
            domain_suffix: "localhost".into(),
        }
    }
}

pub struct Datacenter {
    pub name: String,
    pub components: ComponentStore,
    pub events: EventStore,
    pub versions: VersionStore,
    pub builder: Builder,
    pub component_logs: Arc<ComponentLogs>,
    pub hub: Arc<Hub>,
    pub queue: Arc<dyn TaskQueue>,
    pub runtime: Arc<dyn Runtime>,
    pub metrics: crate::api::metrics::Metrics,
    pub routes: RouteStore,
    pub gateway: Option<Gateway>,
    pub domain_suffix: String,
    /// The rules the gateway was last given.
    pub(crate) published: std::sync::RwLock<crate::routing::Published>,
    /// One route change at a time, so two teams cannot both pass the domain
    /// check before either is stored.
    pub(crate) route_changes: tokio::sync::Mutex<()>,
    pub started_at: i64,
    token_hash: [u8; 32],
    /// One operation at a time per component, in the order workers claimed them.
    operations: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub struct Running {
    pub addr: SocketAddr,
    pub datacenter: Arc<Datacenter>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Ends the replicas this datacenter runs on this machine (SIGTERM to
    /// each replica's processes, SIGKILL after the grace period). Called on
    /// a clean stop; a datacenter that is killed instead ends its leftovers
    /// when it starts again.
    pub async fn stop(&self) {
        self.server.abort();
        self.datacenter.runtime.shutdown().await;
    }
}

pub const MIN_TOKEN_LEN: usize = 16;

/// Opens everything, starts workers and the reconciler, and serves the API.
pub async fn start(config: DatacenterConfig) -> Result<Running> {
    if config.token.len() < MIN_TOKEN_LEN {
        return Err(Error::Invalid(vec![format!(
            "the datacenter token needs at least {MIN_TOKEN_LEN} characters"
        )]));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::Invalid(vec![format!(
            "cannot create {}: {e}",
            config.data_dir.display()
        )])
    })?;
    let db = Db::open(
        config.database_url.as_deref(),
        &config.data_dir.join("datacenter.db"),
        &MIGRATIONS,
    )
    .await
    .map_err(Error::internal)?;
    let secrets =
        SecretBox::load_or_create(&config.data_dir.join("secrets.key")).map_err(Error::internal)?;
    let queue: Arc<dyn TaskQueue> = match &config.queue {
        QueueConfig::Embedded => Arc::new(
            crate::queue::embedded::EmbeddedQueue::open(
                &config.data_dir.join("queue.db"),
                Default::default(),
            )
            .await
            .map_err(Error::internal)?,
        ),
        QueueConfig::Etcd { endpoints, prefix } => Arc::new(
            crate::queue::etcd::EtcdQueue::connect(endpoints, prefix, Default::default())
                .await
                .map_err(Error::internal)?,
        ),
    };
    let hub = Arc::new(Hub::default());
    let component_logs = Arc::new(ComponentLogs::new(
        config.data_dir.join("logs"),
        hub.clone(),
        Retention::default(),
    ));
    let upstreams = Arc::new(Upstreams::default());
    let runtime: Arc<dyn Runtime> = Arc::new(crate::runtime::local::LocalRuntime::new(
        config.data_dir.join("work"),
        component_logs.clone(),
        upstreams.clone(),
    ));
    let gateway = match config.gateway.clone() {
        Some(gw) => {
            let http = gw.http;
            Some(Gateway::start(gw, upstreams).map_err(|e| {
                Error::Invalid(vec![format!(
                    "the gateway cannot listen on {http} (or its HTTPS address): {e}"
                )])
            })?)
        }
        None => None,
    };
    let builder = Builder::new(BuilderConfig {
        root: config.data_dir.join("builder"),
        static_server: config.static_server.clone(),
        runtime_kind: runtime.kind().into(),
        timeout: config.build_timeout,
        max_parallel: 2 * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    });
    let dc = Arc::new(Datacenter {
        name: config.name.clone(),
        components: ComponentStore::new(db.clone(), secrets.clone()),
        events: EventStore::new(db.clone()),
        versions: VersionStore::new(db.clone(), secrets.clone()),
        routes: RouteStore::new(db, secrets),
        gateway,
        domain_suffix: config.domain_suffix.clone(),
        published: Default::default(),
        route_changes: Default::default(),
        builder,
        component_logs,
        hub,
        queue,
        runtime,
        metrics: Default::default(),
        started_at: now_ms(),
        token_hash: Sha256::digest(config.token.as_bytes()).into(),
        operations: Default::default(),
    });
    dc.refresh_gateway().await?;
    worker::spawn(dc.clone(), config.workers.max(1));
    crate::reconciler::spawn(dc.clone(), config.reconcile_every);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Invalid(vec![format!("cannot listen on {}: {e}", config.listen)]))?;
    let addr = listener.local_addr().map_err(Error::internal)?;
    let router = crate::api::routes::router(dc.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    tracing::info!(name = %config.name, %addr, runtime = dc.runtime.kind(), "datacenter listening");
    Ok(Running {
        addr,
        datacenter: dc,
        server,
    })
}

impl Datacenter {
    /// Constant-time comparison of hashes, so timing reveals nothing of the token.
    pub fn token_matches(&self, presented: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        h.ct_eq(&self.token_hash).into()
    }

    pub async fn info(&self) -> Result<DatacenterInfo> {
        let depth = self
            .queue
            .depth(TOPIC)
            .await
            .map(|d| (d.ready + d.delayed + d.in_flight) as i64)
            .unwrap_or(-1);
        Ok(DatacenterInfo {
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            runtime: self.runtime.kind().into(),
            capacity: self.runtime.capacity(),
            started_at: self.started_at,
            components: self.components.count().await?,
            queue_depth: depth,
        })
    }

    pub async fn create_component(
        &self,
        team: &str,
        app: &str,
        spec: ComponentSpec,
        actor: &str,
    ) -> Result<ComponentCreated> {
        validate::dns_label("team", team).map_err(|e| Error::Invalid(vec![e]))?;
        validate::dns_label("app", app).map_err(|e| Error::Invalid(vec![e]))?;
        validate::component(&spec).map_err(Error::Invalid)?;
        let component = self.components.create(team, app, &spec).await?;
        self.refresh_gateway().await?;
        let key = Key {
            team: team.into(),
            app: app.into(),
            name: spec.name.clone(),
        };
        let event = self.submit(&key, ActionKind::Create, actor, None).await?;
        Ok(ComponentCreated {
            component,
            event_id: event.id,
        })
    }

    pub async fn update_component(
        &self,
        key: &Key,
        spec: ComponentSpec,
        actor: &str,
    ) -> Result<ComponentCreated> {
        validate::component(&spec).map_err(Error::Invalid)?;
        let component = self.components.update(key, &spec).await?;
        self.refresh_gateway().await?;
        let event = self.submit(key, ActionKind::Update, actor, None).await?;
        Ok(ComponentCreated {
            component,
            event_id: event.id,
        })
    }

    /// Records the operation as an event and queues it; the event id comes back at once.
    pub async fn act(&self, key: &Key, req: ActionRequest) -> Result<Accepted> {
        self.components.get(key).await?;
        if req.action == ActionKind::Scale {
            let n = req
                .replicas
                .ok_or_else(|| Error::Invalid(vec!["scale needs `replicas`".into()]))?;
            if n > validate::MAX_REPLICAS {
                return Err(Error::Invalid(vec![format!(
                    "at most {} replicas",
                    validate::MAX_REPLICAS
                )]));
            }
        }
        match (req.action, &req.version) {
            (ActionKind::Rollback, None) => {
                return Err(Error::Invalid(vec!["rollback needs `version`".into()]))
            }
            (ActionKind::Rollback | ActionKind::Deploy, Some(v)) => {
                self.versions.get(key, v, None).await?;
            }
            _ => {}
        }
        if matches!(req.action, ActionKind::Create | ActionKind::Update) {
            return Err(Error::Invalid(vec![
                "use the component routes to create or update".into(),
            ]));
        }
        let event = self
            .submit_task(key, req.action, &req.actor, req.replicas, req.version, None)
            .await?;
        Ok(Accepted { event_id: event.id })
    }

    /// Held while an operation on the component runs, so a `stop` queued
    /// behind a `build` waits for the build's deploy instead of racing it.
    pub async fn operation_lock(&self, key: &Key) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .operations
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// A component with where it answers.
    pub async fn component(&self, key: &Key) -> Result<Component> {
        let c = self.components.get(key).await?;
        Ok(self.with_url(c))
    }

    pub async fn list_components(&self, team: &str, app: Option<&str>) -> Result<Vec<Component>> {
        let list = self.components.list(team, app).await?;
        Ok(list.into_iter().map(|c| self.with_url(c)).collect())
    }

    fn with_url(&self, mut c: Component) -> Component {
        c.url = self.runtime.address(&c).map(|a| format!("http://{a}"));
        c.urls = self.urls_of(&c);
        c
    }

    /// Stores an uploaded source archive and builds it.
    pub async fn upload_source(&self, key: &Key, archive: &[u8], actor: &str) -> Result<Accepted> {
        let c = self.components.get(key).await?;
        if !matches!(c.source, Source::Upload) {
            return Err(Error::Invalid(vec![format!(
                "{} takes its code from {}, not from uploads; change its source to upload first",
                key.name,
                match c.source {
                    Source::Git { .. } => "git",
                    Source::Image { .. } => "an image",
                    _ => "a Dockerfile",
                }
            )]));
        }
        self.builder.store_upload(key, archive).await?;
        let event = self.submit(key, ActionKind::Build, actor, None).await?;
        Ok(Accepted { event_id: event.id })
    }

    /// What the builder would do with a source, before any build.
    pub async fn detect(&self, req: DetectRequest) -> Result<DetectedPlan> {
        let source = match req.source {
            Source::Git { url, reference } => SourceInput::Git { url, reference },
            Source::Dockerfile { .. } | Source::Image { .. } => {
                return Ok(DetectedPlan {
                    language: if matches!(req.source, Source::Image { .. }) { "image" } else { "dockerfile" }.into(),
                    reason: "the source is a container build".into(),
                    steps: Vec::new(),
                    run_command: String::new(),
                    port: None,
                    health_path: None,
                    runnable: self.runtime.kind() == "kubernetes",
                    message: Some("images and Dockerfiles need the kubernetes runtime (cloudport datacenter --runtime kubernetes); this datacenter runs local processes".into()),
                })
            }
            Source::Upload => {
                return Err(Error::Invalid(vec![
                    "an upload is previewed from its archive: send it to POST /v1/detect/archive".into(),
                ]))
            }
        };
        self.builder.detect(None, &source, &req.build).await
    }

    /// What the builder would do with an uploaded archive, before any
    /// component or build exists; nothing of the archive is kept.
    pub async fn detect_archive(
        &self,
        archive: bytes::Bytes,
        build: &BuildSettings,
    ) -> Result<DetectedPlan> {
        self.builder.detect_archive(archive, build).await
    }

    /// A push delivered by GitHub, GitLab or Gitea: verified, then built
    /// when it is for the component's branch.
    pub async fn webhook(
        &self,
        key: &Key,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookOutcome> {
        let c = self.components.get(key).await?;
        let secret = self.components.webhook_secret(key).await?;
        let push = crate::webhook::verify(headers, body, &secret)?;
        let Source::Git { reference, .. } = &c.source else {
            return Err(Error::Invalid(vec![
                "this component does not build from git".into(),
            ]));
        };
        match push {
            crate::webhook::Delivery::Ping => Ok(WebhookOutcome {
                event_id: None,
                message: "hook verified".into(),
            }),
            crate::webhook::Delivery::Push {
                reference: pushed,
                pusher,
            } => {
                let wanted = [
                    format!("refs/heads/{reference}"),
                    format!("refs/tags/{reference}"),
                ];
                if !wanted.contains(&pushed) {
                    return Ok(WebhookOutcome {
                        event_id: None,
                        message: format!(
                            "push to {pushed} ignored: {} builds {reference}",
                            key.name
                        ),
                    });
                }
                let actor = format!("webhook ({pusher})");
                let event = self.submit(key, ActionKind::Build, &actor, None).await?;
                Ok(WebhookOutcome {
                    event_id: Some(event.id),
                    message: format!("building {pushed}"),
                })
            }
        }
    }

    pub async fn submit(
        &self,
        key: &Key,
        action: ActionKind,
        actor: &str,
        replicas: Option<u32>,
    ) -> Result<Event> {
        self.submit_task(key, action, actor, replicas, None, None)
            .await
    }

    pub async fn submit_task(
        &self,
        key: &Key,
        action: ActionKind,
        actor: &str,
        replicas: Option<u32>,
        version: Option<String>,
        dedupe: Option<String>,
    ) -> Result<Event> {
        let id = new_event_id();
        let event = self
            .events
            .create(&id, &key.team, &key.app, &key.name, action, actor)
            .await?;
        let task = ActionTask {
            event_id: id.clone(),
            team: key.team.clone(),
            app: key.app.clone(),
            component: key.name.clone(),
            action,
            replicas,
            version,
        };
        let payload = serde_json::to_value(&task).map_err(Error::internal)?;
        match self
            .queue
            .enqueue(
                TOPIC,
                NewTask {
                    payload,
                    dedupe_key: dedupe,
                },
            )
            .await
        {
            Ok(e) if e.deduplicated => {
                // The same work is already queued: this event is not needed.
                self.events
                    .set_status(&id, EventStatus::Succeeded, Some("already queued"))
                    .await?;
                Ok(event)
            }
            Ok(_) => Ok(event),
            Err(e) => {
                self.events
                    .set_status(
                        &id,
                        EventStatus::Failed,
                        Some("the task queue is unavailable"),
                    )
                    .await?;
                Err(e.into())
            }
        }
    }
}

fn new_event_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    // Time first, so ids sort by creation.
    format!("ev{:012x}{tail}", now_ms())
}
