//! Server functions: the UI's calls into the console. Each one only forwards to
//! the [`Console`](crate::service::Console) port, which authenticates and
//! authorises the caller.

use crate::error::AppError;
use crate::model::*;
use leptos::prelude::*;

/// A refusal of the caller's input: 422 on the wire, not a server error.
#[cfg(feature = "ssr")]
fn invalid(message: impl Into<String>) -> AppError {
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::UNPROCESSABLE_ENTITY);
    }
    AppError::new("invalid", message)
}

#[cfg(feature = "ssr")]
fn console() -> Result<(crate::service::ConsoleHandle, http::request::Parts), AppError> {
    let console = use_context::<crate::service::ConsoleHandle>()
        .ok_or_else(|| AppError::new("internal", "console service missing"))?;
    let parts = use_context::<http::request::Parts>()
        .ok_or_else(|| AppError::new("internal", "request missing"))?;
    Ok((console, parts))
}

#[server(prefix = "/rpc", endpoint = "me")]
pub async fn get_me() -> Result<Option<Me>, AppError> {
    let (c, req) = console()?;
    match c.me(&req).await {
        Ok(me) => Ok(Some(me)),
        Err(e) if e.is_unauthorized() => {
            // Being signed out is an answer here, not a failed request.
            if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
                resp.set_status(http::StatusCode::OK);
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[server(prefix = "/rpc", endpoint = "login")]
pub async fn login(username: String, password: String) -> Result<(), AppError> {
    let (c, req) = console()?;
    c.login(&req, Credentials { username, password }).await?;
    leptos_axum::redirect("/");
    Ok(())
}

#[server(prefix = "/rpc", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let (c, req) = console()?;
    c.logout(&req).await?;
    leptos_axum::redirect("/login");
    Ok(())
}

#[server(prefix = "/rpc", endpoint = "change_password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
    confirm_password: String,
) -> Result<(), AppError> {
    if new_password != confirm_password {
        return Err(invalid("The new passwords do not match."));
    }
    let (c, req) = console()?;
    c.change_password(
        &req,
        PasswordChange {
            current_password,
            new_password,
        },
    )
    .await
}

#[server(prefix = "/rpc", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<User>, AppError> {
    let (c, req) = console()?;
    c.list_users(&req).await
}

#[server(prefix = "/rpc", endpoint = "create_user")]
pub async fn create_user(
    username: String,
    password: String,
    #[server(default)] is_admin: Option<String>,
) -> Result<User, AppError> {
    let (c, req) = console()?;
    c.create_user(
        &req,
        NewUser {
            username,
            password,
            is_admin: is_admin.is_some(),
        },
    )
    .await
}

#[server(prefix = "/rpc", endpoint = "set_user_disabled")]
pub async fn set_user_disabled(id: i64, disabled: bool) -> Result<User, AppError> {
    let (c, req) = console()?;
    c.update_user(
        &req,
        id,
        UserUpdate {
            disabled: Some(disabled),
            ..Default::default()
        },
    )
    .await
}

#[server(prefix = "/rpc", endpoint = "list_teams")]
pub async fn list_teams() -> Result<Vec<Team>, AppError> {
    let (c, req) = console()?;
    c.list_teams(&req).await
}

#[server(prefix = "/rpc", endpoint = "create_team")]
pub async fn create_team(
    name: String,
    #[server(default)] display_name: Option<String>,
) -> Result<Team, AppError> {
    let (c, req) = console()?;
    let display_name = display_name.filter(|d| !d.trim().is_empty());
    c.create_team(&req, NewTeam { name, display_name }).await
}

#[server(prefix = "/rpc", endpoint = "team_detail")]
pub async fn get_team_detail(team: String) -> Result<TeamDetail, AppError> {
    let (c, req) = console()?;
    c.team_detail(&req, &team).await
}

#[server(prefix = "/rpc", endpoint = "delete_team")]
pub async fn delete_team(team: String, confirm: String) -> Result<(), AppError> {
    if confirm != team {
        return Err(invalid("Type the team's name to confirm its deletion."));
    }
    let (c, req) = console()?;
    c.delete_team(&req, &team).await?;
    leptos_axum::redirect("/teams");
    Ok(())
}

