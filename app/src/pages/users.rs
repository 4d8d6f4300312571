use crate::api::{list_users, CreateUser, SetUserDisabled};
use crate::components::{action_result, format_time, ErrorBox, Loading};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn UsersPage() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let toggle = ServerAction::<SetUserDisabled>::new();
    let users = Resource::new(
        move || (create.version().get(), toggle.version().get()),
        |_| list_users(),
    );
    view! {
        <Title text="Users · Cloudport"/>
        <h1>"Users"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match users.await {
                    Ok(list) => view! {
                        <table class="grid">
                            <thead><tr><th>"Username"</th><th>"Platform role"</th><th>"State"</th><th>"Created"</th><th>"Actions"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|u| view! {
                                    <tr data-user=u.username.clone()>
                                        <td>{u.username.clone()}</td>
                                        <td>{if u.is_admin { "admin" } else { "user" }}</td>
                                        <td>{if u.disabled { view! { <span class="state off">"disabled"</span> } } else { view! { <span class="state on">"active"</span> } }}</td>
                                        <td>{format_time(u.created_at)}</td>
                                        <td>
                                            <ActionForm action=toggle attr:class="inline-form compact">
                                                <input type="hidden" name="id" value=u.id.to_string()/>
                                                <input type="hidden" name="disabled" value=(!u.disabled).to_string()/>
                                                <button type="submit" class=if u.disabled { "" } else { "danger" }>
                                                    {if u.disabled { "Enable" } else { "Disable" }}
                                                </button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
        {action_result(move || toggle.value().get(), "User updated.")}
        <section class="card form-card">
            <h2>"Create a user"</h2>
            <ActionForm action=create attr:class="inline-form">
                <label>"Username" <input name="username" required maxlength="64" autocomplete="off"/></label>
                <label>"Initial password" <input name="password" type="password" required minlength="8" maxlength="256" autocomplete="new-password"/></label>
                <label class="check"><input type="checkbox" name="is_admin" value="on"/>" platform admin"</label>
                <button type="submit" class="primary">"Create user"</button>
            </ActionForm>
            {action_result(move || create.value().get(), "User created. Share the password with them privately.")}
        </section>
    }
}
