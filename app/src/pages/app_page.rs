use super::upload::UploadState;
use crate::api::{get_app_detail, team_events, CreateComponent, DetectPlan, OperateComponent};
use crate::components::{
    action_result, format_time, use_refresh, EmptyState, ErrorBox, Loading, PlanView,
};
use crate::error::AppError;
use crate::model::{AppDetail, PlacedComponent, PlacedEvent};
use datacenter::api::DetectedPlan;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn AppPage() -> impl IntoView {
    let params = use_params_map();
    let team = move || params.read().get("team").unwrap_or_default();
    let app = move || params.read().get("app").unwrap_or_default();
    let create = ServerAction::<CreateComponent>::new();
    let act = ServerAction::<OperateComponent>::new();
    // Refresh every few seconds so states change on screen as they happen.
    let tick = use_refresh(3);
    let detail = Resource::new(
        move || {
            (
                team(),
                app(),
                create.version().get(),
                act.version().get(),
                tick.get(),
            )
        },
        |(team, app, ..)| get_app_detail(team, app),
    );
    let form_detail = Resource::new(
        move || (team(), app()),
        |(team, app)| get_app_detail(team, app),
    );
    let events = Resource::new(
        move || {
            (
                team(),
                app(),
                create.version().get(),
                act.version().get(),
                tick.get(),
            )
        },
        |(team, app, ..)| team_events(team, Some(app)),
    );
    view! {
        <Title text=move || format!("{} · Apps · Cloudport", app())/>
        <p class="crumbs"><a href="/teams">"Teams"</a>" / "<a href=move || format!("/teams/{}", team())>{team}</a>" / "{app}</p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <AppView d act/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
        {action_result(move || act.value().get(), "Queued: follow it in the events below.")}
        // Outside the refreshing view above, so a refresh never wipes the form.
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let d = form_detail.await.ok()?;
                d.can_change.then(|| view! {
                    <AddComponent team=d.app.team.clone() app=d.app.name.clone() datacenters=d.datacenters.clone() create/>
                })
            })}
        </Suspense>
        <h2>"Events"</h2>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(list) if list.is_empty() => view! { <EmptyState title="No events yet.">"Every operation on a component appears here with its log."</EmptyState> }.into_any(),
                    Ok(list) => view! { <EventTable team=team() list/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn AppView(d: AppDetail, act: ServerAction<OperateComponent>) -> impl IntoView {
    let team = d.app.team.clone();
    let app = d.app.name.clone();
    let can_change = d.can_change;
    view! {
        <h1>{d.app.display_name.clone()} " " <span class="muted small">"(" {app.clone()} ")"</span></h1>
        {(!d.unreachable.is_empty()).then(|| view! {
            <div class="alert error" role="alert">
                "Not answering: " {d.unreachable.join(", ")} ". Components there are not listed until they answer again."
            </div>
        })}
        <h2>"Components"</h2>
        {if d.components.is_empty() {
            view! { <EmptyState title="No components yet.">"A component is one deployable part of the app: a web service, a worker, a database."</EmptyState> }.into_any()
        } else {
            view! {
                <table class="grid components">
                    <thead><tr><th>"Component"</th><th>"Datacenter"</th><th>"Status"</th><th>"Replicas"</th><th>"Source"</th>{can_change.then(|| view! { <th>"Actions"</th> })}</tr></thead>
                    <tbody>
                        {d.components.into_iter().map(|p| view! { <ComponentRow p team=team.clone() app=app.clone() can_change act/> }).collect_view()}
                    </tbody>
                </table>
            }.into_any()
        }}
    }
}

/// The form that adds a component: where its code comes from (a git
/// repository, an uploaded archive or an image), with a preview of what the
/// builder will do (for an upload, of the archive chosen here, sent to the
/// datacenter to be unpacked and detected), and an archive that is uploaded
/// right after creation.
#[component]
fn AddComponent(
    team: String,
    app: String,
    datacenters: Vec<String>,
    create: ServerAction<CreateComponent>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let datacenter = RwSignal::new(datacenters.first().cloned().unwrap_or_default());
    let kind = RwSignal::new("upload".to_string());
    let source = RwSignal::new(String::new());
    let reference = RwSignal::new(String::new());
    let run_command = RwSignal::new(String::new());
    let archive = NodeRef::<leptos::html::Input>::new();
    let upload = RwSignal::new(UploadState::Idle);
    let detect = ServerAction::<DetectPlan>::new();
    let preview = RwSignal::new(Preview::Nothing);
    // Numbers the archive previews, so only the last one asked is shown.
    let asked = StoredValue::new(0u64);
    let detect_now = {
        let team = team.clone();
        move |_| {
            asked.update_value(|n| *n += 1);
            if kind.get_untracked() == "upload" {
                preview_archive(
                    &team,
                    &datacenter.get_untracked(),
                    &run_command.get_untracked(),
                    archive,
                    preview,
                    asked,
                );
                return;
            }
            preview.set(Preview::Git);
            detect.dispatch(DetectPlan {
                team: team.clone(),
                datacenter: datacenter.get_untracked(),
                source_kind: kind.get_untracked(),
                source: Some(source.get_untracked()),
                reference: Some(reference.get_untracked()),
                run_command: Some(run_command.get_untracked()),
            });
        }
    };
    // A note asking for an archive goes once one is chosen.
    let archive_chosen = move |_| {
        if preview.get_untracked() == Preview::NoArchive {
            preview.set(Preview::Nothing);
        }
    };
    // Once the component exists, send the chosen archive; its build follows.
    #[cfg(feature = "hydrate")]
    {
        let navigate = leptos_router::hooks::use_navigate();
        let (team, app) = (team.clone(), app.clone());
        Effect::new(move |_| {
            if !matches!(create.value().get(), Some(Ok(_))) || kind.get_untracked() != "upload" {
                return;
            }
            let Some(input) = archive.get_untracked() else {
                return;
            };
            if input.files().map(|f| f.length()).unwrap_or(0) == 0 {
                return;
            }
            let url = format!(
                "/api/v1/teams/{team}/apps/{app}/components/{}/source",
                name.get_untracked().trim()
            );
            super::upload::start_upload(input, url, team.clone(), upload, navigate.clone());
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = &app;
    view! {
        <section class="card form-card add-component">
            <h2>"Add a component"</h2>
            <ActionForm action=create attr:class="inline-form">
                <input type="hidden" name="team" value=team.clone()/>
                <input type="hidden" name="app" value=app.clone()/>
                <label>"Name" <input name="name" required maxlength="63" placeholder="web" on:input=move |ev| name.set(event_target_value(&ev))/></label>
                <label>"Datacenter"
                    <select name="datacenter" on:change=move |ev| datacenter.set(event_target_value(&ev))>
                        {datacenters.into_iter().map(|dc| view! { <option value=dc.clone()>{dc.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Source"
                    <select name="source_kind" on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="upload">"upload / command"</option>
                        <option value="git">"git repository"</option>
                        <option value="dockerfile">"Dockerfile in git"</option>
                        <option value="image">"container image"</option>
                    </select>
                </label>
                <label>"Git URL or image" <input name="source" placeholder="https://… or nginx:1.27" on:input=move |ev| source.set(event_target_value(&ev))/></label>
                <label>"Git ref" <input name="reference" size="10" placeholder="main" on:input=move |ev| reference.set(event_target_value(&ev))/></label>
                <label>"Run command" <input name="run_command" placeholder="python3 -m http.server $PORT" on:input=move |ev| run_command.set(event_target_value(&ev))/></label>
                <label>"Port" <input name="port" inputmode="numeric" size="6" placeholder="8080"/></label>
                <label>"Replicas" <input name="replicas" inputmode="numeric" size="4" value="1"/></label>
                <label class="archive">"Archive to upload (.tar.gz or .zip)" <input type="file" node_ref=archive on:change=archive_chosen accept=".tar.gz,.tgz,.zip,application/gzip,application/x-gzip,application/zip"/></label>
                <button type="button" on:click=detect_now title="Ask the datacenter's builder what it would do with this source">"Detect"</button>
                <button type="submit" class="primary">"Add component"</button>
            </ActionForm>
            <p class="hint">"Detect shows how the source will be built and run before anything is created: a git source is fetched by the datacenter, an upload is previewed from the archive chosen here (the run command overrides what is detected). That archive is uploaded and built right after the component is created."</p>
            {move || match preview.get() {
                Preview::Nothing => ().into_any(),
                Preview::NoArchive => view! { <p class="hint" role="status">"Choose an archive to see how it will be built."</p> }.into_any(),
                Preview::Archive(None) => view! { <p class="muted">"Asking the builder…"</p> }.into_any(),
                Preview::Archive(Some(Ok(plan))) => view! { <PlanView plan/> }.into_any(),
                Preview::Archive(Some(Err(e))) => view! { <ErrorBox error=e/> }.into_any(),
                Preview::Git if detect.pending().get() => view! { <p class="muted">"Asking the builder…"</p> }.into_any(),
                Preview::Git => match detect.value().get() {
                    Some(Ok(plan)) => view! { <PlanView plan/> }.into_any(),
                    Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
                    None => ().into_any(),
                },
            }}
            {action_result(move || create.value().get(), "Component created: see its event below.")}
            {move || match upload.get() {
                UploadState::Idle => ().into_any(),
                UploadState::Sending => view! { <p class="muted" role="status">"Uploading the archive…"</p> }.into_any(),
                UploadState::Failed(m) => view! { <div class="alert error" role="alert">"The archive was not uploaded: " {m}</div> }.into_any(),
            }}
        </section>
    }
}

/// What the create form shows under it after Detect.
#[derive(Debug, Clone, PartialEq)]
enum Preview {
    Nothing,
    /// The git (or image) source's plan: the `DetectPlan` action's answer.
    Git,
    /// Detect for an upload with no archive chosen.
    NoArchive,
    /// The chosen archive's plan, or `None` while the builder works on it.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    Archive(Option<Result<DetectedPlan, AppError>>),
}

/// Sends the archive chosen in `input` to the console's preview route, with
/// the run command as an override, and shows the answer in `preview` unless
/// a later Detect (a newer `asked`) has been pressed since.
#[cfg(feature = "hydrate")]
fn preview_archive(
    team: &str,
    datacenter: &str,
    run_command: &str,
    input: NodeRef<leptos::html::Input>,
    preview: RwSignal<Preview>,
    asked: StoredValue<u64>,
) {
    use super::upload::{send_file, MAX_UPLOAD};
    use datacenter::api::percent_encode;
    let file = input
        .get_untracked()
        .and_then(|i| i.files())
        .and_then(|f| f.get(0));
    let Some(file) = file else {
        preview.set(Preview::NoArchive);
        return;
    };
    if file.size() > MAX_UPLOAD {
        preview.set(Preview::Archive(Some(Err(AppError::new(
            "invalid",
            format!(
                "{} is {:.0} MiB; the most is 100 MiB.",
                file.name(),
                file.size() / 1024.0 / 1024.0
            ),
        )))));
        return;
    }
    let mut url = format!(
        "/api/v1/teams/{}/datacenters/{}/detect/archive",
        percent_encode(team),
        percent_encode(datacenter)
    );
    let run_command = run_command.trim();
    if !run_command.is_empty() {
        url.push_str("?run_command=");
        url.push_str(&percent_encode(run_command));
    }
    let mine = asked.get_value();
    preview.set(Preview::Archive(None));
    leptos::task::spawn_local(async move {
        let answer = send_file::<DetectedPlan>("POST", &url, &file).await;
        if asked.get_value() == mine {
            preview.set(Preview::Archive(Some(answer)));
        }
    });
}

/// Without the browser there is no file to send.
#[cfg(not(feature = "hydrate"))]
fn preview_archive(
    _team: &str,
    _datacenter: &str,
    _run_command: &str,
    _input: NodeRef<leptos::html::Input>,
    preview: RwSignal<Preview>,
    _asked: StoredValue<u64>,
) {
    preview.set(Preview::NoArchive);
}

#[component]
fn ComponentRow(
    p: PlacedComponent,
    team: String,
    app: String,
    can_change: bool,
    act: ServerAction<OperateComponent>,
) -> impl IntoView {
    let c = p.component;
    let source = match &c.source {
        datacenter::api::Source::Git { url, .. } => url.clone(),
        datacenter::api::Source::Image { image } => image.clone(),
        datacenter::api::Source::Dockerfile { url, .. } => format!("Dockerfile from {url}"),
        datacenter::api::Source::Upload => c
            .build
            .run_command
            .clone()
            .map(|r| format!("$ {r}"))
            .unwrap_or_else(|| "upload".into()),
    };
    let name = c.name.clone();
    view! {
        <tr data-component=c.name.clone()>
            <td><a href=format!("/teams/{team}/apps/{app}/components/{}", c.name)><strong>{c.name.clone()}</strong></a></td>
            <td>{p.datacenter.clone()}</td>
            <td><span class=format!("status status-{}", c.status.as_str())>{c.status.as_str().replace('_', " ")}</span></td>
            <td>{c.replicas}</td>
            <td class="detail"><code>{source}</code></td>
            {can_change.then(|| view! {
                <td class="row-actions">
                    {["start", "stop", "restart", "delete"].into_iter().map(|action| {
                        let (team, app, name) = (team.clone(), app.clone(), name.clone());
                        view! {
                            <ActionForm action=act attr:class="inline-form compact">
                                <input type="hidden" name="team" value=team/>
                                <input type="hidden" name="app" value=app/>
                                <input type="hidden" name="name" value=name/>
                                <input type="hidden" name="action" value=action/>
                                <button type="submit" class=if action == "delete" { "danger" } else { "" }>{action}</button>
                            </ActionForm>
                        }
                    }).collect_view()}
                </td>
            })}
        </tr>
    }
}

#[component]
pub fn EventTable(team: String, list: Vec<PlacedEvent>) -> impl IntoView {
    view! {
        <table class="grid events">
            <thead><tr><th>"When"</th><th>"Operation"</th><th>"Component"</th><th>"By"</th><th>"Status"</th><th>"Result"</th></tr></thead>
            <tbody>
                {list.into_iter().map(|p| {
                    let e = p.event;
                    let href = format!("/teams/{team}/events/{}/{}", p.datacenter, e.id);
                    view! {
                        <tr>
                            <td class="nowrap"><a href=href>{format_time(e.created_at)}</a></td>
                            <td><code>{e.action.as_str()}</code></td>
                            <td>{format!("{}/{}", e.app, e.component)}</td>
                            <td>{e.actor.clone()}</td>
                            <td><span class=format!("result event-{}", e.status.as_str())>{e.status.as_str()}</span></td>
                            <td class="detail">{e.message.clone()}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
