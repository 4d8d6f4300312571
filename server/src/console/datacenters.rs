//! The datacenters this console manages: registration (tokens sealed at
//! rest), which teams may use which, and an honest state for each —
//! `online`, `degraded` or `offline` with the last contact and why — kept
//! fresh by a poller.

use super::rbac::Action;
use super::{team_not_found, validate, Actor, ConsoleService};
use crate::db::{is_unique_violation, now_ms};
use crate::error::{Error, Result};
use app::model::{Datacenter, NewDatacenter};
use datacenter::client::DatacenterClient;
use std::time::{Duration, Instant};

/// How long one health request may take; slower answers count as degraded.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(2);
const SLOW: Duration = Duration::from_millis(1000);
/// Consecutive failed polls before a datacenter is called offline.
const OFFLINE_AFTER: u32 = 2;

type Row = (
    String,
    String,
    String,
    i64,
    String,
    String,
    Option<i64>,
    String,
    String,
    i64,
    i64,
    i64,
);
const COLS: &str =
    "SELECT name, url, gateway, embedded, state, state_reason, last_contact_at, runtime, version, \
                    cpu_millicores, memory_mb, components FROM datacenters";

fn to_dc(
    (
        name,
        url,
        gateway,
        embedded,
        state,
        state_reason,
        last_contact_at,
        runtime,
        version,
        cpu,
        mem,
        components,
    ): Row,
) -> Datacenter {
    Datacenter {
        name,
        url,
        gateway,
        embedded: embedded != 0,
        state,
        state_reason,
        last_contact_at,
        runtime,
        version,
        cpu_millicores: cpu,
        memory_mb: mem,
        components,
    }
}

impl ConsoleService {
    /// Platform admins see every datacenter; others those their teams may use.
    pub async fn list_datacenters(&self, actor: &Actor) -> Result<Vec<Datacenter>> {
        let rows: Vec<Row> = if self
            .authorize(actor, Action::ManageDatacenters, None)
            .await
            .is_ok()
        {
            sqlx::query_as(&format!("{COLS} ORDER BY embedded DESC, name"))
                .fetch_all(&self.db.pool)
                .await?
        } else {
            sqlx::query_as(&format!(
                "{COLS} WHERE id IN (SELECT td.datacenter_id FROM team_datacenters td \
                 JOIN team_members m ON m.team_id = td.team_id WHERE m.user_id = $1) ORDER BY embedded DESC, name"
            ))
            .bind(actor.user_id)
            .fetch_all(&self.db.pool)
            .await?
        };
        Ok(rows.into_iter().map(to_dc).collect())
    }

