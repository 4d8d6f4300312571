//! Prometheus metrics for the console: requests by route pattern, method and
//! status, and latency by route (the same registry type as a datacenter's).

use super::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use datacenter::api::metrics::{RequestLabels, RouteLabels};
use std::time::Instant;

pub use datacenter::api::metrics::Metrics;

pub fn console_metrics() -> Metrics {
    Metrics::new("cloudport")
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let resp = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".into());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    resp
}
