//! The datacenter's desired state and history: components (with their
//! encrypted secrets), their versions, events with their log lines, and the
//! gateway's routes and certificates.

pub mod components;
pub mod db;
pub mod events;
pub mod routes;
pub mod versions;

pub use db::{now_ms, Backend, Db, Migrations};

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
