use crate::api::{get_team_detail, AddMember, ChangeMemberRole, DeleteTeam, RemoveMember};
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
        move || (team_name(), add.version().get(), change.version().get(), remove.version().get()),
        |(team, ..)| get_team_detail(team),
    );
    view! {
        <Title text=move || format!("{} · Teams · Cloudport", team_name())/>
        <p class="crumbs"><a href="/teams">"Teams"</a>" / "{team_name}</p>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <TeamView d add change remove delete/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
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
    let my_role = d.team.my_role.map(|r| r.as_str()).unwrap_or("platform admin");
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
