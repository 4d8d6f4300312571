//! `cloudport`: the console (web UI, REST API, auth) in one binary.

use clap::{Parser, Subcommand};
use server::config::ServeConfig;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "cloudport",
    version,
    about = "Cloudport: an application platform — console, API and datacenters in one binary"
)]
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
    /// Deploy a folder: create what is missing, upload, follow the build, print the URL.
    Push(server::push::PushArgs),
    /// Serve a folder of static files on $PORT (the run command of static sites).
    ServeStatic(server::static_site::ServeStaticArgs),
}

/// argon2 needs a 19 MiB buffer per hash. glibc would serve the second one
/// from a heap arena and keep it resident for good; a fixed mmap threshold
/// makes every such buffer go back to the system when the hash is done.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers_to_the_system() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_MMAP_THRESHOLD: i32 = -3;
    const M_ARENA_MAX: i32 = -8;
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
        mallopt(M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers_to_the_system() {}

fn main() -> std::process::ExitCode {
    return_large_buffers_to_the_system();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run())
}

async fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            init_tracing("info,sqlx=warn", false);
            serve(config).await
        }
        Command::Datacenter(args) => {
            init_tracing("info,sqlx=warn", false);
            run_datacenter(args).await
        }
        // Their stdout is for people and scripts (and an app's logs):
        // diagnostics, if any, go to stderr.
        Command::Push(args) => {
            init_tracing("warn", true);
            server::push::run(args).await
        }
        Command::ServeStatic(args) => {
            init_tracing("warn", true);
            server::static_site::run(args).await
        }
    }
}

fn init_tracing(default: &str, to_stderr: bool) {
    let filter =
        EnvFilter::try_from_env("CLOUDPORT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    if to_stderr {
        fmt.with_writer(std::io::stderr).init();
    } else {
        fmt.init();
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
    // The console's server ends on Ctrl-C or SIGTERM (after its requests).
    let code = wait(running.server, "cloudport").await;
    if let Some(dc) = &running.embedded {
        dc.stop().await;
    }
    code
}

/// Waits for a server task; its failure becomes the process's exit status.
async fn wait(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    what: &str,
) -> std::process::ExitCode {
    exit_code(server.await, what)
}

fn exit_code(
    ended: Result<std::io::Result<()>, tokio::task::JoinError>,
    what: &str,
) -> std::process::ExitCode {
    match ended {
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
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cloudport datacenter: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match datacenter::service::start(config).await {
        Ok(mut running) => {
            let code = tokio::select! {
                _ = server::shutdown_signal() => std::process::ExitCode::SUCCESS,
                ended = &mut running.server => exit_code(ended, "cloudport datacenter"),
            };
            tracing::info!("stopping: ending the replicas");
            running.stop().await;
            code
        }
        Err(e) => {
            eprintln!("cloudport datacenter: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
