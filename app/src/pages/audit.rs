use crate::api::audit;
use crate::app::MeResource;
use crate::components::{format_time, EmptyState, ErrorBox, Loading};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn AuditPage() -> impl IntoView {
    let me = expect_context::<MeResource>();
    let query = use_query_map();
    let team = move || query.read().get("team").filter(|t| !t.is_empty());
    let before = move || {
        query
            .read()
            .get("before")
            .and_then(|b| b.parse::<i64>().ok())
    };
    let entries = Resource::new(
        move || (team(), before()),
        |(team, before)| audit(team, before),
    );
    view! {
        <Title text="Audit log · Cloudport"/>
        <h1>"Audit log"</h1>
        <p class="muted">"Every change made through the console or the API, who made it and how it ended."</p>
        <form method="get" action="/audit" class="inline-form filter">
            <label>"Team"
                <select name="team">
                    <option value="">"all I may see"</option>
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            let teams = me.await.ok().flatten().map(|m| m.teams).unwrap_or_default();
                            let current = team();
                            teams.into_iter().map(|t| {
                                let sel = current.as_deref() == Some(t.team.as_str());
                                view! { <option value=t.team.clone() selected=sel>{t.team.clone()}</option> }
                            }).collect_view()
                        })}
                    </Suspense>
                </select>
            </label>
            <button type="submit">"Filter"</button>
        </form>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match entries.await {
                    Ok(list) if list.is_empty() => view! {
                        <EmptyState title="Nothing recorded here yet.">"Changes to teams, members, users and tokens appear here."</EmptyState>
                    }.into_any(),
                    Ok(list) => {
                        let full_page = list.len() >= 100;
                        let older = list.last().filter(|_| full_page).map(|e| {
                            let mut href = format!("/audit?before={}", e.id);
                            if let Some(t) = team() { href.push_str(&format!("&team={t}")); }
                            href
                        });
                        view! {
                            <table class="grid audit">
                                <thead><tr><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Target"</th><th>"Team"</th><th>"Result"</th><th>"Detail"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|e| view! {
                                        <tr>
                                            <td class="nowrap">{format_time(e.at)}</td>
                                            <td>{e.actor.clone()}</td>
                                            <td><code>{e.action.clone()}</code></td>
                                            <td>{e.target.clone()}</td>
                                            <td>{e.team.clone().unwrap_or_default()}</td>
                                            <td><span class=format!("result result-{}", e.result)>{e.result.clone()}</span></td>
                                            <td class="detail">{e.detail.clone()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            {older.map(|href| view! { <p><a href=href>"Older entries →"</a></p> })}
                        }.into_any()
                    }
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}
