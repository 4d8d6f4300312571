//! `cloudport`: the console (web UI, REST API, auth) in one binary.

use clap::{Parser, Subcommand};
use server::config::ServeConfig;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "cloudport", version, about = "Cloudport: an application platform — console, API and datacenters in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the console: web UI, REST API and authentication.
    Serve(ServeConfig),
    /// Run a datacenter: its API, task queue, workers and runtime.
    Datacenter(server::config::DatacenterArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("CLOUDPORT_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => serve(config).await,
        Command::Datacenter(args) => run_datacenter(args).await,
    }
}

async fn serve(config: ServeConfig) -> std::process::ExitCode {
    let running = match server::start(config.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cloudport: {}", e);
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(password) = &running.generated_admin_password {
        eprintln!();
        eprintln!("  First start: created the platform admin.");
        eprintln!("    username: admin");
        eprintln!("    password: {password}");
        eprintln!("  It is shown only this once; change it under Account after signing in.");
        eprintln!();
    }
    tracing::info!(addr = %running.addr, data_dir = %config.data_dir.display(), "console listening on http://{}", running.addr);
    wait(running.server, "cloudport").await
}

/// Waits for a server task; its failure becomes the process's exit status.
async fn wait(server: tokio::task::JoinHandle<std::io::Result<()>>, what: &str) -> std::process::ExitCode {
    match server.await {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("{what}: server error: {e}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{what}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_datacenter(args: server::config::DatacenterArgs) -> std::process::ExitCode {
    let config = args.into_config();
    let runtime = std::sync::Arc::new(datacenter::runtime::local::LocalRuntime::new(config.data_dir.join("work")));
    match datacenter::service::start(config, runtime).await {
        Ok(running) => wait(running.server, "cloudport datacenter").await,
        Err(e) => {
            eprintln!("cloudport datacenter: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
