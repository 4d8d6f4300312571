//! The gateway's desired state: HTTP and TCP routes per team, and uploaded
//! certificates with their private keys sealed. Specs are kept as JSON, with
//! the columns that uniqueness and lookups need beside them.

use super::{now_ms, Db};
use crate::api::*;
use crate::crypto::{random_token, SecretBox};
use crate::error::{Error, Result};

/// A certificate with its key, for the gateway only.
#[derive(Debug, Clone)]
pub struct CertificateWithKey {
    pub info: Certificate,
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Clone, Debug)]
pub struct RouteStore {
    db: Db,
    secrets: SecretBox,
}

type HttpRow = (String, String, String, i64, i64);
type TcpRow = (String, String, String, i64);
type CertRow = (String, String, String, i64, i64, String, String, i64);

fn new_route_id() -> String {
    format!("r{}", random_token(12).to_ascii_lowercase())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

impl RouteStore {
    pub fn new(db: Db, secrets: SecretBox) -> Self {
        RouteStore { db, secrets }
    }

    fn http_route((id, team, spec, created_at, updated_at): HttpRow) -> Result<HttpRoute> {
        Ok(HttpRoute {
            id,
            team,
            spec: serde_json::from_str(&spec).map_err(Error::internal)?,
            created_at,
            updated_at,
        })
    }

    /// All teams' HTTP routes (`team` = None), or one team's.
    pub async fn http_routes(&self, team: Option<&str>) -> Result<Vec<HttpRoute>> {
        const COLS: &str = "SELECT id, team, spec, created_at, updated_at FROM http_routes";
        let rows: Vec<HttpRow> = match team {
            Some(t) => {
                sqlx::query_as(&format!(
                    "{COLS} WHERE team = $1 ORDER BY domain, path_prefix"
                ))
                .bind(t)
                .fetch_all(&self.db.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!("{COLS} ORDER BY domain, path_prefix"))
                    .fetch_all(&self.db.pool)
                    .await?
            }
        };
        rows.into_iter().map(Self::http_route).collect()
    }

    pub async fn http_route_of(&self, team: &str, id: &str) -> Result<HttpRoute> {
        let row: Option<HttpRow> = sqlx::query_as(
            "SELECT id, team, spec, created_at, updated_at FROM http_routes WHERE team = $1 AND id = $2",
        )
        .bind(team)
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        Self::http_route(
            row.ok_or_else(|| Error::NotFound(format!("team {team} has no route {id}")))?,
        )
    }

    pub async fn create_http_route(&self, team: &str, spec: &HttpRouteSpec) -> Result<HttpRoute> {
        let now = now_ms();
        let id = new_route_id();
        sqlx::query(
            "INSERT INTO http_routes (id, team, domain, path_prefix, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(team)
        .bind(&spec.domain)
        .bind(&spec.path_prefix)
        .bind(json(spec)?)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        self.http_route_of(team, &id).await
    }

    pub async fn update_http_route(
        &self,
        team: &str,
        id: &str,
        spec: &HttpRouteSpec,
    ) -> Result<HttpRoute> {
        let done = sqlx::query(
            "UPDATE http_routes SET domain = $1, path_prefix = $2, spec = $3, updated_at = $4 WHERE team = $5 AND id = $6",
        )
        .bind(&spec.domain)
        .bind(&spec.path_prefix)
        .bind(json(spec)?)
        .bind(now_ms())
        .bind(team)
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("team {team} has no route {id}")));
        }
        self.http_route_of(team, id).await
    }

    pub async fn delete_http_route(&self, team: &str, id: &str) -> Result<HttpRoute> {
        let route = self.http_route_of(team, id).await?;
        sqlx::query("DELETE FROM http_routes WHERE team = $1 AND id = $2")
            .bind(team)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(route)
    }

    fn tcp_route((id, team, spec, created_at): TcpRow) -> Result<TcpRoute> {
        Ok(TcpRoute {
            id,
            team,
            spec: serde_json::from_str(&spec).map_err(Error::internal)?,
            created_at,
        })
    }

    pub async fn tcp_routes(&self, team: Option<&str>) -> Result<Vec<TcpRoute>> {
        const COLS: &str = "SELECT id, team, spec, created_at FROM tcp_routes";
        let rows: Vec<TcpRow> = match team {
            Some(t) => {
                sqlx::query_as(&format!("{COLS} WHERE team = $1 ORDER BY listen_port"))
                    .bind(t)
                    .fetch_all(&self.db.pool)
                    .await?
            }
            None => {
                sqlx::query_as(&format!("{COLS} ORDER BY listen_port"))
                    .fetch_all(&self.db.pool)
                    .await?
            }
        };
        rows.into_iter().map(Self::tcp_route).collect()
    }

    pub async fn create_tcp_route(&self, team: &str, spec: &TcpRouteSpec) -> Result<TcpRoute> {
        let id = new_route_id();
        sqlx::query(
            "INSERT INTO tcp_routes (id, team, listen_port, spec, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(team)
        .bind(spec.listen_port as i64)
        .bind(json(spec)?)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await
        .map_err(|e| {
            if super::db::is_unique_violation(&e) {
                Error::Conflict(format!(
                    "gateway port {} is already forwarded",
                    spec.listen_port
                ))
            } else {
                e.into()
            }
        })?;
        let route = self
            .tcp_routes(Some(team))
            .await?
            .into_iter()
            .find(|r| r.id == id);
        route.ok_or_else(|| Error::internal("TCP route vanished after insert"))
    }

    pub async fn delete_tcp_route(&self, team: &str, id: &str) -> Result<TcpRoute> {
        let route = self
            .tcp_routes(Some(team))
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::NotFound(format!("team {team} has no TCP route {id}")))?;
        sqlx::query("DELETE FROM tcp_routes WHERE team = $1 AND id = $2")
            .bind(team)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(route)
    }

    fn certificate(
        &self,
        (team, name, domains, not_before, not_after, cert_pem, sealed, created_at): CertRow,
    ) -> Result<CertificateWithKey> {
        Ok(CertificateWithKey {
            info: Certificate {
                name,
                team,
                domains: serde_json::from_str(&domains).map_err(Error::internal)?,
                not_before,
                not_after,
                created_at,
            },
            cert_pem,
            key_pem: self.secrets.open(&sealed).map_err(Error::internal)?,
        })
    }

    /// With their keys: for the gateway, never for an API answer.
    pub async fn certificates(&self, team: Option<&str>) -> Result<Vec<CertificateWithKey>> {
        const COLS: &str = "SELECT team, name, domains, not_before, not_after, cert_pem, sealed_key, created_at FROM certificates";
        let rows: Vec<CertRow> = match team {
            Some(t) => {
                sqlx::query_as(&format!("{COLS} WHERE team = $1 ORDER BY name"))
                    .bind(t)
                    .fetch_all(&self.db.pool)
                    .await?
            }
            None => {
                sqlx::query_as(&format!("{COLS} ORDER BY team, name"))
                    .fetch_all(&self.db.pool)
                    .await?
            }
        };
        rows.into_iter().map(|r| self.certificate(r)).collect()
    }

    /// Stores a checked certificate, replacing the team's one of the same name.
    pub async fn put_certificate(
        &self,
        info: &Certificate,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<()> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("DELETE FROM certificates WHERE team = $1 AND name = $2")
            .bind(&info.team)
            .bind(&info.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO certificates (team, name, domains, not_before, not_after, cert_pem, sealed_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&info.team)
        .bind(&info.name)
        .bind(json(&info.domains)?)
        .bind(info.not_before)
        .bind(info.not_after)
        .bind(cert_pem)
        .bind(self.secrets.seal(key_pem))
        .bind(info.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_certificate(&self, team: &str, name: &str) -> Result<Certificate> {
        let cert = self
            .certificates(Some(team))
            .await?
            .into_iter()
            .find(|c| c.info.name == name)
            .ok_or_else(|| Error::NotFound(format!("team {team} has no certificate {name}")))?;
        sqlx::query("DELETE FROM certificates WHERE team = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .execute(&self.db.pool)
            .await?;
        Ok(cert.info)
    }
}
