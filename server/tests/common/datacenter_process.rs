//! A real `cloudport datacenter` process for tests: started on a chosen
//! port and data folder, stopped with SIGTERM or killed with SIGKILL,
//! restarted on the same ones.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "datacenter-token-0123456789";

pub struct DatacenterProcess {
    child: Child,
    pub port: u16,
    /// The gateway's HTTP port, kept across restarts like the API's.
    pub gateway_port: u16,
    /// Its HTTPS port.
    pub gateway_tls_port: u16,
    pub dir: std::path::PathBuf,
}

impl DatacenterProcess {
    pub fn start(dir: &std::path::Path, port: u16) -> DatacenterProcess {
        Self::start_with_gateway(dir, port, (free_port(), free_port()))
    }

    pub fn start_with_gateway(
        dir: &std::path::Path,
        port: u16,
        (gateway_port, gateway_tls_port): (u16, u16),
    ) -> DatacenterProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_cloudport"))
            .args([
                "datacenter",
                "--name",
                "dc2",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--reconcile-secs",
                "1",
                "--gateway-listen",
                &format!("127.0.0.1:{gateway_port}"),
                "--gateway-tls-listen",
                &format!("127.0.0.1:{gateway_tls_port}"),
            ])
            .arg("--data-dir")
            .arg(dir)
            .env("CLOUDPORT_DATACENTER_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cloudport datacenter");
        DatacenterProcess {
            child,
            port,
            gateway_port,
            gateway_tls_port,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if reqwest::get(format!("{}/healthz", self.url()))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("datacenter did not become ready");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// A clean stop: SIGTERM, then the exit status (SIGKILL after 20 s).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        signal(self.child.id() as i32, 15);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }

    /// The processes still alive that belong to this datacenter's replicas,
    /// however deep they were started (`npm` → `sh` → `node`).
    pub fn replica_processes(&self) -> Vec<i32> {
        let work = std::fs::canonicalize(self.dir.join("work")).unwrap_or(self.dir.join("work"));
        let marker = format!("CLOUDPORT_REPLICA_OF={}", work.display());
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            // A zombie waits for its parent to collect it: it runs nothing.
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            if !zombie && environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
                pids.push(pid);
            }
        }
        pids
    }

    pub fn restart(&mut self) {
        self.kill9();
        *self = DatacenterProcess::start_with_gateway(
            &self.dir.clone(),
            self.port,
            (self.gateway_port, self.gateway_tls_port),
        );
    }
}

impl Drop for DatacenterProcess {
    fn drop(&mut self) {
        // A clean stop ends the replicas too, so tests leave nothing behind.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.stop();
        }
    }
}

/// Sends `sig` to `pid` (SIGKILL 9 for a crash, SIGTERM 15 for a stop).
pub fn signal(pid: i32, sig: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    unsafe { kill(pid, sig) };
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
