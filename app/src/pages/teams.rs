use crate::api::{list_teams, CreateTeam};
use crate::components::{action_result, format_time, EmptyState, ErrorBox, Loading};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn TeamsPage() -> impl IntoView {
    let create = ServerAction::<CreateTeam>::new();
    let teams = Resource::new(move || create.version().get(), |_| list_teams());
    view! {
        <Title text="Teams · Cloudport"/>
        <h1>"Teams"</h1>
        <p class="muted">"A team owns apps. Its members hold one of four roles: owner, admin, developer, viewer."</p>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match teams.await {
                    Ok(list) if list.is_empty() => view! {
                        <EmptyState title="No teams yet.">"Create one below; you become its owner."</EmptyState>
                    }.into_any(),
                    Ok(list) => view! {
                        <table class="grid">
                            <thead><tr><th>"Team"</th><th>"Display name"</th><th>"Members"</th><th>"Your role"</th><th>"Created"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|t| view! {
                                    <tr>
                                        <td><a href=format!("/teams/{}", t.name)>{t.name.clone()}</a></td>
                                        <td>{t.display_name.clone()}</td>
                                        <td>{t.member_count}</td>
                                        <td>{t.my_role.map(|r| r.as_str()).unwrap_or("—")}</td>
                                        <td>{format_time(t.created_at)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
        <section class="card form-card">
            <h2>"Create a team"</h2>
            <ActionForm action=create attr:class="inline-form">
                <label>"Name"
                    <input name="name" required pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?" maxlength="63" placeholder="acme"/>
                </label>
                <label>"Display name"
                    <input name="display_name" maxlength="100" placeholder="Acme Inc."/>
                </label>
                <button type="submit" class="primary">"Create team"</button>
            </ActionForm>
            <p class="hint">"Lowercase letters, digits and dashes (a DNS label): it appears in URLs and hostnames."</p>
            {action_result(move || create.value().get(), "Team created.")}
        </section>
    }
}
