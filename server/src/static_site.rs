//! `cloudport serve-static [DIR]`: the run command the builder gives static
//! sites. Serves DIR on `$PORT` (index.html for folders, 404 for anything
//! missing, no folder listings, nothing outside DIR) and logs one line per
//! request to stdout, which the platform shows as the app's logs.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use tower_http::services::{ServeDir, ServeFile};

/// `cloudport serve-static` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeStaticArgs {
    /// The folder to serve.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Port to listen on; the platform sets `PORT`.
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
}

/// The router: files of `dir`, with `404.html` (if present) as the not-found page.
pub fn router(dir: PathBuf) -> Router {
    let not_found = dir.join("404.html");
    let files = ServeDir::new(&dir).append_index_html_on_directories(true);
    let service = if not_found.is_file() {
        Router::new().fallback_service(files.not_found_service(ServeFile::new(not_found)))
    } else {
        Router::new().fallback_service(files)
    };
    service.layer(axum::middleware::from_fn(log_request))
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    // stdout is line-buffered: each request is one line in the app's logs.
    println!("{method} {path} {}", response.status().as_u16());
    response
}

pub async fn run(args: ServeStaticArgs) -> ExitCode {
    let Some(port) = args.port else {
        eprintln!("cloudport serve-static: PORT is not set (the platform sets it; or pass --port)");
        return ExitCode::from(2);
    };
    if !args.dir.is_dir() {
        eprintln!(
            "cloudport serve-static: {} is not a folder",
            args.dir.display()
        );
        return ExitCode::from(2);
    }
    let addr = SocketAddr::new(args.host, port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cloudport serve-static: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "serving {} on http://{addr}",
        args.dir
            .canonicalize()
            .unwrap_or(args.dir.clone())
            .display()
    );
    let served = axum::serve(listener, router(args.dir))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    match served {
        Ok(()) => {
            println!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cloudport serve-static: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
