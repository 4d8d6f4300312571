//! The console store: one sqlx pool over SQLite (default) or PostgreSQL, with
//! the same schema and queries on both. Queries use `$n` placeholders, which
//! both engines accept; timestamps are unix milliseconds and flags are 0/1
//! integers so values decode the same way from either engine.

use crate::error::{Error, Result};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Opens `url`, or the SQLite file `console.db` under `data_dir` when no URL
    /// is given, and brings the schema up to date.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Db> {
        install_default_drivers();
        let url = match url {
            Some(u) => u.to_string(),
            None => format!("sqlite://{}?mode=rwc", data_dir.join("console.db").display()),
        };
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(Error::Invalid(format!(
                "unsupported database URL (use sqlite:// or postgres://): {}",
                url.split(':').next().unwrap_or("")
            )));
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        opts = match backend {
            // One writer at a time is SQLite's model; WAL lets readers proceed
            // meanwhile and busy_timeout queues writers instead of failing them.
            Backend::Sqlite => opts.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")
                        .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => opts.max_connections(16),
        };
        let pool = opts.connect(&url).await.map_err(|e| Error::internal(format!("cannot open database: {e}")))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| Error::internal(format!("migration failed: {e}")))?;
        Ok(Db { pool, backend })
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// True when `e` is a unique-constraint violation, on either engine.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}
