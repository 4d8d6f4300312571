//! HTTP routes of the datacenter API (`/v1`), behind bearer-token auth. Each
//! handler is declared through utoipa so `/v1/openapi.json` lists it.

use super::*;
use crate::error::{Error, Result};
use crate::service::Datacenter;
use crate::store::components::Key;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Instant;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type Dc = State<Arc<Datacenter>>;

/// Bounds every request body.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Body<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

/// A JSON body over the route's limit is a 413, any other unreadable one a
/// 422. (Raw bodies' rejections are plain 413s that `json_too_large` turns
/// into the same answer.)
impl From<axum::extract::rejection::JsonRejection> for Error {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::TooLarge(format!("the request body is too large ({})", r.body_text()))
        } else {
            Error::Invalid(vec![r.body_text()])
        }
    }
}
impl From<axum::extract::rejection::PathRejection> for Error {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        Error::Invalid(vec![r.body_text()])
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Cloudport datacenter API", description = "Components, their operations (events) and live streams of one datacenter."),
    components(schemas(ApiError, StreamRequest, StreamMessage)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;
impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// Body limits answer in plain text: the limit layer on a declared length
/// before any handler runs, the raw-body extractor once the bytes read pass
/// it. Callers get the API's JSON error instead.
async fn json_too_large(resp: Response) -> Response {
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|t| !t.as_bytes().starts_with(b"application/json"));
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && plain {
        return Error::TooLarge("the request body is over this route's limit".into())
            .into_response();
    }
    resp
}

pub fn router(dc: Arc<Datacenter>) -> Router {
    // Source archives (an upload, or one to preview) are the one large body;
    // every other route keeps the small limit.
    let uploads = OpenApiRouter::new()
        .routes(routes!(upload_source))
        .routes(routes!(detect_archive))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::builder::MAX_UPLOAD_BYTES,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            crate::builder::MAX_UPLOAD_BYTES,
        ))
        .layer(axum::middleware::map_response(json_too_large));
    let small = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(info))
        .routes(routes!(list_components))
        .routes(routes!(create_component))
        .routes(routes!(get_component, update_component, delete_component))
        .routes(routes!(act))
        .routes(routes!(list_events))
        .routes(routes!(get_event))
        .routes(routes!(list_versions))
        .routes(routes!(list_replicas))
        .routes(routes!(search_logs))
        .routes(routes!(get_webhook, deliver_webhook))
        .routes(routes!(detect))
        .routes(routes!(super::stream::stream))
        .routes(routes!(super::queue_admin::list_dead))
        .routes(routes!(super::queue_admin::requeue_dead))
        .routes(routes!(super::queue_admin::purge_dead))
        .routes(routes!(super::gateway_routes::gateway))
        .routes(routes!(
            super::gateway_routes::list_http_routes,
            super::gateway_routes::create_http_route
        ))
        .routes(routes!(
            super::gateway_routes::update_http_route,
            super::gateway_routes::delete_http_route
        ))
        .routes(routes!(
            super::gateway_routes::list_tcp_routes,
            super::gateway_routes::create_tcp_route
        ))
        .routes(routes!(super::gateway_routes::delete_tcp_route))
        .routes(routes!(
            super::gateway_routes::list_certificates,
            super::gateway_routes::upload_certificate
        ))
        .routes(routes!(super::gateway_routes::delete_certificate))
        .routes(routes!(super::gateway_routes::route_stats))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::map_response(json_too_large));
    let (protected, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(small)
        .merge(uploads)
        .split_for_parts();
    let doc = Arc::new(doc);
    // Health and metrics stay open for probes and scrapers; the rest needs the token.
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        dc.clone(),
        require_token,
    ));
    Router::new()
        .merge(protected)
        .route("/v1/openapi.json", axum::routing::get(move || async move { Json(doc.as_ref().clone()) }))
        .route_layer(axum::middleware::from_fn_with_state(dc.clone(), track))
        .fallback(|| async { Error::NotFound("no such route".into()) })
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(dc)
}

async fn require_token(State(dc): Dc, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/metrics" {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if presented.is_empty() || !dc.token_matches(presented) {
        return Error::Unauthorized.into_response();
    }
    next.run(req).await
}

async fn track(State(dc): Dc, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let resp = next.run(req).await;
    let m = &dc.metrics;
    m.requests
        .get_or_create(&metrics::RequestLabels {
            method,
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    m.latency
        .get_or_create(&metrics::RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Ready when the store answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = String), (status = 503, body = ApiError)))]
async fn healthz(State(dc): Dc) -> Result<&'static str> {
    dc.components
        .count()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok("ok")
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", body = String)))]
async fn metrics(State(dc): Dc) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render_metrics(&dc),
    )
}

