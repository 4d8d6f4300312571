//! tower-sessions store on the console database. Besides the session data it
//! keeps the signed-in user's id in its own column, so all sessions of a user
//! can be ended at once (password change, account disabled).

use crate::db::Db;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// The session key holding the signed-in user's id.
pub const USER_ID_KEY: &str = "uid";

#[derive(Debug, Clone)]
pub struct SqlSessionStore {
    db: Db,
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

impl SqlSessionStore {
    pub fn new(db: Db) -> Self {
        SqlSessionStore { db }
    }

    /// Ends every session of `user_id` except `keep`.
    pub async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&Id>,
    ) -> Result<u64, sqlx::Error> {
        let keep = keep.map(|id| id.to_string()).unwrap_or_default();
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn delete_expired(&self) -> Result<u64, sqlx::Error> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn upsert(&self, record: &Record, insert_only: bool) -> Result<bool, sqlx::Error> {
        let data = serde_json::to_string(&record.data).unwrap_or_else(|_| "{}".into());
        let user_id = record.data.get(USER_ID_KEY).and_then(|v| v.as_i64());
        let sql = if insert_only {
            "INSERT INTO sessions (id, user_id, data, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING"
        } else {
            "INSERT INTO sessions (id, user_id, data, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, data = excluded.data, expires_at = excluded.expires_at"
        };
        let done = sqlx::query(sql)
            .bind(record.id.to_string())
            .bind(user_id)
            .bind(data)
            .bind(record.expiry_date.unix_timestamp())
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait::async_trait]
impl SessionStore for SqlSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // Ids are 128 random bits; a collision is astronomically unlikely but
        // must never hand one user another's session.
        while !self.upsert(record, true).await.map_err(backend)? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.upsert(record, false).await.map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(backend)?;
        let Some((data, expires_at)) = row else {
            return Ok(None);
        };
        let data =
            serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date = time::OffsetDateTime::from_unix_timestamp(expires_at).map_err(backend)?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.db.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
