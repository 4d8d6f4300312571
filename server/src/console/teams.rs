//! Teams (tenants) and their members.

use super::rbac::Action;
use super::{team_not_found, validate, Actor, ConsoleService, TeamRef};
use crate::db::{is_unique_violation, now_ms};
use crate::error::{Error, Result};
use app::model::{Member, NewMember, NewTeam, Role, Team, TeamDetail};

type TeamRow = (i64, String, String, i64, i64, Option<String>);

fn to_team((id, name, display_name, created_at, member_count, my_role): TeamRow) -> Team {
    Team {
        id,
        name,
        display_name,
        created_at,
        member_count,
        my_role: my_role.as_deref().and_then(Role::parse),
    }
}

const TEAM_COLS: &str = "SELECT t.id, t.name, t.display_name, t.created_at, \
     (SELECT COUNT(*) FROM team_members c WHERE c.team_id = t.id), \
     (SELECT m.role FROM team_members m WHERE m.team_id = t.id AND m.user_id = $1) FROM teams t";

impl ConsoleService {
    /// Teams the caller belongs to; every team for a platform admin.
    pub async fn list_teams(&self, actor: &Actor) -> Result<Vec<Team>> {
        let filter = if actor.is_admin {
            ""
        } else {
            " WHERE EXISTS (SELECT 1 FROM team_members x WHERE x.team_id = t.id AND x.user_id = $1)"
        };
        let rows: Vec<TeamRow> = sqlx::query_as(&format!("{TEAM_COLS}{filter} ORDER BY t.name"))
            .bind(actor.user_id)
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.into_iter().map(to_team).collect())
    }

    pub async fn create_team(&self, actor: &Actor, new: NewTeam) -> Result<Team> {
        let name = new.name.trim().to_string();
        let result = async {
            self.authorize(actor, Action::CreateTeam, None).await?;
            validate::dns_label("team", &name)?;
            let display = validate::label("display name", new.display_name.as_deref().unwrap_or(&name), 100)?;
            let mut tx = self.db.pool.begin().await?;
            let (id,): (i64,) =
                sqlx::query_as("INSERT INTO teams (name, display_name, created_at) VALUES ($1, $2, $3) RETURNING id")
                    .bind(&name)
                    .bind(&display)
                    .bind(now_ms())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            Error::Conflict(format!("The team name “{name}” is taken."))
                        } else {
                            e.into()
                        }
                    })?;
            sqlx::query("INSERT INTO team_members (team_id, user_id, role, added_at) VALUES ($1, $2, 'owner', $3)")
                .bind(id)
                .bind(actor.user_id)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            // The console's own datacenter is open to every team.
            sqlx::query(
                "INSERT INTO team_datacenters (team_id, datacenter_id, opened_at) SELECT $1, id, $2 FROM datacenters WHERE embedded = 1",
            )
            .bind(id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.team_view(actor, id).await
        }
        .await;
        let team = result.as_ref().ok().map(|t| TeamRef {
            id: t.id,
            name: t.name.clone(),
        });
        self.audited(actor, "team.create", &name, team.as_ref(), result)
            .await
    }

    async fn team_view(&self, actor: &Actor, id: i64) -> Result<Team> {
        let row: TeamRow = sqlx::query_as(&format!("{TEAM_COLS} WHERE t.id = $2"))
            .bind(actor.user_id)
            .bind(id)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(to_team(row))
    }

    pub async fn team_detail(&self, actor: &Actor, name: &str) -> Result<TeamDetail> {
        let team = self.find_team(name).await?;
        self.authorize(actor, Action::ViewTeam, Some(&team)).await?;
        let members = self.members(team.id).await?;
        let can_manage_members = self
            .authorize(actor, Action::ManageMembers, Some(&team))
            .await
            .is_ok();
        let can_delete = self
            .authorize(actor, Action::DeleteTeam, Some(&team))
            .await
            .is_ok();
        Ok(TeamDetail {
            team: self.team_view(actor, team.id).await?,
            members,
            can_manage_members,
            can_delete,
        })
    }

    pub async fn members(&self, team_id: i64) -> Result<Vec<Member>> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT u.id, u.username, m.role, m.added_at FROM team_members m JOIN users u ON u.id = m.user_id \
             WHERE m.team_id = $1 ORDER BY u.username",
        )
        .bind(team_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(user_id, username, role, added_at)| {
                Role::parse(&role).map(|role| Member {
                    user_id,
                    username,
                    role,
                    added_at,
                })
            })
            .collect())
    }

    pub async fn team_members(&self, actor: &Actor, name: &str) -> Result<Vec<Member>> {
        let team = self.find_team(name).await?;
        self.authorize(actor, Action::ViewTeam, Some(&team)).await?;
        self.members(team.id).await
    }

    pub async fn delete_team(&self, actor: &Actor, name: &str) -> Result<()> {
        let team = self.find_team(name).await;
        let result = async {
            let team = team.as_ref().map_err(|_| team_not_found(name))?;
            self.authorize(actor, Action::DeleteTeam, Some(team))
                .await?;
            sqlx::query("DELETE FROM team_members WHERE team_id = $1")
                .bind(team.id)
                .execute(&self.db.pool)
                .await?;
            sqlx::query("DELETE FROM teams WHERE id = $1")
                .bind(team.id)
                .execute(&self.db.pool)
                .await?;
            Ok(())
        }
        .await;
        self.audited(actor, "team.delete", name, team.as_ref().ok(), result)
            .await
    }

    pub async fn add_member(
        &self,
        actor: &Actor,
        team_name: &str,
        new: NewMember,
    ) -> Result<Member> {
        let team = self.find_team(team_name).await;
        let target = format!("{} as {}", new.username, new.role);
        let result = async {
            let team = team.as_ref().map_err(|_| team_not_found(team_name))?;
            self.authorize(actor, Action::ManageMembers, Some(team)).await?;
            if new.role == Role::Owner {
                self.authorize(actor, Action::ManageOwners, Some(team)).await?;
            }
            let user_id = self.user_id_by_name(&new.username).await?;
            if self.role_in(user_id, team.id).await?.is_some() {
                return Err(Error::Conflict(format!("{} is already a member; change their role instead.", new.username)));
            }
            sqlx::query("INSERT INTO team_members (team_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)")
                .bind(team.id)
                .bind(user_id)
                .bind(new.role.as_str())
                .bind(now_ms())
                .execute(&self.db.pool)
                .await?;
            self.member(team.id, user_id).await
        }
        .await;
        self.audited(actor, "member.add", &target, team.as_ref().ok(), result)
            .await
    }

    pub async fn change_member_role(
        &self,
        actor: &Actor,
        team_name: &str,
        username: &str,
        role: Role,
    ) -> Result<Member> {
        let team = self.find_team(team_name).await;
        let target = format!("{username} to {role}");
        let result = async {
            let team = team.as_ref().map_err(|_| team_not_found(team_name))?;
            self.authorize(actor, Action::ManageMembers, Some(team))
                .await?;
            let user_id = self.user_id_by_name(username).await?;
            let current = self
                .role_in(user_id, team.id)
                .await?
                .ok_or_else(|| not_member(username))?;
            if current == Role::Owner || role == Role::Owner {
                self.authorize(actor, Action::ManageOwners, Some(team))
                    .await?;
            }
            if current == Role::Owner && role != Role::Owner {
                self.keep_an_owner(team.id).await?;
            }
            sqlx::query("UPDATE team_members SET role = $1 WHERE team_id = $2 AND user_id = $3")
                .bind(role.as_str())
                .bind(team.id)
                .bind(user_id)
                .execute(&self.db.pool)
                .await?;
            self.member(team.id, user_id).await
        }
        .await;
        self.audited(actor, "member.role", &target, team.as_ref().ok(), result)
            .await
    }

    pub async fn remove_member(
        &self,
        actor: &Actor,
        team_name: &str,
        username: &str,
    ) -> Result<()> {
        let team = self.find_team(team_name).await;
        let result = async {
            let team = team.as_ref().map_err(|_| team_not_found(team_name))?;
            self.authorize(actor, Action::ManageMembers, Some(team))
                .await?;
            let user_id = self.user_id_by_name(username).await?;
            let current = self
                .role_in(user_id, team.id)
                .await?
                .ok_or_else(|| not_member(username))?;
            if current == Role::Owner {
                self.authorize(actor, Action::ManageOwners, Some(team))
                    .await?;
                self.keep_an_owner(team.id).await?;
            }
            sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                .bind(team.id)
                .bind(user_id)
                .execute(&self.db.pool)
                .await?;
            Ok(())
        }
        .await;
        self.audited(actor, "member.remove", username, team.as_ref().ok(), result)
            .await
    }

    async fn member(&self, team_id: i64, user_id: i64) -> Result<Member> {
        self.members(team_id)
            .await?
            .into_iter()
            .find(|m| m.user_id == user_id)
            .ok_or_else(|| Error::internal("member vanished"))
    }

    async fn keep_an_owner(&self, team_id: i64) -> Result<()> {
        let (owners,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM team_members WHERE team_id = $1 AND role = 'owner'",
        )
        .bind(team_id)
        .fetch_one(&self.db.pool)
        .await?;
        if owners <= 1 {
            return Err(Error::Conflict(
                "A team needs at least one owner; make someone else owner first.".into(),
            ));
        }
        Ok(())
    }
}

fn not_member(username: &str) -> Error {
    Error::NotFound(format!("{username} is not a member of this team."))
}
