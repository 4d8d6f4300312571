//! The console's HTTP surface: REST API, UI pages and server functions,
//! static assets, health and metrics, assembled into one axum router.

pub mod assets;
pub mod forms;
pub mod guard;
pub mod metrics;
pub mod rest;
pub mod ws;

use crate::console::port::ConsolePort;
use crate::console::ConsoleService;
use app::service::ConsoleHandle;
use axum::extract::FromRef;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Bounds every request body (JSON, forms, server-function calls), except
/// source uploads ([`rest::MAX_UPLOAD`]).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub console: Arc<ConsoleService>,
    pub metrics: Arc<metrics::Metrics>,
    pub leptos: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

pub struct HttpOptions {
    /// Mark the session cookie `Secure` (the console is reached over HTTPS).
    pub secure_cookies: bool,
    pub session_idle: Duration,
}

pub fn router(state: AppState, opts: HttpOptions) -> Router {
    let port: ConsoleHandle = Arc::new(ConsolePort(state.console.clone()));
    let context = move || provide_context(port.clone());
    let leptos = state.leptos.clone();
    let shell = move || app::shell(leptos.clone());
    let routes = generate_route_list(app::App);

    let (api, openapi) = rest::router().split_for_parts();
    let openapi = Arc::new(openapi);

    let pages = Router::<AppState>::new()
        .leptos_routes_with_context(&state, routes, context.clone(), shell.clone())
        .fallback(guard::not_found(context, shell))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_login,
        ));

    let sessions = SessionManagerLayer::new(state.console.sessions.clone())
        .with_name("cloudport_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(opts.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(opts.session_idle).unwrap_or(time::Duration::hours(12)),
        ));

    // Bodies are bounded per route: the REST router bounds its own (the
    // source upload takes more); everything else here takes MAX_BODY.
    let rest_of_site = Router::<AppState>::new()
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { axum::Json(openapi.as_ref().clone()) }),
        )
        .route("/login", axum::routing::post(forms::login))
        .route("/logout", axum::routing::post(forms::logout))
        .route("/pkg/{*file}", axum::routing::get(assets::pkg))
        .route("/favicon.svg", axum::routing::get(assets::favicon))
        .merge(pages)
        .layer(RequestBodyLimitLayer::new(MAX_BODY));

    Router::new()
        .merge(api)
        .merge(rest_of_site)
        // After routing, so latency is labelled with the matched route pattern.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::middleware::map_response(guard::json_payload_too_large))
        .layer(axum::middleware::from_fn(guard::refuse_foreign_origin))
        .layer(sessions)
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}
