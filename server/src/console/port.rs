//! The console as the UI's server functions see it (`app::service::Console`):
//! authenticate the request, then call the same service methods the REST API
//! uses.

use super::{Actor, ConsoleService};
use crate::error::{Error, Result};
use app::error::AppError;
use app::model::*;
use app::service::Console;
use axum::extract::ConnectInfo;
use http::request::Parts;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_sessions::Session;

/// The client address used for login throttling: the TCP peer.
pub fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn session_of(parts: &Parts) -> Result<&Session> {
    parts
        .extensions
        .get::<Session>()
        .ok_or_else(|| Error::internal("session layer missing"))
}

/// Newtype so the port can be implemented on a shared service.
#[derive(Clone)]
pub struct ConsolePort(pub Arc<ConsoleService>);

impl ConsolePort {
    async fn actor(&self, req: &Parts) -> Result<Actor, AppError> {
        Ok(self.0.authenticate(req).await?)
    }
}

#[async_trait::async_trait]
impl Console for ConsolePort {
    async fn me(&self, req: &Parts) -> Result<Me, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.me(&actor).await?)
    }

    async fn login(&self, req: &Parts, creds: Credentials) -> Result<Me, AppError> {
        Ok(self
            .0
            .login(session_of(req)?, &client_address(req), creds)
            .await?)
    }

    async fn logout(&self, req: &Parts) -> Result<(), AppError> {
        let actor = self.0.authenticate(req).await.ok();
        Ok(self.0.logout(session_of(req)?, actor.as_ref()).await?)
    }

    async fn change_password(&self, req: &Parts, change: PasswordChange) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .change_password(&actor, req.extensions.get::<Session>(), change)
            .await?)
    }

    async fn list_users(&self, req: &Parts) -> Result<Vec<User>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.list_users(&actor).await?)
    }

    async fn create_user(&self, req: &Parts, user: NewUser) -> Result<User, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.create_user(&actor, user).await?)
    }

    async fn update_user(
        &self,
        req: &Parts,
        id: i64,
        update: UserUpdate,
    ) -> Result<User, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.update_user(&actor, id, update).await?)
    }

    async fn list_teams(&self, req: &Parts) -> Result<Vec<Team>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.list_teams(&actor).await?)
    }

    async fn create_team(&self, req: &Parts, team: NewTeam) -> Result<Team, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.create_team(&actor, team).await?)
    }

    async fn team_detail(&self, req: &Parts, team: &str) -> Result<TeamDetail, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.team_detail(&actor, team).await?)
    }

    async fn delete_team(&self, req: &Parts, team: &str) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.delete_team(&actor, team).await?)
    }

    async fn add_member(
        &self,
        req: &Parts,
        team: &str,
        member: NewMember,
    ) -> Result<Member, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.add_member(&actor, team, member).await?)
    }

    async fn change_member_role(
        &self,
        req: &Parts,
        team: &str,
        username: &str,
        role: Role,
    ) -> Result<Member, AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .change_member_role(&actor, team, username, role)
            .await?)
    }

    async fn remove_member(&self, req: &Parts, team: &str, username: &str) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.remove_member(&actor, team, username).await?)
    }

    async fn list_tokens(&self, req: &Parts) -> Result<Vec<ApiToken>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.list_tokens(&actor).await?)
    }

    async fn create_token(&self, req: &Parts, token: NewToken) -> Result<CreatedToken, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.create_token(&actor, token).await?)
    }

    async fn revoke_token(&self, req: &Parts, id: i64) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.revoke_token(&actor, id).await?)
    }

    async fn audit(&self, req: &Parts, query: AuditQuery) -> Result<Vec<AuditEntry>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.audit_entries(&actor, query).await?)
    }

    async fn list_datacenters(&self, req: &Parts) -> Result<Vec<Datacenter>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.list_datacenters(&actor).await?)
    }

    async fn add_datacenter(
        &self,
        req: &Parts,
        new: NewDatacenter,
    ) -> Result<Datacenter, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.add_datacenter(&actor, new).await?)
    }

    async fn remove_datacenter(
        &self,
        req: &Parts,
        name: &str,
        force: bool,
    ) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.remove_datacenter(&actor, name, force).await?)
    }

    async fn team_datacenters(&self, req: &Parts, team: &str) -> Result<Vec<Datacenter>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.team_datacenters(&actor, team).await?)
    }

    async fn open_datacenter(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
    ) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.open_datacenter(&actor, team, datacenter).await?)
    }

    async fn team_quotas(&self, req: &Parts, team: &str) -> Result<Vec<QuotaUsage>, AppError> {
        let actor = self.actor(req).await?;
        let mut out = Vec::new();
        for dc in self.0.team_datacenters(&actor, team).await? {
            // A datacenter that does not answer shows its state in the list; its use is unknown.
            if let Ok(q) = self.0.quota(&actor, team, &dc.name).await {
                out.push(q);
            }
        }
        Ok(out)
    }

    async fn set_team_quota(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        quota: Quota,
    ) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        self.0.set_quota(&actor, team, datacenter, quota).await?;
        Ok(())
    }

    async fn list_apps(&self, req: &Parts, team: &str) -> Result<Vec<App>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.list_apps(&actor, team).await?)
    }

    async fn create_app(&self, req: &Parts, team: &str, app: NewApp) -> Result<App, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.create_app(&actor, team, app).await?)
    }

    async fn app_detail(&self, req: &Parts, team: &str, app: &str) -> Result<AppDetail, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.app_detail(&actor, team, app).await?)
    }

    async fn create_component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        new: NewComponent,
    ) -> Result<EventRef, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.create_component(&actor, team, app, new).await?)
    }

    async fn act_on_component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
        action: ComponentAction,
    ) -> Result<EventRef, AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .act_on_component(&actor, team, app, name, action)
            .await?)
    }

    async fn delete_component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<EventRef, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.delete_component(&actor, team, app, name).await?)
    }

    async fn team_events(
        &self,
        req: &Parts,
        team: &str,
        app: Option<String>,
    ) -> Result<Vec<PlacedEvent>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.team_events(&actor, team, app, None).await?)
    }

    async fn team_event(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        id: &str,
    ) -> Result<datacenter::api::EventWithLines, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.team_event(&actor, team, datacenter, id).await?)
    }

    async fn component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<PlacedComponent, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.component(&actor, team, app, name).await?)
    }

    async fn update_component(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        spec: datacenter::api::ComponentSpec,
    ) -> Result<EventRef, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.update_component(&actor, team, app, spec).await?)
    }

    async fn component_rights(&self, req: &Parts, team: &str) -> Result<ComponentRights, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.component_rights(&actor, team).await?)
    }

    async fn versions(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<Vec<datacenter::api::Version>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.versions(&actor, team, app, name).await?)
    }

    async fn replicas(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<Vec<datacenter::api::ReplicaInfo>, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.replicas(&actor, team, app, name).await?)
    }

    async fn component_logs(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
        query: datacenter::api::LogQuery,
    ) -> Result<datacenter::api::LogPage, AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .component_logs(&actor, team, app, name, query)
            .await?)
    }

    async fn webhook(
        &self,
        req: &Parts,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<WebhookEndpoint, AppError> {
        let actor = self.actor(req).await?;
        let origin = self.0.public_origin(&req.headers);
        Ok(self.0.webhook(&actor, team, app, name, &origin).await?)
    }

    async fn detect(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        request: datacenter::api::DetectRequest,
    ) -> Result<datacenter::api::DetectedPlan, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.detect(&actor, team, datacenter, request).await?)
    }

    async fn team_gateway(&self, req: &Parts, team: &str) -> Result<TeamGateway, AppError> {
        let actor = self.actor(req).await?;
        Ok(self.0.team_gateway(&actor, team).await?)
    }

    async fn create_http_route(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        spec: datacenter::api::HttpRouteSpec,
    ) -> Result<datacenter::api::HttpRoute, AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .create_http_route(&actor, team, datacenter, spec)
            .await?)
    }

    async fn delete_http_route(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        id: &str,
    ) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .delete_http_route(&actor, team, datacenter, id)
            .await?)
    }

    async fn create_tcp_route(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        spec: datacenter::api::TcpRouteSpec,
    ) -> Result<datacenter::api::TcpRoute, AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .create_tcp_route(&actor, team, datacenter, spec)
            .await?)
    }

    async fn delete_tcp_route(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        id: &str,
    ) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .delete_tcp_route(&actor, team, datacenter, id)
            .await?)
    }

    async fn upload_certificate(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        upload: datacenter::api::CertificateUpload,
    ) -> Result<datacenter::api::Certificate, AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .upload_certificate(&actor, team, datacenter, upload)
            .await?)
    }

    async fn delete_certificate(
        &self,
        req: &Parts,
        team: &str,
        datacenter: &str,
        name: &str,
    ) -> Result<(), AppError> {
        let actor = self.actor(req).await?;
        Ok(self
            .0
            .delete_certificate(&actor, team, datacenter, name)
            .await?)
    }
}
