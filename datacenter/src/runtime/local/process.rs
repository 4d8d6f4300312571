//! One replica: a child process kept running until told to stop. Its output
//! goes line by line to the component's logs; an exit is recorded with its
//! reason and answered with a restart after an exponential backoff.

use super::limits::{self, ChildLimits, ReplicaCgroup, Resources};
use super::orphans::OWNER_VAR;
use crate::logs::component::{ComponentLogs, Stream};
use crate::store::components::Key;
use crate::store::now_ms;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::watch;

pub const GRACE: Duration = Duration::from_secs(10);
/// Output lines longer than this are cut into pieces.
const MAX_LINE: usize = 8192;

/// How to start the process of one replica.
#[derive(Debug, Clone)]
pub struct Launch {
    pub key: Key,
    pub index: u32,
    pub version: String,
    pub command: String,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub path_prepend: Vec<PathBuf>,
    pub port: u16,
    pub resources: Resources,
    /// The datacenter this replica belongs to (see `orphans`).
    pub owner: Arc<str>,
}

/// What the supervisor knows about its replica, for observers.
#[derive(Debug, Default, Clone)]
pub struct ReplicaState {
    pub alive: bool,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub started_at: Option<i64>,
    /// When the last exit happened (unix ms), to tell a crash loop from one old crash.
    pub exited_at: Option<i64>,
}

pub type SharedState = Arc<Mutex<ReplicaState>>;

fn spawn_child(l: &Launch, cgroup: Option<&ReplicaCgroup>) -> std::io::Result<Child> {
    // A simple command replaces the shell, so the replica is the process we
    // supervise and signal (and the one the parent-death signal reaches).
    let simple = !l
        .command
        .contains([';', '&', '|', '\n', '(', ')', '`', '<', '>']);
    let line = if simple {
        format!("exec {}", l.command)
    } else {
        l.command.clone()
    };
    let host_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let path = l
        .path_prepend
        .iter()
        .map(|p| p.display().to_string())
        .chain(std::iter::once(host_path))
        .collect::<Vec<_>>()
        .join(":");
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(line)
        .current_dir(&l.dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.env("PATH", path);
    c.env("HOME", &l.dir);
    c.env("LANG", "C.UTF-8");
    // Python buffers stdout when it is not a terminal; logs should be live.
    c.env("PYTHONUNBUFFERED", "1");
    for (k, v) in &l.env {
        c.env(k, v);
    }
    c.env("PORT", l.port.to_string());
    c.env(OWNER_VAR, &*l.owner);
    c.kill_on_drop(true);
    #[cfg(unix)]
    c.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let child_limits = ChildLimits::new(l.resources, cgroup);
        unsafe {
            c.pre_exec(move || child_limits.apply());
        }
    }
    c.spawn()
}

/// SIGTERM to the replica's process group, SIGKILL to it (and to its
/// cgroup) after the grace period.
pub async fn terminate(child: &mut Child, cgroup: Option<&ReplicaCgroup>) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        // The whole process group: `sh -c` and whatever it started.
        unsafe {
            kill(-(pid as i32), 15);
        }
    }
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        #[cfg(unix)]
        if let Some(pid) = child.id() {
            unsafe {
                kill(-(pid as i32), 9);
            }
        }
        let _ = child.kill().await;
    }
    if let Some(cg) = cgroup {
        cg.kill_all();
    }
}

/// What a replica's first process leaves behind when it ends on its own
/// (`npm` dies, `node` lives on) is ended with it.
fn end_leftovers(pid: Option<u32>, cgroup: Option<&ReplicaCgroup>) {
    #[cfg(unix)]
    if let Some(pid) = pid {
        unsafe {
            kill(-(pid as i32), 9);
        }
    }
    if let Some(cg) = cgroup {
        cg.kill_all();
    }
}

#[cfg(unix)]
extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

pub fn describe_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended".into(),
    }
}

/// Copies one output pipe into the component's logs, line by line.
async fn pump(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    logs: Arc<ComponentLogs>,
    key: Key,
    index: u32,
    version: String,
    stream: Stream,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + pos];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            logs.append(
                &key,
                index,
                &version,
                stream,
                &String::from_utf8_lossy(line),
            );
            start += pos + 1;
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE {
            logs.append(
                &key,
                index,
                &version,
                stream,
                &String::from_utf8_lossy(&buf),
            );
            buf.clear();
        }
    }
    if !buf.is_empty() {
        logs.append(
            &key,
            index,
            &version,
            stream,
            &String::from_utf8_lossy(&buf),
        );
    }
}

/// Keeps one replica running until `stop` turns true.
pub async fn supervise(
    launch: Launch,
    logs: Arc<ComponentLogs>,
    state: SharedState,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    let cgroup = limits::host_tree().and_then(|tree| {
        let name = format!(
            "{}-{}.{}.{}.{}",
            short_hash(&launch.owner),
            launch.key.team,
            launch.key.app,
            launch.key.name,
            launch.index
        );
        tree.prepare(&name, launch.resources)
            .map_err(|e| tracing::warn!(key = %launch.key, error = %e, "no cgroup for the replica; rlimits instead"))
            .ok()
    });
    let note = |msg: String| {
        logs.append(
            &launch.key,
            launch.index,
            &launch.version,
            Stream::Stderr,
            &format!("[cloudport] {msg}"),
        )
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let mut child = match spawn_child(&launch, cgroup.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                note(format!("cannot start `{}`: {e}", launch.command));
                {
                    let mut s = state.lock().unwrap();
                    s.last_exit = Some(format!("cannot start: {e}"));
                    s.exited_at = Some(now_ms());
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => { backoff = (backoff * 2).min(Duration::from_secs(60)); continue }
                    _ = stop.changed() => return,
                }
            }
        };
        let pumps = [
            child.stdout.take().map(|p| {
                tokio::spawn(pump(
                    p,
                    logs.clone(),
                    launch.key.clone(),
                    launch.index,
                    launch.version.clone(),
                    Stream::Stdout,
                ))
            }),
            child.stderr.take().map(|p| {
                tokio::spawn(pump(
                    p,
                    logs.clone(),
                    launch.key.clone(),
                    launch.index,
                    launch.version.clone(),
                    Stream::Stderr,
                ))
            }),
        ];
        {
            let mut s = state.lock().unwrap();
            s.alive = true;
            s.pid = child.id();
            s.started_at = Some(now_ms());
        }
        let started = std::time::Instant::now();
        let pid = child.id();
        tokio::select! {
            status = child.wait() => {
                end_leftovers(pid, cgroup.as_ref());
                let reason = status.map(|s| describe_exit(&s)).unwrap_or_else(|e| e.to_string());
                // A replica that ran a good while before dying is not crash-looping.
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
                {
                    let mut s = state.lock().unwrap();
                    s.alive = false;
                    s.pid = None;
                    s.restarts += 1;
                    s.last_exit = Some(reason.clone());
                    s.exited_at = Some(now_ms());
                }
                for p in pumps.into_iter().flatten() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
                }
                note(format!("replica {} ended ({reason}); restarting in {:.1}s", launch.index, backoff.as_secs_f32()));
                tracing::warn!(key = %launch.key, replica = launch.index, %reason, "replica exited; restarting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            _ = stop.changed() => {
                terminate(&mut child, cgroup.as_ref()).await;
                let mut s = state.lock().unwrap();
                s.alive = false;
                s.pid = None;
                return;
            }
        }
    }
}

/// Keeps cgroup names of different datacenters on one host apart.
fn short_hash(s: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    format!("{:08x}", h.finish() as u32)
}