#[server(prefix = "/rpc", endpoint = "add_member")]
pub async fn add_member(team: String, username: String, role: String) -> Result<Member, AppError> {
    let (c, req) = console()?;
    let role = Role::parse(&role).ok_or_else(|| invalid("Unknown role."))?;
    c.add_member(&req, &team, NewMember { username, role })
        .await
}

#[server(prefix = "/rpc", endpoint = "change_member_role")]
pub async fn change_member_role(
    team: String,
    username: String,
    role: String,
) -> Result<Member, AppError> {
    let (c, req) = console()?;
    let role = Role::parse(&role).ok_or_else(|| invalid("Unknown role."))?;
    c.change_member_role(&req, &team, &username, role).await
}

#[server(prefix = "/rpc", endpoint = "remove_member")]
pub async fn remove_member(team: String, username: String) -> Result<(), AppError> {
    let (c, req) = console()?;
    c.remove_member(&req, &team, &username).await
}

#[server(prefix = "/rpc", endpoint = "list_tokens")]
pub async fn list_tokens() -> Result<Vec<ApiToken>, AppError> {
    let (c, req) = console()?;
    c.list_tokens(&req).await
}

#[server(prefix = "/rpc", endpoint = "create_token")]
pub async fn create_token(name: String, scope: String) -> Result<CreatedToken, AppError> {
    let (c, req) = console()?;
    let scope = TokenScope::parse(&scope).ok_or_else(|| invalid("Unknown scope."))?;
    c.create_token(&req, NewToken { name, scope }).await
}

#[server(prefix = "/rpc", endpoint = "revoke_token")]
pub async fn revoke_token(id: i64) -> Result<(), AppError> {
    let (c, req) = console()?;
    c.revoke_token(&req, id).await
}

#[server(prefix = "/rpc", endpoint = "audit")]
pub async fn audit(
    #[server(default)] team: Option<String>,
    #[server(default)] before: Option<i64>,
) -> Result<Vec<AuditEntry>, AppError> {
    let (c, req) = console()?;
    let team = team.filter(|t| !t.is_empty());
    c.audit(
        &req,
        AuditQuery {
            team,
            before,
            limit: Some(100),
        },
    )
    .await
}

#[server(prefix = "/rpc", endpoint = "list_datacenters")]
pub async fn list_datacenters() -> Result<Vec<Datacenter>, AppError> {
    let (c, req) = console()?;
    c.list_datacenters(&req).await
}

#[server(prefix = "/rpc", endpoint = "add_datacenter")]
pub async fn add_datacenter(
    name: String,
    url: String,
    token: String,
    #[server(default)] gateway: Option<String>,
) -> Result<Datacenter, AppError> {
    let (c, req) = console()?;
    c.add_datacenter(
        &req,
        NewDatacenter {
            name,
            url,
            token,
            gateway: gateway.filter(|g| !g.trim().is_empty()),
        },
    )
    .await
}

#[server(prefix = "/rpc", endpoint = "remove_datacenter")]
pub async fn remove_datacenter(
    name: String,
    #[server(default)] force: Option<String>,
) -> Result<(), AppError> {
    let (c, req) = console()?;
    c.remove_datacenter(&req, &name, force.is_some()).await
}

#[server(prefix = "/rpc", endpoint = "team_datacenters")]
pub async fn team_datacenters(team: String) -> Result<Vec<Datacenter>, AppError> {
    let (c, req) = console()?;
    c.team_datacenters(&req, &team).await
}

#[server(prefix = "/rpc", endpoint = "open_datacenter")]
pub async fn open_datacenter(team: String, datacenter: String) -> Result<(), AppError> {
    let (c, req) = console()?;
    c.open_datacenter(&req, &team, &datacenter).await
}

/// The team's quota and use in each datacenter it may use (those that answer).
#[server(prefix = "/rpc", endpoint = "team_quotas")]
pub async fn team_quotas(team: String) -> Result<Vec<QuotaUsage>, AppError> {
    let (c, req) = console()?;
    c.team_quotas(&req, &team).await
}

