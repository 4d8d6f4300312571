//! Running one build command and streaming its output into the event log.
//!
//! Every command gets its own process group so that on timeout, cancellation
//! or plain completion the whole tree it started (compilers, `npm` children,
//! a daemon a build script forgot) is killed, not only `sh`. The group is
//! killed from a guard's `Drop`, so dropping the build future — which is how
//! the whole-build timeout fires — is enough.

use crate::logs::EventLog;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

/// Longer lines are cut here (the event log cuts again at its own limit);
/// a command printing megabytes without a newline cannot grow memory.
const MAX_LINE: usize = 8192;
/// Lines kept for the error message of a failed command.
const TAIL: usize = 20;
/// After the command exits, how long its output may take to drain.
const DRAIN: Duration = Duration::from_secs(5);

/// Host variables that say which toolchain to use and how to reach package
/// registries (CA bundles, proxies, mirrors). Everything else of the
/// datacenter's environment (its token, database URL…) stays out of builds.
const PASSTHROUGH: &[&str] = &[
    "PYENV_ROOT",
    "PYENV_VERSION",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_AUTO_INSTALL",
    "JAVA_HOME",
    "GOROOT",
    "GOPROXY",
    "GOSUMDB",
    "GOPRIVATE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_FIND_LINKS",
    "PIP_DEFAULT_TIMEOUT",
    "npm_config_registry",
    "NPM_CONFIG_REGISTRY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// What a command is run with.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Spec {
    /// A shell line, as build steps are written.
    pub fn shell(line: &str, cwd: &Path, env: &[(String, String)]) -> Spec {
        Spec {
            program: "sh".into(),
            args: vec!["-c".into(), line.into()],
            cwd: cwd.into(),
            env: env.to_vec(),
        }
    }
}

/// A clean environment: PATH (with `prepend` first), a private HOME, a
/// UTF-8 locale and the host's toolchain/network settings.
pub fn clean_env(home: &Path, prepend: &[PathBuf]) -> Vec<(String, String)> {
    let host_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut path: Vec<String> = prepend.iter().map(|p| p.display().to_string()).collect();
    path.push(host_path);
    let mut env = vec![
        ("PATH".to_string(), path.join(":")),
        ("HOME".to_string(), home.display().to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    for name in PASSTHROUGH {
        if let Ok(v) = std::env::var(name) {
            env.push((name.to_string(), v));
        }
    }
    // rustup finds its toolchains under $HOME unless told: the private HOME
    // would hide them.
    if std::env::var_os("RUSTUP_HOME").is_none() {
        if let Some(h) = std::env::var_os("HOME") {
            let rustup = Path::new(&h).join(".rustup");
            if rustup.is_dir() {
                env.push(("RUSTUP_HOME".into(), rustup.display().to_string()));
            }
        }
    }
    env
}

/// How a command ended, with its last lines of output.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub tail: Vec<String>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exit status 1" / "killed by signal 9".
    pub fn status(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "unknown status".into(),
        }
    }

    /// The last non-empty output line, for one-line error messages.
    pub fn last_line(&self) -> Option<&str> {
        self.tail
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
    }
}

/// Where output lines go.
#[derive(Clone, Copy)]
pub enum Sink<'a> {
    Log(&'a EventLog, &'a str),
    /// Kept only in the tail (a detect preview has no log).
    Discard,
}