    pub async fn add_datacenter(&self, actor: &Actor, new: NewDatacenter) -> Result<Datacenter> {
        let name = new.name.trim().to_string();
        let result = async {
            self.authorize(actor, Action::ManageDatacenters, None).await?;
            validate::dns_label("datacenter", &name)?;
            let url = new.url.trim().trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 512 || url.contains(char::is_whitespace) {
                return Err(Error::Invalid("The URL must start with http:// or https://.".into()));
            }
            if new.token.len() < datacenter::service::MIN_TOKEN_LEN || new.token.len() > 512 {
                return Err(Error::Invalid("The token must have 16 to 512 characters.".into()));
            }
            let gateway = new.gateway.unwrap_or_default().trim().to_string();
            // Prove the URL and token work before keeping them.
            let client = DatacenterClient::new(&url, &new.token, POLL_TIMEOUT);
            let info = client
                .info()
                .await
                .map_err(|e| Error::Invalid(format!("Cannot use the datacenter at {url}: {e}")))?;
            sqlx::query(
                "INSERT INTO datacenters (name, url, token_sealed, gateway, embedded, state, state_reason, last_contact_at, \
                 runtime, version, cpu_millicores, memory_mb, components, created_at) \
                 VALUES ($1, $2, $3, $4, 0, 'online', 'answering', $5, $6, $7, $8, $9, $10, $5)",
            )
            .bind(&name)
            .bind(&url)
            .bind(self.secrets.seal(&new.token))
            .bind(&gateway)
            .bind(now_ms())
            .bind(&info.runtime)
            .bind(&info.version)
            .bind(info.capacity.cpu_millicores)
            .bind(info.capacity.memory_mb)
            .bind(info.components)
            .execute(&self.db.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict(format!("A datacenter named “{name}” exists already."))
                } else {
                    e.into()
                }
            })?;
            self.datacenter(&name).await
        }
        .await;
        self.audited(actor, "datacenter.add", &name, None, result)
            .await
    }

    /// Removes a datacenter from the console. Refused while components live
    /// there, unless forced (for a datacenter that is gone for good).
    pub async fn remove_datacenter(&self, actor: &Actor, name: &str, force: bool) -> Result<()> {
        let result = async {
            self.authorize(actor, Action::ManageDatacenters, None).await?;
            let (id, embedded) = self.datacenter_id(name).await?;
            if embedded {
                return Err(Error::Conflict(
                    "The embedded datacenter belongs to this console; start it with --no-embedded-datacenter instead.".into(),
                ));
            }
            let (placed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM component_locations WHERE datacenter_id = $1")
                .bind(id)
                .fetch_one(&self.db.pool)
                .await?;
            if placed > 0 && !force {
                return Err(Error::Conflict(format!(
                    "{placed} component(s) live in {name}; delete them first, or force the removal if the datacenter is gone for good."
                )));
            }
            sqlx::query("DELETE FROM component_locations WHERE datacenter_id = $1").bind(id).execute(&self.db.pool).await?;
            sqlx::query("DELETE FROM team_datacenters WHERE datacenter_id = $1").bind(id).execute(&self.db.pool).await?;
            sqlx::query("DELETE FROM datacenters WHERE id = $1").bind(id).execute(&self.db.pool).await?;
            self.clients.lock().unwrap().remove(name);
            Ok(())
        }
        .await;
        let target = if force {
            format!("{name} (forced)")
        } else {
            name.to_string()
        };
        self.audited(actor, "datacenter.remove", &target, None, result)
            .await
    }

    /// Registers (or refreshes) the datacenter running inside this process
    /// and lets every team use it: zero-config means it just works.
    pub async fn register_embedded(&self, name: &str, url: &str, token: &str) -> Result<()> {
        let sealed = self.secrets.seal(token);
        let updated = sqlx::query(
            "UPDATE datacenters SET url = $1, token_sealed = $2, embedded = 1 WHERE name = $3",
        )
        .bind(url)
        .bind(&sealed)
        .bind(name)
        .execute(&self.db.pool)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO datacenters (name, url, token_sealed, gateway, embedded, created_at) VALUES ($1, $2, $3, '', 1, $4)",
            )
            .bind(name)
            .bind(url)
            .bind(&sealed)
            .bind(now_ms())
            .execute(&self.db.pool)
            .await?;
        }
        sqlx::query(
            "INSERT INTO team_datacenters (team_id, datacenter_id, opened_at) \
             SELECT t.id, d.id, $1 FROM teams t, datacenters d WHERE d.embedded = 1 \
             AND NOT EXISTS (SELECT 1 FROM team_datacenters x WHERE x.team_id = t.id AND x.datacenter_id = d.id)",
        )
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        self.clients.lock().unwrap().remove(name);
        self.poll_one(name).await;
        Ok(())
    }

    pub async fn datacenter(&self, name: &str) -> Result<Datacenter> {
        let row: Option<Row> = sqlx::query_as(&format!("{COLS} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(to_dc)
            .ok_or_else(|| Error::NotFound(format!("There is no datacenter “{name}”.")))
    }

    pub(crate) async fn datacenter_id(&self, name: &str) -> Result<(i64, bool)> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT id, embedded FROM datacenters WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.db.pool)
                .await?;
        row.map(|(id, e)| (id, e != 0))
            .ok_or_else(|| Error::NotFound(format!("There is no datacenter “{name}”.")))
    }

    /// The API client of a datacenter, built once from its sealed token.
    pub async fn client(&self, name: &str) -> Result<DatacenterClient> {
        if let Some(c) = self.clients.lock().unwrap().get(name) {
            return Ok(c.clone());
        }
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT url, token_sealed FROM datacenters WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.db.pool)
                .await?;
        let (url, sealed) =
            row.ok_or_else(|| Error::NotFound(format!("There is no datacenter “{name}”.")))?;
        let token = self.secrets.open(&sealed).map_err(Error::internal)?;
        let client = DatacenterClient::new(&url, &token, Duration::from_secs(10));
        self.clients
            .lock()
            .unwrap()
            .insert(name.to_string(), client.clone());
        Ok(client)
    }

    pub async fn team_datacenters(&self, actor: &Actor, team: &str) -> Result<Vec<Datacenter>> {
        let team = self.find_team(team).await?;
        self.authorize(actor, Action::ViewTeam, Some(&team)).await?;
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "{COLS} WHERE id IN (SELECT datacenter_id FROM team_datacenters WHERE team_id = $1) ORDER BY embedded DESC, name"
        ))
        .bind(team.id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().map(to_dc).collect())
    }

    pub async fn open_datacenter(&self, actor: &Actor, team_name: &str, dc: &str) -> Result<()> {
        let team = self.find_team(team_name).await;
        let result = async {
            let team = team.as_ref().map_err(|_| team_not_found(team_name))?;
            self.authorize(actor, Action::OpenDatacenter, Some(team)).await?;
            let (dc_id, _) = self.datacenter_id(dc).await?;
            sqlx::query(
                "INSERT INTO team_datacenters (team_id, datacenter_id, opened_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(team.id)
            .bind(dc_id)
            .bind(now_ms())
            .execute(&self.db.pool)
            .await?;
            Ok(())
        }
        .await;
        self.audited(actor, "datacenter.open", dc, team.as_ref().ok(), result)
            .await
    }

    /// Whether `team_id` may place components in datacenter `name`.
    pub async fn team_may_use(&self, team_id: i64, name: &str) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT d.id FROM datacenters d JOIN team_datacenters td ON td.datacenter_id = d.id WHERE td.team_id = $1 AND d.name = $2",
        )
        .bind(team_id)
        .bind(name)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| r.0).ok_or_else(|| {
            Error::Invalid(format!(
                "This team may not use the datacenter “{name}”; a platform admin can open it."
            ))
        })
    }

    /// Polls every datacenter once; runs on a timer.
    pub async fn poll_datacenters(&self) {
        let names: Vec<(String,)> = match sqlx::query_as("SELECT name FROM datacenters")
            .fetch_all(&self.db.pool)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list datacenters to poll");
                return;
            }
        };
        let polls = names
            .into_iter()
            .map(|(n,)| async move { self.poll_one(&n).await });
        futures_util::future::join_all(polls).await;
    }

    async fn poll_one(&self, name: &str) {
        let Ok(client) = self.client(name).await else {
            return;
        };
        let client = DatacenterClient::new(
            client.base_url(),
            &client_token(self, name).await.unwrap_or_default(),
            POLL_TIMEOUT,
        );
        let started = Instant::now();
        let res = client.info().await;
        let elapsed = started.elapsed();
        let update = match res {
            Ok(info) => {
                self.poll_failures.lock().unwrap().remove(name);
                let (state, reason) = if info.queue_depth < 0 {
                    ("degraded", "its task queue is unavailable".to_string())
                } else if elapsed > SLOW {
                    (
                        "degraded",
                        format!("slow: answered in {} ms", elapsed.as_millis()),
                    )
                } else {
                    ("online", format!("answered in {} ms", elapsed.as_millis()))
                };
                sqlx::query(
                    "UPDATE datacenters SET state = $1, state_reason = $2, last_contact_at = $3, runtime = $4, version = $5, \
                     cpu_millicores = $6, memory_mb = $7, components = $8 WHERE name = $9",
                )
                .bind(state)
                .bind(reason)
                .bind(now_ms())
                .bind(info.runtime)
                .bind(info.version)
                .bind(info.capacity.cpu_millicores)
                .bind(info.capacity.memory_mb)
                .bind(info.components)
                .bind(name)
                .execute(&self.db.pool)
                .await
            }
            Err(e) => {
                let failures = {
                    let mut f = self.poll_failures.lock().unwrap();
                    let n = f.entry(name.to_string()).or_insert(0);
                    *n += 1;
                    *n
                };
                let state = if failures >= OFFLINE_AFTER {
                    "offline"
                } else {
                    "degraded"
                };
                sqlx::query("UPDATE datacenters SET state = $1, state_reason = $2 WHERE name = $3")
                    .bind(state)
                    .bind(e.to_string())
                    .bind(name)
                    .execute(&self.db.pool)
                    .await
            }
        };
        if let Err(e) = update {
            tracing::warn!(error = %e, datacenter = name, "cannot record datacenter state");
        }
    }
}

async fn client_token(svc: &ConsoleService, name: &str) -> Result<String> {
    let (sealed,): (String,) =
        sqlx::query_as("SELECT token_sealed FROM datacenters WHERE name = $1")
            .bind(name)
            .fetch_one(&svc.db.pool)
            .await?;
    svc.secrets.open(&sealed).map_err(Error::internal)
}