/// Empty fields mean no limit.
#[server(prefix = "/rpc", endpoint = "set_team_quota")]
pub async fn set_team_quota(
    team: String,
    datacenter: String,
    #[server(default)] max_components: Option<String>,
    #[server(default)] max_memory_mb: Option<String>,
    #[server(default)] max_cpu_millicores: Option<String>,
) -> Result<(), AppError> {
    let number = |what: &str, v: Option<String>| -> Result<Option<i64>, AppError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| AppError {
                error: "invalid".into(),
                message: format!("{what} must be a whole number, or empty for no limit."),
            }),
        }
    };
    let quota = Quota {
        max_components: number("Components", max_components)?,
        max_memory_mb: number("Memory", max_memory_mb)?,
        max_cpu_millicores: number("CPU", max_cpu_millicores)?,
    };
    let (c, req) = console()?;
    c.set_team_quota(&req, &team, &datacenter, quota).await
}

#[server(prefix = "/rpc", endpoint = "list_apps")]
pub async fn list_apps(team: String) -> Result<Vec<App>, AppError> {
    let (c, req) = console()?;
    c.list_apps(&req, &team).await
}

#[server(prefix = "/rpc", endpoint = "create_app")]
pub async fn create_app(
    team: String,
    name: String,
    #[server(default)] display_name: Option<String>,
) -> Result<App, AppError> {
    let (c, req) = console()?;
    c.create_app(
        &req,
        &team,
        NewApp {
            name,
            display_name: display_name.filter(|d| !d.trim().is_empty()),
        },
    )
    .await
}

#[server(prefix = "/rpc", endpoint = "app_detail")]
pub async fn get_app_detail(team: String, app: String) -> Result<AppDetail, AppError> {
    let (c, req) = console()?;
    c.app_detail(&req, &team, &app).await
}

/// The component form: the common settings; the REST API takes the full spec.
#[server(prefix = "/rpc", endpoint = "create_component")]
#[allow(clippy::too_many_arguments)]
pub async fn create_component(
    team: String,
    app: String,
    datacenter: String,
    name: String,
    source_kind: String,
    #[server(default)] source: Option<String>,
    #[server(default)] reference: Option<String>,
    #[server(default)] run_command: Option<String>,
    #[server(default)] port: Option<String>,
    #[server(default)] replicas: Option<String>,
) -> Result<EventRef, AppError> {
    use datacenter::api::*;
    let source = source_from_form(&source_kind, source, reference)?;
    let port = match port.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| invalid("The port must be a number from 1 to 65535."))?,
        ),
        None => None,
    };
    let replicas = match replicas.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => r
            .parse::<u32>()
            .map_err(|_| invalid("Replicas must be a whole number."))?,
        None => 1,
    };
    let spec = ComponentSpec {
        name: name.trim().to_string(),
        source,
        build: BuildSettings {
            run_command: run_command.filter(|r| !r.trim().is_empty()),
            ..Default::default()
        },
        ports: port
            .map(|p| {
                vec![Port {
                    port: p,
                    protocol: Protocol::Http,
                    inner: true,
                    outer: true,
                }]
            })
            .unwrap_or_default(),
        env: vec![],
        secrets: Default::default(),
        volumes: vec![],
        dependencies: vec![],
        health: port.map(|p| HealthProbe::Tcp { port: p }),
        resources: Resources::default(),
        replicas,
    };
    let (c, req) = console()?;
    c.create_component(&req, &team, &app, NewComponent { datacenter, spec })
        .await
}

#[server(prefix = "/rpc", endpoint = "operate_component")]
pub async fn operate_component(
    team: String,
    app: String,
    name: String,
    action: String,
    #[server(default)] version: Option<String>,
) -> Result<EventRef, AppError> {
    use datacenter::api::ActionKind;
    let (c, req) = console()?;
    let action = match action.as_str() {
        "start" => ActionKind::Start,
        "stop" => ActionKind::Stop,
        "restart" => ActionKind::Restart,
        "build" => ActionKind::Build,
        "deploy" => ActionKind::Deploy,
        "rollback" => ActionKind::Rollback,
        "delete" => return c.delete_component(&req, &team, &app, &name).await,
        _ => return Err(invalid("Unknown action.")),
    };
    c.act_on_component(
        &req,
        &team,
        &app,
        &name,
        ComponentAction {
            action,
            replicas: None,
            version: version.filter(|v| !v.trim().is_empty()),
        },
    )
    .await
}

