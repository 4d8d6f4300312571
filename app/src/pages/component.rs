use crate::api::{component_settings, get_component, ScaleComponent, UpdateComponent};
use crate::components::{action_result, use_refresh, ErrorBox, Loading};
use crate::model::PlacedComponent;
use datacenter::api::{HealthProbe, Source};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// One component: everything it is set to, and forms to change it.
#[component]
pub fn ComponentPage() -> impl IntoView {
    let params = use_params_map();
    let p = move |k: &str| params.read().get(k).unwrap_or_default();
    let update = ServerAction::<UpdateComponent>::new();
    let scale = ServerAction::<ScaleComponent>::new();
    let tick = use_refresh(5);
    // The overview follows the component's state; the forms load once per
    // save, so a refresh never wipes what someone is typing.
    let live = Resource::new(
        move || {
            (
                p("team"),
                p("app"),
                p("name"),
                update.version().get(),
                scale.version().get(),
                tick.get(),
            )
        },
        |(t, a, n, ..)| get_component(t, a, n),
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
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                editable.await.ok().map(|settings| view! { <Edit settings team=p("team") app=p("app") name=p("name") update scale/> })
            })}
        </Transition>
        {action_result(move || update.value().get(), "Saved: the update event applies it.")}
        {action_result(move || scale.value().get(), "Scaling queued.")}
    }
}

#[component]
fn Overview(pc: PlacedComponent) -> impl IntoView {
    let c = pc.component;
    let source = match &c.source {
        Source::Git { url, reference } => format!("git {url} @ {reference}"),
        Source::Dockerfile { url, reference } => format!("Dockerfile from {url} @ {reference}"),
        Source::Image { image } => format!("image {image}"),
        Source::Upload => "upload".into(),
    };
    let health = match &c.health {
        Some(HealthProbe::Http { port, path }) => format!("HTTP GET {path} on port {port}"),
        Some(HealthProbe::Tcp { port }) => format!("TCP connect to port {port}"),
        None => "none: running means the process stays up".into(),
    };
    view! {
        <h1>{c.name.clone()} " " <span class=format!("status status-{}", c.status.as_str())>{c.status.as_str().replace('_', " ")}</span></h1>
        <dl class="facts card">
            <dt>"Datacenter"</dt><dd>{pc.datacenter.clone()}</dd>
            <dt>"Source"</dt><dd><code>{source}</code></dd>
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

#[component]
fn Edit(
    settings: String,
    team: String,
    app: String,
    name: String,
    update: ServerAction<UpdateComponent>,
    scale: ServerAction<ScaleComponent>,
) -> impl IntoView {
    let (t2, a2, n2) = (team.clone(), app.clone(), name.clone());
    view! {
        <section class="card form-card">
            <h2>"Scale"</h2>
            <ActionForm action=scale attr:class="inline-form">
                <input type="hidden" name="team" value=t2/>
                <input type="hidden" name="app" value=a2/>
                <input type="hidden" name="name" value=n2/>
                <label>"Replicas" <input name="replicas" type="number" min="0" max="100" required/></label>
                <button type="submit" class="primary">"Scale"</button>
            </ActionForm>
        </section>
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
