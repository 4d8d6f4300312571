//! Apps (groups of components owned by a team) and their components, which
//! live in the team's datacenters. The console keeps where each component
//! lives and forwards the work to that datacenter's API.

use super::rbac::Action;
use super::{team_not_found, validate, Actor, ConsoleService, TeamRef};
use crate::db::{is_unique_violation, now_ms};
use crate::error::{Error, Result};
use app::model::*;
use datacenter::api::{ActionKind, ActionRequest, EventQuery, EventWithLines};
use datacenter::client::ClientError;

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api { status: 400, error } => Error::Invalid(error.message),
            ClientError::Api { status: 404, error } => Error::NotFound(error.message),
            ClientError::Api { status: 409, error } => Error::Conflict(error.message),
            ClientError::Api { status: 422, error } => Error::Invalid(error.message),
            ClientError::Unreachable(m) => {
                Error::Unavailable(format!("The datacenter cannot be reached: {m}"))
            }
            other => Error::Unavailable(other.to_string()),
        }
    }
}

pub(super) struct AppRef {
    pub(super) id: i64,
    pub(super) team: TeamRef,
}

impl ConsoleService {
    pub(super) async fn app_ref(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        action: Action,
    ) -> Result<AppRef> {
        let team = self.find_team(team).await?;
        self.authorize(actor, action, Some(&team)).await?;
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM apps WHERE team_id = $1 AND name = $2")
                .bind(team.id)
                .bind(app)
                .fetch_optional(&self.db.pool)
                .await?;
        let (id,) =
            row.ok_or_else(|| Error::NotFound(format!("Team {} has no app “{app}”.", team.name)))?;
        Ok(AppRef { id, team })
    }

