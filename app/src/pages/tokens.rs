use crate::api::{list_tokens, CreateToken, RevokeToken};
use crate::components::{format_time, EmptyState, ErrorBox, Loading};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn TokensPage() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_tokens(),
    );
    view! {
        <Title text="API tokens · Cloudport"/>
        <h1>"API tokens"</h1>
        <p class="muted">"Tokens let scripts and the " <code>"cloudport"</code> " CLI act as you: send " <code>"Authorization: Bearer <token>"</code> "."</p>
        {move || match create.value().get() {
            Some(Ok(t)) => view! {
                <div class="alert ok token-once" role="status">
                    <p><strong>"Token “" {t.name.clone()} "” created."</strong> " Copy it now: it will not be shown again."</p>
                    <code class="secret">{t.token.clone()}</code>
                </div>
            }.into_any(),
            Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
            None => ().into_any(),
        }}
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match tokens.await {
                    Ok(list) if list.is_empty() => view! {
                        <EmptyState title="No API tokens.">"Create one below for the CLI or your CI."</EmptyState>
                    }.into_any(),
                    Ok(list) => view! {
                        <table class="grid">
                            <thead><tr><th>"Name"</th><th>"Token"</th><th>"Scope"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|t| view! {
                                    <tr>
                                        <td>{t.name.clone()}</td>
                                        <td><code>{t.prefix.clone()} "…"</code></td>
                                        <td>{t.scope.as_str()}</td>
                                        <td>{format_time(t.created_at)}</td>
                                        <td>{t.last_used_at.map(format_time).unwrap_or_else(|| "never".into())}</td>
                                        <td>
                                            <ActionForm action=revoke attr:class="inline-form compact">
                                                <input type="hidden" name="id" value=t.id.to_string()/>
                                                <button type="submit" class="danger">"Revoke"</button>
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
        <section class="card form-card">
            <h2>"Create a token"</h2>
            <ActionForm action=create attr:class="inline-form">
                <label>"Name" <input name="name" required maxlength="64" placeholder="ci-deploy"/></label>
                <label>"Scope"
                    <select name="scope">
                        <option value="full" selected>"full — everything you may do"</option>
                        <option value="read-only">"read-only"</option>
                    </select>
                </label>
                <button type="submit" class="primary">"Create token"</button>
            </ActionForm>
        </section>
    }
}
