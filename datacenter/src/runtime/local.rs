//! The local runtime: each replica of a component is a supervised child
//! process on this machine, started with the component's run command, its
//! environment and secrets, and `PORT`. A replica that exits is restarted with
//! exponential backoff; stopping sends SIGTERM, then SIGKILL after a grace
//! period. "Running" means every replica is alive and, when the component
//! has a health probe, answers it.

use super::{Runtime, RuntimeError, Target};
use crate::api::{Capacity, Component, ComponentStatus, HealthProbe};
use crate::logs::EventLog;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::watch;

const GRACE: Duration = Duration::from_secs(10);
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

struct Replica {
    port: u16,
    /// Set to true to make the supervisor stop the process and exit.
    stop: watch::Sender<bool>,
    alive: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Deployed {
    fingerprint: String,
    replicas: Vec<Replica>,
}

pub struct LocalRuntime {
    work_dir: PathBuf,
    deployed: Mutex<HashMap<String, Deployed>>,
}

impl LocalRuntime {
    pub fn new(work_dir: PathBuf) -> Self {
        LocalRuntime {
            work_dir,
            deployed: Mutex::default(),
        }
    }

    fn key(c: &Component) -> String {
        format!("{}/{}/{}", c.team, c.app, c.name)
    }

    async fn stop_all(replicas: Vec<Replica>) {
        for r in &replicas {
            let _ = r.stop.send(true);
        }
        for r in replicas {
            let _ = r.task.await;
        }
    }
}

fn free_port() -> Result<u16, RuntimeError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| RuntimeError::Failed(format!("no free port: {e}")))
}

fn spawn_child(
    cmd: &str,
    dir: &PathBuf,
    env: &[(String, String)],
    port: u16,
) -> std::io::Result<Child> {
    // A simple command replaces the shell, so the replica is the process we
    // supervise and signal (and the one the parent-death signal reaches).
    let simple = !cmd.contains([';', '&', '|', '\n', '(', ')', '`', '<', '>']);
    let line = if simple {
        format!("exec {cmd}")
    } else {
        cmd.to_string()
    };
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(line)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.env(
        "PATH",
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    c.env("HOME", dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("PORT", port.to_string());
    c.kill_on_drop(true);
    #[cfg(unix)]
    c.process_group(0);
    // If the datacenter dies (even by SIGKILL), its replicas die with it
    // instead of lingering as orphans; the reconciler restarts them.
    #[cfg(target_os = "linux")]
    unsafe {
        c.pre_exec(|| {
            extern "C" {
                fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
            }
            const PR_SET_PDEATHSIG: i32 = 1;
            prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0);
            Ok(())
        });
    }
    c.spawn()
}

async fn terminate(child: &mut Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        // The whole process group: `sh -c` and whatever it started.
        unsafe {
            libc_kill(-(pid as i32), 15);
        }
    }
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

#[cfg(unix)]
unsafe fn libc_kill(pid: i32, sig: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    kill(pid, sig);
}

/// Keeps one replica running until told to stop.
async fn supervise(
    cmd: String,
    dir: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    mut stop: watch::Receiver<bool>,
    alive: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut child = match spawn_child(&cmd, &dir, &env, port) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start replica");
                tokio::select! { _ = tokio::time::sleep(backoff) => { backoff = (backoff * 2).min(Duration::from_secs(60)); continue } _ = stop.changed() => return }
            }
        };
        alive.store(true, Ordering::SeqCst);
        let started = std::time::Instant::now();
        tokio::select! {
            status = child.wait() => {
                alive.store(false, Ordering::SeqCst);
                tracing::warn!(?status, port, "replica exited; restarting");
                if started.elapsed() > Duration::from_secs(60) { backoff = Duration::from_millis(500); }
                tokio::select! { _ = tokio::time::sleep(backoff) => {} _ = stop.changed() => return }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            _ = stop.changed() => {
                terminate(&mut child).await;
                alive.store(false, Ordering::SeqCst);
                return;
            }
        }
    }
}

async fn probe(health: &Option<HealthProbe>, ports: &[u16]) -> bool {
    for &port in ports {
        let ok = match health {
            None => true,
            Some(HealthProbe::Tcp { .. }) => tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok(),
            Some(HealthProbe::Http { path, .. }) => http_ok(port, path).await,
        };
        if !ok {
            return false;
        }
    }
    true
}