#[server(prefix = "/rpc", endpoint = "team_events")]
pub async fn team_events(
    team: String,
    #[server(default)] app: Option<String>,
) -> Result<Vec<PlacedEvent>, AppError> {
    let (c, req) = console()?;
    c.team_events(&req, &team, app).await
}

#[server(prefix = "/rpc", endpoint = "team_event")]
pub async fn team_event(
    team: String,
    datacenter: String,
    id: String,
) -> Result<datacenter::api::EventWithLines, AppError> {
    let (c, req) = console()?;
    c.team_event(&req, &team, &datacenter, &id).await
}

#[server(prefix = "/rpc", endpoint = "component")]
pub async fn get_component(
    team: String,
    app: String,
    name: String,
) -> Result<PlacedComponent, AppError> {
    let (c, req) = console()?;
    c.component(&req, &team, &app, &name).await
}

/// Saves the component's settings from their JSON form. Secrets are given
/// separately (`NAME=value` lines, write-only); an empty value deletes one.
#[server(prefix = "/rpc", endpoint = "update_component")]
pub async fn update_component(
    team: String,
    app: String,
    name: String,
    settings: String,
    #[server(default)] secrets: Option<String>,
) -> Result<EventRef, AppError> {
    let mut spec: datacenter::api::ComponentSpec =
        serde_json::from_str(&settings).map_err(|e| {
            invalid(format!(
                "The settings are not valid JSON for a component: {e}"
            ))
        })?;
    if spec.name != name {
        return Err(invalid("A component cannot be renamed."));
    }
    for line in secrets
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| invalid(format!("“{line}” is not NAME=value.")))?;
        spec.secrets.insert(k.trim().to_string(), v.to_string());
    }
    let (c, req) = console()?;
    c.update_component(&req, &team, &app, spec).await
}

#[server(prefix = "/rpc", endpoint = "scale_component")]
pub async fn scale_component(
    team: String,
    app: String,
    name: String,
    replicas: u32,
) -> Result<EventRef, AppError> {
    let (c, req) = console()?;
    c.act_on_component(
        &req,
        &team,
        &app,
        &name,
        ComponentAction {
            action: datacenter::api::ActionKind::Scale,
            replicas: Some(replicas),
            version: None,
        },
    )
    .await
}

/// A component's settings as the JSON the settings editor shows, made on the
/// server so the browser bundle carries no serialiser for them.
#[server(prefix = "/rpc", endpoint = "component_settings")]
pub async fn component_settings(
    team: String,
    app: String,
    name: String,
) -> Result<String, AppError> {
    let (c, req) = console()?;
    let comp = c.component(&req, &team, &app, &name).await?.component;
    let spec = datacenter::api::ComponentSpec {
        name: comp.name,
        source: comp.source,
        build: comp.build,
        ports: comp.ports,
        env: comp.env,
        secrets: Default::default(),
        volumes: comp.volumes,
        dependencies: comp.dependencies,
        health: comp.health,
        resources: comp.resources,
        replicas: comp.replicas,
    };
    serde_json::to_string_pretty(&spec).map_err(|e| AppError::new("internal", e.to_string()))
}

/// The source a form describes: its kind, the git URL or image, and the git ref.
#[cfg(feature = "ssr")]
fn source_from_form(
    kind: &str,
    source: Option<String>,
    reference: Option<String>,
) -> Result<datacenter::api::Source, AppError> {
    use datacenter::api::Source;
    let source = source.unwrap_or_default().trim().to_string();
    let reference = reference
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "main".into());
    let need = |what: &str| {
        if source.is_empty() {
            Err(invalid(format!("Give the {what}.")))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        "git" => {
            need("git repository URL")?;
            Source::Git {
                url: source,
                reference,
            }
        }
        "dockerfile" => {
            need("git repository URL")?;
            Source::Dockerfile {
                url: source,
                reference,
            }
        }
        "image" => {
            need("image")?;
            Source::Image { image: source }
        }
        "upload" => Source::Upload,
        _ => return Err(invalid("Choose a source.")),
    })
}

