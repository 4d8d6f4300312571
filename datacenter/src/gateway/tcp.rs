//! TCP routes: one listener per gateway port, each connection forwarded to
//! a replica of the target component. Listeners are diffed on `apply`; a
//! removed port stops accepting while its connections carry on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::metrics::{Registry, RouteMetrics};
use super::pool::connect_tcp;
use super::upstream::{ActiveGuard, Backend, Upstream, Upstreams};
use super::TcpRule;
use crate::api::Balance;

/// How long `apply` waits for a removed listener to release its port, so
/// the port can be bound again right away.
const STOP_WAIT: Duration = Duration::from_secs(1);

struct Target {
    label: String,
    upstream: Arc<Upstream>,
    balance: Balance,
    metrics: Arc<RouteMetrics>,
}

struct Listener {
    target: Arc<RwLock<Arc<Target>>>,
    stop: oneshot::Sender<()>,
    stopped: mpsc::Receiver<()>,
}

#[derive(Default)]
pub(crate) struct TcpListeners {
    ports: Mutex<HashMap<u16, Listener>>,
}

impl TcpListeners {
    pub(crate) fn apply(
        &self,
        runtime: &Handle,
        ip: IpAddr,
        rules: &[TcpRule],
        upstreams: &Upstreams,
        metrics: &Registry,
        connect_timeout: Duration,
    ) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut wanted: HashMap<u16, (String, Arc<Target>)> = HashMap::new();
        for rule in rules {
            let port = rule.spec.listen_port;
            if port == 0 {
                errors.push((rule.id.clone(), "the listen port must not be 0".into()));
                continue;
            }
            if let Some((other, _)) = wanted.get(&port) {
                errors.push((
                    rule.id.clone(),
                    format!("port {port} is already taken by TCP route {other}"),
                ));
                continue;
            }
            let target = Arc::new(Target {
                label: format!("{}/{}", rule.spec.app, rule.spec.component),
                upstream: upstreams.get(&Upstreams::key(
                    &rule.team,
                    &rule.spec.app,
                    &rule.spec.component,
                )),
                balance: rule.spec.balance,
                metrics: metrics.get(&rule.id),
            });
            wanted.insert(port, (rule.id.clone(), target));
        }

        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let removed: Vec<u16> = ports
            .keys()
            .filter(|p| !wanted.contains_key(p))
            .copied()
            .collect();
        for port in removed {
            if let Some(l) = ports.remove(&port) {
                let _ = l.stop.send(());
                let _ = l.stopped.recv_timeout(STOP_WAIT);
            }
        }
        for (port, (id, target)) in wanted {
            if let Some(l) = ports.get(&port) {
                *l.target.write().unwrap_or_else(|e| e.into_inner()) = target;
                continue;
            }
            let listener = match super::server::bind(SocketAddr::new(ip, port)) {
                Ok(l) => l,
                Err(e) => {
                    errors.push((id, format!("cannot listen on port {port}: {e}")));
                    continue;
                }
            };
            let (stop, stop_rx) = oneshot::channel();
            let (stopped_tx, stopped) = mpsc::channel();
            let target = Arc::new(RwLock::new(target));
            runtime.spawn(accept(
                listener,
                target.clone(),
                stop_rx,
                stopped_tx,
                connect_timeout,
            ));
            ports.insert(
                port,
                Listener {
                    target,
                    stop,
                    stopped,
                },
            );
        }
        errors
    }
}

async fn accept(
    listener: std::net::TcpListener,
    target: Arc<RwLock<Arc<Target>>>,
    mut stop: oneshot::Receiver<()>,
    stopped: mpsc::Sender<()>,
    connect_timeout: Duration,
) {
    match TcpListener::from_std(listener) {
        Ok(listener) => loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let t = target.read().unwrap_or_else(|e| e.into_inner()).clone();
                        tokio::spawn(forward(stream, t, connect_timeout));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        },
        Err(e) => tracing::error!(error = %e, "gateway TCP listener unusable"),
    }
    let _ = stopped.send(());
}

/// Connects to a replica (one retry on another after a refusal, which also
/// ejects the refusing one) and copies bytes both ways until either closes.
async fn forward(mut client: TcpStream, target: Arc<Target>, connect_timeout: Duration) {
    let start = Instant::now();
    let _ = client.set_nodelay(true);
    let mut failed: Option<Arc<Backend>> = None;
    for _ in 0..2 {
        let Some(backend) = target.upstream.pick(target.balance, failed.as_deref()) else {
            break;
        };
        match connect_tcp(backend.addr, connect_timeout).await {
            Ok(mut upstream) => {
                backend.succeeded();
                // Connections count as requests; latency is the time to connect.
                target.metrics.record(200, start.elapsed());
                let _in_flight = ActiveGuard::new(backend);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(target = %target.label, error = %e, "TCP connection ended");
                }
                return;
            }
            Err(e) => {
                tracing::debug!(target = %target.label, backend = %backend.addr, error = %e, "TCP connect failed");
                backend.eject();
                failed = Some(backend);
            }
        }
    }
    let status = if failed.is_some() { 502 } else { 503 };
    target.metrics.record(status, start.elapsed());
}