/// Runs `spec` to completion, streaming stdout and stderr line by line.
/// An `Err` is a failure to start it at all; a non-zero exit is a
/// `Finished` that is not `success()`.
pub async fn run(spec: &Spec, sink: Sink<'_>) -> std::io::Result<Finished> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = cmd.spawn()?;
    let pid = child.id().map(|p| p as i32);
    let _group = pid.map(GroupGuard);

    let (tx, mut rx) = mpsc::channel::<String>(256);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err, tx.clone()));
    }
    drop(tx);

    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL);
    let mut emit = |line: String| {
        if tail.len() == TAIL {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        line
    };
    let mut status = None;
    let mut drain_until = None;
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => {
                    let line = emit(line);
                    if let Sink::Log(log, step) = sink {
                        log.info(step, line).await;
                    }
                }
                None => break,
            },
            st = child.wait(), if status.is_none() => {
                status = Some(st?);
                // Leftovers of the group would keep the pipes open forever.
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                drain_until = Some(tokio::time::Instant::now() + DRAIN);
            },
            _ = sleep_until_opt(drain_until) => break,
        }
    }
    let status = match status {
        Some(s) => s,
        None => child.wait().await?,
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(Finished {
        code: status.code(),
        signal: status.signal(),
        tail: tail.into(),
    })
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads lines (lossy UTF-8, capped length, `\r` progress redraws reduced to
/// their final state) and forwards the non-empty ones.
async fn forward_lines(r: impl AsyncRead + Unpin, tx: mpsc::Sender<String>) {
    let mut r = BufReader::new(r);
    let mut line: Vec<u8> = Vec::new();
    let mut overflow = false;
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) => b,
            Err(_) => break,
        };
        if buf.is_empty() {
            break;
        }
        let (chunk, used, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if chunk.len() > room {
            overflow = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        r.consume(used);
        if end {
            if let Some(l) = tidy(&line, overflow) {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            line.clear();
            overflow = false;
        }
    }
    if let Some(l) = tidy(&line, overflow) {
        let _ = tx.send(l).await;
    }
}

fn tidy(raw: &[u8], overflow: bool) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let last = text
        .split('\r')
        .map(|s| s.trim_end())
        .filter(|s| !s.is_empty())
        .last()?;
    let mut s = last.to_string();
    if overflow {
        s.push('…');
    }
    Some(s)
}

/// Kills a process group when dropped.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

pub(crate) fn kill_group(pgid: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGKILL: i32 = 9;
    if pgid > 1 {
        // SAFETY: plain syscall; a group that no longer exists gives ESRCH.
        unsafe {
            kill(-pgid, SIGKILL);
        }
    }
}

/// Whether `program` is found on the host's PATH.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        clean_env(Path::new("/tmp"), &[])
    }

    #[tokio::test]
    async fn collects_both_streams_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec::shell(
            "echo out; echo err >&2; printf 'a\\rb\\rfinal\\n'; printf 'no newline'; exit 3",
            dir.path(),
            &env(),
        );
        let f = run(&spec, Sink::Discard).await.unwrap();
        assert!(!f.success());
        assert_eq!(f.status(), "exit status 3");
        for want in ["out", "err", "final", "no newline"] {
            assert!(
                f.tail.iter().any(|l| l == want),
                "{want} missing from {:?}",
                f.tail
            );
        }
        assert!(!f.tail.iter().any(|l| l.contains('\r')));
    }

    #[tokio::test]
    async fn environment_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("CLOUDPORT_BUILDER_TEST_SECRET", "leak");
        let spec = Spec::shell(
            "echo \"home=$HOME lang=$LANG secret=${CLOUDPORT_BUILDER_TEST_SECRET:-none}\"",
            dir.path(),
            &clean_env(dir.path(), &[]),
        );
        let f = run(&spec, Sink::Discard).await.unwrap();
        assert!(f.success());
        let want = format!("home={} lang=C.UTF-8 secret=none", dir.path().display());
        assert_eq!(f.last_line(), Some(want.as_str()));
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec::shell(
            "head -c 100000 /dev/zero | tr '\\0' x; echo",
            dir.path(),
            &env(),
        );
        let f = run(&spec, Sink::Discard).await.unwrap();
        assert!(f.success());
        assert_eq!(f.tail.len(), 1);
        assert!(f.tail[0].len() <= MAX_LINE + '…'.len_utf8());
    }

    #[tokio::test]
    async fn background_children_do_not_hold_it_open() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec::shell("sleep 300 & echo started", dir.path(), &env());
        let started = std::time::Instant::now();
        let f = tokio::time::timeout(Duration::from_secs(20), run(&spec, Sink::Discard))
            .await
            .expect("a background child kept the command open")
            .unwrap();
        assert!(f.success());
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[tokio::test]
    async fn dropping_the_run_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pid");
        let line = format!("sleep 300 & echo $! > {}; wait", marker.display());
        let spec = Spec::shell(&line, dir.path(), &env());
        let r = tokio::time::timeout(Duration::from_secs(1), run(&spec, Sink::Discard)).await;
        assert!(r.is_err(), "should have timed out");
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild is gone (possibly a zombie until init reaps it).
        let mut gone = false;
        for _ in 0..50 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "sleep {pid} survived the timeout");
    }
}