    pub async fn list_apps(&self, actor: &Actor, team: &str) -> Result<Vec<App>> {
        let team = self.find_team(team).await?;
        self.authorize(actor, Action::ViewApps, Some(&team)).await?;
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT a.name, a.display_name, a.created_at, (SELECT COUNT(*) FROM component_locations c WHERE c.app_id = a.id) \
             FROM apps a WHERE a.team_id = $1 ORDER BY a.name",
        )
        .bind(team.id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, display_name, created_at, components)| App {
                name,
                display_name,
                team: team.name.clone(),
                created_at,
                components,
            })
            .collect())
    }

    pub async fn create_app(&self, actor: &Actor, team_name: &str, new: NewApp) -> Result<App> {
        let team = self.find_team(team_name).await;
        let name = new.name.trim().to_string();
        let result = async {
            let team = team.as_ref().map_err(|_| team_not_found(team_name))?;
            self.authorize(actor, Action::ManageApps, Some(team)).await?;
            validate::dns_label("app", &name)?;
            let display = validate::label("display name", new.display_name.as_deref().unwrap_or(&name), 100)?;
            let now = now_ms();
            sqlx::query("INSERT INTO apps (team_id, name, display_name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(team.id)
                .bind(&name)
                .bind(&display)
                .bind(now)
                .execute(&self.db.pool)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::Conflict(format!("Team {} already has an app “{name}”.", team.name))
                    } else {
                        e.into()
                    }
                })?;
            Ok(App { name: name.clone(), display_name: display, team: team.name.clone(), created_at: now, components: 0 })
        }
        .await;
        self.audited(actor, "app.create", &name, team.as_ref().ok(), result)
            .await
    }

    pub async fn delete_app(&self, actor: &Actor, team: &str, app: &str) -> Result<()> {
        let found = self.app_ref(actor, team, app, Action::ManageApps).await;
        let team_ref = found.as_ref().ok().map(|a| a.team.clone());
        let result = async {
            let a = found?;
            let (n,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM component_locations WHERE app_id = $1")
                    .bind(a.id)
                    .fetch_one(&self.db.pool)
                    .await?;
            if n > 0 {
                return Err(Error::Conflict(format!(
                    "The app still has {n} component(s); delete them first."
                )));
            }
            sqlx::query("DELETE FROM apps WHERE id = $1")
                .bind(a.id)
                .execute(&self.db.pool)
                .await?;
            Ok(())
        }
        .await;
        self.audited(actor, "app.delete", app, team_ref.as_ref(), result)
            .await
    }

    pub async fn app_detail(&self, actor: &Actor, team: &str, app: &str) -> Result<AppDetail> {
        let a = self.app_ref(actor, team, app, Action::ViewApps).await?;
        let (name, display_name, created_at): (String, String, i64) =
            sqlx::query_as("SELECT name, display_name, created_at FROM apps WHERE id = $1")
                .bind(a.id)
                .fetch_one(&self.db.pool)
                .await?;
        let places: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT d.name FROM component_locations c JOIN datacenters d ON d.id = c.datacenter_id WHERE c.app_id = $1 ORDER BY d.name",
        )
        .bind(a.id)
        .fetch_all(&self.db.pool)
        .await?;
        let mut components = vec![];
        let mut unreachable = vec![];
        for (dc,) in places {
            match self
                .client(&dc)
                .await?
                .components(&a.team.name, Some(&name))
                .await
            {
                Ok(list) => components.extend(list.into_iter().map(|component| PlacedComponent {
                    datacenter: dc.clone(),
                    component,
                })),
                Err(e) => {
                    tracing::warn!(datacenter = %dc, error = %e, "datacenter did not answer");
                    unreachable.push(dc);
                }
            }
        }
        components.sort_by(|x, y| x.component.name.cmp(&y.component.name));
        let datacenters = self
            .team_datacenters(actor, &a.team.name)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let count = components.len() as i64;
        Ok(AppDetail {
            app: App {
                name,
                display_name,
                team: a.team.name.clone(),
                created_at,
                components: count,
            },
            components,
            unreachable,
            datacenters,
            can_change: self
                .authorize(actor, Action::OperateComponents, Some(&a.team))
                .await
                .is_ok(),
            can_manage_app: self
                .authorize(actor, Action::ManageApps, Some(&a.team))
                .await
                .is_ok(),
        })
    }

    pub async fn create_component(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        new: NewComponent,
    ) -> Result<EventRef> {
        let found = self
            .app_ref(actor, team, app, Action::OperateComponents)
            .await;
        let team_ref = found.as_ref().ok().map(|a| a.team.clone());
        let target = format!("{app}/{} in {}", new.spec.name, new.datacenter);
        let result = async {
            let a = found?;
            let dc_id = self.team_may_use(a.team.id, &new.datacenter).await?;
            self.check_quota(
                a.team.id,
                &a.team.name,
                &new.datacenter,
                &super::quotas::Demand::of(app, &new.spec),
                true,
            )
            .await?;
            let placed = sqlx::query(
                "INSERT INTO component_locations (app_id, name, datacenter_id) VALUES ($1, $2, $3)",
            )
            .bind(a.id)
            .bind(&new.spec.name)
            .bind(dc_id)
            .execute(&self.db.pool)
            .await;
            if let Err(e) = placed {
                return Err(if is_unique_violation(&e) {
                    Error::Conflict(format!(
                        "App {app} already has a component named {}.",
                        new.spec.name
                    ))
                } else {
                    e.into()
                });
            }
            let created = self
                .client(&new.datacenter)
                .await?
                .create_component(&a.team.name, app, &new.spec, &actor.username)
                .await;
            match created {
                Ok(c) => Ok(EventRef {
                    datacenter: new.datacenter.clone(),
                    event_id: c.event_id,
                }),
                Err(e) => {
                    // Not created there: forget the placement again.
                    sqlx::query("DELETE FROM component_locations WHERE app_id = $1 AND name = $2")
                        .bind(a.id)
                        .bind(&new.spec.name)
                        .execute(&self.db.pool)
                        .await?;
                    Err(e.into())
                }
            }
        }
        .await;
        self.audited(
            actor,
            "component.create",
            &target,
            team_ref.as_ref(),
            result,
        )
        .await
    }

    pub(super) async fn placement(&self, app_id: i64, name: &str) -> Result<String> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT d.name FROM component_locations c JOIN datacenters d ON d.id = c.datacenter_id WHERE c.app_id = $1 AND c.name = $2",
        )
        .bind(app_id)
        .bind(name)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| r.0)
            .ok_or_else(|| Error::NotFound(format!("There is no component “{name}” in this app.")))
    }

    pub async fn component(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<PlacedComponent> {
        let a = self.app_ref(actor, team, app, Action::ViewApps).await?;
        let dc = self.placement(a.id, name).await?;
        let component = self
            .client(&dc)
            .await?
            .component(&a.team.name, app, name)
            .await?;
        Ok(PlacedComponent {
            datacenter: dc,
            component,
        })
    }

    pub async fn update_component(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        spec: datacenter::api::ComponentSpec,
    ) -> Result<EventRef> {
        let found = self
            .app_ref(actor, team, app, Action::OperateComponents)
            .await;
        let team_ref = found.as_ref().ok().map(|a| a.team.clone());
        let target = format!("{app}/{}", spec.name);
        let result = async {
            let a = found?;
            let dc = self.placement(a.id, &spec.name).await?;
            self.check_quota(
                a.team.id,
                &a.team.name,
                &dc,
                &super::quotas::Demand::of(app, &spec),
                false,
            )
            .await?;
            let done = self
                .client(&dc)
                .await?
                .update_component(&a.team.name, app, &spec, &actor.username)
                .await?;
            Ok(EventRef {
                datacenter: dc,
                event_id: done.event_id,
            })
        }
        .await;
        self.audited(
            actor,
            "component.update",
            &target,
            team_ref.as_ref(),
            result,
        )
        .await
    }

    pub async fn delete_component(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<EventRef> {
        let found = self
            .app_ref(actor, team, app, Action::OperateComponents)
            .await;
        let team_ref = found.as_ref().ok().map(|a| a.team.clone());
        let result = async {
            let a = found?;
            let dc = self.placement(a.id, name).await?;
            let accepted = self
                .client(&dc)
                .await?
                .delete_component(&a.team.name, app, name, &actor.username)
                .await?;
            sqlx::query("DELETE FROM component_locations WHERE app_id = $1 AND name = $2")
                .bind(a.id)
                .bind(name)
                .execute(&self.db.pool)
                .await?;
            Ok(EventRef {
                datacenter: dc,
                event_id: accepted.event_id,
            })
        }
        .await;
        self.audited(
            actor,
            "component.delete",
            &format!("{app}/{name}"),
            team_ref.as_ref(),
            result,
        )
        .await
    }

    pub async fn act_on_component(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
        action: ComponentAction,
    ) -> Result<EventRef> {
        let found = self
            .app_ref(actor, team, app, Action::OperateComponents)
            .await;
        let team_ref = found.as_ref().ok().map(|a| a.team.clone());
        let target = match &action.version {
            Some(v) => format!("{app}/{name} {} {v}", action.action.as_str()),
            None => format!("{app}/{name} {}", action.action.as_str()),
        };
        let result = async {
            let a = found?;
            if action.action == ActionKind::Rollback && action.version.is_none() {
                return Err(Error::Invalid("Say which version to roll back to.".into()));
            }
            let dc = self.placement(a.id, name).await?;
            if let (ActionKind::Scale, Some(replicas)) = (action.action, action.replicas) {
                let current = self
                    .client(&dc)
                    .await?
                    .component(&a.team.name, app, name)
                    .await?;
                let demand = super::quotas::Demand {
                    app: app.into(),
                    name: name.into(),
                    replicas,
                    memory_mb: current.resources.memory_mb,
                    cpu_millicores: current.resources.cpu_millicores,
                };
                self.check_quota(a.team.id, &a.team.name, &dc, &demand, false)
                    .await?;
            }
            let req = ActionRequest {
                action: action.action,
                actor: actor.username.clone(),
                replicas: action.replicas,
                version: action.version.clone(),
            };
            let accepted = self
                .client(&dc)
                .await?
                .act(&a.team.name, app, name, &req)
                .await?;
            Ok(EventRef {
                datacenter: dc,
                event_id: accepted.event_id,
            })
        }
        .await;
        self.audited(
            actor,
            "component.action",
            &target,
            team_ref.as_ref(),
            result,
        )
        .await
    }

    /// The team's recent events across its datacenters, newest first.
    pub async fn team_events(
        &self,
        actor: &Actor,
        team: &str,
        app: Option<String>,
        component: Option<String>,
    ) -> Result<Vec<PlacedEvent>> {
        let t = self.find_team(team).await?;
        self.authorize(actor, Action::ViewApps, Some(&t)).await?;
        let q = EventQuery {
            app,
            component,
            limit: Some(50),
        };
        let mut all = vec![];
        for dc in self.team_datacenters(actor, team).await? {
            match self.client(&dc.name).await?.events(&t.name, &q).await {
                Ok(events) => all.extend(events.into_iter().map(|event| PlacedEvent {
                    datacenter: dc.name.clone(),
                    event,
                })),
                Err(e) => {
                    tracing::warn!(datacenter = %dc.name, error = %e, "datacenter did not answer")
                }
            }
        }
        all.sort_by(|a, b| {
            b.event
                .created_at
                .cmp(&a.event.created_at)
                .then(b.event.id.cmp(&a.event.id))
        });
        all.truncate(50);
        Ok(all)
    }

    /// One event with its log, if it belongs to `team`.
    pub async fn team_event(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        id: &str,
    ) -> Result<EventWithLines> {
        let t = self.find_team(team).await?;
        self.authorize(actor, Action::ViewApps, Some(&t)).await?;
        let ev = self.client(dc).await?.event(id).await?;
        if ev.event.team != t.name {
            return Err(Error::NotFound(format!(
                "There is no event {id} in team {}.",
                t.name
            )));
        }
        Ok(ev)
    }
}
