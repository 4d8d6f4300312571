use super::logs::LogsPanel;
use crate::api::{
    component_settings, get_component, get_component_rights, get_webhook, list_replicas,
    list_versions, DetectPlan, OperateComponent, ScaleComponent, UpdateComponent,
};
use crate::components::{
    action_result, event_result, format_duration, format_time, use_refresh, EmptyState, ErrorBox,
    Loading, PlanView,
};
use crate::model::{ComponentRights, PlacedComponent};
use datacenter::api::{HealthProbe, ReplicaInfo, Source, Version};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// One component: its state and versions, its replicas, its live output,
/// the controls to build and run it, its webhook and its settings.
#[component]
pub fn ComponentPage() -> impl IntoView {
    let params = use_params_map();
    let p = move |k: &str| params.read().get(k).unwrap_or_default();
    let update = ServerAction::<UpdateComponent>::new();
    let scale = ServerAction::<ScaleComponent>::new();
    let act = ServerAction::<OperateComponent>::new();
    let tick = use_refresh(5);
    // The overview, versions and replicas follow the component's state; the
    // controls, logs and forms load once, so a refresh never wipes what
    // someone is typing or reading.
    let live = Resource::new(
        move || {
            (
                p("team"),
                p("app"),
                p("name"),
                update.version().get(),
                scale.version().get(),
                act.version().get(),
                tick.get(),
            )
        },
        |(t, a, n, ..)| get_component(t, a, n),
    );
    let placed = Resource::new(
        move || (p("team"), p("app"), p("name")),
        |(t, a, n)| get_component(t, a, n),
    );
    let rights = Resource::new(move || p("team"), get_component_rights);
    let versions = Resource::new(
        move || {
            (
                p("team"),
                p("app"),
                p("name"),
                act.version().get(),
                tick.get(),
            )
        },
        |(t, a, n, ..)| list_versions(t, a, n),
    );
    let replicas = Resource::new(
        move || {
            (
                p("team"),
                p("app"),
                p("name"),
                scale.version().get(),
                act.version().get(),
                tick.get(),
            )
        },
        |(t, a, n, ..)| list_replicas(t, a, n),
    );
    let editable = Resource::new(
        move || {
            (
                p("team"),
                p("app"),
                p("name"),
                update.version().get(),
                scale.version().get(),
            )
        },
        |(t, a, n, ..)| component_settings(t, a, n),
    );
    let team = move || p("team");
    view! {
        <Title text=move || format!("{} · Cloudport", p("name"))/>
        <p class="crumbs">
            <a href=move || format!("/teams/{}", p("team"))>{move || p("team")}</a>" / "
            <a href=move || format!("/teams/{}/apps/{}", p("team"), p("app"))>{move || p("app")}</a>" / "{move || p("name")}
        </p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match live.await {
                    Ok(pc) => view! { <Overview pc/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let (Ok(pc), Ok(r)) = (placed.await, rights.await) else { return ().into_any() };
                r.can_operate.then(|| view! { <Controls pc act/> }).into_any()
            })}
        </Suspense>
        {event_result(move || act.value().get(), team, "Queued.")}

        <section class="versions">
            <h2>"Versions"</h2>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    let can_operate = rights.await.map(|r| r.can_operate).unwrap_or(false);
                    let dc = placed.await.map(|pc| pc.datacenter).unwrap_or_default();
                    match versions.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState title="No versions yet — build the component to create one.">
                                "Each build makes an immutable version: its artifact and the settings it ran with. Rolling back deploys one of them exactly as it was."
                            </EmptyState>
                        }.into_any(),
                        Ok(list) => view! { <VersionTable list team=p("team") app=p("app") name=p("name") dc can_operate act/> }.into_any(),
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>

        <section class="replicas">
            <h2>"Replicas"</h2>
            <Transition fallback=Loading>
                {move || Suspend::new(async move {
                    match replicas.await {
                        Ok(list) if list.is_empty() => view! {
                            <EmptyState title="No replicas running.">
                                "Start or deploy the component, or scale it up, and its copies appear here."
                            </EmptyState>
                        }.into_any(),
                        Ok(list) => view! { <ReplicaTable list/> }.into_any(),
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    }
                })}
            </Transition>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let can_operate = rights.await.map(|r| r.can_operate).unwrap_or(false);
                    can_operate.then(|| view! { <ScaleForm team=p("team") app=p("app") name=p("name") scale/> })
                })}
            </Suspense>
            {action_result(move || scale.value().get(), "Scaling queued.")}
        </section>

        <section class="logs-section">
            <h2>"Logs"</h2>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match placed.await {
                        Ok(pc) => view! { <LogsPanel team=p("team") app=p("app") name=p("name") datacenter=pc.datacenter/> }.into_any(),
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>

        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let r: ComponentRights = rights.await.unwrap_or_default();
                let from_git = placed.await.is_ok_and(|pc| matches!(pc.component.source, Source::Git { .. } | Source::Dockerfile { .. }));
                r.can_see_webhook.then(|| view! { <WebhookBox team=p("team") app=p("app") name=p("name") from_git/> })
            })}
        </Suspense>

        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let can_operate = rights.await.map(|r| r.can_operate).unwrap_or(false);
                let settings = editable.await.ok()?;
                can_operate.then(|| view! { <Edit settings team=p("team") app=p("app") name=p("name") update/> })
            })}
        </Transition>
        {action_result(move || update.value().get(), "Saved: the update event applies it.")}
    }
}

