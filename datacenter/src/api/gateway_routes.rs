//! `/v1/gateway`, `/v1/teams/{team}/routes/…` and `/v1/teams/{team}/certificates`:
//! what the gateway serves, as teams manage it. Domain checks across teams
//! happen in `routing`, so every caller gets them.

use super::routes::{Body, Path};
use super::*;
use crate::error::Result;
use crate::service::Datacenter;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

type Dc = State<Arc<Datacenter>>;

/// Where the gateway listens and the suffix of default domains.
#[utoipa::path(get, path = "/v1/gateway",
    responses((status = 200, body = GatewayInfo), (status = 404, body = ApiError)))]
pub async fn gateway(State(dc): Dc) -> Result<Json<GatewayInfo>> {
    Ok(Json(dc.gateway_info()?))
}

#[utoipa::path(get, path = "/v1/teams/{team}/routes/http", params(("team" = String, Path)),
    responses((status = 200, body = Vec<HttpRoute>)))]
pub async fn list_http_routes(
    State(dc): Dc,
    Path(team): Path<String>,
) -> Result<Json<Vec<HttpRoute>>> {
    Ok(Json(dc.routes.http_routes(Some(&team)).await?))
}

/// Adds a route; it serves within moments. A domain another team uses is refused (409).
#[utoipa::path(post, path = "/v1/teams/{team}/routes/http", params(("team" = String, Path)),
    request_body = HttpRouteSpec,
    responses((status = 201, body = HttpRoute), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn create_http_route(
    State(dc): Dc,
    Path(team): Path<String>,
    Body(spec): Body<HttpRouteSpec>,
) -> Result<(StatusCode, Json<HttpRoute>)> {
    let route = dc.create_http_route(&team, spec).await?;
    tracing::info!(%team, id = %route.id, domain = %route.spec.domain, "HTTP route added");
    Ok((StatusCode::CREATED, Json(route)))
}

#[utoipa::path(put, path = "/v1/teams/{team}/routes/http/{id}", params(("team" = String, Path), ("id" = String, Path)),
    request_body = HttpRouteSpec,
    responses((status = 200, body = HttpRoute), (status = 404, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn update_http_route(
    State(dc): Dc,
    Path((team, id)): Path<(String, String)>,
    Body(spec): Body<HttpRouteSpec>,
) -> Result<Json<HttpRoute>> {
    Ok(Json(dc.update_http_route(&team, &id, spec).await?))
}

#[utoipa::path(delete, path = "/v1/teams/{team}/routes/http/{id}", params(("team" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = HttpRoute), (status = 404, body = ApiError)))]
pub async fn delete_http_route(
    State(dc): Dc,
    Path((team, id)): Path<(String, String)>,
) -> Result<Json<HttpRoute>> {
    Ok(Json(dc.delete_http_route(&team, &id).await?))
}

#[utoipa::path(get, path = "/v1/teams/{team}/routes/tcp", params(("team" = String, Path)),
    responses((status = 200, body = Vec<TcpRoute>)))]
pub async fn list_tcp_routes(
    State(dc): Dc,
    Path(team): Path<String>,
) -> Result<Json<Vec<TcpRoute>>> {
    Ok(Json(dc.routes.tcp_routes(Some(&team)).await?))
}

/// Forwards a gateway port; a port already in use is refused (409).
#[utoipa::path(post, path = "/v1/teams/{team}/routes/tcp", params(("team" = String, Path)),
    request_body = TcpRouteSpec,
    responses((status = 201, body = TcpRoute), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn create_tcp_route(
    State(dc): Dc,
    Path(team): Path<String>,
    Body(spec): Body<TcpRouteSpec>,
) -> Result<(StatusCode, Json<TcpRoute>)> {
    let route = dc.create_tcp_route(&team, spec).await?;
    tracing::info!(%team, id = %route.id, port = route.spec.listen_port, "TCP route added");
    Ok((StatusCode::CREATED, Json(route)))
}

#[utoipa::path(delete, path = "/v1/teams/{team}/routes/tcp/{id}", params(("team" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = TcpRoute), (status = 404, body = ApiError)))]
pub async fn delete_tcp_route(
    State(dc): Dc,
    Path((team, id)): Path<(String, String)>,
) -> Result<Json<TcpRoute>> {
    Ok(Json(dc.delete_tcp_route(&team, &id).await?))
}

#[utoipa::path(get, path = "/v1/teams/{team}/certificates", params(("team" = String, Path)),
    responses((status = 200, body = Vec<Certificate>)))]
pub async fn list_certificates(
    State(dc): Dc,
    Path(team): Path<String>,
) -> Result<Json<Vec<Certificate>>> {
    Ok(Json(dc.certificates(&team).await?))
}

/// Checks the PEM pair (the key must belong to the certificate) and stores
/// it, the key sealed; one of the same name is replaced.
#[utoipa::path(post, path = "/v1/teams/{team}/certificates", params(("team" = String, Path)),
    request_body = CertificateUpload,
    responses((status = 201, body = Certificate), (status = 422, body = ApiError)))]
pub async fn upload_certificate(
    State(dc): Dc,
    Path(team): Path<String>,
    Body(upload): Body<CertificateUpload>,
) -> Result<(StatusCode, Json<Certificate>)> {
    let cert = dc.upload_certificate(&team, upload).await?;
    tracing::info!(%team, name = %cert.name, domains = ?cert.domains, "certificate stored");
    Ok((StatusCode::CREATED, Json(cert)))
}

#[utoipa::path(delete, path = "/v1/teams/{team}/certificates/{name}", params(("team" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Certificate), (status = 404, body = ApiError)))]
pub async fn delete_certificate(
    State(dc): Dc,
    Path((team, name)): Path<(String, String)>,
) -> Result<Json<Certificate>> {
    Ok(Json(dc.delete_certificate(&team, &name).await?))
}

#[utoipa::path(get, path = "/v1/teams/{team}/routes/stats", params(("team" = String, Path)),
    responses((status = 200, body = Vec<RouteStats>)))]
pub async fn route_stats(State(dc): Dc, Path(team): Path<String>) -> Json<Vec<RouteStats>> {
    Json(dc.route_stats(&team))
}