async fn http_ok(port: u16, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = [0u8; 16];
        s.read_exact(&mut buf[..12]).await.ok()?;
        let head = String::from_utf8_lossy(&buf[..12]).to_string();
        Some(
            head.starts_with("HTTP/1.")
                && head
                    .as_bytes()
                    .get(9)
                    .is_some_and(|&c| c == b'2' || c == b'3'),
        )
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
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

    async fn converge(
        &self,
        target: &Target,
        log: &EventLog,
    ) -> Result<ComponentStatus, RuntimeError> {
        let c = &target.component;
        let key = Self::key(c);
        if !target.running {
            let old = self.deployed.lock().unwrap().remove(&key);
            if let Some(old) = old {
                log.info(
                    "stop",
                    format!(
                        "stopping {} replica(s) (SIGTERM, then SIGKILL after {}s)",
                        old.replicas.len(),
                        GRACE.as_secs()
                    ),
                )
                .await;
                Self::stop_all(old.replicas).await;
            }
            return Ok(ComponentStatus::Stopped);
        }
        let Some(cmd) = c.build.run_command.clone().filter(|s| !s.trim().is_empty()) else {
            return Err(RuntimeError::Unsupported(
                "this component has no run command; set one in its build settings (building from source comes with the builder)".into(),
            ));
        };
        let mut env: Vec<(String, String)> = c
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        env.extend(target.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
        let fingerprint = format!("{cmd}|{env:?}|{:?}", c.health);
        let dir = self.work_dir.join(&c.team).join(&c.app).join(&c.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::Failed(format!("work dir: {e}")))?;

        let mut current = self
            .deployed
            .lock()
            .unwrap()
            .remove(&key)
            .unwrap_or_default();
        if target.restart || current.fingerprint != fingerprint {
            if !current.replicas.is_empty() {
                log.info(
                    "stop",
                    format!("replacing {} replica(s)", current.replicas.len()),
                )
                .await;
            }
            Self::stop_all(std::mem::take(&mut current.replicas)).await;
        }
        current.fingerprint = fingerprint;
        let want = c.replicas as usize;
        while current.replicas.len() > want {
            let r = current.replicas.pop().expect("non-empty");
            log.info("scale", format!("stopping the replica on port {}", r.port))
                .await;
            Self::stop_all(vec![r]).await;
        }
        while current.replicas.len() < want {
            let port = free_port()?;
            let (stop, rx) = watch::channel(false);
            let alive = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let task = tokio::spawn(supervise(
                cmd.clone(),
                dir.clone(),
                env.clone(),
                port,
                rx,
                alive.clone(),
            ));
            log.info(
                "start",
                format!(
                    "replica {} started on port {port}",
                    current.replicas.len() + 1
                ),
            )
            .await;
            current.replicas.push(Replica {
                port,
                stop,
                alive,
                task,
            });
        }
        let ports: Vec<u16> = current.replicas.iter().map(|r| r.port).collect();
        let alive: Vec<_> = current.replicas.iter().map(|r| r.alive.clone()).collect();
        self.deployed.lock().unwrap().insert(key, current);
        if want == 0 {
            return Ok(ComponentStatus::Running);
        }
        log.info(
            "health",
            match &c.health {
                Some(_) => "waiting for the health check to pass",
                None => "no health check set: running means the processes stay up",
            },
        )
        .await;
        let deadline = tokio::time::Instant::now() + HEALTHY_WITHIN;
        loop {
            let all_alive = alive
                .iter()
                .all(|a| a.load(std::sync::atomic::Ordering::SeqCst));
            if all_alive && probe(&c.health, &ports).await {
                // Without a probe, give crashing commands a moment to show it.
                if c.health.is_none() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if !alive
                        .iter()
                        .all(|a| a.load(std::sync::atomic::Ordering::SeqCst))
                    {
                        continue;
                    }
                }
                log.info("health", format!("{want} replica(s) healthy"))
                    .await;
                return Ok(ComponentStatus::Running);
            }
            if tokio::time::Instant::now() > deadline {
                log.error(
                    "health",
                    format!("not healthy after {}s", HEALTHY_WITHIN.as_secs()),
                )
                .await;
                return Ok(ComponentStatus::Abnormal);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn remove(&self, component: &Component, log: &EventLog) -> Result<(), RuntimeError> {
        let old = self.deployed.lock().unwrap().remove(&Self::key(component));
        if let Some(old) = old {
            log.info(
                "stop",
                format!("stopping {} replica(s)", old.replicas.len()),
            )
            .await;
            Self::stop_all(old.replicas).await;
        }
        let dir = self
            .work_dir
            .join(&component.team)
            .join(&component.app)
            .join(&component.name);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    async fn observe(&self, component: &Component) -> ComponentStatus {
        let (ports, all_alive, count) = {
            let deployed = self.deployed.lock().unwrap();
            match deployed.get(&Self::key(component)) {
                None => return ComponentStatus::Stopped,
                Some(d) => (
                    d.replicas.iter().map(|r| r.port).collect::<Vec<_>>(),
                    d.replicas
                        .iter()
                        .all(|r| r.alive.load(std::sync::atomic::Ordering::SeqCst)),
                    d.replicas.len(),
                ),
            }
        };
        if count == 0 {
            return ComponentStatus::Stopped;
        }
        if all_alive && probe(&component.health, &ports).await {
            ComponentStatus::Running
        } else {
            ComponentStatus::Abnormal
        }
    }
}
