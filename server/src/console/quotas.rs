//! Quotas per team and datacenter: how many components, and how much memory
//! and CPU across all their replicas, a team may claim there. Set by a
//! platform admin (the same right as opening a datacenter for a team);
//! checked by the console before it forwards a create, an update or a scale,
//! against what the datacenter itself reports the team uses.

use super::rbac::Action;
use super::{team_not_found, Actor, ConsoleService};
use crate::error::{Error, Result};
use app::model::{Quota, QuotaUsage, Usage};
use datacenter::api::ComponentSpec;

/// What one more (or a changed) component asks for.
pub(super) struct Demand {
    pub app: String,
    pub name: String,
    pub replicas: u32,
    pub memory_mb: i64,
    pub cpu_millicores: i64,
}

impl Demand {
    pub(super) fn of(app: &str, spec: &ComponentSpec) -> Demand {
        Demand {
            app: app.into(),
            name: spec.name.clone(),
            replicas: spec.replicas,
            memory_mb: spec.resources.memory_mb,
            cpu_millicores: spec.resources.cpu_millicores,
        }
    }
}

impl ConsoleService {
    async fn quota_row(&self, team_id: i64, dc_id: i64) -> Result<Quota> {
        let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT max_components, max_memory_mb, max_cpu_millicores FROM team_datacenters WHERE team_id = $1 AND datacenter_id = $2",
        )
        .bind(team_id)
        .bind(dc_id)
        .fetch_optional(&self.db.pool)
        .await?;
        let (max_components, max_memory_mb, max_cpu_millicores) = row.ok_or_else(|| {
            Error::NotFound("This team has not been opened in that datacenter.".into())
        })?;
        Ok(Quota {
            max_components,
            max_memory_mb,
            max_cpu_millicores,
        })
    }

    /// What the team's components in the datacenter claim, leaving out `except`.
    async fn usage(&self, team: &str, dc: &str, except: Option<(&str, &str)>) -> Result<Usage> {
        let components = self.client(dc).await?.components(team, None).await?;
        let mut used = Usage::default();
        for c in components
            .iter()
            .filter(|c| except != Some((c.app.as_str(), c.name.as_str())))
        {
            used.components += 1;
            used.memory_mb += c.replicas as i64 * c.resources.memory_mb;
            used.cpu_millicores += c.replicas as i64 * c.resources.cpu_millicores;
        }
        Ok(used)
    }

    pub async fn quota(&self, actor: &Actor, team: &str, dc: &str) -> Result<QuotaUsage> {
        let t = self.find_team(team).await?;
        self.authorize(actor, Action::ViewTeam, Some(&t)).await?;
        let (dc_id, _) = self.datacenter_id(dc).await?;
        let quota = self.quota_row(t.id, dc_id).await?;
        let used = self.usage(team, dc, None).await?;
        Ok(QuotaUsage {
            datacenter: dc.into(),
            quota,
            used,
        })
    }

    pub async fn set_quota(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        quota: Quota,
    ) -> Result<Quota> {
        let found = self.find_team(team).await;
        let result = async {
            let t = found.as_ref().map_err(|_| team_not_found(team))?;
            self.authorize(actor, Action::OpenDatacenter, Some(t)).await?;
            for (what, v) in [
                ("max_components", quota.max_components),
                ("max_memory_mb", quota.max_memory_mb),
                ("max_cpu_millicores", quota.max_cpu_millicores),
            ] {
                if v.is_some_and(|v| !(0..=1_000_000_000).contains(&v)) {
                    return Err(Error::Invalid(format!("{what} must be between 0 and 1000000000, or empty for no limit.")));
                }
            }
            let (dc_id, _) = self.datacenter_id(dc).await?;
            self.quota_row(t.id, dc_id).await?;
            sqlx::query(
                "UPDATE team_datacenters SET max_components = $1, max_memory_mb = $2, max_cpu_millicores = $3 WHERE team_id = $4 AND datacenter_id = $5",
            )
            .bind(quota.max_components)
            .bind(quota.max_memory_mb)
            .bind(quota.max_cpu_millicores)
            .bind(t.id)
            .bind(dc_id)
            .execute(&self.db.pool)
            .await?;
            Ok(quota.clone())
        }
        .await;
        self.audited(
            actor,
            "quota.set",
            &format!("{team} in {dc}"),
            found.as_ref().ok(),
            result,
        )
        .await
    }

    /// Refuses a change that would take the team past its quota in `dc`.
    /// `new` is true when the component does not exist yet.
    pub(super) async fn check_quota(
        &self,
        team_id: i64,
        team: &str,
        dc: &str,
        demand: &Demand,
        new: bool,
    ) -> Result<()> {
        let (dc_id, _) = self.datacenter_id(dc).await?;
        let quota = self.quota_row(team_id, dc_id).await?;
        if quota == Quota::default() {
            return Ok(());
        }
        let mut used = self
            .usage(team, dc, Some((&demand.app, &demand.name)))
            .await?;
        used.components += 1;
        used.memory_mb += demand.replicas as i64 * demand.memory_mb;
        used.cpu_millicores += demand.replicas as i64 * demand.cpu_millicores;
        let mut over = Vec::new();
        if let Some(max) = quota.max_components.filter(|m| new && used.components > *m) {
            over.push(format!("{} components of {max}", used.components));
        }
        if let Some(max) = quota.max_memory_mb.filter(|m| used.memory_mb > *m) {
            over.push(format!("{} MB of memory of {max} MB", used.memory_mb));
        }
        if let Some(max) = quota
            .max_cpu_millicores
            .filter(|m| used.cpu_millicores > *m)
        {
            over.push(format!("{} millicores of {max}", used.cpu_millicores));
        }
        if over.is_empty() {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "Team {team}'s quota in {dc} would be exceeded: {}. Free some up or ask a platform admin.",
                over.join(", ")
            )))
        }
    }
}
