//! The audit log: one record per mutation attempt — who, what, target, when
//! and how it ended — including refused and failed ones.

use super::rbac::Action;
use super::{Actor, ConsoleService, TeamRef};
use crate::db::now_ms;
use crate::error::{Error, Result};
use app::model::{AuditEntry, AuditQuery};

/// How an attempt ended, as the log shows it.
pub fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::Forbidden(_)) => "denied",
        Err(Error::Unauthorized) | Err(Error::RateLimited { .. }) => "denied",
        Err(Error::Internal(_)) => "error",
        Err(_) => "failed",
    }
}

pub struct Record<'a> {
    pub actor_id: Option<i64>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub team: Option<&'a TeamRef>,
    pub result: &'a str,
    pub detail: String,
}

impl ConsoleService {
    /// Writes one record. A failure to write is logged, not returned: the
    /// action it describes has already happened.
    pub async fn record(&self, r: Record<'_>) {
        let res = sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor, action, target, team_id, team, result, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(now_ms())
        .bind(r.actor_id)
        .bind(r.actor)
        .bind(r.action)
        .bind(r.target)
        .bind(r.team.map(|t| t.id))
        .bind(r.team.map(|t| t.name.clone()))
        .bind(r.result)
        .bind(r.detail)
        .execute(&self.db.pool)
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e, action = r.action, "could not write audit record");
        }
    }

    /// Records what `actor` attempted and returns the result unchanged.
    pub async fn audited<T>(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        team: Option<&TeamRef>,
        result: Result<T>,
    ) -> Result<T> {
        self.audited_scrubbed(actor, action, target, team, result, |m| m)
            .await
    }

    /// Like [`Self::audited`], with the error message passed through
    /// `scrub` before it is stored (the caller still gets it whole): for
    /// actions whose input is secret, like a certificate's private key.
    pub async fn audited_scrubbed<T>(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        team: Option<&TeamRef>,
        result: Result<T>,
        scrub: fn(String) -> String,
    ) -> Result<T> {
        let detail = match &result {
            Err(e) => scrub(e.public_message()),
            Ok(_) => String::new(),
        };
        let detail = match actor.token_id {
            Some(id) if detail.is_empty() => format!("via API token #{id}"),
            Some(id) => format!("{detail} (via API token #{id})"),
            None => detail,
        };
        self.record(Record {
            actor_id: Some(actor.user_id),
            actor: &actor.username,
            action,
            target,
            team,
            result: outcome(&result),
            detail,
        })
        .await;
        result
    }

    pub async fn audit_entries(&self, actor: &Actor, q: AuditQuery) -> Result<Vec<AuditEntry>> {
        let limit = q.limit.unwrap_or(100).clamp(1, 500);
        let before = q.before.unwrap_or(i64::MAX);
        type Row = (
            i64,
            i64,
            String,
            String,
            String,
            Option<String>,
            String,
            String,
        );
        let cols = "SELECT id, at, actor, action, target, team, result, detail FROM audit_log";
        let rows: Vec<Row> = if let Some(team) = q.team.as_deref() {
            let team = self.find_team(team).await?;
            self.authorize(actor, Action::ViewTeamAudit, Some(&team))
                .await?;
            sqlx::query_as(&format!(
                "{cols} WHERE team_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(team.id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?
        } else if self
            .authorize(actor, Action::ViewPlatformAudit, None)
            .await
            .is_ok()
        {
            sqlx::query_as(&format!("{cols} WHERE id < $1 ORDER BY id DESC LIMIT $2"))
                .bind(before)
                .bind(limit)
                .fetch_all(&self.db.pool)
                .await?
        } else {
            // Everyone else sees their own actions and those in teams they administer.
            sqlx::query_as(&format!(
                "{cols} WHERE (actor_id = $1 OR team_id IN \
                 (SELECT team_id FROM team_members WHERE user_id = $1 AND role IN ('admin', 'owner'))) \
                 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(actor.user_id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?
        };
        Ok(rows
            .into_iter()
            .map(
                |(id, at, actor, action, target, team, result, detail)| AuditEntry {
                    id,
                    at,
                    actor,
                    action,
                    target,
                    team,
                    result,
                    detail,
                },
            )
            .collect())
    }

    pub async fn prune_audit(&self, retention_days: i64) -> Result<u64> {
        let cutoff = now_ms() - retention_days * 86_400_000;
        let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(cutoff)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
