//! REST API `/api/v1`. Every handler authenticates through the [`Actor`]
//! extractor and then calls a console service method, which authorises.
//! Routes are declared through utoipa so the OpenAPI document lists each one.

use super::AppState;
use crate::console::port::client_address;
use crate::console::Actor;
use crate::error::{Error, ErrorBody};
use app::model::*;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use datacenter::api::{
    BuildSettings, Certificate, CertificateUpload, DetectRequest, DetectedPlan, GatewayInfo,
    HttpRoute, HttpRouteSpec, LogPage, LogQuery, ReplicaInfo, RouteStats, TcpRoute, TcpRouteSpec,
    Version, WebhookOutcome,
};
use futures_util::StreamExt;
use tower_http::limit::RequestBodyLimitLayer;
use tower_sessions::Session;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult<T> = Result<T, Error>;

/// The caller's network address, for login throttling.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_address(parts)))
    }
}

impl OptionalFromRequestParts<AppState> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(state.console.authenticate(parts).await.ok())
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state.console.authenticate(parts).await
    }
}

/// JSON body whose rejections are JSON errors too.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Body<T>(T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(T);

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        Error::Invalid(r.body_text())
    }
}
impl From<PathRejection> for Error {
    fn from(r: PathRejection) -> Self {
        Error::Invalid(r.body_text())
    }
}
impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::Invalid(r.body_text())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Cloudport console API", description = "Users, teams, roles, API tokens and the audit log."),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health and metrics"),
        (name = "auth", description = "Signing in and the caller's account"),
        (name = "users", description = "Platform users (platform admins)"),
        (name = "teams", description = "Teams and their members"),
        (name = "tokens", description = "Personal API tokens"),
        (name = "audit", description = "The audit log"),
        (name = "datacenters", description = "Datacenters and which teams may use them"),
        (name = "apps", description = "Apps, their components and operations"),
        (name = "builds", description = "Source uploads, versions, replicas, component logs, push webhooks and build detection"),
        (name = "gateway", description = "HTTP and TCP routes, TLS certificates and route traffic, per team and datacenter"),
    )
)]
struct ApiDoc;

struct BearerAuth;
impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("cloudport_session"))),
        );
    }
}

/// The REST API. Every route takes bodies of at most [`super::MAX_BODY`],
/// except the source upload and its preview, which take archives of up to
/// [`MAX_UPLOAD`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, delete_team))
        .routes(routes!(list_members, add_member))
        .routes(routes!(change_member_role, remove_member))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(audit))
        .routes(routes!(list_datacenters, add_datacenter))
        .routes(routes!(remove_datacenter))
        .routes(routes!(list_team_datacenters, open_team_datacenter))
        .routes(routes!(get_quota, set_quota))
        .routes(routes!(list_apps, create_app))
        .routes(routes!(get_app, delete_app))
        .routes(routes!(create_component))
        .routes(routes!(get_component, update_component, delete_component))
        .routes(routes!(act_on_component))
        .routes(routes!(list_events))
        .routes(routes!(get_event))
        .routes(routes!(super::ws::hub))
        .routes(routes!(list_versions))
        .routes(routes!(list_replicas))
        .routes(routes!(search_logs))
        .routes(routes!(get_webhook))
        .routes(routes!(deliver_webhook))
        .routes(routes!(detect))
        .routes(routes!(get_gateway))
        .routes(routes!(list_http_routes, create_http_route))
        .routes(routes!(update_http_route, delete_http_route))
        .routes(routes!(list_tcp_routes, create_tcp_route))
        .routes(routes!(delete_tcp_route))
        .routes(routes!(list_certificates, upload_certificate))
        .routes(routes!(delete_certificate))
        .routes(routes!(get_route_stats))
        .layer(RequestBodyLimitLayer::new(super::MAX_BODY))
        // Added after the layer above, so only the handlers' own bound applies.
        .routes(routes!(upload_source))
        .routes(routes!(detect_archive))
}

/// Ready when the console store answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "Ready", body = String), (status = 503, description = "Store unavailable")))]
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query("SELECT 1")
        .execute(&state.console.db.pool)
        .await
    {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = Me, description = "Signed in; the response sets the session cookie"),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody, description = "Too many failed attempts; see Retry-After")))]