/// The datacenter's registry, with the gateway's per-route figures before
/// the closing `# EOF`.
fn render_metrics(dc: &Datacenter) -> String {
    let mut out = dc.metrics.render();
    if let Some(gw) = &dc.gateway {
        let eof = out.rfind("# EOF").unwrap_or(out.len());
        let tail = out.split_off(eof);
        gw.render_metrics(&mut out);
        out.push_str(&tail);
    }
    out
}

#[utoipa::path(get, path = "/v1/info", responses((status = 200, body = DatacenterInfo), (status = 401, body = ApiError)))]
async fn info(State(dc): Dc) -> Result<Json<DatacenterInfo>> {
    Ok(Json(dc.info().await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AppFilter {
    app: Option<String>,
}

#[utoipa::path(get, path = "/v1/teams/{team}/components", params(("team" = String, Path), AppFilter),
    responses((status = 200, body = Vec<Component>), (status = 401, body = ApiError)))]
async fn list_components(
    State(dc): Dc,
    Path(team): Path<String>,
    Query(f): Query<AppFilter>,
) -> Result<Json<Vec<Component>>> {
    Ok(Json(dc.list_components(&team, f.app.as_deref()).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ActorParam {
    /// Who asks, as the console knows them.
    actor: Option<String>,
}

#[utoipa::path(post, path = "/v1/teams/{team}/apps/{app}/components", params(("team" = String, Path), ("app" = String, Path), ActorParam),
    request_body = ComponentSpec,
    responses((status = 201, body = ComponentCreated), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
async fn create_component(
    State(dc): Dc,
    Path((team, app)): Path<(String, String)>,
    Query(a): Query<ActorParam>,
    Body(spec): Body<ComponentSpec>,
) -> Result<(StatusCode, Json<ComponentCreated>)> {
    let actor = a.actor.unwrap_or_else(|| "api".into());
    Ok((
        StatusCode::CREATED,
        Json(dc.create_component(&team, &app, spec, &actor).await?),
    ))
}

#[utoipa::path(get, path = "/v1/teams/{team}/apps/{app}/components/{name}",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Component), (status = 404, body = ApiError)))]
async fn get_component(
    State(dc): Dc,
    Path((team, app, name)): Path<(String, String, String)>,
) -> Result<Json<Component>> {
    Ok(Json(dc.component(&Key { team, app, name }).await?))
}

#[utoipa::path(put, path = "/v1/teams/{team}/apps/{app}/components/{name}",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path), ActorParam), request_body = ComponentSpec,
    responses((status = 200, body = ComponentCreated), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn update_component(
    State(dc): Dc,
    Path((team, app, name)): Path<(String, String, String)>,
    Query(a): Query<ActorParam>,
    Body(spec): Body<ComponentSpec>,
) -> Result<Json<ComponentCreated>> {
    let actor = a.actor.unwrap_or_else(|| "api".into());
    Ok(Json(
        dc.update_component(&Key { team, app, name }, spec, &actor)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/teams/{team}/apps/{app}/components/{name}",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path), ActorParam),
    responses((status = 202, body = Accepted), (status = 404, body = ApiError)))]
async fn delete_component(
    State(dc): Dc,
    Path((team, app, name)): Path<(String, String, String)>,
    Query(a): Query<ActorParam>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let key = Key { team, app, name };
    dc.components.get(&key).await?;
    let event = dc
        .submit(
            &key,
            ActionKind::Delete,
            &a.actor.unwrap_or_else(|| "api".into()),
            None,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { event_id: event.id })))
}

#[utoipa::path(post, path = "/v1/teams/{team}/apps/{app}/components/{name}/actions",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)), request_body = ActionRequest,
    responses((status = 202, body = Accepted, description = "Queued; follow the event"), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn act(
    State(dc): Dc,
    Path((team, app, name)): Path<(String, String, String)>,
    Body(req): Body<ActionRequest>,
) -> Result<(StatusCode, Json<Accepted>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(dc.act(&Key { team, app, name }, req).await?),
    ))
}

#[utoipa::path(get, path = "/v1/teams/{team}/events", params(("team" = String, Path), EventQuery),
    responses((status = 200, body = Vec<Event>)))]
async fn list_events(
    State(dc): Dc,
    Path(team): Path<String>,
    Query(q): Query<EventQuery>,
) -> Result<Json<Vec<Event>>> {
    Ok(Json(
        dc.events
            .list(
                &team,
                q.app.as_deref(),
                q.component.as_deref(),
                q.limit.unwrap_or(50),
            )
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/events/{id}", params(("id" = String, Path)),
    responses((status = 200, body = EventWithLines), (status = 404, body = ApiError)))]
async fn get_event(State(dc): Dc, Path(id): Path<String>) -> Result<Json<EventWithLines>> {
    let event = dc.events.get(&id).await?;
    let lines = dc.events.lines(&id, 0).await?;
    Ok(Json(EventWithLines { event, lines }))
}

type ComponentPath = Path<(String, String, String)>;

fn key((team, app, name): (String, String, String)) -> Key {
    Key { team, app, name }
}

/// Uploads the component's source (a tar.gz or zip archive, at most 100 MiB)
/// and builds it; the build event deploys the new version once it is built.
#[utoipa::path(put, path = "/v1/teams/{team}/apps/{app}/components/{name}/source",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path), ActorParam),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "tar.gz or zip archive"),
    responses((status = 202, body = Accepted), (status = 404, body = ApiError), (status = 413, body = ApiError), (status = 422, body = ApiError)))]
async fn upload_source(
    State(dc): Dc,
    Path(p): ComponentPath,
    Query(a): Query<ActorParam>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Accepted>)> {
    let actor = a.actor.unwrap_or_else(|| "api".into());
    Ok((
        StatusCode::ACCEPTED,
        Json(dc.upload_source(&key(p), &body, &actor).await?),
    ))
}

/// Every build of the component, newest first.
#[utoipa::path(get, path = "/v1/teams/{team}/apps/{app}/components/{name}/versions",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<Version>), (status = 404, body = ApiError)))]
async fn list_versions(State(dc): Dc, Path(p): ComponentPath) -> Result<Json<Vec<Version>>> {
    let key = key(p);
    let c = dc.components.get(&key).await?;
    Ok(Json(dc.versions.list(&key, c.version.as_deref()).await?))
}

#[utoipa::path(get, path = "/v1/teams/{team}/apps/{app}/components/{name}/replicas",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<ReplicaInfo>), (status = 404, body = ApiError)))]
async fn list_replicas(State(dc): Dc, Path(p): ComponentPath) -> Result<Json<Vec<ReplicaInfo>>> {
    let c = dc.components.get(&key(p)).await?;
    Ok(Json(dc.runtime.replicas(&c).await))
}

/// Searches the component's stored output (stdout and stderr of every replica).
#[utoipa::path(get, path = "/v1/teams/{team}/apps/{app}/components/{name}/logs",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path), LogQuery),
    responses((status = 200, body = LogPage), (status = 404, body = ApiError)))]
