//! The local runtime: each replica of a component is a supervised child
//! process on this machine (see `process`), started in its version's
//! artifact with the component's environment, secrets, links and `PORT`.
//! Each component has one stable loopback address in front of its replicas
//! (see `balancer`). "Running" means every replica is alive and passes the
//! health probe; a new version takes over only once its replicas do.

mod balancer;
mod limits;
mod orphans;
mod probe;
mod process;
mod usage;

use super::{Observed, Runtime, RuntimeError, Target};
use crate::api::{Capacity, Component, ComponentStatus, HealthProbe, ReplicaInfo, ReplicaUsage};
use crate::gateway::upstream::{Backend, Upstreams};
use crate::logs::component::ComponentLogs;
use crate::logs::EventLog;
use crate::store::components::Key;
use balancer::Balancer;
use probe::Probe;
use process::{Launch, ReplicaState, SharedState};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const HEALTHY_WITHIN: Duration = Duration::from_secs(60);
const CRASH_LOOP: u32 = 3;

struct Replica {
    index: u32,
    port: u16,
    version: String,
    /// Set to true to make the supervisor stop the process and exit.
    stop: watch::Sender<bool>,
    state: SharedState,
    task: tokio::task::JoinHandle<()>,
}

struct Deployed {
    fingerprint: String,
    probe: Probe,
    replicas: Vec<Replica>,
    balancer: Balancer,
    next_index: u32,
}

/// What one converge wants running, computed from the target.
struct Plan {
    version: String,
    command: String,
    dir: PathBuf,
    env: Vec<(String, String)>,
    path_prepend: Vec<PathBuf>,
    probe: Probe,
    resources: limits::Resources,
    fingerprint: String,
}

pub struct LocalRuntime {
    work_dir: PathBuf,
    logs: Arc<ComponentLogs>,
    deployed: Mutex<HashMap<String, Deployed>>,
    /// One converge at a time per component.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Component → the port of its stable address, kept across restarts so
    /// dependents and routes keep working.
    addresses: Mutex<HashMap<String, u16>>,
    cpu: Mutex<usage::CpuMeter>,
    /// Where the gateway finds each component's replicas.
    upstreams: Arc<Upstreams>,
    /// Marks this datacenter's replica processes (see `orphans`).
    owner: Arc<str>,
    /// Set once the datacenter is stopping: nothing new starts.
    closed: std::sync::atomic::AtomicBool,
}

