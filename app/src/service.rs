//! The port through which server functions reach the console. The `server`
//! crate implements it; server functions find it in the Leptos context and stay
//! thin, so no database or session code lives in the UI crate.
//!
//! Every method receives the request so the implementation can identify the
//! caller (session cookie or API token) and authorise the call itself: the UI
//! never decides what a user may do.

use crate::error::AppError;
use crate::model::*;
use http::request::Parts;
use std::sync::Arc;

pub type ConsoleHandle = Arc<dyn Console>;

#[async_trait::async_trait]
pub trait Console: Send + Sync + 'static {
    async fn me(&self, req: &Parts) -> Result<Me, AppError>;
    async fn login(&self, req: &Parts, creds: Credentials) -> Result<Me, AppError>;
    async fn logout(&self, req: &Parts) -> Result<(), AppError>;
    async fn change_password(&self, req: &Parts, change: PasswordChange) -> Result<(), AppError>;

    async fn list_users(&self, req: &Parts) -> Result<Vec<User>, AppError>;
    async fn create_user(&self, req: &Parts, user: NewUser) -> Result<User, AppError>;
    async fn update_user(&self, req: &Parts, id: i64, update: UserUpdate)
        -> Result<User, AppError>;

    async fn list_teams(&self, req: &Parts) -> Result<Vec<Team>, AppError>;
    async fn create_team(&self, req: &Parts, team: NewTeam) -> Result<Team, AppError>;
    async fn team_detail(&self, req: &Parts, team: &str) -> Result<TeamDetail, AppError>;
    async fn delete_team(&self, req: &Parts, team: &str) -> Result<(), AppError>;
    async fn add_member(
        &self,
        req: &Parts,
        team: &str,
        member: NewMember,
    ) -> Result<Member, AppError>;
    async fn change_member_role(
        &self,
        req: &Parts,
        team: &str,
        username: &str,
        role: Role,
    ) -> Result<Member, AppError>;
    async fn remove_member(&self, req: &Parts, team: &str, username: &str) -> Result<(), AppError>;

    async fn list_tokens(&self, req: &Parts) -> Result<Vec<ApiToken>, AppError>;
    async fn create_token(&self, req: &Parts, token: NewToken) -> Result<CreatedToken, AppError>;
    async fn revoke_token(&self, req: &Parts, id: i64) -> Result<(), AppError>;

    async fn audit(&self, req: &Parts, query: AuditQuery) -> Result<Vec<AuditEntry>, AppError>;

    async fn list_datacenters(&self, req: &Parts) -> Result<Vec<Datacenter>, AppError>;
    async fn add_datacenter(&self, req: &Parts, new: NewDatacenter)
        -> Result<Datacenter, AppError>;
    async fn remove_datacenter(&self, req: &Parts, name: &str, force: bool)
        -> Result<(), AppError>;
    async fn team_datacenters(&self, req: &Parts, team: &str) -> Result<Vec<Datacenter>, AppError>;
    async fn open_datacenter(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
    ) -> Result<(), AppError>;

    async fn team_quotas(&self, req: &Parts, team: &str) -> Result<Vec<QuotaUsage>, AppError>;
    async fn set_team_quota(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        quota: Quota,
    ) -> Result<(), AppError>;

    async fn list_apps(&self, req: &Parts, team: &str) -> Result<Vec<App>, AppError>;
    async fn create_app(&self, req: &Parts, team: &str, app: NewApp) -> Result<App, AppError>;
    async fn app_detail(&self, req: &Parts, team: &str, app: &str) -> Result<AppDetail, AppError>;
    async fn create_component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        new: NewComponent,
    ) -> Result<EventRef, AppError>;
    async fn act_on_component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
        action: ComponentAction,
    ) -> Result<EventRef, AppError>;
    async fn delete_component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<EventRef, AppError>;
    async fn component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<PlacedComponent, AppError>;
    async fn update_component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        spec: datacenter::api::ComponentSpec,
    ) -> Result<EventRef, AppError>;
    async fn team_events(
        &self,
        req: &Parts,
        team: &str,
        app: Option<String>,
    ) -> Result<Vec<PlacedEvent>, AppError>;
    async fn team_event(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        id: &str,
    ) -> Result<datacenter::api::EventWithLines, AppError>;

    async fn component_rights(&self, req: &Parts, team: &str) -> Result<ComponentRights, AppError>;
    async fn versions(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<Vec<datacenter::api::Version>, AppError>;
    async fn replicas(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<Vec<datacenter::api::ReplicaInfo>, AppError>;
    async fn component_logs(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
        query: datacenter::api::LogQuery,
    ) -> Result<datacenter::api::LogPage, AppError>;
    /// The hook URL is built on the console's public URL, or on this
    /// request's host.
    async fn webhook(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<WebhookEndpoint, AppError>;
    async fn detect(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        request: datacenter::api::DetectRequest,
    ) -> Result<datacenter::api::DetectedPlan, AppError>;

    /// The team's gateway in every datacenter it is opened in: routes,
    /// certificates, traffic and what the caller may change.
    async fn team_gateway(&self, req: &Parts, team: &str) -> Result<TeamGateway, AppError>;
    async fn create_http_route(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        spec: datacenter::api::HttpRouteSpec,
    ) -> Result<datacenter::api::HttpRoute, AppError>;
    async fn delete_http_route(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        id: &str,
    ) -> Result<(), AppError>;
    async fn create_tcp_route(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        spec: datacenter::api::TcpRouteSpec,
    ) -> Result<datacenter::api::TcpRoute, AppError>;
    async fn delete_tcp_route(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        id: &str,
    ) -> Result<(), AppError>;
    async fn upload_certificate(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        upload: datacenter::api::CertificateUpload,
    ) -> Result<datacenter::api::Certificate, AppError>;
    async fn delete_certificate(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        name: &str,
    ) -> Result<(), AppError>;
}
