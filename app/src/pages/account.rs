use crate::api::ChangePassword;
use crate::components::action_result;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn AccountPage() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    view! {
        <Title text="Account · Cloudport"/>
        <h1>"Account"</h1>
        <section class="card form-card">
            <h2>"Change password"</h2>
            <p class="muted">"Your other signed-in sessions end when the password changes."</p>
            <ActionForm action=change attr:class="stacked-form">
                <label>"Current password" <input name="current_password" type="password" required autocomplete="current-password" maxlength="256"/></label>
                <label>"New password" <input name="new_password" type="password" required minlength="8" maxlength="256" autocomplete="new-password"/></label>
                <label>"Repeat new password" <input name="confirm_password" type="password" required minlength="8" maxlength="256" autocomplete="new-password"/></label>
                <button type="submit" class="primary">"Change password"</button>
            </ActionForm>
            {action_result(move || change.value().get(), "Password changed. Other sessions have been signed out.")}
        </section>
    }
}