impl LocalRuntime {
    pub fn new(work_dir: PathBuf, logs: Arc<ComponentLogs>, upstreams: Arc<Upstreams>) -> Self {
        let addresses = std::fs::read(work_dir.join("addresses.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let _ = std::fs::create_dir_all(&work_dir);
        let owner: Arc<str> = orphans::owner_of(&work_dir).into();
        // Nothing from an earlier life may keep running beside the replicas
        // the reconciler is about to start.
        orphans::sweep(&owner);
        // cgroup v2 hands controllers down only from a cgroup with no
        // processes in it: take the tree over before any build or replica
        // starts a child here.
        limits::host_tree();
        LocalRuntime {
            closed: Default::default(),
            owner,
            work_dir,
            logs,
            deployed: Mutex::default(),
            locks: Mutex::default(),
            addresses: Mutex::new(addresses),
            cpu: Mutex::default(),
            upstreams,
        }
    }

    /// Lets requests already on replicas about to stop finish first: waits
    /// until neither the component's address nor the gateway has one open
    /// on them (an idle kept-alive connection counts too, hence the cap).
    async fn drain(&self, name: &str, ports: &[u16], gateway: &[Arc<Backend>]) {
        const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(2);
        let deadline = tokio::time::Instant::now() + DRAIN_MAX;
        loop {
            let through_address = self
                .deployed
                .lock()
                .unwrap()
                .get(name)
                .map(|d| d.balancer.open_to(ports))
                .unwrap_or(0);
            let through_gateway: usize = gateway
                .iter()
                .filter(|b| ports.contains(&b.addr.port()))
                .map(|b| b.active.load(std::sync::atomic::Ordering::Relaxed))
                .sum();
            if through_address + through_gateway == 0 || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Points the component's stable address and its gateway upstream at
    /// these replica ports, both in one step.
    fn route_to(&self, name: &str, d: &Deployed, ports: Vec<u16>) {
        let addrs: Vec<std::net::SocketAddr> = ports
            .iter()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        d.balancer.set_backends(ports);
        self.upstreams.set(name, &addrs);
    }

    fn name(c: &Component) -> String {
        format!("{}/{}/{}", c.team, c.app, c.name)
    }

    fn key(c: &Component) -> Key {
        Key {
            team: c.team.clone(),
            app: c.app.clone(),
            name: c.name.clone(),
        }
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn remember_address(&self, name: &str, port: Option<u16>) {
        let mut a = self.addresses.lock().unwrap();
        match port {
            Some(p) => a.insert(name.to_string(), p),
            None => a.remove(name),
        };
        let _ = std::fs::create_dir_all(&self.work_dir);
        if let Ok(json) = serde_json::to_vec(&*a) {
            let tmp = self.work_dir.join("addresses.json.tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(tmp, self.work_dir.join("addresses.json"));
            }
        }
    }

    fn plan(&self, target: &Target) -> Result<Plan, RuntimeError> {
        let c = &target.component;
        let (version, command, dir, path_prepend, app_health) = match &target.release {
            Some(r) => (
                r.version.clone(),
                c.build
                    .run_command
                    .clone()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| r.run_command.clone()),
                r.dir.clone(),
                r.path_prepend.clone(),
                r.health_path.clone(),
            ),
            None => {
                let Some(cmd) = c.build.run_command.clone().filter(|s| !s.trim().is_empty()) else {
                    return Err(RuntimeError::Unsupported(
                        "nothing to run yet: build the component (or set a run command)".into(),
                    ));
                };
                let dir = self.work_dir.join(&c.team).join(&c.app).join(&c.name);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| RuntimeError::Failed(format!("work dir: {e}")))?;
                ("-".to_string(), cmd, dir, Vec::new(), None)
            }
        };
        let probe = match (&c.health, app_health) {
            (Some(HealthProbe::Http { path, .. }), _) => Probe::Http(path.clone()),
            (Some(HealthProbe::Tcp { .. }), _) => Probe::Tcp,
            (None, Some(path)) => Probe::Http(path),
            // A built app that declares ports must at least accept connections.
            (None, None) if target.release.is_some() && !c.ports.is_empty() => Probe::Tcp,
            (None, None) => Probe::Alive,
        };
        let mut env: Vec<(String, String)> = target.links.clone();
        env.extend(self.volumes(c, &dir)?);
        env.extend(c.env.iter().map(|e| (e.name.clone(), e.value.clone())));
        env.extend(target.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
        let resources = limits::Resources {
            memory_mb: c.resources.memory_mb,
            cpu_millicores: c.resources.cpu_millicores,
        };
        let fingerprint = format!(
            "{version}|{command}|{}|{env:?}|{probe:?}|{resources:?}",
            dir.display(),
        );
        Ok(Plan {
            version,
            command,
            dir,
            env,
            path_prepend,
            probe,
            resources,
            fingerprint,
        })
    }

    /// Volumes outlive versions: each is a directory of its own under the
    /// work folder. A process here cannot mount anything, so the volume
    /// appears at its mount path inside the working directory (`/data` →
    /// `./data`, a symbolic link) and its absolute path is in
    /// `CLOUDPORT_VOLUME_<NAME>`.
    fn volumes(
        &self,
        c: &Component,
        dir: &std::path::Path,
    ) -> Result<Vec<(String, String)>, RuntimeError> {
        let mut env = Vec::new();
        for v in &c.volumes {
            let store = self
                .work_dir
                .join("volumes")
                .join(&c.team)
                .join(&c.app)
                .join(&c.name)
                .join(&v.name);
            std::fs::create_dir_all(&store)
                .map_err(|e| RuntimeError::Failed(format!("volume {}: {e}", v.name)))?;
            let link = dir.join(v.mount_path.trim_start_matches('/'));
            if std::fs::symlink_metadata(&link).is_err() {
                if let Some(parent) = link.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                std::os::unix::fs::symlink(&store, &link).map_err(|e| {
                    RuntimeError::Failed(format!("volume {} at {}: {e}", v.name, v.mount_path))
                })?;
            }
            env.push((
                format!(
                    "CLOUDPORT_VOLUME_{}",
                    v.name.to_uppercase().replace('-', "_")
                ),
                store.display().to_string(),
            ));
        }
        Ok(env)
    }

    fn start_replica(
        &self,
        c: &Component,
        plan: &Plan,
        index: u32,
    ) -> Result<Replica, RuntimeError> {
        let port = free_port()?;
        let (stop, rx) = watch::channel(false);
        let state: SharedState = Arc::default();
        let launch = Launch {
            key: Self::key(c),
            index,
            version: plan.version.clone(),
            command: plan.command.clone(),
            dir: plan.dir.clone(),
            env: plan.env.clone(),
            path_prepend: plan.path_prepend.clone(),
            port,
            resources: plan.resources,
            owner: self.owner.clone(),
        };
        let task = tokio::spawn(process::supervise(
            launch,
            self.logs.clone(),
            state.clone(),
            rx,
        ));
        Ok(Replica {
            index,
            port,
            version: plan.version.clone(),
            stop,
            state,
            task,
        })
    }

    async fn stop_all(replicas: Vec<Replica>) {
        for r in &replicas {
            let _ = r.stop.send(true);
        }
        for r in replicas {
            let _ = r.task.await;
        }
    }

    /// Waits until every replica is alive and passes the probe; on timeout,
    /// says why.
    async fn wait_healthy(
        replicas: &[(u16, SharedState)],
        probe: &Probe,
        log: &EventLog,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + HEALTHY_WITHIN;
        let baseline: Vec<u32> = replicas
            .iter()
            .map(|(_, s)| s.lock().unwrap().restarts)
            .collect();
        loop {
            let mut healthy = true;
            for (port, state) in replicas {
                if !state.lock().unwrap().alive || !probe::check(probe, *port).await {
                    healthy = false;
                    break;
                }
            }
            if healthy && *probe == Probe::Alive {
                // Without a probe, give a crashing command a moment to show it.
                tokio::time::sleep(Duration::from_millis(500)).await;
                healthy = replicas.iter().all(|(_, s)| s.lock().unwrap().alive);
            }
            if healthy {
                return Ok(());
            }
            // Three crashes in a row: a crash loop, not a slow start.
            let crash_loop = replicas
                .iter()
                .zip(&baseline)
                .any(|((_, s), base)| s.lock().unwrap().restarts >= base + CRASH_LOOP);
            if crash_loop || tokio::time::Instant::now() > deadline {
                let exit = replicas
                    .iter()
                    .find_map(|(_, s)| s.lock().unwrap().last_exit.clone());
                let why = match (exit, probe) {
                    (Some(e), _) => format!("the process keeps ending ({e})"),
                    (None, Probe::Http(p)) => format!("GET {p} does not answer 2xx/3xx"),
                    (None, _) => "it does not accept connections on $PORT".to_string(),
                };
                let when = if crash_loop {
                    format!("crashed {CRASH_LOOP} times")
                } else {
                    format!("not healthy after {}s", HEALTHY_WITHIN.as_secs())
                };
                log.error("health", format!("{when}: {why}")).await;
                return Err(why);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn free_port() -> Result<u16, RuntimeError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| RuntimeError::Failed(format!("no free port: {e}")))
}

fn describe_probe(p: &Probe) -> String {
    match p {
        Probe::Alive => "no health check: running means the processes stay up".into(),
        Probe::Tcp => "waiting for $PORT to accept connections".into(),
        Probe::Http(path) => format!("waiting for GET {path} to answer 2xx/3xx"),
    }
}

#[async_trait::async_trait]
impl Runtime for LocalRuntime {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn capacity(&self) -> Capacity {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1);
        let mem_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
            })
            .unwrap_or(0);
        Capacity {
            cpu_millicores: cores * 1000,
            memory_mb: mem_kb / 1024,
        }
    }

    async fn converge(&self, target: &Target, log: &EventLog) -> Result<Observed, RuntimeError> {
        let c = &target.component;
        let name = Self::name(c);
        let lock = self.lock_for(&name);
        let _serial = lock.lock().await;
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RuntimeError::Failed("the datacenter is stopping".into()));
        }

        if !target.running {
            let old = self.deployed.lock().unwrap().remove(&name);
            self.upstreams.set(&name, &[]);
            if let Some(old) = old {
                log.info(
                    "stop",
                    format!(
                        "stopping {} replica(s) (SIGTERM, then SIGKILL after {}s)",
                        old.replicas.len(),
                        process::GRACE.as_secs()
                    ),
                )
                .await;
                Self::stop_all(old.replicas).await;
            }
            return Ok(Observed {
                status: ComponentStatus::Stopped,
                message: None,
            });
        }
        let plan = self.plan(target)?;
        let want = c.replicas as usize;

        // First run (or after a restart of the datacenter): bind the address.
        let fresh = !self.deployed.lock().unwrap().contains_key(&name);
        if fresh {
            let remembered = self.addresses.lock().unwrap().get(&name).copied();
            let balancer = Balancer::bind(remembered).await.map_err(|e| {
                RuntimeError::Failed(format!("cannot bind the component address: {e}"))
            })?;
            self.remember_address(&name, Some(balancer.addr().port()));
            log.info("address", format!("component address {}", balancer.addr()))
                .await;
            self.deployed.lock().unwrap().insert(
                name.clone(),
                Deployed {
                    fingerprint: String::new(),
                    probe: plan.probe.clone(),
                    replicas: Vec::new(),
                    balancer,
                    next_index: 1,
                },
            );
        }

        let (same, running_now, mut next_index) = {
            let d = self.deployed.lock().unwrap();
            let d = d.get(&name).expect("inserted above");
            (
                d.fingerprint == plan.fingerprint,
                d.replicas.len(),
                d.next_index,
            )
        };

        if (!same || target.restart) && running_now > 0 {
            // Rolling: the new replicas must be healthy before the old stop.
            log.info(
                "rollout",
                format!(
                    "starting {want} replica(s) of {}; the {running_now} running keep serving until they are healthy",
                    plan.version
                ),
            )
            .await;
            let mut fresh_set = Vec::new();
            for _ in 0..want {
                fresh_set.push(self.start_replica(c, &plan, next_index)?);
                next_index += 1;
            }
            log.info("health", describe_probe(&plan.probe)).await;
            let watch: Vec<_> = fresh_set
                .iter()
                .map(|r| (r.port, r.state.clone()))
                .collect();
            if let Err(why) = Self::wait_healthy(&watch, &plan.probe, log).await {
                Self::stop_all(fresh_set).await;
                if let Some(d) = self.deployed.lock().unwrap().get_mut(&name) {
                    d.next_index = next_index;
                }
                log.warn("rollout", "the previous replicas keep serving")
                    .await;
                return Err(RuntimeError::Unsupported(format!(
                    "the new replicas did not become healthy ({why}); the previous ones keep serving"
                )));
            }
            let old_gateway;
            let old = {
                let mut d = self.deployed.lock().unwrap();
                let d = d.get_mut(&name).expect("deployed");
                old_gateway = self.upstreams.get(&name).backends();
                self.route_to(&name, d, fresh_set.iter().map(|r| r.port).collect());
                d.fingerprint = plan.fingerprint.clone();
                d.probe = plan.probe.clone();
                d.next_index = next_index;
                std::mem::replace(&mut d.replicas, fresh_set)
            };
            log.info(
                "rollout",
                format!(
                    "traffic moved to {}; stopping {} old replica(s)",
                    plan.version,
                    old.len()
                ),
            )
            .await;
            let old_ports: Vec<u16> = old.iter().map(|r| r.port).collect();
            self.drain(&name, &old_ports, &old_gateway).await;
            Self::stop_all(old).await;
            log.info("health", format!("{want} replica(s) healthy"))
                .await;
            return Ok(Observed {
                status: ComponentStatus::Running,
                message: None,
            });
        }

        // Same release: only the replica count may differ.
        let old_gateway = self.upstreams.get(&name).backends();
        let (surplus, added) = {
            let mut d = self.deployed.lock().unwrap();
            let d = d.get_mut(&name).expect("deployed");
            d.fingerprint = plan.fingerprint.clone();
            d.probe = plan.probe.clone();
            let surplus: Vec<Replica> = if d.replicas.len() > want {
                d.replicas.split_off(want)
            } else {
                Vec::new()
            };
            let mut added = Vec::new();
            while d.replicas.len() < want {
                let r = self.start_replica(c, &plan, d.next_index)?;
                d.next_index += 1;
                added.push((r.index, r.port, r.state.clone()));
                d.replicas.push(r);
            }
            let ports = d.replicas.iter().map(|r| r.port).collect();
            self.route_to(&name, d, ports);
            (surplus, added)
        };
        if !surplus.is_empty() {
            log.info("scale", format!("stopping {} replica(s)", surplus.len()))
                .await;
            let ports: Vec<u16> = surplus.iter().map(|r| r.port).collect();
            self.drain(&name, &ports, &old_gateway).await;
            Self::stop_all(surplus).await;
        }
        for (index, port, _) in &added {
            log.info(
                "start",
                format!("replica {index} of {} started on port {port}", plan.version),
            )
            .await;
        }
        if want == 0 {
            return Ok(Observed {
                status: ComponentStatus::Stopped,
                message: Some("scaled to zero replicas".into()),
            });
        }
        let all: Vec<(u16, SharedState)> = {
            let d = self.deployed.lock().unwrap();
            d.get(&name)
                .map(|d| {
                    d.replicas
                        .iter()
                        .map(|r| (r.port, r.state.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        log.info("health", describe_probe(&plan.probe)).await;
        match Self::wait_healthy(&all, &plan.probe, log).await {
            Ok(()) => {
                log.info("health", format!("{want} replica(s) healthy"))
                    .await;
                Ok(Observed {
                    status: ComponentStatus::Running,
                    message: None,
                })
            }
            Err(why) => Ok(Observed {
                status: ComponentStatus::Abnormal,
                message: Some(why),
            }),
        }
    }

    async fn remove(&self, component: &Component, log: &EventLog) -> Result<(), RuntimeError> {
        let name = Self::name(component);
        let lock = self.lock_for(&name);
        let _serial = lock.lock().await;
        let old = self.deployed.lock().unwrap().remove(&name);
        self.upstreams.set(&name, &[]);
        if let Some(old) = old {
            log.info(
                "stop",
                format!("stopping {} replica(s)", old.replicas.len()),
            )
            .await;
            Self::stop_all(old.replicas).await;
        }
        self.remember_address(&name, None);
        let dir = self
            .work_dir
            .join(&component.team)
            .join(&component.app)
            .join(&component.name);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    async fn observe(&self, component: &Component) -> Observed {
        let (probe, replicas) = {
            let deployed = self.deployed.lock().unwrap();
            match deployed.get(&Self::name(component)) {
                None => {
                    return Observed {
                        status: ComponentStatus::Stopped,
                        message: None,
                    }
                }
                Some(d) => (
                    d.probe.clone(),
                    d.replicas
                        .iter()
                        .map(|r| (r.index, r.port, r.state.lock().unwrap().clone()))
                        .collect::<Vec<_>>(),
                ),
            }
        };
        if replicas.is_empty() {
            return Observed {
                status: ComponentStatus::Stopped,
                message: Some("scaled to zero replicas".into()),
            };
        }
        for (index, port, state) in &replicas {
            if !state.alive {
                return Observed {
                    status: ComponentStatus::Abnormal,
                    message: Some(format!(
                        "replica {index} is down ({}), restarted {} time(s)",
                        state.last_exit.as_deref().unwrap_or("not started"),
                        state.restarts
                    )),
                };
            }
            if !probe::check(&probe, *port).await {
                return Observed {
                    status: ComponentStatus::Abnormal,
                    message: Some(format!("replica {index} fails its health check")),
                };
            }
        }
        Observed {
            status: ComponentStatus::Running,
            message: None,
        }
    }

    async fn replicas(&self, component: &Component) -> Vec<ReplicaInfo> {
        let deployed = self.deployed.lock().unwrap();
        let Some(d) = deployed.get(&Self::name(component)) else {
            return Vec::new();
        };
        d.replicas
            .iter()
            .map(|r| {
                let s: ReplicaState = r.state.lock().unwrap().clone();
                ReplicaInfo {
                    index: r.index,
                    port: r.port,
                    pid: s.pid,
                    version: Some(r.version.clone()).filter(|v| v != "-"),
                    alive: s.alive,
                    restarts: s.restarts,
                    last_exit: s.last_exit,
                    started_at: s.started_at,
                }
            })
            .collect()
    }

    async fn usage(&self, component: &Component) -> Vec<ReplicaUsage> {
        let groups: Vec<(u32, i32)> = {
            let deployed = self.deployed.lock().unwrap();
            let Some(d) = deployed.get(&Self::name(component)) else {
                return Vec::new();
            };
            d.replicas
                .iter()
                .filter_map(|r| Some((r.index, r.state.lock().unwrap().pid? as i32)))
                .collect()
        };
        if groups.is_empty() {
            return Vec::new();
        }
        // Reading all of /proc is blocking work.
        let procs = tokio::task::spawn_blocking(usage::snapshot)
            .await
            .unwrap_or_default();
        let mut meter = self.cpu.lock().unwrap();
        let out = groups
            .iter()
            .map(|(index, group)| {
                let (ticks, rss_kb) = procs.get(group).copied().unwrap_or_default();
                ReplicaUsage {
                    index: *index,
                    cpu_percent: (meter.percent(*group, ticks) * 10.0).round() / 10.0,
                    memory_mb: (rss_kb as f64 / 1024.0 * 10.0).round() / 10.0,
                }
            })
            .collect();
        let live: Vec<i32> = procs.keys().copied().collect();
        meter.retain(&live);
        out
    }

    async fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        // Converges under way finish first, so none starts a replica afterwards.
        let locks: Vec<_> = self.locks.lock().unwrap().values().cloned().collect();
        for l in locks {
            let _ = tokio::time::timeout(Duration::from_secs(5), l.lock()).await;
        }
        let all: Vec<Deployed> = self
            .deployed
            .lock()
            .unwrap()
            .drain()
            .map(|(_, d)| d)
            .collect();
        let replicas: Vec<Replica> = all.into_iter().flat_map(|d| d.replicas).collect();
        tracing::info!(replicas = replicas.len(), "stopping every replica");
        Self::stop_all(replicas).await;
    }

    fn address(&self, component: &Component) -> Option<SocketAddr> {
        let name = Self::name(component);
        if let Some(d) = self.deployed.lock().unwrap().get(&name) {
            return Some(d.balancer.addr());
        }
        self.addresses
            .lock()
            .unwrap()
            .get(&name)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
    }
}
