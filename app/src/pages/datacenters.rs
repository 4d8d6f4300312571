use crate::api::{list_datacenters, AddDatacenter, RemoveDatacenter};
use crate::components::{action_result, format_time, use_refresh, EmptyState, ErrorBox, Loading};
use crate::model::Datacenter;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn DatacentersPage() -> impl IntoView {
    let add = ServerAction::<AddDatacenter>::new();
    let remove = ServerAction::<RemoveDatacenter>::new();
    // Refresh every few seconds so states change on screen as they happen.
    let tick = use_refresh(3);
    let dcs = Resource::new(
        move || (add.version().get(), remove.version().get(), tick.get()),
        |_| list_datacenters(),
    );
    view! {
        <Title text="Datacenters · Cloudport"/>
        <h1>"Datacenters"</h1>
        <p class="muted">"Each datacenter runs components for the teams allowed to use it. The console checks every datacenter every few seconds."</p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match dcs.await {
                    Ok(list) if list.is_empty() => view! {
                        <EmptyState title="No datacenters.">"Add one below with its API URL and token."</EmptyState>
                    }.into_any(),
                    Ok(list) => view! {
                        <table class="grid datacenters">
                            <thead><tr><th>"Name"</th><th>"State"</th><th>"Last contact"</th><th>"Runtime"</th><th>"Capacity"</th><th>"Components"</th><th></th></tr></thead>
                            <tbody>{list.into_iter().map(|d| view! { <DatacenterRow d remove/> }).collect_view()}</tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
        {action_result(move || remove.value().get(), "Datacenter removed.")}
        <section class="card form-card">
            <h2>"Add a datacenter"</h2>
            <p class="muted">"Start one with " <code>"cloudport datacenter --listen ADDR --token TOKEN"</code> ", then register it here."</p>
            <ActionForm action=add attr:class="inline-form">
                <label>"Name" <input name="name" required maxlength="63" placeholder="eu-west"/></label>
                <label>"API URL" <input name="url" required type="url" placeholder="http://10.0.0.5:7000"/></label>
                <label>"Token" <input name="token" required type="password" minlength="16" autocomplete="off"/></label>
                <label>"Gateway address (optional)" <input name="gateway" placeholder="apps.example.com"/></label>
                <button type="submit" class="primary">"Add datacenter"</button>
            </ActionForm>
            {action_result(move || add.value().get(), "Datacenter added and answering.")}
        </section>
    }
}

#[component]
fn DatacenterRow(d: Datacenter, remove: ServerAction<RemoveDatacenter>) -> impl IntoView {
    let name = d.name.clone();
    view! {
        <tr data-datacenter=d.name.clone()>
            <td>
                <strong>{d.name.clone()}</strong>
                {d.embedded.then(|| view! { " " <span class="badge-soft">"embedded"</span> })}
                <div class="muted small">{d.url.clone()}</div>
            </td>
            <td>
                <span class=format!("state dc-{}", d.state)>{d.state.clone()}</span>
                <div class="muted small">{d.state_reason.clone()}</div>
            </td>
            <td class="nowrap">{d.last_contact_at.map(format_time).unwrap_or_else(|| "never".into())}</td>
            <td>{d.runtime.clone()} " " <span class="muted small">{d.version.clone()}</span></td>
            <td class="nowrap">{format!("{:.1} CPU · {} GB", d.cpu_millicores as f64 / 1000.0, d.memory_mb / 1024)}</td>
            <td>{d.components}</td>
            <td>
                {(!d.embedded).then(|| view! {
                    <ActionForm action=remove attr:class="inline-form compact">
                        <input type="hidden" name="name" value=name.clone()/>
                        <label class="check small"><input type="checkbox" name="force" value="on"/>" force"</label>
                        <button type="submit" class="danger">"Remove"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}
