//! `cloudport serve` settings, from flags and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address the console listens on.
    #[arg(long, env = "CLOUDPORT_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Folder for the console's own data (SQLite database, later artifacts and logs).
    #[arg(long, env = "CLOUDPORT_DATA_DIR", default_value = "./cloudport-data")]
    pub data_dir: PathBuf,
    /// `postgres://user:pass@host/db` to keep console data in PostgreSQL
    /// instead of SQLite under the data directory.
    #[arg(long, env = "CLOUDPORT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Password of the first platform admin `admin`, used only when the
    /// console has no users yet; one is generated and printed otherwise.
    #[arg(long, env = "CLOUDPORT_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// The URL people use to reach the console; an `https://` URL marks the
    /// session cookie Secure (set it when a TLS proxy sits in front).
    #[arg(long, env = "CLOUDPORT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Sessions end after this many hours without a request.
    #[arg(long, default_value_t = 12)]
    pub session_idle_hours: u64,
    /// Failed logins allowed per username per window.
    #[arg(long, default_value_t = 5)]
    pub login_failures_per_user: u32,
    /// Failed logins allowed per client address per window.
    #[arg(long, default_value_t = 30)]
    pub login_failures_per_address: u32,
    /// Length of the failed-login window, in seconds.
    #[arg(long, default_value_t = 300)]
    pub login_window_secs: u64,
    /// Do not run a datacenter inside the console (use only registered ones).
    #[arg(long)]
    pub no_embedded_datacenter: bool,
    /// Seconds between health polls of each datacenter.
    #[arg(long, default_value_t = 2)]
    pub datacenter_poll_secs: u64,
    /// Audit records older than this many days are deleted.
    #[arg(long, default_value_t = 365)]
    pub audit_retention_days: i64,
    /// The embedded datacenter's gateway.
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

impl ServeConfig {
    pub fn for_tests(data_dir: PathBuf) -> Self {
        ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir,
            database_url: None,
            admin_password: None,
            public_url: None,
            session_idle_hours: 12,
            login_failures_per_user: 5,
            login_failures_per_address: 30,
            login_window_secs: 300,
            audit_retention_days: 365,
            no_embedded_datacenter: true,
            datacenter_poll_secs: 1,
            gateway: GatewayArgs {
                gateway_listen: "127.0.0.1:0".into(),
                gateway_tls_listen: None,
                domain_suffix: "localhost".into(),
                gateway_threads: 1,
            },
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_hours.max(1) * 3600)
    }
}

/// `cloudport datacenter` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatacenterArgs {
    /// Name the console will know this datacenter by.
    #[arg(long, env = "CLOUDPORT_DATACENTER_NAME", default_value = "dc1")]
    pub name: String,
    #[arg(
        long,
        env = "CLOUDPORT_DATACENTER_LISTEN",
        default_value = "127.0.0.1:7000"
    )]
    pub listen: SocketAddr,
    #[arg(
        long,
        env = "CLOUDPORT_DATA_DIR",
        default_value = "./cloudport-datacenter"
    )]
    pub data_dir: PathBuf,
    /// The bearer token the console must present (at least 16 characters).
    #[arg(long, env = "CLOUDPORT_DATACENTER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// `postgres://…` to keep the datacenter's state in PostgreSQL instead of SQLite.
    #[arg(long, env = "CLOUDPORT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// `embedded` (durable, SQLite) or `etcd`.
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "etcd"])]
    pub queue: String,
    /// etcd endpoints, comma-separated, for `--queue etcd`.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_endpoints: Vec<String>,
    /// Worker tasks consuming the queue.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Seconds between reconcile passes.
    #[arg(long, default_value_t = 5)]
    pub reconcile_secs: u64,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// Where a datacenter's gateway serves and how it names components.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Address of the gateway's plain HTTP listener, or `off` for no gateway.
    #[arg(
        long,
        env = "CLOUDPORT_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub gateway_listen: String,
    /// Address of the gateway's HTTPS listener (certificates chosen by SNI
    /// among those uploaded); no HTTPS unless set.
    #[arg(long, env = "CLOUDPORT_GATEWAY_TLS_LISTEN")]
    pub gateway_tls_listen: Option<SocketAddr>,
    /// Every outer HTTP port answers at `<component>.<app>.<team>.<suffix>`;
    /// `localhost` works without DNS in browsers and curl.
    #[arg(long, env = "CLOUDPORT_DOMAIN_SUFFIX", default_value = "localhost")]
    pub domain_suffix: String,
    /// Threads serving gateway traffic (apart from the API's).
    #[arg(long, default_value_t = 2)]
    pub gateway_threads: usize,
}

impl GatewayArgs {
    /// The datacenter settings these flags stand for.
    pub fn apply(
        &self,
        mut config: datacenter::service::DatacenterConfig,
    ) -> Result<datacenter::service::DatacenterConfig, String> {
        config.domain_suffix = datacenter::validate::normalize_domain(&self.domain_suffix);
        datacenter::validate::domain(&config.domain_suffix)
            .map_err(|e| format!("--domain-suffix: {e}"))?;
        config.gateway = match self.gateway_listen.as_str() {
            "off" | "none" | "" => None,
            addr => Some(datacenter::gateway::GatewayConfig {
                http: addr
                    .parse()
                    .map_err(|e| format!("--gateway-listen {addr}: {e}"))?,
                https: self.gateway_tls_listen,
                threads: self.gateway_threads.clamp(1, 64),
                ..Default::default()
            }),
        };
        Ok(config)
    }
}

impl DatacenterArgs {
    pub fn into_config(self) -> Result<datacenter::service::DatacenterConfig, String> {
        use datacenter::service::{DatacenterConfig, QueueConfig};
        let queue = match self.queue.as_str() {
            "etcd" => QueueConfig::Etcd {
                endpoints: self.etcd_endpoints,
                prefix: format!("/cloudport/{}", self.name),
            },
            _ => QueueConfig::Embedded,
        };
        let config = DatacenterConfig {
            database_url: self.database_url,
            queue,
            workers: self.workers,
            reconcile_every: Duration::from_secs(self.reconcile_secs.max(1)),
            ..DatacenterConfig::new(&self.name, self.listen, self.data_dir, self.token)
        };
        self.gateway.apply(config)
    }
}
