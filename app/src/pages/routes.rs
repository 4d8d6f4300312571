use crate::api::{
    get_team_gateway, CreateHttpRoute, CreateTcpRoute, DeleteFromGateway, UploadCertificate,
};
use crate::components::{action_result, use_refresh, EmptyState, ErrorBox, Loading};
use crate::model::{
    CertificateRow, GatewayView, HttpRouteRow, RouteRights, RoutesView, TcpRouteRow,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// A team's routes and certificates in each datacenter it is opened in, and
/// the forms to add them.
#[component]
pub fn RoutesPage() -> impl IntoView {
    let params = use_params_map();
    let team = move || params.read().get("team").unwrap_or_default();
    let add_http = ServerAction::<CreateHttpRoute>::new();
    let delete = ServerAction::<DeleteFromGateway>::new();
    let add_tcp = ServerAction::<CreateTcpRoute>::new();
    let upload = ServerAction::<UploadCertificate>::new();
    // Traffic figures change on their own; refresh them now and then.
    let tick = use_refresh(15);
    let live = Resource::new(
        move || {
            (
                team(),
                add_http.version().get(),
                add_tcp.version().get(),
                upload.version().get(),
                delete.version().get(),
                tick.get(),
            )
        },
        |(team, ..)| get_team_gateway(team),
    );
    // The forms load once, so a refresh (or a refused submission) never
    // wipes what someone typed or pasted.
    let forms = Resource::new(team, get_team_gateway);
    view! {
        <Title text=move || format!("Routes · {} · Cloudport", team())/>
        <p class="crumbs">
            <a href="/teams">"Teams"</a>" / "<a href=move || format!("/teams/{}", team())>{team}</a>" / Routes"
        </p>
        <h1>"Routes and certificates"</h1>
        <p class="muted">"How the world reaches the team's components through each datacenter's gateway: your own domains and paths, TCP ports, and the certificates that serve them over HTTPS."</p>
        {action_result(move || delete.value().get(), "Deleted.")}
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match live.await {
                    Ok(g) if g.datacenters.is_empty() => view! {
                        <EmptyState title="This team is not opened in any datacenter yet.">
                            "Routes live in a datacenter's gateway; a platform admin can open one for the team."
                        </EmptyState>
                    }.into_any(),
                    Ok(g) => view! { <Gateways g delete/> }.into_any(),
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Transition>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let g = forms.await.ok()?;
                Some(view! { <Forms g add_http add_tcp upload/> })
            })}
        </Suspense>
    }
}

#[component]
fn Gateways(g: RoutesView, delete: ServerAction<DeleteFromGateway>) -> impl IntoView {
    let (team, rights) = (g.team, g.rights);
    g.datacenters
        .into_iter()
        .map(|dc| view! { <DatacenterRoutes dc team=team.clone() rights delete/> })
        .collect_view()
}

#[component]
fn DatacenterRoutes(
    dc: GatewayView,
    team: String,
    rights: RouteRights,
    delete: ServerAction<DeleteFromGateway>,
) -> impl IntoView {
    let name = dc.datacenter.clone();
    let Some(http) = dc.http.clone() else {
        return view! {
            <section class="card gateway" data-datacenter=name.clone()>
                <h2>"Datacenter " {name.clone()}</h2>
                <div class="alert error" role="alert">
                    <strong>"The gateway of " {name.clone()} " cannot be read."</strong> " "
                    {dc.error.clone().unwrap_or_default()}
                </div>
            </section>
        }
        .into_any();
    };
    let default_domain = dc.default_domain.clone();
    let http_routes = if dc.http_routes.is_empty() {
        let default_domain = default_domain.clone();
        view! {
            <EmptyState title="No routes yet — every component with an outer HTTP port already answers at its default domain.">
                "That is " <code>{default_domain}</code> ". Add a route to serve a component at your own domain or path, to split traffic between components (a canary), or to match a header or cookie."
            </EmptyState>
        }
        .into_any()
    } else {
        let del = rights.can_manage_routes.then_some(delete);
        view! { <HttpRoutes list=dc.http_routes team=team.clone() dc=name.clone() del/> }.into_any()
    };
    let tcp_routes = if dc.tcp_routes.is_empty() {
        view! {
            <EmptyState title="No TCP routes.">
                "A TCP route opens a port on the gateway and forwards its connections to a component: for databases, queues and other services that do not speak HTTP."
            </EmptyState>
        }
        .into_any()
    } else {
        let del = rights.can_manage_routes.then_some(delete);
        view! { <TcpRoutes list=dc.tcp_routes team=team.clone() dc=name.clone() del/> }.into_any()
    };
    let certificates = if dc.certificates.is_empty() {
        view! {
            <EmptyState title="No certificates.">
                "Upload a certificate and its key to serve your domains over HTTPS; the gateway picks one by the domains it is valid for."
            </EmptyState>
        }
        .into_any()
    } else {
        let del = rights.can_manage_certificates.then_some(delete);
        view! { <Certificates list=dc.certificates team=team.clone() dc=name.clone() del/> }
            .into_any()
    };
    view! {
        <section class="card gateway" data-datacenter=name.clone()>
            <h2>"Datacenter " {name.clone()}</h2>
            <dl class="gateway-facts">
                <dt>"HTTP"</dt><dd><code>{http}</code></dd>
                <dt>"HTTPS"</dt><dd>{match dc.https {
                    Some(a) => view! { <code>{a}</code> }.into_any(),
                    None => view! { <span class="muted">"not enabled"</span> }.into_any(),
                }}</dd>
                <dt>"Default domains"</dt><dd><code>{default_domain}</code></dd>
            </dl>
            <h3>"HTTP routes"</h3>
            {http_routes}
            <h3>"TCP routes"</h3>
            {tcp_routes}
            <h3>"Certificates"</h3>
            {certificates}
        </section>
    }
    .into_any()
}