fn describe_source(source: &Source) -> String {
    match source {
        Source::Git { url, reference } => format!("git {url} @ {reference}"),
        Source::Dockerfile { url, reference } => format!("Dockerfile from {url} @ {reference}"),
        Source::Image { image } => format!("image {image}"),
        Source::Upload => "upload (an archive sent from the console or `cloudport push`)".into(),
    }
}

#[component]
fn Overview(pc: PlacedComponent) -> impl IntoView {
    let c = pc.component;
    let source = describe_source(&c.source);
    let health = match &c.health {
        Some(HealthProbe::Http { port, path }) => format!("HTTP GET {path} on port {port}"),
        Some(HealthProbe::Tcp { port }) => format!("TCP connect to port {port}"),
        None => "none: running means the process stays up".into(),
    };
    view! {
        <h1>{c.name.clone()} " " <span class=format!("status status-{}", c.status.as_str())>{c.status.as_str().replace('_', " ")}</span></h1>
        {c.status_message.clone().filter(|m| !m.is_empty()).map(|m| view! { <p class="status-message muted">{m}</p> })}
        <dl class="facts card">
            <dt>"Datacenter"</dt><dd>{pc.datacenter.clone()}</dd>
            <dt>"Source"</dt><dd><code>{source}</code></dd>
            <dt>"Version"</dt><dd>{c.version.clone().unwrap_or_else(|| "none deployed yet".into())}</dd>
            <dt>"Address"</dt>
            <dd class="address">{match c.url.clone() {
                // Nothing listens there: the component declares no port.
                _ if c.ports.is_empty() => view! { <span class="muted">"none: it declares no port"</span> }.into_any(),
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => view! { <a href=u.clone() target="_blank" rel="noopener">{u.clone()}</a> }.into_any(),
                Some(u) => view! { <code>{u}</code> }.into_any(),
                None => view! { <span class="muted">"not yet: it gets one once it has run"</span> }.into_any(),
            }}</dd>
            {(!c.urls.is_empty()).then(|| view! {
                <dt>"URLs"</dt>
                <dd class="urls">
                    {c.urls.iter().map(|u| view! { <a href=u.clone() target="_blank" rel="noopener">{u.clone()}</a> }).collect_view()}
                    <a class="muted small" href=format!("/teams/{}/routes", c.team)>"routes…"</a>
                </dd>
            })}
            <dt>"Run command"</dt><dd><code>{c.build.run_command.clone().unwrap_or_else(|| "—".into())}</code></dd>
            <dt>"Replicas"</dt><dd>{c.replicas} {if c.desired_running { " (should run)" } else { " (stopped by choice)" }}</dd>
            <dt>"Resources"</dt><dd>{format!("{} millicores, {} MB", c.resources.cpu_millicores, c.resources.memory_mb)}</dd>
            <dt>"Health check"</dt><dd>{health}</dd>
            <dt>"Ports"</dt>
            <dd>{if c.ports.is_empty() { "none".to_string() } else {
                c.ports.iter().map(|p| format!("{} {}{}{}", p.port, if p.protocol == datacenter::api::Protocol::Http { "http" } else { "tcp" }, if p.inner { " inner" } else { "" }, if p.outer { " outer" } else { "" })).collect::<Vec<_>>().join(", ")
            }}</dd>
            <dt>"Environment"</dt>
            <dd>{if c.env.is_empty() { "none".to_string() } else { c.env.iter().map(|e| format!("{}={}", e.name, e.value)).collect::<Vec<_>>().join("  ") }}</dd>
            <dt>"Secrets"</dt>
            <dd>{if c.secret_names.is_empty() { "none".to_string() } else { format!("{} (values are never shown)", c.secret_names.join(", ")) }}</dd>
            <dt>"Depends on"</dt>
            <dd>{if c.dependencies.is_empty() { "nothing".to_string() } else { c.dependencies.iter().map(|d| format!("{}/{}", d.app, d.component)).collect::<Vec<_>>().join(", ") }}</dd>
            <dt>"Volumes"</dt>
            <dd>{if c.volumes.is_empty() { "none".to_string() } else { c.volumes.iter().map(|v| format!("{} at {} ({} MB)", v.name, v.mount_path, v.size_mb)).collect::<Vec<_>>().join(", ") }}</dd>
        </dl>
    }
}

