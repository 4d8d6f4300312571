//! The datacenter's gateway for the local runtime: HTTP/1.1 and HTTP/2
//! reverse proxy (with WebSocket upgrades), TLS termination by SNI, and TCP
//! forwarding, routing into components' ready replicas.
//!
//! The gateway runs on its own runtime thread(s) so the API's load cannot
//! slow traffic down (nor the other way round). Rules are compiled into an
//! immutable table that `apply` swaps whole; replica lists live in
//! `upstream::Upstreams`, shared with the runtime, so scaling needs no apply.
//!
//! Two HTTP paths share the table, balancing and metrics: `h1`, a lean
//! HTTP/1.1 proxy loop that serves almost all traffic, and `proxy`, built on
//! hyper, for HTTP/2 (prior knowledge or ALPN) and the rarities `h1` hands
//! over (HTTP/1.0, absolute-form targets).

mod framing;
mod h1;
mod metrics;
mod pool;
mod proxy;
mod server;
mod table;
mod tcp;
mod tls;
pub mod upstream;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::api::{HttpRouteSpec, RouteStats, TcpRouteSpec};

pub use tls::parse_certificate;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Plain HTTP listener (port 0 picks a free port).
    pub http: SocketAddr,
    /// TLS listener, if any.
    pub https: Option<SocketAddr>,
    /// Worker threads of the gateway's own runtime; 1 runs a single-threaded
    /// runtime, the fastest per core.
    pub threads: usize,
    pub connect_timeout: Duration,
    /// How long an upstream may take to send its response headers.
    pub request_timeout: Duration,
    /// Request bodies larger than this are answered with 413.
    pub max_body_bytes: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            https: None,
            threads: 2,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(60),
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpRule {
    /// Metrics label: the route id, or `default:<app>/<component>`.
    pub id: String,
    pub team: String,
    pub spec: HttpRouteSpec,
}

#[derive(Debug, Clone)]
pub struct TcpRule {
    pub id: String,
    pub team: String,
    pub spec: TcpRouteSpec,
}

#[derive(Clone)]
pub struct TlsCertificate {
    pub name: String,
    pub team: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("name", &self.name)
            .field("team", &self.team)
            .finish_non_exhaustive()
    }
}

/// Everything the gateway serves; `apply` replaces it whole.
#[derive(Debug, Clone, Default)]
pub struct RouteSet {
    pub http: Vec<HttpRule>,
    pub tcp: Vec<TcpRule>,
    pub certificates: Vec<TlsCertificate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCertificate {
    /// DNS names, lowercase, wildcards kept (`*.example.com`).
    pub domains: Vec<String>,
    /// Unix ms.
    pub not_before: i64,
    /// Unix ms.
    pub not_after: i64,
}

pub struct Gateway {
    shared: Arc<proxy::Shared>,
    resolver: Arc<tls::Resolver>,
    tcp: tcp::TcpListeners,
    runtime: tokio::runtime::Handle,
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Binds the HTTP (and HTTPS) listeners before returning, so a taken
    /// port is an error here, then serves on the gateway's own thread(s).
    pub fn start(
        config: GatewayConfig,
        upstreams: Arc<upstream::Upstreams>,
    ) -> io::Result<Gateway> {
        let http_listener = server::bind(config.http)?;
        let http_addr = http_listener.local_addr()?;
        let https_listener = config.https.map(server::bind).transpose()?;
        let https_addr = https_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;

        let resolver = Arc::new(tls::Resolver::default());
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(resolver.clone())?);
        let metrics = metrics::Registry::default();
        let unmatched = metrics.get(metrics::UNMATCHED);
        let shared = Arc::new(proxy::Shared {
            table: RwLock::default(),
            generation: AtomicU64::new(0),
            upstreams,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            max_body_bytes: config.max_body_bytes,
            https_port: https_addr.map(|a| a.port()),
            metrics,
            unmatched,
            ids: proxy::RequestIds::new(),
        });

        let threads = config.threads.max(1);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cloudport-gateway".into())
            .spawn(move || {
                let mut builder = if threads == 1 {
                    tokio::runtime::Builder::new_current_thread()
                } else {
                    let mut b = tokio::runtime::Builder::new_multi_thread();
                    b.worker_threads(threads);
                    b
                };
                let runtime = match builder
                    .enable_all()
                    .thread_name("cloudport-gateway")
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async move {
                    let http = server::http();
                    tokio::spawn(server::serve_plain(
                        http_listener,
                        served.clone(),
                        http.clone(),
                    ));
                    if let Some(l) = https_listener {
                        tokio::spawn(server::serve_tls(l, served, http, acceptor));
                    }
                    let _ = stop_rx.await;
                });
                // Dropping the runtime here ends every listener and connection.
            })?;
        let runtime = match ready_rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("the gateway thread ended while starting")),
        };
        tracing::info!(http = %http_addr, https = ?https_addr, threads, "gateway listening");
        Ok(Gateway {
            shared,
            resolver,
            tcp: tcp::TcpListeners::default(),
            runtime,
            http_addr,
            https_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// Replaces all rules at once; requests in flight finish on the old
    /// table. TCP listeners are diffed: new ports are bound on the HTTP
    /// listener's IP, removed ports stop accepting (their connections go
    /// on). Returns the TCP rules whose port could not be bound.
    pub fn apply(&self, set: RouteSet) -> Vec<(String, String)> {
        let shared = &self.shared;
        let table = table::Table::compile(&set.http, &shared.upstreams, &shared.metrics);
        self.resolver.set(&set.certificates);
        let errors = self.tcp.apply(
            &self.runtime,
            self.http_addr.ip(),
            &set.tcp,
            &shared.upstreams,
            &shared.metrics,
            shared.connect_timeout,
        );
        {
            let mut live: HashSet<&str> = table.ids();
            live.extend(set.tcp.iter().map(|r| r.id.as_str()));
            shared.metrics.retain(&live);
        }
        shared.set_table(table);
        errors
    }

    /// Traffic per rule id, for rules that exist or have seen traffic.
    pub fn stats(&self) -> Vec<RouteStats> {
        self.shared.metrics.stats()
    }

    /// Appends the gateway's Prometheus text exposition to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        self.shared.metrics.render(out);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