async fn search_logs(
    State(dc): Dc,
    Path(p): ComponentPath,
    Query(q): Query<LogQuery>,
) -> Result<Json<LogPage>> {
    let key = key(p);
    dc.components.get(&key).await?;
    Ok(Json(dc.component_logs.search(&key, &q).await?))
}

/// The secret a git forge signs push deliveries with.
#[utoipa::path(get, path = "/v1/teams/{team}/apps/{app}/components/{name}/webhook",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = WebhookInfo), (status = 404, body = ApiError)))]
async fn get_webhook(State(dc): Dc, Path(p): ComponentPath) -> Result<Json<WebhookInfo>> {
    Ok(Json(WebhookInfo {
        secret: dc.components.webhook_secret(&key(p)).await?,
    }))
}

/// A push delivery from GitHub (`X-Hub-Signature-256`), Gitea
/// (`X-Gitea-Signature`) or GitLab (`X-Gitlab-Token`), relayed by the console.
#[utoipa::path(post, path = "/v1/teams/{team}/apps/{app}/components/{name}/webhook",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    request_body(content = String, content_type = "application/json"),
    responses((status = 202, body = WebhookOutcome), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn deliver_webhook(
    State(dc): Dc,
    Path(p): ComponentPath,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<WebhookOutcome>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(dc.webhook(&key(p), &headers, &body).await?),
    ))
}

/// What the builder would do with a git source (language, steps, run command).
#[utoipa::path(post, path = "/v1/detect", request_body = DetectRequest,
    responses((status = 200, body = DetectedPlan), (status = 422, body = ApiError)))]
async fn detect(State(dc): Dc, Body(req): Body<DetectRequest>) -> Result<Json<DetectedPlan>> {
    Ok(Json(dc.detect(req).await?))
}

/// What the builder would do with a source archive (a tar.gz or zip, at most
/// 100 MiB), before any component or build exists: it is unpacked with the
/// upload checks into a scratch directory, detected like a build would, and
/// removed again. The query takes the build settings' overrides.
#[utoipa::path(post, path = "/v1/detect/archive", params(BuildSettings),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "tar.gz or zip archive"),
    responses((status = 200, body = DetectedPlan), (status = 401, body = ApiError), (status = 413, body = ApiError),
              (status = 422, body = ApiError, description = "Not an archive, an unsafe one, or nothing the builder knows how to run")))]
async fn detect_archive(
    State(dc): Dc,
    Query(build): Query<BuildSettings>,
    body: axum::body::Bytes,
) -> Result<Json<DetectedPlan>> {
    Ok(Json(dc.detect_archive(body, &build).await?))
}
