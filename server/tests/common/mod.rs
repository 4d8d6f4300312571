//! A real console for tests: its own data folder and database (SQLite, or a
//! fresh database on the PostgreSQL server that `scripts/test.sh` starts),
//! listening on a free loopback port, driven over real HTTP.

#![allow(dead_code)]

pub mod certs;
pub mod datacenter_process;
pub mod deployments;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use server::config::ServeConfig;
use server::console::ConsoleService;
use std::sync::Arc;

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "member-password-1";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestConsole {
    pub base: String,
    pub console: Arc<ConsoleService>,
    _dir: tempfile::TempDir,
}

/// Runs the same test against SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(super::common::Backend::Postgres).await
                }
            }
        )*
    };
}

impl TestConsole {
    pub async fn start(backend: Backend) -> TestConsole {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut ServeConfig)) -> TestConsole {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServeConfig::for_tests(dir.path().to_path_buf());
        config.admin_password = Some(ADMIN_PASSWORD.into());
        if let Backend::Postgres = backend {
            config.database_url = Some(fresh_postgres_database().await);
        }
        tweak(&mut config);
        let running = server::start(config).await.expect("console starts");
        TestConsole {
            base: format!("http://{}", running.addr),
            console: running.console,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A client with its own cookie jar, signed in as `username`.
    pub async fn login(&self, username: &str, password: &str) -> Client {
        let client = client();
        let resp = client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "login as {username}");
        client
    }

    pub async fn admin(&self) -> Client {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Creates a user through the API as the admin; returns its id.
    pub async fn create_user(&self, admin: &Client, username: &str) -> i64 {
        let resp = admin
            .post(self.url("/api/v1/users"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "create user {username}");
        resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }
}

pub fn client() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A new, empty database on the test PostgreSQL server.
async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin_url = std::env::var("CLOUDPORT_TEST_POSTGRES_URL").expect(
        "CLOUDPORT_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh, which starts PostgreSQL",
    );
    let name = format!("cp_test_{}", uuid_like());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    format!("{base}/{name}")
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn status_and_json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}