async fn login(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(addr): ClientAddr,
    Body(creds): Body<Credentials>,
) -> ApiResult<Json<Me>> {
    Ok(Json(state.console.login(&session, &addr, creds).await?))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204, description = "Signed out")))]
async fn logout(
    State(state): State<AppState>,
    session: Session,
    actor: Option<Actor>,
) -> ApiResult<StatusCode> {
    state.console.logout(&session, actor.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<Me>> {
    Ok(Json(state.console.me(&actor).await?))
}

#[utoipa::path(put, path = "/api/v1/me/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204, description = "Changed; the caller's other sessions end"), (status = 422, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    actor: Actor,
    session: Session,
    Body(change): Body<PasswordChange>,
) -> ApiResult<StatusCode> {
    // A bearer-token call has no session of its own to keep.
    let session = actor.token_id.is_none().then_some(&session);
    state
        .console
        .change_password(&actor, session, change)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
async fn list_users(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(state.console.list_users(&actor).await?))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    Body(new): Body<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.console.create_user(&actor, new).await?),
    ))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserUpdate, params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Body(update): Body<UserUpdate>,
) -> ApiResult<Json<User>> {
    Ok(Json(state.console.update_user(&actor, id, update).await?))
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", responses((status = 200, body = Vec<Team>)))]
async fn list_teams(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<Vec<Team>>> {
    Ok(Json(state.console.list_teams(&actor).await?))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = NewTeam,
    responses((status = 201, body = Team), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_team(
    State(state): State<AppState>,
    actor: Actor,
    Body(new): Body<NewTeam>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.console.create_team(&actor, new).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}", tag = "teams", params(("team" = String, Path)),
    responses((status = 200, body = TeamDetail), (status = 404, body = ErrorBody)))]
async fn get_team(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
) -> ApiResult<Json<TeamDetail>> {
    Ok(Json(state.console.team_detail(&actor, &team).await?))
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}", tag = "teams", params(("team" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_team(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
) -> ApiResult<StatusCode> {
    state.console.delete_team(&actor, &team).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/members", tag = "teams", params(("team" = String, Path)),
    responses((status = 200, body = Vec<Member>), (status = 404, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<Member>>> {
    Ok(Json(state.console.team_members(&actor, &team).await?))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/members", tag = "teams", params(("team" = String, Path)), request_body = NewMember,
    responses((status = 201, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
    Body(new): Body<NewMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.console.add_member(&actor, &team, new).await?),
    ))
}

#[utoipa::path(put, path = "/api/v1/teams/{team}/members/{username}", tag = "teams",
    params(("team" = String, Path), ("username" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn change_member_role(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, username)): Path<(String, String)>,
    Body(change): Body<RoleChange>,
) -> ApiResult<Json<Member>> {
    Ok(Json(
        state
            .console
            .change_member_role(&actor, &team, &username, change.role)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}/members/{username}", tag = "teams",
    params(("team" = String, Path), ("username" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .console
        .remove_member(&actor, &team, &username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<ApiToken>)))]
async fn list_tokens(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(state.console.list_tokens(&actor).await?))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken, description = "The token's secret, shown this once"), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    actor: Actor,
    Body(new): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.console.create_token(&actor, new).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.console.revoke_token(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn audit(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let Query(query) = query?;
    Ok(Json(state.console.audit_entries(&actor, query).await?))
}

#[utoipa::path(get, path = "/api/v1/datacenters", tag = "datacenters", responses((status = 200, body = Vec<Datacenter>)))]
async fn list_datacenters(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<Datacenter>>> {
    Ok(Json(state.console.list_datacenters(&actor).await?))
}

#[utoipa::path(post, path = "/api/v1/datacenters", tag = "datacenters", request_body = NewDatacenter,
    responses((status = 201, body = Datacenter), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "Invalid, or the datacenter cannot be reached with that token")))]
async fn add_datacenter(
    State(state): State<AppState>,
    actor: Actor,
    Body(new): Body<NewDatacenter>,
) -> ApiResult<(StatusCode, Json<Datacenter>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.console.add_datacenter(&actor, new).await?),
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ForceParam {
    /// Remove even though components live there (the datacenter is gone for good).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(delete, path = "/api/v1/datacenters/{name}", tag = "datacenters", params(("name" = String, Path), ForceParam),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_datacenter(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    Query(f): Query<ForceParam>,
) -> ApiResult<StatusCode> {
    state
        .console
        .remove_datacenter(&actor, &name, f.force)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/datacenters", tag = "datacenters", params(("team" = String, Path)),
    responses((status = 200, body = Vec<Datacenter>), (status = 404, body = ErrorBody)))]
async fn list_team_datacenters(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<Datacenter>>> {
    Ok(Json(state.console.team_datacenters(&actor, &team).await?))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/datacenters", tag = "datacenters", params(("team" = String, Path)), request_body = OpenDatacenter,
    responses((status = 204, description = "The team may now use it"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn open_team_datacenter(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
    Body(open): Body<OpenDatacenter>,
) -> ApiResult<StatusCode> {
    state
        .console
        .open_datacenter(&actor, &team, &open.datacenter)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The team's quota in the datacenter and what it uses there now.
#[utoipa::path(get, path = "/api/v1/teams/{team}/datacenters/{datacenter}/quota", tag = "datacenters",
    params(("team" = String, Path), ("datacenter" = String, Path)),
    responses((status = 200, body = QuotaUsage), (status = 404, body = ErrorBody)))]
async fn get_quota(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
) -> ApiResult<Json<QuotaUsage>> {
    Ok(Json(state.console.quota(&actor, &team, &dc).await?))
}

/// Sets the team's quota in the datacenter (platform admins); empty fields mean no limit.
#[utoipa::path(put, path = "/api/v1/teams/{team}/datacenters/{datacenter}/quota", tag = "datacenters",
    params(("team" = String, Path), ("datacenter" = String, Path)), request_body = Quota,
    responses((status = 200, body = Quota), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_quota(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
    Body(quota): Body<Quota>,
) -> ApiResult<Json<Quota>> {
    Ok(Json(
        state.console.set_quota(&actor, &team, &dc, quota).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/apps", tag = "apps", params(("team" = String, Path)),
    responses((status = 200, body = Vec<App>), (status = 404, body = ErrorBody)))]
async fn list_apps(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<App>>> {
    Ok(Json(state.console.list_apps(&actor, &team).await?))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/apps", tag = "apps", params(("team" = String, Path)), request_body = NewApp,
    responses((status = 201, body = App), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_app(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
    Body(new): Body<NewApp>,
) -> ApiResult<(StatusCode, Json<App>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.console.create_app(&actor, &team, new).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/apps/{app}", tag = "apps", params(("team" = String, Path), ("app" = String, Path)),
    responses((status = 200, body = AppDetail), (status = 404, body = ErrorBody)))]
async fn get_app(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app)): Path<(String, String)>,
) -> ApiResult<Json<AppDetail>> {
    Ok(Json(state.console.app_detail(&actor, &team, &app).await?))
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}/apps/{app}", tag = "apps", params(("team" = String, Path), ("app" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "It still has components")))]
async fn delete_app(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.console.delete_app(&actor, &team, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/apps/{app}/components", tag = "apps", params(("team" = String, Path), ("app" = String, Path)),
    request_body = NewComponent,
    responses((status = 201, body = EventRef, description = "Created; follow the event"), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 502, body = ErrorBody, description = "The datacenter cannot be reached")))]
async fn create_component(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app)): Path<(String, String)>,
    Body(new): Body<NewComponent>,
) -> ApiResult<(StatusCode, Json<EventRef>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .console
                .create_component(&actor, &team, &app, new)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/apps/{app}/components/{name}", tag = "apps",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = PlacedComponent), (status = 404, body = ErrorBody)))]
async fn get_component(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
) -> ApiResult<Json<PlacedComponent>> {
    Ok(Json(
        state.console.component(&actor, &team, &app, &name).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/teams/{team}/apps/{app}/components/{name}", tag = "apps",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)), request_body = datacenter::api::ComponentSpec,
    responses((status = 200, body = EventRef), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_component(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
    Body(spec): Body<datacenter::api::ComponentSpec>,
) -> ApiResult<Json<EventRef>> {
    if spec.name != name {
        return Err(Error::Invalid("A component cannot be renamed.".into()));
    }
    Ok(Json(
        state
            .console
            .update_component(&actor, &team, &app, spec)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}/apps/{app}/components/{name}", tag = "apps",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 202, body = EventRef, description = "Deletion queued; follow the event"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_component(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<EventRef>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(
            state
                .console
                .delete_component(&actor, &team, &app, &name)
                .await?,
        ),
    ))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/apps/{app}/components/{name}/actions", tag = "apps",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)), request_body = ComponentAction,
    responses((status = 202, body = EventRef, description = "Queued; follow the event"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn act_on_component(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
    Body(action): Body<ComponentAction>,
) -> ApiResult<(StatusCode, Json<EventRef>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(
            state
                .console
                .act_on_component(&actor, &team, &app, &name, action)
                .await?,
        ),
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventFilter {
    app: Option<String>,
    component: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/events", tag = "apps", params(("team" = String, Path), EventFilter),
    responses((status = 200, body = Vec<PlacedEvent>), (status = 404, body = ErrorBody)))]
async fn list_events(
    State(state): State<AppState>,
    actor: Actor,
    Path(team): Path<String>,
    Query(f): Query<EventFilter>,
) -> ApiResult<Json<Vec<PlacedEvent>>> {
    Ok(Json(
        state
            .console
            .team_events(&actor, &team, f.app, f.component)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/events/{datacenter}/{id}", tag = "apps",
    params(("team" = String, Path), ("datacenter" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = datacenter::api::EventWithLines), (status = 404, body = ErrorBody)))]
async fn get_event(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc, id)): Path<(String, String, String)>,
) -> ApiResult<Json<datacenter::api::EventWithLines>> {
    Ok(Json(
        state.console.team_event(&actor, &team, &dc, &id).await?,
    ))
}

/// A body taken as raw bytes, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct RawBody(Vec<u8>);

/// The largest source archive the console takes (100 MiB).
pub const MAX_UPLOAD: usize = datacenter::client::MAX_UPLOAD;
/// The largest webhook delivery (1 MiB, like every other body).
pub const MAX_HOOK_BODY: usize = super::MAX_BODY;
/// Uploads received at once: each may hold up to [`MAX_UPLOAD`] in memory
/// until the datacenter has it.
const UPLOAD_SLOTS: usize = 4;
static UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(UPLOAD_SLOTS);

/// A JSON error with a status the console's error type does not carry.
pub fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(app::error::AppError::new(code, message))).into_response()
}

/// 413 with a JSON error body, naming the limit.
pub fn too_large(limit: usize) -> Response {
    let size = if limit % (1024 * 1024) == 0 {
        format!("{} MiB", limit / (1024 * 1024))
    } else {
        format!("{} KiB", limit / 1024)
    };
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("The request body is larger than {size}, the most this route takes."),
    )
}

enum ReadError {
    TooLarge,
    Broken(String),
}

/// Reads a whole request body, refusing it as soon as it passes `limit`
/// (or at once, when its declared length does).
async fn read_limited(
    body: axum::body::Body,
    limit: usize,
    hint: Option<usize>,
) -> Result<axum::body::Bytes, ReadError> {
    let mut stream = body.into_data_stream();
    if hint.is_some_and(|n| n > limit) {
        discard_rest(stream, limit);
        return Err(ReadError::TooLarge);
    }
    let mut buf = Vec::with_capacity(hint.unwrap_or(0).min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReadError::Broken(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            discard_rest(stream, limit);
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

/// Reads and throws away what is left of a refused body, in the background
/// and bounded (at most `cap` bytes, at most a minute): a client that is
/// still sending then reads the 413 instead of finding the connection reset.
/// Nothing is kept; past the bound the connection is simply dropped.
fn discard_rest(mut stream: axum::body::BodyDataStream, cap: usize) {
    tokio::spawn(async move {
        let mut seen = 0usize;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
                if seen > cap {
                    break;
                }
            }
        })
        .await;
    });
}

fn content_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[utoipa::path(put, path = "/api/v1/teams/{team}/apps/{app}/components/{name}/source", tag = "builds",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    request_body(content = RawBody, content_type = "application/octet-stream", description = "The source as a tar.gz or zip archive, at most 100 MiB"),
    responses((status = 202, body = EventRef, description = "Stored; the build event follows, and deploys the new version when it succeeds"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody, description = "Larger than 100 MiB"),
              (status = 422, body = ErrorBody, description = "Empty, or not an archive the builder can read"), (status = 429, body = ErrorBody, description = "Too many uploads at once; see Retry-After")))]
async fn upload_source(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (archive, body) = match ArchiveBody::accept(&headers, body).await {
        Ok(accepted) => accepted,
        Err(refused) => return refused,
    };
    let result = state
        .console
        .upload_source(&actor, &team, &app, &name, archive.read(body))
        .await;
    archive.answer(result.map(|ev| (StatusCode::ACCEPTED, Json(ev))))
}

/// The body of a route that takes a source archive (an upload, or one to
/// preview): at most [`MAX_UPLOAD`], refused at once when its declared
/// length says more, read only when the console service asks for it (once
/// it has authorised the caller), and holding one of [`UPLOAD_SLOTS`] while
/// the request lasts, which bounds the memory all of them may take.
struct ArchiveBody {
    hint: Option<usize>,
    over: std::sync::atomic::AtomicBool,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

impl ArchiveBody {
    /// The archive and its still unread body, or the answer that refuses
    /// it: `413` for a declared length over the limit (what is sent anyway
    /// is thrown away), `429` when no slot frees up within 30 s.
    async fn accept(
        headers: &axum::http::HeaderMap,
        body: axum::body::Body,
    ) -> Result<(ArchiveBody, axum::body::Body), Response> {
        let hint = content_length(headers);
        if hint.is_some_and(|n| n > MAX_UPLOAD) {
            discard_rest(body.into_data_stream(), MAX_UPLOAD);
            return Err(too_large(MAX_UPLOAD));
        }
        let Ok(Ok(slot)) =
            tokio::time::timeout(std::time::Duration::from_secs(30), UPLOADS.acquire()).await
        else {
            return Err(Error::RateLimited { retry_after: 10 }.into_response());
        };
        let archive = ArchiveBody {
            hint,
            over: Default::default(),
            _slot: slot,
        };
        Ok((archive, body))
    }

    /// Reads `body`, for the console service to await.
    async fn read(&self, body: axum::body::Body) -> ApiResult<axum::body::Bytes> {
        read_limited(body, MAX_UPLOAD, self.hint)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => {
                    self.over.store(true, std::sync::atomic::Ordering::Relaxed);
                    Error::Invalid("The archive is larger than 100 MiB.".into())
                }
                ReadError::Broken(why) => Error::Invalid(format!("The upload broke off: {why}")),
            })
    }

    /// The answer to the request: `413` when the body passed the limit
    /// while it was read, whatever the service made of that.
    fn answer(&self, result: ApiResult<impl IntoResponse>) -> Response {
        match result {
            Ok(ok) => ok.into_response(),
            Err(_) if self.over.load(std::sync::atomic::Ordering::Relaxed) => too_large(MAX_UPLOAD),
            Err(e) => e.into_response(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/apps/{app}/components/{name}/versions", tag = "builds",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<Version>, description = "Newest first"), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Vec<Version>>> {
    Ok(Json(
        state.console.versions(&actor, &team, &app, &name).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/apps/{app}/components/{name}/replicas", tag = "builds",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<ReplicaInfo>), (status = 404, body = ErrorBody)))]
async fn list_replicas(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Vec<ReplicaInfo>>> {
    Ok(Json(
        state.console.replicas(&actor, &team, &app, &name).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/apps/{app}/components/{name}/logs", tag = "builds",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path), LogQuery),
    responses((status = 200, body = LogPage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn search_logs(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Json<LogPage>> {
    let Query(query) = query?;
    Ok(Json(
        state
            .console
            .component_logs(&actor, &team, &app, &name, query)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/apps/{app}/components/{name}/webhook", tag = "builds",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = WebhookEndpoint, description = "Point a GitHub, GitLab or Gitea push webhook at `url` with `secret`"),
              (status = 403, body = ErrorBody, description = "Team admins only; never to read-only tokens"), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, app, name)): Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<WebhookEndpoint>> {
    let origin = state.console.public_origin(&headers);
    Ok(Json(
        state
            .console
            .webhook(&actor, &team, &app, &name, &origin)
            .await?,
    ))
}

/// Push webhook deliveries from GitHub, GitLab or Gitea. Public: no session
/// or token; the component's datacenter checks the signature
/// (`X-Hub-Signature-256`, `X-Gitea-Signature` or `X-Gitlab-Token`).
#[utoipa::path(post, path = "/api/v1/hooks/{team}/{app}/{name}", tag = "builds",
    params(("team" = String, Path), ("app" = String, Path), ("name" = String, Path)),
    request_body(content = RawBody, content_type = "application/json", description = "The Git host's push payload, as the Git host sent it (the signature covers these exact bytes), at most 1 MiB"),
    responses((status = 202, body = WebhookOutcome), (status = 401, body = ErrorBody, description = "The signature does not match"),
              (status = 404, body = ErrorBody, description = "No such component"), (status = 413, body = ErrorBody)))]
async fn deliver_webhook(
    State(state): State<AppState>,
    Path((team, app, name)): Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let body = match read_limited(body, MAX_HOOK_BODY, content_length(&headers)).await {
        Ok(b) => b,
        Err(ReadError::TooLarge) => return too_large(MAX_HOOK_BODY),
        Err(ReadError::Broken(why)) => {
            return Error::Invalid(format!("The delivery broke off: {why}")).into_response()
        }
    };
    let passed: Vec<(String, String)> = datacenter::client::WEBHOOK_HEADERS
        .iter()
        .filter_map(|h| {
            let v = headers.get(*h)?.to_str().ok()?;
            Some((h.to_string(), v.to_string()))
        })
        .collect();
    match state
        .console
        .deliver_webhook(&team, &app, &name, body, passed)
        .await
    {
        Ok(outcome) => (StatusCode::ACCEPTED, Json(outcome)).into_response(),
        Err(Error::Unauthorized) => json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The webhook signature does not match.",
        ),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/datacenters/{datacenter}/detect", tag = "builds",
    params(("team" = String, Path), ("datacenter" = String, Path)), request_body = DetectRequest,
    responses((status = 200, body = DetectedPlan, description = "What the builder would do with the source"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn detect(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
    Body(req): Body<DetectRequest>,
) -> ApiResult<Json<DetectedPlan>> {
    Ok(Json(state.console.detect(&actor, &team, &dc, req).await?))
}

/// The preview of an upload: what the builder would do with this archive,
/// before the component exists. Authorised like `detect`, bounded like the
/// source upload; the datacenter unpacks it into a scratch folder, detects,
/// and keeps nothing.
#[utoipa::path(post, path = "/api/v1/teams/{team}/datacenters/{datacenter}/detect/archive", tag = "builds",
    params(("team" = String, Path), ("datacenter" = String, Path), BuildSettings),
    request_body(content = RawBody, content_type = "application/octet-stream", description = "The source as a tar.gz or zip archive, at most 100 MiB"),
    responses((status = 200, body = DetectedPlan, description = "What the builder would do with the archive"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody, description = "Larger than 100 MiB"),
              (status = 422, body = ErrorBody, description = "Empty, not an archive the builder can read, an unsafe one, or nothing it knows how to run"),
              (status = 429, body = ErrorBody, description = "Too many uploads at once; see Retry-After")))]
async fn detect_archive(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
    query: Result<Query<BuildSettings>, QueryRejection>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let build = match query {
        Ok(Query(build)) => build,
        Err(e) => return Error::from(e).into_response(),
    };
    let (archive, body) = match ArchiveBody::accept(&headers, body).await {
        Ok(accepted) => accepted,
        Err(refused) => return refused,
    };
    let result = state
        .console
        .detect_archive(&actor, &team, &dc, build, archive.read(body))
        .await;
    archive.answer(result.map(Json))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/datacenters/{datacenter}/gateway", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path)),
    responses((status = 200, body = GatewayInfo, description = "Where the gateway listens and the suffix of default domains"),
              (status = 404, body = ErrorBody, description = "No such team, or the team is not opened in the datacenter")))]
async fn get_gateway(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
) -> ApiResult<Json<GatewayInfo>> {
    Ok(Json(state.console.gateway_info(&actor, &team, &dc).await?))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path)),
    responses((status = 200, body = Vec<HttpRoute>), (status = 404, body = ErrorBody)))]
async fn list_http_routes(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
) -> ApiResult<Json<Vec<HttpRoute>>> {
    Ok(Json(state.console.http_routes(&actor, &team, &dc).await?))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path)), request_body = HttpRouteSpec,
    responses((status = 201, body = HttpRoute),
              (status = 403, body = ErrorBody, description = "Team developers and up; never read-only tokens"),
              (status = 404, body = ErrorBody, description = "No such team or datacenter, or a target component the team does not have"),
              (status = 409, body = ErrorBody, description = "Another route (possibly of another team) holds the domain and path"),
              (status = 422, body = ErrorBody, description = "The datacenter refuses the domain, path or targets")))]
async fn create_http_route(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
    Body(spec): Body<HttpRouteSpec>,
) -> ApiResult<(StatusCode, Json<HttpRoute>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .console
                .create_http_route(&actor, &team, &dc, spec)
                .await?,
        ),
    ))
}

#[utoipa::path(put, path = "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http/{id}", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path), ("id" = String, Path)), request_body = HttpRouteSpec,
    responses((status = 200, body = HttpRoute), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_http_route(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc, id)): Path<(String, String, String)>,
    Body(spec): Body<HttpRouteSpec>,
) -> ApiResult<Json<HttpRoute>> {
    Ok(Json(
        state
            .console
            .update_http_route(&actor, &team, &dc, &id, spec)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http/{id}", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_http_route(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .console
        .delete_http_route(&actor, &team, &dc, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/datacenters/{datacenter}/routes/tcp", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path)),
    responses((status = 200, body = Vec<TcpRoute>), (status = 404, body = ErrorBody)))]
async fn list_tcp_routes(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
) -> ApiResult<Json<Vec<TcpRoute>>> {
    Ok(Json(state.console.tcp_routes(&actor, &team, &dc).await?))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/datacenters/{datacenter}/routes/tcp", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path)), request_body = TcpRouteSpec,
    responses((status = 201, body = TcpRoute), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The gateway port is taken"), (status = 422, body = ErrorBody)))]
async fn create_tcp_route(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
    Body(spec): Body<TcpRouteSpec>,
) -> ApiResult<(StatusCode, Json<TcpRoute>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .console
                .create_tcp_route(&actor, &team, &dc, spec)
                .await?,
        ),
    ))
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}/datacenters/{datacenter}/routes/tcp/{id}", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_tcp_route(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .console
        .delete_tcp_route(&actor, &team, &dc, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/datacenters/{datacenter}/certificates", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path)),
    responses((status = 200, body = Vec<Certificate>, description = "Names, domains and validity; keys are never returned"), (status = 404, body = ErrorBody)))]
async fn list_certificates(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Certificate>>> {
    Ok(Json(state.console.certificates(&actor, &team, &dc).await?))
}

#[utoipa::path(post, path = "/api/v1/teams/{team}/datacenters/{datacenter}/certificates", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path)),
    request_body(content = CertificateUpload, description = "The certificate (chain) and its private key, PEM, at most 64 KiB each; one of the same name is replaced"),
    responses((status = 201, body = Certificate),
              (status = 403, body = ErrorBody, description = "Team admins and up; never read-only tokens"),
              (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "Not a PEM certificate and matching key, or too large")))]
async fn upload_certificate(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
    Body(upload): Body<CertificateUpload>,
) -> ApiResult<(StatusCode, Json<Certificate>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .console
                .upload_certificate(&actor, &team, &dc, upload)
                .await?,
        ),
    ))
}

#[utoipa::path(delete, path = "/api/v1/teams/{team}/datacenters/{datacenter}/certificates/{name}", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_certificate(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .console
        .delete_certificate(&actor, &team, &dc, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/teams/{team}/datacenters/{datacenter}/routes/stats", tag = "gateway",
    params(("team" = String, Path), ("datacenter" = String, Path)),
    responses((status = 200, body = Vec<RouteStats>, description = "Traffic of the team's routes (by id) and default domains (`default:<app>/<component>`) since the gateway started"),
              (status = 404, body = ErrorBody)))]
async fn get_route_stats(
    State(state): State<AppState>,
    actor: Actor,
    Path((team, dc)): Path<(String, String)>,
) -> ApiResult<Json<Vec<RouteStats>>> {
    Ok(Json(state.console.route_stats(&actor, &team, &dc).await?))
}
