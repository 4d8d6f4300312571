mod account;
mod app_page;
mod audit;
mod component;
mod dashboard;
mod datacenters;
mod event;
mod login;
mod logs;
mod routes;
mod team;
mod teams;
mod tokens;
mod upload;
mod users;

pub use account::AccountPage;
pub use app_page::AppPage;
pub use audit::AuditPage;
pub use component::ComponentPage;
pub use dashboard::DashboardPage;
pub use datacenters::DatacentersPage;
pub use event::EventPage;
pub use login::LoginPage;
pub use routes::RoutesPage;
pub use team::TeamPage;
pub use teams::TeamsPage;
pub use tokens::TokensPage;
pub use users::UsersPage;

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <h1>"Page not found"</h1>
        <p>"There is nothing at this address. " <a href="/">"Back to the dashboard"</a></p>
    }
}
