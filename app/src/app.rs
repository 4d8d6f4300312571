use crate::api::get_me;
use crate::components::Layout;
use crate::pages::*;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// The HTML document around the app; the server renders it for every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let css = format!("/pkg/{}.css", options.output_name);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <Stylesheet id="cloudport-css" href=css/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The signed-in user, loaded once per page load and shared by every page.
pub type MeResource = Resource<Result<Option<crate::model::Me>, crate::error::AppError>>;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let me: MeResource = Resource::new(|| (), |_| get_me());
    provide_context(me);

    // Async SSR: every page arrives complete, so it reads and works before (or
    // without) the WASM bundle.
    let ssr = SsrMode::Async;
    view! {
        <Title text="Cloudport"/>
        <Router>
            <Routes fallback=|| view! { <Layout><NotFound/></Layout> }>
                <Route path=path!("/login") view=LoginPage ssr=ssr.clone()/>
                <Route path=path!("/") view=|| view! { <Layout><DashboardPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/teams") view=|| view! { <Layout><TeamsPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/teams/:team") view=|| view! { <Layout><TeamPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/teams/:team/routes") view=|| view! { <Layout><RoutesPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/teams/:team/apps/:app") view=|| view! { <Layout><AppPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/teams/:team/apps/:app/components/:name") view=|| view! { <Layout><ComponentPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/teams/:team/events/:datacenter/:id") view=|| view! { <Layout><EventPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/datacenters") view=|| view! { <Layout><DatacentersPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/users") view=|| view! { <Layout><UsersPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/tokens") view=|| view! { <Layout><TokensPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/audit") view=|| view! { <Layout><AuditPage/></Layout> } ssr=ssr.clone()/>
                <Route path=path!("/account") view=|| view! { <Layout><AccountPage/></Layout> } ssr=ssr.clone()/>
            </Routes>
        </Router>
    }
}
