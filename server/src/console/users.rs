//! Platform users, managed by platform admins.

use super::rbac::Action;
use super::{passwords, validate, Actor, ConsoleService};
use crate::db::{is_unique_violation, now_ms};
use crate::error::{Error, Result};
use app::model::{NewUser, User, UserUpdate};

type UserRow = (i64, String, i64, i64, i64);
const USER_COLS: &str = "SELECT id, username, is_admin, disabled, created_at FROM users";

fn to_user((id, username, is_admin, disabled, created_at): UserRow) -> User {
    User {
        id,
        username,
        is_admin: is_admin != 0,
        disabled: disabled != 0,
        created_at,
    }
}

impl ConsoleService {
    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<User>> {
        self.authorize(actor, Action::ListUsers, None).await?;
        let rows: Vec<UserRow> = sqlx::query_as(&format!("{USER_COLS} ORDER BY username"))
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.into_iter().map(to_user).collect())
    }

    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<User> {
        let username = new.username.trim().to_lowercase();
        let result = async {
            self.authorize(actor, Action::CreateUser, None).await?;
            validate::username(&username)?;
            passwords::validate_new_password(&new.password)?;
            self.insert_user(&username, new.password, new.is_admin)
                .await
        }
        .await;
        self.audited(actor, "user.create", &username, None, result)
            .await
    }

    /// Inserts a user without an actor; also used to create the first admin.
    pub async fn insert_user(
        &self,
        username: &str,
        password: String,
        is_admin: bool,
    ) -> Result<User> {
        let hash = passwords::hash(password).await?;
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (username, password_hash, is_admin, disabled, created_at) VALUES ($1, $2, $3, 0, $4) \
             RETURNING id, username, is_admin, disabled, created_at",
        )
        .bind(username)
        .bind(hash)
        .bind(is_admin as i64)
        .bind(now_ms())
        .fetch_one(&self.db.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!("A user named “{username}” already exists."))
            } else {
                e.into()
            }
        })?;
        Ok(to_user(row))
    }

    pub async fn update_user(&self, actor: &Actor, id: i64, update: UserUpdate) -> Result<User> {
        let target = self
            .user_by_id(id)
            .await
            .map(|u| u.username)
            .unwrap_or_else(|_| format!("#{id}"));
        let result = async {
            self.authorize(actor, Action::UpdateUser, None).await?;
            let user = self.user_by_id(id).await?;
            let loses_admin = user.is_admin && (update.is_admin == Some(false) || update.disabled == Some(true));
            if loses_admin && id == actor.user_id {
                return Err(Error::Conflict("You cannot disable yourself or drop your own admin rights.".into()));
            }
            if loses_admin && self.active_admins().await? <= 1 {
                return Err(Error::Conflict("The platform needs at least one active admin.".into()));
            }
            let hash = match update.password {
                Some(p) => {
                    passwords::validate_new_password(&p)?;
                    Some(passwords::hash(p).await?)
                }
                None => None,
            };
            sqlx::query(
                "UPDATE users SET is_admin = COALESCE($1, is_admin), disabled = COALESCE($2, disabled), \
                 password_hash = COALESCE($3, password_hash) WHERE id = $4",
            )
            .bind(update.is_admin.map(|b| b as i64))
            .bind(update.disabled.map(|b| b as i64))
            .bind(hash.clone())
            .bind(id)
            .execute(&self.db.pool)
            .await?;
            // A disabled account or a reset password ends the user's sessions.
            if update.disabled == Some(true) || hash.is_some() {
                self.sessions.delete_user_sessions(id, None).await?;
            }
            self.user_by_id(id).await
        }
        .await;
        self.audited(actor, "user.update", &target, None, result)
            .await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<User> {
        let row: Option<UserRow> = sqlx::query_as(&format!("{USER_COLS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(to_user)
            .ok_or_else(|| Error::NotFound(format!("There is no user #{id}.")))
    }

    pub async fn user_id_by_name(&self, username: &str) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE username = $1")
            .bind(username.trim().to_lowercase())
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(|r| r.0)
            .ok_or_else(|| Error::NotFound(format!("There is no user named “{username}”.")))
    }

    async fn active_admins(&self) -> Result<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0")
                .fetch_one(&self.db.pool)
                .await?;
        Ok(n)
    }

    /// Creates the platform admin `admin` when the console has no users yet.
    /// Returns the password when one was generated, to be shown once.
    pub async fn ensure_admin(&self, password: Option<String>) -> Result<Option<String>> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.db.pool)
            .await?;
        if n > 0 {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) => (p, false),
            None => (passwords::random_string(20), true),
        };
        passwords::validate_new_password(&password)
            .map_err(|e| Error::Invalid(format!("CLOUDPORT_ADMIN_PASSWORD: {e}")))?;
        self.insert_user("admin", password.clone(), true).await?;
        self.record(super::audit::Record {
            actor_id: None,
            actor: "system",
            action: "user.create",
            target: "admin",
            team: None,
            result: "ok",
            detail: "first platform admin".into(),
        })
        .await;
        Ok(generated.then_some(password))
    }
}
