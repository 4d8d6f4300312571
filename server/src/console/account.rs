//! Signing in and out, the caller's own profile, and password changes.

use super::audit::Record;
use super::passwords;
use super::rbac::Action;
use super::{Actor, ConsoleService};
use crate::error::{Error, Result};
use crate::sessions::USER_ID_KEY;
use app::model::{Credentials, Me, PasswordChange, Role, TeamMembership};
use tower_sessions::Session;

impl ConsoleService {
    pub async fn me(&self, actor: &Actor) -> Result<Me> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT t.name, m.role FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1 ORDER BY t.name",
        )
        .bind(actor.user_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(Me {
            id: actor.user_id,
            username: actor.username.clone(),
            is_admin: actor.is_admin,
            teams: rows
                .into_iter()
                .filter_map(|(team, role)| {
                    Role::parse(&role).map(|role| TeamMembership { team, role })
                })
                .collect(),
        })
    }

    /// Checks the credentials, throttles guessing, and on success binds the
    /// session — under a fresh id, so a planted session id is worthless.
    pub async fn login(&self, session: &Session, address: &str, creds: Credentials) -> Result<Me> {
        let username = creds.username.trim().to_lowercase();
        if username.is_empty()
            || username.len() > 64
            || creds.password.len() > passwords::MAX_PASSWORD
        {
            return Err(Error::Unauthorized);
        }
        if let Some(retry_after) = self.limiter.check(&username, address) {
            self.record(Record {
                actor_id: None,
                actor: &username,
                action: "auth.login",
                target: &username,
                team: None,
                result: "denied",
                detail: format!("rate limited from {address}"),
            })
            .await;
            return Err(Error::RateLimited { retry_after });
        }
        let row: Option<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT id, password_hash, is_admin, disabled FROM users WHERE username = $1",
        )
        .bind(&username)
        .fetch_optional(&self.db.pool)
        .await?;
        let stored = row.as_ref().map(|r| r.1.clone());
        let password_ok = passwords::verify(creds.password, stored).await?;
        let user = match row {
            Some((id, _, is_admin, 0)) if password_ok => Some((id, is_admin != 0)),
            _ => None,
        };
        let Some((user_id, is_admin)) = user else {
            self.limiter.record_failure(&username, address);
            self.record(Record {
                actor_id: None,
                actor: &username,
                action: "auth.login",
                target: &username,
                team: None,
                result: "failed",
                detail: format!("wrong credentials from {address}"),
            })
            .await;
            return Err(Error::Unauthorized);
        };
        self.limiter.record_success(&username);
        session.cycle_id().await.map_err(Error::internal)?;
        session
            .insert(USER_ID_KEY, user_id)
            .await
            .map_err(Error::internal)?;
        let actor = Actor {
            user_id,
            username: username.clone(),
            is_admin,
            scope: Default::default(),
            token_id: None,
        };
        self.record(Record {
            actor_id: Some(user_id),
            actor: &username,
            action: "auth.login",
            target: &username,
            team: None,
            result: "ok",
            detail: format!("from {address}"),
        })
        .await;
        self.me(&actor).await
    }

    pub async fn logout(&self, session: &Session, actor: Option<&Actor>) -> Result<()> {
        session.flush().await.map_err(Error::internal)?;
        if let Some(actor) = actor {
            self.audited(actor, "auth.logout", &actor.username, None, Ok(()))
                .await?;
        }
        Ok(())
    }

    /// Changes the caller's password; every other session of theirs ends.
    pub async fn change_password(
        &self,
        actor: &Actor,
        session: Option<&Session>,
        change: PasswordChange,
    ) -> Result<()> {
        let result = async {
            self.authorize(actor, Action::ChangeOwnPassword, None)
                .await?;
            let (stored,): (String,) =
                sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
                    .bind(actor.user_id)
                    .fetch_one(&self.db.pool)
                    .await?;
            if !passwords::verify(change.current_password, Some(stored)).await? {
                return Err(Error::Invalid("The current password is wrong.".into()));
            }
            passwords::validate_new_password(&change.new_password)?;
            let hash = passwords::hash(change.new_password).await?;
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(actor.user_id)
                .execute(&self.db.pool)
                .await?;
            let keep = match session {
                Some(s) => {
                    s.cycle_id().await.map_err(Error::internal)?;
                    // Persist now so the new id exists before the others are swept.
                    s.save().await.map_err(Error::internal)?;
                    s.id()
                }
                None => None,
            };
            self.sessions
                .delete_user_sessions(actor.user_id, keep.as_ref())
                .await?;
            Ok(())
        }
        .await;
        self.audited(actor, "account.password", &actor.username, None, result)
            .await
    }
}