/// A row's delete button: `kind` is `http`, `tcp` or `certificate`.
fn delete_form(
    del: ServerAction<DeleteFromGateway>,
    team: String,
    dc: String,
    kind: &'static str,
    key: String,
) -> impl IntoView {
    view! {
        <td>
            <ActionForm action=del attr:class="inline-form compact">
                <input type="hidden" name="team" value=team/>
                <input type="hidden" name="datacenter" value=dc/>
                <input type="hidden" name="kind" value=kind/>
                <input type="hidden" name="key" value=key/>
                <button type="submit" class="danger">"Delete"</button>
            </ActionForm>
        </td>
    }
}

#[component]
fn HttpRoutes(
    list: Vec<HttpRouteRow>,
    team: String,
    dc: String,
    del: Option<ServerAction<DeleteFromGateway>>,
) -> impl IntoView {
    view! {
        <table class="grid routes http-routes">
            <thead><tr>
                <th>"Domain and path"</th><th>"Matches"</th><th>"Targets"</th><th>"Balance"</th><th>"Redirect"</th>
                <th class="num">"Requests"</th><th class="num">"2xx"</th><th class="num">"5xx"</th><th class="num">"p99"</th>
                {del.map(|_| view! { <th></th> })}
            </tr></thead>
            <tbody>
                {list.into_iter().map(|r| {
                    let (team, dc, key) = (team.clone(), dc.clone(), r.domain.clone());
                    view! {
                        <tr data-route=key>
                            <td><code>{r.domain}{r.path_prefix}</code></td>
                            <td class="detail">{if r.matches.is_empty() { "—".to_string() } else { r.matches }}</td>
                            <td>{r.targets.into_iter().map(|t| view! { <span class="target">{t}</span> }).collect_view()}</td>
                            <td>{r.balance}</td>
                            <td>{if r.https_redirect { "to HTTPS" } else { "—" }}</td>
                            <td class="num">{r.requests}</td>
                            <td class="num">{r.status_2xx}</td>
                            <td class="num">{r.status_5xx}</td>
                            <td class="num nowrap">{r.p99}</td>
                            {del.map(|del| delete_form(del, team, dc, "http", r.id))}
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn TcpRoutes(
    list: Vec<TcpRouteRow>,
    team: String,
    dc: String,
    del: Option<ServerAction<DeleteFromGateway>>,
) -> impl IntoView {
    view! {
        <table class="grid routes tcp-routes">
            <thead><tr><th>"Gateway port"</th><th>"Component"</th><th>"Balance"</th>{del.map(|_| view! { <th></th> })}</tr></thead>
            <tbody>
                {list.into_iter().map(|r| {
                    let (team, dc, key) = (team.clone(), dc.clone(), r.listen_port.to_string());
                    view! {
                        <tr data-port=key>
                            <td><code>{r.listen_port}</code></td>
                            <td>{r.target}</td>
                            <td>{r.balance}</td>
                            {del.map(|del| delete_form(del, team, dc, "tcp", r.id))}
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn Certificates(
    list: Vec<CertificateRow>,
    team: String,
    dc: String,
    del: Option<ServerAction<DeleteFromGateway>>,
) -> impl IntoView {
    view! {
        <table class="grid certificates">
            <thead><tr><th>"Name"</th><th>"Domains"</th><th>"Valid until"</th><th></th>{del.map(|_| view! { <th></th> })}</tr></thead>
            <tbody>
                {list.into_iter().map(|c| {
                    let (team, dc, key, name) = (team.clone(), dc.clone(), c.name.clone(), c.name.clone());
                    view! {
                        <tr data-certificate=key>
                            <td>{c.name}</td>
                            <td class="detail">{c.domains}</td>
                            <td class="nowrap">{c.valid_until}</td>
                            <td><span class=format!("expiry {}", c.expiry_state)>{c.expiry}</span></td>
                            {del.map(|del| delete_form(del, team, dc, "certificate", name))}
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The options of a component select (`datacenter/app/component` values).
fn target_options(targets: &[(String, String)], with_none: bool) -> impl IntoView {
    let options = targets.to_vec();
    view! {
        {with_none.then(|| view! { <option value="">"—"</option> })}
        {options.into_iter().map(|(value, label)| view! { <option value=value>{label}</option> }).collect_view()}
    }
}

fn balance_select() -> impl IntoView {
    view! {
        <label>"Balance"
            <select name="balance">
                <option value="round_robin">"round robin"</option>
                <option value="least_connections">"least connections"</option>
            </select>
        </label>
    }
}

/// A value for a field's `prop:value` that starts as `initial` and goes
/// back to it after each successful submission of the form's action; a
/// refused submission keeps what was typed. (Re-rendering the form would not
/// do: the view is patched in place and a field's typed value survives it.)
fn reset_on_success(
    ok: impl Fn() -> bool + Send + Sync + 'static,
) -> impl Fn(&'static str) -> Signal<&'static str> + Copy {
    let done = RwSignal::new(0u32);
    Effect::new(move |_| {
        if ok() {
            done.update(|n| *n += 1);
        }
    });
    move |initial| {
        Signal::derive(move || {
            done.track();
            initial
        })
    }
}

#[component]
fn Forms(
    g: RoutesView,
    add_http: ServerAction<CreateHttpRoute>,
    add_tcp: ServerAction<CreateTcpRoute>,
    upload: ServerAction<UploadCertificate>,
) -> impl IntoView {
    if g.datacenters.is_empty() {
        return ().into_any();
    }
    let routes = g.rights.can_manage_routes.then(|| {
        if g.targets.is_empty() {
            view! {
                <section class="card form-card">
                    <h2>"Add a route"</h2>
                    <p class="muted">"Routes send traffic to components; this team has none yet. Create one in an app first."</p>
                </section>
            }
            .into_any()
        } else {
            view! {
                <HttpRouteForm team=g.team.clone() targets=g.targets.clone() add_http/>
                <TcpRouteForm team=g.team.clone() targets=g.targets.clone() add_tcp/>
            }
            .into_any()
        }
    });
    let datacenters: Vec<String> = g.datacenters.iter().map(|d| d.datacenter.clone()).collect();
    let certificates = g
        .rights
        .can_manage_certificates
        .then(|| view! { <CertificateForm team=g.team.clone() datacenters upload/> });
    view! { {routes} {certificates} }.into_any()
}

#[component]
fn HttpRouteForm(
    team: String,
    targets: Vec<(String, String)>,
    add_http: ServerAction<CreateHttpRoute>,
) -> impl IntoView {
    let reset = reset_on_success(move || matches!(add_http.value().get(), Some(Ok(_))));
    let target_rows = [1, 2, 3].into_iter().map(|n| view! {
            <div class="form-row">
                <label>{format!("Target {n}")}
                    <select name=format!("target_{n}") required=n == 1>{target_options(&targets, n > 1)}</select>
                </label>
                <label>{format!("Weight {n}")}
                    <input name=format!("weight_{n}") type="number" min="0" max="10000" size="6" value=if n == 1 { "1" } else { "" } prop:value=reset(if n == 1 { "1" } else { "" })/>
                </label>
            </div>
        }).collect_view();
    view! {
        <section class="card form-card add-http-route">
            <h2>"Add an HTTP route"</h2>
            <ActionForm action=add_http attr:class="stacked-form wide">
                <input type="hidden" name="team" value=team/>
                <div class="form-row">
                    <label>"Domain" <input name="domain" required maxlength="253" placeholder="shop.example.com or *.example.com" autocomplete="off" prop:value=reset("")/></label>
                    <label>"Path prefix" <input name="path_prefix" maxlength="1024" placeholder="/" prop:value=reset("")/></label>
                </div>
                {target_rows}
                <p class="hint">"Weights are relative: 90 and 10 send about 90 % and 10 % of the requests (a canary). All targets must be in the same datacenter."</p>
                <details class="matches">
                    <summary>"Only requests with a header or cookie"</summary>
                    <div class="form-row">
                        <label>"Header name" <input name="header_name" maxlength="128" placeholder="X-Canary" prop:value=reset("")/></label>
                        <label>"Header value" <input name="header_value" maxlength="1024" prop:value=reset("")/></label>
                    </div>
                    <div class="form-row">
                        <label>"Cookie name" <input name="cookie_name" maxlength="128" placeholder="beta" prop:value=reset("")/></label>
                        <label>"Cookie value" <input name="cookie_value" maxlength="1024" prop:value=reset("")/></label>
                    </div>
                </details>
                <div class="form-row">
                    {balance_select()}
                    <label class="check"><input type="checkbox" name="https_redirect" value="on"/> "Redirect plain HTTP to HTTPS"</label>
                </div>
                <button type="submit" class="primary">"Add route"</button>
            </ActionForm>
            {action_result(move || add_http.value().get(), "Route added.")}
        </section>
    }
}

#[component]
fn TcpRouteForm(
    team: String,
    targets: Vec<(String, String)>,
    add_tcp: ServerAction<CreateTcpRoute>,
) -> impl IntoView {
    let reset = reset_on_success(move || matches!(add_tcp.value().get(), Some(Ok(_))));
    let options = target_options(&targets, false);
    view! {
        <section class="card form-card add-tcp-route">
            <h2>"Add a TCP route"</h2>
            <ActionForm action=add_tcp attr:class="inline-form">
                <input type="hidden" name="team" value=team/>
                <label>"Gateway port" <input name="listen_port" type="number" min="1024" max="65535" required size="6" prop:value=reset("")/></label>
                <label>"Component" <select name="target" required>{options}</select></label>
                {balance_select()}
                <button type="submit" class="primary">"Add TCP route"</button>
            </ActionForm>
            {action_result(move || add_tcp.value().get(), "TCP route added.")}
        </section>
    }
}

#[component]
fn CertificateForm(
    team: String,
    datacenters: Vec<String>,
    upload: ServerAction<UploadCertificate>,
) -> impl IntoView {
    let reset = reset_on_success(move || matches!(upload.value().get(), Some(Ok(_))));
    let options = datacenters
        .iter()
        .map(|d| view! { <option value=d.clone()>{d.clone()}</option> })
        .collect_view();
    view! {
        <section class="card form-card upload-certificate">
            <h2>"Upload a certificate"</h2>
            <p class="muted">"The certificate (with its chain) and its private key, PEM encoded. The key is stored encrypted in the datacenter and never shown again; a certificate of the same name is replaced."</p>
            <ActionForm action=upload attr:class="stacked-form wide">
                <input type="hidden" name="team" value=team/>
                <div class="form-row">
                    <label>"Name" <input name="name" required maxlength="63" placeholder="shop-example-com" autocomplete="off" prop:value=reset("")/></label>
                    <label>"Datacenter"
                        <select name="datacenter" required>
                            {options}
                        </select>
                    </label>
                </div>
                <label>"Certificate (PEM)" <textarea name="cert_pem" rows="6" required spellcheck="false" class="code" placeholder="-----BEGIN CERTIFICATE-----" prop:value=reset("")></textarea></label>
                <label>"Private key (PEM)" <textarea name="key_pem" rows="6" required spellcheck="false" autocomplete="off" class="code" placeholder="-----BEGIN PRIVATE KEY-----" prop:value=reset("")></textarea></label>
                <button type="submit" class="primary">"Upload certificate"</button>
            </ActionForm>
            {action_result(move || upload.value().get(), "Certificate uploaded.")}
        </section>
    }
}
