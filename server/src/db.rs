//! The console store: opened through the shared sqlx helper with the
//! console's own migrations.

use crate::error::{Error, Result};
pub use datacenter::store::db::{is_unique_violation, now_ms, Backend, Db, Migrations};
use std::path::Path;

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// Opens `url`, or `console.db` under `data_dir`.
pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Db> {
    Db::open(url, &data_dir.join("console.db"), &MIGRATIONS)
        .await
        .map_err(|e| match e {
            datacenter::store::db::OpenError::Scheme(_) => Error::Invalid(e.to_string()),
            other => Error::internal(other),
        })
}