/// What the caller may do to the team's components (to show the right controls).
#[server(prefix = "/rpc", endpoint = "component_rights")]
pub async fn get_component_rights(team: String) -> Result<ComponentRights, AppError> {
    let (c, req) = console()?;
    c.component_rights(&req, &team).await
}

#[server(prefix = "/rpc", endpoint = "versions")]
pub async fn list_versions(
    team: String,
    app: String,
    name: String,
) -> Result<Vec<datacenter::api::Version>, AppError> {
    let (c, req) = console()?;
    c.versions(&req, &team, &app, &name).await
}

#[server(prefix = "/rpc", endpoint = "replicas")]
pub async fn list_replicas(
    team: String,
    app: String,
    name: String,
) -> Result<Vec<datacenter::api::ReplicaInfo>, AppError> {
    let (c, req) = console()?;
    c.replicas(&req, &team, &app, &name).await
}

/// Searches the component's stored output for `q` (the newest 1,000 matches).
#[server(prefix = "/rpc", endpoint = "search_logs")]
pub async fn search_logs(
    team: String,
    app: String,
    name: String,
    q: String,
) -> Result<datacenter::api::LogPage, AppError> {
    let (c, req) = console()?;
    let query = datacenter::api::LogQuery {
        q: Some(q).filter(|q| !q.is_empty()),
        since: None,
        until: None,
        limit: Some(1000),
    };
    c.component_logs(&req, &team, &app, &name, query).await
}

#[server(prefix = "/rpc", endpoint = "webhook")]
pub async fn get_webhook(
    team: String,
    app: String,
    name: String,
) -> Result<WebhookEndpoint, AppError> {
    let (c, req) = console()?;
    c.webhook(&req, &team, &app, &name).await
}

/// What the datacenter's builder would do with a source, before creating
/// anything.
#[server(prefix = "/rpc", endpoint = "detect")]
pub async fn detect_plan(
    team: String,
    datacenter: String,
    source_kind: String,
    #[server(default)] source: Option<String>,
    #[server(default)] reference: Option<String>,
    #[server(default)] run_command: Option<String>,
) -> Result<datacenter::api::DetectedPlan, AppError> {
    let source = source_from_form(&source_kind, source, reference)?;
    let request = datacenter::api::DetectRequest {
        source,
        build: datacenter::api::BuildSettings {
            run_command: run_command.filter(|r| !r.trim().is_empty()),
            ..Default::default()
        },
    };
    let (c, req) = console()?;
    c.detect(&req, &team, &datacenter, request).await
}

/// The team's routes, certificates and gateway traffic in every datacenter
/// it is opened in, with what the caller may change.
#[server(prefix = "/rpc", endpoint = "team_gateway")]
pub async fn get_team_gateway(team: String) -> Result<RoutesView, AppError> {
    let (c, req) = console()?;
    Ok(c.team_gateway(&req, &team).await?.into())
}

/// A route target from the forms: `datacenter/app/component`.
#[cfg(feature = "ssr")]
fn parse_target(value: &str) -> Result<(String, String, String), AppError> {
    let mut parts = value.trim().splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(dc), Some(app), Some(c)) if !dc.is_empty() && !app.is_empty() && !c.is_empty() => {
            Ok((dc.into(), app.into(), c.into()))
        }
        _ => Err(invalid("Choose a component from the list.")),
    }
}

#[cfg(feature = "ssr")]
fn parse_balance(value: Option<String>) -> Result<datacenter::api::Balance, AppError> {
    use datacenter::api::Balance;
    match value.as_deref().unwrap_or("round_robin") {
        "" | "round_robin" => Ok(Balance::RoundRobin),
        "least_connections" => Ok(Balance::LeastConnections),
        _ => Err(invalid("Choose round robin or least connections.")),
    }
}

