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
    async fn update_user(&self, req: &Parts, id: i64, update: UserUpdate) -> Result<User, AppError>;

    async fn list_teams(&self, req: &Parts) -> Result<Vec<Team>, AppError>;
    async fn create_team(&self, req: &Parts, team: NewTeam) -> Result<Team, AppError>;
    async fn team_detail(&self, req: &Parts, team: &str) -> Result<TeamDetail, AppError>;
    async fn delete_team(&self, req: &Parts, team: &str) -> Result<(), AppError>;
    async fn add_member(&self, req: &Parts, team: &str, member: NewMember) -> Result<Member, AppError>;
    async fn change_member_role(&self, req: &Parts, team: &str, username: &str, role: Role) -> Result<Member, AppError>;
    async fn remove_member(&self, req: &Parts, team: &str, username: &str) -> Result<(), AppError>;

    async fn list_tokens(&self, req: &Parts) -> Result<Vec<ApiToken>, AppError>;
    async fn create_token(&self, req: &Parts, token: NewToken) -> Result<CreatedToken, AppError>;
    async fn revoke_token(&self, req: &Parts, id: i64) -> Result<(), AppError>;

    async fn audit(&self, req: &Parts, query: AuditQuery) -> Result<Vec<AuditEntry>, AppError>;
}
