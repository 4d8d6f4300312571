use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// A plain HTML form posted to `/login`, so signing in works before and
/// without the WASM bundle; the server answers with a redirect either way.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let message = move || {
        query.read().get("error").map(|code| match code.as_str() {
            "invalid" => "Wrong username or password.".to_string(),
            "rate_limited" => {
                let wait = query.read().get("retry").unwrap_or_else(|| "a few".into());
                format!("Too many failed attempts. Try again in {wait} seconds.")
            }
            "origin" => "The request came from another site and was refused.".to_string(),
            _ => "Sign-in failed. Please try again.".to_string(),
        })
    };
    let signed_out = move || query.read().get("signed_out").is_some();
    let next = move || {
        query
            .read()
            .get("next")
            .filter(|n| n.starts_with('/') && !n.starts_with("//"))
            .unwrap_or_else(|| "/".into())
    };
    view! {
        <Title text="Sign in · Cloudport"/>
        <main class="login">
            <form class="card login-card" method="post" action="/login">
                <h1><span class="logo">"☁"</span>" Cloudport"</h1>
                <p class="muted">"Sign in to your console."</p>
                {move || message().map(|m| view! { <div class="alert error" role="alert">{m}</div> })}
                <Show when=signed_out>
                    <div class="alert ok" role="status">"You have been signed out."</div>
                </Show>
                <input type="hidden" name="next" value=next/>
                <label>"Username"
                    <input name="username" autocomplete="username" required autofocus maxlength="64"/>
                </label>
                <label>"Password"
                    <input name="password" type="password" autocomplete="current-password" required maxlength="256"/>
                </label>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </main>
    }
}
