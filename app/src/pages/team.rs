use crate::api::{
    get_team_detail, list_apps, team_datacenters, team_quotas, AddMember, ChangeMemberRole,
    CreateApp, DeleteTeam, OpenDatacenter, RemoveMember, SetTeamQuota,
};
use crate::app::MeResource;
use crate::components::EmptyState;
use crate::components::{action_result, format_time, ErrorBox, Loading};
use crate::model::{Role, TeamDetail};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn TeamPage() -> impl IntoView {
    let params = use_params_map();
    let team_name = move || params.read().get("team").unwrap_or_default();
    let add = ServerAction::<AddMember>::new();
    let change = ServerAction::<ChangeMemberRole>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let delete = ServerAction::<DeleteTeam>::new();
    let detail = Resource::new(
        move || {
            (
                team_name(),
                add.version().get(),
                change.version().get(),
                remove.version().get(),
            )
        },
        |(team, ..)| get_team_detail(team),
    );
    view! {
        <Title text=move || format!("{} · Teams · Cloudport", team_name())/>
        <p class="crumbs"><a href="/teams">"Teams"</a>" / "{team_name}</p>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => {
                        let can_manage_apps = d.can_manage_members;
                        view! {
                            <TeamApps team=d.team.name.clone() can_create=can_manage_apps/>
                            <TeamDatacenters team=d.team.name.clone()/>
                            <TeamView d add change remove delete/>
                        }.into_any()
                    }
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn TeamApps(team: String, can_create: bool) -> impl IntoView {
    let create = ServerAction::<CreateApp>::new();
    let t = team.clone();
    let apps = Resource::new(
        move || create.version().get(),
        move |_| list_apps(t.clone()),
    );
    let listed = team.clone();
    let routes = format!("/teams/{team}/routes");
    view! {
        <p class="team-links"><a href=routes>"Routes and certificates →"</a>
            <span class="muted small">" custom domains, TCP ports and HTTPS for the team's components"</span></p>
        <h2>"Apps"</h2>
        <Suspense fallback=Loading>
            {
                let team = listed;
                move || {
                    let team = team.clone();
                    Suspend::new(async move {
                        match apps.await {
                            Ok(list) if list.is_empty() => view! {
                                <EmptyState title="No apps yet.">"An app groups the components that make up one product."</EmptyState>
                            }.into_any(),
                            Ok(list) => view! {
                                <ul class="team-list apps">
                                    {list.into_iter().map(|a| view! {
                                        <li class="card">
                                            <a href=format!("/teams/{team}/apps/{}", a.name)>{a.display_name.clone()}</a>
                                            <span class="muted small">{a.components} " components"</span>
                                        </li>
                                    }).collect_view()}
                                </ul>
                            }.into_any(),
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                        }
                    })
                }
            }
        </Suspense>
        {can_create.then(move || view! {
            <ActionForm action=create attr:class="inline-form new-app">
                <input type="hidden" name="team" value=team/>
                <label>"New app" <input name="name" required maxlength="63" placeholder="shop"/></label>
                <label>"Display name" <input name="display_name" maxlength="100" placeholder="Shop"/></label>
                <button type="submit" class="primary">"Create app"</button>
            </ActionForm>
            {action_result(move || create.value().get(), "App created.")}
        })}
    }
}

#[component]
fn TeamDatacenters(team: String) -> impl IntoView {
    let me = expect_context::<MeResource>();
    let open = ServerAction::<OpenDatacenter>::new();
    let set_quota = ServerAction::<SetTeamQuota>::new();
    let t = team.clone();
    let quotas = Resource::new(
        move || (open.version().get(), set_quota.version().get()),
        move |_| team_quotas(t.clone()),
    );
    let t = team.clone();
    let dcs = Resource::new(
        move || open.version().get(),
        move |_| team_datacenters(t.clone()),
    );
    let team = team.clone();
    view! {
        <h2>"Datacenters"</h2>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match dcs.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted">"This team may not use any datacenter yet; a platform admin can open one for it."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <p class="dc-chips">
                            {list.into_iter().map(|d| view! {
                                <span class=format!("chip dc-{}", d.state) title=d.state_reason.clone()>{d.name.clone()} " · " {d.state.clone()}</span>
                            }).collect_view()}
                        </p>
                    }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let limit = |used: i64, max: Option<i64>, unit: &str| match max {
                    Some(m) => format!("{used} / {m}{unit}"),
                    None => format!("{used}{unit} (no limit)"),
                };
                match quotas.await {
                    Ok(list) if !list.is_empty() => view! {
                        <table class="grid quotas">
                            <thead><tr><th>"Datacenter"</th><th>"Components"</th><th>"Memory"</th><th>"CPU"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|q| view! {
                                    <tr data-quota=q.datacenter.clone()>
                                        <td>{q.datacenter.clone()}</td>
                                        <td>{limit(q.used.components, q.quota.max_components, "")}</td>
                                        <td>{limit(q.used.memory_mb, q.quota.max_memory_mb, " MB")}</td>
                                        <td>{limit(q.used.cpu_millicores, q.quota.max_cpu_millicores, " m")}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Ok(_) => ().into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {
                let team = team.clone();
                move || {
                    let team = team.clone();
                    Suspend::new(async move {
                        let admin = matches!(me.await, Ok(Some(ref m)) if m.is_admin);
                        let quota_team = team.clone();
                        admin.then(|| view! {
                            <ActionForm action=set_quota attr:class="inline-form quota-form">
                                <input type="hidden" name="team" value=quota_team/>
                                <label>"Quota in datacenter" <input name="datacenter" required size="10" placeholder="local"/></label>
                                <label>"Components" <input name="max_components" inputmode="numeric" size="5" placeholder="no limit"/></label>
                                <label>"Memory (MB)" <input name="max_memory_mb" inputmode="numeric" size="7" placeholder="no limit"/></label>
                                <label>"CPU (millicores)" <input name="max_cpu_millicores" inputmode="numeric" size="7" placeholder="no limit"/></label>
                                <button type="submit">"Set quota"</button>
                            </ActionForm>
                            {action_result(move || set_quota.value().get(), "Quota set.")}
                            <ActionForm action=open attr:class="inline-form open-dc">
                                <input type="hidden" name="team" value=team/>
                                <label>"Open a datacenter for this team" <input name="datacenter" required placeholder="datacenter name"/></label>
                                <button type="submit">"Open"</button>
                            </ActionForm>
                        })
                    })
                }
            }
        </Suspense>
        {action_result(move || open.value().get(), "The team may now use it.")}
    }
}

#[component]
fn TeamView(
    d: TeamDetail,
    add: ServerAction<AddMember>,
    change: ServerAction<ChangeMemberRole>,
    remove: ServerAction<RemoveMember>,
    delete: ServerAction<DeleteTeam>,
) -> impl IntoView {
    let team = d.team.name.clone();
    let manage = d.can_manage_members;
    let my_role = d
        .team
        .my_role
        .map(|r| r.as_str())
        .unwrap_or("platform admin");
    view! {
        <h1>{d.team.display_name.clone()} " " <span class="muted small">"(" {team.clone()} ")"</span></h1>
        <p class="muted">"Your role here: " <strong>{my_role}</strong></p>
        <h2>"Members"</h2>
        <table class="grid members">
            <thead><tr><th>"User"</th><th>"Role"</th><th>"Added"</th>{manage.then(|| view! { <th>"Actions"</th> })}</tr></thead>
            <tbody>
                {d.members.into_iter().map(|m| {
                    let team = team.clone();
                    let username = m.username.clone();
                    view! {
                        <tr data-user=m.username.clone()>
                            <td>{m.username.clone()}</td>
                            <td><span class=format!("role role-{}", m.role)>{m.role.as_str()}</span></td>
                            <td>{format_time(m.added_at)}</td>
                            {manage.then(|| {
                                let (team2, username2) = (team.clone(), username.clone());
                                view! {
                                <td class="row-actions">
                                    <ActionForm action=change attr:class="inline-form compact">
                                        <input type="hidden" name="team" value=team/>
                                        <input type="hidden" name="username" value=username/>
                                        <RoleSelect selected=m.role/>
                                        <button type="submit">"Change role"</button>
                                    </ActionForm>
                                    <ActionForm action=remove attr:class="inline-form compact">
                                        <input type="hidden" name="team" value=team2/>
                                        <input type="hidden" name="username" value=username2/>
                                        <button type="submit" class="danger">"Remove"</button>
                                    </ActionForm>
                                </td>
                            }})}
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        {action_result(move || change.value().get(), "Role changed.")}
        {action_result(move || remove.value().get(), "Member removed.")}
        {manage.then({
            let team = team.clone();
            move || view! {
            <section class="card form-card">
                <h2>"Add a member"</h2>
                <ActionForm action=add attr:class="inline-form">
                    <input type="hidden" name="team" value=team.clone()/>
                    <label>"Username" <input name="username" required maxlength="64"/></label>
                    <label>"Role" <RoleSelect selected=Role::Developer/></label>
                    <button type="submit" class="primary">"Add member"</button>
                </ActionForm>
                {action_result(move || add.value().get(), "Member added.")}
            </section>
        }})}
        {d.can_delete.then(|| {
            let label = format!("Delete team {team}");
            view! {
            <section class="card danger-zone">
                <h2>"Delete this team"</h2>
                <p class="muted">"Removes the team and its memberships. The audit log keeps its history."</p>
                <ActionForm action=delete attr:class="inline-form">
                    <input type="hidden" name="team" value=team.clone()/>
                    <label>"Type the team name to confirm"
                        <input name="confirm" required autocomplete="off" pattern=team.clone() placeholder=team.clone()/>
                    </label>
                    <button type="submit" class="danger">{label}</button>
                </ActionForm>
                {action_result(move || delete.value().get(), "Team deleted.")}
            </section>
        }})}
    }
}

#[component]
fn RoleSelect(selected: Role) -> impl IntoView {
    view! {
        <select name="role" aria-label="Role">
            {Role::ALL.into_iter().map(|r| view! {
                <option value=r.as_str() selected=r == selected>{r.as_str()}</option>
            }).collect_view()}
        </select>
    }
}
