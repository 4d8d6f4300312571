//! Components as stored: the spec (without secret values) as JSON, the
//! status, the desired run state and the current version. Secrets live
//! sealed in their own table.

use super::{now_ms, Db};
use crate::api::*;
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub team: String,
    pub app: String,
    pub name: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.team, self.app, self.name)
    }
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    i64,
    i64,
    Option<String>,
);
const COLS: &str = "SELECT id, team, app, name, spec, status, desired_running, version, created_at, updated_at, status_message FROM components";

#[derive(Clone, Debug)]
pub struct ComponentStore {
    db: Db,
    secrets: SecretBox,
}

impl ComponentStore {
    pub fn new(db: Db, secrets: SecretBox) -> Self {
        ComponentStore { db, secrets }
    }

    pub async fn create(&self, team: &str, app: &str, spec: &ComponentSpec) -> Result<Component> {
        let now = now_ms();
        let mut tx = self.db.pool.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO components (team, app, name, spec, status, desired_running, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'undeployed', 0, $5, $5) RETURNING id",
        )
        .bind(team)
        .bind(app)
        .bind(&spec.name)
        .bind(stored_spec(spec))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if super::db::is_unique_violation(&e) {
                Error::Conflict(format!("app {app} already has a component named {}", spec.name))
            } else {
                e.into()
            }
        })?;
        for (name, value) in spec.secrets.iter().filter(|(_, v)| !v.is_empty()) {
            sqlx::query("INSERT INTO secrets (component_id, name, sealed) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(self.secrets.seal(value))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.get(&Key {
            team: team.into(),
            app: app.into(),
            name: spec.name.clone(),
        })
        .await
    }

    /// Replaces the spec; secrets absent from `spec` are kept, empty ones removed.
    pub async fn update(&self, key: &Key, spec: &ComponentSpec) -> Result<Component> {
        if spec.name != key.name {
            return Err(Error::Invalid(vec!["a component cannot be renamed".into()]));
        }
        let id = self.id(key).await?;
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("UPDATE components SET spec = $1, updated_at = $2 WHERE id = $3")
            .bind(stored_spec(spec))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (name, value) in &spec.secrets {
            sqlx::query("DELETE FROM secrets WHERE component_id = $1 AND name = $2")
                .bind(id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if !value.is_empty() {
                sqlx::query("INSERT INTO secrets (component_id, name, sealed) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(name)
                    .bind(self.secrets.seal(value))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.get(key).await
    }

    pub async fn delete(&self, key: &Key) -> Result<()> {
        let id = self.id(key).await?;
        sqlx::query("DELETE FROM secrets WHERE component_id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        sqlx::query("DELETE FROM versions WHERE component_id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        sqlx::query("DELETE FROM components WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn get(&self, key: &Key) -> Result<Component> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "{COLS} WHERE team = $1 AND app = $2 AND name = $3"
        ))
        .bind(&key.team)
        .bind(&key.app)
        .bind(&key.name)
        .fetch_optional(&self.db.pool)
        .await?;
        let row = row.ok_or_else(|| Error::NotFound(format!("no component {key}")))?;
        self.to_component(row).await
    }

    pub async fn list(&self, team: &str, app: Option<&str>) -> Result<Vec<Component>> {
        let rows: Vec<Row> = match app {
            Some(app) => {
                sqlx::query_as(&format!(
                    "{COLS} WHERE team = $1 AND app = $2 ORDER BY app, name"
                ))
                .bind(team)
                .bind(app)
                .fetch_all(&self.db.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!("{COLS} WHERE team = $1 ORDER BY app, name"))
                    .bind(team)
                    .fetch_all(&self.db.pool)
                    .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.to_component(r).await?);
        }
        Ok(out)
    }

    /// Every component the reconciler should look after.
    pub async fn all_keys(&self) -> Result<Vec<Key>> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT team, app, name FROM components ORDER BY id")
                .fetch_all(&self.db.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(team, app, name)| Key { team, app, name })
            .collect())
    }

    /// Every component with its declared ports, for the gateway's default domains.
    pub async fn all_ports(&self) -> Result<Vec<(Key, Vec<Port>)>> {
        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT team, app, name, spec FROM components ORDER BY id")
                .fetch_all(&self.db.pool)
                .await?;
        rows.into_iter()
            .map(|(team, app, name, spec)| {
                let spec: ComponentSpec = serde_json::from_str(&spec).map_err(Error::internal)?;
                Ok((Key { team, app, name }, spec.ports))
            })
            .collect()
    }

    pub async fn count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM components")
            .fetch_one(&self.db.pool)
            .await?;
        Ok(n)
    }

    pub async fn set_status(&self, key: &Key, status: ComponentStatus) -> Result<()> {
        self.set_state(key, status, None).await
    }

    /// The status and why (an exit reason, a failed probe); `None` clears the why.
    pub async fn set_state(
        &self,
        key: &Key,
        status: ComponentStatus,
        message: Option<&str>,
    ) -> Result<()> {
        let id = self.id(key).await?;
        sqlx::query(
            "UPDATE components SET status = $1, status_message = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// The version now deployed.
    pub async fn set_version(&self, key: &Key, version: &str) -> Result<()> {
        self.exec_on(
            key,
            "UPDATE components SET version = $1, updated_at = $2 WHERE id = $3",
            version,
        )
        .await
    }

    /// Puts back the configuration and secrets a version ran with (rollback),
    /// keeping the current replica count.
    pub async fn restore(
        &self,
        key: &Key,
        spec: &ComponentSpec,
        secrets: &BTreeMap<String, String>,
    ) -> Result<()> {
        let id = self.id(key).await?;
        let current = self.get(key).await?;
        let mut spec = spec.clone();
        spec.replicas = current.replicas;
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("UPDATE components SET spec = $1, updated_at = $2 WHERE id = $3")
            .bind(stored_spec(&spec))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM secrets WHERE component_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (name, value) in secrets {
            sqlx::query("INSERT INTO secrets (component_id, name, sealed) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(self.secrets.seal(value))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The component's push-webhook secret, made on first use.
    pub async fn webhook_secret(&self, key: &Key) -> Result<String> {
        let id = self.id(key).await?;
        let (sealed,): (Option<String>,) =
            sqlx::query_as("SELECT webhook_secret FROM components WHERE id = $1")
                .bind(id)
                .fetch_one(&self.db.pool)
                .await?;
        if let Some(s) = sealed {
            return self.secrets.open(&s).map_err(Error::internal);
        }
        let secret = crate::crypto::random_token(32);
        // Two first readers at once: the first write wins and both read it back.
        sqlx::query(
            "UPDATE components SET webhook_secret = $1 WHERE id = $2 AND webhook_secret IS NULL",
        )
        .bind(self.secrets.seal(&secret))
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        let (sealed,): (Option<String>,) =
            sqlx::query_as("SELECT webhook_secret FROM components WHERE id = $1")
                .bind(id)
                .fetch_one(&self.db.pool)
                .await?;
        self.secrets
            .open(&sealed.unwrap_or_default())
            .map_err(Error::internal)
    }

    /// The sealing box, shared with the version store.
    pub fn secret_box(&self) -> &SecretBox {
        &self.secrets
    }

    pub async fn set_desired_running(&self, key: &Key, running: bool) -> Result<()> {
        let id = self.id(key).await?;
        sqlx::query("UPDATE components SET desired_running = $1, updated_at = $2 WHERE id = $3")
            .bind(running as i64)
            .bind(now_ms())
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn set_replicas(&self, key: &Key, replicas: u32) -> Result<Component> {
        let mut c = self.get(key).await?;
        c.replicas = replicas;
        let spec = spec_of(&c);
        self.update(key, &spec).await
    }

    /// Secret values in clear, for the runtime that injects them.
    pub async fn secret_values(&self, key: &Key) -> Result<BTreeMap<String, String>> {
        let id = self.id(key).await?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, sealed FROM secrets WHERE component_id = $1")
                .bind(id)
                .fetch_all(&self.db.pool)
                .await?;
        rows.into_iter()
            .map(|(n, s)| {
                self.secrets
                    .open(&s)
                    .map(|v| (n, v))
                    .map_err(Error::internal)
            })
            .collect()
    }

    async fn exec_on(&self, key: &Key, sql: &str, value: &str) -> Result<()> {
        let id = self.id(key).await?;
        sqlx::query(sql)
            .bind(value)
            .bind(now_ms())
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn id(&self, key: &Key) -> Result<i64> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM components WHERE team = $1 AND app = $2 AND name = $3")
                .bind(&key.team)
                .bind(&key.app)
                .bind(&key.name)
                .fetch_optional(&self.db.pool)
                .await?;
        row.map(|r| r.0)
            .ok_or_else(|| Error::NotFound(format!("no component {key}")))
    }

    async fn to_component(
        &self,
        (
            id,
            team,
            app,
            name,
            spec,
            status,
            desired,
            version,
            created_at,
            updated_at,
            status_message,
        ): Row,
    ) -> Result<Component> {
        let spec: ComponentSpec = serde_json::from_str(&spec).map_err(Error::internal)?;
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM secrets WHERE component_id = $1 ORDER BY name")
                .bind(id)
                .fetch_all(&self.db.pool)
                .await?;
        Ok(Component {
            team,
            app,
            name,
            source: spec.source,
            build: spec.build,
            ports: spec.ports,
            env: spec.env,
            secret_names: names.into_iter().map(|n| n.0).collect(),
            volumes: spec.volumes,
            dependencies: spec.dependencies,
            health: spec.health,
            resources: spec.resources,
            replicas: spec.replicas,
            status: ComponentStatus::parse(&status).unwrap_or(ComponentStatus::Abnormal),
            desired_running: desired != 0,
            version,
            created_at,
            updated_at,
            status_message,
            url: None,
            urls: Vec::new(),
        })
    }
}

/// The spec as stored: never with secret values.
fn stored_spec(spec: &ComponentSpec) -> String {
    let mut s = spec.clone();
    s.secrets.clear();
    serde_json::to_string(&s).expect("spec serialises")
}

/// The spec that would recreate `c` (secrets untouched on update).
pub fn spec_of(c: &Component) -> ComponentSpec {
    ComponentSpec {
        name: c.name.clone(),
        source: c.source.clone(),
        build: c.build.clone(),
        ports: c.ports.clone(),
        env: c.env.clone(),
        secrets: Default::default(),
        volumes: c.volumes.clone(),
        dependencies: c.dependencies.clone(),
        health: c.health.clone(),
        resources: c.resources.clone(),
        replicas: c.replicas,
    }
}