/// Build, deploy and run controls, the source upload and the build plan.
#[component]
fn Controls(pc: PlacedComponent, act: ServerAction<OperateComponent>) -> impl IntoView {
    let c = pc.component;
    let (team, app, name) = (c.team.clone(), c.app.clone(), c.name.clone());
    let buildable = !matches!(c.source, Source::Image { .. });
    // The builder previews git sources; uploads are detected when built.
    let previewable = matches!(c.source, Source::Git { .. } | Source::Dockerfile { .. });
    let uploadable = matches!(c.source, Source::Upload);
    let actions: Vec<(&str, &str, &str)> = vec![
        (
            "build",
            "Build",
            "Build the current source into a new version; a good build is deployed.",
        ),
        ("deploy", "Deploy", "Deploy the newest version."),
        ("restart", "Restart", "Restart every replica."),
        ("stop", "Stop", "Stop it and keep it stopped."),
        ("start", "Start", "Start it again."),
    ];
    let detect = ServerAction::<DetectPlan>::new();
    let (kind, source, reference) = match &c.source {
        Source::Git { url, reference } => ("git", url.clone(), reference.clone()),
        Source::Dockerfile { url, reference } => ("dockerfile", url.clone(), reference.clone()),
        Source::Image { image } => ("image", image.clone(), String::new()),
        Source::Upload => ("upload", String::new(), String::new()),
    };
    let dc = pc.datacenter.clone();
    let run_command = c.build.run_command.clone();
    let check = {
        let team = team.clone();
        move |_| {
            detect.dispatch(DetectPlan {
                team: team.clone(),
                datacenter: dc.clone(),
                source_kind: kind.into(),
                source: Some(source.clone()),
                reference: Some(reference.clone()),
                run_command: run_command.clone(),
            });
        }
    };
    view! {
        <section class="card controls">
            <div class="control-row">
                {actions.into_iter().filter(|(a, ..)| buildable || *a != "build").map(|(action, label, hint)| {
                    let (team, app, name) = (team.clone(), app.clone(), name.clone());
                    view! {
                        <ActionForm action=act attr:class="inline-form compact">
                            <input type="hidden" name="team" value=team/>
                            <input type="hidden" name="app" value=app/>
                            <input type="hidden" name="name" value=name/>
                            <input type="hidden" name="action" value=action/>
                            <button type="submit" class=if action == "build" { "primary" } else { "" } title=hint>{label}</button>
                        </ActionForm>
                    }
                }).collect_view()}
                {previewable.then(|| view! { <div class="inline-form compact"><button type="button" on:click=check>"Check the build plan"</button></div> })}
            </div>
            {move || match detect.value().get() {
                Some(Ok(plan)) => view! { <PlanView plan/> }.into_any(),
                Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
                None => ().into_any(),
            }}
            {move || detect.pending().get().then(|| view! { <p class="muted">"Asking the builder…"</p> })}
            {uploadable.then(|| view! { <super::upload::UploadForm team=team.clone() app=app.clone() name=name.clone()/> })}
        </section>
    }
}

