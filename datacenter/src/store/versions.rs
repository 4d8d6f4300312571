//! Versions: every successful build, immutable. Each keeps where its
//! artifact lies and the configuration and secrets (sealed) the component had
//! when it was built, so a rollback runs it exactly as it ran.

use super::{now_ms, Db};
use crate::api::{ComponentSpec, Version};
use crate::crypto::SecretBox;
use crate::error::{Error, Result};
use crate::store::components::Key;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A version with what it takes to run it again.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub version: Version,
    pub artifact: PathBuf,
    pub path_prepend: Vec<PathBuf>,
    pub spec: ComponentSpec,
    pub secrets: BTreeMap<String, String>,
    pub health_path: Option<String>,
}

/// What a finished build records.
pub struct NewVersion<'a> {
    pub number: i64,
    pub event_id: &'a str,
    pub source: &'a str,
    pub language: &'a str,
    pub run_command: &'a str,
    pub build_ms: i64,
    pub artifact: &'a std::path::Path,
    pub path_prepend: &'a [PathBuf],
    pub spec: &'a ComponentSpec,
    pub secrets: &'a BTreeMap<String, String>,
    pub health_path: Option<&'a str>,
}

type Row = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
);
const COLS: &str = "SELECT v.number, v.created_at, v.event_id, v.source, v.language, v.run_command, v.build_ms, v.artifact, v.path_prepend, v.spec, v.sealed_secrets, v.health_path FROM versions v JOIN components c ON c.id = v.component_id WHERE c.team = $1 AND c.app = $2 AND c.name = $3";

#[derive(Clone, Debug)]
pub struct VersionStore {
    db: Db,
    secrets: SecretBox,
}

pub fn version_id(number: i64) -> String {
    format!("v{number}")
}

fn parse_id(id: &str) -> Result<i64> {
    id.strip_prefix('v')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::Invalid(vec![format!("`{id}` is not a version (use v1, v2, …)")]))
}

impl VersionStore {
    pub fn new(db: Db, secrets: SecretBox) -> Self {
        VersionStore { db, secrets }
    }

    /// The number the next build of the component will get.
    pub async fn next_number(&self, key: &Key) -> Result<i64> {
        let (n,): (Option<i64>,) = sqlx::query_as(
            "SELECT MAX(v.number) FROM versions v JOIN components c ON c.id = v.component_id WHERE c.team = $1 AND c.app = $2 AND c.name = $3",
        )
        .bind(&key.team)
        .bind(&key.app)
        .bind(&key.name)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(n.unwrap_or(0) + 1)
    }

    pub async fn create(&self, component_id: i64, new: NewVersion<'_>) -> Result<()> {
        let prepend: Vec<String> = new
            .path_prepend
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let sealed = self
            .secrets
            .seal(&serde_json::to_string(new.secrets).map_err(Error::internal)?);
        let mut spec = new.spec.clone();
        spec.secrets.clear();
        sqlx::query(
            "INSERT INTO versions (component_id, number, created_at, event_id, source, language, run_command, build_ms, artifact, path_prepend, spec, sealed_secrets, health_path) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(component_id)
        .bind(new.number)
        .bind(now_ms())
        .bind(new.event_id)
        .bind(new.source)
        .bind(new.language)
        .bind(new.run_command)
        .bind(new.build_ms)
        .bind(new.artifact.display().to_string())
        .bind(serde_json::to_string(&prepend).map_err(Error::internal)?)
        .bind(serde_json::to_string(&spec).map_err(Error::internal)?)
        .bind(sealed)
        .bind(new.health_path)
        .execute(&self.db.pool)
        .await
        .map_err(|e| {
            if super::db::is_unique_violation(&e) {
                Error::Conflict(format!("version {} already exists", version_id(new.number)))
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// Newest first; `current` marks the one deployed now.
    pub async fn list(&self, key: &Key, current: Option<&str>) -> Result<Vec<Version>> {
        let rows: Vec<Row> = sqlx::query_as(&format!("{COLS} ORDER BY v.number DESC"))
            .bind(&key.team)
            .bind(&key.app)
            .bind(&key.name)
            .fetch_all(&self.db.pool)
            .await?;
        rows.into_iter()
            .map(|r| self.to_stored(r, current).map(|s| s.version))
            .collect()
    }

    pub async fn get(&self, key: &Key, id: &str, current: Option<&str>) -> Result<StoredVersion> {
        let number = parse_id(id)?;
        let row: Option<Row> = sqlx::query_as(&format!("{COLS} AND v.number = $4"))
            .bind(&key.team)
            .bind(&key.app)
            .bind(&key.name)
            .bind(number)
            .fetch_optional(&self.db.pool)
            .await?;
        let row = row.ok_or_else(|| Error::NotFound(format!("{key} has no version {id}")))?;
        self.to_stored(row, current)
    }

    pub async fn latest(&self, key: &Key, current: Option<&str>) -> Result<Option<StoredVersion>> {
        let row: Option<Row> = sqlx::query_as(&format!("{COLS} ORDER BY v.number DESC LIMIT 1"))
            .bind(&key.team)
            .bind(&key.app)
            .bind(&key.name)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(|r| self.to_stored(r, current)).transpose()
    }

    fn to_stored(
        &self,
        (
            number,
            created_at,
            event_id,
            source,
            language,
            run_command,
            build_ms,
            artifact,
            prepend,
            spec,
            sealed,
            health_path,
        ): Row,
        current: Option<&str>,
    ) -> Result<StoredVersion> {
        let id = version_id(number);
        let prepend: Vec<String> = serde_json::from_str(&prepend).map_err(Error::internal)?;
        let secrets = self.secrets.open(&sealed).map_err(Error::internal)?;
        Ok(StoredVersion {
            version: Version {
                current: current == Some(id.as_str()),
                id,
                number,
                created_at,
                event_id,
                source,
                language,
                run_command,
                build_ms,
            },
            artifact: PathBuf::from(artifact),
            path_prepend: prepend.into_iter().map(PathBuf::from).collect(),
            spec: serde_json::from_str(&spec).map_err(Error::internal)?,
            secrets: serde_json::from_str(&secrets).map_err(Error::internal)?,
            health_path,
        })
    }
}
