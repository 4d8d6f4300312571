//! The `cloudport` binary's library: configuration, the console services,
//! its store, and the HTTP surface. `main.rs` is only the command line.

pub mod config;
pub mod console;
pub mod db;
pub mod error;
pub mod http;
pub mod push;
pub mod sessions;
pub mod static_site;

use config::ServeConfig;
use console::{limiter::Limits, ConsoleService};
use error::{Error, Result};
use leptos::prelude::LeptosOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A console that is listening.
pub struct Running {
    pub addr: SocketAddr,
    pub console: Arc<ConsoleService>,
    /// Set when the first admin's password was generated (shown once).
    pub generated_admin_password: Option<String>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The datacenter running inside the console, unless disabled.
    pub embedded: Option<datacenter::service::Running>,
}

/// Opens the store, makes sure an admin exists, binds and starts serving.
pub async fn start(config: ServeConfig) -> Result<Running> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::Invalid(format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let db = db::open(config.database_url.as_deref(), &config.data_dir).await?;
    let limits = Limits {
        per_user: config.login_failures_per_user,
        per_address: config.login_failures_per_address,
        window: Duration::from_secs(config.login_window_secs),
    };
    let secrets =
        datacenter::crypto::SecretBox::load_or_create(&config.data_dir.join("console.key"))
            .map_err(Error::internal)?;
    let console = Arc::new(ConsoleService::new(db, limits, secrets));
    console.set_public_url(config.public_url.clone());
    let generated_admin_password = console.ensure_admin(config.admin_password.clone()).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(Error::internal)?;

    let bundle = http::assets::bundle_name();
    if bundle.is_none() {
        tracing::warn!(
            "this binary was built without the UI bundle: pages render but are not interactive"
        );
    }
    let leptos = LeptosOptions::builder()
        .output_name(bundle.unwrap_or_else(|| "cloudport".into()))
        .site_root("target/site")
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .env(leptos::config::Env::PROD)
        .build();
    let state = http::AppState {
        console: console.clone(),
        metrics: Arc::new(http::metrics::console_metrics()),
        leptos,
    };
    let router = http::router(
        state,
        http::HttpOptions {
            secure_cookies: config.secure_cookies(),
            session_idle: config.session_idle(),
        },
    );

    let embedded = if config.no_embedded_datacenter {
        None
    } else {
        Some(start_embedded_datacenter(&config, &console).await?)
    };
    let poller = console.clone();
    let every = Duration::from_secs(config.datacenter_poll_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            poller.poll_datacenters().await;
        }
    });

    let housekeeping = console.clone();
    let retention = config.audit_retention_days;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(e) = housekeeping.housekeeping(retention).await {
                tracing::warn!(error = %e, "housekeeping failed");
            }
        }
    });

    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
    });
    Ok(Running {
        addr,
        console,
        generated_admin_password,
        server,
        embedded,
    })
}

/// Runs the datacenter `local` inside this process, on a loopback port with a
/// fresh token, and registers it with the console.
async fn start_embedded_datacenter(
    config: &ServeConfig,
    console: &Arc<ConsoleService>,
) -> Result<datacenter::service::Running> {
    use datacenter::service::DatacenterConfig;
    let data_dir = config.data_dir.join("datacenter-local");
    let token = console::passwords::random_string(40);
    let dc_config = DatacenterConfig {
        workers: 2,
        reconcile_every: Duration::from_secs(5),
        ..DatacenterConfig::new(
            "local",
            "127.0.0.1:0".parse().expect("address"),
            data_dir,
            token.clone(),
        )
    };
    let dc_config = config.gateway.apply(dc_config).map_err(Error::Invalid)?;
    let running = datacenter::service::start(dc_config)
        .await
        .map_err(|e| Error::internal(format!("embedded datacenter: {e}")))?;
    console
        .register_embedded("local", &format!("http://{}", running.addr), &token)
        .await?;
    Ok(running)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
