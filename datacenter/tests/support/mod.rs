//! A real etcd for the queue tests: its own process, data directory and loopback ports.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::Client;
use tempfile::TempDir;

/// The etcd binary: `$ETCD_BIN`, else `/usr/bin/etcd`, else `etcd` on the PATH.
/// A missing etcd fails the test: a skipped etcd suite would hide a broken backend.
pub fn etcd_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ETCD_BIN") {
        return PathBuf::from(bin);
    }
    let default = Path::new("/usr/bin/etcd");
    if default.exists() {
        return default.to_path_buf();
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("etcd");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "etcd not found (looked at $ETCD_BIN, /usr/bin/etcd and PATH): the etcd queue tests need \
         a real etcd 3.4+; install it with `apt-get install etcd-server`"
    );
}

pub struct EtcdServer {
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts etcd on free loopback ports and waits until it answers.
    pub async fn start() -> Self {
        let bin = etcd_binary();
        for _ in 0..5 {
            let (client_port, peer_port) = free_ports();
            let mut server = Self {
                dir: tempfile::tempdir().expect("temp dir"),
                client_port,
                peer_port,
                child: None,
            };
            server.spawn(&bin);
            if server.wait_ready(Duration::from_secs(15)).await {
                return server;
            }
            // Most likely another process took a port between probing and binding.
            eprintln!(
                "etcd did not start, retrying on other ports:\n{}",
                server.log()
            );
        }
        panic!("etcd ({}) did not start after 5 tries", bin.display());
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills etcd the hard way (no graceful shutdown, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same data directory and ports.
    pub async fn restart(&mut self) {
        self.kill();
        for _ in 0..3 {
            self.spawn(&etcd_binary());
            if self.wait_ready(Duration::from_secs(15)).await {
                return;
            }
            self.kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("etcd did not come back on its old ports:\n{}", self.log());
    }

    fn spawn(&mut self, bin: &Path) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log file");
        let child = Command::new(bin)
            .arg("--name=default")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            // A short election timeout brings etcd's minimum lease TTL down to 1 s, so the
            // tests can use 1 s leases.
            .arg("--heartbeat-interval=50")
            .arg("--election-timeout=500")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        self.child = Some(child);
    }

    async fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            let probe = async {
                let mut client = Client::connect([self.endpoint()], None).await?;
                client.get("probe", None).await
            };
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1000), probe).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind");
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}
