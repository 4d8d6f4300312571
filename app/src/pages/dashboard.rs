use crate::app::MeResource;
use crate::components::{EmptyState, ErrorBox, Loading};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let me = expect_context::<MeResource>();
    view! {
        <Title text="Dashboard · Cloudport"/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(me)) => {
                        let teams = me.teams.clone();
                        view! {
                            <h1>"Welcome, " {me.username.clone()}</h1>
                            <section class="cards">
                                <div class="card stat"><span class="stat-n">{teams.len()}</span><span>"teams"</span></div>
                                <div class="card stat"><span class="stat-n">{if me.is_admin { "admin" } else { "member" }}</span><span>"platform role"</span></div>
                            </section>
                            <h2>"Your teams"</h2>
                            {if teams.is_empty() {
                                view! {
                                    <EmptyState title="You are not in any team yet.">
                                        "Teams own apps and decide who may change them. "
                                        <a href="/teams">"Create your first team"</a>
                                        " or ask a team owner to add you."
                                    </EmptyState>
                                }.into_any()
                            } else {
                                view! {
                                    <ul class="team-list">
                                        {teams.into_iter().map(|t| {
                                            let href = format!("/teams/{}", t.team);
                                            view! {
                                                <li class="card">
                                                    <a href=href>{t.team.clone()}</a>
                                                    <span class=format!("role role-{}", t.role)>{t.role.as_str()}</span>
                                                </li>
                                            }
                                        }).collect_view()}
                                    </ul>
                                }.into_any()
                            }}
                        }.into_any()
                    }
                    Ok(None) => view! { <p>"You are signed out. " <a href="/login">"Sign in"</a></p> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}
