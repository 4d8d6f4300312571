//! The console's services: accounts and sessions, users, teams and members,
//! API tokens, the audit log, and the one authorisation gate they all pass.
//! REST handlers and the UI's server functions both call these methods, so a
//! rule holds whichever way a request comes in.

pub mod account;
pub mod apps;
pub mod audit;
pub mod builds;
pub mod datacenters;
pub mod gateway;
pub mod limiter;
pub mod passwords;
pub mod port;
pub mod quotas;
pub mod rbac;
pub mod teams;
pub mod tokens;
pub mod users;
pub mod validate;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::sessions::{SqlSessionStore, USER_ID_KEY};
use app::model::{Role, TokenScope};
use http::request::Parts;
use limiter::LoginLimiter;
use rbac::{decide, Action, Decision, Subject};
use tower_sessions::Session;

/// Who is making a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub is_admin: bool,
    /// `Full` for browser sessions; a token's own scope otherwise.
    pub scope: TokenScope,
    pub token_id: Option<i64>,
}

/// A team as the authorisation gate needs it.
#[derive(Debug, Clone)]
pub struct TeamRef {
    pub id: i64,
    pub name: String,
}

pub struct ConsoleService {
    pub db: Db,
    pub sessions: SqlSessionStore,
    pub limiter: LoginLimiter,
    /// Seals datacenter tokens at rest.
    pub secrets: datacenter::crypto::SecretBox,
    pub clients:
        std::sync::Mutex<std::collections::HashMap<String, datacenter::client::DatacenterClient>>,
    pub poll_failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// `--public-url`, once set: the origin of the webhook URLs handed out.
    pub public_url: std::sync::OnceLock<String>,
}

impl ConsoleService {
    pub fn new(db: Db, limits: limiter::Limits, secrets: datacenter::crypto::SecretBox) -> Self {
        ConsoleService {
            sessions: SqlSessionStore::new(db.clone()),
            db,
            limiter: LoginLimiter::new(limits),
            secrets,
            clients: Default::default(),
            poll_failures: Default::default(),
            public_url: Default::default(),
        }
    }

    /// Identifies the caller from a bearer token or the session cookie.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Actor> {
        if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or(Error::Unauthorized)?;
            return self.actor_from_token(token).await;
        }
        let session = parts
            .extensions
            .get::<Session>()
            .ok_or(Error::Unauthorized)?;
        let user_id: Option<i64> = session.get(USER_ID_KEY).await.map_err(Error::internal)?;
        let user_id = user_id.ok_or(Error::Unauthorized)?;
        let row: Option<(String, i64, i64)> =
            sqlx::query_as("SELECT username, is_admin, disabled FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.db.pool)
                .await?;
        match row {
            Some((username, is_admin, 0)) => Ok(Actor {
                user_id,
                username,
                is_admin: is_admin != 0,
                scope: TokenScope::Full,
                token_id: None,
            }),
            _ => Err(Error::Unauthorized),
        }
    }

    /// The single authorisation gate. `team` is the team the action targets,
    /// if any. Refused mutations are written to the audit log.
    pub async fn authorize(
        &self,
        actor: &Actor,
        action: Action,
        team: Option<&TeamRef>,
    ) -> Result<()> {
        let team_role = match team {
            Some(t) => self.role_in(actor.user_id, t.id).await?,
            None => None,
        };
        let subject = Subject {
            is_platform_admin: actor.is_admin,
            scope: actor.scope,
            team_role,
        };
        match decide(subject, action) {
            Decision::Allow => Ok(()),
            Decision::Deny => {
                let why = if actor.scope == TokenScope::ReadOnly && action.mutates() {
                    "This API token is read-only.".to_string()
                } else {
                    format!("You may not do this ({}).", action.name())
                };
                Err(Error::Forbidden(why))
            }
            Decision::Hide => Err(team_not_found(team.map(|t| t.name.as_str()).unwrap_or(""))),
        }
    }

    pub async fn role_in(&self, user_id: i64, team_id: i64) -> Result<Option<Role>> {
        let role: Option<(String,)> =
            sqlx::query_as("SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2")
                .bind(team_id)
                .bind(user_id)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(role.and_then(|(r,)| Role::parse(&r)))
    }

    pub async fn find_team(&self, name: &str) -> Result<TeamRef> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM teams WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.db.pool)
                .await?;
        row.map(|(id, name)| TeamRef { id, name })
            .ok_or_else(|| team_not_found(name))
    }

    /// Removes expired sessions and old audit records; runs periodically.
    pub async fn housekeeping(&self, audit_retention_days: i64) -> Result<()> {
        let sessions = self.sessions.delete_expired().await?;
        let audit = self.prune_audit(audit_retention_days).await?;
        tracing::debug!(sessions, audit, "housekeeping");
        Ok(())
    }
}

pub fn team_not_found(name: &str) -> Error {
    Error::NotFound(format!("There is no team “{name}” that you can see."))
}