#[component]
fn VersionTable(
    list: Vec<Version>,
    team: String,
    app: String,
    name: String,
    dc: String,
    can_operate: bool,
    act: ServerAction<OperateComponent>,
) -> impl IntoView {
    let current = list.iter().find(|v| v.current).map(|v| v.number);
    let plan = list
        .iter()
        .find(|v| v.current)
        .or(list.first())
        .map(|v| (v.id.clone(), v.language.clone(), v.run_command.clone()));
    view! {
        {plan.map(|(id, language, run)| view! {
            <p class="plan-line">"Build plan of " {id} ": " <span class="chip">{language}</span> " runs " <code>{run}</code></p>
        })}
        <table class="grid versions">
            <thead><tr><th>"Version"</th><th>"Created"</th><th>"Source"</th><th>"Language"</th><th>"Build time"</th>{can_operate.then(|| view! { <th></th> })}</tr></thead>
            <tbody>
                {list.into_iter().map(|v| {
                    let (team, app, name) = (team.clone(), app.clone(), name.clone());
                    let id = v.id.clone();
                    let build = format!("/teams/{team}/events/{dc}/{}", v.event_id);
                    // Older than what runs: roll back to it; newer (a build not deployed): deploy it.
                    let verb = match current {
                        Some(n) if v.number < n => Some(("rollback", "Rollback")),
                        _ if !v.current => Some(("deploy", "Deploy")),
                        _ => None,
                    };
                    view! {
                        <tr data-version=v.id.clone()>
                            <td class="nowrap"><strong>{v.id.clone()}</strong> {v.current.then(|| view! { " " <span class="badge-soft current">"current"</span> })}</td>
                            <td class="nowrap"><a href=build title="The build's log">{format_time(v.created_at)}</a></td>
                            <td class="detail"><code>{v.source.clone()}</code></td>
                            <td>{v.language.clone()}</td>
                            <td class="nowrap">{format_duration(v.build_ms)}</td>
                            {can_operate.then(|| view! {
                                <td class="row-actions">
                                    {verb.map(|(action, label)| view! {
                                        <ActionForm action=act attr:class="inline-form compact">
                                            <input type="hidden" name="team" value=team/>
                                            <input type="hidden" name="app" value=app/>
                                            <input type="hidden" name="name" value=name/>
                                            <input type="hidden" name="action" value=action/>
                                            <input type="hidden" name="version" value=id/>
                                            <button type="submit">{label}</button>
                                        </ActionForm>
                                    })}
                                </td>
                            })}
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn ReplicaTable(list: Vec<ReplicaInfo>) -> impl IntoView {
    view! {
        <table class="grid replicas">
            <thead><tr><th>"#"</th><th>"Port"</th><th>"PID"</th><th>"Version"</th><th>"Alive"</th><th>"Restarts"</th><th>"Last exit"</th><th>"Started"</th></tr></thead>
            <tbody>
                {list.into_iter().map(|r| view! {
                    <tr data-replica=r.index>
                        <td>{r.index}</td>
                        <td>{r.port}</td>
                        <td>{r.pid.map(|p| p.to_string()).unwrap_or_else(|| "—".into())}</td>
                        <td>{r.version.clone().unwrap_or_else(|| "—".into())}</td>
                        <td>{if r.alive {
                            view! { <span class="status status-running">"alive"</span> }.into_any()
                        } else {
                            view! { <span class="status status-abnormal">"down"</span> }.into_any()
                        }}</td>
                        <td>{r.restarts}</td>
                        <td class="detail">{r.last_exit.clone().unwrap_or_else(|| "—".into())}</td>
                        <td class="nowrap">{r.started_at.map(format_time).unwrap_or_else(|| "—".into())}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn ScaleForm(
    team: String,
    app: String,
    name: String,
    scale: ServerAction<ScaleComponent>,
) -> impl IntoView {
    view! {
        <ActionForm action=scale attr:class="inline-form scale-form">
            <input type="hidden" name="team" value=team/>
            <input type="hidden" name="app" value=app/>
            <input type="hidden" name="name" value=name/>
            <label>"Replicas" <input name="replicas" type="number" min="0" max="100" required/></label>
            <button type="submit" class="primary">"Scale"</button>
        </ActionForm>
    }
}

/// The push webhook (team admins): where to point a Git host, and the secret.
#[component]
fn WebhookBox(team: String, app: String, name: String, from_git: bool) -> impl IntoView {
    if !from_git {
        return view! {
            <section class="card form-card webhook">
                <h2>"Push webhook"</h2>
                <p class="muted">"Push webhooks build components whose source is a git repository. Change the source to git in the settings below to use one."</p>
            </section>
        }
        .into_any();
    }
    let hook = Resource::new(
        move || (team.clone(), app.clone(), name.clone()),
        |(t, a, n)| get_webhook(t, a, n),
    );
    view! {
        <section class="card form-card webhook">
            <h2>"Push webhook"</h2>
            <p class="muted">"A push to the component's branch builds and deploys it. Deliveries are checked against the secret by the datacenter; the URL needs no sign-in."</p>
            <Suspense fallback=Loading>
                {move || Suspend::new(async move {
                    match hook.await {
                        Ok(h) => view! {
                            <dl class="hook-facts">
                                <dt>"Payload URL"</dt><dd><code class="copy">{h.url.clone()}</code></dd>
                                <dt>"Secret"</dt>
                                <dd>
                                    <details>
                                        <summary>"Show the secret"</summary>
                                        <code class="copy secret">{h.secret.clone()}</code>
                                    </details>
                                </dd>
                            </dl>
                            <div class="hook-hints">
                                <details>
                                    <summary>"GitHub"</summary>
                                    <p>"Repository → Settings → Webhooks → Add webhook. Payload URL: the URL above; Content type: " <code>"application/json"</code> "; Secret: the secret; “Just the push event”. GitHub signs with " <code>"X-Hub-Signature-256"</code> "."</p>
                                </details>
                                <details>
                                    <summary>"GitLab"</summary>
                                    <p>"Project → Settings → Webhooks → Add new webhook. URL: the URL above; Secret token: the secret; Trigger: Push events. GitLab sends it as " <code>"X-Gitlab-Token"</code> "."</p>
                                </details>
                                <details>
                                    <summary>"Gitea / Forgejo"</summary>
                                    <p>"Repository → Settings → Webhooks → Add webhook → Gitea. Target URL: the URL above; HTTP method POST; Content type " <code>"application/json"</code> "; Secret: the secret; Trigger on push events. Gitea signs with " <code>"X-Gitea-Signature"</code> "."</p>
                                </details>
                            </div>
                        }.into_any(),
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
    .into_any()
}

#[component]
fn Edit(
    settings: String,
    team: String,
    app: String,
    name: String,
    update: ServerAction<UpdateComponent>,
) -> impl IntoView {
    view! {
        <section class="card form-card">
            <h2>"Settings"</h2>
            <p class="muted">"Everything about the component, as JSON: ports, environment, volumes, dependencies, health check, resources. Secrets are set below and never shown."</p>
            <ActionForm action=update attr:class="stacked-form wide">
                <input type="hidden" name="team" value=team/>
                <input type="hidden" name="app" value=app/>
                <input type="hidden" name="name" value=name/>
                <label>"Settings (JSON)" <textarea name="settings" rows="18" spellcheck="false" class="code">{settings}</textarea></label>
                <label>"Set secrets (one NAME=value per line; an empty value deletes)" <textarea name="secrets" rows="3" spellcheck="false" class="code" autocomplete="off"></textarea></label>
                <button type="submit" class="primary">"Save settings"</button>
            </ActionForm>
        </section>
    }
}
