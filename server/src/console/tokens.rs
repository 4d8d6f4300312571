//! Personal API tokens: shown once, stored as a hash, revocable.

use super::rbac::Action;
use super::{passwords, validate, Actor, ConsoleService};
use crate::db::now_ms;
use crate::error::{Error, Result};
use app::model::{ApiToken, CreatedToken, NewToken, TokenScope};

const MAX_TOKENS_PER_USER: i64 = 100;
/// `last_used_at` is refreshed at most this often, so authenticated reads do
/// not each become a write.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

impl ConsoleService {
    pub async fn list_tokens(&self, actor: &Actor) -> Result<Vec<ApiToken>> {
        self.authorize(actor, Action::ListOwnTokens, None).await?;
        let rows: Vec<(i64, String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, name, prefix, scope, created_at, last_used_at FROM api_tokens \
             WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id DESC",
        )
        .bind(actor.user_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, name, prefix, scope, created_at, last_used_at)| ApiToken {
                    id,
                    name,
                    prefix,
                    scope: TokenScope::parse(&scope).unwrap_or(TokenScope::ReadOnly),
                    created_at,
                    last_used_at,
                },
            )
            .collect())
    }

    pub async fn create_token(&self, actor: &Actor, new: NewToken) -> Result<CreatedToken> {
        let target = new.name.trim().to_string();
        let result = async {
            self.authorize(actor, Action::CreateOwnToken, None).await?;
            let name = validate::label("token name", &new.name, 64)?;
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(actor.user_id)
            .fetch_one(&self.db.pool)
            .await?;
            if count >= MAX_TOKENS_PER_USER {
                return Err(Error::Conflict(format!(
                    "You have {count} tokens; revoke some first."
                )));
            }
            let token = passwords::new_token();
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO api_tokens (user_id, name, token_hash, prefix, scope, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(actor.user_id)
            .bind(&name)
            .bind(passwords::token_hash(&token))
            .bind(&token[..8])
            .bind(new.scope.as_str())
            .bind(now_ms())
            .fetch_one(&self.db.pool)
            .await?;
            Ok(CreatedToken {
                id,
                name,
                scope: new.scope,
                token,
            })
        }
        .await;
        self.audited(actor, "token.create", &target, None, result)
            .await
    }

    pub async fn revoke_token(&self, actor: &Actor, id: i64) -> Result<()> {
        let result = async {
            self.authorize(actor, Action::RevokeOwnToken, None).await?;
            let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .bind(actor.user_id)
                .execute(&self.db.pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!("You have no token #{id}.")));
            }
            Ok(())
        }
        .await;
        self.audited(actor, "token.revoke", &format!("#{id}"), None, result)
            .await
    }

    pub async fn actor_from_token(&self, token: &str) -> Result<Actor> {
        if !token.starts_with("cpt_") || token.len() > 128 {
            return Err(Error::Unauthorized);
        }
        let row: Option<(i64, i64, String, i64, i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT t.id, u.id, u.username, u.is_admin, u.disabled, t.scope, t.last_used_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(passwords::token_hash(token))
        .fetch_optional(&self.db.pool)
        .await?;
        let Some((token_id, user_id, username, is_admin, 0, scope, last_used)) = row else {
            return Err(Error::Unauthorized);
        };
        let now = now_ms();
        if last_used.is_none_or(|t| now - t > LAST_USED_GRANULARITY_MS) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(token_id)
                .execute(&self.db.pool)
                .await?;
        }
        Ok(Actor {
            user_id,
            username,
            is_admin: is_admin != 0,
            scope: TokenScope::parse(&scope).unwrap_or(TokenScope::ReadOnly),
            token_id: Some(token_id),
        })
    }
}
