//! One sqlx pool over SQLite (default) or PostgreSQL, with the same queries on
//! both: `$n` placeholders (both engines accept them), unix-ms integer
//! timestamps and 0/1 integer flags, so values decode alike from either.
//! The console store and the datacenter store both open theirs here.

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::migrate::Migrator;
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

/// Schema migrations for each engine (their DDL differs, the queries do not).
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL scheme `{0}` (use sqlite:// or postgres://)")]
    Scheme(String),
    #[error("cannot open the database: {0}")]
    Connect(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
}

impl Db {
    /// Opens `url`, or the SQLite file `default_sqlite` when no URL is given,
    /// and brings the schema up to date.
    pub async fn open(
        url: Option<&str>,
        default_sqlite: &Path,
        migrations: &Migrations,
    ) -> Result<Db, OpenError> {
        install_default_drivers();
        let url = match url {
            Some(u) => u.to_string(),
            None => format!("sqlite://{}?mode=rwc", default_sqlite.display()),
        };
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(OpenError::Scheme(
                url.split(':').next().unwrap_or("").to_string(),
            ));
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        opts = match backend {
            // One writer at a time is SQLite's model; WAL lets readers proceed
            // meanwhile and busy_timeout queues writers instead of failing them.
            Backend::Sqlite => opts.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => opts.max_connections(16),
        };
        let pool = opts.connect(&url).await.map_err(OpenError::Connect)?;
        let migrator = match backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        migrator.run(&pool).await.map_err(OpenError::Migrate)?;
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
