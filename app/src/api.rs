//! Server functions: the UI's calls into the console. Each one only forwards to
//! the [`Console`](crate::service::Console) port, which authenticates and
//! authorises the caller.

use crate::error::AppError;
use crate::model::*;
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn console() -> Result<(crate::service::ConsoleHandle, http::request::Parts), AppError> {
    let console = use_context::<crate::service::ConsoleHandle>()
        .ok_or_else(|| AppError::new("internal", "console service missing"))?;
    let parts = use_context::<http::request::Parts>()
        .ok_or_else(|| AppError::new("internal", "request missing"))?;
    Ok((console, parts))
}

#[server(prefix = "/rpc", endpoint = "me")]
pub async fn get_me() -> Result<Option<Me>, AppError> {
    let (c, req) = console()?;
    match c.me(&req).await {
        Ok(me) => Ok(Some(me)),
        Err(e) if e.is_unauthorized() => Ok(None),
        Err(e) => Err(e),
    }
}

#[server(prefix = "/rpc", endpoint = "login")]
pub async fn login(username: String, password: String) -> Result<(), AppError> {
    let (c, req) = console()?;
    c.login(&req, Credentials { username, password }).await?;
    leptos_axum::redirect("/");
    Ok(())
}

#[server(prefix = "/rpc", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let (c, req) = console()?;
    c.logout(&req).await?;
    leptos_axum::redirect("/login");
    Ok(())
}

#[server(prefix = "/rpc", endpoint = "change_password")]
pub async fn change_password(current_password: String, new_password: String, confirm_password: String) -> Result<(), AppError> {
    if new_password != confirm_password {
        return Err(AppError::new("invalid", "The new passwords do not match."));
    }
    let (c, req) = console()?;
    c.change_password(&req, PasswordChange { current_password, new_password }).await
}

#[server(prefix = "/rpc", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<User>, AppError> {
    let (c, req) = console()?;
    c.list_users(&req).await
}

#[server(prefix = "/rpc", endpoint = "create_user")]
pub async fn create_user(username: String, password: String, #[server(default)] is_admin: Option<String>) -> Result<User, AppError> {
    let (c, req) = console()?;
    c.create_user(&req, NewUser { username, password, is_admin: is_admin.is_some() }).await
}

#[server(prefix = "/rpc", endpoint = "set_user_disabled")]
pub async fn set_user_disabled(id: i64, disabled: bool) -> Result<User, AppError> {
    let (c, req) = console()?;
    c.update_user(&req, id, UserUpdate { disabled: Some(disabled), ..Default::default() }).await
}

#[server(prefix = "/rpc", endpoint = "list_teams")]
pub async fn list_teams() -> Result<Vec<Team>, AppError> {
    let (c, req) = console()?;
    c.list_teams(&req).await
}

#[server(prefix = "/rpc", endpoint = "create_team")]
pub async fn create_team(name: String, #[server(default)] display_name: Option<String>) -> Result<Team, AppError> {
    let (c, req) = console()?;
    let display_name = display_name.filter(|d| !d.trim().is_empty());
    c.create_team(&req, NewTeam { name, display_name }).await
}

#[server(prefix = "/rpc", endpoint = "team_detail")]
pub async fn get_team_detail(team: String) -> Result<TeamDetail, AppError> {
    let (c, req) = console()?;
    c.team_detail(&req, &team).await
}

#[server(prefix = "/rpc", endpoint = "delete_team")]
pub async fn delete_team(team: String, confirm: String) -> Result<(), AppError> {
    if confirm != team {
        return Err(AppError::new("invalid", "Type the team's name to confirm its deletion."));
    }
    let (c, req) = console()?;
    c.delete_team(&req, &team).await?;
    leptos_axum::redirect("/teams");
    Ok(())
}

#[server(prefix = "/rpc", endpoint = "add_member")]
pub async fn add_member(team: String, username: String, role: String) -> Result<Member, AppError> {
    let (c, req) = console()?;
    let role = Role::parse(&role).ok_or_else(|| AppError::new("invalid", "Unknown role."))?;
    c.add_member(&req, &team, NewMember { username, role }).await
}

#[server(prefix = "/rpc", endpoint = "change_member_role")]
pub async fn change_member_role(team: String, username: String, role: String) -> Result<Member, AppError> {
    let (c, req) = console()?;
    let role = Role::parse(&role).ok_or_else(|| AppError::new("invalid", "Unknown role."))?;
    c.change_member_role(&req, &team, &username, role).await
}

#[server(prefix = "/rpc", endpoint = "remove_member")]
pub async fn remove_member(team: String, username: String) -> Result<(), AppError> {
    let (c, req) = console()?;
    c.remove_member(&req, &team, &username).await
}

#[server(prefix = "/rpc", endpoint = "list_tokens")]
pub async fn list_tokens() -> Result<Vec<ApiToken>, AppError> {
    let (c, req) = console()?;
    c.list_tokens(&req).await
}

#[server(prefix = "/rpc", endpoint = "create_token")]
pub async fn create_token(name: String, scope: String) -> Result<CreatedToken, AppError> {
    let (c, req) = console()?;
    let scope = TokenScope::parse(&scope).ok_or_else(|| AppError::new("invalid", "Unknown scope."))?;
    c.create_token(&req, NewToken { name, scope }).await
}

#[server(prefix = "/rpc", endpoint = "revoke_token")]
pub async fn revoke_token(id: i64) -> Result<(), AppError> {
    let (c, req) = console()?;
    c.revoke_token(&req, id).await
}

#[server(prefix = "/rpc", endpoint = "audit")]
pub async fn audit(#[server(default)] team: Option<String>, #[server(default)] before: Option<i64>) -> Result<Vec<AuditEntry>, AppError> {
    let (c, req) = console()?;
    let team = team.filter(|t| !t.is_empty());
    c.audit(&req, AuditQuery { team, before, limit: Some(100) }).await
}