/// The add-route form: a domain and path, up to three targets chosen from
/// the team's components (`datacenter/app/component`) with weights, and an
/// optional header and cookie to match. The route lives in the datacenter
/// of its targets; the REST API takes any number of them.
#[server(prefix = "/rpc", endpoint = "create_http_route")]
#[allow(clippy::too_many_arguments)]
pub async fn create_http_route(
    team: String,
    domain: String,
    #[server(default)] path_prefix: Option<String>,
    #[server(default)] target_1: Option<String>,
    #[server(default)] weight_1: Option<String>,
    #[server(default)] target_2: Option<String>,
    #[server(default)] weight_2: Option<String>,
    #[server(default)] target_3: Option<String>,
    #[server(default)] weight_3: Option<String>,
    #[server(default)] header_name: Option<String>,
    #[server(default)] header_value: Option<String>,
    #[server(default)] cookie_name: Option<String>,
    #[server(default)] cookie_value: Option<String>,
    #[server(default)] balance: Option<String>,
    #[server(default)] https_redirect: Option<String>,
) -> Result<(), AppError> {
    use datacenter::api::{HttpRouteSpec, RouteTarget, ValueMatch};
    let mut datacenter: Option<String> = None;
    let mut targets = vec![];
    for (target, weight) in [
        (target_1, weight_1),
        (target_2, weight_2),
        (target_3, weight_3),
    ] {
        let Some(target) = target.filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        let (dc, app, component) = parse_target(&target)?;
        if datacenter.as_ref().is_some_and(|d| *d != dc) {
            return Err(invalid(
                "All targets of a route must live in the same datacenter.",
            ));
        }
        datacenter = Some(dc);
        let weight = match weight.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
            None => 1,
            Some(w) => w
                .parse()
                .map_err(|_| invalid("A weight is a whole number, like 90 or 10."))?,
        };
        targets.push(RouteTarget {
            app,
            component,
            weight,
        });
    }
    let datacenter =
        datacenter.ok_or_else(|| invalid("Choose at least one component to send traffic to."))?;
    let matched = |name: Option<String>, value: Option<String>| {
        name.map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .map(|name| ValueMatch {
                name,
                value: value.unwrap_or_default(),
            })
    };
    let spec = HttpRouteSpec {
        domain: domain.trim().to_string(),
        path_prefix: path_prefix
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into()),
        header: matched(header_name, header_value),
        cookie: matched(cookie_name, cookie_value),
        targets,
        balance: parse_balance(balance)?,
        https_redirect: https_redirect.is_some(),
    };
    let (c, req) = console()?;
    c.create_http_route(&req, &team, &datacenter, spec).await?;
    Ok(())
}

/// The add-TCP-route form: a gateway port and the component
/// (`datacenter/app/component`) its connections go to.
#[server(prefix = "/rpc", endpoint = "create_tcp_route")]
pub async fn create_tcp_route(
    team: String,
    listen_port: String,
    target: String,
    #[server(default)] balance: Option<String>,
) -> Result<(), AppError> {
    let listen_port = listen_port
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid("The gateway port is a number from 1024 to 65535."))?;
    let (datacenter, app, component) = parse_target(&target)?;
    let spec = datacenter::api::TcpRouteSpec {
        listen_port,
        app,
        component,
        balance: parse_balance(balance)?,
    };
    let (c, req) = console()?;
    c.create_tcp_route(&req, &team, &datacenter, spec).await?;
    Ok(())
}

#[server(prefix = "/rpc", endpoint = "upload_certificate")]
pub async fn upload_certificate(
    team: String,
    datacenter: String,
    name: String,
    cert_pem: String,
    key_pem: String,
) -> Result<(), AppError> {
    let upload = datacenter::api::CertificateUpload {
        name: name.trim().to_string(),
        cert_pem,
        key_pem,
    };
    let (c, req) = console()?;
    c.upload_certificate(&req, &team, &datacenter, upload)
        .await?;
    Ok(())
}

/// Deletes one thing from a team's gateway: an HTTP route or TCP route (by
/// id) or a certificate (by name). One server function for the three keeps
/// the browser bundle smaller.
#[server(prefix = "/rpc", endpoint = "delete_from_gateway")]
pub async fn delete_from_gateway(
    team: String,
    datacenter: String,
    kind: String,
    key: String,
) -> Result<(), AppError> {
    let (c, req) = console()?;
    match kind.as_str() {
        "http" => c.delete_http_route(&req, &team, &datacenter, &key).await,
        "tcp" => c.delete_tcp_route(&req, &team, &datacenter, &key).await,
        "certificate" => c.delete_certificate(&req, &team, &datacenter, &key).await,
        _ => Err(invalid("Say what to delete: http, tcp or certificate.")),
    }
}
